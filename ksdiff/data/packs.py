"""Training packs: a shard's clips as training-ready arrays, memory-mapped, windows cut on demand.

``ksdiff pack`` (one job per shard) reads each clip's coeffs, features and transcript
tables once, builds the aligned arrays ``dataset.load_clip`` builds, and writes them into
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

Start-up reads the indexes only (a few kB per 1000 clips); a pack file is opened (its
footer) the first time one of its clips is read. Packs are mapped with Python's mmap and
their file descriptors closed at once, so 1,100 shards (VoxCeleb2) do not hold 1,100 open
files.

Packs are derived data: the per-clip tables stay the record of each step. A clip's record
batch records its tables' (mtime, size); a rerun of the job copies the record batch of
every clip whose tables and options are unchanged from the old pack and re-reads only the
others (``kept`` / ``ran`` in the index, as in the other shard jobs; a clip refused before
is asked again, which costs a footer read when its step had failed). The new pack is
written beside the old one and replaces it at the end, so a killed job redoes its shard
(about a minute for 1000 clips), never leaves a pack its index does not describe: the
index names the pack's ``pack_id`` (stored in the pack's schema metadata) and a mismatch
is refused. A clip that cannot be packed gets a reasoned ``skipped`` row (a step failed,
tables disagree: ``dataset.ClipError``) or a ``failed`` row (an unexpected error, retried
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
import mmap
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from torch.utils.data import Dataset

from ksdiff.data import dataset as ds
from ksdiff.data import motion as motion_mod
from ksdiff.data.shards import ERROR, KEPT, RAN, options_hash
from ksdiff.io import parquet, schemas
from ksdiff.io.files import atomic_path
from ksdiff.stage_config import stage_options

log = logging.getLogger(__name__)

PACK_DIR = "packs"
INPUT_FOLDERS = ("coeffs", "features", "transcripts")  # the per-clip tables a clip's arrays are made of
_INFO_COLUMNS = ("feature_kind", "feat_dim", "feat_rate_hz", "feature_checkpoint", "expr_dim")


def pack_file(index: str | Path) -> Path:
    """The pack (.arrow) an index (.parquet) describes: same folder, same stem."""
    return Path(index).with_suffix(".arrow")


# ---------------------------------------------------------------------------- writing


def clip_batch(c: ds.ClipArrays, words: list[str], start_s, end_s, inputs: str = "") -> pa.RecordBatch:
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
            st = ds.clip_path(results, folder, clip).stat()
            sig.append([st.st_mtime_ns, st.st_size])
        except OSError:
            sig.append([0, 0])
    return json.dumps(sig)


def _read_clip(results: Path, clip: str, fps: float, inputs: str) -> pa.RecordBatch:
    c = ds.load_clip(results, clip, fps)  # raises ClipError with the reason
    tt = parquet.read_table(ds.clip_path(results, "transcripts", clip), "transcript")
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
    except (OSError, pa.ArrowInvalid, ds.ClipError):
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
                except ds.ClipError as e:  # a reasoned refusal (a step failed, tables disagree), recorded
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


# ---------------------------------------------------------------------------- reading


class StalePackError(RuntimeError):
    """A clip's tables changed after its pack was written: its record batch is not what they hold now."""


