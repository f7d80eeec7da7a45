"""Normalisation statistics over the usable training clips -> the 'stats' table.

Rows: ``head`` and ``expr`` (over valid motion frames, in the representation of
ksdiff.data.motion), ``feat`` (over real speech-feature frames). Prosody needs no
row: ksdiff.models.prosody normalises F0 and energy per clip, so the contour is
kept and the speaker's pitch range and recording level are removed.

Expression coefficients share ONE scale, the RMS of their per-component standard
deviations (``POOL_EXPR_SCALE``), and keep a per-component mean. The basis is
orthonormal, so a squared coefficient error is a squared landmark error: with
one shared scale the training loss weighs each component by how much it moves
the face (lips first), as the lip metrics do. Per-component scaling would blow
the trailing components, a few thousandths of an inter-ocular distance of mostly
fit noise, up to unit variance: on the synthetic corpus the model then spent
itself on them and its lip error ended above the mean face's.

Only training clips enter, so validation and test data never shape the inputs.
A standard deviation below ``MIN_STD`` (a constant dimension, e.g. an unused
expression component) is raised to it so normalising cannot divide by zero.
"""
from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from ksdiff.data import dataset, motion
from ksdiff.io import parquet

log = logging.getLogger(__name__)

MIN_STD = 1e-4  # floor for constant dimensions; well below any real motion or feature spread
POOL_EXPR_SCALE = True  # one scale for all expression components (see module docstring); False: per component


class _Moments:
    """Mean and variance accumulated in float64 with Chan et al.'s parallel update."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return
        n_b, mean_b = len(x), x.mean(0)
        m2_b = ((x - mean_b) ** 2).sum(0)
        if self.mean is None:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / n
        self.m2 = self.m2 + m2_b + delta**2 * self.n * n_b / n
        self.n = n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        std = np.sqrt(self.m2 / max(self.n, 1))
        return self.mean.astype(np.float32), np.maximum(std, MIN_STD).astype(np.float32)


def compute_stats(clips: list[dataset.ClipArrays]) -> dataset.Stats:
    """Stats of already loaded clips (the training clips)."""
    info = dataset.check_consistent(clips)
    acc = {n: _Moments() for n in dataset.STATS_NAMES}
    for c in clips:
        acc["head"].add(c.head[c.valid])
        acc["expr"].add(c.expr[c.valid])
        acc["feat"].add(c.feat[c.feat_valid])
    mean, std = {}, {}
    for n, m in acc.items():
        if m.n == 0:
            raise dataset.ClipError(f"no valid {n} frames in the training clips")
        mean[n], std[n] = m.result()
    first = clips[0]
    # Pooling rests on the landmark basis being orthonormal; FLAME's expression (and jaw) values are not.
    pool = POOL_EXPR_SCALE and first.coeffs_attrs.get("backend", "landmarks") == "landmarks"
    if pool:
        std["expr"] = np.full_like(std["expr"], np.sqrt(np.mean(std["expr"].astype(np.float64) ** 2)))
    attrs = dict(info)
    attrs.update(
        representation=motion.REPRESENTATION,
        expr_scale="pooled" if pool else "per_component",
        head_names=list(motion.HEAD_NAMES),
        clips=[c.clip_id for c in clips],
        n_clips=len(clips),
        n_frames=int(acc["head"].n),
        n_feat_frames=int(acc["feat"].n),
        coeffs_backend=first.coeffs_attrs.get("backend", ""),
        basis=first.coeffs_attrs.get("basis", ""),
    )
    return dataset.Stats(mean, std, attrs)


def write_stats(path, stats: dataset.Stats) -> None:
    names = list(dataset.STATS_NAMES)
    parquet.write_table(path, "stats", {"name": names, "mean": [stats.mean[n] for n in names],
                                        "std": [stats.std[n] for n in names]}, attrs=stats.attrs)


def build_stats(cfg: dict, qc: str, splits: str, results: str, out: str) -> int:
    """`ksdiff stats`: mean/std of head, expr and speech features over usable training clips."""
    ids = dataset.usable_clips(results, "train", qc=qc, splits=splits)
    if not ids:
        raise dataset.ClipError("no usable training clips: see the QC table for the reasons")
    clips = []
    for c in tqdm(ids, desc="stats", unit="clip", disable=None):
        try:
            clips.append(dataset.load_clip(results, c, float(cfg["fps"])))
        except dataset.ClipError as e:
            log.warning("clip %s left out of the statistics: %s", c, e)
    stats = compute_stats(clips)
    write_stats(out, stats)
    log.info("stats over %d training clips (%d motion frames, %d feature frames) -> %s",
             len(clips), stats.attrs["n_frames"], stats.attrs["n_feat_frames"], out)
    return 0
