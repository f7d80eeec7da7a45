"""PSNR scorer: each sample's frames against the clip's recorded video, mean over frames (ksdiff.metrics.frame_fidelity).

On when ``eval.video_metrics`` lists psnr. A clip with a frame equal to its reference has an infinite PSNR:
its row is left out with that reason rather than capped.
"""
from __future__ import annotations

import numpy as np

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.frame_fidelity import psnr_frames
from ksdiff.metrics.registry import PSNR
from ksdiff.metrics.video_pair import paired, sample_rows


def _psnr(clip: ClipInputs, s: int) -> dict:
    pred, ref, why = paired(clip, s)
    if why:
        return {PSNR: (float("nan"), f"PSNR: {why}")}
    v = psnr_frames(pred, ref)
    same = int(np.isinf(v).sum())
    return {PSNR: (float(v.mean()), f"PSNR: equal to the recorded video on {same} of {len(v)} frames, so infinite"
                   if same else "")}


def score(clip: ClipInputs) -> list[Row]:
    if not clip.run.video.on("psnr") or clip.frames is None:
        return []
    return sample_rows(clip, (PSNR,), "PSNR", lambda s: _psnr(clip, s))
