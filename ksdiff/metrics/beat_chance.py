"""Chance-corrected BeatAlign: Bailando's score minus what the same motion scores by chance.

Bailando's score (ksdiff.metrics.beat_align) is high for any motion with many
speed minima, related to the speech or not: with a few motion beats a second
and a 50 ms sigma, another clip's head motion scores about as well as the
speaker's own. The chance level of one motion is measured, not modelled: the
same motion beats are scored against the clip's own audio beats circularly
shifted in time by seeded offsets of at least ``beat_chance_min_shift_s``
(so no shifted onset is near the time it was spoken), and the mean of those
scores is subtracted:

    corrected = BA(motion, onsets) - mean_k BA(motion, (onsets + o_k) mod (T - 1))

o_k: ``beat_chance_shifts`` offsets in frames drawn uniformly from
[min_shift, T - 1 - min_shift] by numpy's default_rng(``beat_chance_seed``);
T - 1: the frames the head speed covers (0..T-2, where onsets are kept and
motion beats lie), for a motion of T frames. A circular shift keeps the number of onsets and
their spacing (the speech rhythm), so only their timing relative to the motion
changes. The score is 0 on average for motion unrelated to the speech and
positive when motion beats follow the onsets; it is undefined (NaN, with a
reason) when Bailando's is, or when the clip is shorter than twice the
minimum shift.
"""
from __future__ import annotations

import numpy as np

from ksdiff.metrics.beat_align import beat_align_with_reason
from ksdiff.metrics.protocol import PROTOCOL


def chance_offsets(n_frames: int, fps: float = PROTOCOL.fps) -> np.ndarray:
    """The pinned, seeded circular offsets (frames) for a motion of ``n_frames`` frames; empty if too short."""
    lo = int(np.ceil(PROTOCOL.beat_chance_min_shift_s * fps))
    hi = n_frames - 1 - lo
    if hi < lo:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(PROTOCOL.beat_chance_seed)
    return rng.integers(lo, hi + 1, size=PROTOCOL.beat_chance_shifts).astype(np.int64)


def beat_align_corrected(
    motion_beats: np.ndarray, audio_beats: np.ndarray, n_frames: int, fps: float = PROTOCOL.fps
) -> tuple[float, str]:
    """(score, reason): Bailando's score minus its mean over circularly shifted audio beats.

    Beats are frame indices at ``fps`` of a motion ``n_frames`` long (the
    audio beats as ksdiff.metrics.beat_align.audio_beats returns them);
    reason is '' for a defined score, else why it is NaN.
    """
    score, why = beat_align_with_reason(motion_beats, audio_beats, fps=fps)
    if why:
        return score, why
    offsets = chance_offsets(n_frames, fps)
    if offsets.size == 0:
        return float("nan"), (f"clip too short for the chance level: {n_frames / fps:.2f} s is under 2 x "
                              f"{PROTOCOL.beat_chance_min_shift_s:g} s minimum shift")
    a = np.asarray(audio_beats, dtype=np.int64).ravel()
    chance = [beat_align_with_reason(motion_beats, (a + o) % (n_frames - 1), fps=fps)[0] for o in offsets]
    return score - float(np.mean(chance)), ""
