"""The weight-based metrics in evaluate_method: without weights every scored clip records why each is missing
(never a number) and the table's attrs say so; with weights (random ones, saved to files as a user configures
them) an external video that IS the clip's recorded video scores LPIPS 0, CSIM 1 and FVD 0, a clip unknown to
the dataset records that it has no recorded video, and the weights' sha256 is in the attrs.
FID goes through the same set-level code as FVD (ksdiff.metrics.weighted_frames.add_to_set); its Inception on
every frame is minutes on a CPU, so it is not run here (tests/test_metrics_fid.py checks its arithmetic)."""
import pytest

from ksdiff.evaluate import evaluate_method
from ksdiff.io import parquet
from ksdiff.metrics.registry import CSIM, FID, FVD, LPIPS
from tests.test_evaluate import _cfg, world  # noqa: F401  (world: the module's fixture)
from tests.test_metrics_csim import weights as arcface  # noqa: F401  (fixtures: random weight files)
from tests.test_metrics_fid import weights as fid_weights  # noqa: F401
from tests.test_metrics_fvd import weights as i3d  # noqa: F401
from tests.test_metrics_lpips import backbone  # noqa: F401

NAMES = {"fid": FID, "fvd": FVD, "lpips": LPIPS, "csim": CSIM}


def test_without_weights_every_clip_says_why_and_no_number(world, tmp_path):  # noqa: F811
    out = tmp_path / "same.parquet"
    df = evaluate_method(_cfg(), str(world["res"]), str(world["pred"] / "same"), "same", str(out))
    attrs = parquet.read_table(out, "metrics").attrs
    assert not set(df.metric) & set(NAMES.values())
    for name, metric in NAMES.items():
        why = {u["clip_id"]: u["reason"] for u in attrs["undefined"] if u["metric"] == metric}
        assert set(why) == set(attrs["clips"]) and all("weights configured" in r and "never downloaded" in r
                                                       for r in why.values())
        assert attrs["weighted"][name]["scored"] is False
    assert attrs["fid"]["value"] is None and "eval.fid_inception" in attrs["fid"]["reason"]
    assert attrs["fvd"]["value"] is None and attrs["fvd"]["ground_truth"] == {"n": 0}


def test_an_external_video_that_is_the_recorded_video(world, tmp_path, arcface, i3d, backbone):  # noqa: F811
    cfg = _cfg()
    cfg["eval"].update(fvd_i3d=i3d.path, lpips_alexnet=backbone.path, arcface_model=arcface.path)
    out = tmp_path / "ext.parquet"
    df = evaluate_method(cfg, str(world["res"]), str(world["ext"] / "coeffs"), "other", str(out), external=True)
    attrs = parquet.read_table(out, "metrics").attrs
    v = df[df.clip_id == "spkA_0"].set_index("metric")["value"]
    assert v[LPIPS] == 0.0
    assert v[CSIM] == pytest.approx(1.0, abs=1e-6)
    undefined = {(u["clip_id"], u["metric"]): u["reason"] for u in attrs["undefined"]}
    for metric in (LPIPS, CSIM, FVD):
        assert "no recorded video of this clip" in undefined[("zz_extra", metric)]
    assert "eval.fid_inception" in undefined[("spkA_0", FID)]  # not configured: still says why
    fvd = attrs["fvd"]
    assert fvd["ground_truth"]["n"] == fvd["method"]["n"] == 2  # 40 frames: two 16-frame windows each side
    assert fvd["value"] == pytest.approx(0, abs=1e-6) and fvd["weights"]["sha256"] == i3d.sha256
    w = attrs["weighted"]
    assert w["lpips"]["sha256"] == backbone.sha256 and len(w["lpips"]["linear_layers_sha256"]) == 64
    assert w["csim"]["sha256"] == arcface.sha256 and w["fid"]["scored"] is False


@pytest.mark.slow  # Inception on 80 frames and a 2048-d matrix square root: minutes on a shared core
def test_fid_of_an_external_video_that_is_the_recorded_video_is_0(world, tmp_path, fid_weights):  # noqa: F811
    cfg = _cfg()
    cfg["eval"]["fid_inception"] = fid_weights.path
    out = tmp_path / "ext.parquet"
    evaluate_method(cfg, str(world["res"]), str(world["ext"] / "coeffs"), "other", str(out), external=True)
    fid = parquet.read_table(out, "metrics").attrs["fid"]
    assert fid["ground_truth"]["n"] == fid["method"]["n"] == 40  # every frame of spkA_0, each side
    # identical frames: 0 up to pytorch-fid's eps on the diagonal of a singular (40 frames, 2048-d) covariance
    assert fid["value"] == pytest.approx(0, abs=1e-2) and fid["weights"]["sha256"] == fid_weights.sha256
