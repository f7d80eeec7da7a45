"""E-FID scorer: adds the clip's expression coefficients (ground truth's, and every sample's of the method)
to the run's moments; E-FID itself is set-level (ksdiff.metrics.efid), computed from the summed moments
when the table is written or its shards merged. Gives no per-clip rows."""
from __future__ import annotations

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.motion import expression_coeffs, is_flame


def score(clip: ClipInputs) -> list[Row]:
    if clip.gt is None or is_flame(clip.gt) != is_flame(clip.motion):
        return []  # no ground truth, or two coefficient spaces: the clip adds to neither side
    acc = clip.run.efid
    acc["ground_truth"].add(expression_coeffs(clip.gt, 0))
    for s in clip.samples:
        acc["method"].add(expression_coeffs(clip.motion, s))
    return []
