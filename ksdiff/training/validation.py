"""Validation during training: the loss over every validation frame, and the lip error of sampled motion.

Both run on rank 0 only, under ``torch.random.fork_rng`` with their own seed, so they never advance the
training RNG and a resumed run validates like an uninterrupted one.
"""
from __future__ import annotations

import numpy as np
import torch

from ksdiff.data import clip_arrays as ca
from ksdiff.data import dataset as ds
from ksdiff.metrics.lve import lve
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.models import sample_long
from ksdiff.models.seams import window_seams
from ksdiff.training.data import TrainData
from ksdiff.training.device import rng_devices, to_device


@torch.no_grad()
def validation_loss(model, val: ds.WindowDataset, batch_size: int, device, dtype, seed: int) -> dict[str, float]:
    """Mean loss terms over every validation frame once, with fixed noise; the training RNG is untouched."""
    was = model.training
    model.eval()
    keys = ds.fixed_windows(val.lengths(), val.window)
    sums: dict[str, float] = {}
    weight = 0.0
    with torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(seed)
        for i in range(0, len(keys), batch_size):
            batch = to_device(ds.collate([val[k] for k in keys[i: i + batch_size]]), device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = model.loss(batch)
            w = float(batch["mask"].sum())
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v) * w
            weight += w
    model.train(was)
    return {k: v / max(weight, 1.0) for k, v in sums.items()}


class LipError:
    """Validation lip error as the leaderboard measures it, from samples of the model.

    Each validation clip is sampled whole (``sample_long``, fixed seed, the
    model's default sampler), de-normalised, and compared with its ground truth
    through the expression basis' lip rows: the pinned protocol's LVE (lip set,
    variant) in template units, which are inter-ocular units (ksdiff.extract.pose.TEMPLATE_IOD
    = 1). The validation loss averages denoising errors over random noise levels;
    this is the number a researcher reads off the leaderboard, per checkpoint.
    ``measure`` also returns, from the same samples, the seams between sampling
    windows (``models.seams.window_seams``: median jump at a window join over
    ground truth's 95th-percentile frame-to-frame change, normalised units).
    """

    def __init__(self, val: ds.WindowDataset, stats: ca.Stats, basis: dict, n_samples: int):
        comps = np.asarray(basis["components"], dtype=np.float64)
        self.lips = comps.reshape(len(comps), -1, 3)[:, list(PROTOCOL.lve_lip_indices)]  # (K, n_lip, 3)
        self.val, self.stats, self.n_samples = val, stats, n_samples
        self.raw_expr = [stats.denormalise("expr", c.expr) for c in val.clips]  # ground truth in basis units
        self.variant = PROTOCOL.lve_variant

    @classmethod
    def build(cls, data: TrainData, n_samples: int) -> "LipError | None":
        """None when it cannot be computed: no validation clips, or coefficients that are not the landmark
        basis' (the DECA backend's FLAME expressions need the FLAME model to become vertices)."""
        if n_samples < 1 or data.val is None or "components" not in data.basis:
            return None
        if data.stats.attrs.get("coeffs_backend", "landmarks") != "landmarks":
            return None
        if len(data.basis["components"]) < data.info["expr_dim"]:
            return None
        return cls(data.val, data.stats, data.basis, n_samples)

    def _lve(self, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
        d = np.einsum("tk,kvc->tvc", (pred - gt)[valid].astype(np.float64), self.lips[: pred.shape[1]])
        return lve(d, np.zeros_like(d), variant=self.variant, scale=1.0, lip_idx=range(d.shape[1]))

    def static(self) -> float:
        """The same number for the static baseline (the mean face: zero expression), the bar to clear."""
        return float(np.mean([self._lve(np.zeros_like(gt), gt, clip.valid)
                              for clip, gt in zip(self.val.clips, self.raw_expr)]))

    @torch.no_grad()
    def measure(self, model, device, seed: int) -> dict[str, float]:
        """{"lve": mean validation lip error, "seam_head"/"seam_expr": median join jump / gt p95 over clips}."""
        c, errors, seams = model.cfg, [], {"head": [], "expr": []}
        for k, (clip, gt) in enumerate(zip(self.val.clips, self.raw_expr)):
            batch = ds.inference_batch(clip.feat, clip.feat_valid, clip.prosody, clip.words, c.n_prev, c.head_dim,
                                       c.expr_dim, self.n_samples)
            gen = torch.Generator().manual_seed(seed + k)
            pred = sample_long(model, to_device(batch, device), generator=gen)
            expr = self.stats.denormalise("expr", pred["expr"])
            errors += [self._lve(e, gt, clip.valid) for e in expr]
            for name in seams:
                sm = window_seams(pred[name].float().cpu().numpy(), getattr(clip, name), c.window, c.window_overlap,
                                  clip.valid)
                if sm["n_joins"]:
                    seams[name].append(sm["ratio_median"])
        out = {"lve": float(np.mean(errors))}
        out.update({f"seam_{k}": float(np.nanmedian(v)) for k, v in seams.items() if v})
        return out

    def __call__(self, model, device, seed: int) -> float:
        return self.measure(model, device, seed)["lve"]


def validate(model, data: TrainData, lip_error: LipError | None, batch_size: int, device, dtype,
             seed: int) -> dict[str, float]:
    """The validation row of one checkpoint: loss terms, and the lip error and seams when measurable."""
    val = validation_loss(model, data.val, batch_size, device, dtype, seed)
    if lip_error is not None:
        with torch.random.fork_rng(devices=rng_devices(device)):  # the training RNG stays untouched
            val.update(lip_error.measure(model, device, seed))
    return val
