"""`ksdiff infer`: predictions for one clip in the 'coeffs' schema, from a model or a non-learned baseline.

Learned methods: the clip's speech features and transcript -> ``n_samples``
samples of the whole clip (windows chained by ``sample_long``), de-normalised
with the statistics stored in the checkpoint and placed at the clip's anchor
(its first valid frame, see ksdiff.data.motion): the models generate the head
pose relative to the reference frame and the reference's own rotation,
translation and scale are composed back in, so predictions are written as
absolute coefficients and metrics and the renderer compare like with like.
Each sample's head motion is taken relative to its own first frame before it
is placed (``motion.from_first_frame``): the reference frame is where a
clip's motion starts (its relative pose there is 0 by construction), and a
sample must start where the photo it animates is, not at the random offset a
model's noise gave its first window (on the demo, 300 steps in, ksdiff's
samples started 10-20 deg of yaw away from their reference). The
reference pose is an input (the photo a method animates), not the motion: it
is the pose of the one frame the renderer warps. Checkpoints from before the
pose was anchored (representation head6-anchor-v1) generate absolute angles and
are written as they were. The ``sample`` column numbers the samples; diversity
metrics need several. Sampling is reproducible: the noise comes from a
generator seeded with ``seed + crc32(clip id)``, so each clip has its own
stream and the same seed always gives the same motion (on any device: the
noise is drawn on the CPU).

Baselines (no checkpoint):
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

A clip whose inputs are missing or failed gets a zero-row table with status
``skipped`` and the reason, so a dataset run carries on.
"""
from __future__ import annotations

import functools
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ksdiff.config import BASELINES
from ksdiff.data import dataset as ds
from ksdiff.data import motion
from ksdiff.io import parquet
# The model file's reader lives beside its writer; infer's callers find it here too.
from ksdiff.training.checkpoint import CheckpointError, build_from_checkpoint, load_checkpoint  # noqa: F401
from ksdiff.training.device import pick_device

log = logging.getLogger(__name__)


@dataclass
class InferConfig:
    """Sampling options; override through the config's ``infer:`` section."""

    n_samples: int = 3  # samples per clip: diversity needs several, 3 keeps inference cheap
    seed: int = 0  # base seed; each clip samples from seed + crc32(clip id)
    steps: int | None = None  # DDIM steps; None = the model's ddim_steps
    guidance: float | None = None  # classifier-free guidance scale; None = the model's default
    device: str = "auto"  # auto (cuda if available) | cpu | cuda
    num_threads: int = 1  # torch CPU threads (0: torch default); sampling is many small ops: threads add sync

    def __post_init__(self):
        if self.n_samples < 1:
            raise ValueError("infer.n_samples must be >= 1")

    @classmethod
    def from_dict(cls, d: dict | None) -> "InferConfig":
        from ksdiff.config import dataclass_from_dict

        return dataclass_from_dict(cls, d, "infer config")


def clip_seed(seed: int, clip: str) -> int:
    """Per-clip seed: stable across processes (crc32, not Python's salted hash)."""
    return (int(seed) + zlib.crc32(clip.encode("utf-8"))) % (2**31 - 1)


# ---------------------------------------------------------------------------- checkpoints
# Read and built by ksdiff.training.checkpoint (load_checkpoint, build_from_checkpoint), beside their writer.


def pose_frame(payload: dict) -> str:
    """'reference' (the model generates head pose relative to the reference frame) or 'absolute' (older models)."""
    return motion.pose_frame_of(payload["motion"].get("representation"))


def check_features(payload: dict, feat_attrs: dict, dim: int) -> None:
    """Refuse features of another kind/extractor than the model was trained on."""
    want = payload["features"]
    got = {"kind": feat_attrs.get("kind"), "dim": dim, "rate_hz": float(feat_attrs.get("rate_hz", 0)),
           "checkpoint": feat_attrs.get("checkpoint", "") or ""}
    for k in ("kind", "dim", "rate_hz", "checkpoint"):
        if (want.get(k) or "") != (got[k] or "") and not (k == "rate_hz" and abs(float(want[k]) - got[k]) < 1e-6):
            raise CheckpointError(f"the model was trained on features {k}={want.get(k)!r}, these have {got[k]!r}: "
                                  "extract features with the training configuration")


