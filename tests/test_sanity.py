"""The sanity check on constructed metrics tables with known answers: ground truth clearly
better than a floor passes, equal is undetermined, worse fails; 'better' follows each
metric's direction (lower LSE-D, |AV offset|); the comparison is paired over clips; LSE
scored with weights that failed their held-out check fails; the table round-trips."""
import numpy as np
import pandas as pd
import pytest

from ksdiff import config
from ksdiff.cli import main
from ksdiff.metrics.registry import ACROSS_SAMPLES, GROUND_TRUTH, LVE, LVE_SQ
from ksdiff.config import BASELINES
from ksdiff.io import parquet
from ksdiff.report import sanity as sane

CLIPS = [f"c{i}" for i in range(10)]
RNG_SPREAD = np.linspace(-0.05, 0.05, len(CLIPS))  # clip-to-clip scatter, symmetric


def _df(values: dict) -> pd.DataFrame:
    """values: (method, metric) -> per-clip values (or a scalar); two samples per clip scatter +-0.01."""
    rows = []
    for (method, metric), v in values.items():
        v = np.broadcast_to(np.asarray(v, float), (len(CLIPS),))
        for c, x in zip(CLIPS, v):
            rows += [(method, c, 0, metric, x - 0.01), (method, c, 1, metric, x + 0.01)]
    return pd.DataFrame(rows, columns=["method", "clip_id", "sample", "metric", "value"])


def _row(table, metric, floor):
    r = table[(table.metric == metric) & (table.floor == floor)]
    assert len(r) == 1, (metric, floor, table)
    return r.iloc[0]


def test_floors_are_the_inference_baselines():
    assert set(sane.FLOORS) == set(BASELINES)


def test_clearly_better_passes_equal_is_undetermined_worse_fails():
    base = 0.5 + RNG_SPREAD
    t = sane.sanity_table(_df({
        (GROUND_TRUTH, "lse_c"): base + 0.4, ("mismatched", "lse_c"): base, ("static", "lse_c"): base - 0.2,
        (GROUND_TRUTH, "beat_align"): base, ("mismatched", "beat_align"): base, ("static", "beat_align"): base + 0.3,
    }))
    r = _row(t, "lse_c", "mismatched")
    assert r.verdict == sane.PASS and r.n_clips == 10
    assert r.diff_mean == pytest.approx(0.4) and r.diff_lo == pytest.approx(0.4) and r.diff_hi == pytest.approx(0.4)
    assert r.gt_mean == pytest.approx(0.9) and r.floor_mean == pytest.approx(0.5)
    assert "better on 10 of 10 clips" in r.reason
    assert _row(t, "lse_c", "static").verdict == sane.PASS
    eq = _row(t, "beat_align", "mismatched")  # equal on every clip: interval [0, 0] contains 0
    assert eq.verdict == sane.UNDETERMINED and eq.diff_mean == 0.0 and "contains 0" in eq.reason
    worse = _row(t, "beat_align", "static")
    assert worse.verdict == sane.FAIL and worse.diff_hi < 0 and "scores better than ground truth" in worse.reason
    verdicts = sane.metric_verdicts(t)
    assert verdicts["lse_c"][0] == sane.PASS and verdicts["beat_align"][0] == sane.FAIL
    assert set(sane.flagged(t)) == {"beat_align"}


def test_noisy_equal_metrics_are_undetermined():
    rng = np.random.default_rng(3)
    gt = rng.normal(0.3, 0.05, len(CLIPS))
    d = np.array([0.02, -0.02] * 5)  # zero-mean paired differences
    t = sane.sanity_table(_df({(GROUND_TRUTH, "beat_align"): gt, ("mismatched", "beat_align"): gt + d,
                               ("static", "beat_align"): gt - d}))
    for floor in sane.FLOORS:
        r = _row(t, "beat_align", floor)
        assert r.verdict == sane.UNDETERMINED and r.diff_lo < 0 < r.diff_hi
    assert sane.flagged(t)["beat_align"][0] == sane.UNDETERMINED


def test_lower_is_better_and_closer_to_zero_are_oriented_so_positive_means_ground_truth_better():
    sign = np.array([1, -1] * 5)
    t = sane.sanity_table(_df({
        (GROUND_TRUTH, "lse_d"): 6.0 + RNG_SPREAD, ("mismatched", "lse_d"): 9.0 + RNG_SPREAD, ("static", "lse_d"): 5.0,
        # the floors' offsets average to 0 over clips, their magnitude is 8 frames: |offset| must be compared
        (GROUND_TRUTH, "lse_offset"): 0.0, ("mismatched", "lse_offset"): 8.0 * sign, ("static", "lse_offset"): -8.0 * sign,
    }))
    assert _row(t, "lse_d", "mismatched").verdict == sane.PASS
    assert _row(t, "lse_d", "mismatched").diff_mean == pytest.approx(3.0)
    assert _row(t, "lse_d", "static").verdict == sane.FAIL  # the static face has the lower distance
    off = _row(t, "lse_offset", "mismatched")
    assert off.verdict == sane.PASS and off.floor_mean == pytest.approx(8.0, abs=0.02) and off.diff_mean > 7.9


