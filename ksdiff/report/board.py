"""The leaderboard's layout: one table per metric family, methods ranked by the family's primary metric.

From the summary (ksdiff.report.tables.summarise: method, metric, mean, lo, hi, n_clips) ``build_board``
makes an overview (each family's ranking metric side by side, with the methods' clip and parameter counts)
and one ``BoardTable`` per family that has a scored metric (ksdiff.report.families says which metric ranks
which family). In every table the methods come first, ranked, the best value of each column marked; ground
truth and the floors (ksdiff.config.FLOORS) follow as reference rows, never ranked or marked. A column the
sanity check flags marks no best value. ``markdown`` writes a table as GitHub Markdown; ksdiff.report.html
writes it as a sortable HTML table from the same ``shown`` cells.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ksdiff.config import FLOORS
from ksdiff.metrics.registry import GROUND_TRUTH, METRIC_INFO
from ksdiff.report import families
from ksdiff.report.tables import SANITY_MARK, fmt, method_order, metric_header, metric_order, to_markdown

METHOD, REFERENCE, FLOOR = "method", "reference", "floor"
TOWARDS = {"closer to 0": "(→ 0)", "closer to ground truth": "(→ GT)"}  # the heads' arrows for the other directions


def column_head(metric: str, flags: dict) -> str:
    """A board column's head: label [unit], which way is better (↓, ↑, → 0, → GT), the sanity flag if any."""
    towards = TOWARDS.get(METRIC_INFO.get(metric, ("", "", ""))[2])
    head = metric_header(metric) + (f" {towards}" if towards else "")
    return head + (f" {SANITY_MARK} {flags[metric][0]}" if metric in flags else "")


def role(method: str) -> str:
    return REFERENCE if method == GROUND_TRUTH else FLOOR if method in FLOORS else METHOD


def ranking_key(metric: str, mean: float, gt_mean: float | None) -> float | None:
    """A value's distance from the best possible, for sorting (smaller is better); None: it cannot be ranked
    (no value, no known direction, or 'closer to ground truth' without ground truth's value)."""
    better = METRIC_INFO.get(metric, ("", "", ""))[2]
    if mean is None or not np.isfinite(mean):
        return None
    if better == "lower":
        return float(mean)
    if better == "higher":
        return -float(mean)
    if better == "closer to 0":
        return abs(float(mean))
    if better == "closer to ground truth" and gt_mean is not None and np.isfinite(gt_mean):
        return abs(float(mean) - float(gt_mean))
    return None


@dataclass(frozen=True)
class Shown:
    """One displayed cell: its value, the interval beside it, the key it sorts by (ascending = best first)."""
    value: str
    interval: str = ""
    key: float | str | None = None
    best: bool = False
    flagged: bool = False


@dataclass
class Row:
    method: str
    n_clips: int
    cells: dict  # metric -> summary row (mean, lo, hi, n_clips)
    rank: int | None = None
    parameters: int | None = None

    @property
    def role(self) -> str:
        return role(self.method)


