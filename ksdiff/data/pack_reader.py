"""Reading training packs: clips found from the packs' indexes, their record batches read from memory maps.

A pack (``results/{dataset}/packs/{shard}.arrow``, written by ``ksdiff pack``: ksdiff.data.packs) holds one
record batch per clip; its index (``{shard}.parquet``) says where each clip is and why one is not there.

Start-up reads the indexes only (a few kB per 1000 clips); a pack file is opened (its
footer) the first time one of its clips is read. Packs are mapped with Python's mmap and
their file descriptors closed at once, so 1,100 shards (VoxCeleb2) do not hold 1,100 open
files. Cutting a window is a footer lookup plus slicing columns: zero copy, and the bytes are
page cache, not the process's anonymous memory (RssAnon).

Used by training (ksdiff.data.pack_windows), the statistics job and inference (ksdiff.infer).
"""
from __future__ import annotations

import json
import logging
import mmap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ksdiff.data import clip_arrays as ca
from ksdiff.data import motion as motion_mod
from ksdiff.io import parquet, schemas

log = logging.getLogger(__name__)

PACK_DIR = "packs"
_INFO_COLUMNS = ("feature_kind", "feat_dim", "feat_rate_hz", "feature_checkpoint", "expr_dim")  # one value per dataset


def pack_file(index: str | Path) -> Path:
    """The pack (.arrow) an index (.parquet) describes: same folder, same stem."""
    return Path(index).with_suffix(".arrow")


def pack_indexes(results: str | Path) -> list[Path]:
    """The pack indexes of results/{dataset}, in shard order."""
    return sorted((Path(results) / PACK_DIR).glob("*.parquet"))


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
                raise ca.ClipError(f"{path}: empty pack")
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
            raise ca.ClipError(f"{path}: pack {got!r} is not the one its index describes ({pack_id!r}): "
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
        """What ``clip_arrays.check_consistent`` returns, from the indexes (ClipError when clips disagree)."""
        if len(self) == 0:
            raise ca.ClipError("no usable clips")
        keys = self._info.group_by(list(_INFO_COLUMNS)).aggregate([]).to_pylist()
        if len(keys) > 1:
            raise ca.ClipError(f"clips disagree in feature kind/dim/rate/checkpoint or n_expr: {keys}")
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

    def clip(self, i: int, fps: float = 0.0, tokenize=None) -> ca.ClipArrays:
        """Clip ``i`` as ``load_clip`` returns it (tokens from ``tokenize``, or zeros when None)."""
        return record_arrays(self.record(i, whole=True), fps, tokenize)


def window_slices(b: pa.RecordBatch, lo: int, hi: int) -> dict:
    """The columns' values for motion frames [lo, hi) of a clip's record batch (and its feature frames), as
    flat Arrow slices of the map, with the row widths: {name: (slice, width or None for a mask)}."""
    r, k, d = (b.column(n)[0].as_py() for n in ("r", "expr_dim", "feat_dim"))

    def rows(name, a, z, w=None):  # w None: one value per frame (a mask)
        return b.column(name).flatten().slice(a * (w or 1), (z - a) * (w or 1)), w

    return {"head": rows("head", lo, hi, 6), "expr": rows("expr", lo, hi, k), "valid": rows("valid", lo, hi),
            "feat": rows("feat", lo * r, hi * r, d), "feat_valid": rows("feat_valid", lo * r, hi * r),
            "prosody": rows("prosody", lo * r, hi * r, 2)}


def window_arrays(b: pa.RecordBatch, lo: int, hi: int) -> dict:
    """Raw arrays of motion frames [lo, hi) of a clip's record batch (and its feature frames)."""
    out = {}
    for name, (a, w) in window_slices(b, lo, hi).items():
        out[name] = _np(a) if w is None else _np(a).reshape(-1, w)
    return out


def window_tokens(b: pa.RecordBatch, n: int, fps: float, tokenize, lo: int = 0) -> np.ndarray:
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


def record_arrays(b: pa.RecordBatch, fps: float, tokenize=None) -> ca.ClipArrays:
    """A clip's record batch -> the ClipArrays ``load_clip`` built from its tables."""
    n = b.column("n_frames")[0].as_py()
    a = {k: np.array(v) for k, v in window_arrays(b, 0, n).items()}  # writable copies: the caller owns them
    return ca.ClipArrays(b.column("clip_id")[0].as_py(), a["head"], a["expr"], a["valid"], a["feat"], a["feat_valid"],
                         a["prosody"], window_tokens(b, n, fps, tokenize),
                         motion_mod.Anchor.from_dict(json.loads(b.column("anchor")[0].as_py())),
                         json.loads(b.column("coeffs_attrs")[0].as_py()), json.loads(b.column("feat_attrs")[0].as_py()))
