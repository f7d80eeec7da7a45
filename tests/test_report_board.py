"""The leaderboard's layout (ksdiff.report.board, ksdiff.report.families): one table per metric family that
has a scored metric, methods ranked by the family's primary metric in its direction, the best method of each
column marked (never a reference row, never in a column the sanity check flags), ground truth and the floors
set apart after the methods, and a primary metric declared, valid, for every family the registry holds."""
import numpy as np
import pandas as pd
import pytest

from ksdiff.metrics.registry import BY_NAME, GROUND_TRUTH, LVE, MOD, SPECS
from ksdiff.report import families
from ksdiff.report.board import build_board, markdown, ranking_key

# (method, metric) -> clip-level mean; the interval is mean ± 0.01
VALUES = {
    "lse_c": {GROUND_TRUTH: 1.0, "mismatched": 0.4, "static": 0.1, "a": 0.8, "b": 0.9, "c": 0.9, "d": None},
    "lse_d": {GROUND_TRUTH: 5.8, "mismatched": 6.4, "static": 6.2, "a": 5.9, "b": 6.0, "c": 5.7, "d": 6.1},
    "lse_offset": {GROUND_TRUTH: 0.0, "mismatched": -5.0, "static": -3.0, "a": -1.0, "b": 2.0, "c": 0.5, "d": -0.5},
    LVE: {"mismatched": 0.07, "static": 0.06, "a": 0.04, "b": 0.03, "c": 0.05, "d": 0.035},
    MOD: {GROUND_TRUTH: 0.0, "mismatched": 0.06, "static": 0.05, "a": 0.02, "b": 0.03, "c": 0.01, "d": 0.025},
    "temporal_diversity": {GROUND_TRUTH: 2.0, "mismatched": 2.1, "static": 0.0, "a": 3.0, "b": 1.5, "c": 2.2, "d": 0.5},
    "beat_align_corrected": {GROUND_TRUTH: 0.0, "mismatched": 0.01, "a": 0.05, "b": -0.02, "c": 0.0, "d": 0.02},
}


def _summary(values=VALUES):
    rows = [{"method": m, "metric": k, "mean": v, "lo": v - 0.01, "hi": v + 0.01, "n_clips": 10}
            for k, per in values.items() for m, v in per.items() if v is not None]
    rows.append({"method": "a", "metric": "efid", "mean": 0.3, "lo": np.nan, "hi": np.nan, "n_clips": 10})
    return pd.DataFrame(rows)


def _table(board, title):
    return next(t for t in board.tables if t.title == title)


def _order(t):
    return [(r.rank, r.method) for r in t.rows]


def test_one_table_per_family_with_a_scored_metric_in_the_declared_order():
    board = build_board(_summary())
    assert [t.title for t in board.tables] == ["Lip sync", "Lip shape", "Head motion", "Expression distribution"]
    assert "Upper face" not in [t.title for t in board.tables]  # no FDD scored: no table
    assert _table(board, "Lip shape").metrics == [LVE, MOD]
    assert board.overview.metrics == ["lse_c", LVE, "beat_align_corrected", "efid"]  # each family's ranking metric


def test_methods_are_ranked_by_the_primary_metric_and_the_references_follow_unranked():
    board = build_board(_summary())
    sync = _table(board, "Lip sync")
    assert sync.primary == "lse_c" and sync.metrics[0] == "lse_c"  # the ranking column first
    # higher is better; b and c tie (share rank 2, keep their order); d has no LSE-C: unranked, after them
    assert _order(sync) == [(1, "b"), (1, "c"), (3, "a"), (None, "d"),
                            (None, GROUND_TRUTH), (None, "mismatched"), (None, "static")]
    assert _order(_table(board, "Lip shape"))[:4] == [(1, "b"), (2, "d"), (3, "a"), (4, "c")]  # lower is better
    # the overview keeps the given order: methods, then ground truth, then the floors
    assert [r.method for r in board.overview.rows] == ["a", "b", "c", "d", GROUND_TRUTH, "mismatched", "static"]
    assert [r.role for r in board.overview.rows][-3:] == ["reference", "floor", "floor"]


