"""BeatAlign scorer: Bailando's score and its chance-corrected form per sample, against the clip's onsets
(detected once per clip, ClipInputs.onsets)."""
from __future__ import annotations

from ksdiff.metrics.beat_align import beat_align_with_reason, motion_beats
from ksdiff.metrics.beat_chance import beat_align_corrected
from ksdiff.metrics.clip import ClipInputs, Row


def score(clip: ClipInputs) -> list[Row]:
    rows = []
    for s in clip.samples:
        head = clip.head(s)
        a_beats, m_beats = clip.onsets_for(len(head)), motion_beats(head, clip.fps)
        rows.append(Row(s, "beat_align", *beat_align_with_reason(m_beats, a_beats, fps=clip.fps)))
        rows.append(Row(s, "beat_align_corrected", *beat_align_corrected(m_beats, a_beats, len(head), clip.fps)))
    return rows
