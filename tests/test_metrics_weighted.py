"""The weight-based metrics' run state: nothing configured -> every metric says why, nothing loads; a set path
that is missing stops the run; FID/FVD moments survive the tables' attrs bit for bit and add up over shards."""
import json

import numpy as np
import pytest

from ksdiff.metrics import weighted
from ksdiff.metrics.efid import Moments, frechet_distance
from ksdiff.metrics.weights import WeightsMissing


def test_nothing_configured_nothing_loaded_every_reason_named():
    w = weighted.WeightedModels.from_cfg({})
    assert not w.models and not any(w.on(n) for n in weighted.KEYS)
    d = w.describe()
    assert d["fid"] == {"scored": False, "note": "not scored: no FID weights configured (eval.fid_inception; never downloaded)"}
    assert all("never downloaded" in d[n]["note"] for n in weighted.KEYS)
    rec = weighted.set_record("fvd", {s: Moments() for s in weighted.SIDES}, [None], "def")
    assert rec["value"] is None and "eval.fvd_i3d" in rec["reason"] and rec["weights"] is None


def test_a_configured_path_that_is_missing_stops_the_run(tmp_path):
    with pytest.raises(WeightsMissing, match="eval.arcface_model"):
        weighted.WeightedModels.from_cfg({"arcface_model": str(tmp_path / "w600k_r50.onnx")})


def test_moments_round_trip_through_json_attrs_and_add_over_shards():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 7)), rng.standard_normal((30, 7)) + 1
    shards = []
    for part in (x[:20], x[20:]):
        acc = {"ground_truth": Moments(), "method": Moments()}
        acc["ground_truth"].add(part)
        acc["method"].add(y[: len(part) // 2])
        shards.append(json.loads(json.dumps({"ground_truth": weighted.encode(acc["ground_truth"]),
                                             "method": weighted.encode(acc["method"])})))
    acc = weighted.merged("fid", shards + [None])
    whole = Moments()
    whole.add(x)
    assert acc["ground_truth"].n == 50
    np.testing.assert_allclose(acc["ground_truth"].gaussian()[1], whole.gaussian()[1], rtol=0, atol=1e-12)
    back = weighted.decode(json.loads(json.dumps(weighted.encode(whole))))  # the attrs codec: bit for bit
    np.testing.assert_array_equal(back.outer, whole.outer)
    np.testing.assert_array_equal(back.total, whole.total)
    value, why = weighted.distance("fid", acc["ground_truth"], acc["method"])
    assert not why and value == pytest.approx(frechet_distance(*whole.gaussian(), *acc["method"].gaussian()), rel=1e-9)
    assert weighted.distance("fvd", Moments(), acc["method"])[1].startswith("too few 16-frame windows")
    one = {"key": "eval.fid_inception", "weights": "a.pth", "sha256": "ab" * 32}
    assert weighted.set_record("fid", acc, [one, one], "def")["value"] == pytest.approx(value)
    mixed = weighted.set_record("fid", acc, [one, {**one, "sha256": "cd" * 32}], "def")
    assert mixed["value"] is None and "different weights" in mixed["reason"]


def test_merging_one_shard_takes_its_value_and_more_shards_recompute_it(monkeypatch):
    """merge-metrics over a single shard gives that shard's record unchanged, without the distance's matrix
    square roots again; over two shards the value is the distance of the summed moments."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 5)) + 0.5
    one = {"key": "eval.fid_inception", "weights": "a.pth", "sha256": "ab" * 32}
    records = []
    for part in (slice(0, 25), slice(25, 40)):
        acc = {"ground_truth": Moments(), "method": Moments()}
        acc["ground_truth"].add(x[part])
        acc["method"].add(y[part])
        records.append(json.loads(json.dumps(weighted.set_record("fid", acc, [one], "def"))))
    whole = {"ground_truth": Moments(), "method": Moments()}
    whole["ground_truth"].add(x)
    whole["method"].add(y)
    # a shard without a value (here too few frames; or no weights) keeps its reason
    few = {"ground_truth": Moments(), "method": Moments()}
    few["ground_truth"].add(x[:1])
    few["method"].add(y[:1])
    lone = json.loads(json.dumps(weighted.set_record("fid", few, [one], "def")))
    assert lone["value"] is None and lone["reason"].startswith("too few frames")
    calls = []
    monkeypatch.setattr(weighted, "distance", lambda *a: calls.append(a) or (123.0, ""))
    assert weighted.merged_record("fid", records[:1], "def") == records[0] and not calls
    merged = weighted.merged_record("fid", records, "def")
    assert len(calls) == 1 and merged["value"] == 123.0  # the summed moments' distance, not a shard's
    assert calls[0][1].n == calls[0][2].n == 40
    np.testing.assert_allclose(calls[0][1].gaussian()[1], whole["ground_truth"].gaussian()[1], atol=1e-12)
    assert weighted.merged_record("fid", [lone], "def") == lone and len(calls) == 1


def test_a_clip_whose_frames_fail_adds_nothing_and_says_why():
    """Set-level FID/FVD: a clip whose frames cannot be made (a render error, an unreadable video) records its
    reason and adds to neither side, so the distributions stay paired clip by clip."""
    from types import SimpleNamespace

    from ksdiff.metrics.registry import FVD
    from ksdiff.metrics.weighted_frames import add_to_set
    from ksdiff.render.video import RenderError

    run = SimpleNamespace(weighted=weighted.WeightedModels(models={"fvd": object()}), video=SimpleNamespace(
        scores=lambda s: True))

    class Clip:
        samples, frames, reference = [0, 1], object(), object()

        def __init__(self, fail):
            self.run, self.fail = run, fail

        def opened(self, key, source, posed=None):
            if self.fail and key != "reference":
                raise RenderError("no face in the reference frame")
            return np.zeros((32, 8, 8, 3), np.uint8), None

    feats = lambda model, frames: np.ones((len(frames) // 16, 3))  # noqa: E731
    rows = add_to_set(Clip(fail=True), "fvd", FVD, feats)
    assert [r.reason for r in rows] == ["fvd: no face in the reference frame"]
    assert run.weighted.sets["fvd"]["ground_truth"].n == 0 == run.weighted.sets["fvd"]["method"].n
    assert add_to_set(Clip(fail=False), "fvd", FVD, feats) == []
    assert run.weighted.sets["fvd"]["ground_truth"].n == 2 and run.weighted.sets["fvd"]["method"].n == 4
