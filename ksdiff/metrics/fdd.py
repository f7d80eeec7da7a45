"""FDD, upper-face dynamics deviation, exactly as CodeTalker's cal_metric.py computes it.

For one sequence x (T, V, 3) and the clip's neutral template (V, 3), CodeTalker takes per upper-face
vertex v the squared displacement from the template, d_v(t) = ||x_v(t) - template_v||^2, its standard
deviation over time (np.std, ddof 0), and the mean over the region: the sequence's upper-face dynamics.
FDD = dynamics(ground truth) - dynamics(prediction), signed: positive when the prediction moves its upper
face less than ground truth (the usual failure: a still brow). Coordinates are divided by ``scale`` first
(inter-ocular distance on landmarks, 1e-3 for FLAME metres -> mm), so FDD is in squared units.
"""
from __future__ import annotations

import numpy as np


def upper_face_dynamics(x: np.ndarray, template: np.ndarray, idx, scale: float = 1.0) -> float:
    """mean over the vertices ``idx`` of std over frames of ||x_v(t) - template_v||^2 (in units of ``scale``)."""
    x = np.asarray(x, dtype=np.float64)
    template = np.asarray(template, dtype=np.float64)
    idx = np.asarray(idx, dtype=np.int64)
    if x.ndim != 3 or x.shape[-1] != 3 or template.shape != x.shape[1:]:
        raise ValueError(f"expected (T, V, 3) motion and a (V, 3) template; got {x.shape} and {template.shape}")
    if len(x) == 0 or idx.size == 0 or idx.min() < 0 or idx.max() >= x.shape[1]:
        raise ValueError(f"no frames, or upper-face indices out of range for a {x.shape[1]}-vertex mesh")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale}")
    d = np.sum(((x[:, idx] - template[idx]) / scale) ** 2, axis=-1)  # (T, n): squared displacement
    return float(np.mean(np.std(d, axis=0)))


def fdd(pred: np.ndarray, gt: np.ndarray, template: np.ndarray, idx, scale: float = 1.0) -> float:
    """dynamics(gt) - dynamics(pred) (CodeTalker's motion_std_difference of one sequence)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape; got {pred.shape} and {gt.shape}")
    return upper_face_dynamics(gt, template, idx, scale) - upper_face_dynamics(pred, template, idx, scale)