def test_the_comparison_is_paired_over_clips():
    """Clips differ far more than methods do: only pairing sees a 0.05 gain on every clip."""
    base = np.linspace(0.0, 5.0, len(CLIPS))
    t = sane.sanity_table(_df({(GROUND_TRUTH, "lse_c"): base + 0.05, ("mismatched", "lse_c"): base,
                               ("static", "lse_c"): base}))
    r = _row(t, "lse_c", "mismatched")
    assert r.verdict == sane.PASS and r.diff_lo == pytest.approx(0.05)
    # only the clips both were scored on are paired
    df = _df({(GROUND_TRUTH, "lse_c"): base + 0.05, ("mismatched", "lse_c"): base, ("static", "lse_c"): base})
    df = df[~((df.method == "static") & df.clip_id.isin(CLIPS[3:]))]
    assert _row(sane.sanity_table(df), "lse_c", "static").n_clips == 3


def test_a_metric_passes_only_against_every_floor_it_has():
    base = 0.5 + RNG_SPREAD
    t = sane.sanity_table(_df({(GROUND_TRUTH, "lse_c"): base + 0.3, ("mismatched", "lse_c"): base,
                               ("static", "lse_c"): base + 0.3}))
    assert sane.metric_verdicts(t)["lse_c"][0] == sane.UNDETERMINED
    assert "vs static" in sane.flagged(t)["lse_c"][1]
    # a floor that never scored the metric does not count against it, but is listed as missing
    t = sane.sanity_table(_df({(GROUND_TRUTH, "lse_c"): base + 0.3, ("mismatched", "lse_c"): base,
                               ("static", "beat_align"): base}))
    assert _row(t, "lse_c", "static").verdict == sane.MISSING and "no static values" in _row(t, "lse_c", "static").reason
    assert sane.metric_verdicts(t)["lse_c"][0] == sane.PASS


def test_a_metric_undefined_for_a_floor_is_not_applicable_against_it_with_the_recorded_reason():
    """The static face has no head motion, so BeatAlign is undefined for it on every clip; its metrics
    table records why, and the sanity row says so instead of reporting a gap in the run."""
    base = 0.3 + RNG_SPREAD
    df = _df({(GROUND_TRUTH, "beat_align"): base + 0.2, ("mismatched", "beat_align"): base,
              ("static", "lse_c"): base})
    why = "no motion beats (head speed has no local minimum)"
    attrs = [{"method": "static", "undefined": [{"clip_id": c, "sample": 0, "metric": "beat_align", "reason": why}
                                                for c in CLIPS]},
             {"method": "mismatched", "undefined": []}]
    t = sane.sanity_table(df, attrs)
    r = _row(t, "beat_align", "static")
    assert r.verdict == sane.NOT_APPLICABLE
    assert why in r.reason and "the static face on 10 clip(s)" in r.reason
    assert _row(t, "beat_align", "mismatched").verdict == sane.PASS
    assert sane.metric_verdicts(t)["beat_align"][0] == sane.PASS  # passes against the floor it has
    # without the floor's records the row stays 'missing': a gap in the run is never explained away
    assert _row(sane.sanity_table(df, [{"method": "static", "undefined": []}]), "beat_align", "static").verdict \
        == sane.MISSING
    assert _row(sane.sanity_table(df), "beat_align", "static").verdict == sane.MISSING


def test_untestable_metrics_say_why():
    base = 0.5 + RNG_SPREAD
    df = _df({(GROUND_TRUTH, "temporal_diversity"): 3.0, ("static", "temporal_diversity"): 0.0,
              ("mismatched", LVE): base, ("static", LVE_SQ): base, (GROUND_TRUTH, "lse_c_video"): 0.9,
              ("mismatched", "beat_align"): base})
    df = pd.concat([df, pd.DataFrame([("mismatched", "c0", ACROSS_SAMPLES, "sample_diversity", 1.0)], columns=df.columns)])
    t = sane.sanity_table(df)
    for metric, words in ((LVE, "LVE's reference"), (LVE_SQ, "0 for it by definition"),
                          ("temporal_diversity", "closer to ground truth"), ("sample_diversity", "ground truth has one"),
                          ("lse_c_video", "ground truth only")):
        r = _row(t, metric, sane.ALL_FLOORS)
        assert r.verdict == sane.NOT_APPLICABLE and words in r.reason, (metric, r.reason)
    assert _row(t, "beat_align", "mismatched").verdict == sane.MISSING  # no ground-truth values
    assert sane.flagged(t) == {}
    one = _df({(GROUND_TRUTH, "lse_c"): 0.9, ("mismatched", "lse_c"): 0.1, ("static", "lse_c"): 0.1})
    one = one[one.clip_id == "c0"]
    r = _row(sane.sanity_table(one), "lse_c", "mismatched")
    assert r.verdict == sane.MISSING and "at least 2" in r.reason


