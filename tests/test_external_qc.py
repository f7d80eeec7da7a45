"""The external videos' QC table (ksdiff.metrics.external_qc): every video of an external method is placed
against the dataset with its reason, checked one shard at a time and merged; scoring a shard reads its part.
Scored shard by shard as the workflow does, the merged metrics table equals the one a single job writes that
checks every video itself."""
import shutil

import numpy as np
import pytest

from ksdiff.evaluate import evaluate_method, merge_metrics
from ksdiff.io import parquet
from ksdiff.metrics import external_check, external_qc
from tests.test_evaluate import _cfg, _manifest, world  # noqa: F401  (world: the fabricated run)

# The fabricated run's external method (tests/test_evaluate.py): spkA_0 matches its test clip, zz_extra is no
# clip of the dataset. Added here: a training clip's video, a video of the test clip QC left out, and a video
# whose extraction failed. Two shards of the videos, as the listing would cut them.
SHARDS = [["spkA_0", "spkB_0", "spkC_0"], ["spkD_0", "zz_extra"]]
EXPECTED = {
    "spkA_0": (external_check.OK, True),
    "spkB_0": (external_qc.NOT_EXTRACTED, False),
    "spkC_0": (external_qc.GT_UNUSABLE, False),
    "spkD_0": (external_qc.OTHER_SPLIT, False),
    "zz_extra": (external_qc.NO_GROUND_TRUTH, True),
}


@pytest.fixture(scope="module")
def ext(world, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("extqc") / "fab-ext-other"
    shutil.copytree(world["ext"], root)
    for clip in ("spkC_0", "spkD_0"):
        shutil.copy(root / "coeffs/spkA_0.parquet", root / f"coeffs/{clip}.parquet")
        shutil.copy(root / "audio/spkA_0.wav", root / f"audio/{clip}.wav")
    parquet.write_failure(root / "coeffs/spkB_0.parquet", "coeffs", "landmarks: no face found")
    video = parquet.read_table(world["ext"] / "manifest.parquet", "manifest").to_pandas()["path"][0]
    for i, clips in enumerate(SHARDS):
        _manifest(root / f"manifest/{i:05d}.parquet", clips, video)
    return root


def _check(world, ext, tmp_path):  # noqa: F811
    parts = []
    for i in range(len(SHARDS)):
        parts.append(str(tmp_path / f"external_qc/other/{i:05d}.parquet"))
        assert external_qc.check_shard(_cfg(), str(world["res"]), str(ext), str(ext / f"manifest/{i:05d}.parquet"),
                                       "other", parts[-1]) == 0
    merged = tmp_path / "external_qc/other.parquet"
    assert external_qc.merge_external_qc(_cfg(), parts, str(merged)) == 0
    return parts, merged


def test_every_video_is_placed_against_the_dataset_with_its_reason(world, ext, tmp_path):  # noqa: F811
    parts, merged = _check(world, ext, tmp_path)
    rows = external_qc.read_rows(merged)
    assert [r["clip_id"] for r in rows] == [c for s in SHARDS for c in s]  # shard order
    assert {r["clip_id"]: (r["status"], r["scored"]) for r in rows} == EXPECTED
    by = {r["clip_id"]: r for r in rows}
    assert by["spkA_0"]["peak_corr"] == pytest.approx(1.0) and by["spkA_0"]["lag_s"] == 0
    assert by["zz_extra"]["peak_corr"] is None and by["zz_extra"]["n_frames_gt"] == 0  # nothing to measure against
    assert by["spkC_0"]["reason"] == "qc: landmarks: face too small"
    assert by["spkD_0"]["reason"].startswith("a clip of the train split")
    assert "landmarks: no face found" in by["spkB_0"]["reason"]
    assert all(r["method"] == "other" and r["dataset"] == "fab" and r["path"] for r in rows)
    attrs = parquet.read_table(merged, "external_qc").attrs
    assert attrs["thresholds"]["min_peak_corr"] == external_check.MIN_PEAK_CORR and attrs["n_parts"] == 2


def test_scoring_shard_by_shard_equals_one_job_checking_every_video(world, ext, tmp_path):  # noqa: F811
    parts, _ = _check(world, ext, tmp_path)
    res, pred = str(world["res"]), str(ext / "coeffs")
    scored = []
    for i, part in enumerate(parts):
        scored.append(str(tmp_path / f"ext-other/{i:05d}.parquet"))
        evaluate_method(_cfg(), res, pred, "other", scored[-1], external=True, checks=part)
    merged = tmp_path / "ext-other.parquet"
    assert merge_metrics(_cfg(), res, scored, "other", str(merged), external=True) == 0
    one = tmp_path / "one.parquet"
    evaluate_method(_cfg(), res, pred, "other", str(one), external=True)
    a, b = parquet.read_table(merged, "metrics"), parquet.read_table(one, "metrics")
    key = ["clip_id", "sample", "metric"]
    da, db = (t.to_pandas().sort_values(key).reset_index(drop=True) for t in (a, b))
    assert da[key].equals(db[key]) and np.array_equal(da["value"].to_numpy(), db["value"].to_numpy(), equal_nan=True)
    assert a.attrs["clips"] == b.attrs["clips"] == ["spkA_0", "zz_extra"]
    assert a.attrs["external_check"] == b.attrs["external_check"] and len(a.attrs["external_check"]) == 1
    why = {s["clip_id"]: s["reason"] for s in a.attrs["skipped"]}
    assert why == {s["clip_id"]: s["reason"] for s in b.attrs["skipped"]}
    # the test clip QC left out is listed once, by QC's reason; the others by the external check's
    assert why["spkC_0"] == "qc: landmarks: face too small" and [s["clip_id"] for s in a.attrs["skipped"]].count("spkC_0") == 1
    assert why["spkD_0"].startswith("external check: a clip of the train split")
    assert why["spkB_0"].startswith("external check: the video's coefficients")
    # the usable test clips the folder holds no video of: listed once, with the reason
    assert why["spkA_1"] == why["spkB_1"] == external_qc.NO_VIDEO
    assert [s["clip_id"] for s in a.attrs["skipped"]].count("spkA_1") == 1
    assert a.attrs["videos"] == b.attrs["videos"] == sorted(c for s in SHARDS for c in s)


def test_an_empty_folder_of_videos_gives_a_failed_metrics_table_that_says_so(world, tmp_path):  # noqa: F811
    out = tmp_path / "ext-none.parquet"
    assert merge_metrics(_cfg(), str(world["res"]), [], "none", str(out), external=True) == 0
    t = parquet.read_table(out, "metrics")
    assert not t.ok and "holds none" in t.reason and t.attrs["external"] and t.attrs["clips"] == []
    assert [s["clip_id"] for s in t.attrs["skipped"] if s["reason"] == external_qc.NO_VIDEO] == [
        "spkA_0", "spkA_1", "spkB_0", "spkB_1"]  # every usable test clip
