"""A clip's per-step tables as aligned arrays, normalised with the training statistics, and cut into windows.

A clip's tables (results/{dataset}/coeffs, features, transcripts) become aligned
arrays (``load_clip``): T motion frames, N = T * feat_per_frame speech-feature
frames, prosody per feature frame, a hashed word id per motion frame. Windows of
``window`` frames with ``n_prev`` frames before them (DiffPoseTalk's continuity
context) are cut from them (``cut_window``); ksdiff.data.dataset turns windows into
the torch batches the models take.

Plain numpy, no torch: packing (ksdiff.data.packs) and the statistics
(ksdiff.data.stats) build these arrays before any model runs, and a job that
imports torch only to read Parquet spends about 1.3 s loading it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ksdiff.data import motion as motion_mod
from ksdiff.io import parquet

log = logging.getLogger(__name__)

_EPS = 1e-6

STATS_NAMES = ("head", "expr", "feat")


class ClipError(ValueError):
    """A clip cannot be used (a step failed or its tables disagree); the message says why."""


# ---------------------------------------------------------------------------- statistics


@dataclass
class Stats:
    """Per-dimension mean/std of head, expr and speech features over the training clips."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    attrs: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path) -> "Stats":
        t = parquet.read_table(path, "stats")
        if not t.ok:
            raise ClipError(f"{path}: stats not available ({t.status}: {t.reason})")
        names = t.table.column("name").to_pylist()
        means, stds = t.column("mean"), t.column("std")
        missing = [n for n in STATS_NAMES if n not in names]
        if missing:
            raise ClipError(f"{path}: stats table lacks rows {missing}")
        mean = {n: np.asarray(means[i], dtype=np.float32) for i, n in enumerate(names)}
        std = {n: np.asarray(stds[i], dtype=np.float32) for i, n in enumerate(names)}
        return cls(mean, std, dict(t.attrs))

    def to_dict(self) -> dict:
        """Plain lists, for storing inside a checkpoint."""
        return {"mean": {k: v.tolist() for k, v in self.mean.items()},
                "std": {k: v.tolist() for k, v in self.std.items()}, "attrs": self.attrs}

    @classmethod
    def from_dict(cls, d: dict) -> "Stats":
        return cls({k: np.asarray(v, dtype=np.float32) for k, v in d["mean"].items()},
                   {k: np.asarray(v, dtype=np.float32) for k, v in d["std"].items()}, dict(d.get("attrs", {})))

    @property
    def pose_frame(self) -> str:
        """How the head rotation these stats describe is held: 'reference' (relative to the clip's anchor
        frame, the current representation) or 'absolute' (stats from before the pose was anchored)."""
        return motion_mod.pose_frame_of(self.attrs.get("representation", "head6-anchor-v1"))

    def normalise(self, name: str, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean[name]) / self.std[name]).astype(np.float32)

    def denormalise(self, name: str, x) -> np.ndarray:
        if hasattr(x, "detach"):  # a torch tensor (a model's output), without importing torch here
            x = x.detach().float().cpu().numpy()
        return (np.asarray(x, dtype=np.float32) * self.std[name] + self.mean[name]).astype(np.float32)


# ---------------------------------------------------------------------------- one clip


@dataclass
class ClipArrays:
    """One clip's aligned raw (not normalised) arrays."""

    clip_id: str
    head: np.ndarray  # (T, 6) see ksdiff.data.motion: pose relative to the anchor (the first valid frame)
    expr: np.ndarray  # (T, K)
    valid: np.ndarray  # (T,) bool, fit valid
    feat: np.ndarray  # (N, D), N = T * feat_per_frame
    feat_valid: np.ndarray  # (N,) bool, False where the features ran short of the motion
    prosody: np.ndarray  # (N, 2) per-clip normalised log-F0 (0 unvoiced) and energy
    words: np.ndarray  # (T,) int64 hashed word ids, 0 = none
    anchor: motion_mod.Anchor  # the reference frame's placement and rotation (an input, like the audio)
    coeffs_attrs: dict
    feat_attrs: dict

    @property
    def n_frames(self) -> int:
        return len(self.head)


def clip_path(results: str | Path, folder: str, clip: str) -> Path:
    return Path(results) / folder / f"{clip}.parquet"


def _read_ok(path: Path, name: str) -> parquet.Table:
    if not path.exists():
        raise ClipError(f"{name}: {path} missing")
    t = parquet.read_table(path, name)
    if not t.ok:
        raise ClipError(f"{name}: {t.status}: {t.reason}")
    return t


