"""Shards: the unit of work of the workflow, with a resumable loop over each shard's clips.

One Snakemake job per clip per stage cannot be planned for VoxCeleb2 (1.1M clips), so
the workflow plans one job per shard of ``shard_size`` clips (config) and each job
loops over its clips here. Files stay per clip (results/{dataset}/{step}/{clip}.parquet),
so QC stays per clip and a rerun redoes only what is missing:

- ``list_clips`` scans a dataset root into the listing (which shard each clip is in);
  ``probe_shard`` probes and hashes one shard's videos into its manifest part, and
  ``merge_manifest`` concatenates the parts into the manifest every later step reads.
- ``run_stage`` runs one per-clip step over one shard. A clip is skipped when its
  outputs exist, were written with the same options (hash of the config keys the
  step reads, ksdiff.stage_config, stamped in the table's ``ksdiff.options`` metadata) and are not
  older than the clip's inputs, so a changed option reruns exactly that step's
  clips, and a job killed mid-shard resumes at the next clip (outputs are written
  atomically). A clip whose step raises gets a failed table with the error and
  never stops its shard; it is retried by the next run (its table carries no
  options hash), unlike a reasoned failure of bad input, which is kept.
- Each shard job writes a summary table (clip, status, reason, action) that the
  next stage's job depends on, and logs one line per clip.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ksdiff.io import parquet, schemas
from ksdiff.stage_config import stage_options, weight_files

log = logging.getLogger(__name__)

RAN, KEPT, ERROR = "ran", "kept", "error"


def shard_name(i: int) -> str:
    """The file stem of shard ``i`` (zero-padded: listings sort in shard order)."""
    return f"{int(i):05d}"


def n_shards(n_clips: int, size: int) -> int:
    return (n_clips + size - 1) // size


# --------------------------------------------------------------------------- listing and manifest


def list_clips(cfg: dict, root: str, dataset: str, out: str, layout: str = "auto") -> int:
    """Scan ``root`` (no probing) into the listing table: clips in scan order, in shards of cfg['shard_size']."""
    # Imported here, not above: ksdiff.plan imports this module in the workflow's driver environment
    # (Snakemake and pyarrow only, envs/workflow.yaml), where the extractors' libraries are absent.
    from ksdiff.data.manifest import scan
    from ksdiff.extract.transcript import reference_text_path

    size = int(cfg["shard_size"])
    rows = scan(root, layout)
    # Absolute, not resolved: resolving is a stat per path component, minutes for VoxCeleb2;
    # each shard's probe job resolves its own clips (ksdiff.data.manifest.probe_row).
    paths = [os.path.abspath(r["path"]) for r in rows]
    texts = [reference_text_path(p) for p in paths]
    cols = {
        "clip_id": [r["clip_id"] for r in rows],
        "speaker_id": [r["speaker_id"] for r in rows],
        "layout": [r["layout"] for r in rows],
        "path": paths,
        "text_path": [str(t) if t.is_file() else "" for t in texts],
        "shard": [i // size for i in range(len(rows))],
    }
    k = n_shards(len(rows), size)
    parquet.write_table(out, "listing", cols, attrs={"dataset": dataset, "root": str(Path(root).resolve()),
                                                     "shard_size": size, "n_shards": k})
    log.info("%s: %d clips in %d shard(s) of up to %d", dataset, len(rows), k, size)
    return 0


def shard_rows(listing: str | Path, shard: int) -> list[dict]:
    """The listing's rows of one shard."""
    t = pq.read_table(listing, filters=[("shard", "=", int(shard))])
    return t.filter(pc.equal(t.column("shard"), int(shard))).to_pylist()


def probe_shard(cfg: dict, listing: str, shard: int, out: str) -> int:
    """Probe and hash one shard's videos -> its part of the manifest (manifest schema)."""
    from ksdiff.data.manifest import write_manifest  # not in the driver environment (list_clips)

    lt = parquet.read_table(listing, "listing")
    rows = shard_rows(listing, shard)
    write_manifest(out, rows, lt.attrs["dataset"], lt.attrs["root"], f"manifest {lt.attrs['dataset']} shard {shard_name(shard)}")
    return 0


def manifest_parts(listing: str | Path, parts_dir: str | Path) -> list[Path]:
    k = int(parquet.read_table(listing, "listing").attrs["n_shards"])
    return [Path(parts_dir) / f"{shard_name(i)}.parquet" for i in range(k)]


