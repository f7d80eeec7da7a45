"""LVE scorer: every sample's lip vertex error against ground truth, in every pinned variant.

Landmark meshes: aligned (head-pose-removed) landmarks over MediaPipe's lips in inter-ocular units of the GT
template. FLAME meshes (both tables from the deca backend): FLAME's 'lips' vertices in mm, both sequences
decoded with the GT clip's shape code, when eval.flame_model and eval.flame_masks are configured. Not
scored for ground truth (0 by definition) nor for an external clip without ground truth.
"""
from __future__ import annotations

import logging

import numpy as np

from ksdiff.landmark_points import frames_in_both
from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.lve import inter_ocular_distance, lve, lve_name
from ksdiff.metrics.motion import flame_vertices
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.render.video import decodable

log = logging.getLogger(__name__)


def names(flame: bool) -> list[str]:
    """Every PROTOCOL.lve_variants name in the mesh's units."""
    return [lve_name(v, "mm" if flame else "iod") for v in PROTOCOL.lve_variants]


def lve_rows(s: int, pred: np.ndarray, gt: np.ndarray, lip_idx, scale: float, flame: bool, clip_id: str) -> list[Row]:
    """LVE of one sample on the frames valid in both (the first min(T) frames when lengths differ)."""
    n = min(len(pred), len(gt))
    if len(pred) != len(gt):
        log.warning("%s sample %d: %d frames vs %d in ground truth; LVE on the first %d", clip_id, s, len(pred), len(gt), n)
    m = frames_in_both(gt, pred)  # the irises need not be there
    if not m.any():
        return [Row(s, k, float("nan"), "no frame valid in both prediction and ground truth") for k in names(flame)]
    return [Row(s, k, lve(pred[:n][m], gt[:n][m], lip_idx, v, scale)) for v, k in zip(PROTOCOL.lve_variants, names(flame))]


def score(clip: ClipInputs) -> list[Row]:
    if clip.gt is None or clip.is_gt:
        return []
    decoder, flame_why = clip.run.flame
    if clip.flame_pair:
        shape = np.asarray(clip.gt.attrs.get("shape") or [], dtype=np.float64)
        why = ("" if decoder is not None and shape.size and np.isfinite(shape).all() else
               f"LVE on FLAME meshes: {flame_why}" if decoder is None else
               "LVE on FLAME meshes: the ground-truth table has no FLAME shape code (attrs['shape'])")
        if why:
            return [Row(s, k, float("nan"), why) for s in clip.samples for k in names(True)]
        gt = flame_vertices(decoder, clip.gt, 0, shape)  # the lip vertices only, in metres
        return [r for s in clip.samples for r in lve_rows(s, flame_vertices(decoder, clip.motion, s, shape), gt,
                                                         np.arange(gt.shape[1]), PROTOCOL.lve_flame_scale, True, clip.clip_id)]
    why = decodable(clip.motion) or decodable(clip.gt)
    if why:
        return [Row(s, k, float("nan"), f"LVE: {why}") for s in clip.samples for k in names(False)]
    scale = inter_ocular_distance(clip.template)
    return [r for s in clip.samples for r in lve_rows(s, clip.decoded(s)[0], clip.gt_aligned, PROTOCOL.lve_lip_indices,
                                                     scale, False, clip.clip_id)]

