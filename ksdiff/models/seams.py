"""Seams of windowed sampling: how far the motion jumps where one sampling window meets the next.

``sample_long`` generates a clip in windows of ``window`` frames starting every
``window - overlap`` frames. A seam is the frame-to-frame change of the motion across
a join: with back-to-back windows the single step from the last frame of one window
to the first of the next; with overlapping windows every step of the crossfaded span
and its two edges (the largest of them counts). ``window_seams`` compares those
jumps with ground truth's own 95th-percentile frame-to-frame change over the clip:
a ratio above 1 is a jump that real motion makes less than 5% of the time, i.e. a
visible seam.

Frame-to-frame change is the L2 norm over the coefficient dimensions of one stream
(head pose or expression); pass normalised motion (each dimension in units of its
training std) so that angles and translations weigh alike.
"""
from __future__ import annotations

import numpy as np


def window_joins(n_frames: int, window: int, overlap: int = 0) -> list[tuple[int, int]]:
    """Steps t (from frame t-1 to t) that touch each join of ``sample_long``'s windows: [(first, last)], inclusive.

    Window k covers [s_k, s_k + window) with s_k = k (window - overlap); the join of
    window k >= 1 spans the steps from s_k (fade start) to s_k + overlap (first frame
    that is the new window's alone), clipped to the clip.
    """
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in 0..{window - 1}, got {overlap}")
    joins, s = [], 0
    while s + window < n_frames:
        s = s + window - overlap
        joins.append((s, min(s + overlap, n_frames - 1)))
    return joins


def frame_steps(x: np.ndarray) -> np.ndarray:
    """(..., T, D) -> (..., T) with step[t] = ||x[t] - x[t-1]|| and step[0] = nan."""
    x = np.asarray(x, dtype=np.float64)
    d = np.linalg.norm(np.diff(x, axis=-2), axis=-1)
    return np.concatenate([np.full(d.shape[:-1] + (1,), np.nan), d], axis=-1)


def window_seams(pred: np.ndarray, gt: np.ndarray, window: int, overlap: int = 0,
                 valid: np.ndarray | None = None) -> dict[str, float]:
    """Jumps at window joins of ``pred`` ((S, T, D) samples or (T, D)) against ground truth ``gt`` (T, D).

    Returns ``gt_p95`` (95th percentile of gt's frame-to-frame change over steps between
    two valid frames), ``jump_median``/``jump_max`` (over samples and joins: the largest
    step within each join), their ratios ``ratio_median``/``ratio_max`` to gt_p95, the
    prediction's own 95th-percentile step away from the joins (``interior_p95``), ground
    truth's own median largest step over the same spans over gt_p95 (``gt_ratio_median``:
    the reference for joins that span several steps, whose largest natural step exceeds
    the 95th percentile more often than one step does) and ``n_joins``. With no join (a
    clip within one window) the jumps are nan.
    """
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    pred = pred[None] if pred.ndim == 2 else pred
    n = gt.shape[0]
    if pred.shape[1:] != gt.shape:
        raise ValueError(f"prediction {pred.shape[1:]} and ground truth {gt.shape} differ")
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    step_ok = np.zeros(n, dtype=bool)
    step_ok[1:] = valid[1:] & valid[:-1]
    gt_steps = frame_steps(gt)[step_ok]
    gt_p95 = float(np.percentile(gt_steps, 95)) if gt_steps.size else float("nan")
    steps = frame_steps(pred)  # (S, T)
    joins = window_joins(n, window, overlap)
    at_join = np.zeros(n, dtype=bool)
    jumps = []
    for first, last in joins:
        at_join[first: last + 1] = True
        jumps.append(steps[:, first: last + 1].max(axis=1))
    jumps = np.concatenate(jumps) if jumps else np.array([])
    gt_steps_all = frame_steps(gt)
    gt_jumps = np.array([np.nanmax(np.where(step_ok, gt_steps_all, np.nan)[first: last + 1])
                         if step_ok[first: last + 1].any() else np.nan for first, last in joins])
    interior = steps[:, step_ok & ~at_join]
    out = {
        "gt_p95": gt_p95,
        "jump_median": float(np.median(jumps)) if jumps.size else float("nan"),
        "jump_max": float(jumps.max()) if jumps.size else float("nan"),
        "interior_p95": float(np.percentile(interior, 95)) if interior.size else float("nan"),
        "n_joins": len(joins),
    }
    out["ratio_median"] = out["jump_median"] / gt_p95 if gt_p95 > 0 else float("nan")
    out["ratio_max"] = out["jump_max"] / gt_p95 if gt_p95 > 0 else float("nan")
    ok = gt_jumps[np.isfinite(gt_jumps)]
    out["gt_ratio_median"] = float(np.median(ok)) / gt_p95 if ok.size and gt_p95 > 0 else float("nan")
    return out
