"""The numbers of a user study, each with a percentile-bootstrap interval over raters and clips.

Raters and clips are both samples (of people and of material), and ratings of one rater or of one clip
are not independent, so the intervals come from a two-way bootstrap: each resample draws raters with
replacement and, independently, clips with replacement, and a rating counts as often as its rater times
its clip were drawn (the crossed-random-effects bootstrap; Brennan, Harris & Hanson 1987; used for MOS by
Naderi & Cutler's crowdsourcing toolkit). A one-way bootstrap over ratings would treat 1000 ratings
of 10 raters as 1000 people and give intervals far too narrow.

- MOS: mean score per method and criterion.
- A/B: win rate of a method against each opponent and against all of them; Bradley-Terry strengths
  (log scale, mean 0 over methods) fitted by choix's ILSR on the (resample-weighted) win counts, with a
  small ridge (``BT_ALPHA``) so a method that always wins keeps a finite strength.
- Agreement: Krippendorff's alpha (the krippendorff package): ordinal on MOS scores, nominal on which
  method of a pair won; units are (clip, method) and (clip, pair) per criterion, so the two raters of a
  mirrored couple are compared on the same pair shown in both orders.
"""
from __future__ import annotations

import choix
import krippendorff
import numpy as np
import pandas as pd

BT_ALPHA = 0.01  # choix's regularisation: a Gaussian prior on strengths, negligible beside real counts
BLOCK = 256  # resamples per block: bounds memory at BLOCK x ratings weights


def resample_weights(raters: np.ndarray, clips: np.ndarray, n_boot: int, seed: int):
    """Yield blocks (b, n_ratings) of two-way bootstrap weights: count of the rater x count of the clip."""
    ru, ri = np.unique(raters, return_inverse=True)
    cu, ci = np.unique(clips, return_inverse=True)
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        b = min(BLOCK, n_boot - done)
        wr = rng.multinomial(len(ru), np.full(len(ru), 1 / len(ru)), size=b).astype(np.float64)
        wc = rng.multinomial(len(cu), np.full(len(cu), 1 / len(cu)), size=b).astype(np.float64)
        yield wr[:, ri] * wc[:, ci]
        done += b


def _interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    q = (1 - level) / 2
    with np.errstate(all="ignore"):
        return np.nanquantile(samples, q, axis=0), np.nanquantile(samples, 1 - q, axis=0)


def _row(kind, criterion, method, opponent, statistic, value, lo, hi, d: pd.DataFrame) -> dict:
    return {"kind": kind, "criterion": criterion, "method": method, "opponent": opponent, "statistic": statistic,
            "value": float(value), "lo": float(lo), "hi": float(hi), "n_ratings": int(len(d)),
            "n_raters": int(d["rater"].nunique()), "n_clips": int(d["clip"].nunique())}


def mos(df: pd.DataFrame, n_boot: int, level: float, seed: int) -> list[dict]:
    """MOS per (criterion, method) of MOS rows (column 'left' is the method)."""
    out = []
    for crit, d in df.groupby("criterion", sort=False):
        methods = sorted(d["left"].unique())
        g = pd.Categorical(d["left"], categories=methods).codes
        onehot = np.eye(len(methods))[g]  # (n, M)
        s = d["score"].to_numpy(float)
        boots = []
        for w in resample_weights(d["rater"].to_numpy(), d["clip"].to_numpy(), n_boot, seed):
            with np.errstate(invalid="ignore", divide="ignore"):
                boots.append((w * s) @ onehot / (w @ onehot))  # a method no resampled rater saw: NaN, ignored
        lo, hi = _interval(np.concatenate(boots), level)
        for j, m in enumerate(methods):
            dm = d[g == j]
            out.append(_row("mos", crit, m, "", "mos", dm["score"].mean(), lo[j], hi[j], dm))
    return out


def _bt(counts: np.ndarray) -> np.ndarray:
    """Bradley-Terry log-strengths (mean 0) from a win-count matrix counts[i, j] = i beat j."""
    return choix.ilsr_pairwise_dense(counts, alpha=BT_ALPHA)


