"""E-FID scorer: adds the clip's expression coefficients (ground truth's, and every sample's of the method)
to the run's moments; E-FID itself is set-level (ksdiff.metrics.efid), computed from the summed moments
when the table is written or its shards merged. Gives no per-clip rows."""
from __future__ import annotations

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.motion import expression_coeffs, is_flame


def score(clip: ClipInputs) -> list[Row]:
    if clip.gt is None or is_flame(clip.gt) != is_flame(clip.motion):
        return []  # no ground truth, or two coefficient spaces: the clip adds to neither side
    gt = expression_coeffs(clip.gt, 0)
    method = [expression_coeffs(clip.motion, s) for s in clip.samples]  # all read before either side is added to
    clip.run.efid["ground_truth"].add(gt)
    for x in method:
        clip.run.efid["method"].add(x)
    return []
