"""Writing training packs: a shard's clips as training-ready arrays in one memory-mappable file.

Reading them: ksdiff.data.pack_reader (clips, record batches), ksdiff.data.pack_windows (training windows).

``ksdiff pack`` (one job per shard) reads each clip's coeffs, features and transcript
tables once, builds the aligned arrays ``clip_arrays.load_clip`` builds, and writes them into
``results/{dataset}/packs/{shard}.arrow`` with an index ``packs/{shard}.parquet`` (one row
per clip of the shard: packed with its record batch and length, or not and why; the index is
also the job's shard summary). Schemas: ksdiff.io.schemas.PACK and PACK_INDEX.

Why Arrow IPC files through a memory map. A clip is one record batch, so cutting a
window is a footer lookup plus slicing columns: zero copy, no decompression, no
deserialisation, and the bytes are page cache, not the training process's anonymous
memory (RssAnon): the kernel drops them under pressure and every DataLoader worker and
every DDP rank on a node shares them. Random access by (clip, frame) is what the
step-derived sampler needs (``dataset.StepBatchSampler``: any window of any clip at any
step), which streaming formats (WebDataset, mosaicml-streaming, litdata) trade for
sequential shard reads and their own shuffle order, so a resumed run would not see
the batches an uninterrupted one sees. pyarrow is already pinned; nothing new to install.
Files are uncompressed: a compressed IPC buffer must be decompressed into anonymous memory.

Packs are derived data: the per-clip tables stay the record of each step. A clip's record
batch records its tables' (mtime, size); a rerun of the job copies the record batch of
every clip whose tables and options are unchanged from the old pack and re-reads only the
others (``kept`` / ``ran`` in the index, as in the other shard jobs; a clip refused before
is asked again, which costs a footer read when its step had failed). The new pack is
written beside the old one and replaces it at the end, so a killed job redoes its shard
(about a minute for 1000 clips), never leaves a pack its index does not describe: the
index names the pack's ``pack_id`` (stored in the pack's schema metadata) and a mismatch
is refused. A clip that cannot be packed gets a reasoned ``skipped`` row (a step failed,
tables disagree: ``clip_arrays.ClipError``) or a ``failed`` row (an unexpected error, retried
by the next run); neither stops the shard.

Inference reads packs too (ksdiff.infer.Predictor): a test clip's arrays, its anchor and the identity
template every prediction carries (11 kB of float64 a clip: about 6% of a log-mel pack).

Word tokens are not packed: they depend on the model's tokeniser (phones or words hashed
into ``vocab_size``), so the transcript's words and times are, and ``tokenize`` runs on
the clip's words when a window is cut (tens of microseconds for a few dozen words).
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

from ksdiff.data import clip_arrays as ca
from ksdiff.data.pack_reader import open_pack, pack_file
from ksdiff.data.shards import ERROR, KEPT, RAN, options_hash
from ksdiff.io import parquet, schemas
from ksdiff.io.files import atomic_path
from ksdiff.stage_config import stage_options

log = logging.getLogger(__name__)

INPUT_FOLDERS = ("coeffs", "features", "transcripts")  # the per-clip tables a clip's arrays are made of


def clip_batch(c: ca.ClipArrays, words: list[str], start_s, end_s, inputs: str = "") -> pa.RecordBatch:
    """One clip's arrays (``load_clip`` without tokens) and transcript as a one-row record batch."""
    r = len(c.feat) // max(c.n_frames, 1)

    def flat(a, t):
        a = np.ascontiguousarray(a).reshape(-1)
        return pa.LargeListArray.from_arrays(pa.array([0, len(a)], pa.int64()), pa.array(a, type=t))

    coeffs_attrs = {k: v for k, v in c.coeffs_attrs.items() if k != "template"}
    template = np.asarray(c.coeffs_attrs.get("template", []), np.float64)  # binary: 11 kB a clip, not 15 of JSON
    cols = {
        "clip_id": pa.array([c.clip_id]),
        "n_frames": pa.array([c.n_frames], pa.int32()),
        "r": pa.array([r], pa.int32()),
        "expr_dim": pa.array([c.expr.shape[1]], pa.int32()),
        "feat_dim": pa.array([c.feat.shape[1]], pa.int32()),
        "head": flat(c.head.astype(np.float32, copy=False), pa.float32()),
        "expr": flat(c.expr.astype(np.float32, copy=False), pa.float32()),
        "valid": flat(c.valid.astype(bool, copy=False), pa.bool_()),
        "feat": flat(c.feat.astype(np.float32, copy=False), pa.float32()),
        "feat_valid": flat(c.feat_valid.astype(bool, copy=False), pa.bool_()),
        "prosody": flat(c.prosody.astype(np.float32, copy=False), pa.float32()),
        "words": pa.array([[str(w) for w in words]], pa.list_(pa.string())),
        "word_start_s": pa.array([np.asarray(start_s, np.float64)], pa.list_(pa.float64())),
        "word_end_s": pa.array([np.asarray(end_s, np.float64)], pa.list_(pa.float64())),
        "anchor": pa.array([json.dumps(c.anchor.to_dict())]),
        "coeffs_attrs": pa.array([json.dumps(coeffs_attrs, sort_keys=True, default=str)]),
        "template": flat(template, pa.float64()),
        "feat_attrs": pa.array([json.dumps(c.feat_attrs, sort_keys=True, default=str)]),
        "inputs": pa.array([inputs]),
    }
    return pa.RecordBatch.from_arrays([cols[f.name] for f in schemas.PACK], schema=schemas.PACK)


