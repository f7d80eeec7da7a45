"""BeatAlign: known answers for beats, motion minima and speech onsets."""
import numpy as np
import pytest

from ksdiff.metrics.beat_align import audio_beats, beat_align, beat_align_with_reason, motion_beats
from ksdiff.metrics.protocol import PROTOCOL

FPS, SR = 25, 16000


def test_pinned_constants_are_bailando_scaled_to_25fps():
    assert PROTOCOL.beat_sigma_frames == pytest.approx(1.25)  # sqrt(9) * 25 / 60
    assert PROTOCOL.beat_smooth_sigma_frames == pytest.approx(5 * 25 / 60)


def test_perfectly_aligned_beats_score_one_and_far_beats_near_zero():
    beats = np.array([10, 40, 77, 120])
    assert beat_align(beats, beats) == 1.0
    assert beat_align(beats, beats + 10) < 1e-10  # every audio beat 10 frames (400 ms) from motion
    # one audio beat 1 frame off, one exact: (exp(-1 / (2 * 1.25^2)) + 1) / 2
    s = beat_align(np.array([10, 50]), np.array([11, 50]))
    assert s == pytest.approx((np.exp(-1 / (2 * 1.25**2)) + 1) / 2)


def test_no_beats_is_nan_with_reason():
    s, why = beat_align_with_reason(np.array([3, 9]), np.array([], dtype=int))
    assert np.isnan(s) and "audio" in why
    s, why = beat_align_with_reason(np.array([], dtype=int), np.array([3]))
    assert np.isnan(s) and "motion" in why
    assert np.isnan(beat_align([], []))


def _head_with_stops(T, stops):
    """Yaw that stops (speed 0) exactly at the given frames, speed ramps between."""
    speed = np.ones(T - 1)
    t = np.arange(T - 1)
    for s in stops:
        speed = np.minimum(speed, np.abs(t - s) / 6.0)
    yaw = np.concatenate([[0.0], np.cumsum(speed * 2.0)])  # 2 deg/frame at full speed
    return np.stack([yaw, 0.5 * yaw, np.zeros(T)], axis=1)


def test_motion_beats_are_the_known_stops():
    stops = [20, 45, 70, 110]
    found = motion_beats(_head_with_stops(150, stops), fps=FPS)
    np.testing.assert_array_equal(found, stops)


def test_motion_beats_of_flat_stops_are_their_middle():
    speed = np.ones(99)
    speed[30:37] = 0.0  # a 7-frame pause: frames 30..36, middle 33
    speed[60:64] = 0.0  # an even pause 60..63: middle rounded down, 61
    head = np.concatenate([[0.0], np.cumsum(speed)])[:, None]
    np.testing.assert_array_equal(motion_beats(head, fps=FPS), [33, 61])


def _bursts(onsets_s, dur=2.5, burst_s=0.2, seed=0):
    """Broadband (noise) bursts, like syllable onsets: 5 ms attack, raised-cosine decay."""
    rng = np.random.default_rng(seed)
    wav = np.zeros(int(dur * SR))
    k = np.arange(int(burst_s * SR))
    env = np.minimum(k / (0.005 * SR), 1) * 0.5 * (1 + np.cos(np.pi * k / len(k)))
    for t in onsets_s:
        i = int(t * SR)
        wav[i : i + len(k)] += 0.3 * rng.standard_normal(len(k)) * env
    return wav.astype(np.float32)


def test_audio_beats_find_burst_onsets_at_25fps():
    onsets = [0.30, 0.92, 1.50, 2.04]
    got = audio_beats(_bursts(onsets), SR, FPS)
    expected = np.round(np.array(onsets) * FPS).astype(int)
    assert len(got) == len(expected)
    assert np.all(np.abs(got - expected) <= 1)
    assert np.all(audio_beats(_bursts(onsets), SR, FPS, n_frames=40) < 40)
    assert audio_beats(np.zeros(SR, np.float32), SR, FPS).size == 0


def test_head_stopping_on_speech_onsets_scores_high_and_shifted_scores_low():
    onsets = [0.40, 1.00, 1.60, 2.20, 2.80]
    wav = _bursts(onsets, dur=3.4)
    ab = audio_beats(wav, SR, FPS)
    stops = list(np.round(np.array(onsets) * FPS).astype(int))
    aligned = beat_align(motion_beats(_head_with_stops(85, stops)), ab)
    shifted = beat_align(motion_beats(_head_with_stops(85, [s + 7 for s in stops])), ab)
    assert aligned > 0.7
    assert shifted < 0.05
