"""LPIPS scorer: each scored sample's frames against the clip's recorded video, frame t against frame t, mean
over frames (ksdiff.metrics.lpips_score; frames of another size than the recorded video are not scored, as for
PSNR and SSIM). Without eval.lpips_alexnet, the clip's row says why."""
from __future__ import annotations

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.registry import LPIPS
from ksdiff.metrics.video_pair import paired, sample_rows
from ksdiff.metrics.weighted_frames import unscored


def _lpips(clip: ClipInputs, s: int) -> dict:
    from ksdiff.metrics.lpips_score import lpips_frames  # torchvision and lpips: only when LPIPS is configured

    pred, ref, why = paired(clip, s)
    if why:
        return {LPIPS: (float("nan"), f"LPIPS: {why}")}
    return {LPIPS: (float(lpips_frames(clip.run.weighted.models["lpips"], pred, ref).mean()), "")}


def score(clip: ClipInputs) -> list[Row]:
    why = unscored(clip, "lpips", LPIPS)
    if why is not None:
        return why
    return sample_rows(clip, (LPIPS,), "LPIPS", lambda s: _lpips(clip, s))
