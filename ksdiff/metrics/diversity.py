"""Head-motion diversity (SadTalker's notion, made precise).

Two numbers, both on head pose (yaw, pitch, roll) in degrees:

(a) sample diversity -- how different the motions generated for the SAME
    audio are (does the model collapse to one answer?):
        SD = 2 / (S (S-1)) * sum_{i<j} (1/T) * sum_t ||h_i(t) - h_j(t)||_2
    for S >= 2 samples of T frames each; undefined (NaN) for one sample.
    Ground truth has one "sample" per clip, so SD is only reported for methods.

(b) temporal diversity -- how much a single motion moves over time:
        TD = (1/D) * sum_d std_t(h(t)_d)        (population std, ddof = 0)
    reported for every method sample AND for ground truth, the reference a
    method should approach (too little: a frozen head; far more: jitter).

Both are in degrees. Any other (T, D) motion vector may be passed; the unit is
then that signal's unit.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def sample_diversity(samples: np.ndarray) -> float:
    """Mean pairwise L2 distance between (S, T, D) samples, averaged over frames."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:  # (S, T): one-dimensional motion
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"samples must be (S, T, D); got shape {np.shape(samples)}")
    s = x.shape[0]
    if s < 2:
        log.warning("sample diversity needs at least 2 samples for the same audio; got %d", s)
        return float("nan")
    if x.shape[1] == 0:
        raise ValueError("samples have no frames")
    i, j = np.triu_indices(s, k=1)
    d = np.linalg.norm(x[i] - x[j], axis=-1)  # (pairs, T)
    return float(d.mean())


def temporal_diversity(head: np.ndarray) -> float:
    """Std over time of a (T, D) motion, averaged over dimensions (ddof=0)."""
    h = np.asarray(head, dtype=np.float64)
    if h.ndim == 1:
        h = h[:, None]
    if h.ndim != 2 or h.shape[0] == 0:
        raise ValueError(f"head motion must be a non-empty (T, D) array; got shape {np.shape(head)}")
    return float(h.std(axis=0).mean())
