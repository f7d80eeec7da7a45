"""Prosody per speech-feature frame: F0 (pYIN), voicing and frame energy.

The expression path of KSDiff's speech encoder is modulated by F0 and energy
(N' x 2) at the speech-feature rate, so both are computed on the same frame
grid as the features: frame i is centred on sample ``offset + i * hop``.

F0 uses librosa.pyin (probabilistic YIN with HMM voicing). Measured on this
project's 2-core CPU it runs at about 24x real time once numba has compiled
(the first call of a process pays a few seconds of compilation), so the
faster plain YIN plus an ad-hoc voicing threshold is not needed.
"""
from __future__ import annotations

import math

import numpy as np

from ksdiff.numba_cache import import_librosa

# Energy floor: frames quieter than this (digital silence) read this value
# instead of -inf, so the column stays finite for normalisation statistics.
ENERGY_FLOOR_DB = -100.0
# pYIN window: at least two periods of the lowest F0, rounded up to a power of
# two (60 Hz at 16 kHz -> 1024 samples = 64 ms); shorter windows miss low voices.
MIN_PERIODS = 2


def f0_frame_length(sr: int, f0_min: float) -> int:
    return 1 << math.ceil(math.log2(MIN_PERIODS * sr / f0_min))


def _frames_at(x: np.ndarray, offset: int) -> np.ndarray:
    """Signal shifted so that a centred analysis frame i sits on sample offset + i*hop."""
    return x[offset:] if offset > 0 else x


def _fit(v: np.ndarray, n: int, fill) -> np.ndarray:
    """Trim or pad a per-frame array to exactly n frames."""
    if len(v) >= n:
        return v[:n]
    return np.concatenate([v, np.full(n - len(v), fill, dtype=v.dtype)])


def energy_db(x: np.ndarray, hop: int, win: int, n_frames: int, offset: int = 0) -> np.ndarray:
    """RMS of a ``win``-sample window centred on each frame, in dBFS (floored)."""
    librosa = import_librosa()

    y = _frames_at(np.asarray(x, dtype=np.float32), offset)
    rms = librosa.feature.rms(y=y, frame_length=win, hop_length=hop, center=True, pad_mode="constant")[0]
    db = np.maximum(20.0 * np.log10(np.maximum(rms.astype(np.float64), 1e-30)), ENERGY_FLOOR_DB)
    return _fit(db.astype(np.float32), n_frames, np.float32(ENERGY_FLOOR_DB))


def pitch(x: np.ndarray, sr: int, hop: int, n_frames: int, f0_min: float, f0_max: float, offset: int = 0):
    """(f0_hz with 0 where unvoiced, voiced flags), one value per frame."""
    librosa = import_librosa()

    y = _frames_at(np.asarray(x, dtype=np.float32), offset)
    frame_length = f0_frame_length(sr, f0_min)
    if len(y) < frame_length // 2 + 1:  # too short for one pYIN window
        return np.zeros(n_frames, np.float32), np.zeros(n_frames, bool)
    f0, voiced, _ = librosa.pyin(
        y, fmin=f0_min, fmax=f0_max, sr=sr, frame_length=frame_length, hop_length=hop, center=True
    )
    voiced = voiced & np.isfinite(f0)
    f0 = np.where(voiced, f0, 0.0).astype(np.float32)
    return _fit(f0, n_frames, np.float32(0)), _fit(voiced, n_frames, False)


def prosody(x, sr: int, hop: int, win: int, n_frames: int, f0_min: float, f0_max: float, offset: int = 0) -> dict:
    """Columns f0_hz, voiced, energy_db for ``n_frames`` frames."""
    f0, voiced = pitch(x, sr, hop, n_frames, f0_min, f0_max, offset)
    return {"f0_hz": f0, "voiced": voiced, "energy_db": energy_db(x, hop, win, n_frames, offset)}
