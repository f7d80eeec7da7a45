"""Training windows cut from packs on demand: the packed form of ``dataset.WindowDataset``.

Nothing per clip is held but its pack, record batch and length, so a training process's memory does not
grow with the dataset; a batch's byte ranges are asked for together (``PackedWindowDataset.__getitems__``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
from torch.utils.data import Dataset

from ksdiff.data import clip_arrays as ca
from ksdiff.data.pack_reader import (PACK_DIR, PackSet, pack_indexes, read_indexes, window_arrays, window_slices,
                                     window_tokens)

log = logging.getLogger(__name__)


class PackedClip:
    """A clip of a PackedWindowDataset: id and length at once, its normalised arrays (a
    ``clip_arrays.NormClip``) built on first use and held by this object only."""

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
    them with ``clip_arrays.cut_window``. Nothing per clip is held but its pack, record
    batch and length (about 16 bytes), so memory does not grow with the dataset.
    """

    def __init__(self, packs: PackSet, stats: ca.Stats, r: int, window: int, n_prev: int, fps: float,
                 tokenize=None):
        if len(packs) == 0:
            raise ca.ClipError("no clips to cut windows from")
        self.packs, self.stats, self.r = packs, stats, int(r)
        self.window, self.n_prev, self.fps, self.tokenize = int(window), int(n_prev), float(fps), tokenize
        self.clips = PackedClips(self)

    def __len__(self) -> int:
        return len(self.packs)

    def lengths(self) -> np.ndarray:
        return self.packs.n_frames

    def clip_ids(self) -> list[str]:
        return self.packs.clip_ids.to_pylist()

    def _norm(self, b: pa.RecordBatch, clip_id: str, lo: int, hi: int, words: np.ndarray) -> ca.NormClip:
        r = b.column("r")[0].as_py()
        if r != self.r:
            raise ca.ClipError(f"clip {clip_id}: {r} feature frames per motion frame, the dataset has {self.r}")
        a = window_arrays(b, lo, hi)
        # prosody is not normalised: copied, so that no view of the read-only map reaches torch
        return ca.normalise_clip(ca.ClipArrays(clip_id, a["head"], a["expr"], a["valid"], a["feat"], a["feat_valid"],
                                               a["prosody"].copy(), words, None, {}, {}), self.stats, self.r)

    def norm_clip(self, i: int) -> ca.NormClip:
        """Clip ``i`` whole, normalised (validation samples whole clips)."""
        b = self.packs.record(i, whole=True)
        n = int(self.packs.n_frames[i])
        return self._norm(b, self.packs.clip_id(i), 0, n, window_tokens(b, n, self.fps, self.tokenize))

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
        words = window_tokens(b, end, self.fps, self.tokenize, lo)
        item = ca.cut_window(self._norm(b, clip_id, lo, end, words), start - lo, self.window, self.n_prev)
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
            cols = window_slices(b, lo, end)
            self.packs.mapped(i).prefetch([a for a, _ in cols.values()]
                                          + [b.column(c).flatten() for c in ("word_start_s", "word_end_s")])
            todo.append((i, start, lo, end, b))
        return [self._cut(*t) for t in todo]


def window_datasets(results: str | Path, stats: ca.Stats, window: int, n_prev: int, fps: float, tokenize=None):
    """(train, val, info): the usable training and validation clips of results/{dataset}'s packs as window
    datasets (val None when there is none; clips not packed are logged with their reason and left out)
    and the training clips' feature kind/dim/rate/checkpoint and expr_dim (``clip_arrays.check_consistent``).
    Reads the qc and splits tables and the packs' indexes, nothing per clip."""
    results = Path(results)
    indexes = pack_indexes(results)
    if not indexes:
        raise FileNotFoundError(f"{results / PACK_DIR}: no training packs: run `ksdiff pack` for every shard")
    table = read_indexes(indexes)
    train = PackSet(indexes, ca.usable_clips(results, "train"), table)
    info = train.info()
    r = ca.feat_per_frame(info["feat_rate_hz"], fps)
    val_packs = PackSet(indexes, ca.usable_clips(results, "val"), table)
    val = None
    if len(val_packs):
        vinfo = val_packs.info()
        if vinfo != info:
            raise ca.ClipError(f"val clips differ from train clips: {vinfo} vs {info}")
        val = PackedWindowDataset(val_packs, stats, r, window, n_prev, fps, tokenize)
    else:
        log.warning("no usable validation clips: validation loss will not be computed")
    return PackedWindowDataset(train, stats, r, window, n_prev, fps, tokenize), val, info
