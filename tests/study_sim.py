"""Simulated raters for the user-study tests: answer a design's items the way the page records them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ksdiff.study.design import GROUND_TRUTH, MISMATCHED


def answer(design: dict, rater: str, prefer, score, rng, careless: bool = False) -> dict:
    """A ratings file of one rater slot.

    prefer(a, b) -> probability that a beats b (A/B); score(method) -> mean MOS (noise added).
    careless: the rater picks the mismatched floor in every catch trial (and rates it above ground truth).
    """
    crit = [c["name"] for c in design["criteria"]]
    items = next(r for r in design["raters"] if r["id"] == rater)["items"]
    out, t = [], 0
    for it in items:
        ans = {}
        for c in crit:
            if it["kind"] == "ab":
                a, b = it["methods"]
                if it["catch"]:
                    gt_left = a == GROUND_TRUTH
                    ans[c] = ("right" if gt_left else "left") if careless else ("left" if gt_left else "right")
                else:
                    ans[c] = "left" if rng.random() < prefer(a, b) else "right"
            else:
                m = it["methods"][0]
                if it["catch"]:
                    good = {GROUND_TRUTH: 5, MISMATCHED: 1}[m]
                    ans[c] = (6 - good) if careless else good
                else:
                    ans[c] = int(np.clip(round(score(m) + rng.normal(0, 0.7)), 1, 5))
        out.append({"item": it["id"], "kind": it["kind"], "answers": ans, "shown_ms": t, "answered_ms": t + 4000,
                    "plays": [1] * len(it["methods"]), "ended_ms": [t + 2000] * len(it["methods"])})
        t += 5000
    return {"format": "ksdiff-study-ratings", "version": 1, "study_id": design["study_id"], "rater_id": rater,
            "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:10:00Z", "ratings": out}


def write(folder: Path, doc: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"ratings_{doc['study_id']}_{doc['rater_id']}.json"
    p.write_text(json.dumps(doc))
    return p
