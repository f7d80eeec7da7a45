"""Scoring on simulated raters with known answers: a method preferred in 80% of its pairs ranks first with
intervals that exclude chance, random raters' win rates include chance, careless raters are excluded by
the catch trials and named; files from another study or malformed ones are rejected with the reason
while every valid rating is kept; the leaderboard shows the study."""
import json

import numpy as np
import pandas as pd
import pytest

from ksdiff import config
from ksdiff.cli import main
from ksdiff.io import parquet
from ksdiff.report.build import build_report
from ksdiff.study.design import build_design
from ksdiff.study.score import score_study
from tests import study_sim
from tests.test_report import _write

METHODS = ["ksdiff", "diffspeaker", "regression"]
CLIPS = [f"c{i}" for i in range(6)]
STUDY = {"kind": "both", "clips_per_rater": 3, "raters": 16, "catch_trials": 2, "bootstrap_samples": 400}


def _study(tmp_path, **over):
    cfg = config.defaults(study=dict(STUDY, **over))
    design = build_design(METHODS, CLIPS, dict(cfg["study"], name="sim"))
    root = tmp_path / "sim"
    root.mkdir()
    (root / "design.json").write_text(json.dumps(design))
    return cfg, design, root


def _rate(design, root, prefer, score, careless=(), seed=0, raters=None):
    rng = np.random.default_rng(seed)
    for r in design["raters"][:raters]:
        study_sim.write(root / "ratings", study_sim.answer(design, r["id"], prefer, score, rng, careless=r["id"] in careless))


def _scores(root):
    t = parquet.read_table(root / "scores.parquet", "study_scores")
    return t.to_pandas(), t.attrs


def _get(df, **kw):
    m = np.ones(len(df), bool)
    for k, v in kw.items():
        m &= df[k] == v
    return df[m]


def test_a_method_preferred_in_80_percent_of_pairs_ranks_first_with_intervals_excluding_chance(tmp_path):
    cfg, design, root = _study(tmp_path)
    best = "ksdiff"
    prefer = lambda a, b: 0.8 if a == best else 0.2 if b == best else 0.5  # noqa: E731
    score = {"ksdiff": 4.2, "diffspeaker": 3.0, "regression": 2.8}.get
    _rate(design, root, prefer, score)
    assert score_study(cfg, str(root)) == 0
    df, attrs = _scores(root)
    for crit in ("lip_sync", "head_motion", "overall"):
        bt = _get(df, kind="ab", criterion=crit, statistic="bt_strength").set_index("method")
        assert bt["value"].idxmax() == best
        assert bt.loc[best, "lo"] > 0 and bt.drop(best)["hi"].max() < bt.loc[best, "lo"]  # 0: an average method
        win = _get(df, kind="ab", criterion=crit, statistic="win_rate", opponent="").set_index("method")
        assert win.loc[best, "lo"] > 0.5 and 0.7 < win.loc[best, "value"] < 0.9
        for other in ("diffspeaker", "regression"):
            pair = _get(df, kind="ab", criterion=crit, statistic="win_rate", method=best, opponent=other)
            if pair.empty:  # stored under the other name's order
                pair = _get(df, kind="ab", criterion=crit, statistic="win_rate", method=other, opponent=best)
                assert pair["hi"].iloc[0] < 0.5
            else:
                assert pair["lo"].iloc[0] > 0.5
        mos = _get(df, kind="mos", criterion=crit, statistic="mos").set_index("method")
        assert mos["value"].idxmax() == best and mos.loc[best, "lo"] > mos.drop(best)["hi"].max()
        assert (mos["lo"] <= mos["value"]).all() and (mos["value"] <= mos["hi"]).all()
        assert set(mos["n_raters"]) == {16}
    assert not any(r["excluded"] for r in attrs["raters"])
    alpha = _get(df, statistic="krippendorff_alpha")
    assert len(alpha) == 6 and alpha["value"].notna().all()


def test_random_raters_give_win_rates_whose_intervals_include_chance(tmp_path):
    cfg, design, root = _study(tmp_path, kind="ab")
    _rate(design, root, lambda a, b: 0.5, None, seed=3)
    assert score_study(cfg, str(root)) == 0
    df, _ = _scores(root)
    win = _get(df, kind="ab", statistic="win_rate")
    assert len(win) == 3 * (3 + 3)  # per criterion: 3 pairs + 3 methods against all
    covered = (win["lo"] <= 0.5) & (0.5 <= win["hi"])
    assert covered.all(), win[~covered]
    bt = _get(df, statistic="bt_strength")
    assert ((bt["lo"] <= 0) & (0 <= bt["hi"])).all()
    alpha = _get(df, statistic="krippendorff_alpha")["value"]
    assert (alpha.abs() < 0.3).all()  # random answers agree about as well as chance


