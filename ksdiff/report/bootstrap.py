"""95% intervals over clips: percentile bootstrap of the mean of clip-level values.

The unit of resampling is the clip, because clips are the independent units
(frames of one clip and samples for one audio are not). So samples are first
averaged within their clip (``clip_means``) and only then resampled.

Method: the percentile bootstrap (Efron & Tibshirani 1993, ch. 13): draw n
resamples of the clip values with replacement, take each resample's mean,
report the alpha/2 and 1 - alpha/2 quantiles of those means. It is chosen over
BCa because it is defined for every sample (BCa's acceleration is undefined
for constant data, e.g. a metric that is 0 on every clip) and its meaning is
easy to state in a report. scipy.stats.bootstrap does the resampling, seeded,
so a report rebuilds to the same digits.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def bootstrap_ci(values, n: int = 2000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi) of ``values`` with a percentile-bootstrap (1 - alpha) interval.

    NaNs are dropped. No value: all NaN. One value (or constant values): the
    interval is degenerate (lo = hi = mean): with one clip there is no
    spread to resample.
    """
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return mean, mean, mean
    res = bootstrap(
        (x,), np.mean, n_resamples=int(n), confidence_level=1.0 - alpha, method="percentile",
        vectorized=True, rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return mean, float(ci.low), float(ci.high)


def clip_means(metrics: pd.DataFrame) -> pd.DataFrame:
    """Average over samples within each (method, clip, metric): the values that get resampled.

    Input: long-format metrics (method, clip_id, sample, metric, value).
    Output columns: method, metric, clip_id, value, n_samples.
    """
    df = metrics[np.isfinite(metrics["value"].astype(float))]
    g = df.groupby(["method", "metric", "clip_id"], sort=True)["value"]
    return g.agg(value="mean", n_samples="size").reset_index()