def inputs_signature(results: Path, clip: str) -> str:
    """(mtime_ns, size) of the clip's input tables; a missing one is [0, 0]. A pack's record of a clip is
    current while this equals its ``inputs`` column (stat calls only, nothing read)."""
    sig = []
    for folder in INPUT_FOLDERS:
        try:
            st = ca.clip_path(results, folder, clip).stat()
            sig.append([st.st_mtime_ns, st.st_size])
        except OSError:
            sig.append([0, 0])
    return json.dumps(sig)


def _read_clip(results: Path, clip: str, fps: float, inputs: str) -> pa.RecordBatch:
    c = ca.load_clip(results, clip, fps)  # raises ClipError with the reason
    tt = parquet.read_table(ca.clip_path(results, "transcripts", clip), "transcript")
    return clip_batch(c, tt.table.column("word").to_pylist(), tt.column("start_s"), tt.column("end_s"), inputs)


def _info_row(b: pa.RecordBatch) -> dict:
    fa = json.loads(b.column("feat_attrs")[0].as_py())
    return {"n_frames": b.column("n_frames")[0].as_py(), "expr_dim": b.column("expr_dim")[0].as_py(),
            "feat_dim": b.column("feat_dim")[0].as_py(), "feature_kind": fa.get("kind"),
            "feat_rate_hz": float(fa.get("rate_hz", 0.0)),
            "feature_checkpoint": json.dumps(fa.get("checkpoint") or "", sort_keys=True)}


def _old_pack(path: Path, opts_hash: str):
    """({clip: (record batch, inputs)}, reader) of the pack already at ``path`` when it was made with the same
    options, else ({}, None). Read from the pack itself: Snakemake removes a job's declared output (the
    index) before it runs, the pack beside it stays."""
    try:
        reader = open_pack(path)
    except (OSError, pa.ArrowInvalid, ca.ClipError):
        return {}, None
    if (reader.schema.metadata or {}).get(b"options_hash", b"").decode() != opts_hash:
        return {}, None
    old = {}
    for j in range(reader.num_record_batches):
        b = reader.get_batch(j)
        old[b.column("clip_id")[0].as_py()] = (j, b.column("inputs")[0].as_py())
    return old, reader


def pack_shard(cfg: dict, manifest: str, results: str, out: str) -> int:
    """`ksdiff pack`: pack one shard's clips (its ``manifest`` part) -> ``out`` (index) + its .arrow pack."""
    results_p, out_p = Path(results), Path(out)
    fps = float(cfg["fps"])
    opts_hash = options_hash(stage_options(cfg, "pack"), "pack")
    clips = parquet.read_table(manifest, "manifest").table.column("clip_id").to_pylist()
    old, old_reader = _old_pack(pack_file(out_p), opts_hash)
    pack_id = uuid.uuid4().hex
    schema = schemas.PACK.with_metadata({"pack_id": pack_id, "options_hash": opts_hash})
    rows, counts, t0, n_written = [], {RAN: 0, KEPT: 0, ERROR: 0}, time.perf_counter(), 0
    empty = {"batch": -1, "n_frames": 0, "expr_dim": 0, "feat_dim": 0, "feature_kind": "", "feat_rate_hz": 0.0,
             "feature_checkpoint": ""}
    with atomic_path(pack_file(out_p)) as tmp, pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        for i, clip in enumerate(clips, 1):
            t = time.perf_counter()
            sig = inputs_signature(results_p, clip)
            prev = old.get(clip)
            batch, row = None, {"clip_id": clip, "inputs": sig, **empty}
            if prev is not None and prev[1] == sig:
                action = KEPT
                batch = old_reader.get_batch(prev[0])
            else:
                action = RAN
                try:
                    batch = _read_clip(results_p, clip, fps, sig)
                except ca.ClipError as e:  # a reasoned refusal (a step failed, tables disagree), recorded
                    row.update(status=parquet.SKIPPED, reason=str(e))
                except MemoryError:
                    raise
                except Exception as e:  # one bad clip never stops its shard; retried by the next run
                    log.exception("pack %s: %s", clip, e)
                    action = ERROR
                    row.update(status=parquet.FAILED, reason=f"pack error: {type(e).__name__}: {e}", inputs="")
            if batch is not None:
                row.update(status=parquet.OK, reason="", batch=n_written, **_info_row(batch))
                w.write_batch(batch.replace_schema_metadata(None))
                n_written += 1
            counts[action] += 1
            row.update(action=action, seconds=time.perf_counter() - t)
            rows.append(row)
            log.info("pack shard %s [%d/%d] %s: %s %s%s (%.2f s)", out_p.stem, i, len(clips), clip, action,
                     row["status"], f" ({row['reason']})" if row["reason"] else "", row["seconds"])
    total = time.perf_counter() - t0
    cols = {f.name: [r[f.name] for r in rows] for f in schemas.PACK_INDEX}
    parquet.write_table(out_p, "pack_index", cols, attrs={
        "stage": "pack", "shard": out_p.stem, "pack": pack_file(out_p).name, "pack_id": pack_id,
        "pack_bytes": pack_file(out_p).stat().st_size, "options_hash": opts_hash, "seconds": total, **counts})
    n_ok = sum(r["status"] == parquet.OK for r in rows)
    log.info("pack shard %s: %d of %d clips packed (%d ran, %d kept, %d errors) in %.1f s", out_p.stem, n_ok,
             len(rows), counts[RAN], counts[KEPT], counts[ERROR], total)
    return 0
