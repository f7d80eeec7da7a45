"""Who sees what: each rater slot's items, in its own seeded order, counterbalanced and with catch trials.

The design is a pure function of the inputs (methods, clips, the config's ``study`` section), so the
same seed and inputs give the same study and the same study id.

- Raters come in mirrored couples: slots 2k and 2k+1 rate the same clips and pairs, with left and
  right swapped, so every pair is shown in both orders equally often across raters (counterbalanced);
  each slot still shuffles its items with its own seed. Within one slot, which method of a pair sits
  on the left alternates over clips, so no rater sees one method always on one side.
- Couple k takes the next ``clips_per_rater`` clips of one seeded permutation of the clips (wrapping
  around), so clips are covered evenly across raters.
- Items: ``mos`` one video, rated 1-5 on every criterion; ``ab`` two videos of the same clip (same
  audio), a forced choice per criterion. A rater with kind ``both`` gets a MOS block and an A/B block,
  whose order alternates between couples.
- Catch trials (mixed in, not marked on the page): ground truth against the mismatched-motion floor
  of the same clip. A/B: ground truth must win ``catch_criterion``; MOS: ground truth must score
  higher on it than the mismatched video. A rater failing more than ``max_catch_failures`` of their
  catch trials is excluded from every score (ksdiff.study.score), which ``EXCLUSION_RULE`` states.
"""
from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np

GROUND_TRUTH = "ground_truth"
MISMATCHED = "mismatched"
FORMAT = "ksdiff-study-design"
VERSION = 1


class DesignError(ValueError):
    """The study cannot be built from these inputs (and the message says why)."""


def exclusion_rule(scfg: dict) -> str:
    n = int(scfg["catch_trials"])
    kinds = {"ab": "A/B", "mos": "MOS", "both": "A/B and MOS"}[scfg["kind"]]
    return (f"Catch trials: {n} per rater and kind ({kinds}), ground truth against the mismatched-motion floor of "
            f"the same clip. A/B: ground truth must be chosen on '{scfg['catch_criterion']}'; MOS: ground truth "
            f"must score higher on '{scfg['catch_criterion']}' than the mismatched video. A rater failing more than "
            f"{int(scfg['max_catch_failures'])} catch trial(s) is excluded from every score.")


def pairs_of(methods: list[str], reference: str | None) -> list[tuple[str, str]]:
    """The A/B pairs: the reference against each other method, or every pair."""
    if reference is not None:
        if reference not in methods:
            raise DesignError(f"study.reference {reference!r} is not one of the methods {methods}")
        return [(reference, m) for m in methods if m != reference]
    return list(itertools.combinations(methods, 2))


def study_id(name: str, methods: list[str], clips: list[str], scfg: dict) -> str:
    """A short id naming exactly this design: rating files carry it, and scoring refuses another study's."""
    keyed = {k: scfg[k] for k in sorted(scfg) if k not in ("dir", "bootstrap_samples", "ci_level", "dataset")}
    blob = json.dumps({"methods": methods, "clips": clips, "study": keyed}, sort_keys=True).encode()
    return f"{name}-{hashlib.sha256(blob).hexdigest()[:10]}"


def video_id(sid: str, method: str, clip: str) -> str:
    """A file name that does not reveal the method (raters can read file names)."""
    return "v" + hashlib.sha256(f"{sid}|{method}|{clip}".encode()).hexdigest()[:12] + ".mp4"


