"""Head-motion diversity scorer: temporal diversity per sample, sample diversity over a clip's samples."""
from __future__ import annotations

import numpy as np

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.diversity import sample_diversity, temporal_diversity
from ksdiff.metrics.registry import ACROSS_SAMPLES


def score(clip: ClipInputs) -> list[Row]:
    heads = [clip.head(s) for s in clip.samples]
    rows = [Row(s, "temporal_diversity", temporal_diversity(h)) for s, h in zip(clip.samples, heads)]
    if len(heads) >= 2:
        n = min(len(h) for h in heads)
        rows.append(Row(ACROSS_SAMPLES, "sample_diversity", sample_diversity(np.stack([h[:n] for h in heads]))))
    return rows
