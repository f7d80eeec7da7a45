"""Video metrics without weights (issue 24 items 3 and 6): PSNR, SSIM, CPBD, F-LMD and M-LMD.

Known answers on the arithmetic (a video against itself: PSNR infinite, SSIM 1, LMD 0; PSNR of a known error,
SSIM of two flat frames, LMD of a known shift), CPBD equal to the reference package ViCo scores with
(python-cpbd's cpbd.compute) and ranking a blurred frame below a sharp one, and the scorers inside
evaluate_method: an external video that IS the clip's recorded video scores PSNR infinite (left out with its
reason), SSIM 1 and LMD 0; a clip unknown to the dataset gets CPBD only, with the reason for the rest; frames
of another size are refused with a reason; a method with ground truth's motion scores what ground truth scores.
"""
from pathlib import Path

import cpbd as cpbd_reference
import cv2
import numpy as np
import pytest
from skimage import data

from ksdiff.io import parquet
from ksdiff.metrics.clip import ClipInputs, Resources
from ksdiff.metrics.cpbd import cpbd
from ksdiff.metrics.frame_fidelity import psnr_frames, ssim_frames
from ksdiff.metrics.frames import Video
from ksdiff.metrics.lmd import lmd
from ksdiff.metrics.protocol import MEDIAPIPE_LIP_INDICES, PROTOCOL
from ksdiff.metrics.registry import BY_NAME, CPBD, F_LMD, M_LMD, PSNR, SSIM
from ksdiff.metrics.scorers import psnr as psnr_scorer
from ksdiff.metrics.video_settings import VideoSettings
from ksdiff.evaluate import evaluate_method
from tests.test_evaluate import _cfg, _random_syncnet, world  # noqa: F401  (world: the module's fixture)

VIDEO_NAMES = (PSNR, SSIM, CPBD, F_LMD, M_LMD)


def _video(seed=0, t=3, h=96, w=128):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3)).astype(np.uint8)


# ---------------------------------------------------------------- arithmetic: known answers
def test_a_video_against_itself_has_infinite_psnr_ssim_1_and_lmd_0():
    v = _video()
    assert np.all(np.isinf(psnr_frames(v, v))) and np.all(psnr_frames(v, v) > 0)
    assert np.allclose(ssim_frames(v, v), 1.0)
    lm = np.random.default_rng(1).normal(size=(5, 478, 3)) * 100
    assert lmd(lm, lm) == (0.0, 5) and lmd(lm, lm, MEDIAPIPE_LIP_INDICES) == (0.0, 5)


def test_psnr_of_a_known_error_and_ssim_of_flat_frames():
    ref = np.full((2, 64, 64, 3), 128, np.uint8)
    pred = ref.copy()
    pred[:, ::2] += 5  # half the pixels off by 5, half exact: MSE 12.5
    assert psnr_frames(pred, ref) == pytest.approx(10 * np.log10(255 ** 2 / 12.5), abs=1e-9)
    # flat frames a and b: no structure, SSIM = luminance term (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 255)^2
    a, b, c1 = 100.0, 140.0, (0.01 * 255) ** 2
    flat_a, flat_b = np.full((1, 32, 32, 3), a, np.uint8), np.full((1, 32, 32, 3), b, np.uint8)
    assert ssim_frames(flat_b, flat_a)[0] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-9)


def test_lmd_is_the_mean_absolute_coordinate_error_on_frames_with_a_face_in_both():
    ref = np.random.default_rng(2).normal(size=(4, 478, 3)) * 50
    pred = ref + np.array([3.0, -4.0, 100.0])  # z is ignored: ViCo's landmarks are 2-D
    pred[1] = np.nan  # no face in the method's frame 1
    ref[2] = np.nan  # none in the recorded frame 2
    assert lmd(pred, ref) == (pytest.approx(3.5), 2)  # (|3| + |-4|) / 2, over frames 0 and 3
    mouth = pred.copy()
    mouth[:, list(MEDIAPIPE_LIP_INDICES), 0] += 2.0  # only the lips move 2 px further
    assert lmd(mouth, ref, MEDIAPIPE_LIP_INDICES)[0] == pytest.approx(4.5)
    assert lmd(mouth, ref)[0] == pytest.approx(3.5 + 2.0 * len(MEDIAPIPE_LIP_INDICES) / 478 / 2)
    assert lmd(pred[1:2], ref[1:2]) == (pytest.approx(np.nan, nan_ok=True), 0)


