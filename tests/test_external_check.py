"""ksdiff.metrics.external_check on speech whose relation to the ground truth is known: the same
recording (as it is, re-encoded, delayed, cut short) and other recordings of the same words."""
import numpy as np
import pyarrow as pa
import pytest

from ksdiff.io import parquet
from ksdiff.metrics import external_check as ec

SR = 16000
FPS = 25.0
SAMPLES_PER_FRAME = int(SR / FPS)


@pytest.fixture(scope="module")
def speech():
    """Two sentences by one espeak-ng voice and the first sentence by another voice, as the clip's audio would
    be: a little silence at both ends."""
    from ksdiff.data.synth.speech import Voice, espeak_binary, speak

    try:
        espeak_binary()
    except RuntimeError as e:
        pytest.skip(str(e))
    pad = np.zeros(int(0.3 * SR), np.float32)
    first = "The quick brown fox jumps over the lazy dog near the river bank."
    a = speak(first, Voice("en-us+m3", 170, 40), SR)
    b = speak("She sells sea shells by the sea shore every single summer morning.", Voice("en-us+m3", 170, 40), SR)
    same_words = speak(first, Voice("en-gb+f2", 160, 65), SR)
    return {k: np.concatenate([pad, x, pad]) for k, x in (("clip", a), ("other", b), ("same_words", same_words))}


def _frames(wav):
    return int(round(len(wav) / SAMPLES_PER_FRAME))


def _check(video_wav, gt_wav, n_frames=None, n_frames_gt=None):
    n_gt = _frames(gt_wav) if n_frames_gt is None else n_frames_gt
    n = (_frames(video_wav) if video_wav is not None else n_gt) if n_frames is None else n_frames
    return ec.check_clip("c", video_wav, gt_wav, n, n_gt, FPS, SR)


def test_the_same_audio_matches_exactly_and_is_scored_as_it_is(speech):
    c = _check(speech["clip"], speech["clip"])
    assert c.peak_corr == pytest.approx(1.0, abs=1e-9) and c.lag_s == 0.0 and c.lag_frames == 0
    assert c.status == ec.OK and c.scored and c.reason == "" and c.length_diff_frames == 0


def test_a_reencoded_copy_still_matches(speech, tmp_path):
    """A published video carries the clip's audio through a lossy codec (AAC here, as our mp4s)."""
    from ksdiff.io.audio import load_audio
    from ksdiff.io.video import write_video

    wav = speech["clip"]
    n = _frames(wav)
    write_video(tmp_path / "v.mp4", [np.zeros((32, 32, 3), np.uint8)] * n, FPS, wav, SR)
    back = load_audio(tmp_path / "v.mp4", SR)[0]
    c = _check(back, wav, n_frames=n)
    assert c.scored and c.status == ec.OK and abs(c.lag_s) < 0.5 / FPS, c
    assert c.peak_corr > 0.9, c


@pytest.mark.parametrize("delay_s", [0.2, -0.2])
def test_a_constant_lag_is_recovered_and_corrected(speech, delay_s):
    """A video padded at its start by 0.2 s (or starting 0.2 s into the clip): the lag is measured to the
    sample, and the frames that have no counterpart are dropped on the right side."""
    wav = speech["clip"]
    k = int(round(abs(delay_s) * SR))
    video = np.concatenate([np.zeros(k, np.float32), wav]) if delay_s > 0 else wav[k:]
    c = _check(video, wav)
    assert c.lag_s == pytest.approx(delay_s, abs=1.0 / SR), c
    assert c.lag_frames == round(delay_s * FPS) and c.status == ec.LAG_CORRECTED and c.scored
    assert c.peak_corr > 0.99 and abs(c.length_diff_frames) <= 1
    assert f"{delay_s:+.3f} s" in c.reason and f"{c.lag_frames:+d} frames" in c.reason
    assert (c.video_start, c.gt_start) == ((5, 0) if delay_s > 0 else (0, 5))


@pytest.mark.parametrize("other", ["other", "same_words"])
def test_another_recording_is_flagged_with_its_correlation(speech, other):
    """Other speech of the same length, and the same words in another voice: not the clip's audio."""
    wav = speech["clip"]
    video = np.resize(speech[other], len(wav))
    c = _check(video, wav)
    assert not c.scored and c.status == ec.MISMATCH
    assert c.peak_corr < ec.MIN_PEAK_CORR and "peak normalised correlation" in c.reason
    assert f"{c.peak_corr:.2f}" in c.reason


@pytest.mark.parametrize("n_short", [3, 10])
def test_a_video_shorter_by_more_than_the_tolerance_is_flagged(speech, n_short):
    wav = speech["clip"]
    n = _frames(wav)
    video = wav[: (n - n_short) * SAMPLES_PER_FRAME]
    c = _check(video, wav, n_frames=n - n_short, n_frames_gt=n)
    assert c.peak_corr > 0.95 and c.lag_frames == 0  # the same audio, cut short
    assert not c.scored and c.length_diff_frames == -n_short
    assert f"{n - n_short} frames against the clip's {n}: {n_short} frames shorter" in c.reason


def test_a_video_within_the_length_tolerance_is_scored(speech):
    wav = speech["clip"]
    n = _frames(wav)
    c = _check(wav[: (n - ec.MAX_LENGTH_DIFF_FRAMES) * SAMPLES_PER_FRAME], wav, n - ec.MAX_LENGTH_DIFF_FRAMES, n)
    assert c.scored and c.length_diff_frames == -ec.MAX_LENGTH_DIFF_FRAMES


def test_a_lag_beyond_half_a_second_is_flagged_not_corrected(speech):
    wav = speech["clip"]
    video = np.concatenate([np.zeros(int(0.8 * SR), np.float32), wav])
    c = _check(video, wav)
    assert c.lag_s == pytest.approx(0.8, abs=1.0 / SR) and not c.scored
    assert "+0.800 s" in c.reason and "beyond" in c.reason


def test_a_video_without_audio_is_checked_by_its_length_only(speech):
    wav = speech["clip"]
    n = _frames(wav)
    c = _check(None, wav, n_frames=n, n_frames_gt=n)
    assert c.status == ec.UNCHECKED and c.scored and "no audio" in c.reason
    assert c.row()["peak_corr"] is None and c.row()["lag_s"] is None  # JSON-safe
    c = _check(None, wav, n_frames=n - 8, n_frames_gt=n)
    assert not c.scored and "8 frames shorter" in c.reason


def test_align_drops_the_leading_frames_and_renumbers(speech):
    wav = speech["clip"]
    video = np.concatenate([np.zeros(int(0.2 * SR), np.float32), wav])
    c = _check(video, wav)
    n = _frames(video)
    table = parquet.Table(table=pa.table({"frame": np.arange(n, dtype=np.int32), "sample": np.zeros(n, np.int16),
                                          "yaw": np.arange(n, dtype=np.float32)}), name="coeffs", version=1)
    gt_t, video_t, gt_wav = c.align(table, table, wav, FPS, SR)
    assert gt_t is table and len(gt_wav) == len(wav)  # the video is the one padded
    assert video_t.table.column("frame").to_pylist() == list(range(n - 5))
    assert video_t.table.column("yaw").to_pylist()[0] == 5.0  # its frame 5 is the clip's frame 0
    c2 = _check(wav[int(0.2 * SR):], wav)
    gt_t, video_t, gt_wav = c2.align(table, table, wav, FPS, SR)
    assert video_t is table and gt_t.table.column("yaw").to_pylist()[0] == 5.0
    assert len(gt_wav) == len(wav) - 5 * SAMPLES_PER_FRAME
