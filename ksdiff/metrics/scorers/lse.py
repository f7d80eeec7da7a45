"""LSE scorer (SyncNet, Wav2Lip's protocol): each sample's frames against the clip's audio.

The frames come from the clip's frame source (ksdiff.metrics.frames): the motion rendered over the clip's
reference frame, or an external method's own video. Ground truth is also scored on its recorded video
(lse_*_video, once per clip). Without SyncNet weights the scorer gives nothing (the table's attrs say why).
"""
from __future__ import annotations

from ksdiff.metrics.clip import ClipInputs, Row
from ksdiff.metrics.frames import crops_of
from ksdiff.metrics.mouth_crops import face_crops
from ksdiff.metrics.registry import LSE_NAMES, LSE_VIDEO_NAMES
from ksdiff.metrics.video_pair import method_video


def lse_of(model, crops, wav, fps: float, audio_cache: dict | None = None) -> dict:
    """SyncNet's result dict for a sample's face crops (ksdiff.metrics.mouth_crops); ``audio_cache``: the clip's
    audio embeddings, shared by its samples and its recorded video (ksdiff.metrics.syncnet.lse)."""
    # torch loads only when LSE is scored: a run without SyncNet weights never imports it
    from ksdiff.metrics.syncnet import lse

    return lse(model, crops, wav, color="rgb", fps=fps, audio_cache=audio_cache)


def sample_crops(clip: ClipInputs, s: int):
    """Sample ``s``'s face crops. When the video metrics read this sample's frames too, they are made once, into
    the buffer those metrics share (ksdiff.metrics.video_pair.method_video; rendering a sample costs about as
    much as cropping it); otherwise each frame is cropped as it is made and not kept. The same pixels either way."""
    if clip.run.video.frames_needed and clip.run.video.scores(s):
        return face_crops(*method_video(clip, s))
    return crops_of(clip.frames, clip.decoded(s)[1])


def score(clip: ClipInputs) -> list[Row]:
    model, n = clip.run.syncnet, clip.run.lse_samples
    if model is None or clip.frames is None:
        return []
    rows = []
    audio: dict = {}  # the clip's audio embeddings by window count: its audio stream runs once, not per video
    for s in clip.samples:
        if n is not None and s >= n:
            continue
        try:
            r = lse_of(model, sample_crops(clip, s), clip.wav, clip.fps, audio)
        except ValueError as e:  # e.g. clip too short for SyncNet's windows
            rows += [Row(s, k, float("nan"), f"LSE: {e}") for k in LSE_NAMES]
        else:
            rows += [Row(s, "lse_d", r["lse_d"]), Row(s, "lse_c", r["lse_c"]), Row(s, "lse_offset", float(r["offset"]))]
    if clip.source is not None:
        # The recorded video itself, as papers score "GT": next to the re-rendered row it shows what
        # landmark extraction + rendering lose (methods only ever exist rendered).
        try:
            r = lse_of(model, crops_of(clip.source), clip.wav, clip.fps, audio)
        except ValueError as e:
            rows += [Row(0, k, float("nan"), f"LSE on the source video: {e}") for k in LSE_VIDEO_NAMES]
        else:
            rows += [Row(0, "lse_d_video", r["lse_d"]), Row(0, "lse_c_video", r["lse_c"])]
    return rows