def test_f_lmd_without_irises_is_over_the_468_mesh_points_as_the_protocol_says():
    """landmarks.refine_landmarks false leaves the iris rows NaN: F-LMD then averages the 468 mesh points (every
    frame still counts) instead of scoring no frame, on either side."""
    ref = np.random.default_rng(3).normal(size=(3, 478, 3)) * 50
    pred = ref + np.array([1.0, 1.0, 0.0])
    pred[:, 468:, :2] += 7.0  # the irises alone would move the mean
    assert lmd(pred, ref)[0] == pytest.approx(1.0 + 7.0 * 10 / 478)
    for side in (pred, ref):
        no_irises = side.copy()
        no_irises[:, 468:] = np.nan
        got = lmd(no_irises, ref) if side is pred else lmd(pred, no_irises)
        assert got == (pytest.approx(1.0), 3)
    assert "468 mesh points" in PROTOCOL.lmd_def


def _frames():
    img = data.astronaut()  # 512 x 512 RGB photograph, shipped with scikit-image
    rng = np.random.default_rng(3)
    return [img, cv2.resize(img, (256, 256)), img[100:300, 50:330], rng.integers(0, 256, (130, 200, 3)).astype(np.uint8),
            np.zeros((128, 128, 3), np.uint8), np.tile(np.arange(256, dtype=np.uint8), (100, 1))]


@pytest.mark.parametrize("k", range(6))
def test_cpbd_equals_the_reference_package_value_for_value(k):
    f = _frames()[k]
    grey = f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)  # as ViCo's script reads a frame
    assert cpbd(f) == cpbd_reference.compute(grey)
    blurred = cv2.GaussianBlur(grey, (0, 0), 1.5)
    assert cpbd(blurred) == cpbd_reference.compute(blurred)


def test_cpbd_ranks_a_blurred_frame_below_the_sharp_one():
    img = data.astronaut()
    values = [cpbd(cv2.GaussianBlur(img, (0, 0), s) if s else img) for s in (0, 1, 2, 4)]
    assert values == sorted(values, reverse=True) and values[0] > 2 * values[-1]
    assert cpbd(np.full((128, 128, 3), 7, np.uint8)) == 0.0  # no edge at all: no edge block


# ---------------------------------------------------------------- the scorers in evaluate_method
def _video_cfg(**over):
    cfg = _cfg()
    cfg["eval"]["video_metrics"] = ["psnr", "ssim", "cpbd", "lmd"]
    cfg["eval"].update(over)
    return cfg


def test_an_external_video_that_is_the_recorded_video_scores_psnr_inf_ssim_1_lmd_0(world, tmp_path):  # noqa: F811
    out = tmp_path / "ext.parquet"
    df = evaluate_method(_video_cfg(), str(world["res"]), str(world["ext"] / "coeffs"), "other", str(out), external=True)
    attrs = parquet.read_table(out, "metrics").attrs
    assert attrs["protocol_version"] == PROTOCOL.version
    v = df[df.clip_id == "spkA_0"].set_index("metric")["value"]
    assert v[SSIM] == pytest.approx(1.0) and v[F_LMD] == 0.0 and v[M_LMD] == 0.0 and 0 <= v[CPBD] <= 1
    undefined = {(u["clip_id"], u["metric"]): u["reason"] for u in attrs["undefined"]}
    assert PSNR not in set(v.index)
    assert undefined[("spkA_0", PSNR)] == "PSNR: equal to the recorded video on 40 of 40 frames, so infinite"
    # a clip the dataset does not know has no recorded video: CPBD only, the others with their reason
    extra = df[df.clip_id == "zz_extra"]
    assert set(extra.metric) & set(VIDEO_NAMES) == {CPBD}
    for name in (PSNR, SSIM, F_LMD, M_LMD):
        assert "no recorded video of this clip" in undefined[("zz_extra", name)]


def test_a_method_with_ground_truths_motion_scores_what_ground_truth_scores(world, tmp_path):  # noqa: F811
    cfg = _video_cfg(video_samples=1)
    gt = evaluate_method(cfg, str(world["res"]), None, "ground_truth")
    same = evaluate_method(cfg, str(world["res"]), str(world["pred"] / "same"), "same")
    assert set(same[same.metric.isin(VIDEO_NAMES)]["sample"]) == {0}  # video_samples: the first sample only
    key = ["clip_id", "metric"]
    g = gt[gt.metric.isin(VIDEO_NAMES)].set_index(key)["value"]
    s = same[same.metric.isin(VIDEO_NAMES)].set_index(key)["value"]
    assert set(s.index.get_level_values(1)) == set(VIDEO_NAMES)
    assert np.array_equal(s.sort_index().to_numpy(), g.loc[s.index].sort_index().to_numpy())
    # rendered ground truth is not the recorded (still) video: finite PSNR, SSIM below 1, landmarks moved
    assert np.isfinite(g.xs(PSNR, level=1)).all() and (g.xs(SSIM, level=1) < 1).all()
    assert (g.xs(F_LMD, level=1) > 0).all()