def merge_manifest(cfg: dict, listing: str, parts: str, out: str) -> int:
    """Concatenate the shards' manifest parts (folder ``parts``) into the dataset's manifest."""
    lt = parquet.read_table(listing, "listing")
    tables = [parquet.read_table(p, "manifest").table for p in manifest_parts(listing, parts)]
    t = pa.concat_tables(tables) if tables else schemas.MANIFEST.empty_table()
    parquet.write_table(out, "manifest", t.replace_schema_metadata(None),
                        attrs={"root": lt.attrs["root"], "dataset": lt.attrs["dataset"]})
    log.info("%s: manifest of %d clips from %d shard(s)", lt.attrs["dataset"], t.num_rows, len(tables))
    return 0


# --------------------------------------------------------------------------- the loop


def options_hash(options: dict, table: str) -> str:
    """Hash of what a step's output depends on besides its inputs: the options its stage reads
    (ksdiff.stage_config.stage_options, the same keys the workflow passes its job) and the
    version of the schema it writes."""
    sub = {**options, "_schema": [table, schemas.VERSIONS[table]]}
    return hashlib.sha256(json.dumps(sub, sort_keys=True, default=str).encode()).hexdigest()[:16]


def is_current(outputs: list[Path], inputs: list[Path], table: Path, opts_hash: str) -> bool:
    """Every output exists, ``table`` was written with ``opts_hash`` and no output is
    older than an input (a missing optional input, e.g. no .txt, is no input)."""
    try:
        out_mtime = min(p.stat().st_mtime_ns for p in outputs)
        if parquet.read_options(table) != opts_hash:
            return False
    except (OSError, pa.ArrowInvalid):
        return False
    in_mtimes = [p.stat().st_mtime_ns for p in inputs if p.exists()]
    return not in_mtimes or out_mtime >= max(in_mtimes)


@dataclass
class ClipWork:
    """One clip's work for the loop: run() writes ``outputs``; ``table`` is the Parquet table
    among them whose status is the clip's status at this step."""

    clip: str
    run: Callable[[], object]
    table: Path
    table_name: str
    outputs: list[Path]
    inputs: list[Path]


def run_loop(work: Iterable[ClipWork], opts_hash: str, out: str | Path, *, stage: str, shard: str,
             fatal: tuple[type[BaseException], ...] = ()) -> list[dict]:
    """Run each clip's work unless its outputs are current; write the shard summary to ``out``.

    An exception from one clip is recorded as a failed table (without the options
    hash, so the next run retries it) and the loop goes on; ``fatal`` exception
    types (configuration errors that every clip would hit) stop the shard.
    """
    work = list(work)
    rows = []
    t0 = time.perf_counter()
    counts = {RAN: 0, KEPT: 0, ERROR: 0}
    for i, w in enumerate(work, 1):
        t = time.perf_counter()
        if is_current(w.outputs, w.inputs, w.table, opts_hash):
            action = KEPT
        else:
            action = RAN
            try:
                with parquet.recording_options(opts_hash):
                    w.run()
            except fatal:
                raise
            except Exception as e:  # one bad clip never stops its shard
                log.exception("%s %s: %s", stage, w.clip, e)
                action = ERROR
                parquet.write_failure(w.table, w.table_name, f"{stage} error: {type(e).__name__}: {e}",
                                      attrs={"clip_id": w.clip})
        status, reason = parquet.read_status(w.table)
        dt = time.perf_counter() - t
        counts[action] += 1
        rows.append({"clip_id": w.clip, "status": status, "reason": reason, "action": action, "seconds": dt})
        log.info("%s shard %s [%d/%d] %s: %s %s%s (%.2f s)", stage, shard, i, len(work), w.clip, action, status,
                 f" ({reason})" if reason else "", dt)
    total = time.perf_counter() - t0
    cols = {f.name: [r[f.name] for r in rows] for f in schemas.SHARD}
    parquet.write_table(out, "shard", cols, attrs={"stage": stage, "shard": shard, "options_hash": opts_hash,
                                                   "seconds": total, **counts})
    log.info("%s shard %s: %d clips (%d ran, %d kept, %d errors) in %.1f s", stage, shard, len(work),
             counts[RAN], counts[KEPT], counts[ERROR], total)
    return rows


# --------------------------------------------------------------------------- per-clip stages


