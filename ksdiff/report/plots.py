"""Leaderboard figures as PNG files (matplotlib, Agg backend: no display needed).

  metric_bars        one panel per metric: the mean per method with its
                     bootstrap interval as an error bar; a metric whose sanity
                     check fails or is undetermined is drawn faded and titled so
  pose_trajectories  yaw / pitch / roll over time, ground truth vs methods
  frame_strip        a few rendered frames side by side, one row per method

Each function writes one PNG and returns its path; ``data_uri`` turns a PNG
into the base64 data: URI the self-contained HTML embeds.
"""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd

from ksdiff.metrics.registry import GROUND_TRUTH, METRIC_INFO
from ksdiff.report.tables import method_order, metric_header, metric_order

DPI = 110  # sharp enough on screen, small enough to embed a dozen figures in one HTML file
GT_STYLE = {"color": "black", "lw": 2.0}  # ground truth is the reference line in every plot


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(methods: list[str]) -> dict[str, str]:
    cyc = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    others = [m for m in methods if m != GROUND_TRUTH]
    col = {m: cyc[i % len(cyc)] for i, m in enumerate(others)}
    col[GROUND_TRUTH] = "0.25"
    return col


def panel_title(metric: str, flags: dict[str, tuple[str, str]] | None = None) -> str:
    """A panel's title: the metric's header, plus the sanity verdict when the metric is flagged."""
    title = metric_header(metric)
    if flags and metric in flags:
        title += f"\n\u26a0 sanity: {flags[metric][0]}"
    return title


def metric_bars(summary: pd.DataFrame, path: str | Path, flags: dict[str, tuple[str, str]] | None = None) -> Path:
    """One bar panel per metric with (lo, hi) error bars; ground truth in grey.

    flags: metric -> (verdict, reason) from ksdiff.report.sanity.flagged. A flagged
    metric's bars are faded and its title names the verdict, as its leaderboard
    column is marked: a reader looking only at the figure must not rank methods by it.
    """
    plt = _plt()
    metrics = metric_order(summary["metric"])
    methods = method_order(summary["method"])
    col = _colours(methods)
    n = max(len(metrics), 1)
    ncols = min(n, 3)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 0.5 + 0.35 * len(methods) * nrows + 1.2 * nrows), squeeze=False)
    for ax, k in zip(axes.flat, metrics):
        s = summary[summary["metric"] == k].set_index("method").reindex([m for m in methods if m in set(summary.loc[summary["metric"] == k, "method"])])
        y = np.arange(len(s))
        lo, hi = s["lo"].to_numpy(float), s["hi"].to_numpy(float)
        faded = bool(flags) and k in flags
        ax.barh(y, s["mean"].to_numpy(float), color=[col[m] for m in s.index], height=0.6, alpha=0.3 if faded else 1.0)
        # Interval as a line with end caps (drawn directly: errorbar's xerr handling
        # trips a numpy deprecation for single-bar panels).
        ax.hlines(y, lo, hi, color="black", lw=1.2)
        ax.vlines(np.concatenate([lo, hi]), np.tile(y - 0.15, 2), np.tile(y + 0.15, 2), color="black", lw=1.2)
        if METRIC_INFO.get(k, ("", "", ""))[2] == "closer to ground truth" and GROUND_TRUTH in s.index:
            ax.axvline(s.loc[GROUND_TRUTH, "mean"], color=GT_STYLE["color"], ls="--", lw=1.0)
        ax.set_yticks(y, s.index)
        ax.invert_yaxis()
        ax.set_title(panel_title(k, flags), fontsize=10, color="#b00000" if faded else "black")
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def pose_trajectories(curves: dict[str, np.ndarray], fps: float, clip: str, path: str | Path) -> Path:
    """Yaw / pitch / roll (degrees) over time for one clip; curves: method -> (T, 3)."""
    plt = _plt()
    methods = method_order(curves)
    col = _colours(methods)
    fig, axes = plt.subplots(3, 1, figsize=(9, 5.5), sharex=True)
    for ax, k, name in zip(axes, range(3), ("yaw", "pitch", "roll")):
        for m in methods:
            h = np.asarray(curves[m])
            t = np.arange(len(h)) / fps
            style = GT_STYLE if m == GROUND_TRUTH else {"color": col[m], "lw": 1.1}
            ax.plot(t, h[:, k], label=m, **style)
        ax.set_ylabel(f"{name} [deg]")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"Head pose, clip {clip} (sample 0 of each method)", fontsize=10)
    axes[0].legend(fontsize=8, ncol=min(len(methods), 4), loc="upper right")
    axes[-1].set_xlabel("time [s]")
    fig.tight_layout()
    return _save(fig, path)


def frame_strip(frames: dict[str, list[np.ndarray]], times: list[float], clip: str, path: str | Path) -> Path:
    """A grid of rendered frames: one row per method, one column per time."""
    plt = _plt()
    methods = method_order(frames)
    ncol = max(len(times), 1)
    fig, axes = plt.subplots(len(methods), ncol, figsize=(1.9 * ncol + 1.2, 1.9 * len(methods)), squeeze=False)
    for i, m in enumerate(methods):
        for j in range(ncol):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(frames[m]):
                ax.imshow(frames[m][j])
            if i == 0:
                ax.set_title(f"{times[j]:.2f} s", fontsize=9)
            if j == 0:
                ax.set_ylabel(m, fontsize=9)
    fig.suptitle(f"Clip {clip}: the same warp renderer for every row", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> Path:
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def data_uri(path: str | Path) -> str:
    """A PNG file as a data: URI, for embedding in a self-contained HTML page."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
