"""Ground-truth motion from the speech: mouth per frame, head pose with prosody.

Every value is a deterministic function of the audio, the speaker's style and
a seeded generator, sampled at the motion frame rate with frame k at time
k / fps (the time the video shows frame k). Frame features are centred on
that time (librosa ``center=True`` with hop = sample_rate / fps).

Conventions of the columns written (schema 'synth_motion'):
  jaw_open   0 closed .. 1 fully open; drives the lower-lip/chin drop
  mouth_wide -1 rounded .. 0 neutral .. 1 spread lips
  yaw, pitch, roll  degrees, ksdiff.geometry convention, absolute:
             matrix_to_euler(face_frame(mesh)) of the frame's posed mesh
             (ksdiff.data.synth.warp). They move around the photo's own pose
             (attr base_pose; that pose is the rendered photo unchanged) by at
             most max_yaw_deg / max_pitch_deg / max_roll_deg.
  trans      pixels (x, y, 0): displacement of the head's rotation centre
             (the photo mesh's centroid) from where it is in the photo
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ksdiff.numba_cache import import_librosa

# --- mouth ----------------------------------------------------------------------
MOUTH_SMOOTH_FRAMES = 0.8  # Gaussian sigma: lips cannot jump between frames
JAW_GATE = 0.06  # below this (relative) level the mouth stays shut: breath, noise
JAW_REF_PERCENTILE = 95  # level that counts as fully open, robust to a few peaks
WIDE_GAIN = 0.9  # tanh gain on the standardised log spectral centroid
VOICED_LEVEL = 0.2  # frames above this relative level count as voiced speech
WIDE_FULL_LEVEL = 0.5  # lip shape reaches full strength at this relative level

# --- head -----------------------------------------------------------------------
ENERGY_SMOOTH_S = 0.25  # prosodic envelope: syllable-rate detail removed
# Duration of a nod (raised cosine). Its bottom, where the head stops, is the
# motion beat the nod puts after a stressed onset; it must outlast the head-speed
# smoothing of the pinned BeatAlign protocol (83 ms sigma) to be one. At 0.4 s
# the speed's dip at the bottom (|sin|, 5 frames a period) keeps 3% of its depth
# after that smoothing, so the smoothed speed PEAKED at stressed onsets; at
# 0.6 s (7.5 frames) 21%, and the true pose has a speed minimum 0..3 frames after
# 62% of the stressed onsets (17% at 0.4 s; demo corpus, issue 12).
NOD_WIDTH_S = 0.60
NOD_DELAY_S = 0.08  # nods peak shortly after the stressed onset
NOD_MIN_STRENGTH = 0.35  # onset strength (fraction of the clip's strongest) that counts as stress
NOD_DROP = 0.004  # the head also sinks a little in a nod: fraction of the frame size per full nod
YAW_SHIFT = 0.0006  # turning shifts the head sideways: fraction of the frame size per degree
F0_RANGE_HZ = (65.0, 450.0)


@dataclass
class SpeakerStyle:
    """How one speaker moves their head, as fractions of the config limits."""

    amplitude: float  # slow yaw/pitch/roll wander, fraction of max_*_deg
    speed_hz: float  # typical frequency of the wander
    nod: float  # nod size, fraction of max_pitch_deg
    nod_spacing_s: float  # at most one nod per this many seconds
    prosody: float  # how much loudness and pitch drive the head (0..1)
    trans: float  # translation wander, fraction of the frame size

    @classmethod
    def random(cls, rng: np.random.Generator) -> "SpeakerStyle":
        return cls(
            amplitude=float(rng.uniform(0.25, 0.6)),
            speed_hz=float(rng.uniform(0.15, 0.45)),
            nod=float(rng.uniform(0.3, 0.7)),
            nod_spacing_s=float(rng.uniform(0.5, 1.1)),
            prosody=float(rng.uniform(0.3, 0.8)),
            trans=float(rng.uniform(0.006, 0.02)),
        )

    def to_dict(self) -> dict:
        return asdict(self)


def frame_times(n_frames: int, fps: float) -> np.ndarray:
    return np.arange(n_frames) / fps


def _hop(sample_rate: int, fps: float) -> int:
    hop = sample_rate / fps
    if abs(hop - round(hop)) > 1e-9:
        raise ValueError(f"sample_rate / fps must be whole ({sample_rate} / {fps})")
    return int(round(hop))


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """First n values, padding with the last one (center=True gives n + 1 frames)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)), mode="edge")


