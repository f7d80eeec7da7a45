"""Whisper backend: word-timed recognition with a *local* Whisper model.

ksdiff never downloads models. ``transcript.whisper_model_dir`` must name a
directory holding either

- a CTranslate2 conversion for faster-whisper (``model.bin`` + ``config.json``),
  run on CPU with int8 weights; or
- an openai-whisper checkpoint (one ``*.pt`` file), run on CPU in fp32.

Neither package is a dependency of ksdiff; each is imported only here, and a
missing package or directory raises WhisperUnavailable naming what is missing.
Returns the same ``(word, start_s, end_s, confidence)`` tuples as the
pocketsphinx backend, confidence being Whisper's word probability.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Whisper's input rate
FASTER_WHISPER_COMPUTE = "int8"  # CPU-only machines: int8 is faster-whisper's fast CPU path


class WhisperUnavailable(RuntimeError):
    """The whisper backend cannot run: no model directory, or its package is missing."""


def resolve_model(model_dir: str | None) -> tuple[str, Path]:
    """('faster-whisper' | 'openai-whisper', model path) for a local model directory."""
    if not model_dir:
        raise WhisperUnavailable(
            "transcript backend 'whisper' needs transcript.whisper_model_dir: a local "
            "faster-whisper (model.bin) or openai-whisper (*.pt) model directory; ksdiff never downloads models"
        )
    d = Path(model_dir).expanduser()
    if not d.is_dir():
        raise WhisperUnavailable(f"whisper model directory not found: {d}")
    if (d / "model.bin").exists():
        return "faster-whisper", d
    pts = sorted(d.glob("*.pt"))
    if len(pts) == 1:
        return "openai-whisper", pts[0]
    if len(pts) > 1:
        raise WhisperUnavailable(f"{d} holds several openai-whisper checkpoints ({[p.name for p in pts]}); keep one")
    raise WhisperUnavailable(f"{d} holds no faster-whisper model (model.bin) nor openai-whisper checkpoint (*.pt)")


def _import(package: str, module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise WhisperUnavailable(
            f"the whisper model needs the Python package '{package}' (import {module!r}), which is not installed: {e}"
        ) from e


@functools.lru_cache(maxsize=2)
def _load(kind: str, path: Path):
    if kind == "faster-whisper":
        fw = _import("faster-whisper", "faster_whisper")
        return fw.WhisperModel(str(path), device="cpu", compute_type=FASTER_WHISPER_COMPUTE)  # a path: never downloads
    whisper = _import("openai-whisper", "whisper")
    return whisper.load_model(str(path), device="cpu")


def recognize(x: np.ndarray, sr: int, model_dir: str | None) -> tuple[list[tuple], str]:
    """(words, model description) of 16 kHz mono float audio."""
    kind, path = resolve_model(model_dir)
    model = _load(kind, path)
    x = np.asarray(x, dtype=np.float32)
    if sr != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32)
    words = []
    if kind == "faster-whisper":
        segments, _info = model.transcribe(x, word_timestamps=True)
        for seg in segments:
            for w in seg.words or []:
                words.append((w.word.strip(), float(w.start), float(w.end), float(w.probability)))
    else:
        result = model.transcribe(x, word_timestamps=True, fp16=False)
        for seg in result["segments"]:
            for w in seg.get("words", []):
                words.append((w["word"].strip(), float(w["start"]), float(w["end"]), float(w["probability"])))
    return [w for w in words if w[0]], f"{kind} {path}"
