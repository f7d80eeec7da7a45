"""MOD, mouth opening distance: ksdiff's definition (version PROTOCOL.mod_version).

DiffPoseTalk reports MOD but published no code, so its numbers cannot be reproduced; this is ksdiff's own,
pinned definition and is named as such in every report. The mouth opening of a frame is the distance
between MediaPipe's inner-lip midpoints (upper 13, lower 14) in the canonical (head-pose-removed) frame,
divided by the ground-truth template's inter-ocular distance; MOD is the mean over frames of the absolute
difference between the prediction's opening and ground truth's. A mouth that never opens scores ground
truth's mean opening; a mouth that opens exactly as ground truth's scores 0.
"""
from __future__ import annotations

import numpy as np

from ksdiff.metrics.protocol import PROTOCOL


def mouth_opening(x: np.ndarray, pair: tuple[int, int] = PROTOCOL.mod_lip_pair, scale: float = 1.0) -> np.ndarray:
    """(T,) inner-lip opening of (T, V, 3) landmarks, in units of ``scale``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 3 or max(pair) >= x.shape[1]:
        raise ValueError(f"expected (T, V, 3) landmarks holding indices {pair}; got shape {x.shape}")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale}")
    a, b = pair
    return np.linalg.norm(x[:, a] - x[:, b], axis=-1) / scale


def mod(pred: np.ndarray, gt: np.ndarray, pair: tuple[int, int] = PROTOCOL.mod_lip_pair, scale: float = 1.0) -> float:
    """mean over frames of |opening(pred) - opening(gt)|."""
    o_pred, o_gt = mouth_opening(pred, pair, scale), mouth_opening(gt, pair, scale)
    if o_pred.shape != o_gt.shape or len(o_gt) == 0:
        raise ValueError(f"pred and gt must have the same, non-zero number of frames; got {len(o_pred)} and {len(o_gt)}")
    return float(np.mean(np.abs(o_pred - o_gt)))
