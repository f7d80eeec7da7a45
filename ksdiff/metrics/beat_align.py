"""BeatAlign (Bailando, Li et al. 2022) for head motion against speech onsets.

  motion beats: local minima of the Gaussian-smoothed head-motion speed, where
                speed(t) = ||h(t+1) - h(t)||_2 over head pose (yaw, pitch,
                roll) in degrees, assigned to frame t (as Bailando does);
  audio beats:  speech onsets from librosa's onset detector on the 16 kHz
                waveform, rounded to 25 fps frame indices;
  score:        mean over audio beats b of exp(-d(b)^2 / (2 sigma^2)),
                d(b) = distance in frames from b to the nearest motion beat.

Bailando's constants (sigma^2 = 9, smoothing sigma 5, both at 60 fps) are
durations, pinned in ksdiff.metrics.protocol in frames at 25 fps (1.25 and
2.083 frames); at another frame rate both are rescaled to the same duration
(``frames_at``), so a motion resampled to 50 fps scores as it does at 25 fps.
The score is undefined (NaN, with a reason) when either beat set is empty.
Bailando's score is kept unchanged so numbers compare with papers; its
chance-corrected form is ksdiff.metrics.beat_chance.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.numba_cache import import_librosa

log = logging.getLogger(__name__)


def frames_at(frames_at_protocol_fps: float, fps: float) -> float:
    """A duration pinned in frames at PROTOCOL.fps, in frames at ``fps``."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return frames_at_protocol_fps * fps / PROTOCOL.fps


def motion_speed(head: np.ndarray) -> np.ndarray:
    """(T-1,) frame-to-frame L2 speed of a (T, D) motion signal (degrees per frame)."""
    h = np.asarray(head, dtype=np.float64)
    if h.ndim == 1:
        h = h[:, None]
    if h.ndim != 2:
        raise ValueError(f"head motion must be (T, D); got shape {np.shape(head)}")
    if not np.all(np.isfinite(h)):
        raise ValueError("head motion contains NaN or inf (interpolate invalid frames first)")
    return np.linalg.norm(np.diff(h, axis=0), axis=1)


def motion_beats(
    head: np.ndarray,
    fps: float = PROTOCOL.fps,
    smooth_sigma: float | None = None,
) -> np.ndarray:
    """Frame indices of the local minima of the smoothed head speed.

    ``smooth_sigma`` is in frames at ``fps``; None takes the pinned protocol
    value (2.083 frames at 25 fps) rescaled to ``fps``, as it is a duration.
    """
    speed = motion_speed(head)
    if len(speed) < 3:
        return np.zeros(0, dtype=np.int64)
    sigma = frames_at(PROTOCOL.beat_smooth_sigma_frames, fps) if smooth_sigma is None else smooth_sigma
    smoothed = gaussian_filter1d(speed, sigma, mode="reflect") if sigma > 0 else speed
    # find_peaks keeps a flat minimum (equal neighbours) as its middle sample,
    # where argrelextrema(np.less) would miss it.
    idx, _ = find_peaks(-smoothed)
    return idx.astype(np.int64)


def audio_beats(
    wav: np.ndarray,
    sr: int = PROTOCOL.sample_rate,
    fps: float = PROTOCOL.fps,
    n_frames: int | None = None,
) -> np.ndarray:
    """Speech onsets as frame indices at ``fps`` (librosa, parameters pinned in PROTOCOL).

    n_frames: the motion's length T. Onsets that round to frame T-1 or later
    are dropped, frames 0..T-2 are kept: the frames the head speed covers
    (T-1 values, speed(t) assigned to frame t), so every kept onset could
    have a motion beat on it. Bailando does the same: its music beats are cut
    to len(kinetic_vel) = T-1 (get_mb(key, length) in its metrics.py).
    """
    librosa = import_librosa()

    y = np.asarray(wav, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"audio must be mono (n,), got shape {y.shape}")
    if sr != PROTOCOL.sample_rate:
        raise ValueError(f"BeatAlign audio must be {PROTOCOL.sample_rate} Hz (got {sr}); resample first")
    p = PROTOCOL
    if len(y) < p.onset_n_fft:
        return np.zeros(0, dtype=np.int64)
    env = librosa.onset.onset_strength(
        y=y, sr=sr, hop_length=p.onset_hop_length, n_fft=p.onset_n_fft, n_mels=p.onset_n_mels, fmax=p.onset_fmax
    )
    times = librosa.onset.onset_detect(
        onset_envelope=env,
        sr=sr,
        hop_length=p.onset_hop_length,
        units="time",
        backtrack=False,
        pre_max=p.onset_pre_max,
        post_max=p.onset_post_max,
        pre_avg=p.onset_pre_avg,
        post_avg=p.onset_post_avg,
        wait=p.onset_wait,
        delta=p.onset_delta,
    )
    frames = np.unique(np.round(np.asarray(times) * fps).astype(np.int64))
    if n_frames is not None:
        frames = frames[frames < n_frames - 1]
    return frames


def beat_align_with_reason(
    motion_beats: np.ndarray, audio_beats: np.ndarray, sigma: float | None = None, fps: float = PROTOCOL.fps
) -> tuple[float, str]:
    """(score, reason): reason is '' for a defined score, else why it is NaN.

    Beats are frame indices at ``fps``; ``sigma`` is in frames at ``fps``, None
    takes the pinned protocol value (1.25 frames at 25 fps) rescaled to ``fps``.
    """
    sigma = frames_at(PROTOCOL.beat_sigma_frames, fps) if sigma is None else sigma
    m = np.asarray(motion_beats, dtype=np.float64).ravel()
    a = np.asarray(audio_beats, dtype=np.float64).ravel()
    if a.size == 0:
        return float("nan"), "no audio beats (no onsets detected)"
    if m.size == 0:
        return float("nan"), "no motion beats (head speed has no local minimum)"
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    d = np.min(np.abs(a[:, None] - m[None, :]), axis=1)
    return float(np.mean(np.exp(-(d**2) / (2.0 * sigma**2)))), ""


def beat_align(
    motion_beats: np.ndarray, audio_beats: np.ndarray, sigma: float | None = None, fps: float = PROTOCOL.fps
) -> float:
    """Bailando's beat-align score in [0, 1]; NaN (reason logged) without beats."""
    score, reason = beat_align_with_reason(motion_beats, audio_beats, sigma, fps)
    if reason:
        log.warning("BeatAlign undefined: %s", reason)
    return score