@dataclass(frozen=True)
class Stage:
    """A per-clip step: its function, the table it writes, and its files (the config keys it
    reads are ksdiff.stage_config.STAGE_KEYS under the same name).

    ``files(results, clip, row, extra)`` -> (kwargs for the function, table path,
    other outputs, inputs). ``row`` is the clip's manifest row.
    """

    target: str
    table: str
    files: Callable[[Path, str, dict, dict], tuple[dict, Path, list[Path], list[Path]]]


def _p(results: Path, step: str, clip: str, ext: str = "parquet") -> Path:
    return results / step / f"{clip}.{ext}"


def _audio(r, c, row, x):
    wav, table = _p(r, "audio", c, "wav"), _p(r, "audio", c)
    return dict(manifest=x["manifest"], clip=c, out_wav=str(wav), out=str(table)), table, [wav], [Path(row["path"])]


def _transcript(r, c, row, x):
    from ksdiff.extract.transcript import reference_text_path  # not in the driver environment (list_clips)

    audio, out = _p(r, "audio", c), _p(r, "transcripts", c)
    ins = [audio, _p(r, "audio", c, "wav"), reference_text_path(row["path"])]
    return dict(manifest=x["manifest"], clip=c, audio=str(audio), out=str(out)), out, [], ins


def _landmarks(r, c, row, x):
    out = _p(r, "landmarks", c)
    return dict(manifest=x["manifest"], clip=c, out=str(out)), out, [], [Path(row["path"])]


def _pose(r, c, row, x):
    lm, out = _p(r, "landmarks", c), _p(r, "pose", c)
    return dict(landmarks=str(lm), out=str(out)), out, [], [lm]


def _coeffs(r, c, row, x):
    pose, out = _p(r, "pose", c), _p(r, "coeffs", c)
    return dict(pose=str(pose), basis=x["basis"], out=str(out)), out, [], [pose, Path(x["basis"])]


def _deca(r, c, row, x):
    lm, out = _p(r, "landmarks", c), _p(r, "coeffs", c)
    return dict(manifest=x["manifest"], clip=c, landmarks=str(lm), out=str(out)), out, [], [lm, Path(row["path"])]


def _features(r, c, row, x):
    audio, out = _p(r, "audio", c), _p(r, "features", c)
    return dict(audio=str(audio), out=str(out)), out, [], [audio, _p(r, "audio", c, "wav")]


STAGES: dict[str, Stage] = {
    "audio": Stage("ksdiff.extract.audio:extract_audio", "audio", _audio),
    "transcript": Stage("ksdiff.extract.transcript:transcribe", "transcript", _transcript),
    "landmarks": Stage("ksdiff.extract.landmarks:extract_landmarks", "landmarks", _landmarks),
    "pose": Stage("ksdiff.extract.pose:fit_pose", "pose", _pose),
    "coeffs": Stage("ksdiff.extract.coeffs:project_coeffs", "coeffs", _coeffs),
    "deca": Stage("ksdiff.extract.deca:fit_deca", "coeffs", _deca),
    "features": Stage("ksdiff.extract.features:extract_features", "features", _features),
}


def _fatal_errors() -> tuple[type[BaseException], ...]:
    """Configuration errors every clip of every shard would hit: they stop the job."""
    from ksdiff.extract.asr_whisper import WhisperUnavailable  # not in the driver environment (list_clips)

    return (WhisperUnavailable, MemoryError)


def run_stage(cfg: dict, stage: str, manifest: str, results: str, out: str, basis: str | None = None) -> int:
    """`ksdiff shard <stage>`: run a per-clip step over the clips of a shard's ``manifest``
    part, writing per-clip tables under ``results`` and the shard summary to ``out``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r} ({', '.join(STAGES)})")
    st = STAGES[stage]
    if stage == "coeffs" and not basis:
        raise ValueError("stage 'coeffs' needs --basis")
    module, func = st.target.split(":")
    fn = getattr(importlib.import_module(module), func)  # imported once per shard
    results_p = Path(results)
    extra = {"manifest": manifest, "basis": basis}
    rows = parquet.read_table(manifest, "manifest").table.to_pylist()
    weights = [Path(p) for p in weight_files(cfg, stage)]  # a replaced encoder redoes every clip

    def work(row):
        kwargs, table, others, inputs = st.files(results_p, row["clip_id"], row, extra)
        return ClipWork(row["clip_id"], lambda: fn(cfg=cfg, **kwargs), table, st.table, [table, *others],
                        [*inputs, *weights])

    run_loop((work(r) for r in rows), options_hash(stage_options(cfg, stage), st.table), out, stage=stage,
             shard=Path(out).stem, fatal=_fatal_errors())
    return 0