def test_lse_is_the_same_when_the_video_metrics_share_a_samples_frames(world, tmp_path):  # noqa: F811
    """With the video metrics on, LSE crops a sample from the frames they hold (rendered or decoded once); the
    other samples (video_samples 1) are cropped as they are made. Every LSE value equals the run without them."""
    weights = str(_random_syncnet(tmp_path / "syncnet_random.model"))
    lse = ["lse_d", "lse_c", "lse_offset"]
    runs = {"rendered": dict(predictions=str(world["pred"] / "same"), method="same"),
            "external": dict(predictions=str(world["ext"] / "coeffs"), method="other", external=True)}
    for name, kw in runs.items():
        got = [evaluate_method(cfg, str(world["res"]), syncnet=weights, **kw)
               for cfg in (_cfg(), _video_cfg(video_samples=1))]
        plain, shared = (d[d.metric.isin(lse)].set_index(["clip_id", "sample", "metric"])["value"].sort_index()
                         for d in got)
        assert len(plain) and plain.index.equals(shared.index), name
        assert np.array_equal(plain.to_numpy(), shared.to_numpy()), name
    assert set(plain.index.get_level_values("metric")) == set(lse)


def test_frames_of_another_size_than_the_recorded_video_are_refused_with_a_reason(tmp_path):
    from ksdiff.io.video import write_video

    big, small = tmp_path / "big.mp4", tmp_path / "small.mp4"
    write_video(big, list(_video(t=6, h=96, w=96)), 25)
    write_video(small, list(_video(t=6, h=64, w=64)), 25)
    no_face = np.full((6, 478, 3), np.nan)
    run = Resources(basis=None, video=VideoSettings(("psnr",)))
    clip = ClipInputs("c", 25.0, np.zeros(16000), parquet.Table(table=None, name="coeffs", version=1), None, None, run,
                      frames=Video(str(small), no_face, 25.0), reference=Video(str(big), no_face, 25.0))
    clip.__dict__["samples"] = [0]
    try:
        rows = psnr_scorer.score(clip)
    finally:
        clip.close()
    assert len(rows) == 1 and np.isnan(rows[0].value)
    assert rows[0].reason.startswith("PSNR: the method's frames are 64x64, the recorded video's 96x96")


def test_video_metrics_are_registered_with_units_direction_and_family():
    assert [BY_NAME[n].family for n in VIDEO_NAMES] == ["video fidelity"] * 4 + ["lip shape"]
    assert [BY_NAME[n].better for n in VIDEO_NAMES] == ["higher", "higher", "higher", "lower", "lower"]
    assert BY_NAME[PSNR].unit == "dB" and BY_NAME[F_LMD].unit == BY_NAME[M_LMD].unit == "px"
    with pytest.raises(ValueError, match="unknown"):
        VideoSettings.from_cfg({"eval": {"video_metrics": ["fid"]}}, Path("results"))


# ---------------------------------------------------------------- sanity rows (issue 24 item 5)
def test_sanity_rows_pair_the_reference_metrics_by_direction_and_set_cpbd_apart():
    import pandas as pd

    from ksdiff.metrics.registry import GROUND_TRUTH
    from ksdiff.report import sanity as sane

    clips = [f"c{i}" for i in range(6)]
    spread = np.linspace(-0.5, 0.5, len(clips))
    values = {(GROUND_TRUTH, PSNR): 24 + spread, ("static", PSNR): 20 + spread, ("mismatched", PSNR): 24 + spread,
              (GROUND_TRUTH, F_LMD): 2 + spread, ("static", F_LMD): 3 + spread, ("mismatched", F_LMD): 1 + spread,
              (GROUND_TRUTH, CPBD): 0.3 + spread / 10, ("static", CPBD): 0.4 + spread / 10,
              ("mismatched", CPBD): 0.3 + spread / 10}
    df = pd.DataFrame([(m, c, 0, k, float(x)) for (m, k), v in values.items() for c, x in zip(clips, v)],
                      columns=["method", "clip_id", "sample", "metric", "value"])
    t = sane.sanity_table(df, n_boot=200).set_index(["metric", "floor"])
    assert t.loc[(PSNR, "static"), "verdict"] == sane.PASS  # higher is better: 4 dB above the static face
    assert t.loc[(PSNR, "mismatched"), "verdict"] == sane.UNDETERMINED  # equal
    assert t.loc[(F_LMD, "static"), "verdict"] == sane.PASS  # lower is better
    assert t.loc[(F_LMD, "mismatched"), "verdict"] == sane.FAIL
    assert t.loc[(CPBD, sane.ALL_FLOORS), "verdict"] == sane.NOT_APPLICABLE
    assert "not a measure of the motion" in t.loc[(CPBD, sane.ALL_FLOORS), "reason"]


def test_the_report_defines_every_video_metric():
    from ksdiff.report.html import metric_definitions

    defs = metric_definitions()
    assert all(defs.get(n) for n in VIDEO_NAMES)
    assert "peak_signal_noise_ratio" in defs[PSNR] and "compute_lmd.py" in defs[M_LMD] and "python-cpbd" in defs[CPBD]
