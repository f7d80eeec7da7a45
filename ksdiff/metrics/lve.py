"""Lip vertex error (LVE), FaceFormer / DiffSpeaker style.

Definition (pinned in ksdiff.metrics.protocol):
  per frame t, e(t) = max over lip vertices v of dist(pred[t, v], gt[t, v]);
  LVE = mean over frames of e(t).
Variants: ``'l2'`` takes dist = Euclidean distance (FaceFormer's paper);
``'squared_l2'`` takes the squared distance without the square root, as
DiffSpeaker's evaluation code does. Both are reported with their name
(``lve_name``) because they differ by more than a constant.

Inputs are (T, V, 3) vertex / landmark sequences in the canonical frame (head
pose removed), so LVE measures lip shape and not head motion. Coordinates are
divided by ``scale`` before the distance: by default the inter-ocular distance
(outer eye corners, MediaPipe 33 and 263) of the ground-truth template, which
makes landmark LVE independent of image resolution; for FLAME meshes pass an
explicit scale (see protocol.FLAME_LIPS_NOTE).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ksdiff.metrics.protocol import PROTOCOL

VARIANTS = ("l2", "squared_l2")


def inter_ocular_distance(template: np.ndarray, eye_corners: tuple[int, int] = PROTOCOL.lve_eye_corners) -> float:
    """Distance between the outer eye corners of a (V, 3) template (or the
    median over frames of a (T, V, 3) sequence)."""
    x = np.asarray(template, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"expected (V, 3) or (T, V, 3) landmarks, got shape {np.shape(template)}")
    a, b = eye_corners
    if max(a, b) >= x.shape[1]:
        raise ValueError(
            f"eye-corner indices {eye_corners} do not exist in a {x.shape[1]}-vertex mesh; "
            "pass an explicit scale (FLAME meshes: see protocol.FLAME_LIPS_NOTE)"
        )
    d = float(np.median(np.linalg.norm(x[:, a] - x[:, b], axis=-1)))
    if not np.isfinite(d) or d <= 0:
        raise ValueError(f"degenerate inter-ocular distance {d}")
    return d


def lve_per_frame(
    pred: np.ndarray,
    gt: np.ndarray,
    lip_idx=PROTOCOL.lve_lip_indices,
    variant: str = PROTOCOL.lve_variant,
    scale: float | None = None,
) -> np.ndarray:
    """(T,) largest lip-vertex error of each frame, in units of ``scale``.

    scale None: the inter-ocular distance of ``gt`` (median over frames; pass
    ``inter_ocular_distance(template)`` to use the clip's template exactly, or
    1.0 to keep the input units).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown LVE variant {variant!r}; expected one of {VARIANTS}")
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must both be (T, V, 3); got {pred.shape} and {gt.shape}")
    if pred.shape[0] == 0:
        raise ValueError("empty sequences")
    idx = np.asarray(lip_idx, dtype=np.int64)
    if idx.size == 0 or idx.max() >= pred.shape[1] or idx.min() < 0:
        raise ValueError(f"lip indices out of range for a {pred.shape[1]}-vertex mesh")
    if scale is None:
        scale = inter_ocular_distance(gt)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale}")
    sq = np.sum(((pred[:, idx] - gt[:, idx]) / scale) ** 2, axis=-1)  # (T, n_lip)
    worst = sq.max(axis=1)
    return worst if variant == "squared_l2" else np.sqrt(worst)


def lve(
    pred: np.ndarray,
    gt: np.ndarray,
    lip_idx=PROTOCOL.lve_lip_indices,
    variant: str = PROTOCOL.lve_variant,
    scale: float | None = None,
) -> float:
    """Mean over frames of the per-frame maximal lip-vertex error."""
    return float(lve_per_frame(pred, gt, lip_idx=lip_idx, variant=variant, scale=scale).mean())


UNITS = ("iod", "raw", "mm")  # inter-ocular distances (landmarks), input units, millimetres (FLAME meshes)


def lve_name(variant: str = PROTOCOL.lve_variant, units: str = "iod") -> str:
    """The metric's name in tables: ``lve_l2_iod``, ``lve_sql2_iod``, ``lve_l2_mm`` ...

    The units are part of the name so that values in different units (the
    landmark LVE in inter-ocular distances, the FLAME LVE in millimetres) can
    never be averaged or ranked together.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown LVE variant {variant!r}")
    if units not in UNITS:
        raise ValueError(f"unknown LVE units {units!r}; expected one of {UNITS}")
    return f"lve_{'l2' if variant == 'l2' else 'sql2'}_{units}"


def flame_lip_indices(masks_path: str | Path) -> tuple[int, ...]:
    """Sorted vertex indices of the 'lips' region of FLAME's ``FLAME_masks.pkl``.

    The file comes with the FLAME model (registration required, never
    downloaded here); it is a Python-2 pickle of numpy index arrays.
    """
    p = Path(masks_path)
    if not p.exists():
        raise FileNotFoundError(
            f"FLAME mask file not found: {p}. Download FLAME_masks.pkl from the FLAME "
            "website (flame.is.tue.mpg.de) and pass its path."
        )
    with open(p, "rb") as f:
        masks = pickle.load(f, encoding="latin1")
    if "lips" not in masks:
        raise KeyError(f"{p} has no 'lips' region (regions: {sorted(masks)})")
    return tuple(int(i) for i in np.unique(np.asarray(masks["lips"]).ravel()))