def test_the_best_value_per_column_is_marked_among_the_methods_only():
    board = build_board(_summary())
    sync = _table(board, "Lip sync")
    best = {k: sorted(r.method for r in sync.rows for s, kk in zip(sync.shown(r)[3:], sync.metrics) if kk == k and s.best)
            for k in sync.metrics}
    # ground truth's LSE-C (1.0) and LSE-D are better than every method's: still the methods' best is marked
    # AV offset: closest to 0, c (0.5) and d (-0.5) tie: both marked
    assert best == {"lse_c": ["b", "c"], "lse_d": ["c"], "lse_offset": ["c", "d"]}
    motion = _table(board, "Head motion")
    td = motion.metrics.index("temporal_diversity")
    marked = [r.method for r in motion.rows if motion.shown(r)[3 + td].best]
    assert marked == ["c"]  # closer to ground truth's 2.0: c (2.2), not the largest or smallest
    md = markdown(sync)
    assert "| 1 | b | 10 | **0.9** [0.89, 0.91] |" in md and "| reference | ground_truth | 10 | 1 [0.99, 1.01] |" in md


def test_a_flagged_primary_gives_way_to_the_next_and_a_flagged_column_marks_no_best():
    flags = {"beat_align_corrected": ("undetermined", "the interval contains 0")}
    motion = _table(build_board(_summary(), flags=flags), "Head motion")
    assert motion.primary == "temporal_diversity"
    assert "not BeatAlign (chance-corrected) ↑: undetermined in the sanity check" in motion.caption
    assert "distance from ground truth's 2" in motion.caption
    assert _order(motion)[:4] == [(1, "c"), (2, "b"), (3, "a"), (4, "d")]  # |2.2-2| < |1.5-2| < |3-2| < |0.5-2|
    col = 3 + motion.metrics.index("beat_align_corrected")
    assert not any(motion.shown(r)[col].best for r in motion.rows) and all(motion.shown(r)[col].flagged for r in motion.rows)
    # every candidate flagged: the first one still ranks, and the caption says the order is not evidence
    flags = {k: ("fail", "x") for k in ("lse_c", "lse_d")}
    sync = _table(build_board(_summary(), flags=flags), "Lip sync")
    assert sync.primary == "lse_c" and "LSE-C ↑ is fail in the sanity check, so this order is not evidence" in sync.caption


def test_closer_to_ground_truth_cannot_rank_without_ground_truth():
    values = {"temporal_diversity": {"a": 3.0, "b": 1.0}}
    motion = build_board(_summary(values)).tables[0]
    assert motion.title == "Head motion" and motion.primary is None
    assert motion.caption.startswith("Not ranked") and all(r.rank is None for r in motion.rows)
    assert ranking_key("temporal_diversity", 3.0, None) is None and ranking_key("temporal_diversity", 3.0, 2.5) == 0.5
    assert ranking_key("lse_offset", -2.0, None) == 2.0 and ranking_key("lse_c", 0.9, None) == -0.9


def test_cells_say_when_they_cover_fewer_clips_and_set_level_values_have_no_interval():
    s = _summary()
    s.loc[(s.method == "a") & (s.metric == LVE), "n_clips"] = 7
    board = build_board(s, n_clips={m: 10 for m in s.method})
    lip = _table(board, "Lip shape")
    a = next(r for r in lip.rows if r.method == "a")
    assert lip.shown(a)[3].interval == "[0.03, 0.05] (n=7)"
    efid = _table(board, "Expression distribution")
    assert efid.shown(efid.rows[0])[3].interval == "(set-level)"


def test_parameters_are_an_overview_column():
    board = build_board(_summary(), parameters={"a": 1972338})
    assert [h for h, _ in board.overview.columns()][:4] == ["Method", "Kind", "n clips", "Parameters"]
    assert [board.overview.shown(r)[3].value for r in board.overview.rows[:2]] == ["1,972,338", "–"]
    assert "Parameters" not in [h for h, _ in board.tables[0].columns()]


@pytest.mark.parametrize("family", sorted({s.family for s in SPECS}))
def test_every_family_of_the_registry_has_a_declared_primary_of_its_own(family):
    assert family in families.FAMILY_ORDER, f"{family!r}: add it to ksdiff.report.families.FAMILY_ORDER"
    assert families.PRIMARY.get(family), f"{family!r}: declare its ranking metric in ksdiff.report.families.PRIMARY"
    for name in families.PRIMARY[family]:
        assert name in BY_NAME and BY_NAME[name].family == family, name
        assert BY_NAME[name].better in ("lower", "higher", "closer to 0", "closer to ground truth"), name


