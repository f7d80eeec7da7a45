"""F-LMD and M-LMD: landmark distance between a method's video and the clip's recorded video.

As the ViCo challenge's evaluations/compute_lmd.py computes it: landmarks detected in frame t of both videos,
in the frames' own pixel coordinates, no spatial alignment (no centring, scaling or rotation: both videos
show the same framing, so a head placed elsewhere counts as landmark error), the absolute difference of each
coordinate (x and y apart, an L1 distance, not the Euclidean distance of Chen et al.'s LMD), averaged over
the points, the two coordinates and the frames; a frame without a face in the reference is skipped (ViCo),
and here one without a face in the method's video too (ViCo's script fails there).

Where ksdiff differs from ViCo, on purpose: the landmarks are ksdiff's own extraction (MediaPipe's 478-point
mesh, ksdiff.extract.landmarks) of both videos instead of face_alignment's 68 points, so the mouth is
MediaPipe's 40 lip landmarks (FACEMESH_LIPS, the LVE lip set) instead of points 48-67 and the face is all 478
points (the 468 mesh points where either extraction has no irises); a clip's value is the mean over its frames
(ViCo pools the frames of all videos). The values are in pixels of the recorded video and are not comparable with
ViCo's 68-point numbers.
"""
from __future__ import annotations

import numpy as np

from ksdiff.landmark_points import N_MESH, has_irises


def lmd(pred: np.ndarray, ref: np.ndarray, points=None) -> tuple[float, int]:
    """(LMD in pixels, frames used) of (T, P, 2+) landmarks ``pred`` against ``ref``, on ``points`` (None: all),
    over the frames where both have every one of those points (NaN marks a frame without a face). With
    ``points`` None and either side without irises (landmarks.refine_landmarks false), all 468 mesh points."""
    n = min(len(pred), len(ref))
    p, r = np.asarray(pred[:n], float)[..., :2], np.asarray(ref[:n], float)[..., :2]
    if points is None and not (has_irises(p) and has_irises(r)):
        points = range(N_MESH)
    if points is not None:
        p, r = p[:, list(points)], r[:, list(points)]
    ok = np.isfinite(p).all((1, 2)) & np.isfinite(r).all((1, 2))
    if not ok.any():
        return float("nan"), 0
    return float(np.abs(p[ok] - r[ok]).mean()), int(ok.sum())