CHECK = {"n_clips": 8, "shift_frames": 6, "sync_offset_within_1": 0.25, "shift_recovered_within_1": 0.125,
         "lse_c_sync_beats_mismatched": 0.5, "lse_c_sync_median": 0.12, "lse_c_mismatched_median": 0.13,
         "detects_sync": False}


def _lse_attrs(check):
    return {"method": GROUND_TRUTH, "lse": {"scored": True, "weights": "/m/expert.pt", "sha256": "ab" * 32, "check": check}}


def test_lse_scored_with_weights_that_failed_their_check_fails():
    base = 0.5 + RNG_SPREAD
    df = _df({(GROUND_TRUTH, "lse_c"): base + 0.4, ("mismatched", "lse_c"): base, ("static", "lse_c"): base,
              (GROUND_TRUTH, "lse_c_video"): 0.9, (GROUND_TRUTH, "beat_align"): base + 0.4,
              ("mismatched", "beat_align"): base, ("static", "beat_align"): base})
    t = sane.sanity_table(df, [_lse_attrs(CHECK), {"method": "static", "lse": {"scored": False}}])
    for floor in sane.FLOORS:
        r = _row(t, "lse_c", floor)
        assert r.verdict == sane.FAIL and "/m/expert.pt" in r.reason and "failed their held-out check" in r.reason
        assert "the paired comparison alone: pass" in r.reason
        assert _row(t, "beat_align", floor).verdict == sane.PASS  # only LSE depends on the weights
    assert _row(t, "lse_c_video", sane.ALL_FLOORS).verdict == sane.FAIL
    failed = sane.failed_weights([_lse_attrs(CHECK)])
    assert len(failed) == 1 and failed[0]["sha256"] == "ab" * 32
    lines = sane.banner(t, failed)
    assert any(ln.startswith("LSE-C ↑ FAILS") for ln in lines) and any("FAILED their held-out check" in ln for ln in lines)
    # weights that passed, and official weights (no check stored), fail nothing
    for check in ({**CHECK, "detects_sync": True}, None):
        t = sane.sanity_table(df, [_lse_attrs(check)])
        assert _row(t, "lse_c", "mismatched").verdict == sane.PASS and sane.failed_weights([_lse_attrs(check)]) == []


def _write_metrics(path, df, method, attrs=None):
    d = df[df.method == method]
    parquet.write_table(path, "metrics", {"method": list(d.method), "clip_id": list(d.clip_id),
                                          "sample": d["sample"].to_numpy(np.int16), "metric": list(d.metric),
                                          "value": d.value.to_numpy(float)},
                        attrs={"method": method, "dataset": "fixed", "clips": CLIPS, **(attrs or {})})
    return str(path)


def test_sanity_parquet_round_trips_through_the_cli(tmp_path):
    base = 0.5 + RNG_SPREAD
    df = _df({(GROUND_TRUTH, "lse_c"): base + 0.4, ("mismatched", "lse_c"): base, ("static", "lse_c"): base + 0.1,
              (GROUND_TRUTH, "beat_align"): base, ("mismatched", "beat_align"): base, ("static", "beat_align"): base})
    paths = [_write_metrics(tmp_path / f"{m}.parquet", df, m, _lse_attrs(CHECK) if m == GROUND_TRUTH else None)
             for m in (GROUND_TRUTH, *sane.FLOORS)]
    out = tmp_path / "sanity.parquet"
    assert main(["sanity", "--metrics", *paths, "--out", str(out)]) == 0
    got, failed = sane.read_sanity(out)
    cfg = config.defaults()["eval"]
    want = sane.sanity_table(df, [_lse_attrs(CHECK)], n_boot=cfg["bootstrap_samples"], alpha=1 - cfg["ci_level"],
                             seed=cfg["seed"])
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert failed == sane.failed_weights([_lse_attrs(CHECK)])
    attrs = parquet.read_table(out, "sanity").attrs
    assert attrs["verdicts"] == {"beat_align": sane.UNDETERMINED, "lse_c": sane.FAIL} and attrs["dataset"] == "fixed"
    # seeded: a second run writes the same numbers
    out2 = tmp_path / "again.parquet"
    main(["sanity", "--metrics", *paths, "--out", str(out2)])
    pd.testing.assert_frame_equal(sane.read_sanity(out2)[0], got)


