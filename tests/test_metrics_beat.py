"""BeatAlign: known answers for beats, motion minima and speech onsets, its
chance-corrected form, and the frame rate handling of the head-motion and
lip-sync metrics."""
import numpy as np
import pytest

from ksdiff.metrics.beat_align import audio_beats, beat_align, beat_align_with_reason, motion_beats
from ksdiff.metrics.beat_chance import beat_align_corrected, chance_offsets
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
    # frames 0..T-2 are kept (the head speed's T-1 frames, as Bailando cuts them): 1.50 s = frame 38
    assert audio_beats(_bursts(onsets), SR, FPS, n_frames=39).tolist() == expected[:2].tolist()
    assert audio_beats(_bursts(onsets), SR, FPS, n_frames=40).tolist() == expected[:3].tolist()
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


# --- chance-corrected BeatAlign ---------------------------------------------------


def test_chance_offsets_are_pinned_seeded_and_at_least_the_minimum_shift():
    n = 300
    o = chance_offsets(n, FPS)
    lo = PROTOCOL.beat_chance_min_shift_s * FPS
    assert len(o) == PROTOCOL.beat_chance_shifts
    assert o.min() >= lo and o.max() <= n - 1 - lo  # never closer than 2 s to the true timing, either way round
    np.testing.assert_array_equal(o, chance_offsets(n, FPS))
    assert chance_offsets(int(2 * lo), FPS).size == 0


def test_corrected_score_of_aligned_beats_is_positive_and_of_unrelated_beats_near_zero():
    rng = np.random.default_rng(1)
    n = 250  # 10 s
    audio = np.sort(rng.choice(np.arange(5, n - 5), 25, replace=False))
    score, why = beat_align_corrected(audio, audio, n, FPS)
    assert why == "" and score > 0.5  # 1 minus what these beats score against shifted onsets
    unrelated = [beat_align_corrected(np.sort(rng.choice(np.arange(1, n - 2), 12, replace=False)), audio, n, FPS)[0]
                 for _ in range(200)]
    assert abs(np.mean(unrelated)) < 0.01  # chance removed: 0 on average
    plain = [beat_align(np.sort(rng.choice(np.arange(1, n - 2), 12, replace=False)), audio) for _ in range(200)]
    assert np.mean(plain) > 0.1  # while Bailando's score credits chance alignments


def test_corrected_score_is_undefined_with_reason():
    s, why = beat_align_corrected(np.array([3, 9]), np.array([], dtype=int), 200, FPS)
    assert np.isnan(s) and "audio" in why
    s, why = beat_align_corrected(np.array([3, 9]), np.array([4, 10]), 90, FPS)  # 3.6 s < 2 x 2 s
    assert np.isnan(s) and "too short" in why


# --- frame rate: durations stay durations -----------------------------------------------


def _motion_at(fps, stops_s, dur):
    """Yaw stopping at ``stops_s`` (speed ramps over 0.24 s around each), sampled at ``fps`` from a 1 kHz curve."""
    t = np.arange(int(dur * 1000)) / 1000
    speed = np.minimum(1.0, np.min(np.abs(t[:, None] - np.asarray(stops_s)[None]), axis=1) / 0.24)
    yaw = np.cumsum(speed) * 50.0 / 1000  # 50 deg/s at full speed
    tf = np.arange(int(round(dur * fps))) / fps
    y = np.interp(tf, t, yaw)
    return np.stack([y, 0.5 * y, np.zeros_like(y)], axis=1)


def test_same_motion_at_25_and_50_fps_scores_the_same():
    rng = np.random.default_rng(0)
    onsets = np.round((np.cumsum(rng.uniform(0.45, 0.75, 14)) + 0.3) / 0.04) * 0.04  # ~9 s, on both frame grids
    dur = float(onsets[-1] + 0.6)
    wav = _bursts(onsets, dur=dur, seed=1)
    # Half the stops 40 ms after their onset (one frame at 25 fps, two at 50): the score then
    # depends on sigma in seconds, which must not change with the frame rate.
    stops = np.r_[onsets[::2] + 0.04, onsets[1::2] + 0.30]
    out = {}
    for fps in (25, 50):
        head = _motion_at(fps, stops, dur)
        ab = audio_beats(wav, SR, fps, n_frames=len(head))
        mb = motion_beats(head, fps)
        out[fps] = (beat_align(mb, ab, fps=fps), beat_align_corrected(mb, ab, len(head), fps)[0])
    (p25, c25), (p50, c50) = out[25], out[50]
    assert 0.3 < p25 < 0.8  # neither every beat exact nor every beat missed: sigma matters here
    # Equal up to quantisation (speed(t) sits on the earlier frame: half a frame, 20 ms at 25 fps,
    # 10 ms at 50); with sigma left at 1.25 frames, 50 fps scored 0.32 against 0.45 here.
    assert p50 == pytest.approx(p25, abs=0.05)
    assert c25 > 0.2 and c50 == pytest.approx(c25, abs=0.05)


def test_lse_refuses_a_frame_rate_other_than_25():
    from ksdiff.metrics.syncnet import SAMPLES_PER_FRAME, frame_steps, lse

    assert frame_steps(25.0) == (640, 4) and SAMPLES_PER_FRAME == 640  # 16 kHz / 25 fps, 100 Hz MFCC / 25 fps
    crops = np.zeros((30, PROTOCOL.crop_size, PROTOCOL.crop_size, 3), np.uint8)
    with pytest.raises(ValueError, match="25 fps"):
        lse(None, crops, np.zeros(30 * 320, np.float32), fps=50.0)
    with pytest.raises(ValueError, match="25 fps"):
        frame_steps(30.0)
