"""The non-learned baselines' motion for one test clip (``ksdiff infer --method static|mismatched``).

Baselines (no checkpoint; they read the clips' coeffs tables, and ``mismatched`` another clip's):
  static      the mean face: the training mean head pose (relative to the
              reference, so the head holds the clip's reference pose, shifted by
              the training clips' average drift from their first frame) and zero
              expression (the PCA mean shape), held still for the whole clip; one
              sample.
  mismatched  the ground truth of another test clip (next in sorted order with a
              different speaker when there is one), cropped or ping-pong looped to
              this clip's length: its motion relative to its own reference frame,
              placed at this clip's reference, i.e. real motion of another speaker
              with the wrong speech, the floor for lip sync and BeatAlign. It is
              anchored like every model (not the other speaker's absolute pose), so
              a model cannot beat it on head placement by anchoring alone.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ksdiff.config import BASELINES
from ksdiff.data import clip_arrays as ca
from ksdiff.data import motion
from ksdiff.io import parquet


def loop_to_length(x: np.ndarray, n: int) -> np.ndarray:
    """Crop, or extend by ping-pong looping (forward, backward, ...) so the motion never jumps."""
    if len(x) >= n:
        return x[:n]
    if len(x) == 1:
        return np.repeat(x, n, axis=0)
    period = 2 * (len(x) - 1)
    i = np.arange(n) % period
    i = np.where(i < len(x), i, period - i)
    return x[i]


def mismatched_partner(results: Path, clip: str) -> str:
    """The test clip whose ground truth stands in for ``clip``: deterministic, another speaker if possible."""
    sp = parquet.read_table(results / "splits.parquet", "splits").to_pandas()
    speaker = dict(zip(sp["clip_id"], sp["speaker_id"]))
    tests = [c for c in ca.usable_clips(results, "test") if c != clip]
    if not tests:
        raise ca.ClipError("mismatched: no other usable test clip to borrow motion from")
    order = sorted(tests + [clip])
    i = order.index(clip)
    ring = order[i + 1:] + order[:i]
    other = [c for c in ring if speaker.get(c) != speaker.get(clip)]
    return (other or ring)[0]


def baseline_motion(method: str, results: Path, clip: str, n_frames: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """head (1, T, 6), expr (1, T, K) of a non-learned baseline, plus attrs describing it (``pose_frame``: how
    its head rotation is to be placed, see ksdiff.data.motion)."""
    if method == "static":
        stats = ca.Stats.read(results / "stats.parquet")
        head = np.repeat(stats.mean["head"][None], n_frames, axis=0)
        expr = np.zeros((n_frames, len(stats.mean["expr"])), dtype=np.float32)
        return head[None], expr[None], {"pose_frame": stats.pose_frame}
    if method == "mismatched":
        partner = mismatched_partner(results, clip)
        t = parquet.read_table(results / "coeffs" / f"{partner}.parquet", "coeffs")
        if not t.ok:
            raise ca.ClipError(f"mismatched: partner {partner} has no coefficients ({t.reason})")
        head, expr, _ = motion.motion_from_coeffs(t, pose_frame="reference")  # relative to the partner's reference
        return loop_to_length(head, n_frames)[None], loop_to_length(expr, n_frames)[None], \
            {"partner": partner, "pose_frame": "reference"}
    raise ValueError(f"unknown baseline {method!r}; expected one of {BASELINES}")
