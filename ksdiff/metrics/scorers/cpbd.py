"""CPBD scorer: the sharpness of each sample's frames, no reference, mean over frames (ksdiff.metrics.cpbd).

On when ``eval.video_metrics`` lists cpbd. Ground truth is scored on its rendering like every method.
"""
from __future__ import annotations

import numpy as np

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.cpbd import cpbd
from ksdiff.metrics.registry import CPBD
from ksdiff.metrics.video_pair import method_video, sample_rows


def score(clip: ClipInputs) -> list[Row]:
    if not clip.run.video.on("cpbd") or clip.frames is None:
        return []
    return sample_rows(clip, (CPBD,), "CPBD",
                       lambda s: {CPBD: (float(np.mean([cpbd(f) for f in method_video(clip, s)[0]])), "")})