def ab(df: pd.DataFrame, n_boot: int, level: float, seed: int) -> list[dict]:
    """Win rates (per opponent and overall) and Bradley-Terry strengths per criterion of A/B rows."""
    out = []
    for crit, d in df.groupby("criterion", sort=False):
        methods = sorted(set(d["winner"]) | set(d["loser"]))
        m = len(methods)
        win = pd.Categorical(d["winner"], categories=methods).codes
        lose = pd.Categorical(d["loser"], categories=methods).codes
        cell = np.eye(m * m)[win * m + lose]  # (n, M*M): which (winner, loser) each rating is
        pairs = sorted({tuple(sorted(p)) for p in zip(win, lose)})
        boot_pair, boot_all, boot_bt = [], [], []
        for w in resample_weights(d["rater"].to_numpy(), d["clip"].to_numpy(), n_boot, seed):
            c = (w @ cell).reshape(-1, m, m)  # c[b, i, j]: weighted wins of i over j
            tot = c + c.transpose(0, 2, 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot_pair.append(np.stack([c[:, i, j] / tot[:, i, j] for i, j in pairs], axis=1))
                boot_all.append(c.sum(2) / tot.sum(2))
            boot_bt.append(np.stack([_bt(cb) for cb in c]))
        c0 = np.zeros((m, m))
        np.add.at(c0, (win, lose), 1.0)
        tot0 = c0 + c0.T
        bt0 = _bt(c0)
        lo_p, hi_p = _interval(np.concatenate(boot_pair), level)
        lo_a, hi_a = _interval(np.concatenate(boot_all), level)
        lo_b, hi_b = _interval(np.concatenate(boot_bt), level)
        for k, (i, j) in enumerate(pairs):
            dp = d[((win == i) & (lose == j)) | ((win == j) & (lose == i))]
            out.append(_row("ab", crit, methods[i], methods[j], "win_rate", c0[i, j] / tot0[i, j], lo_p[k], hi_p[k], dp))
        for i, name in enumerate(methods):
            di = d[(win == i) | (lose == i)]
            out.append(_row("ab", crit, name, "", "win_rate", c0[i].sum() / tot0[i].sum(), lo_a[i], hi_a[i], di))
            out.append(_row("ab", crit, name, "", "bt_strength", bt0[i], lo_b[i], hi_b[i], d))
    return out


def agreement(df: pd.DataFrame) -> list[dict]:
    """Krippendorff's alpha per kind and criterion (NaN where no unit was rated twice)."""
    out = []
    for (kind, crit), d in df.groupby(["kind", "criterion"], sort=False):
        if kind == "mos":
            unit = d["clip"] + "|" + d["left"]
            value, level = d["score"].to_numpy(float), "ordinal"
        else:  # which method of the (unordered) pair won, whatever side it was on
            w, l = d["winner"].to_numpy(str), d["loser"].to_numpy(str)
            first, second = np.where(w < l, w, l), np.where(w < l, l, w)
            unit = d["clip"] + "|" + first + "|" + second
            value, level = (w == first).astype(float), "nominal"
        t = pd.DataFrame({"rater": d["rater"].to_numpy(), "unit": unit.to_numpy(), "v": value})
        wide = t.pivot_table(index="rater", columns="unit", values="v", aggfunc="first")
        pairable = int((wide.notna().sum(axis=0) >= 2).sum())
        a = float("nan")
        if pairable and len(np.unique(t["v"])) > 1:
            a = float(krippendorff.alpha(reliability_data=wide.to_numpy(float), level_of_measurement=level))
        elif pairable:
            a = 1.0  # every rating the same value: perfect agreement, which alpha's formula leaves 0/0
        out.append(_row(kind, crit, "", "", "krippendorff_alpha", a, float("nan"), float("nan"), d))
    return out


def catch_results(df: pd.DataFrame, criterion: str, truth: str, floor: str) -> pd.DataFrame:
    """One row per rater and catch trial: passed or not (A/B: ground truth chosen; MOS: scored higher)."""
    d = df[df["catch"] & (df["criterion"] == criterion)]
    rows = []
    for r in d[d["kind"] == "ab"].itertuples():
        rows.append({"rater": r.rater, "kind": "ab", "clip": r.clip, "item": r.item, "passed": r.winner == truth})
    mos_ = d[d["kind"] == "mos"]
    for (rater, clip), g in mos_.groupby(["rater", "clip"]):
        s = dict(zip(g["left"], g["score"]))
        if truth in s and floor in s:  # a rater who stopped between the two has not done this trial
            rows.append({"rater": rater, "kind": "mos", "clip": clip, "item": ",".join(g["item"]),
                         "passed": s[truth] > s[floor]})
    return pd.DataFrame(rows, columns=["rater", "kind", "clip", "item", "passed"])