def prosody_features(f0_hz: np.ndarray, voiced: np.ndarray, energy_db: np.ndarray) -> np.ndarray:
    """(N,) F0 in Hz, voiced flags and energy in dB -> (N, 2) float32 [log-F0, energy].

    Both channels are normalized per clip (zero mean, unit std) so that a speaker's
    pitch range and the recording level do not leak into the expression path: what
    is left is the contour (rises, falls, stress), which is what FiLM should see.
    log-F0 uses voiced frames only for its statistics and is 0 where unvoiced (0 =
    the speaker's mean, i.e. "no prosodic information"), as the batch contract says.
    """
    f0_hz = np.asarray(f0_hz, dtype=np.float64)
    voiced = np.asarray(voiced, dtype=bool) & np.isfinite(f0_hz) & (f0_hz > 0)
    energy_db = np.asarray(energy_db, dtype=np.float64)
    if not (f0_hz.shape == voiced.shape == energy_db.shape) or f0_hz.ndim != 1:
        raise ValueError(f"f0_hz, voiced and energy_db must be equal-length 1-D arrays, got {f0_hz.shape}, "
                         f"{voiced.shape}, {energy_db.shape}")
    out = np.zeros((f0_hz.shape[0], 2), dtype=np.float32)
    if voiced.any():
        logf0 = np.log(f0_hz[voiced])
        out[voiced, 0] = (logf0 - logf0.mean()) / (logf0.std() + _EPS)
    finite = np.isfinite(energy_db)
    if finite.any():
        e = energy_db[finite]
        out[finite, 1] = (e - e.mean()) / (e.std() + _EPS)
    return out


def feature_arrays(ft: parquet.Table) -> tuple[np.ndarray, np.ndarray]:
    """A features Table -> (feat (N, D) float32, prosody (N, 2) float32)."""
    feat = np.stack([np.asarray(v, dtype=np.float32) for v in ft.column("feat")]) if ft.table.num_rows else None
    if feat is None or feat.ndim != 2:
        raise ClipError("features: empty feature table")
    pros = prosody_features(ft.column("f0_hz"), ft.column("voiced"), ft.column("energy_db"))
    return feat, pros


