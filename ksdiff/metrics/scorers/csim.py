"""CSIM scorer: per scored sample, the mean over frames of the cosine similarity between the ArcFace embedding
of the sample's frame t and of the recorded video's frame t (ksdiff.metrics.csim), over the frames where both
have a face. A rendered sample's 5 points come from the landmarks it was rendered with, the recorded video's
and an external video's from ksdiff's extraction. Frames of another size are fine: each face is aligned to
ArcFace's 112 px template. Without eval.arcface_model, the clip's row says why."""
from __future__ import annotations

import numpy as np

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.registry import CSIM
from ksdiff.metrics.video_pair import method_video, reference_video, sample_rows
from ksdiff.metrics.weighted_frames import unscored


def _csim(clip: ClipInputs, s: int) -> dict:
    from ksdiff.metrics.csim import cosine, embeddings  # onnxruntime and insightface: only when CSIM is configured

    model = clip.run.weighted.models["csim"]
    ref = clip._memo(("arcface", "reference"), lambda: embeddings(model, *reference_video(clip)))
    pred = embeddings(model, *method_video(clip, s))
    n = min(len(pred), len(ref))
    sim = cosine(pred[:n], ref[:n])
    ok = np.isfinite(sim)
    if not ok.any():
        return {CSIM: (float("nan"), f"CSIM: no frame of {n} with a face in both videos")}
    return {CSIM: (float(sim[ok].mean()), "")}


def score(clip: ClipInputs) -> list[Row]:
    why = unscored(clip, "csim", CSIM)
    if why is not None:
        return why
    return sample_rows(clip, (CSIM,), "CSIM", lambda s: _csim(clip, s))