def frame_rms(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """RMS per motion frame over a two-frame window centred on the frame time."""
    librosa = import_librosa()

    hop = _hop(sample_rate, fps)
    return _fit(librosa.feature.rms(y=audio, frame_length=2 * hop, hop_length=hop, center=True)[0], n_frames)


def _advance(x: np.ndarray, fps: float, lead_s: float) -> np.ndarray:
    """x evaluated lead_s later, so the face anticipates the sound it makes."""
    t = np.arange(len(x)) / fps
    return np.interp(t + lead_s, t, x)


def mouth_from_audio(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int,
                     lead_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(jaw_open, mouth_wide) per frame.

    jaw_open follows the RMS energy linearly (louder = more open: vowels are
    loud and open, closures are quiet), normalised by the clip's own loud
    level, and leads the sound by lead_s: jaw_open at frame k is the level at
    k / fps + lead_s.
    mouth_wide follows the spectral centroid of voiced frames: a high centroid
    (front vowels /i/ /e/, sibilants) spreads the lips, a low one (rounded /u/
    /o/) rounds them; it fades to neutral with the energy.
    """
    librosa = import_librosa()

    hop = _hop(sample_rate, fps)
    rms = frame_rms(audio, sample_rate, fps, n_frames)
    ref = np.percentile(rms, JAW_REF_PERCENTILE)
    level = np.clip(rms / ref, 0, 1) if ref > 0 else np.zeros_like(rms)
    gate = np.clip((level - JAW_GATE) / JAW_GATE, 0, 1)  # soft gate over one gate width
    jaw = gate * level

    centroid = _fit(librosa.feature.spectral_centroid(y=audio, sr=sample_rate, n_fft=2 * hop,
                                                      hop_length=hop, center=True)[0], n_frames)
    voiced = level > VOICED_LEVEL
    logc = np.log(np.maximum(centroid, 1.0))
    if voiced.sum() >= 3:
        z = (logc - np.median(logc[voiced])) / (logc[voiced].std() + 1e-6)
    else:
        z = np.zeros(n_frames)
    wide = np.tanh(WIDE_GAIN * z) * np.clip(level / WIDE_FULL_LEVEL, 0, 1)

    jaw = np.clip(gaussian_filter1d(_advance(jaw, fps, lead_s), MOUTH_SMOOTH_FRAMES), 0, 1)
    wide = np.clip(gaussian_filter1d(_advance(wide, fps, lead_s), MOUTH_SMOOTH_FRAMES), -1, 1)
    return jaw, wide


def _wander(rng: np.random.Generator, n: int, fps: float, speed_hz: float) -> np.ndarray:
    """Unit-variance low-pass noise with most energy below speed_hz."""
    pad = int(2 * fps / speed_hz)  # filter edge effects fall outside the clip
    x = rng.standard_normal(n + 2 * pad)
    x = gaussian_filter1d(x, fps / (2 * np.pi * speed_hz))[pad : pad + n]
    return (x - x.mean()) / (x.std() + 1e-9)


def stressed_onsets(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int,
                    spacing_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames of the strongest onsets at least spacing_s apart, and their strengths (0..1).

    librosa's onset strength peaks mark syllable starts; keeping the strongest
    ones with a minimum spacing approximates the stressed syllables that speakers
    emphasise with a nod.
    """
    librosa = import_librosa()

    hop = _hop(sample_rate, fps)
    env = _fit(librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=hop, center=True), n_frames)
    peaks = librosa.onset.onset_detect(onset_envelope=env, sr=sample_rate, hop_length=hop, units="frames")
    peaks = peaks[peaks < n_frames]
    if peaks.size == 0 or env.max() <= 0:
        return np.zeros(0, int), np.zeros(0)
    strength = env[peaks] / env.max()
    keep = []
    for i in np.argsort(-strength, kind="stable"):
        if strength[i] < NOD_MIN_STRENGTH:
            break
        if all(abs(peaks[i] - peaks[j]) >= spacing_s * fps for j in keep):
            keep.append(i)
    keep = np.sort(np.asarray(keep, int))
    return peaks[keep], strength[keep]


def _f0_track(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int, voiced: np.ndarray) -> np.ndarray:
    """Standardised log f0 on voiced frames, 0 elsewhere (YIN: fast, enough for prosody)."""
    librosa = import_librosa()

    hop = _hop(sample_rate, fps)
    frame_length = 1 << int(np.ceil(np.log2(2.2 * sample_rate / F0_RANGE_HZ[0])))
    f0 = _fit(librosa.yin(audio, fmin=F0_RANGE_HZ[0], fmax=F0_RANGE_HZ[1], sr=sample_rate,
                          frame_length=frame_length, hop_length=hop, center=True), n_frames)
    out = np.zeros(n_frames)
    if voiced.sum() >= 3:
        lf = np.log(f0[voiced])
        out[voiced] = (lf - np.median(lf)) / (lf.std() + 1e-6)
    return np.clip(out, -2.5, 2.5)


def head_from_audio(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int,
                    style: SpeakerStyle, limits: tuple[float, float, float], size: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Excursions (yaw, pitch, roll) in degrees (T, 3) and translation (T, 3) pixels.

    Slow wander (seeded low-pass noise at the speaker's speed) scaled up while
    the speaker is loud, a pitch nod after each stressed onset, roll following
    the voice's pitch contour; each angle is soft-limited to +-limit by tanh,
    so the limits are never exceeded and small motions stay linear.
    """
    max_yaw, max_pitch, max_roll = limits
    rms = frame_rms(audio, sample_rate, fps, n_frames)
    energy = gaussian_filter1d(rms, ENERGY_SMOOTH_S * fps)
    energy = energy / (energy.max() + 1e-9)
    voiced = rms > VOICED_LEVEL * np.percentile(rms, JAW_REF_PERCENTILE)
    f0z = gaussian_filter1d(_f0_track(audio, sample_rate, fps, n_frames, voiced), ENERGY_SMOOTH_S * fps)

    # Relative weights below: yaw carries most of the wander, pitch leaves room
    # for the nods, roll splits between wander and the voice's melody.
    activity = (1 - style.prosody) + style.prosody * energy  # livelier while talking
    yaw = style.amplitude * max_yaw * _wander(rng, n_frames, fps, style.speed_hz) * activity
    pitch = 0.6 * style.amplitude * max_pitch * _wander(rng, n_frames, fps, style.speed_hz)
    roll = style.amplitude * max_roll * (0.6 * _wander(rng, n_frames, fps, style.speed_hz)
                                         + 0.4 * style.prosody * f0z)
    # Loud passages lift the chin slightly (negative pitch = chin up).
    pitch -= 0.25 * style.prosody * max_pitch * (energy - energy.mean())

    t = frame_times(n_frames, fps)
    onsets, strength = stressed_onsets(audio, sample_rate, fps, n_frames, style.nod_spacing_s)
    nod = np.zeros(n_frames)
    for f, s in zip(onsets, strength):
        u = (t - (f / fps + NOD_DELAY_S)) / NOD_WIDTH_S  # -0.5..0.5 over the nod
        nod += s * np.where(np.abs(u) < 0.5, 0.5 * (1 + np.cos(2 * np.pi * u)), 0.0)
    pitch += style.nod * max_pitch * nod

    angles = np.stack([yaw, pitch, roll], axis=1)
    lim = np.array([max_yaw, max_pitch, max_roll], dtype=np.float64)
    angles = lim * np.tanh(angles / np.maximum(lim, 1e-9))

    amp = style.trans * size
    trans = np.zeros((n_frames, 3))
    trans[:, 0] = amp * _wander(rng, n_frames, fps, style.speed_hz) + YAW_SHIFT * size * angles[:, 0]
    trans[:, 1] = 0.6 * amp * _wander(rng, n_frames, fps, style.speed_hz) + NOD_DROP * size * style.nod * nod
    return angles, trans
