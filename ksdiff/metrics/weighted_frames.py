"""What the four weight-based scorers (ksdiff.metrics.scorers: fid, fvd, lpips, csim) share: the row that says
why a metric is not scored, the samples they score, and the set-level accumulation of FID and FVD.

Frames are the video metrics' (ksdiff.metrics.video_pair): each sample's frames (rendered by the image warp,
or an external method's own video) and the clip's recorded video, opened once per clip. The samples scored
are the video metrics' too (``eval.video_samples``: the first N of each clip).
"""
from __future__ import annotations

import numpy as np

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.registry import ACROSS_SAMPLES
from ksdiff.metrics.video_pair import NO_REFERENCE, method_video, reference_video
from ksdiff.render.video import RenderError


def unscored(clip: ClipInputs, name: str, metric: str) -> list[Row] | None:
    """[the clip's row saying why ``name`` is not scored], or None when it can be scored."""
    run = clip.run.weighted
    if not run.on(name):
        return [Row(ACROSS_SAMPLES, metric, float("nan"), run.reason(name))]
    if clip.frames is None:
        return [Row(ACROSS_SAMPLES, metric, float("nan"), f"{metric}: the method has no frames to score")]
    if clip.reference is None:
        return [Row(ACROSS_SAMPLES, metric, float("nan"), f"{metric}: {NO_REFERENCE}")]
    return None


def scored_samples(clip: ClipInputs) -> list[int]:
    return [s for s in clip.samples if clip.run.video.scores(s)]


def add_to_set(clip: ClipInputs, name: str, metric: str, features) -> list[Row]:
    """Set-level FID/FVD: ``features(frames)`` of the recorded video and of every scored sample, all computed
    before either side's moments grow (a clip that fails adds nothing, its row says why)."""
    why = unscored(clip, name, metric)
    if why is not None:
        return why
    model = clip.run.weighted.models[name]
    try:
        gt = features(model, reference_video(clip)[0])
        method = [features(model, method_video(clip, s)[0]) for s in scored_samples(clip)]
    except (ValueError, RenderError, OSError) as e:  # as the per-sample video metrics (video_pair.sample_rows)
        return [Row(ACROSS_SAMPLES, metric, float("nan"), f"{metric}: {e}")]
    acc = clip.run.weighted.sets[name]
    acc["ground_truth"].add(gt)
    for x in method:
        acc["method"].add(np.asarray(x, dtype=np.float64))
    return []
