"""F-LMD and M-LMD scorer: landmarks extracted from each sample's frames against those of the clip's recorded
video, as the ViCo challenge computes LMD (ksdiff.metrics.lmd: same frame, pixel coordinates, no alignment).

On when ``eval.video_metrics`` lists lmd. Rendered frames are meshed by ksdiff's landmark extraction with the
dataset's options (ksdiff.metrics.video_pair.method_landmarks).
"""
from __future__ import annotations

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.lmd import lmd
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.registry import F_LMD, M_LMD
from ksdiff.metrics.video_pair import method_landmarks, paired, reference_video, sample_rows


def _lmd(clip: ClipInputs, s: int) -> dict:
    _, _, why = paired(clip, s)
    if why:
        return {F_LMD: (float("nan"), f"F-LMD: {why}"), M_LMD: (float("nan"), f"M-LMD: {why}")}
    pred, ref = method_landmarks(clip, s), reference_video(clip)[1]
    out = {}
    for name, label, points in ((F_LMD, "F-LMD", None), (M_LMD, "M-LMD", PROTOCOL.lmd_mouth_indices)):
        v, n = lmd(pred, ref, points)
        out[name] = (v, "" if n else f"{label}: no frame with a face in both the method's and the recorded video")
    return out


def score(clip: ClipInputs) -> list[Row]:
    if not clip.run.video.on("lmd") or clip.frames is None:
        return []
    return sample_rows(clip, (F_LMD, M_LMD), "LMD", lambda s: _lmd(clip, s))
