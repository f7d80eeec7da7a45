"""Two finished workflow runs compared value for value: did a change move any number?

    .venv/bin/python benchmarks/compare_runs.py RUN_A RUN_B [--json out.json]

RUN_A and RUN_B are workflow folders (Snakemake's ``-d``, the demo's clone). The benchmark notes' "its metrics
tables equal the last run's value for value, every model's weights are the same tensors" come from this. A
file's bytes are the wrong test: tables and checkpoints name the run's own folder, and job summaries record
wall times. So each file is read and compared by what it holds, under data/, results/, predictions/, metrics/
and models/ (logs/ and reports/ are derived or timed):

- Parquet tables and Arrow IPC packs: every column's values (NaN equals NaN, nulls where the other has nulls),
  and the table's attrs; a float column that differs says by how much at most.
- Checkpoints (.pt), .npz and .json: every tensor, array and value, key by key.
- train_log.csv: every logged value.
- Anything else (mp4, wav, transcripts): the bytes.

Strings are compared with each run's folder replaced by ``RUN``, so a path inside the run is equal when it
names the same file. The entries of ``RUN_SPECIFIC`` (wall times, file-system fingerprints) are not compared:
they differ between any two runs. Exit status 0 when everything compared is equal and both runs hold the same
files, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

FOLDERS = ("data", "results", "predictions", "metrics", "models")
# Column, attrs key or logged metric -> why it is left out: each differs between any two runs of the same code.
RUN_SPECIFIC = {
    "seconds": "a job's wall time (shard summaries, the pack index)",
    "inputs": "the (mtime_ns, size) fingerprints a pack records of its input files, to notice a changed clip",
    "pack_id": "a pack's hash of those fingerprints",
    "steps_per_s": "the training speed train_log.csv records",
    # Hashes of files that name the run's folder inside them (a checkpoint, a metrics table): the files they
    # hash are themselves compared here, value for value.
    "sha256": "a source file's hash (a metrics table's in sanity.parquet's attrs)",
    "checkpoint_sha256": "the checkpoint's hash a prediction records",
    "fingerprint": "a checkpoint's hash of its run's settings, paths included, for a safe resume",
}
MAX_NOTES = 8  # differences listed per file; the count says how many there were


class Norm:
    """Replaces each run's folder in a string or bytes by RUN."""

    def __init__(self, root: Path):
        self.roots = sorted({str(root), str(root.resolve())}, key=len, reverse=True)

    def __call__(self, x: str | bytes) -> str | bytes:
        for r in self.roots:
            x = x.replace(r, "RUN") if isinstance(x, str) else x.replace(r.encode(), b"RUN")
        return x


def _float_note(a: np.ndarray, b: np.ndarray) -> str | None:
    if a.shape != b.shape:
        return f"shape {a.shape} against {b.shape}"
    if np.array_equal(a, b, equal_nan=True):
        return None
    both = np.isfinite(a) & np.isfinite(b)
    n = int(np.sum(~((a == b) | (np.isnan(a) & np.isnan(b)))))
    if not both.any():
        return f"{n} of {a.size} values differ"
    d = np.abs(a[both] - b[both])
    rel = d / np.maximum(np.abs(a[both]), np.abs(b[both])).clip(min=np.finfo(np.float64).tiny)
    return f"{n} of {a.size} values differ, by at most {d.max():.3g} ({rel.max():.3g} relative)"