def align_features(feat: np.ndarray, prosody: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop or zero-pad (N', D) features to exactly n rows; the mask says which rows are real."""
    have = min(len(feat), n)
    f = np.zeros((n, feat.shape[1]), dtype=np.float32)
    p = np.zeros((n, prosody.shape[1]), dtype=np.float32)
    f[:have], p[:have] = feat[:have], prosody[:have]
    m = np.zeros(n, dtype=bool)
    m[:have] = True
    return f, p, m


def feat_per_frame(rate_hz: float, fps: float) -> int:
    r = rate_hz / fps
    if abs(r - round(r)) > 1e-6 or round(r) < 1:
        raise ClipError(f"feature rate {rate_hz} Hz is not a whole multiple of the motion rate {fps} fps")
    return int(round(r))


def load_clip(results: str | Path, clip: str, fps: float, tokenize=None, max_short_frac: float = 0.1) -> ClipArrays:
    """Read and align one clip's coeffs, features and transcript; ClipError says why a clip is unusable.

    The features may run a little short of the motion (the last audio frame's
    window); up to ``max_short_frac`` of missing feature frames are padded and
    masked, more means audio and video disagree and the clip is refused.
    ``tokenize(words, start_s, end_s, n_frames, fps)`` turns the transcript into
    per-frame token ids (ksdiff.models.transcript.tokenizer(model_cfg)); None
    when the caller needs no transcript (then ``words`` is all 0).
    """
    ct = _read_ok(clip_path(results, "coeffs", clip), "coeffs")
    ft = _read_ok(clip_path(results, "features", clip), "features")
    tt = _read_ok(clip_path(results, "transcripts", clip), "transcript")
    try:
        head, expr, valid = motion_mod.motion_from_coeffs(ct)
        anchor = motion_mod.anchor_from_coeffs(ct)
    except ValueError as e:
        raise ClipError(f"coeffs: {e}") from e
    cfps = float(ct.attrs.get("fps", fps))
    if abs(cfps - fps) > 1e-6:
        raise ClipError(f"coeffs at {cfps} fps, config expects {fps}")
    r = feat_per_frame(float(ft.attrs.get("rate_hz", 0.0)), fps)
    feat, pros = feature_arrays(ft)
    n = len(head) * r
    if len(feat) < (1.0 - max_short_frac) * n:
        raise ClipError(f"features cover {len(feat)} of {n} frames needed by {len(head)} motion frames")
    feat, pros, fmask = align_features(feat, pros, n)
    words = (np.zeros(len(head), dtype=np.int64) if tokenize is None else
             tokenize(tt.table.column("word").to_pylist(), tt.column("start_s"), tt.column("end_s"), len(head), fps))
    return ClipArrays(clip, head, expr, valid, feat, fmask, pros, words, anchor, dict(ct.attrs), dict(ft.attrs))


def usable_clips(results: str | Path, split: str | None, qc: str | Path | None = None,
                 splits: str | Path | None = None) -> list[str]:
    """Sorted ids of QC-usable clips in ``split`` (all splits when None)."""
    results = Path(results)
    qc_t = parquet.read_table(qc or results / "qc.parquet", "qc").to_pandas()
    sp_t = parquet.read_table(splits or results / "splits.parquet", "splits").to_pandas()
    usable = set(qc_t.loc[qc_t["usable"].astype(bool), "clip_id"])
    if split is not None:
        sp_t = sp_t[sp_t["split"] == split]
    return sorted(c for c in sp_t["clip_id"] if c in usable)


def load_clips(results, clips: list[str], fps: float, tokenize=None) -> list[ClipArrays]:
    """Load the clips that can be used; the others are logged with their reason and left out."""
    out = []
    for c in clips:
        try:
            out.append(load_clip(results, c, fps, tokenize))
        except ClipError as e:
            log.warning("clip %s left out: %s", c, e)
    return out


def check_consistent(clips: list[ClipArrays]) -> dict:
    """The feature kind/dim/rate and expression count shared by the clips (error when they differ)."""
    if not clips:
        raise ClipError("no usable clips")
    keys = {}
    for c in clips:
        ckpt = c.feat_attrs.get("checkpoint") or ""  # '' for log-mels; path + sha256 of a pretrained encoder
        key = (c.feat_attrs.get("kind"), c.feat.shape[1], float(c.feat_attrs.get("rate_hz", 0)),
               json.dumps(ckpt, sort_keys=True), c.expr.shape[1])
        keys.setdefault(key, ckpt)
    if len(keys) > 1:
        raise ClipError(f"clips disagree in feature kind/dim/rate/checkpoint or n_expr: {sorted(keys, key=str)}")
    (kind, dim, rate, _, n_expr), ckpt = next(iter(keys.items()))
    return {"feature_kind": kind, "feat_dim": int(dim), "feat_rate_hz": rate, "feature_checkpoint": ckpt,
            "expr_dim": int(n_expr)}


# ---------------------------------------------------------------------------- windows


@dataclass
class NormClip:
    """A clip's arrays normalised for the model (float32), ready to cut windows from."""

    clip_id: str
    head: np.ndarray
    expr: np.ndarray
    valid: np.ndarray
    feat: np.ndarray
    feat_valid: np.ndarray
    prosody: np.ndarray
    words: np.ndarray
    r: int  # feature frames per motion frame

    @property
    def n_frames(self) -> int:
        return len(self.head)


def normalise_clip(c: ClipArrays, stats: Stats, r: int) -> NormClip:
    return NormClip(c.clip_id, stats.normalise("head", c.head), stats.normalise("expr", c.expr), c.valid,
                    stats.normalise("feat", c.feat) * c.feat_valid[:, None], c.feat_valid, c.prosody, c.words, r)


def cut_window(c: NormClip, start: int, window: int, n_prev: int) -> dict:
    """Frames [start, start+window) (cropped at the clip end) plus the n_prev frames before ``start``.

    prev arrays are right-aligned (prev[-1] is frame start-1); frames before the
    clip start are zero and masked.
    """
    end = min(start + window, c.n_frames)
    if not 0 <= start < end:
        raise IndexError(f"window start {start} outside clip {c.clip_id} of {c.n_frames} frames")
    p0 = max(start - n_prev, 0)
    n_have = start - p0
    prev_head = np.zeros((n_prev, c.head.shape[1]), dtype=np.float32)
    prev_expr = np.zeros((n_prev, c.expr.shape[1]), dtype=np.float32)
    prev_mask = np.zeros(n_prev, dtype=bool)
    if n_have:
        prev_head[n_prev - n_have:] = c.head[p0:start]
        prev_expr[n_prev - n_have:] = c.expr[p0:start]
        prev_mask[n_prev - n_have:] = c.valid[p0:start]
    # the previous frames' speech (the models condition them on it), zero and masked before the clip start
    prev_feat = np.zeros((n_prev * c.r, c.feat.shape[1]), dtype=np.float32)
    prev_feat_mask = np.zeros(n_prev * c.r, dtype=bool)
    prev_prosody = np.zeros((n_prev * c.r, c.prosody.shape[1]), dtype=np.float32)
    prev_words = np.zeros(n_prev, dtype=np.int64)
    if n_have:
        prev_feat[(n_prev - n_have) * c.r:] = c.feat[p0 * c.r: start * c.r]
        prev_feat_mask[(n_prev - n_have) * c.r:] = c.feat_valid[p0 * c.r: start * c.r]
        prev_prosody[(n_prev - n_have) * c.r:] = c.prosody[p0 * c.r: start * c.r]
        prev_words[n_prev - n_have:] = c.words[p0:start]
    return {
        "feat": c.feat[start * c.r: end * c.r],
        "feat_mask": c.feat_valid[start * c.r: end * c.r],
        "prosody": c.prosody[start * c.r: end * c.r],
        "words": c.words[start:end],
        "head": c.head[start:end],
        "expr": c.expr[start:end],
        "mask": c.valid[start:end],
        "prev_head": prev_head,
        "prev_expr": prev_expr,
        "prev_mask": prev_mask,
        "prev_feat": prev_feat,
        "prev_feat_mask": prev_feat_mask,
        "prev_prosody": prev_prosody,
        "prev_words": prev_words,
        "clip_id": c.clip_id,
        "start": start,
    }
