"""Ground-truth keyframes for KEL: the "most salient motion frames".

The paper does not publish its selection rule. Ours:

1. saliency s(t) = || m'(t) || (``signal="speed"``) or || m''(t) || (``"accel"``),
   derivatives by central differences over all coefficient dimensions (the motion
   is normalized, so every dimension counts in units of its own std);
   frames whose difference stencil touches an invalid frame get s = 0;
2. candidates are the local maxima of s that reach the given percentile of s over
   the valid frames (so each window keeps its most dynamic frames, whatever the
   speaker's overall energy);
3. non-maximum suppression: where two candidates are closer than ``min_spacing``
   frames, the smaller one is dropped (greedily, largest first), so any two
   keyframes are at least ``min_spacing`` frames apart.

Steps 2-3 are ``scipy.signal.find_peaks(s, height=threshold, distance=min_spacing)``,
which implements exactly that rule (flat peaks report their middle frame).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.signal import find_peaks


def motion_saliency(motion: np.ndarray, valid: np.ndarray | None = None, signal: str = "speed") -> np.ndarray:
    """(T, D) motion -> (T,) speed or acceleration magnitude, 0 where the stencil leaves the valid frames."""
    m = np.nan_to_num(np.asarray(motion, dtype=np.float64))
    if m.ndim != 2:
        raise ValueError(f"motion must be (T, D), got shape {m.shape}")
    n = m.shape[0]
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if n < 3:
        return np.zeros(n)
    if signal == "speed":
        deriv, reach = np.gradient(m, axis=0), 1
    elif signal == "accel":
        deriv, reach = np.gradient(np.gradient(m, axis=0), axis=0), 2
    else:
        raise ValueError(f"signal must be 'speed' or 'accel', got {signal!r}")
    s = np.linalg.norm(deriv, axis=1)
    ok = valid.copy()
    for k in range(1, reach + 1):  # the stencil must see valid frames on both sides (edges use one-sided differences)
        ok[k:] &= valid[:-k]
        ok[:-k] &= valid[k:]
    s[~ok] = 0.0
    return s


def select_keyframes(
    motion: np.ndarray | torch.Tensor,
    percentile: float,
    min_spacing: int,
    signal: str = "speed",
    valid: np.ndarray | torch.Tensor | None = None,
) -> np.ndarray | torch.Tensor:
    """(T, D) motion -> (T,) bool keyframe mask (torch in, torch out on the same device; else numpy)."""
    as_torch = isinstance(motion, torch.Tensor)
    m = motion.detach().float().cpu().numpy() if as_torch else np.asarray(motion)
    v = valid.detach().cpu().numpy() if isinstance(valid, torch.Tensor) else valid
    s = motion_saliency(m, v, signal)
    keep = np.zeros(s.shape[0], dtype=bool)
    inside = s[np.ones_like(s, dtype=bool) if v is None else np.asarray(v, dtype=bool)]
    if inside.size and s.max() > 0:
        threshold = max(float(np.percentile(inside, percentile)), np.finfo(np.float32).tiny)
        peaks, _ = find_peaks(s, height=threshold, distance=max(int(min_spacing), 1))
        keep[peaks] = True
    return torch.from_numpy(keep).to(motion.device) if as_torch else keep


def select_keyframes_batch(
    motion: torch.Tensor, mask: torch.Tensor, percentile: float, min_spacing: int, signal: str = "speed"
) -> torch.Tensor:
    """(B, T, D) motion and (B, T) valid mask -> (B, T) bool keyframes, per sample."""
    m = motion.detach().float().cpu().numpy()
    v = mask.detach().cpu().numpy()
    out = np.stack([select_keyframes(m[b], percentile, min_spacing, signal, v[b]) for b in range(m.shape[0])])
    return torch.from_numpy(out).to(motion.device)
