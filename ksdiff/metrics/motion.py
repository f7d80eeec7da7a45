"""A coeffs table's motion as the metrics read it: head pose, decoded landmarks, FLAME vertices.

Every method, ground truth included, is decoded with the ground-truth clip's identity (landmark template or
FLAME shape code) and the dataset's expression basis, so methods differ only in their motion.
"""
from __future__ import annotations

import numpy as np

from ksdiff.io import parquet
from ksdiff.metrics.flame import FLAME_BACKENDS
from ksdiff.render.video import select_sample


def head_pose(rows) -> np.ndarray:
    """(T, 3) yaw, pitch, roll in degrees; invalid frames linearly interpolated."""
    h = np.stack([rows.column(k).to_numpy(zero_copy_only=False).astype(np.float64) for k in ("yaw", "pitch", "roll")], 1)
    valid = rows.column("valid").to_numpy(zero_copy_only=False).astype(bool) & np.isfinite(h).all(1)
    if not valid.any():
        raise ValueError("no valid frame")
    if not valid.all():
        t = np.arange(len(h))
        h = np.stack([np.interp(t, t[valid], h[valid, k]) for k in range(3)], 1)
    return h


def is_flame(table: parquet.Table | None) -> bool:
    """Whether a coeffs table holds FLAME parameters (expr, jaw, attrs['shape'])."""
    return table is not None and table.attrs.get("backend") in FLAME_BACKENDS


def flame_params(table: parquet.Table, sample: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expr (T, E), jaw (T, 3), valid (T,)) of one sample of a FLAME table."""
    rows = select_sample(table, sample)
    expr = np.stack(parquet.column_to_numpy(rows.column("expr"))).astype(np.float64)
    jaw = parquet.column_to_numpy(rows.column("jaw")).astype(np.float64).reshape(len(expr), 3)
    valid = rows.column("valid").to_numpy(zero_copy_only=False).astype(bool)
    valid &= np.isfinite(expr).all(1) & np.isfinite(jaw).all(1)
    return expr, jaw, valid


def flame_vertices(decoder, table: parquet.Table, sample: int, shape) -> np.ndarray:
    """(T, n, 3) canonical FLAME vertices (metres) of ``decoder``'s region for one sample; invalid frames NaN."""
    expr, jaw, valid = flame_params(table, sample)
    out = np.full((len(expr), decoder.n_vertices, 3), np.nan)
    if valid.any():
        out[valid] = decoder(shape, expr[valid], jaw[valid])
    return out


def expression_coeffs(table: parquet.Table, sample: int) -> np.ndarray:
    """(n_valid, K) expression coefficients of one sample on its valid frames: the basis coefficients
    (landmark backend), or FLAME's expression values followed by its 3 jaw values (FLAME opens the mouth
    with the jaw joint, so without them E-FID would not see mouth opening)."""
    if is_flame(table):
        expr, jaw, valid = flame_params(table, sample)
        return np.concatenate([expr, jaw], 1)[valid]
    rows = select_sample(table, sample)
    expr = np.stack(parquet.column_to_numpy(rows.column("expr"))).astype(np.float64)
    valid = rows.column("valid").to_numpy(zero_copy_only=False).astype(bool) & np.isfinite(expr).all(1)
    return expr[valid]
