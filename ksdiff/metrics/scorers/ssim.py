"""SSIM scorer: each sample's frames against the clip's recorded video, mean over frames (ksdiff.metrics.frame_fidelity).

On when ``eval.video_metrics`` lists ssim.
"""
from __future__ import annotations

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.frame_fidelity import ssim_frames
from ksdiff.metrics.registry import SSIM
from ksdiff.metrics.video_pair import paired, sample_rows


def _ssim(clip: ClipInputs, s: int) -> dict:
    pred, ref, why = paired(clip, s)
    return {SSIM: (float("nan"), f"SSIM: {why}") if why else (float(ssim_frames(pred, ref).mean()), "")}


def score(clip: ClipInputs) -> list[Row]:
    if not clip.run.video.on("ssim") or clip.frames is None:
        return []
    return sample_rows(clip, (SSIM,), "SSIM", lambda s: _ssim(clip, s))
