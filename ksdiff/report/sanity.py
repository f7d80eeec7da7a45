"""Sanity of the leaderboard: does each metric tell ground truth from the floors?

A metric earns its column only if it scores ground truth (the extracted motion,
re-rendered like every method's) better than the two floors no method should
lose to: ``mismatched`` (another clip's motion) and ``static`` (the mean face).
``sanity_table`` tests that metric by metric, PAIRED over the clips both were
scored on:

  1. per clip, the mean over samples (``ksdiff.report.bootstrap.clip_means``);
     the AV offset ('closer to 0') is compared as |offset|;
  2. per clip, the difference oriented so that > 0 means ground truth is better
     (METRIC_INFO: 'higher' -> GT - floor, 'lower' / 'closer to 0' -> floor - GT);
  3. the mean difference with a seeded percentile-bootstrap interval over clips
     (``ksdiff.report.bootstrap.bootstrap_ci``: the clip is the resampled unit,
     and pairing keeps each clip's two values together);
  4. verdict: pass (interval above 0), fail (below 0), undetermined (contains 0).

Some metrics cannot be tested this way, and their row says why ('not
applicable'): LVE is the distance to ground truth (0 for it by definition,
never scored for it), temporal diversity is better when closer to ground
truth's own value, sample diversity needs several samples (ground truth has
one), and the source-video LSE exists for ground truth only. A floor for which
the metric is undefined on every clip, with the reason its metrics table records
(BeatAlign of the static face: no head motion, no motion beats), is 'not
applicable' against that floor with that reason. A floor that has no rows for a
metric otherwise, or fewer than 2 clips in common, gives 'missing'.

Weights sanity: LSE scored with SyncNet weights whose held-out check failed
(metrics attrs ``lse.check``, ksdiff.metrics.syncnet_train.check_sync:
``detects_sync`` false) marks every LSE row 'fail' with that reason, whatever
the paired comparison says (it is kept in the reason).

A flagged row's reason ends with what the leaderboard's other numbers show the metric
doing instead, where they show it (ksdiff.report.sanity_why).

A metric passes overall (``metric_verdicts``) only if it passes against every
floor it has; a failing or undetermined metric is named in the report's banner
and its leaderboard column is marked.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ksdiff.config import FLOORS
from ksdiff.io import parquet
from ksdiff.metrics.registry import CPBD, GROUND_TRUTH, METRIC_INFO
from ksdiff.report.bootstrap import bootstrap_ci, clip_means
from ksdiff.report.read import read_metrics
from ksdiff.report.tables import fmt, metric_header, metric_order
from ksdiff.report.sanity_why import explain

log = logging.getLogger(__name__)

FLOOR_LABELS = {"mismatched": "the mismatched motion", "static": "the static face"}
ALL_FLOORS = "all"  # the 'floor' of a row that holds for every floor (not applicable, failed weights)
PASS, FAIL, UNDETERMINED, NOT_APPLICABLE, MISSING = "pass", "fail", "undetermined", "not applicable", "missing"
FLAGGED = (FAIL, UNDETERMINED)  # verdicts that mark a leaderboard column
COLUMNS = ["metric", "floor", "n_clips", "gt_mean", "floor_mean", "diff_mean", "diff_lo", "diff_hi", "verdict", "reason"]

# Metrics a comparison of ground truth against a floor cannot test, and why.
NOT_TESTABLE = {
    "sample_diversity": "needs several samples per clip; ground truth has one",
    "lse_d_video": "ground truth only (its source video); the floors exist only rendered, see LSE-D",
    "lse_c_video": "ground truth only (its source video); the floors exist only rendered, see LSE-C",
    CPBD: ("no-reference sharpness of the frames, not a measure of the motion: the floors are drawn by the same "
           "renderer over the same reference frame as ground truth, so their sharpness says how far the warp "
           "resamples the reference, not whether the motion is right"),
}
LVE_REASON = "ground truth is LVE's reference: LVE is the distance to ground truth, 0 for it by definition (not scored for it)"
CLOSER_TO_GT_REASON = "better means closer to ground truth's own value, so ground truth cannot be tested against itself"


def _not_testable(metric: str) -> str:
    """Why a metric has no GT-vs-floor test ('' when it has one)."""
    if metric.startswith("lve_"):  # every LVE name (ksdiff.metrics.lve.lve_name)
        return LVE_REASON
    if metric in NOT_TESTABLE:
        return NOT_TESTABLE[metric]
    better = METRIC_INFO.get(metric, ("", "", ""))[2]
    if better == "closer to ground truth":
        return CLOSER_TO_GT_REASON
    if better not in ("higher", "lower", "closer to 0"):
        return f"no known direction of 'better' for {metric!r}"
    return ""


def is_lse(metric: str) -> bool:
    return metric.startswith("lse_")


def failed_weights(attrs_list: list[dict]) -> list[dict]:
    """SyncNet weights that scored LSE in these metrics tables and failed their held-out check.

    [{weights, sha256, check (one sentence)}], one per weight file. Official weights
    carry no check (None) and are never listed.
    """
    out = {}
    for a in attrs_list:
        lse = a.get("lse") or {}
        check = lse.get("check")
        if lse.get("scored") and check and not check.get("detects_sync", True):
            from ksdiff.metrics.syncnet_train import describe_check  # imports torch: only when a check failed

            out[lse.get("sha256", "")] = {"weights": lse.get("weights", ""), "sha256": lse.get("sha256", ""),
                                         "check": describe_check(check)}
    return list(out.values())


def weights_reason(failed: list[dict]) -> str:
    """The reason an LSE row fails because of its weights ('' when none failed); the check's
    numbers are in ``failed`` (and the report's banner)."""
    return "; ".join(f"scored with SyncNet weights {w['weights']} (sha256 {w['sha256'][:12]}) that failed their "
                     "held-out check" for w in failed)


def undefined_for(attrs_list: list[dict], method: str, metric: str) -> str:
    """Why ``metric`` has no value for ``method`` on any clip, from its metrics table's 'undefined'
    records ('' when the table is absent or records none): e.g. the static face has no head motion,
    so BeatAlign finds no motion beats and is undefined for it, which is not a gap in the run."""
    recs = [u for a in attrs_list if a.get("method") == method for u in a.get("undefined") or []
            if u.get("metric") == metric]
    if not recs:
        return ""
    reasons = pd.Series([u.get("reason") or "not finite" for u in recs]).value_counts()
    clips = len({u.get("clip_id") for u in recs})
    label = FLOOR_LABELS.get(method, method)
    return (f"undefined for {label} on {clips} clip(s): {reasons.index[0]}"
            + (f" (and {len(reasons) - 1} other reason(s))" if len(reasons) > 1 else "")
            + ", so ground truth cannot be compared with it")


def _row(metric, floor, verdict, reason, n=0, gt=np.nan, fl=np.nan, d=(np.nan, np.nan, np.nan)) -> dict:
    return {"metric": metric, "floor": floor, "n_clips": int(n), "gt_mean": float(gt), "floor_mean": float(fl),
            "diff_mean": float(d[0]), "diff_lo": float(d[1]), "diff_hi": float(d[2]), "verdict": verdict, "reason": reason}


def _compare(metric: str, floor: str, gt: pd.Series, fl: pd.Series, n_boot: int, alpha: float, seed: int) -> dict:
    """One paired comparison: ``gt`` and ``fl`` are clip means indexed by clip id."""
    better = METRIC_INFO[metric][2]
    common = gt.index.intersection(fl.index)
    if len(common) < 2:
        return _row(metric, floor, MISSING, f"only {len(common)} clip(s) scored for both ground truth and {floor} "
                    "(a paired interval needs at least 2)", n=len(common))
    g, f = gt.loc[common].to_numpy(float), fl.loc[common].to_numpy(float)
    d = g - f if better == "higher" else f - g  # > 0: ground truth better
    mean, lo, hi = bootstrap_ci(d, n=n_boot, alpha=alpha, seed=seed)
    wins = f"ground truth better on {int((d > 0).sum())} of {len(d)} clips"
    level = f"{1 - alpha:.0%}"
    if lo > 0:
        verdict, reason = PASS, wins
    elif hi < 0:
        verdict, reason = FAIL, (f"{FLOOR_LABELS.get(floor, floor)} scores better than ground truth: the {level} interval "
                                 f"of the paired difference lies below 0, {wins}")
    else:
        verdict, reason = UNDETERMINED, f"the {level} interval of the paired difference contains 0, {wins}"
    return _row(metric, floor, verdict, reason, len(d), g.mean(), f.mean(), (mean, lo, hi))


def sanity_table(
    metrics: pd.DataFrame,
    attrs: list[dict] | None = None,
    floors: tuple[str, ...] = FLOORS,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Ground truth against each floor, metric by metric (columns: COLUMNS).

    metrics: long-format rows (method, clip_id, sample, metric, value) holding at
    least the ground-truth and floor methods (others are ignored). attrs: the
    metrics tables' attrs, for the weights sanity of LSE (None: not checked).
    Rows follow the leaderboard's metric order, floors in ``floors`` order.
    """
    df = metrics[metrics["method"].isin([GROUND_TRUTH, *floors])].copy()
    offset = df["metric"].map(lambda m: METRIC_INFO.get(m, ("", "", ""))[2] == "closer to 0")
    df.loc[offset, "value"] = df.loc[offset, "value"].abs()  # |offset| per sample, then the clip mean
    cm = clip_means(df) if not df.empty else pd.DataFrame(columns=["method", "metric", "clip_id", "value"])
    by = {k: g.set_index("clip_id")["value"] for k, g in cm.groupby(["method", "metric"])}
    rows = []
    for metric in metric_order(cm["metric"].unique()):
        why = _not_testable(metric)
        if why:
            rows.append(_row(metric, ALL_FLOORS, NOT_APPLICABLE, why))
            continue
        gt = by.get((GROUND_TRUTH, metric))
        for floor in floors:
            fl = by.get((floor, metric))
            if gt is None:
                rows.append(_row(metric, floor, MISSING, "no ground-truth values of this metric"))
            elif fl is None:
                why = undefined_for(attrs or [], floor, metric)
                rows.append(_row(metric, floor, NOT_APPLICABLE, why) if why else _row(
                    metric, floor, MISSING, f"no {floor} values of this metric (its metrics table is missing or "
                    "failed, or the metric was not scored for it)"))
            else:
                row = _compare(metric, floor, gt, fl, n_boot, alpha, seed)
                why = explain(metric, floor, by) if row["verdict"] in FLAGGED else ""
                rows.append({**row, "reason": f"{row['reason']}; {why}"} if why else row)
    rows += set_level_rows(attrs or [], floors)
    table = pd.DataFrame(rows, columns=COLUMNS)
    bad = weights_reason(failed_weights(attrs or []))
    if bad:
        lse = table["metric"].map(is_lse)
        table.loc[lse, "reason"] = [f"{bad}; the paired comparison alone: {v}{' (' + r + ')' if r else ''}"
                                    for v, r in zip(table.loc[lse, "verdict"], table.loc[lse, "reason"])]
        table.loc[lse, "verdict"] = FAIL
    return table


# set-level metrics (registry.SET_LEVEL, one value per method in attrs[name]): label, and what their
# distribution is made of (why the mismatched floor, other clips' ground truth, cannot be told apart)
_SET_LEVEL_SANITY = {
    "efid": ("E-FID", "E-FID compares expression distributions over all clips"),
    "fid": ("FID", "FID compares the distributions of single frames over all clips (rendered over each clip's "
                   "reference frame)"),
    "fvd": ("FVD", "FVD compares the distributions of 16-frame windows over all clips (rendered over each clip's "
                   "reference frame)"),
}


def set_level_rows(attrs_list: list[dict], floors: tuple[str, ...] = FLOORS) -> list[dict]:
    """Set-level metrics (E-FID, FID, FVD: attrs[name]['value']) of ground truth against each floor. With one
    value per method there is no clip-paired interval, so no pass: ground truth's E-FID is 0 by construction
    (its own distribution), the static face's value is shown beside ground truth's ('not applicable'), and the
    mismatched motion, being other test clips' ground truth, comes from ground truth's own distribution, so a
    distribution over clips cannot separate it by construction ('undetermined', with the measured values): these
    metrics measure the spread of expressions, frames or windows, not whether a clip's motion is its own."""
    rows = []
    for metric, (label, what) in _SET_LEVEL_SANITY.items():
        rows += _set_level_metric_rows(attrs_list, metric, label, what, floors)
    return rows


def _set_level_metric_rows(attrs_list, metric, label, what, floors) -> list[dict]:
    value = {a.get("method"): (a.get(metric) or {}).get("value") for a in attrs_list}
    if value.get(GROUND_TRUTH) is None:
        return []
    gt, rows = float(value[GROUND_TRUTH]), []
    for floor in floors:
        fl = value.get(floor)
        if fl is None:
            rows.append(_row(metric, floor, MISSING, f"no {label} for {floor} (its metrics table is missing or holds none)"))
            continue
        static = value.get("static")
        if floor == "mismatched":
            reason = (f"{what}, and the mismatched motion is other test clips' ground truth, drawn from ground truth's "
                      f"own distribution: {label} {fmt(fl)} against ground truth's {fmt(gt)}"
                      + (f" and the static face's {fmt(static)}" if static is not None else "")
                      + "; it does not tell a clip's own motion from another clip's")
            rows.append(_row(metric, floor, UNDETERMINED, reason, gt=gt, fl=fl))
        else:
            rows.append(_row(metric, floor, NOT_APPLICABLE, f"set-level (one value per method, no clip-paired interval): "
                             f"{FLOOR_LABELS.get(floor, floor)} {fmt(fl)} against ground truth's {fmt(gt)}", gt=gt, fl=fl))
    return rows


def metric_verdicts(table: pd.DataFrame, failed: list[dict] | None = None) -> dict[str, tuple[str, str]]:
    """metric -> (overall verdict, reason): pass only if it passes against every floor it has.

    failed: weights that failed their check (``failed_weights``): every LSE metric
    then fails with that one reason.
    """
    out = {}
    for metric, g in table.groupby("metric", sort=False):
        if failed and is_lse(metric):
            out[metric] = (FAIL, weights_reason(failed))
            continue
        v = list(g["verdict"])
        why = lambda keep: "; ".join(  # noqa: E731
            (f"vs {f}: {r}" if f != ALL_FLOORS else r) for f, vv, r in zip(g["floor"], v, g["reason"]) if vv in keep)
        if FAIL in v:
            out[metric] = (FAIL, why((FAIL, UNDETERMINED)))
        elif UNDETERMINED in v:
            out[metric] = (UNDETERMINED, why((UNDETERMINED,)))
        elif PASS in v:
            out[metric] = (PASS, why((PASS,)))
        elif NOT_APPLICABLE in v:
            out[metric] = (NOT_APPLICABLE, why((NOT_APPLICABLE,)))
        else:
            out[metric] = (MISSING, why((MISSING,)))
    return out


def flagged(table: pd.DataFrame, failed: list[dict] | None = None) -> dict[str, tuple[str, str]]:
    """The metrics whose leaderboard column gets marked: overall fail or undetermined."""
    return {m: vr for m, vr in metric_verdicts(table, failed).items() if vr[0] in FLAGGED}


def banner(table: pd.DataFrame, failed: list[dict]) -> list[str]:
    """Plain sentences for the top of a report: every flagged metric, every failed weight file."""
    lines = []
    for metric, (verdict, reason) in flagged(table, failed).items():
        if verdict == FAIL:
            lines.append(f"{metric_header(metric)} FAILS its sanity check ({reason}); do not read its column as evidence.")
        else:
            lines.append(f"{metric_header(metric)} is UNDETERMINED ({reason}): it does not tell ground truth from "
                         "the floors, so its ranking of methods is not evidence.")
    lines += [f"SyncNet weights {w['weights']} (sha256 {w['sha256'][:12]}) FAILED their held-out check: {w['check']}. "
              "Every LSE column is marked fail." for w in failed]
    return lines


def read_sanity(path) -> tuple[pd.DataFrame, list[dict]]:
    """(sanity table, failed weights) from a sanity.parquet."""
    t = parquet.read_table(path, "sanity")
    if not t.ok:
        raise ValueError(f"{path}: sanity table {t.status}: {t.reason}")
    return t.to_pandas()[COLUMNS], list(t.attrs.get("failed_weights", []))


def write_sanity(cfg: dict, metrics: list[str], out: str) -> int:
    """`ksdiff sanity`: the ground-truth and floor metrics tables -> metrics/{dataset}/sanity.parquet."""
    ecfg = cfg["eval"]
    n_boot, level, seed = int(ecfg["bootstrap_samples"]), float(ecfg["ci_level"]), int(ecfg["seed"])
    df, attrs, sources = read_metrics(list(metrics))
    table = sanity_table(df, attrs, n_boot=n_boot, alpha=1.0 - level, seed=seed)
    failed = failed_weights(attrs)
    cols = {c: table[c].to_numpy() if c not in ("metric", "floor", "verdict", "reason") else list(table[c]) for c in COLUMNS}
    parquet.write_table(out, "sanity", cols, attrs={
        "dataset": ", ".join(sorted({a.get("dataset", "?") for a in attrs})),
        "floors": list(FLOORS), "ci_level": level, "n_boot": n_boot, "seed": seed,
        "failed_weights": failed, "verdicts": {m: v for m, (v, _) in metric_verdicts(table, failed).items()},
        "sources": [{k: s[k] for k in ("path", "method", "status", "sha256")} for s in sources],
    })
    for line in banner(table, failed):
        log.warning("%s", line)
    log.info("sanity: %d rows, %d metrics flagged -> %s", len(table), len(flagged(table, failed)), out)
    return 0


def describe(level: float, n_boot: int, seed: int) -> str:
    """What the sanity table shows, for the report."""
    return (f"Does each metric score ground truth above the floors? Ground truth (its extracted motion re-rendered, "
            f"like every method's) against mismatched motion (another clip's) and the static face, paired over the "
            f"clips both were scored on: per clip the mean over samples; the difference is oriented so that > 0 "
            f"means ground truth is better (lower-is-better metrics: floor - GT; AV offset: |offset|, shown as "
            f"mean |offset|); its mean with a {level:.0%} paired percentile-bootstrap interval over clips "
            f"({n_boot} resamples, seed {seed}). pass: the interval lies above 0; fail: below 0; undetermined: it "
            f"contains 0. A metric passes only if it passes against every floor it has; a metric that fails or is "
            f"undetermined is marked '⚠ sanity' in the leaderboard. LSE scored with SyncNet weights that failed "
            f"their held-out check fails whatever the comparison says.")


def display(table: pd.DataFrame) -> pd.DataFrame:
    """The sanity table as the report shows it (metric labels, 'mean [lo, hi]' differences)."""
    def diff(r):
        return "–" if not np.isfinite(r.diff_mean) else f"{fmt(r.diff_mean)} [{fmt(r.diff_lo)}, {fmt(r.diff_hi)}]"

    return pd.DataFrame({
        "Metric": [metric_header(m) for m in table["metric"]],
        "vs floor": list(table["floor"]),
        "n clips": [str(n) if n else "–" for n in table["n_clips"]],
        "GT": [fmt(x) for x in table["gt_mean"]],
        "floor": [fmt(x) for x in table["floor_mean"]],
        "paired difference [lo, hi]": [diff(r) for r in table.itertuples()],
        "verdict": list(table["verdict"]),
        "reason": list(table["reason"]),
    })