def sample_motion(model, stats: ds.Stats, feat: np.ndarray, feat_valid: np.ndarray, prosody: np.ndarray,
                  words: np.ndarray, n_samples: int, seed: int, steps: int | None = None,
                  guidance: float | None = None, pose_frame: str = "absolute") -> tuple[np.ndarray, np.ndarray]:
    """Raw speech arrays -> de-normalised head (S, T, 6) and expr (S, T, K) for ``n_samples`` samples.

    ``pose_frame`` 'reference' (the checkpoint's, see ``pose_frame``): each sample's head motion is returned
    relative to its own first frame, i.e. starting at the reference (module docstring); 'absolute': as sampled.
    """
    from ksdiff.models import sample_long

    c = model.cfg
    device = next(model.parameters()).device
    feat_n = stats.normalise("feat", feat) * np.asarray(feat_valid, dtype=np.float32)[:, None]
    batch = ds.inference_batch(feat_n, feat_valid, prosody, words, c.n_prev, c.head_dim, c.expr_dim, n_samples)
    batch = {k: v.to(device) for k, v in batch.items()}
    gen = torch.Generator().manual_seed(int(seed))
    out = sample_long(model, batch, steps=steps, guidance=guidance, generator=gen)
    head = stats.denormalise("head", out["head"])
    if pose_frame == "reference":
        head = np.stack([motion.from_first_frame(h) for h in head])
    return head, stats.denormalise("expr", out["expr"])


# ---------------------------------------------------------------------------- baselines


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
    tests = [c for c in ds.usable_clips(results, "test") if c != clip]
    if not tests:
        raise ds.ClipError("mismatched: no other usable test clip to borrow motion from")
    order = sorted(tests + [clip])
    i = order.index(clip)
    ring = order[i + 1:] + order[:i]
    other = [c for c in ring if speaker.get(c) != speaker.get(clip)]
    return (other or ring)[0]