def build_design(methods: list[str], clips: list[str], scfg: dict) -> dict:
    """The full design (the key: which method is where); ``public`` strips it to what the page may show."""
    if len(methods) < 1:
        raise DesignError("no methods to study")
    if scfg["kind"] in ("ab", "both") and len(methods) < 2:
        raise DesignError(f"an A/B study needs at least two methods, got {methods}")
    if not clips:
        raise DesignError("no clips to study (none is shared by every method, ground truth and mismatched)")
    names = [c["name"] for c in scfg["criteria"]]
    if len(set(names)) != len(names):
        raise DesignError(f"study.criteria names repeat: {names}")
    n_catch = int(scfg["catch_trials"])
    if n_catch and scfg["catch_criterion"] not in names:
        raise DesignError(f"study.catch_criterion {scfg['catch_criterion']!r} is not a criterion ({names})")
    kinds = ["mos", "ab"] if scfg["kind"] == "both" else [scfg["kind"]]
    pairs = pairs_of(methods, scfg.get("reference")) if "ab" in kinds else []
    seed = int(scfg["seed"])
    sid = study_id(scfg["name"], methods, clips, scfg)
    k = min(int(scfg["clips_per_rater"]), len(clips))
    perm = [clips[i] for i in np.random.default_rng([seed, 0]).permutation(len(clips))]

    raters = []
    for slot in range(int(scfg["raters"])):
        couple, mirrored = divmod(slot, 2)
        own = [perm[(couple * k + j) % len(perm)] for j in range(k)]
        # The couple's shared choices (catch clips and sides) come from the couple's seed, so the two
        # slots differ only by the mirror and their own order.
        crng = np.random.default_rng([seed, 1, couple])
        blocks = {}
        for kind in kinds:
            items = []
            if kind == "mos":
                items += [{"kind": "mos", "clip": c, "methods": [m], "catch": False} for c in own for m in methods]
            else:
                for ci, c in enumerate(own):
                    for pi, (a, b) in enumerate(pairs):
                        lr = [a, b] if (couple + ci + pi) % 2 == 0 else [b, a]
                        items.append({"kind": "ab", "clip": c, "methods": lr, "catch": False})
            catch_clips = [own[i] for i in crng.permutation(len(own))[:n_catch]] if n_catch else []
            catch_clips += [own[i % len(own)] for i in range(n_catch - len(catch_clips))]  # fewer clips than catches
            for c in catch_clips:
                if kind == "mos":
                    items += [{"kind": "mos", "clip": c, "methods": [m], "catch": True} for m in (GROUND_TRUTH, MISMATCHED)]
                else:
                    lr = [GROUND_TRUTH, MISMATCHED] if crng.random() < 0.5 else [MISMATCHED, GROUND_TRUTH]
                    items.append({"kind": "ab", "clip": c, "methods": lr, "catch": True})
            if mirrored:
                for it in items:
                    it["methods"] = it["methods"][::-1]
            blocks[kind] = items
        rng = np.random.default_rng([seed, 2, slot])  # the slot's own order
        order = kinds if couple % 2 == 0 else kinds[::-1]
        seq = []
        for kind in order:
            items = blocks[kind]
            seq += [items[i] for i in rng.permutation(len(items))]
        rid = f"r{slot + 1:02d}"
        for i, it in enumerate(seq):
            it["id"] = f"{rid}-{i + 1:03d}"
            it["videos"] = [video_id(sid, m, it["clip"]) for m in it["methods"]]
        raters.append({"id": rid, "couple": couple, "mirrored": bool(mirrored), "clips": own, "items": seq})

    return {
        "format": FORMAT, "version": VERSION, "study_id": sid, "name": scfg["name"], "kind": scfg["kind"],
        "criteria": scfg["criteria"], "methods": methods, "pairs": [list(p) for p in pairs], "clips": clips,
        "catch_criterion": scfg["catch_criterion"], "max_catch_failures": int(scfg["max_catch_failures"]),
        "catch_trials": n_catch, "exclusion_rule": exclusion_rule(scfg), "seed": seed, "dataset": scfg.get("dataset"),
        "raters": raters,
    }


def public(design: dict) -> dict:
    """What the page is given: item ids, kinds and video files, never which method made a video."""
    return {
        "study_id": design["study_id"], "name": design["name"], "criteria": design["criteria"],
        "raters": {r["id"]: [{"id": it["id"], "kind": it["kind"], "videos": it["videos"]} for it in r["items"]]
                   for r in design["raters"]},
    }


def needed_videos(design: dict) -> dict[str, tuple[str, str]]:
    """video file -> (method, clip), every video some item shows."""
    return {v: (m, it["clip"]) for r in design["raters"] for it in r["items"] for v, m in zip(it["videos"], it["methods"])}
