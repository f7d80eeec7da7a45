"""`ksdiff study score`: raters' files -> catch-trial exclusions -> studies/{name}/scores.parquet.

The table (schema 'study_scores', ksdiff.io.schemas) is long: one row per statistic, with its
interval and how many ratings, raters and clips it rests on. Its attrs say who was excluded and why,
which files were rejected and why, and the exclusion rule, so the leaderboard can print them.
Catch-trial answers are only used to screen raters, never in the scores.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ksdiff.io import parquet
from ksdiff.study import stats
from ksdiff.study.design import GROUND_TRUTH, MISMATCHED
from ksdiff.study.ratings import read_ratings

log = logging.getLogger(__name__)


def load_design(study: Path) -> dict:
    path = study / "design.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {study} a folder made by `ksdiff study make`?")
    return json.loads(path.read_text())


def screen(rows: pd.DataFrame, design: dict) -> list[dict]:
    """Every rater with ratings: catch trials passed and failed, and whether (and why) excluded."""
    catches = stats.catch_results(rows, design["catch_criterion"], GROUND_TRUTH, MISMATCHED)
    limit = int(design["max_catch_failures"])
    out = []
    for rater in sorted(rows["rater"].unique()):
        c = catches[catches["rater"] == rater]
        failed = c[~c["passed"].astype(bool)]
        excluded = len(failed) > limit
        why = ""
        if excluded:
            which = ", ".join(f"{r.kind} {r.clip}" for r in failed.itertuples())
            why = (f"failed {len(failed)} of {len(c)} catch trials ({which}); more than {limit} allowed: "
                   f"preferred or scored the mismatched-motion video at least as high as ground truth on "
                   f"{design['catch_criterion']}")
        elif design["catch_trials"] and len(c) == 0:
            why = "answered no catch trial (stopped early); kept"
        out.append({"rater": rater, "items": int(rows.loc[rows["rater"] == rater, "item"].nunique()),
                    "catch_passed": int(c["passed"].astype(bool).sum()), "catch_failed": int(len(failed)),
                    "excluded": bool(excluded), "reason": why})
    return out


def score_study(cfg: dict, study: str, ratings: list[str] | None = None, out: str | None = None) -> int:
    scfg = cfg["study"]
    root = Path(study)
    design = load_design(root)
    out_path = Path(out) if out else root / "scores.parquet"
    read = read_ratings(ratings or [str(root / "ratings")], design)
    attrs = {"study_id": design["study_id"], "name": design["name"], "dataset": design.get("dataset"),
             "kind": design["kind"], "criteria": design["criteria"], "methods": design["methods"],
             "exclusion_rule": design["exclusion_rule"], "rejected": read.rejected, "files": read.files,
             "bootstrap_samples": int(scfg["bootstrap_samples"]), "ci_level": float(scfg["ci_level"]),
             "seed": int(scfg["seed"]), "bt_alpha": stats.BT_ALPHA}
    if read.rows.empty:
        reason = f"no valid rating in {len(read.files) + len(read.rejected)} file(s)"
        attrs["raters"] = []
        parquet.write_failure(out_path, "study_scores", reason, attrs=attrs)
        log.error("%s: %s", design["study_id"], reason)
        return 1
    raters = screen(read.rows, design)
    attrs["raters"] = raters
    excluded = {r["rater"] for r in raters if r["excluded"]}
    keep = read.rows[~read.rows["catch"] & ~read.rows["rater"].isin(excluded)]
    n_boot, level, seed = attrs["bootstrap_samples"], attrs["ci_level"], attrs["seed"]
    rows = []
    if not keep.empty:
        rows += stats.mos(keep[keep["kind"] == "mos"], n_boot, level, seed)
        rows += stats.ab(keep[keep["kind"] == "ab"], n_boot, level, seed)
        rows += stats.agreement(keep)
    table = pd.DataFrame(rows, columns=["kind", "criterion", "method", "opponent", "statistic", "value", "lo", "hi",
                                        "n_ratings", "n_raters", "n_clips"])
    status, reason = parquet.OK, ""
    if table.empty:
        status, reason = parquet.SKIPPED, f"every rater was excluded ({', '.join(sorted(excluded))})"
    parquet.write_table(out_path, "study_scores", table, status=status, reason=reason, attrs=attrs)
    log.info("study %s: %d files (%d rejected), %d raters (%d excluded: %s) -> %s", design["study_id"],
             len(read.files) + len(read.rejected), len(read.rejected), len(raters), len(excluded),
             ", ".join(sorted(excluded)) or "none", out_path)
    return 0 if status == parquet.OK else 1
