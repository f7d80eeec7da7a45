"""FDD scorer: each sample's upper-face dynamics deviation from ground truth (ksdiff.metrics.fdd).

Landmark meshes: MediaPipe's eye and eyebrow landmarks, aligned (head pose removed), neutral template = the
GT clip's identity template, inter-ocular units (fdd_iod2). FLAME meshes: FLAME_masks.pkl's forehead and
eye region, neutral = the GT shape code with zero expression and jaw, mm (fdd_mm2). Ground truth is scored
too (0 by construction), so the sanity table can pair it with the floors.
"""
from __future__ import annotations

import numpy as np

from ksdiff.landmark_points import frames_in_both
from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.fdd import fdd
from ksdiff.metrics.lve import inter_ocular_distance
from ksdiff.metrics.motion import flame_vertices
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.registry import FDD, FDD_FLAME
from ksdiff.render.video import decodable


def _rows(name: str, clip: ClipInputs, gt: np.ndarray, pred_of, template, idx, scale: float) -> list[Row]:
    rows = []
    for s in clip.samples:
        pred = pred_of(s)
        n = min(len(pred), len(gt))
        m = frames_in_both(gt, pred)  # the irises need not be there
        if m.sum() < 2:
            rows.append(Row(s, name, float("nan"), f"FDD: {int(m.sum())} frame(s) valid in both prediction and "
                            "ground truth; a standard deviation over time needs 2"))
        else:
            rows.append(Row(s, name, fdd(pred[:n][m], gt[:n][m], template, idx, scale)))
    return rows


def score(clip: ClipInputs) -> list[Row]:
    if clip.gt is None:
        return []
    if clip.flame_pair:
        decoder, why = clip.run.flame
        shape = np.asarray(clip.gt.attrs.get("shape") or [], dtype=np.float64)
        if decoder is None or not decoder.upper_face or not shape.size:
            why = (f"FDD on FLAME meshes: {why or 'no FLAME model is loaded to score ground truth (0 by construction)'}"
                   if decoder is None else
                   f"FDD on FLAME meshes: {decoder.masks_path} has no {' + '.join(PROTOCOL.fdd_flame_regions)} region"
                   if not decoder.upper_face else "FDD on FLAME meshes: the ground-truth table has no FLAME shape code")
            return [Row(s, FDD_FLAME, float("nan"), why) for s in clip.samples]
        upper = decoder.upper()
        gt = flame_vertices(upper, clip.gt, 0, shape)
        neutral = upper(shape, np.zeros((1, 1)), np.zeros((1, 3)))[0]
        return _rows(FDD_FLAME, clip, gt, lambda s: flame_vertices(upper, clip.motion, s, shape), neutral,
                     np.arange(upper.n_vertices), PROTOCOL.lve_flame_scale)
    why = decodable(clip.motion) or decodable(clip.gt)
    if why:
        return [Row(s, FDD, float("nan"), f"FDD: {why}") for s in clip.samples]
    return _rows(FDD, clip, clip.gt_aligned, lambda s: clip.decoded(s)[0], clip.template,
                 PROTOCOL.fdd_landmark_indices, inter_ocular_distance(clip.template))
