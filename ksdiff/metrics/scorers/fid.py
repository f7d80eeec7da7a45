"""FID scorer (set-level): the clip's recorded frames and each scored sample's frames into the run's Inception
moments (ksdiff.metrics.fid); FID itself is computed from the summed moments when the table is written or its
shards merged (ksdiff.metrics.weighted). Without eval.fid_inception, the clip's row says why."""
from __future__ import annotations

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.registry import FID
from ksdiff.metrics.weighted_frames import add_to_set


def _features(model, frames):
    from ksdiff.metrics.fid import inception_features  # torchvision and pytorch-fid: only when FID is configured

    return inception_features(model, frames)


def score(clip: ClipInputs) -> list[Row]:
    return add_to_set(clip, "fid", FID, _features)
