"""Ground truth's head spread per speaker: the context printed under the leaderboard's temporal diversity."""
import numpy as np

from ksdiff.geometry import euler_to_matrix
from ksdiff.io.parquet import write_failure, write_table
from ksdiff.report.speaker_spread import context, ground_truth_spread
from render_fixtures import coeffs_cols

T = 250  # 10 s at 25 fps: whole periods of a 0.5 Hz sine


def _clip(path, amp: float) -> None:
    x = np.sin(2 * np.pi * 0.5 * np.arange(T) / 25.0)
    ypr = np.stack([amp * x, 0.5 * amp * x, 0.0 * x], 1)
    rot = np.stack([euler_to_matrix(*a) for a in ypr])
    write_table(path, "coeffs", coeffs_cols(np.zeros((T, 4)), rot, np.zeros((T, 3)), np.ones(T)))


def _results(tmp_path, speakers: dict[str, tuple[str, float, int]]):
    """speakers: id -> (split, amplitude in degrees, clips)."""
    (tmp_path / "coeffs").mkdir()
    rows = {"clip_id": [], "speaker_id": [], "split": []}
    for spk, (split, amp, n) in speakers.items():
        for i in range(n):
            clip = f"{spk}_{i:03d}"
            _clip(tmp_path / "coeffs" / f"{clip}.parquet", amp)
            rows["clip_id"].append(clip), rows["speaker_id"].append(spk), rows["split"].append(split)
    write_table(tmp_path / "splits.parquet", "splits", rows)
    return tmp_path


def test_spread_is_each_speakers_own_and_the_context_names_the_gap(tmp_path):
    r = _results(tmp_path, {"calm": ("test", 2.0, 3), "lively": ("train", 8.0, 2), "mid": ("train", 4.0, 2),
                            "held": ("val", 6.0, 1)})
    per = ground_truth_spread(r).set_index("speaker_id")
    # std of amp * sin over whole periods is amp / sqrt 2; yaw amp, pitch amp/2, roll 0 -> mean over 3 angles
    want = lambda amp: (amp + amp / 2) / np.sqrt(2) / 3  # noqa: E731
    for spk, amp in [("calm", 2.0), ("lively", 8.0), ("mid", 4.0), ("held", 6.0)]:
        assert abs(per.loc[spk, "td"] - want(amp)) < 0.01 * want(amp)
    text = context(r)
    assert f"{want(2.0):.2f} deg on the test speaker calm" in text
    assert f"{(want(8.0) + want(4.0)) / 2:.2f} on the 2 training speakers ({want(4.0):.2f} to {want(8.0):.2f}" in text
    assert f"{want(6.0):.2f} on the validation speaker." in text
    assert "no speaker style" in text


def test_failed_and_unusable_clips_are_left_out_and_large_splits_are_subsampled(tmp_path):
    r = _results(tmp_path, {"a": ("test", 2.0, 1), "b": ("train", 4.0, 9)})
    write_failure(r / "coeffs" / "b_004.parquet", "coeffs", "no face")
    (r / "coeffs" / "b_005.parquet").unlink()
    clips = ["a_000"] + [f"b_{i:03d}" for i in range(9)]
    n = len(clips)
    write_table(r / "qc.parquet", "qc", {
        "clip_id": clips, "speaker_id": [c[0] for c in clips], "dataset": ["x"] * n, "usable": [c != "b_006" for c in clips],
        "reason": ["landmarks: face lost" if c == "b_006" else "" for c in clips], "n_frames": np.full(n, T),
        "duration_s": np.full(n, 10.0), "audio_duration_s": np.full(n, 10.0), "av_mismatch_s": np.zeros(n),
        "detection_rate": np.ones(n), "landmark_jitter": np.zeros(n), "fit_residual": np.zeros(n), "n_words": np.ones(n)})
    per = ground_truth_spread(r).set_index("speaker_id")
    assert per.loc["b", "n_clips"] == 6
    assert ground_truth_spread(r, max_clips=3).set_index("speaker_id").loc["b", "n_clips"] <= 3


def test_no_context_without_both_test_and_training_clips(tmp_path):
    assert context(_results(tmp_path, {"a": ("test", 2.0, 2)})) == ""
    assert context(tmp_path / "nowhere") == ""
