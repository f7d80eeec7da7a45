"""Transcript step: word-timed transcript of one clip ('transcript' table).

Backends (config ``transcript.backend``):

- ``align``: forced alignment of the clip's known text with pocketsphinx. The
  text is read from ``{video path without its extension}.txt`` beside the
  video (the synthetic corpus writes one; users can add their own).
- ``pocketsphinx``: recognition with pocketsphinx's bundled English model.
- ``whisper``: recognition with a local Whisper model
  (``transcript.whisper_model_dir``, see ksdiff.extract.asr_whisper).
- ``auto`` (default): ``align`` when the text is known, else ``pocketsphinx``;
  when alignment fails (text and audio do not match) it falls back to
  recognition and says so in the attrs.

The audio comes from the audio step: ``audio`` is its Parquet table and the
16 kHz WAV lies beside it with the same stem. Attrs of the output: backend
(the one that produced the words), model, text (the reference text when known,
else the recognised words), text_source (reference | recognised), notes.
Word spellings are the backend's: lower-case CMUdict words for pocketsphinx
(digits spelled out), Whisper's own spelling for whisper.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ksdiff.extract import asr_pocketsphinx as ps
from ksdiff.data.manifest import clip_row
from ksdiff.io.audio import read_wav
from ksdiff.io.parquet import OK, SKIPPED, read_status, write_failure, write_table

log = logging.getLogger(__name__)


def reference_text_path(video_path: str | Path) -> Path:
    """Where a clip's known text lives: the video's path with suffix .txt."""
    return Path(video_path).with_suffix(".txt")


def reference_text(video_path: str | Path) -> str | None:
    """The clip's known text, or None when there is no (non-blank) text file."""
    p = reference_text_path(video_path)
    if not p.is_file():
        return None
    text = p.read_text(encoding="utf-8", errors="replace").strip()
    return text or None


def transcribe(cfg: dict, manifest: str, clip: str, audio: str, out: str) -> None:
    """Write the word-timed transcript of ``clip`` to ``out``.

    Skipped (with the audio step's reason) when the audio step failed; failed
    when ``backend: align`` is asked for but the clip has no text or the text
    cannot be aligned. A missing whisper model or package raises
    asr_whisper.WhisperUnavailable: that is a configuration error for every
    clip, not bad input.
    """
    tcfg = cfg["transcript"]
    status, reason = read_status(audio)
    if status != OK:
        write_failure(out, "transcript", f"audio: {reason}", status=SKIPPED, attrs={"clip_id": clip})
        return
    row = clip_row(manifest, clip)
    x, sr = read_wav(Path(audio).with_suffix(".wav"))
    ref = reference_text(row["path"])
    asked = tcfg["backend"]
    backend = ("align" if ref is not None else "pocketsphinx") if asked == "auto" else asked
    notes: list[str] = []
    model = ps.model_name()

    if backend == "align":
        if ref is None:
            write_failure(out, "transcript", f"backend 'align' needs the clip's text: {reference_text_path(row['path'])} not found",
                          attrs={"clip_id": clip})
            return
        try:
            words = ps.align(x, sr, ps.normalize_text(ref))
            n_oov = sum(1 for w in words if w[3] == 0.0)
            if n_oov:
                notes.append(f"{n_oov} word(s) not in the pronunciation dictionary: times interpolated, confidence 0")
        except ps.AlignmentError as e:
            if asked != "auto":
                write_failure(out, "transcript", f"alignment failed: {e}", attrs={"clip_id": clip})
                return
            log.warning("%s: alignment failed (%s); recognising instead", clip, e)
            notes.append(f"alignment of the reference text failed ({e}); words are recognised instead")
            backend = "pocketsphinx"
    if backend == "pocketsphinx":
        words = ps.recognize(x, sr)
    elif backend == "whisper":
        from ksdiff.extract import asr_whisper

        words, model = asr_whisper.recognize(x, sr, tcfg["whisper_model_dir"])

    cols = {
        "word": [w[0] for w in words],
        "start_s": [w[1] for w in words],
        "end_s": [w[2] for w in words],
        "confidence": [w[3] for w in words],
    }
    attrs = {
        "clip_id": clip,
        "backend": backend,
        "model": model,
        "text": ref if ref is not None else " ".join(cols["word"]),
        "text_source": "reference" if ref is not None else "recognised",
        "notes": notes,
    }
    write_table(out, "transcript", cols, attrs=attrs)
    log.info("%s: %d words (%s)", clip, len(words), backend)
