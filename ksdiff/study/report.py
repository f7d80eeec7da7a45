"""The leaderboard's user-study section: one per studies/{name}/scores.parquet (Markdown and HTML).

Per study: MOS per method and criterion, A/B win rates against all opponents with Bradley-Terry
strengths, the win rate of every pair, agreement between raters, and which raters were excluded by the
catch trials and why, which files were rejected and why.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ksdiff.io import parquet
from ksdiff.report.html import html_table
from ksdiff.report.tables import to_markdown


def find_scores(study_dir: str | Path, datasets: set[str]) -> list[Path]:
    """The studies' scores tables beside the run that belong with these datasets' leaderboard."""
    out = []
    for p in sorted(Path(study_dir).glob("*/scores.parquet")):
        ds = parquet.read_attrs(p).get("dataset")
        if ds is None or ds in datasets:
            out.append(p)
    return out


def _cell(v: float, lo: float, hi: float, digits: int = 2) -> str:
    if not math.isfinite(v):
        return "–"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _wide(t: pd.DataFrame, statistic: str, criteria: list[str], index: list[str], digits: int = 2) -> pd.DataFrame:
    d = t[t["statistic"] == statistic]
    if d.empty:
        return pd.DataFrame()
    d = d.assign(cell=[_cell(v, lo, hi, digits) for v, lo, hi in zip(d["value"], d["lo"], d["hi"])])
    wide = d.pivot_table(index=index, columns="criterion", values="cell", aggfunc="first")
    cols = [c for c in criteria if c in wide.columns]
    # Methods in the order of the first criterion's value, best first.
    first = d[d["criterion"] == cols[0]].set_index(index)["value"]
    wide = wide[cols].loc[first.sort_values(ascending=False).index]
    n = d.groupby(index)[["n_raters", "n_ratings"]].max()
    wide = wide.join(n).reset_index()
    return wide.rename(columns={"method": "Method", "opponent": "Opponent", "n_raters": "Raters", "n_ratings": "Ratings"})


def _winner_first(pairs: pd.DataFrame) -> pd.DataFrame:
    """Each pair read as 'Method beat Opponent', Method the one that won more often on the first criterion
    (one orientation per pair, so its row reads the same way on every criterion)."""
    flip = pairs.groupby(["method", "opponent"])["value"].transform("first") < 0.5
    out = pairs.copy()
    out.loc[flip, ["method", "opponent"]] = pairs.loc[flip, ["opponent", "method"]].to_numpy()
    out.loc[flip, "value"] = 1 - pairs.loc[flip, "value"]
    out.loc[flip, "lo"], out.loc[flip, "hi"] = 1 - pairs.loc[flip, "hi"], 1 - pairs.loc[flip, "lo"]
    return out


def study_tables(path: Path) -> dict:
    """Everything one study's section shows, as tables and sentences."""
    t = parquet.read_table(path, "study_scores")
    a = t.attrs
    df = t.to_pandas()
    crit = [c["name"] for c in a["criteria"]]
    level = f"{a['ci_level']:.0%}"
    tables = []
    if not df.empty:
        m = _wide(df[df["kind"] == "mos"], "mos", crit, ["method"])
        if not m.empty:
            tables.append({"title": "MOS (1-5)", "table": m,
                           "caption": f"mean score per criterion [{level} bootstrap interval over raters and clips]"})
        ab = df[(df["kind"] == "ab") & (df["opponent"] == "")]
        w = _wide(ab, "win_rate", crit, ["method"])
        if not w.empty:
            tables.append({"title": "A/B win rate against all opponents", "table": w,
                           "caption": f"share of its comparisons a method won [{level} interval]; 0.5 is chance"})
            tables.append({"title": "Bradley-Terry strength", "table": _wide(ab, "bt_strength", crit, ["method"]),
                           "caption": f"log-strength, mean 0 over methods (choix ILSR, ridge {a['bt_alpha']:g}) "
                                      f"[{level} interval]; a difference d means the first wins with odds e^d"})
            pw = _wide(_winner_first(df[(df["kind"] == "ab") & (df["opponent"] != "")]), "win_rate", crit,
                       ["method", "opponent"])
            tables.append({"title": "A/B win rate per pair", "table": pw,
                           "caption": f"how often Method beat Opponent [{level} interval]"})
        al = df[df["statistic"] == "krippendorff_alpha"]
        if not al.empty:
            agr = al.pivot_table(index="kind", columns="criterion", values="value", aggfunc="first")
            agr = agr[[c for c in crit if c in agr.columns]].map(lambda v: f"{v:.2f}" if math.isfinite(v) else "–")
            agr.index = [{"mos": "MOS (ordinal)", "ab": "A/B (nominal)"}[k] for k in agr.index]
            tables.append({"title": "Agreement (Krippendorff's alpha)", "table": agr.reset_index(names="Kind"),
                           "caption": "1 perfect agreement, 0 what chance gives; units rated by two or more raters"})
    raters = a.get("raters", [])
    excluded = [r for r in raters if r["excluded"]]
    text = (f"Study {a['study_id']} ({a['kind']}): {len(raters) - len(excluded)} raters scored, "
            f"{len(excluded)} excluded, {len(a.get('rejected', []))} file(s) rejected; intervals: "
            f"{a['bootstrap_samples']} two-way bootstrap resamples over raters and clips, seed {a['seed']}. "
            f"{a['exclusion_rule']}")
    if t.status != parquet.OK:
        text = f"No scores: {t.reason}. " + text
    rater_table = pd.DataFrame([{"Rater": r["rater"], "Items": r["items"], "Catch passed": r["catch_passed"],
                                 "Catch failed": r["catch_failed"], "Excluded": "yes" if r["excluded"] else "no",
                                 "Reason": r["reason"] or "–"} for r in raters])
    rejected = pd.DataFrame([{"File": r["file"], "Reason": r["reason"]} for r in a.get("rejected", [])])
    return {"id": a["study_id"], "name": a["name"], "text": text, "tables": tables, "raters": rater_table,
            "excluded": [f"{r['rater']}: {r['reason']}" for r in excluded], "rejected": rejected}


def markdown(studies: list[dict]) -> list[str]:
    lines = []
    for s in studies:
        lines += [f"## User study: {s['name']}", "", s["text"], ""]
        for t in s["tables"]:
            lines += [f"**{t['title']}** — {t['caption']}", "", to_markdown(t["table"]), ""]
        lines += ["Excluded raters:", ""] + ([f"- {e}" for e in s["excluded"]] or ["- none"]) + [""]
        if not s["rejected"].empty:
            lines += ["Rejected files:", "", to_markdown(s["rejected"]), ""]
    return lines


def html(studies: list[dict]) -> list[dict]:
    return [{"id": s["id"], "name": s["name"], "text": s["text"], "excluded": s["excluded"],
             "tables": [{"title": t["title"], "caption": t["caption"], "html": html_table(t["table"])} for t in s["tables"]],
             "raters_html": html_table(s["raters"]) if not s["raters"].empty else "",
             "rejected_html": html_table(s["rejected"]) if not s["rejected"].empty else ""} for s in studies]