def _array_note(a: pa.Array, b: pa.Array, na: Norm, nb: Norm) -> str | None:
    """Why two Arrow arrays differ, or None when they hold the same values."""
    if a.type != b.type or len(a) != len(b):
        return f"{a.type}[{len(a)}] against {b.type}[{len(b)}]"
    if (a.null_count or b.null_count) and not a.is_null().equals(b.is_null()):
        return "nulls in other rows"
    t = a.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        if not a.value_lengths().fill_null(0).equals(b.value_lengths().fill_null(0)):
            return "lists of other lengths"
        return _array_note(a.flatten(), b.flatten(), na, nb)
    if pa.types.is_struct(t):
        notes = [f"{t.field(i).name}: {n}" for i in range(t.num_fields)
                 if (n := _array_note(a.field(i), b.field(i), na, nb))]
        return "; ".join(notes) or None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        sa, sb = [None if s is None else na(s) for s in a.to_pylist()], [None if s is None else nb(s)
                                                                              for s in b.to_pylist()]
        n = sum(x != y for x, y in zip(sa, sb))
        return f"{n} of {len(sa)} strings differ" if n else None
    if pa.types.is_floating(t):
        return _float_note(a.to_numpy(zero_copy_only=False).astype(np.float64),
                           b.to_numpy(zero_copy_only=False).astype(np.float64))
    return None if a.equals(b) else "values differ"


def _meta(table: pa.Table, norm: Norm) -> dict:
    return {k.decode(): norm(v) for k, v in (table.schema.metadata or {}).items()
            if k.decode() not in RUN_SPECIFIC}


