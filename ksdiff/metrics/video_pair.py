"""The frames the video metrics compare: a sample's frames and the clip's recorded video, opened once per clip.

The method's frames come from the clip's frame source (ksdiff.metrics.frames: every motion rendered by the
image warp over the clip's reference frame, or an external method's own video after its audio lag was
removed); the reference is the dataset's recorded video of the clip, decoded at the motion frame rate, with
the landmarks ksdiff extracted from it. Frame t is compared with frame t over the frames both have. No spatial
alignment: a method whose frames differ in size from the recorded video is not scored frame by frame (its
rows say so), since a rescaled or differently framed face would be compared with the wrong pixels.
Rendered frames get their landmarks by ksdiff's own extraction (ksdiff.extract.landmarks, the dataset's
landmark options), as the recorded video's were; an external video's are the ones the workflow extracted.
"""
from __future__ import annotations

import numpy as np

from ksdiff.extract.landmarks import LandmarkOptions, track_frames
from ksdiff.io.schemas import N_LANDMARKS
from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.frames import Rendered
from ksdiff.render.video import RenderError

NO_REFERENCE = "no recorded video of this clip to compare with (a clip unknown to the dataset)"


def method_video(clip: ClipInputs, s: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, landmarks) of sample ``s``: rendered landmarks for a rendered motion, extracted ones for a video."""
    if isinstance(clip.frames, Rendered):
        return clip.opened(("method", s), clip.frames, clip.decoded(s)[1])
    return clip.opened("method", clip.frames)  # a recorded video is the same for every sample


def method_landmarks(clip: ClipInputs, s: int) -> np.ndarray:
    """(T, 478, 3) landmarks ksdiff extracts from sample ``s``'s frames (NaN where it finds no face)."""
    if not isinstance(clip.frames, Rendered):
        return method_video(clip, s)[1]  # extracted from the external video by the workflow

    def extract():
        frames = method_video(clip, s)[0]
        cols, _ = track_frames(((k, k / clip.fps, k, f) for k, f in enumerate(frames)),
                               LandmarkOptions.from_cfg(clip.run.video.landmarks))
        lm = cols["landmarks"].reshape(len(frames), N_LANDMARKS, 3).astype(np.float64)
        lm[~cols["detected"]] = np.nan
        return lm

    return clip._memo(("extracted", s), extract)


def reference_video(clip: ClipInputs) -> tuple[np.ndarray, np.ndarray]:
    """(frames, extracted landmarks) of the clip's recorded video."""
    return clip.opened("reference", clip.reference)


def size_mismatch(pred_hw, ref_hw) -> str:
    """Why frames of (height, width) ``pred_hw`` cannot be compared with ``ref_hw`` ('' when they can)."""
    if tuple(pred_hw) == tuple(ref_hw):
        return ""
    return (f"the method's frames are {pred_hw[1]}x{pred_hw[0]}, the recorded video's {ref_hw[1]}x{ref_hw[0]}: a "
            "frame-by-frame comparison needs the same framing (ksdiff neither rescales nor aligns)")


def paired(clip: ClipInputs, s: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(the sample's frames, the recorded video's frames, '') over the frames both have, or (None, None, why)."""
    if clip.reference is None:
        return None, None, NO_REFERENCE
    pred, ref = method_video(clip, s)[0], reference_video(clip)[0]
    why = size_mismatch(pred.shape[1:3], ref.shape[1:3])
    if why:
        return None, None, why
    n = min(len(pred), len(ref))
    return pred[:n], ref[:n], ""


def sample_rows(clip: ClipInputs, names: tuple[str, ...], label: str, score_sample) -> list[Row]:
    """Rows of ``names`` for each scored sample: ``score_sample(s)`` -> ({name: (value, reason)}), a reason
    alone for every name when it raises a ValueError or RenderError (nothing to render, unreadable video)."""
    rows = []
    for s in clip.samples:
        if not clip.run.video.scores(s):
            continue
        try:
            got = score_sample(s)
        except (ValueError, RenderError, OSError) as e:
            got = {n: (float("nan"), f"{label}: {e}") for n in names}
        rows += [Row(s, n, v, why) for n, (v, why) in got.items()]
    return rows
