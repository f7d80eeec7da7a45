"""Which of a landmark array's points were extracted: all 478, or MediaPipe's 468-point mesh alone.

Landmark tables hold 478 points per frame (ksdiff.io.schemas.N_LANDMARKS). With
``landmarks.refine_landmarks: false`` MediaPipe meshes 468 points and the ten iris points
(468-477) stay NaN in every frame; the pose fit, the expression basis and the coefficients
then carry them as NaN too (ksdiff.extract.pose). A step that asks whether a frame "has
landmarks" must then look at the 468 mesh points: the irises are missing by configuration,
not because no face was found. With the irises present nothing changes (every point counts).
"""
from __future__ import annotations

import numpy as np

N_MESH = 468  # MediaPipe's face-mesh vertices; 468..477 are the refined irises


def has_irises(landmarks) -> bool:
    """Whether any iris point (468-477) of ``landmarks`` (..., N, C) is a number."""
    lm = np.asarray(landmarks)
    return lm.shape[-2] > N_MESH and bool(np.isfinite(lm[..., N_MESH:, :]).any())


def present_points(landmarks) -> np.ndarray:
    """``landmarks`` (..., N, C) as they are, or without the iris points when none of them was extracted."""
    lm = np.asarray(landmarks)
    return lm if lm.shape[-2] <= N_MESH or has_irises(lm) else lm[..., :N_MESH, :]


def frames_with_points(landmarks) -> np.ndarray:
    """(T,) whether each frame of ``landmarks`` (T, N, C) has every extracted point (NaN rows: no face)."""
    return np.isfinite(present_points(landmarks)).all(axis=(1, 2))


def frames_in_both(gt, pred) -> np.ndarray:
    """(n,) over the first n = min(len(gt), len(pred)) frames: whether both have every extracted point
    (the frames a per-frame comparison of two landmark sequences, LVE, MOD or FDD, can use)."""
    n = min(len(gt), len(pred))
    return frames_with_points(gt[:n]) & frames_with_points(pred[:n])