def baseline_motion(method: str, results: Path, clip: str, n_frames: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """head (1, T, 6), expr (1, T, K) of a non-learned baseline, plus attrs describing it (``pose_frame``: how
    its head rotation is to be placed, see ksdiff.data.motion)."""
    if method == "static":
        stats = ds.Stats.read(results / "stats.parquet")
        head = np.repeat(stats.mean["head"][None], n_frames, axis=0)
        expr = np.zeros((n_frames, len(stats.mean["expr"])), dtype=np.float32)
        return head[None], expr[None], {"pose_frame": stats.pose_frame}
    if method == "mismatched":
        partner = mismatched_partner(results, clip)
        t = parquet.read_table(results / "coeffs" / f"{partner}.parquet", "coeffs")
        if not t.ok:
            raise ds.ClipError(f"mismatched: partner {partner} has no coefficients ({t.reason})")
        head, expr, _ = motion.motion_from_coeffs(t, pose_frame="reference")  # relative to the partner's reference
        return loop_to_length(head, n_frames)[None], loop_to_length(expr, n_frames)[None], \
            {"partner": partner, "pose_frame": "reference"}
    raise ValueError(f"unknown baseline {method!r}; expected one of {BASELINES}")


# ---------------------------------------------------------------------------- entry point


def sampler_attrs(model, steps: int | None, guidance: float | None) -> dict:
    """The sampler each path ran with: steps/guidance (the head path's, or the only path's) and, where
    KSDiff's expression path differs, expr_steps/expr_guidance."""
    head = model.sampler("head", steps, guidance)
    out = {"steps": head[0], "guidance": head[1]}
    if model.cfg.method == "ksdiff" and model.sampler("expr", steps, guidance) != head:
        out["expr_steps"], out["expr_guidance"] = model.sampler("expr", steps, guidance)
    return out


def write_prediction(out, head: np.ndarray, expr: np.ndarray, anchor: motion.Anchor, fps: float, attrs: dict):
    """Samples (S, T, 6) + (S, T, K) placed at ``anchor`` (rotation composed in when attrs['pose_frame'] is
    'reference') -> one coeffs table of absolute coefficients."""
    cols = motion.concat_columns([motion.coeffs_from_motion(head[s], expr[s], anchor, fps, sample=s,
                                                            backend=attrs.get("backend"),
                                                            pose_frame=attrs["pose_frame"])
                                  for s in range(len(head))])
    parquet.write_table(out, "coeffs", cols, attrs=attrs)


@functools.lru_cache(maxsize=2)
def _loaded_model(checkpoint: str, mtime_ns: int, method: str | None, device: str):
    """(payload, model, sha256) of a checkpoint file version, loaded once per process:
    a shard job predicts all its clips with one model load (sampling is seeded per
    clip, so the predictions do not depend on which clips share a process)."""
    from ksdiff.io.files import sha256_file

    payload = load_checkpoint(checkpoint, expect_method=method)
    return payload, build_from_checkpoint(payload, pick_device(device)), sha256_file(checkpoint)


def predict_clip(cfg: dict, results: str, clip: str, out: str, checkpoint: str | None = None,
                 method: str | None = None, n_samples: int | None = None, seed: int | None = None,
                 steps: int | None = None) -> int:
    """`ksdiff infer`: write ``out`` (coeffs schema, one block of rows per sample) for one clip.

    Give ``checkpoint`` for a trained model (``method``, if given, must match the
    one it holds), or ``method`` 'static' / 'mismatched' for a baseline.
    ``n_samples``/``seed``/``steps`` override cfg['infer'].
    """
    from ksdiff.models.transcript import tokenizer

    icfg = InferConfig.from_dict(cfg.get("infer"))
    n_samples = icfg.n_samples if n_samples is None else int(n_samples)
    seed = icfg.seed if seed is None else int(seed)
    steps = icfg.steps if steps is None else int(steps)
    results = Path(results)
    fps = float(cfg["fps"])
    if checkpoint is None and method not in BASELINES:
        raise ValueError(f"give --checkpoint for a trained model or --method one of {BASELINES}")
    if checkpoint is not None and method in BASELINES:
        raise ValueError(f"--method {method} is a baseline and takes no checkpoint; give one or the other")
    gt = parquet.read_table(results / "coeffs" / f"{clip}.parquet", "coeffs") \
        if (results / "coeffs" / f"{clip}.parquet").exists() else None
    if gt is None or not gt.ok:
        reason = "coeffs: output missing" if gt is None else f"coeffs: {gt.reason}"
        parquet.write_failure(out, "coeffs", reason, status=parquet.SKIPPED, attrs={"clip_id": clip})
        log.warning("%s skipped: %s", clip, reason)
        return 0
    try:
        anchor = motion.anchor_from_coeffs(gt)
    except ValueError as e:
        parquet.write_failure(out, "coeffs", f"coeffs: {e}", status=parquet.SKIPPED, attrs={"clip_id": clip})
        return 0
    n_frames = len(motion.motion_from_coeffs(gt)[0])
    base_attrs = {k: gt.attrs[k] for k in ("backend", "n_expr", "template", "basis") if k in gt.attrs}
    base_attrs.update(fps=fps, clip_id=clip, anchor=anchor.to_dict())

    if checkpoint is None:
        try:
            head, expr, extra = baseline_motion(method, results, clip, n_frames)
        except (ds.ClipError, FileNotFoundError) as e:
            parquet.write_failure(out, "coeffs", str(e), status=parquet.SKIPPED,
                                  attrs={"clip_id": clip, "method": method})
            log.warning("%s skipped: %s", clip, e)
            return 0
        write_prediction(out, head, expr, anchor, fps, {**base_attrs, **extra, "method": method, "n_samples": 1})
        return 0

    if icfg.num_threads > 0:
        torch.set_num_threads(icfg.num_threads)
    payload, model, checkpoint_sha = _loaded_model(str(checkpoint), Path(checkpoint).stat().st_mtime_ns
                                                   if Path(checkpoint).exists() else 0, method, icfg.device)
    try:
        arrays = ds.load_clip(results, clip, fps, tokenizer(model.cfg))
    except ds.ClipError as e:
        parquet.write_failure(out, "coeffs", str(e), status=parquet.SKIPPED,
                              attrs={"clip_id": clip, "method": payload.get("name", payload["method"])})
        log.warning("%s skipped: %s", clip, e)
        return 0
    check_features(payload, arrays.feat_attrs, arrays.feat.shape[1])
    if arrays.expr.shape[1] != model.cfg.expr_dim:
        raise CheckpointError(f"the model predicts {model.cfg.expr_dim} expression coefficients, the clip has "
                              f"{arrays.expr.shape[1]}: extract coefficients with the training configuration")
    stats = ds.Stats.from_dict(payload["stats"])
    s = clip_seed(seed, clip)
    head, expr = sample_motion(model, stats, arrays.feat, arrays.feat_valid, arrays.prosody, arrays.words,
                               n_samples, s, steps=steps, guidance=icfg.guidance, pose_frame=pose_frame(payload))
    write_prediction(out, head, expr, anchor, fps, {
        **base_attrs, "method": payload.get("name", payload["method"]), "architecture": payload["method"],
        "pose_frame": pose_frame(payload),
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": checkpoint_sha, "seed": s, "base_seed": seed, "n_samples": n_samples,
        **sampler_attrs(model, steps, icfg.guidance),
        "train_step": int(payload.get("step", 0))})
    log.info("%s: %d samples of %d frames -> %s", clip, n_samples, n_frames, out)
    return 0
