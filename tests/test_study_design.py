"""The study design: each rater's own seeded order, pairs shown in both left/right orders across raters,
catch trials in every rater's list, clips covered evenly, and a page that never names a method."""
from collections import Counter

import pytest

from ksdiff import config
from ksdiff.study.design import GROUND_TRUTH, MISMATCHED, DesignError, build_design, public

METHODS = ["ksdiff", "diffspeaker", "regression"]
CLIPS = [f"c{i}" for i in range(5)]


def _design(**study):
    return build_design(METHODS, CLIPS, config.defaults(study=dict({"clips_per_rater": 3, "raters": 8}, **study))["study"])


def test_every_pair_is_shown_in_both_orders_equally_often():
    d = _design(kind="ab")
    sides = Counter()
    for r in d["raters"]:
        for it in r["items"]:
            if not it["catch"]:
                sides[(it["clip"], tuple(it["methods"]))] += 1
    for (clip, (a, b)), n in sides.items():
        assert sides[(clip, (b, a))] == n, (clip, a, b)
    # and within one rater a method is not always on the same side
    r0 = [it for it in d["raters"][0]["items"] if not it["catch"] and "ksdiff" in it["methods"]]
    assert {it["methods"].index("ksdiff") for it in r0} == {0, 1}


def test_each_rater_has_an_own_seeded_order_and_the_same_seed_rebuilds_the_study():
    d = _design()
    orders = [tuple((it["clip"], tuple(sorted(it["methods"])), it["kind"]) for it in r["items"]) for r in d["raters"]]
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])  # a mirrored couple: same items, own order
    again = _design()
    assert again == d and again["study_id"] == d["study_id"]
    other = _design(seed=1)
    assert other["study_id"] != d["study_id"] and other["raters"][0]["items"] != d["raters"][0]["items"]


def test_catch_trials_pit_ground_truth_against_the_mismatched_floor_in_every_rating_list():
    d = _design(catch_trials=2)
    assert "excluded" in d["exclusion_rule"] and "lip_sync" in d["exclusion_rule"]
    for r in d["raters"]:
        catch = [it for it in r["items"] if it["catch"]]
        ab = [it for it in catch if it["kind"] == "ab"]
        mos = [it for it in catch if it["kind"] == "mos"]
        assert len(ab) == 2 and all(set(it["methods"]) == {GROUND_TRUTH, MISMATCHED} for it in ab)
        assert len(mos) == 4 and Counter(it["methods"][0] for it in mos) == {GROUND_TRUTH: 2, MISMATCHED: 2}
        assert all(it["clip"] in r["clips"] for it in catch)  # the clip is one the rater rates anyway


def test_clips_are_covered_evenly_and_every_rater_sees_every_method_of_their_clips():
    d = _design(raters=10)  # 5 couples x 3 clips = 15 = 3 x 5 clips
    seen = Counter(c for r in d["raters"][::2] for c in r["clips"])
    assert set(seen.values()) == {3}
    for r in d["raters"]:
        mos = [it for it in r["items"] if it["kind"] == "mos" and not it["catch"]]
        assert Counter(it["clip"] for it in mos) == {c: len(METHODS) for c in r["clips"]}
        assert len({it["id"] for it in r["items"]}) == len(r["items"])


def test_reference_pairs_and_blocks():
    d = _design(kind="both", reference="ksdiff")
    assert d["pairs"] == [["ksdiff", "diffspeaker"], ["ksdiff", "regression"]]
    kinds = [it["kind"] for it in d["raters"][0]["items"]]
    assert kinds == sorted(kinds, key=lambda k: kinds.index(k))  # one block per kind, not interleaved
    assert kinds[0] != [it["kind"] for it in d["raters"][2]["items"]][0]  # the block order alternates by couple


def test_the_page_design_names_no_method():
    d = _design()
    text = repr(public(d))
    assert not any(m in text for m in METHODS + [GROUND_TRUTH, MISMATCHED])
    assert set(public(d)["raters"]) == {r["id"] for r in d["raters"]}


def test_refuses_what_cannot_be_a_study():
    with pytest.raises(DesignError, match="reference"):
        _design(reference="nope")
    with pytest.raises(DesignError, match="two methods"):
        build_design(["ksdiff"], CLIPS, config.defaults(study={"kind": "ab"})["study"])
    with pytest.raises(DesignError, match="catch_criterion"):
        _design(catch_criterion="realism")
    with pytest.raises(config.ConfigError, match="raters"):
        config.defaults(study={"raters": 3})  # odd: a pair could not be shown in both orders
