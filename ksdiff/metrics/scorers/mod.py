"""MOD scorer (ksdiff's definition, PROTOCOL.mod_def): each sample's mouth-opening error against ground
truth on landmark meshes; FLAME tables record why it is undefined. Ground truth is scored too (0)."""
from __future__ import annotations

from ksdiff.landmark_points import frames_in_both
from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.lve import inter_ocular_distance
from ksdiff.metrics.mod import mod
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.registry import MOD
from ksdiff.render.video import decodable


def score(clip: ClipInputs) -> list[Row]:
    if clip.gt is None:
        return []
    why = decodable(clip.motion) or decodable(clip.gt)
    if why:
        return [Row(s, MOD, float("nan"), f"MOD ({PROTOCOL.mod_version}) is defined on landmark meshes only: {why}")
                for s in clip.samples]
    gt, scale, rows = clip.gt_aligned, inter_ocular_distance(clip.template), []
    for s in clip.samples:
        pred = clip.decoded(s)[0]
        n = min(len(pred), len(gt))
        m = frames_in_both(gt, pred)  # the irises need not be there
        rows.append(Row(s, MOD, mod(pred[:n][m], gt[:n][m], scale=scale)) if m.any() else
                    Row(s, MOD, float("nan"), "no frame valid in both prediction and ground truth"))
    return rows
