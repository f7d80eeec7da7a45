"""FVD scorer (set-level): the I3D features of the clip's recorded video's and each scored sample's 16-frame
windows into the run's moments (ksdiff.metrics.fvd); FVD itself is computed from the summed moments when the
table is written or its shards merged (ksdiff.metrics.weighted). Without eval.fvd_i3d, the clip's row says why."""
from __future__ import annotations

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.registry import FVD
from ksdiff.metrics.weighted_frames import add_to_set


def _features(model, frames):
    from ksdiff.metrics.fvd import i3d_features  # torch: only when FVD is configured

    return i3d_features(model, frames)


def score(clip: ClipInputs) -> list[Row]:
    return add_to_set(clip, "fvd", FVD, _features)