class MappedPack:
    """A pack's reader over a read-only memory map (the file descriptor is closed at once), and the map's
    paging: random access, and the byte ranges a window will read asked for ahead (:meth:`prefetch`).

    Why. A page fault on a file map reads ahead around it, as much as the device's read-ahead (8 MB on
    this machine's disk: /sys/block/*/queue/read_ahead_kb), for a window that needs a few hundred kB: one
    cold window cost 18.5 ms of mostly useless reading (benchmarks/README.md, "Training at scale").
    MADV_RANDOM stops that; MADV_WILLNEED on the window's exact ranges then reads what it needs, all its
    ranges (and a batch's windows) queued at once rather than one fault after another.
    """

    ADVICE = mmap.MADV_RANDOM  # benchmarks/bench_train_scale.py sets MADV_NORMAL to measure the loader without it

    def __init__(self, path: str | Path, pack_id: str | None = None):
        path = Path(path)
        with open(path, "rb") as f:
            if path.stat().st_size == 0:
                raise ds.ClipError(f"{path}: empty pack")
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.map.madvise(self.ADVICE)
        # The footer (the batches' offsets, read at open) in one request, not a fault per page: an IPC file
        # ends with the footer, its int32 length and the 6-byte magic.
        size = len(self.map)
        if size > 10:
            footer = int.from_bytes(self.map[size - 10:size - 6], "little")
            lo = max(size - 10 - footer, 0)
            self.map.madvise(mmap.MADV_WILLNEED, lo - lo % mmap.PAGESIZE, size - (lo - lo % mmap.PAGESIZE))
        buf = pa.py_buffer(self.map)
        self.base, self.size = buf.address, buf.size
        self.reader = pa.ipc.open_file(buf)
        got = (self.reader.schema.metadata or {}).get(b"pack_id", b"").decode()
        if pack_id is not None and got != pack_id:
            raise ds.ClipError(f"{path}: pack {got!r} is not the one its index describes ({pack_id!r}): "
                               "rerun `ksdiff pack`")

    def prefetch(self, arrays: Sequence[pa.Array]) -> None:
        """Ask the kernel to read the bytes of ``arrays`` (slices of this pack's columns) in the background."""
        for a in arrays:
            data = a.buffers()[-1]  # the values (a list's child, flattened and sliced)
            if data is None or len(a) == 0 or not (pa.types.is_primitive(a.type)):
                continue  # strings (ids, JSON) are a few bytes beside the batch's header, read with it
            width = a.type.bit_width
            lo = data.address - self.base + (a.offset * width) // 8
            hi = data.address - self.base + -(-(a.offset + len(a)) * width // 8)
            if 0 <= lo < hi <= self.size:  # a buffer outside the map is not the pack's (never expected)
                lo -= lo % mmap.PAGESIZE
                self.map.madvise(mmap.MADV_WILLNEED, lo, hi - lo)


def open_pack(path: str | Path, pack_id: str | None = None) -> pa.ipc.RecordBatchFileReader:
    """A pack's reader over a read-only memory map (see MappedPack)."""
    return MappedPack(path, pack_id).reader


def _np(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=not pa.types.is_boolean(arr.type))


_INDEX_COLUMNS = ["clip_id", "status", "reason", "batch", "n_frames", *_INFO_COLUMNS]


def read_indexes(indexes: Sequence[str | Path]) -> pa.Table:
    """The rows of pack indexes that locating and checking clips needs, with a ``pack`` column (position
    in ``indexes``) and the packs' ids in the schema metadata (``pack_ids``, comma-separated)."""
    tables, ids = [], []
    for k, p in enumerate(indexes):
        t = pq.read_table(p, columns=_INDEX_COLUMNS)
        md = t.schema.metadata or {}
        if md.get(b"ksdiff.table", b"").decode() != "pack_index" or \
                int(md.get(b"ksdiff.version", b"0")) != schemas.VERSIONS["pack_index"]:
            raise parquet.SchemaError(f"{p}: not a pack index of version {schemas.VERSIONS['pack_index']}: "
                                      "rerun `ksdiff pack`")
        ids.append(json.loads(md.get(b"ksdiff.attrs", b"{}").decode()).get("pack_id") or "")
        tables.append(t.replace_schema_metadata(None).append_column("pack", pa.array(np.full(t.num_rows, k, np.int32))))
    empty = pa.schema([schemas.PACK_INDEX.field(c) for c in _INDEX_COLUMNS] + [("pack", pa.int32())]).empty_table()
    return pa.concat_tables(tables or [empty]).replace_schema_metadata({"pack_ids": ",".join(ids)})


class PackSet:
    """Clips of many packs, found from their indexes alone; a clip's record batch is read on demand.

    ``indexes``: the packs' index files (results/{dataset}/packs/{shard}.parquet).
    ``select``: clip ids to use, in this order (e.g. the usable training clips); ids that
    are not packed are left out and logged with the reason their index gives. None: every
    packed clip, in index order. ``table``: ``read_indexes(indexes)`` when already read.
    """

    def __init__(self, indexes: Sequence[str | Path], select: Sequence[str] | None = None,
                 table: pa.Table | None = None):
        self.indexes = [Path(p) for p in indexes]
        if table is None:
            table = read_indexes(self.indexes)
        self._pack_ids = table.schema.metadata[b"pack_ids"].decode().split(",") if self.indexes else []
        ok = table.filter(pc.equal(table.column("status"), parquet.OK))
        if select is None:
            chosen = ok
        else:
            sel = pa.array(list(select), pa.string())
            pos = pc.index_in(sel, value_set=ok.column("clip_id"))
            missing = pc.is_null(pos)
            if pc.any(missing).as_py():
                self._log_missing(sel.filter(missing), table)
            chosen = ok.take(pos.filter(pc.invert(missing)))
        self.clip_ids = chosen.column("clip_id").combine_chunks()
        self.pack = chosen.column("pack").to_numpy().astype(np.int32)
        self.batch = chosen.column("batch").to_numpy().astype(np.int32)
        self.n_frames = chosen.column("n_frames").to_numpy().astype(np.int64)
        self._info = chosen.select(list(_INFO_COLUMNS))
        self._maps: dict[int, MappedPack] = {}

    @staticmethod
    def _log_missing(ids: pa.Array, table: pa.Table) -> None:
        pos = pc.index_in(ids, value_set=table.column("clip_id"))
        found = table.take(pos.fill_null(0)).select(["status", "reason"]).to_pylist()
        for c, p, row in zip(ids.to_pylist(), pos.to_pylist(), found):
            if p is None:
                log.warning("clip %s left out: not in any pack (rerun `ksdiff pack` for its shard)", c)
            else:
                log.warning("clip %s left out: %s: %s", c, row["status"], row["reason"])

    def __len__(self) -> int:
        return len(self.n_frames)

    def __getstate__(self):  # DataLoader workers under spawn: reopen their own maps
        return {**self.__dict__, "_maps": {}}

    def info(self) -> dict:
        """What ``dataset.check_consistent`` returns, from the indexes (ClipError when clips disagree)."""
        if len(self) == 0:
            raise ds.ClipError("no usable clips")
        keys = self._info.group_by(list(_INFO_COLUMNS)).aggregate([]).to_pylist()
        if len(keys) > 1:
            raise ds.ClipError(f"clips disagree in feature kind/dim/rate/checkpoint or n_expr: {keys}")
        k = keys[0]
        return {"feature_kind": k["feature_kind"], "feat_dim": int(k["feat_dim"]),
                "feat_rate_hz": float(k["feat_rate_hz"]), "feature_checkpoint": json.loads(k["feature_checkpoint"]),
                "expr_dim": int(k["expr_dim"])}

    def mapped(self, i: int) -> MappedPack:
        """The mapped pack that holds clip ``i`` (opened on first use)."""
        k = int(self.pack[i])
        m = self._maps.get(k)
        if m is None:
            m = self._maps[k] = MappedPack(pack_file(self.indexes[k]), self._pack_ids[k])
        return m

    def record(self, i: int, whole: bool = False) -> pa.RecordBatch:
        """Clip ``i``'s record batch (zero copy from the map). ``whole``: every array of it will be read (a clip
        predicted or validated whole), so all of them are asked for at once (MappedPack.prefetch)."""
        m = self.mapped(i)
        b = m.reader.get_batch(int(self.batch[i]))
        if whole:
            m.prefetch([c.flatten() if pa.types.is_list(c.type) or pa.types.is_large_list(c.type) else c
                        for c in b.columns])
        return b

    def clip_id(self, i: int) -> str:
        return self.clip_ids[i].as_py()

    def clip(self, i: int, fps: float = 0.0, tokenize=None) -> ds.ClipArrays:
        """Clip ``i`` as ``load_clip`` returns it (tokens from ``tokenize``, or zeros when None)."""
        return clip_arrays(self.record(i, whole=True), fps, tokenize)


def _window_slices(b: pa.RecordBatch, lo: int, hi: int) -> dict:
    """The columns' values for motion frames [lo, hi) of a clip's record batch (and its feature frames), as
    flat Arrow slices of the map, with the row widths: {name: (slice, width or None for a mask)}."""
    r, k, d = (b.column(n)[0].as_py() for n in ("r", "expr_dim", "feat_dim"))

    def rows(name, a, z, w=None):  # w None: one value per frame (a mask)
        return b.column(name).flatten().slice(a * (w or 1), (z - a) * (w or 1)), w

    return {"head": rows("head", lo, hi, 6), "expr": rows("expr", lo, hi, k), "valid": rows("valid", lo, hi),
            "feat": rows("feat", lo * r, hi * r, d), "feat_valid": rows("feat_valid", lo * r, hi * r),
            "prosody": rows("prosody", lo * r, hi * r, 2), "r": (r, None)}


def _window_arrays(b: pa.RecordBatch, lo: int, hi: int) -> dict:
    """Raw arrays of motion frames [lo, hi) of a clip's record batch (and its feature frames)."""
    out = {}
    for name, (a, w) in _window_slices(b, lo, hi).items():
        out[name] = a if name == "r" else _np(a) if w is None else _np(a).reshape(-1, w)
    return out


def _tokens(b: pa.RecordBatch, n: int, fps: float, tokenize, lo: int = 0) -> np.ndarray:
    """Tokens of motion frames [lo, n) of a clip: ``tokenize`` over the words that overlap them only.

    A frame's token depends only on the words spanning its centre (ksdiff.models.transcript), so
    the others are left out (a window sees a few of a clip's words; tokenising all of them was
    most of a window's cost) and the frame grid stops at n: the same ids as tokenising the clip.
    """
    if tokenize is None:
        return np.zeros(n - lo, dtype=np.int64)
    start, end = _np(b.column("word_start_s").flatten()), _np(b.column("word_end_s").flatten())
    keep = np.flatnonzero((end > (lo - 1) / fps) & (start < (n + 1) / fps))  # a frame's margin either side
    words = b.column("words")[0].values.take(pa.array(keep, pa.int64())).to_pylist()
    return tokenize(words, start[keep], end[keep], n, fps)[lo:]


def template_of(b: pa.RecordBatch) -> list[list[float]] | None:
    """A clip's identity template as its coeffs table's attrs hold it ((478, 3) nested lists, the same floats),
    or None when the table had none."""
    t = _np(b.column("template").flatten())
    return t.reshape(-1, 3).tolist() if len(t) else None


def clip_arrays(b: pa.RecordBatch, fps: float, tokenize=None) -> ds.ClipArrays:
    """A clip's record batch -> the ClipArrays ``load_clip`` built from its tables."""
    n = b.column("n_frames")[0].as_py()
    a = {k: np.array(v) for k, v in _window_arrays(b, 0, n).items()}  # writable copies: the caller owns them
    return ds.ClipArrays(b.column("clip_id")[0].as_py(), a["head"], a["expr"], a["valid"], a["feat"], a["feat_valid"],
                         a["prosody"], _tokens(b, n, fps, tokenize),
                         motion_mod.Anchor.from_dict(json.loads(b.column("anchor")[0].as_py())),
                         json.loads(b.column("coeffs_attrs")[0].as_py()), json.loads(b.column("feat_attrs")[0].as_py()))


# ---------------------------------------------------------------------------- windows


class PackedClip:
    """A clip of a PackedWindowDataset: id and length at once, its normalised arrays (a
    ``dataset.NormClip``) built on first use and held by this object only."""

    def __init__(self, data: "PackedWindowDataset", i: int):
        self._data, self._i = data, i
        self.clip_id = data.packs.clip_id(i)
        self.r = data.r
        self.n_frames = int(data.packs.n_frames[i])

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        norm = self.__dict__.get("_norm")
        if norm is None:
            norm = self.__dict__["_norm"] = self._data.norm_clip(self._i)
        return getattr(norm, name)


class PackedClips(Sequence):
    """The dataset's clips as a sequence of PackedClip, made when indexed (nothing held)."""

    def __init__(self, data: "PackedWindowDataset"):
        self._data = data

    def __len__(self) -> int:
        return len(self._data.packs)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return PackedClip(self._data, i % len(self))


class PackedWindowDataset(Dataset):
    """``dataset.WindowDataset``'s windows, cut from memory-mapped packs on demand.

    Keys, lengths and window values are the in-memory dataset's: a window reads frames
    [start - n_prev, start + window) of its clip from the map, normalises only those
    (element-wise, so the same float32 values as normalising the whole clip) and cuts
    them with ``dataset.cut_window``. Nothing per clip is held but its pack, record
    batch and length (about 16 bytes), so memory does not grow with the dataset.
    """

    def __init__(self, packs: PackSet, stats: ds.Stats, r: int, window: int, n_prev: int, fps: float,
                 tokenize=None):
        if len(packs) == 0:
            raise ds.ClipError("no clips to cut windows from")
        self.packs, self.stats, self.r = packs, stats, int(r)
        self.window, self.n_prev, self.fps, self.tokenize = int(window), int(n_prev), float(fps), tokenize
        self.clips = PackedClips(self)

    def __len__(self) -> int:
        return len(self.packs)

    def lengths(self) -> np.ndarray:
        return self.packs.n_frames

    def clip_ids(self) -> list[str]:
        return self.packs.clip_ids.to_pylist()

    def _norm(self, b: pa.RecordBatch, clip_id: str, lo: int, hi: int, words: np.ndarray) -> ds.NormClip:
        a = _window_arrays(b, lo, hi)
        if a["r"] != self.r:
            raise ds.ClipError(f"clip {clip_id}: {a['r']} feature frames per motion frame, the dataset has {self.r}")
        # prosody is not normalised: copied, so that no view of the read-only map reaches torch
        return ds.normalise_clip(ds.ClipArrays(clip_id, a["head"], a["expr"], a["valid"], a["feat"], a["feat_valid"],
                                               a["prosody"].copy(), words, None, {}, {}), self.stats, self.r)

    def norm_clip(self, i: int) -> ds.NormClip:
        """Clip ``i`` whole, normalised (validation samples whole clips)."""
        b = self.packs.record(i, whole=True)
        n = int(self.packs.n_frames[i])
        return self._norm(b, self.packs.clip_id(i), 0, n, _tokens(b, n, self.fps, self.tokenize))

    def _span(self, key: tuple[int, int]) -> tuple[int, int, int, int]:
        """(clip, start, lo, end) of a window key: frames [lo, end) are read (n_prev frames before start)."""
        i, start = int(key[0]), int(key[1])
        n = int(self.packs.n_frames[i])
        end = min(start + self.window, n)
        if not 0 <= start < end:
            raise IndexError(f"window start {start} outside clip {self.packs.clip_id(i)} of {n} frames")
        return i, start, max(start - self.n_prev, 0), end

    def _cut(self, i: int, start: int, lo: int, end: int, b: pa.RecordBatch) -> dict:
        clip_id = self.packs.clip_id(i)
        words = _tokens(b, end, self.fps, self.tokenize, lo)
        item = ds.cut_window(self._norm(b, clip_id, lo, end, words), start - lo, self.window, self.n_prev)
        item["start"] = start
        return item

    def __getitem__(self, key: tuple[int, int]) -> dict:
        i, start, lo, end = self._span(key)
        return self._cut(i, start, lo, end, self.packs.record(i))

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> list[dict]:
        """A batch's windows (the DataLoader's fetcher calls this when it exists): every window's byte ranges
        asked for first (MappedPack.prefetch), then each window cut, so on cold pages the batch's reads are
        queued together instead of one page fault at a time. The same items as ``[self[k] for k in keys]``."""
        todo = []
        for key in keys:
            i, start, lo, end = self._span(key)
            b = self.packs.record(i)
            cols = _window_slices(b, lo, end)
            self.packs.mapped(i).prefetch([a for name, (a, _) in cols.items() if name != "r"]
                                          + [b.column(c).flatten() for c in ("word_start_s", "word_end_s")])
            todo.append((i, start, lo, end, b))
        return [self._cut(*t) for t in todo]


def pack_indexes(results: str | Path) -> list[Path]:
    """The pack indexes of results/{dataset}, in shard order."""
    return sorted((Path(results) / PACK_DIR).glob("*.parquet"))


def window_datasets(results: str | Path, stats: ds.Stats, window: int, n_prev: int, fps: float, tokenize=None):
    """(train, val, info): the usable training and validation clips of results/{dataset}'s packs as window
    datasets (val None when there is none; clips not packed are logged with their reason and left out)
    and the training clips' feature kind/dim/rate/checkpoint and expr_dim (``dataset.check_consistent``).
    Reads the qc and splits tables and the packs' indexes, nothing per clip."""
    results = Path(results)
    indexes = pack_indexes(results)
    if not indexes:
        raise FileNotFoundError(f"{results / PACK_DIR}: no training packs: run `ksdiff pack` for every shard")
    table = read_indexes(indexes)
    train = PackSet(indexes, ds.usable_clips(results, "train"), table)
    info = train.info()
    r = ds.feat_per_frame(info["feat_rate_hz"], fps)
    val_packs = PackSet(indexes, ds.usable_clips(results, "val"), table)
    val = None
    if len(val_packs):
        vinfo = val_packs.info()
        if vinfo != info:
            raise ds.ClipError(f"val clips differ from train clips: {vinfo} vs {info}")
        val = PackedWindowDataset(val_packs, stats, r, window, n_prev, fps, tokenize)
    else:
        log.warning("no usable validation clips: validation loss will not be computed")
    return PackedWindowDataset(train, stats, r, window, n_prev, fps, tokenize), val, info