@dataclass
class BoardTable:
    key: str  # the family (or 'overview'): the HTML table's id
    title: str
    caption: str
    metrics: list[str]
    heads: list[str]
    rows: list[Row]  # methods (ranked where the table is), then the reference rows
    flags: dict
    gt: dict  # metric -> ground truth's mean (for 'closer to ground truth')
    primary: str | None = None
    ranked: bool = True
    with_parameters: bool = False
    best: dict = field(default_factory=dict)  # metric -> (best ranking key, its clips) among the methods (_best)

    def columns(self) -> list[tuple[str, str]]:
        """(head, 'num' | 'text'): how the HTML sorts each column."""
        first = [("Rank", "num"), ("Method", "text")] if self.ranked else [("Method", "text"), ("Kind", "text")]
        return first + [("n clips", "num")] + ([("Parameters", "num")] if self.with_parameters else []) \
            + [(h, "num") for h in self.heads]

    def shown(self, row: Row) -> list[Shown]:
        n = Shown(str(row.n_clips), key=-row.n_clips)  # more clips first
        if self.ranked:
            rank = Shown(str(row.rank), key=row.rank) if row.rank is not None else Shown("–" if row.role == METHOD else row.role)
            first = [rank, Shown(row.method, key=row.method)]
        else:
            first = [Shown(row.method, key=row.method), Shown(row.role, key=row.role)]
        params = ([Shown(f"{row.parameters:,}", key=row.parameters) if row.parameters is not None else Shown("–")]
                  if self.with_parameters else [])
        return first + [n] + params + [self._cell(row, k) for k in self.metrics]

    def _cell(self, row: Row, metric: str) -> Shown:
        r = row.cells.get(metric)
        flagged = metric in self.flags
        if r is None:
            return Shown("–", flagged=flagged)
        interval = f"[{fmt(r['lo'])}, {fmt(r['hi'])}]" if np.isfinite(r["lo"]) else "(set-level)"  # E-FID: no interval
        if int(r["n_clips"]) != row.n_clips:
            interval += f" (n={int(r['n_clips'])})"
        key = ranking_key(metric, r["mean"], self.gt.get(metric))
        best = (row.role == METHOD and key is not None and metric in self.best
                and (key, int(r["n_clips"])) == self.best[metric])
        return Shown(fmt(r["mean"]), interval, key, best, flagged)


@dataclass
class Board:
    overview: BoardTable
    tables: list[BoardTable]


def _rows(summary: pd.DataFrame, n_clips: dict | None, parameters: dict | None) -> list[Row]:
    cells: dict[str, dict] = {}
    for r in summary.to_dict("records"):
        cells.setdefault(r["method"], {})[r["metric"]] = r
    methods = method_order(summary["method"])
    out = []
    for m in methods:
        n = (n_clips or {}).get(m, max(int(c["n_clips"]) for c in cells[m].values()))
        out.append(Row(m, int(n), cells[m], parameters=(parameters or {}).get(m)))
    return out


def _sorted(rows: list[Row], primary: str | None, gt: dict) -> list[Row]:
    """Methods by the primary metric (ties share a rank), then ground truth, then the floors in FLOORS order.

    Only the methods whose primary value covers the most clips are ranked: a method scored on fewer (an
    external folder missing some test clips' videos) has a mean over other clips, which cannot be placed
    against theirs. It follows the ranked methods, unranked, in its own value's order; methods without a
    primary value come last, in their order."""
    methods = [r for r in rows if r.role == METHOD]
    keyed = [(ranking_key(primary, r.cells[primary]["mean"], gt.get(primary)) if primary in r.cells else None, i, r)
             for i, r in enumerate(methods)] if primary else []
    keyed = sorted((t for t in keyed if t[0] is not None), key=lambda t: (t[0], t[1]))
    most = max((int(r.cells[primary]["n_clips"]) for _, _, r in keyed), default=0)
    ranked = [t for t in keyed if int(t[2].cells[primary]["n_clips"]) == most]
    out, prev = [], None
    for pos, (k, _, r) in enumerate(ranked):
        r.rank = out[-1].rank if out and k == prev else pos + 1
        prev = k
        out.append(r)
    out += [r for _, _, r in keyed if r not in out]  # scored on fewer clips: not ranked
    out += [r for r in methods if r not in out]
    refs = [r for r in rows if r.role == REFERENCE] + sorted((r for r in rows if r.role == FLOOR),
                                                             key=lambda r: FLOORS.index(r.method))
    return out + refs


def _best(rows: list[Row], metrics: list[str], gt: dict, flags: dict) -> dict:
    """metric -> (best ranking key, number of clips) among the methods scored on the most clips in that
    column: a method scored on fewer clips (an external folder missing videos) is a mean over other clips,
    so it is shown with its n but never marked best against the others."""
    out = {}
    for k in metrics:
        if k in flags:
            continue  # a column that cannot tell ground truth from the floors names no best method
        cells = [(ranking_key(k, r.cells[k]["mean"], gt.get(k)), int(r.cells[k]["n_clips"]))
                 for r in rows if r.role == METHOD and k in r.cells]
        cells = [c for c in cells if c[0] is not None]
        if cells:
            n = max(c[1] for c in cells)
            out[k] = (min(key for key, m in cells if m == n), n)
    return out


