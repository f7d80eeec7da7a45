"""What training reads: the usable train/val clips (``prepare_data``) and each process's share of a step.

``prepare_data`` is the one place training loads data; swapping the clip source (the shards' memory-mapped
packs, ksdiff.data.pack_windows) changes this function only. Every step's global batch comes from ``ksdiff.data.dataset.StepBatchSampler``
((seed, step) -> windows); ``RankSlice`` gives one torchrun process its contiguous share of it, and
``ChunkCollate`` pads that share as ``n`` micro-batches (see ksdiff.training.loop on why micro-batches).
"""
from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler

from ksdiff.data import clip_arrays as ca
from ksdiff.data import dataset as ds
from ksdiff.data import motion
from ksdiff.data.pack_windows import window_datasets

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    train: ds.WindowDataset
    val: ds.WindowDataset | None
    stats: ca.Stats
    info: dict  # feature kind/dim/rate/checkpoint, expr_dim (see clip_arrays.check_consistent)
    basis: dict


def read_basis(results: Path) -> dict:
    """The expression basis (results/basis.npz), stored in the model so `generate` needs nothing else.

    Numeric arrays become tensors, string arrays lists (both load with weights_only=True);
    ``sha256`` records which file it was.
    """
    p = results / "basis.npz"
    if not p.exists():
        log.warning("%s not found: the model will not carry an expression basis (generate will refuse it)", p)
        return {}
    raw = p.read_bytes()
    out: dict = {"sha256": hashlib.sha256(raw).hexdigest()}
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        for k in z.files:
            a = np.array(z[k])
            out[k] = a.tolist() if a.dtype.kind in "US" else torch.from_numpy(a)
    return out


def prepare_data(cfg: dict, results: Path, window: int, n_prev: int, tokenize) -> TrainData:
    """Load the usable train/val clips (transcripts as ``tokenize`` makes them), check them against the
    stats, normalise them."""
    fps = float(cfg["fps"])
    stats_path = results / "stats.parquet"
    if not stats_path.exists():
        raise FileNotFoundError(f"{stats_path} missing: run `ksdiff stats` first")
    stats = ca.Stats.read(stats_path)
    train, val, info = window_datasets(results, stats, window, n_prev, fps, tokenize)  # read from the packs
    for key in ("feature_kind", "feat_dim", "expr_dim", "feature_checkpoint"):
        if key in stats.attrs and stats.attrs[key] != info[key]:
            raise ca.ClipError(f"stats were computed with {key}={stats.attrs[key]!r} but the clips have "
                               f"{info[key]!r}: rerun `ksdiff stats`")
    if stats.attrs.get("representation", motion.REPRESENTATION) != motion.REPRESENTATION:
        raise ca.ClipError("stats use another motion representation: rerun `ksdiff stats`")
    return TrainData(train, val, stats, info, read_basis(results))


class RankSlice(Sampler):
    """Items ``lo:hi`` of every batch of ``sampler``: one process's disjoint share of each step's global
    batch, so the global batch (and with it the learning-rate schedule) does not depend on the process count."""

    def __init__(self, sampler, lo: int, hi: int):
        self.sampler, self.lo, self.hi = sampler, lo, hi

    def __iter__(self):
        for batch in self.sampler:
            yield batch[self.lo: self.hi]

    def __len__(self) -> int:
        return len(self.sampler)


class ChunkCollate:
    """Windows -> a list of micro-batches of ``size`` windows, each padded on its own (``dataset.collate``),
    so a micro-batch's tensors do not depend on which other windows share its process."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, items: list[dict]) -> list[dict]:
        return [ds.collate(items[i: i + self.size]) for i in range(0, len(items), self.size)]
