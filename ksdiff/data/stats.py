"""Normalisation statistics over the usable training clips -> the 'stats' table.

Rows: ``head`` and ``expr`` (over valid motion frames, in the representation of
ksdiff.data.motion), ``feat`` (over real speech-feature frames). Prosody needs no
row: ksdiff.data.clip_arrays.prosody_features normalises F0 and energy per clip, so the contour is
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
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ksdiff.data import clip_arrays as ca
from ksdiff.data import motion
from ksdiff.data.pack_reader import PackSet
from ksdiff.io import parquet

log = logging.getLogger(__name__)

MIN_STD = 1e-4  # floor for constant dimensions; well below any real motion or feature spread
POOL_EXPR_SCALE = True  # one scale for all expression components (see module docstring); False: per component


class _Moments:
    """Mean and variance accumulated in float64 with Chan et al.'s parallel update.

    ``merge`` is the same update between two accumulators, so per-shard moments merged in
    any order equal one pass over all clips up to float64 rounding (``stats_part`` /
    ``merge_stats``: the map-reduce form of ``build_stats``)."""

    def __init__(self, n: int = 0, mean=None, m2=None):
        self.n, self.mean, self.m2 = n, mean, m2

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return
        n_b, mean_b = len(x), x.mean(0)
        self.merge(_Moments(n_b, mean_b, ((x - mean_b) ** 2).sum(0)))

    def merge(self, other: "_Moments") -> None:
        if other.n == 0:
            return
        if self.mean is None or self.n == 0:
            self.n, self.mean, self.m2 = other.n, other.mean, other.m2
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean = self.mean + delta * other.n / n
        self.m2 = self.m2 + other.m2 + delta**2 * self.n * other.n / n
        self.n = n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        std = np.sqrt(self.m2 / max(self.n, 1))
        return self.mean.astype(np.float32), np.maximum(std, MIN_STD).astype(np.float32)


def partial_stats(clips: Iterable[ca.ClipArrays]) -> dict:
    """Moments of some training clips (one shard's, or all): what ``finish_stats`` merges."""
    acc = {n: _Moments() for n in ca.STATS_NAMES}
    ids, infos, first = [], [], None
    for c in clips:
        acc["head"].add(c.head[c.valid])
        acc["expr"].add(c.expr[c.valid])
        acc["feat"].add(c.feat[c.feat_valid])
        infos.append(c)
        if first is None:
            first = c
        ids.append(c.clip_id)
    info = ca.check_consistent(infos) if infos else None
    return {"moments": acc, "info": info, "clips": ids,
            "first": None if first is None else {"clip_id": first.clip_id, "coeffs_attrs": {
                k: first.coeffs_attrs[k] for k in ("backend", "basis") if k in first.coeffs_attrs}}}


def finish_stats(parts: list[dict]) -> ca.Stats:
    """Merge partial moments (e.g. one per shard) into the stats table's values."""
    acc = {n: _Moments() for n in ca.STATS_NAMES}
    infos = [p["info"] for p in parts if p["info"] is not None]
    if not infos:
        raise ca.ClipError("no usable clips")
    if any(i != infos[0] for i in infos):
        raise ca.ClipError(f"clips disagree in feature kind/dim/rate/checkpoint or n_expr: {infos}")
    for p in parts:
        for n in acc:
            acc[n].merge(p["moments"][n])
    mean, std = {}, {}
    for n, m in acc.items():
        if m.n == 0:
            raise ca.ClipError(f"no valid {n} frames in the training clips")
        mean[n], std[n] = m.result()
    first = min((p["first"] for p in parts if p["first"]), key=lambda f: f["clip_id"])["coeffs_attrs"]
    # Pooling rests on the landmark basis being orthonormal; FLAME's expression (and jaw) values are not.
    pool = POOL_EXPR_SCALE and first.get("backend", "landmarks") == "landmarks"
    if pool:
        std["expr"] = np.full_like(std["expr"], np.sqrt(np.mean(std["expr"].astype(np.float64) ** 2)))
    clips = sorted(c for p in parts for c in p["clips"])
    attrs = dict(infos[0])
    attrs.update(
        representation=motion.REPRESENTATION,
        expr_scale="pooled" if pool else "per_component",
        head_names=list(motion.HEAD_NAMES),
        clips=clips,
        n_clips=len(clips),
        n_frames=int(acc["head"].n),
        n_feat_frames=int(acc["feat"].n),
        coeffs_backend=first.get("backend", ""),
        basis=first.get("basis", ""),
    )
    return ca.Stats(mean, std, attrs)


def compute_stats(clips: list[ca.ClipArrays]) -> ca.Stats:
    """Stats of already loaded clips (the training clips)."""
    ca.check_consistent(clips)
    return finish_stats([partial_stats(clips)])


def write_stats(path, stats: ca.Stats) -> None:
    names = list(ca.STATS_NAMES)
    parquet.write_table(path, "stats", {"name": names, "mean": [stats.mean[n] for n in names],
                                        "std": [stats.std[n] for n in names]}, attrs=stats.attrs)


def build_stats(cfg: dict, qc: str, splits: str, results: str, out: str) -> int:
    """`ksdiff stats`: mean/std of head, expr and speech features over usable training clips."""
    ids = ca.usable_clips(results, "train", qc=qc, splits=splits)
    if not ids:
        raise ca.ClipError("no usable training clips: see the QC table for the reasons")
    clips = []
    for c in tqdm(ids, desc="stats", unit="clip", disable=None):
        try:
            clips.append(ca.load_clip(results, c, float(cfg["fps"])))
        except ca.ClipError as e:
            log.warning("clip %s left out of the statistics: %s", c, e)
    stats = compute_stats(clips)
    write_stats(out, stats)
    log.info("stats over %d training clips (%d motion frames, %d feature frames) -> %s",
             len(clips), stats.attrs["n_frames"], stats.attrs["n_feat_frames"], out)
    return 0


# ---------------------------------------------------------------------------- map-reduce


def write_stats_part(path, part: dict, shard: str) -> None:
    names = list(ca.STATS_NAMES)
    m = part["moments"]
    parquet.write_table(path, "stats_part", {
        "name": names, "n": [int(m[n].n) for n in names],
        "mean": [np.zeros(0) if m[n].mean is None else m[n].mean for n in names],
        "m2": [np.zeros(0) if m[n].m2 is None else m[n].m2 for n in names]},
        attrs={"shard": shard, "info": part["info"], "clips": part["clips"], "first": part["first"]})


def read_stats_part(path) -> dict:
    t = parquet.read_table(path, "stats_part")
    moments = {}
    for name, n, mean, m2 in zip(t.table.column("name").to_pylist(), t.table.column("n").to_pylist(),
                                 t.table.column("mean").to_pylist(), t.table.column("m2").to_pylist()):
        moments[name] = _Moments(int(n), np.asarray(mean, np.float64), np.asarray(m2, np.float64)) if n else _Moments()
    return {"moments": moments, "info": t.attrs["info"], "clips": t.attrs["clips"], "first": t.attrs["first"]}


def stats_part(cfg: dict, qc: str, splits: str, index: str, out: str) -> int:
    """`ksdiff stats-part`: moments of one shard's usable training clips, read from its pack (``index``)."""
    results = Path(index).parent.parent
    train = set(ca.usable_clips(results, "train", qc=qc, splits=splits))
    shard_ids = parquet.read_table(index, "pack_index").table.column("clip_id").to_pylist()
    ps = PackSet([index], sorted(c for c in shard_ids if c in train))
    part = partial_stats(ps.clip(i) for i in range(len(ps)))
    write_stats_part(out, part, Path(index).stem)
    log.info("stats part %s: %d training clips", Path(index).stem, len(part["clips"]))
    return 0


def merge_stats(cfg: dict, parts: list[str], out: str) -> int:
    """`ksdiff merge-stats`: the stats table from the shards' parts (same values as ``build_stats``)."""
    stats = finish_stats([read_stats_part(p) for p in parts])
    write_stats(out, stats)
    log.info("stats over %d training clips from %d shard(s) (%d motion frames, %d feature frames) -> %s",
             stats.attrs["n_clips"], len(parts), stats.attrs["n_frames"], stats.attrs["n_feat_frames"], out)
    return 0