def _copy(rows: list[Row]) -> list[Row]:
    return [Row(r.method, r.n_clips, r.cells, parameters=r.parameters) for r in rows]


def build_board(summary: pd.DataFrame, n_clips: dict | None = None, flags: dict | None = None,
                parameters: dict | None = None) -> Board:
    """The overview and one table per family from the summary (with set-level rows such as E-FID's)."""
    flags = flags or {}
    rows = _rows(summary, n_clips, parameters)
    gt = {k: r["mean"] for r in rows if r.method == GROUND_TRUTH for k, r in r.cells.items()}
    present = metric_order(summary["metric"])
    by_family: dict[str, list[str]] = {}
    for k in present:
        by_family.setdefault(families.family_of(k), []).append(k)
    head = lambda k: column_head(k, flags)  # noqa: E731
    tables, primaries = [], []
    for fam in families.ordered(by_family):
        metrics = by_family[fam]
        rankable = [k for k in metrics if any(ranking_key(k, r.cells[k]["mean"], gt.get(k)) is not None
                                              for r in rows if r.role == METHOD and k in r.cells)]
        primary, why = families.choose_primary(fam, rankable, flags, metric_header)
        if primary is None:
            caption = f"Not ranked: {why}."
        else:
            caption = f"Ranked by {metric_header(primary)}{_towards(primary, gt)}" + (f"; {why}." if why else ".")
            primaries.append((fam, primary))
            metrics = [primary] + [k for k in metrics if k != primary]  # the ranking column first
        t_rows = _sorted(_copy(rows), primary, gt)
        tables.append(BoardTable(fam.replace(" ", "-"), families.title(fam), caption, metrics, [head(k) for k in metrics],
                                 t_rows, flags, gt, primary, best=_best(t_rows, metrics, gt, flags)))
    metrics = [k for _, k in primaries]
    over_rows = _sorted(sorted(_copy(rows), key=lambda r: r.method), None, gt)  # methods by name
    overview = BoardTable("overview", "At a glance", "Each family's ranking metric; every metric is in its family's "
                          "table below.", metrics, [f"{families.title(f)}: {head(k)}" for f, k in primaries], over_rows,
                          flags, gt, ranked=False, with_parameters=parameters is not None,
                          best=_best(over_rows, metrics, gt, flags))
    return Board(overview, tables)


def _towards(metric: str, gt: dict) -> str:
    better = METRIC_INFO.get(metric, ("", "", ""))[2]
    if better == "closer to ground truth":
        return f" (distance from ground truth's {fmt(gt[metric])})"
    if better == "closer to 0":
        return " (|value|)"
    return ""


def markdown(t: BoardTable) -> str:
    """A board table as GitHub Markdown: the best value of each column in bold, its interval beside it."""
    def text(s: Shown) -> str:
        v = f"**{s.value}**" if s.best else s.value
        return f"{v} {s.interval}".strip()

    rows = [[text(s) for s in t.shown(r)] for r in t.rows]
    return to_markdown(pd.DataFrame(rows, columns=[h for h, _ in t.columns()]))


LEGEND = ("Each family's table ranks the methods by its ranking metric (named above the table; ties share a rank) "
          "by the mean over clips: where two methods' intervals overlap, their order is not resolved. ↓: lower is "
          "better, ↑: higher, → 0: closer to 0, → GT: closer to ground truth's value. Bold: the "
          "best method in that column among those scored on the most clips (a value marked (n=k) covers fewer; "
          "none in a column the sanity check flags). A method whose ranking metric covers fewer clips than the "
          "others' is listed after the ranked methods without a rank: its mean is over other clips. Ground truth "
          "and the floors (mismatched: another clip's motion; static: the mean face) follow the methods as "
          "reference rows, neither ranked nor marked.")
