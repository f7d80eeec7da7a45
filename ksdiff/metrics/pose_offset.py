"""Head placement: how far a prediction's average head rotation is from the ground truth's.

    offset_d = | mean_t pred_d(t) - mean_t gt_d(t) |      d in (yaw, pitch, roll), degrees

The prediction's mean runs over all its samples and frames, the ground truth's
over its valid frames. It answers "is the head turned the way the speaker's
is?", which no other metric here asks (Diversity and BeatAlign look at how the
head moves, not where it points): a model that emits the training speakers'
average pose instead of the speaker's own has offsets of the size of the
speakers' differences. Over a set of clips, report the median (``median_offsets``).
"""
from __future__ import annotations

import numpy as np

ANGLES = ("yaw", "pitch", "roll")


def _mean_angles(table) -> np.ndarray:
    """(3,) mean yaw, pitch, roll over the valid rows of a coeffs Table (all samples)."""
    ypr = np.stack([np.asarray(table.column(a), dtype=np.float64) for a in ANGLES], axis=1)
    ok = np.asarray(table.column("valid"), dtype=bool) & np.isfinite(ypr).all(1)
    if not ok.any():
        raise ValueError("no valid frame to average the head pose over")
    return ypr[ok].mean(0)


def mean_pose_offset(pred, gt) -> dict[str, float]:
    """{'yaw', 'pitch', 'roll'}: |mean predicted angle - mean ground-truth angle| in degrees (coeffs Tables)."""
    d = np.abs(_mean_angles(pred) - _mean_angles(gt))
    return {a: float(v) for a, v in zip(ANGLES, d)}


def median_offsets(offsets: list[dict[str, float]]) -> dict[str, float]:
    """Median over clips of each angle's offset (NaN when there are no clips)."""
    return {a: float(np.median([o[a] for o in offsets])) if offsets else float("nan") for a in ANGLES}
