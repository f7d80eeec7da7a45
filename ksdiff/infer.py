"""`ksdiff infer`: predictions for one clip in the 'coeffs' schema, from a model or a non-learned baseline.

Learned methods read the clip from the dataset's packs (ksdiff.data.pack_reader, as training does): its speech
features, prosody, transcript tokens, anchor and identity template, one record batch of a memory-mapped
file found from the packs' indexes, no per-clip table opened. A clip whose tables changed after it was
packed is refused (rerun ``ksdiff pack``), never predicted from stale arrays; one the pack step refused is
skipped with the reason its index records.

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
metrics need several. Sampling and its seeds: ksdiff.infer_sampling; the non-learned baselines
(static, mismatched): ksdiff.infer_baselines.

A clip whose inputs are missing or failed gets a zero-row table with status
``skipped`` and the reason, so a dataset run carries on.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ksdiff.config import BASELINES, dataclass_from_dict
from ksdiff.data import clip_arrays as ca
from ksdiff.data import motion
from ksdiff.data.pack_reader import (PACK_DIR, PackSet, StalePackError, pack_indexes, read_indexes, record_arrays,
                                     template_of)
from ksdiff.data.packs import INPUT_FOLDERS, inputs_signature
from ksdiff.infer_baselines import baseline_motion
from ksdiff.infer_sampling import ClipSpeech, clip_seed, sample_clips
from ksdiff.io import parquet
from ksdiff.io.files import sha256_file
from ksdiff.models.transcript import tokenizer
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
    # clips sampled together in one batch (a shard's clips, in order): 1 = one clip at a time; a GPU wants
    # many (e.g. 64). Each clip keeps its own noise, so >1 equals 1 up to float32 rounding (sample_clips).
    batch_size: int = 1

    def __post_init__(self):
        if self.n_samples < 1:
            raise ValueError("infer.n_samples must be >= 1")
        if self.batch_size < 1:
            raise ValueError("infer.batch_size must be >= 1")

    @classmethod
    def from_dict(cls, d: dict | None) -> "InferConfig":
        return dataclass_from_dict(cls, d, "infer config")


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
    return Predictor(cfg, results, [clip], checkpoint, method, n_samples, seed, steps).predict(clip, out)


@dataclass
class _Ready:
    """A clip whose inputs are read and checked, waiting for its samples."""

    speech: ClipSpeech
    anchor: motion.Anchor
    attrs: dict
    n_frames: int


class Predictor:
    """Predictions for a list of clips, written one clip at a time in any order (a shard job's loop calls
    ``predict`` per clip), a model's clips sampled ``infer.batch_size`` at a time: asked for a clip not yet
    sampled, it samples that clip with the next clips of the list not yet sampled. A clip's failure (its
    inputs, or its batch's sampling) is raised when that clip is asked for, so one bad clip never stops
    the others. The model is loaded once per process (``_loaded_model``)."""

    def __init__(self, cfg: dict, results: str, clips: list[str], checkpoint: str | None = None,
                 method: str | None = None, n_samples: int | None = None, seed: int | None = None,
                 steps: int | None = None):
        self.icfg = InferConfig.from_dict(cfg.get("infer"))
        self.n_samples = self.icfg.n_samples if n_samples is None else int(n_samples)
        self.seed = self.icfg.seed if seed is None else int(seed)
        self.steps = self.icfg.steps if steps is None else int(steps)
        if checkpoint is None and method not in BASELINES:
            raise ValueError(f"give --checkpoint for a trained model or --method one of {BASELINES}")
        if checkpoint is not None and method in BASELINES:
            raise ValueError(f"--method {method} is a baseline and takes no checkpoint; give one or the other")
        self.results, self.fps, self.clips = Path(results), float(cfg["fps"]), list(clips)
        self.checkpoint, self.method = checkpoint, method
        self.sampled: dict[str, object] = {}  # clip -> (head, expr), a skip reason (str) or an exception

    @functools.cached_property
    def loaded(self) -> tuple[dict, torch.nn.Module, str]:
        """(payload, model, sha256) of the checkpoint, loaded when a clip first needs it."""
        if self.icfg.num_threads > 0:
            torch.set_num_threads(self.icfg.num_threads)
        ckpt = Path(self.checkpoint)
        return _loaded_model(str(ckpt), ckpt.stat().st_mtime_ns if ckpt.exists() else 0, self.method, self.icfg.device)

    @functools.cached_property
    def packed(self) -> tuple[PackSet, dict[str, int], dict[str, str]]:
        """The clips' record batches, found from the packs' indexes (read once per job): (the packs, clip ->
        its position among them, clip -> why its pack step did not pack it)."""
        indexes = pack_indexes(self.results)
        table = read_indexes(indexes)
        packs = PackSet(indexes, self.clips, table)
        pos = {c: i for i, c in enumerate(packs.clip_ids.to_pylist())}
        mine = table.filter(pc.is_in(table.column("clip_id"), value_set=pa.array(self.clips, pa.string())))
        why = {r["clip_id"]: r["reason"] if r["status"] == parquet.SKIPPED else f"not packed: {r['status']}: {r['reason']}"
               for r in mine.select(["clip_id", "status", "reason"]).to_pylist()}
        return packs, pos, why

    def _ground_truth(self, clip: str) -> tuple[motion.Anchor, int, dict] | str:
        """A baseline's clip from its coeffs table: (anchor, motion frames, attrs every prediction of the clip
        carries), or why the clip is skipped."""
        path = self.results / "coeffs" / f"{clip}.parquet"
        gt = parquet.read_table(path, "coeffs") if path.exists() else None
        if gt is None or not gt.ok:
            return "coeffs: output missing" if gt is None else f"coeffs: {gt.reason}"
        try:
            anchor = motion.anchor_from_coeffs(gt)
        except ValueError as e:
            return f"coeffs: {e}"
        attrs = {k: gt.attrs[k] for k in ("backend", "n_expr", "template", "basis") if k in gt.attrs}
        attrs.update(fps=self.fps, clip_id=clip, anchor=anchor.to_dict())
        return anchor, len(motion.motion_from_coeffs(gt)[0]), attrs

    def _prepare(self, clip: str) -> _Ready | str:
        """A model's clip read from its pack and checked (CheckpointError where it does not fit the model,
        StalePackError where its tables changed since it was packed), or why it is skipped."""
        packs, pos, why = self.packed
        i = pos.get(clip)
        if i is None:
            if clip in why:
                return why[clip]
            missing = [f for f in INPUT_FOLDERS if not ca.clip_path(self.results, f, clip).exists()]
            return (f"{missing[0]}: output missing" if missing else
                    f"in no pack of {self.results / PACK_DIR}: run `ksdiff pack` for its shard first")
        b = packs.record(i, whole=True)
        if b.column("inputs")[0].as_py() != inputs_signature(self.results, clip):
            raise StalePackError(f"{clip}: its coeffs, features or transcript table changed after it was packed: "
                                 "rerun `ksdiff pack` for its shard")
        payload, model, _ = self.loaded
        arrays = record_arrays(b, self.fps, tokenizer(model.cfg))  # the record batch already in hand
        # what every prediction of the clip carries, as its coeffs table's attrs hold it
        cattrs, template = arrays.coeffs_attrs, template_of(b)
        attrs = {k: cattrs[k] for k in ("backend", "n_expr") if k in cattrs}
        if template is not None:
            attrs["template"] = template
        if "basis" in cattrs:
            attrs["basis"] = cattrs["basis"]
        attrs.update(fps=self.fps, clip_id=clip, anchor=arrays.anchor.to_dict())
        anchor, n_frames = arrays.anchor, arrays.n_frames
        check_features(payload, arrays.feat_attrs, arrays.feat.shape[1])
        if arrays.expr.shape[1] != model.cfg.expr_dim:
            raise CheckpointError(f"the model predicts {model.cfg.expr_dim} expression coefficients, the clip "
                                  f"has {arrays.expr.shape[1]}: extract coefficients with the training configuration")
        speech = ClipSpeech(arrays.feat, arrays.feat_valid, arrays.prosody, arrays.words, clip_seed(self.seed, clip))
        return _Ready(speech, anchor, attrs, n_frames)

    def _sample_from(self, clip: str) -> None:
        """Sample ``clip`` and the next clips of the list not yet sampled, up to infer.batch_size in all."""
        i = self.clips.index(clip) if clip in self.clips else len(self.clips)
        batch = [clip] + [c for c in self.clips[i + 1:] if c not in self.sampled][: self.icfg.batch_size - 1]
        ready = {}
        for c in batch:
            try:
                r = self._prepare(c)
            except Exception as e:  # raised again when this clip is asked for
                self.sampled[c] = e
                continue
            if isinstance(r, str):
                self.sampled[c] = r
            else:
                ready[c] = r
        if not ready:
            return
        payload, model, _ = self.loaded
        try:
            got = sample_clips(model, ca.Stats.from_dict(payload["stats"]), [r.speech for r in ready.values()],
                               self.n_samples, steps=self.steps, guidance=self.icfg.guidance,
                               pose_frame=pose_frame(payload))
        except Exception as e:  # every clip of the batch reports it
            got = [e] * len(ready)
        for (c, r), g in zip(ready.items(), got):
            self.sampled[c] = g if isinstance(g, Exception) else (r, g)

    def predict(self, clip: str, out: str) -> int:
        """Write ``out`` for ``clip`` (a skip with its reason where its inputs are missing or failed)."""
        if self.checkpoint is None:
            return self._baseline(clip, out)
        p, model, sha = self.loaded
        label = p.get("name", p["method"])
        if clip not in self.sampled:
            self._sample_from(clip)
        got = self.sampled.pop(clip)
        if isinstance(got, Exception):
            raise got
        if isinstance(got, str):
            parquet.write_failure(out, "coeffs", got, status=parquet.SKIPPED, attrs={"clip_id": clip, "method": label})
            log.warning("%s skipped: %s", clip, got)
            return 0
        ready, (head, expr) = got
        write_prediction(out, head, expr, ready.anchor, self.fps, {
            **ready.attrs, "method": label, "architecture": p["method"], "pose_frame": pose_frame(p),
            "checkpoint": str(self.checkpoint), "checkpoint_sha256": sha, "features": p["features"],  # the report names the encoder
            "seed": ready.speech.seed,
            "base_seed": self.seed, "n_samples": self.n_samples, **sampler_attrs(model, self.steps, self.icfg.guidance),
            "train_step": int(p.get("step", 0))})
        log.info("%s: %d samples of %d frames -> %s", clip, self.n_samples, ready.n_frames, out)
        return 0

    def _baseline(self, clip: str, out: str) -> int:
        gt = self._ground_truth(clip)
        if isinstance(gt, str):
            parquet.write_failure(out, "coeffs", gt, status=parquet.SKIPPED, attrs={"clip_id": clip})
            log.warning("%s skipped: %s", clip, gt)
            return 0
        anchor, n_frames, attrs = gt
        try:
            head, expr, extra = baseline_motion(self.method, self.results, clip, n_frames)
        except (ca.ClipError, FileNotFoundError) as e:
            parquet.write_failure(out, "coeffs", str(e), status=parquet.SKIPPED,
                                  attrs={"clip_id": clip, "method": self.method})
            log.warning("%s skipped: %s", clip, e)
            return 0
        write_prediction(out, head, expr, anchor, self.fps, {**attrs, **extra, "method": self.method, "n_samples": 1})
        return 0