def _obj_notes(a, b, na: Norm, nb: Norm, path: str = "") -> list[str]:
    """Where two loaded objects (checkpoints, attrs, arrays) differ, key by key."""
    here = path or "(top)"
    if isinstance(a, dict) and isinstance(b, dict):
        notes = [f"{path}/{k}: only in {'A' if k in a else 'B'}" for k in sorted(set(a) ^ set(b), key=str)]
        for k in a:
            if k in b and str(k) not in RUN_SPECIFIC:
                notes += _obj_notes(a[k], b[k], na, nb, f"{path}/{k}")
        return notes
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{here}: {len(a)} items against {len(b)}"]
        return [n for i, (x, y) in enumerate(zip(a, b)) for n in _obj_notes(x, y, na, nb, f"{path}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        a, b = a.detach().cpu(), b.detach().cpu()
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{here}: {a.dtype}{tuple(a.shape)} against {b.dtype}{tuple(b.shape)}"]
        if a.is_floating_point():
            note = _float_note(a.double().numpy(), b.double().numpy())
        else:
            note = None if torch.equal(a, b) else "values differ"
        return [f"{here}: {note}"] if note else []
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype.kind in "fc" and b.dtype.kind in "fc":
            note = _float_note(a.astype(np.float64), b.astype(np.float64))
        else:
            note = None if (a.shape == b.shape and np.array_equal(a, b)) else "values differ"
        return [f"{here}: {note}"] if note else []
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    if isinstance(a, str) and isinstance(b, str):
        return [] if na(a) == nb(b) else [f"{here}: {a[:60]!r} against {b[:60]!r}"]
    if isinstance(a, bytes) and isinstance(b, bytes):
        return [] if na(a) == nb(b) else [f"{here}: bytes differ"]
    return [] if a == b else [f"{here}: {str(a)[:60]} against {str(b)[:60]}"]


def _read_table(path: Path) -> pa.Table:
    if path.suffix == ".arrow":
        with pa.memory_map(str(path)) as f:
            return pa.ipc.open_file(f).read_all()
    return pq.read_table(path)


def _table_notes(pa_: Path, pb: Path, na: Norm, nb: Norm) -> list[str]:
    a, b = _read_table(pa_), _read_table(pb)
    if a.column_names != b.column_names:
        return [f"columns {a.column_names} against {b.column_names}"]
    notes = [f"{c}: {n}" for c in a.column_names if c not in RUN_SPECIFIC
             and (n := _array_note(a.column(c).combine_chunks(), b.column(c).combine_chunks(), na, nb))]
    ma, mb = _meta(a, na), _meta(b, nb)
    for k in sorted(set(ma) | set(mb)):
        if ma.get(k) != mb.get(k):
            try:  # ksdiff's attrs are JSON: say which entries differ
                notes += [f"attrs {k}{n}" for n in _obj_notes(json.loads(ma[k]), json.loads(mb[k]), na, nb)]
            except (KeyError, ValueError):
                notes.append(f"attrs {k} differ")
    return notes


def _log_notes(pa_: Path, pb: Path, na: Norm, nb: Norm) -> list[str]:
    a, b = pd.read_csv(pa_), pd.read_csv(pb)
    if "metric" in a.columns and "metric" in b.columns:
        a, b = (t[~t["metric"].isin(RUN_SPECIFIC)].reset_index(drop=True) for t in (a, b))
    return _obj_notes(a.to_dict("list"), b.to_dict("list"), na, nb)


def file_notes(pa_: Path, pb: Path, na: Norm, nb: Norm) -> list[str]:
    """How one file of run A differs from the same file of run B ([] when it holds the same values)."""
    s = pa_.suffix
    if s in (".parquet", ".arrow"):
        return _table_notes(pa_, pb, na, nb)
    if s == ".pt":
        return _obj_notes(torch.load(pa_, map_location="cpu", weights_only=False),
                          torch.load(pb, map_location="cpu", weights_only=False), na, nb)
    if s == ".npz":
        with np.load(pa_, allow_pickle=False) as x, np.load(pb, allow_pickle=False) as y:
            return _obj_notes(dict(x), dict(y), na, nb)
    if s == ".json":
        return _obj_notes(json.loads(pa_.read_text()), json.loads(pb.read_text()), na, nb)
    if s == ".csv":
        return _log_notes(pa_, pb, na, nb)
    return [] if na(pa_.read_bytes()) == nb(pb.read_bytes()) else ["bytes differ"]


def compare(a: Path, b: Path, progress: bool = True) -> dict:
    """Per folder: files compared, equal, those that differ (with their notes) and those only one run holds."""
    na, nb = Norm(a), Norm(b)
    out = {}
    for folder in FOLDERS:
        fa = {p.relative_to(a) for p in (a / folder).rglob("*") if p.is_file()}
        fb = {p.relative_to(b) for p in (b / folder).rglob("*") if p.is_file()}
        both, differ = sorted(fa & fb), {}
        for rel in tqdm(both, desc=folder, unit="file", disable=not progress):
            if notes := file_notes(a / rel, b / rel, na, nb):
                differ[str(rel)] = {"n": len(notes), "notes": notes[:MAX_NOTES]}
        out[folder] = {"compared": len(both), "equal": len(both) - len(differ), "differ": differ,
                       "only_a": sorted(map(str, fa - fb)), "only_b": sorted(map(str, fb - fa))}
    return out


def same(result: dict) -> bool:
    return all(not (r["differ"] or r["only_a"] or r["only_b"]) for r in result.values())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--json", type=Path, help="write the comparison here")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    for run in (args.a, args.b):
        if not run.is_dir():
            ap.error(f"{run} is not a folder")
    result = compare(args.a, args.b, progress=not args.quiet)
    print("| folder | files compared | equal | differ | only in A | only in B |\n|---|---:|---:|---:|---:|---:|")
    for folder, r in result.items():
        print(f"| {folder} | {r['compared']} | {r['equal']} | {len(r['differ'])} | {len(r['only_a'])} | "
              f"{len(r['only_b'])} |")
    for folder, r in result.items():
        for rel, d in r["differ"].items():
            more = f" (and {d['n'] - len(d['notes'])} more)" if d["n"] > len(d["notes"]) else ""
            print(f"{rel}: " + "; ".join(d["notes"]) + more)
        for side in ("only_a", "only_b"):
            for rel in r[side]:
                print(f"{rel}: only in {side[-1].upper()}")
    print("Not compared, as they differ between any two runs: " + ", ".join(RUN_SPECIFIC))
    verdict = same(result)
    print("SAME values in both runs" if verdict else "the runs DIFFER")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"a": str(args.a), "b": str(args.b), "same": verdict,
                                         "run_specific": RUN_SPECIFIC, "folders": result}, indent=1))
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