def test_raters_who_fail_catch_trials_are_excluded_and_named(tmp_path):
    cfg, design, root = _study(tmp_path)
    prefer = lambda a, b: 0.5  # noqa: E731
    score = {"ksdiff": 3, "diffspeaker": 3, "regression": 3}.get
    _rate(design, root, prefer, score, careless={"r03", "r10"})
    assert score_study(cfg, str(root)) == 0
    df, attrs = _scores(root)
    excluded = {r["rater"]: r for r in attrs["raters"] if r["excluded"]}
    assert set(excluded) == {"r03", "r10"}
    assert all("failed 4 of 4 catch trials" in r["reason"] for r in excluded.values())
    assert "more than 1" in attrs["exclusion_rule"]
    assert set(_get(df, statistic="mos")["n_raters"]) == {14}

    # the leaderboard shows the study beside the metrics, names who was excluded and why
    metrics = [str(_write(tmp_path / f"{m}.parquet", m)) for m in ("ground_truth", "alpha")]
    md, html = tmp_path / "b.md", tmp_path / "b.html"
    build_report(config.defaults(), metrics, str(md), str(html), str(tmp_path / "plots"), studies=[str(root / "scores.parquet")])
    text, page = md.read_text(), html.read_text()
    assert "## User study: sim" in text and text.index("## User study") < text.index("## Figures")
    assert "r03: failed 4 of 4 catch trials" in text and "r10: failed" in text
    assert 'id="study-sim"' in page and "Bradley-Terry strength" in page and "Excluded r03" in page


def test_files_of_another_study_or_malformed_are_rejected_and_every_valid_rating_is_kept(tmp_path, caplog):
    cfg, design, root = _study(tmp_path, kind="mos", catch_trials=0)
    score = {"ksdiff": 4, "diffspeaker": 3, "regression": 2}.get
    rng = np.random.default_rng(0)
    good = study_sim.answer(design, "r01", None, score, rng)
    partial = study_sim.answer(design, "r02", None, score, rng)
    partial["ratings"] = partial["ratings"][:4]  # stopped part way: kept
    partial["ratings"].append({"item": "r01-001", "answers": {}})  # another rater's item: dropped
    partial["ratings"].append(dict(partial["ratings"][0]))  # answered twice: counted once
    bad_score = study_sim.answer(design, "r03", None, score, rng)
    bad_score["ratings"][0]["answers"]["overall"] = 7  # dropped, the rest kept
    other = dict(good, study_id="sim-0123456789")
    d = root / "ratings"
    for doc in (good, partial, bad_score):
        study_sim.write(d, doc)
    (d / "other.json").write_text(json.dumps(other))
    (d / "broken.json").write_text('{"format": "ksdiff-study-ratings", "study_id": ')
    (d / "notes.json").write_text(json.dumps({"hello": 1}))
    assert main(["study", "score", "--study", str(root), "--opts",
                 json.dumps(dict(cfg, study=dict(cfg["study"], bootstrap_samples=200)))]) == 0
    df, attrs = _scores(root)
    rejected = {r["file"].rsplit("/", 1)[1]: r["reason"] for r in attrs["rejected"]}
    assert set(rejected) == {"other.json", "broken.json", "notes.json"}
    assert "ratings of study 'sim-0123456789', not of this study" in rejected["other.json"]
    assert "not a readable JSON file" in rejected["broken.json"]
    assert "not a ksdiff study ratings file" in rejected["notes.json"]
    assert "rejected" in caplog.text and "other.json" in caplog.text
    files = {f["rater"]: f for f in attrs["files"]}
    n_items = len(design["raters"][0]["items"])
    assert files["r01"]["kept"] == n_items and files["r02"]["kept"] == 4 and files["r02"]["dropped"] == 2
    assert files["r03"]["kept"] == n_items - 1 and "not a score 1-5" in files["r03"]["notes"][0]
    mos = _get(df, statistic="mos")
    assert mos["n_ratings"].sum() == 3 * (n_items + 4 + n_items - 1)  # per criterion, every kept answer


def test_no_valid_rating_is_a_clear_failure(tmp_path):
    cfg, design, root = _study(tmp_path)
    (root / "ratings").mkdir()
    (root / "ratings" / "x.json").write_text("[]")
    assert score_study(cfg, str(root)) == 1
    t = parquet.read_table(root / "scores.parquet", "study_scores")
    assert t.status == parquet.FAILED and "no valid rating" in t.reason
    with pytest.raises(FileNotFoundError, match="study make"):
        score_study(cfg, str(tmp_path))


def test_scores_table_columns_are_the_documented_schema(tmp_path):
    cfg, design, root = _study(tmp_path, raters=4, bootstrap_samples=100)
    _rate(design, root, lambda a, b: 0.5, {"ksdiff": 3, "diffspeaker": 3, "regression": 3}.get)
    score_study(cfg, str(root))
    df, _ = _scores(root)
    assert list(df.columns) == ["kind", "criterion", "method", "opponent", "statistic", "value", "lo", "hi",
                                "n_ratings", "n_raters", "n_clips"]
    assert set(df["statistic"]) == {"mos", "win_rate", "bt_strength", "krippendorff_alpha"}
    assert isinstance(df, pd.DataFrame)
