"""The leaderboard's numbers: each metric of each method as mean [lo, hi] over clips.

``summarise`` gives the numbers (long: method, metric, mean, lo, hi, n_clips),
``set_level`` the set-level ones (E-FID), ``metric_header`` / ``board_header`` the
column heads, ``to_markdown`` a Markdown table; ksdiff.report.board lays them out
in one table per metric family. Every cell comes from ``clip_means`` of the
metrics rows, so a number can be traced back to the per-clip values (``per_clip``)
and from there to the rows behind them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ksdiff.metrics.registry import GROUND_TRUTH, METRIC_INFO, SET_LEVEL
from ksdiff.report.bootstrap import bootstrap_ci, clip_means

ARROWS = {"lower": "↓", "higher": "↑"}


def method_order(methods) -> list[str]:
    """Ground truth first (the reference row), then the others in their given order."""
    methods = list(dict.fromkeys(methods))
    return ([GROUND_TRUTH] if GROUND_TRUTH in methods else []) + [m for m in methods if m != GROUND_TRUTH]


def metric_order(metrics) -> list[str]:
    known = [m for m in METRIC_INFO if m in set(metrics)]
    return known + sorted(set(metrics) - set(known))


def summarise(metrics: pd.DataFrame, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """(method, metric, mean, lo, hi, n_clips): bootstrap over clip-level means."""
    cm = clip_means(metrics)
    out = []
    for (method, metric), g in cm.groupby(["method", "metric"], sort=False):
        mean, lo, hi = bootstrap_ci(g["value"].to_numpy(), n=n_boot, alpha=alpha, seed=seed)
        out.append({"method": method, "metric": metric, "mean": mean, "lo": lo, "hi": hi, "n_clips": len(g)})
    cols = ["method", "metric", "mean", "lo", "hi", "n_clips"]
    s = pd.DataFrame(out, columns=cols)
    if s.empty:
        return s
    s["_m"] = s["method"].map({m: i for i, m in enumerate(method_order(s["method"]))})
    s["_k"] = s["metric"].map({m: i for i, m in enumerate(metric_order(s["metric"]))})
    return s.sort_values(["_m", "_k"]).drop(columns=["_m", "_k"]).reset_index(drop=True)


def set_level(attrs: list[dict]) -> pd.DataFrame:
    """Set-level metrics (ksdiff.metrics.registry.SET_LEVEL: E-FID, ...) of each metrics table as summary rows:
    no interval (one value per method over all its scored clips, from attrs[name]['value']; ksdiff.metrics.efid),
    lo and hi NaN. A metric whose record has no value (not scored, with its reason) gives no row."""
    rows = [{"method": a["method"], "metric": name, "mean": float(e["value"]), "lo": np.nan, "hi": np.nan,
             "n_clips": len(a.get("clips", []))}
            for a in attrs for name in SET_LEVEL
            if isinstance(e := a.get(name), dict) and e.get("value") is not None]
    return pd.DataFrame(rows, columns=["method", "metric", "mean", "lo", "hi", "n_clips"])


def fmt(x: float) -> str:
    """Four significant digits, never scientific notation (tables are read by people)."""
    if x is None or not np.isfinite(x):
        return "–"
    return np.format_float_positional(float(x), precision=4, unique=False, fractional=False, trim="-")


def metric_header(metric: str) -> str:
    label, unit, better = METRIC_INFO.get(metric, (metric, "", ""))
    arrow = ARROWS.get(better, "")
    unit = f" [{unit}]" if unit else ""
    return f"{label}{unit} {arrow}".strip()


SANITY_MARK = "⚠ sanity:"


def board_header(metric: str, flags: dict | None = None) -> str:
    """A leaderboard column head; a metric flagged by the sanity check says so: 'LSE-C ↑ ⚠ sanity: fail'."""
    head = metric_header(metric)
    if flags and metric in flags:
        head += f" {SANITY_MARK} {flags[metric][0]}"
    return head


def per_clip(metrics: pd.DataFrame) -> pd.DataFrame:
    """Wide per-clip appendix: one row per (method, clip), one column per metric (sample mean)."""
    cm = clip_means(metrics)
    wide = cm.pivot_table(index=["method", "clip_id"], columns="metric", values="value", aggfunc="first")
    wide = wide[[c for c in metric_order(wide.columns)]]
    wide = wide.reset_index()
    wide["_m"] = wide["method"].map({m: i for i, m in enumerate(method_order(wide["method"]))})
    return wide.sort_values(["_m", "clip_id"]).drop(columns="_m").reset_index(drop=True)


def to_markdown(df: pd.DataFrame, floatfmt=fmt) -> str:
    """A GitHub-flavoured Markdown table (hand-written: pandas needs tabulate for this)."""
    def cell(v):
        s = floatfmt(v) if isinstance(v, (float, np.floating)) else str(v)
        return s.replace("|", "\\|")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])