def test_a_metric_the_registry_does_not_know_gets_a_table_but_no_rank():
    """A metrics table from a newer ksdiff: its metric is shown (family 'other', last), never ranked or marked,
    since its direction is unknown."""
    values = {**VALUES, "newer_metric": {"a": 1.0, "b": 2.0}}
    board = build_board(_summary(values))
    other = board.tables[-1]
    assert other.title == "Other" and other.metrics == ["newer_metric"] and other.primary is None
    assert other.caption == "Not ranked: no method has a value that can be ranked."
    assert not any(s.best for r in other.rows for s in other.shown(r))


def test_set_level_rows_come_from_every_set_level_metric_of_the_registry(monkeypatch):
    from ksdiff.report import tables

    attrs = [{"method": "a", "clips": ["c0", "c1"], "efid": {"value": 0.25}, "fid": {"value": 12.5}},
             {"method": "b", "clips": ["c0"], "efid": {"value": None, "reason": "no clip scored"}}]
    monkeypatch.setattr(tables, "SET_LEVEL", ("efid",))  # E-FID alone first
    rows = tables.set_level(attrs)
    assert rows[["method", "metric", "mean", "n_clips"]].values.tolist() == [["a", "efid", 0.25, 2]]
    assert rows[["lo", "hi"]].isna().all().all()
    monkeypatch.setattr(tables, "SET_LEVEL", ("efid", "fid"))  # a set-level metric the registry adds is read too
    assert list(tables.set_level(attrs)["metric"]) == ["efid", "fid"]


def test_with_every_metric_of_the_registry_each_is_in_its_own_familys_table_once():
    values = {s.name: {GROUND_TRUTH: 1.0, "mismatched": 0.5, "static": 0.2, "a": 0.8, "b": 0.7} for s in SPECS}
    board = build_board(_summary(values))
    fams = families.ordered({s.family for s in SPECS})
    assert [t.title for t in board.tables] == [families.title(f) for f in fams]
    placed = [(k, t.title) for t in board.tables for k in t.metrics]
    assert sorted(k for k, _ in placed) == sorted(s.name for s in SPECS)  # each metric once
    assert all(families.title(BY_NAME[k].family) == title for k, title in placed)
    assert len(board.overview.metrics) == len(fams)  # the overview: one ranking column per family
    assert all(t.primary in families.PRIMARY[f] for t, f in zip(board.tables, fams))


def test_a_method_scored_on_fewer_clips_is_never_marked_best():
    """An external method whose folder lacks some test clips' videos has a mean over other clips: its
    better-looking value is shown with its n, and the best mark goes to the best method on every clip."""
    s = _summary()
    s.loc[(s.method == "a") & (s.metric == LVE), ["mean", "n_clips"]] = [0.001, 1]
    lip = _table(build_board(s, n_clips={m: 10 for m in s.method}), "Lip shape")
    marked = [r.method for r in lip.rows if lip.shown(r)[3].best]
    assert marked == ["b"]  # 0.03 on 10 clips, not a's 0.001 on 1
    a = next(r for r in lip.rows if r.method == "a")
    assert lip.shown(a)[3].interval.endswith("(n=1)")


def test_a_method_scored_on_fewer_clips_is_not_ranked_against_the_others():
    """Its mean covers other clips than theirs, so it follows the ranked methods without a rank, even where its
    value would come first; the ranks of the others are as if it were absent."""
    s = _summary()
    s.loc[(s.method == "a") & (s.metric == "lse_c"), ["mean", "n_clips"]] = [5.0, 3]  # 'best' LSE-C, 3 clips
    sync = _table(build_board(s, n_clips={m: 10 for m in s.method}), "Lip sync")
    assert _order(sync)[:4] == [(1, "b"), (1, "c"), (None, "a"), (None, "d")]
    assert sync.shown(next(r for r in sync.rows if r.method == "a"))[0].value == "–"
    # on every clip it is ranked as before
    assert _order(_table(build_board(_summary()), "Lip sync"))[:3] == [(1, "b"), (1, "c"), (3, "a")]
