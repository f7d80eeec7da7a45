"""The scorers' refactor changed no number: every metrics table of a fabricated run equals, value for value
(bit for bit), the one recorded before evaluate.py was split into scorers (tests/data/evaluate_golden.json,
written by the pre-refactor code with KSDIFF_RECORD_GOLDEN=1). LSE alone is compared within float32
rounding, since its arithmetic runs in another order now (see LSE_ATOL).

Rows are compared as a set keyed by (method, clip, sample, metric): the scorers now write a clip's rows
family by family instead of sample by sample, which changes their order in the table, not a value.

Covered: ground truth (with LSE on the re-rendered motion and on its source video, random SyncNet weights),
two methods with two samples each (LVE, diversity, BeatAlign; one with LSE), a method whose clips are
skipped, and an external method (LSE on its own frames, the audio check). Metrics added after the record
(FDD, MOD: ksdiff-metrics-4) are allowed as extra rows, and the weight-based metrics of ksdiff-metrics-5
(no weights configured) as extra undefined records; nothing recorded may change or disappear.

One recorded value was rewritten since: the external audio check's peak correlation, 1.0000000000000013 (numpy's
OpenBLAS on two threads, which splits the dot product) -> 1.0000000000000193, the one-thread value, which the
workflow's one-thread scoring jobs always computed and which pinned numerics now compute on any core count.
And 41 values of rows whose input videos changed bytes when ksdiff began encoding with x264's cpu-independent
mode (ksdiff.io.video.X264_PARAMS; before, an AVX2-only processor encoded the fabricated clips otherwise than the
AVX-512 one the record was made on, and this test failed there): LSE beyond LSE_ATOL (LSE-C by up to 0.4%
relative, LSE-D by up to 0.04%) and temporal and sample diversities (up to 5e-8 relative), rewritten with the values computed on an AVX2-only AMD EPYC (Zen 1) on 7 Dec 2026.
"""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from ksdiff.io import parquet
from ksdiff.metrics.registry import CSIM, FID, FVD, LPIPS
from tests.test_evaluate import _cfg, _random_syncnet, world  # noqa: F401  (world: the module's fixture)

GOLDEN = Path(__file__).parent / "data" / "evaluate_golden.json"
# attrs that legitimately change with the protocol version; every other recorded key must be equal
VERSIONED_ATTRS = ("protocol", "protocol_version")
# ksdiff-metrics-5: metrics from weights the user supplies; none configured here, so each clip records why
WEIGHTED = (FID, FVD, LPIPS, CSIM)
# the fabricated world's folder: pytest's temporary folder, under popen-gwN/ when pytest-xdist runs the suite
WORLD = r"/tmp/pytest-of-[^/]+/pytest-\d+/(?:popen-gw\d+/)?eval\d+/"


def _runs(world, tmp_path):  # noqa: F811
    from ksdiff.evaluate import evaluate_method

    weights = str(_random_syncnet(tmp_path / "syncnet_random.model"))
    res, pred = str(world["res"]), world["pred"]
    runs = {
        "ground_truth": dict(predictions=None, method="ground_truth", syncnet=weights),
        "same": dict(predictions=str(pred / "same"), method="same"),
        "offset": dict(predictions=str(pred / "offset"), method="offset", syncnet=weights),
        "external": dict(predictions=str(world["ext"] / "coeffs"), method="other", syncnet=weights, external=True),
    }
    out = {}
    for name, kw in runs.items():
        path = tmp_path / f"{name}.parquet"
        evaluate_method(_cfg(), res, out=str(path), **kw)
        t = parquet.read_table(path, "metrics")
        df = t.to_pandas()
        attrs = {k: v for k, v in t.attrs.items() if k not in ("lse", "basis", "numerics")}
        # the weights' path is a temporary folder; its hash and the check are what must stay equal
        attrs["lse"] = {k: v for k, v in (t.attrs.get("lse") or {}).items() if k != "weights"}
        out[name] = {
            "rows": [[r.method, r.clip_id, int(r.sample), r.metric, float(r.value).hex()] for r in df.itertuples()],
            # the fabricated world's folder differs from run to run (and per test module): paths compared below it
            "attrs": json.loads(re.sub(WORLD, "<world>/", json.dumps(attrs, default=str))),
        }
    return out


# LSE since the record: pinned numerics turned NNPACK off (ksdiff/numerics.py) and LSE's SyncNet runs lowered
# to MKL matrix products (ksdiff.metrics.syncnet_lowered), other float32 summation orders of the same arithmetic.
# LSE-D/LSE-C are float32 distances of about 5 (and their differences): equal within 1e-5. The AV offset is the
# shift of the smallest mean distance; with this test's random SyncNet the distances of far shifts tie to
# float32 rounding, so an offset may move only where the smallest distance (LSE-D) itself is unchanged.
LSE_ATOL = 1e-5
LSE_DISTANCES = ("lse_d", "lse_c", "lse_d_video", "lse_c_video")


def _same_lse(key: tuple, recorded: dict, now: dict) -> bool:
    method, clip, sample, metric = key
    close = lambda m: abs(float.fromhex(recorded[(method, clip, sample, m)])  # noqa: E731
                          - float.fromhex(now[(method, clip, sample, m)])) <= LSE_ATOL
    if metric in LSE_DISTANCES:
        return close(metric)
    return metric == "lse_offset" and (method, clip, sample, "lse_d") in now and close("lse_d")


@pytest.mark.slow
def test_metrics_tables_equal_the_pre_refactor_record(world, tmp_path):  # noqa: F811
    got = _runs(world, tmp_path)
    if os.environ.get("KSDIFF_RECORD_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=0, sort_keys=True))
        pytest.skip(f"recorded {GOLDEN}")
    want = json.loads(re.sub(WORLD, "<world>/", GOLDEN.read_text()))
    assert set(got) == set(want)
    for name in want:
        recorded = {tuple(r[:4]): r[4] for r in want[name]["rows"]}
        now = {tuple(r[:4]): r[4] for r in got[name]["rows"]}
        missing = sorted(set(recorded) - set(now))
        changed = sorted(k for k in recorded if k in now and now[k] != recorded[k] and not _same_lse(k, recorded, now))
        assert not missing, f"{name}: rows gone: {missing[:5]}"
        assert not changed, f"{name}: values changed: {[(k, float.fromhex(recorded[k]), float.fromhex(now[k])) for k in changed[:5]]}"
        new_metrics = {k[3] for k in set(now) - set(recorded)}
        assert all(m.startswith(("fdd_", "mod_")) for m in new_metrics), f"{name}: unexpected new metrics {new_metrics}"
        wa, ga = want[name]["attrs"], got[name]["attrs"]
        for key in wa:
            if key in VERSIONED_ATTRS:
                continue
            if key == "undefined":  # new metrics may add their own undefined records; the recorded ones stay
                key_of = lambda u: (u["clip_id"], u["sample"], u["metric"], u["reason"])  # noqa: E731
                now_old = [u for u in ga[key] if not u["metric"].startswith(("fdd_", "mod_")) and u["metric"] not in WEIGHTED]
                assert sorted(map(key_of, now_old)) == sorted(map(key_of, wa[key])), name
            else:
                assert ga.get(key) == wa[key], f"{name}: attrs[{key!r}] changed"
    assert np.isfinite([float.fromhex(r[4]) for r in got["ground_truth"]["rows"]]).all()