def test_flagged_rows_say_what_the_other_numbers_show():
    """BeatAlign at its own chance level and LSE-D level-equal to a still face say so, with the measured values;
    a passing row and a flagged metric with nothing measured to add keep the plain reason."""
    base = 0.5 + RNG_SPREAD
    t = sane.sanity_table(_df({
        (GROUND_TRUTH, "beat_align"): base, ("mismatched", "beat_align"): base,
        (GROUND_TRUTH, "beat_align_corrected"): 0.002 + RNG_SPREAD / 10, ("mismatched", "beat_align_corrected"): 0.0,
        (GROUND_TRUTH, "lse_d"): 5.46 + RNG_SPREAD, ("static", "lse_d"): 5.46 + RNG_SPREAD,
        ("mismatched", "lse_d"): 6.3 + RNG_SPREAD,
        (GROUND_TRUTH, "lse_c"): 1.3 + RNG_SPREAD, ("static", "lse_c"): 0.1 + RNG_SPREAD,
        ("mismatched", "lse_c"): 0.5 + RNG_SPREAD,
    }))
    beat = _row(t, "beat_align", "mismatched")
    assert beat.verdict == sane.UNDETERMINED
    assert "own chance level 0.498" in beat.reason and "+0.002" in beat.reason
    lse_d = _row(t, "lse_d", "static")
    assert lse_d.verdict == sane.UNDETERMINED
    assert "LSE-D 5.46 vs 5.46" in lse_d.reason and "LSE-C 0.10 vs 1.30" in lse_d.reason
    assert _row(t, "lse_d", "mismatched").reason == "ground truth better on 10 of 10 clips"
    corrected = _row(t, "beat_align_corrected", "mismatched")
    assert corrected.verdict == sane.UNDETERMINED and corrected.reason.endswith("clips")


def test_fdd_and_mod_pair_ground_truth_with_the_floors():
    """FDD and MOD are differences to ground truth (0 for it, scored): a floor whose upper face or mouth moves
    differently passes; a data set whose upper face never moves leaves FDD undetermined against the static face,
    with ground truth's own dynamics as the measured reason."""
    from ksdiff.metrics.registry import FDD, MOD

    zero = np.zeros(len(CLIPS))
    t = sane.sanity_table(_df({
        (GROUND_TRUTH, MOD): zero, ("mismatched", MOD): 0.1 + RNG_SPREAD, ("static", MOD): 0.08 + RNG_SPREAD,
        (GROUND_TRUTH, FDD): zero, ("mismatched", FDD): -0.02 + 0.3 * RNG_SPREAD, ("static", FDD): zero,
    }))
    assert _row(t, MOD, "mismatched").verdict == sane.PASS and _row(t, MOD, "static").verdict == sane.PASS
    assert _row(t, FDD, "mismatched").verdict == sane.PASS  # signed values, compared as |FDD| (closer to 0)
    still = _row(t, FDD, "static")
    assert still.verdict == sane.UNDETERMINED
    assert "ground truth's own upper-face dynamics is 0.01" in still.reason  # the +-0.01 sample scatter's |mean|
    assert sane.metric_verdicts(t)[FDD][0] == sane.UNDETERMINED and FDD in sane.flagged(t)


def test_efid_is_set_level_and_cannot_tell_mismatched_motion_by_construction():
    attrs = [{"method": GROUND_TRUTH, "efid": {"value": 0.0}}, {"method": "mismatched", "efid": {"value": 0.02}},
             {"method": "static", "efid": {"value": 3.5}}]
    t = sane.sanity_table(_df({(GROUND_TRUTH, "beat_align"): 0.5, ("mismatched", "beat_align"): 0.5,
                               ("static", "beat_align"): 0.5}), attrs)
    mis, st = _row(t, "efid", "mismatched"), _row(t, "efid", "static")
    assert mis.verdict == sane.UNDETERMINED and "other test clips' ground truth" in mis.reason and "0.02" in mis.reason
    assert st.verdict == sane.NOT_APPLICABLE and st.floor_mean == 3.5 and "3.5" in st.reason
    assert "efid" in sane.flagged(t)
    # without ground truth's E-FID there is no row at all
    assert "efid" not in set(sane.sanity_table(_df({(GROUND_TRUTH, "beat_align"): 0.5}), attrs[1:]).metric)
