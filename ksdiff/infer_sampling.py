"""Samples of a learned model's motion for one clip or a batch of clips, from their speech arrays.

Sampling is reproducible: the noise comes from a
generator seeded with ``seed + crc32(clip id)``, so each clip has its own
stream and the same seed always gives the same motion (on any device: the
noise is drawn on the CPU). A shard job (ksdiff.infer_shards.infer_shard)
samples ``infer.batch_size`` clips per batch on the chosen device (ksdiff.infer.Predictor,
``sample_clips``): each clip keeps its own noise stream, so batching changes a
clip's motion only by float32 rounding.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ksdiff.data import clip_arrays as ca
from ksdiff.data import dataset as ds
from ksdiff.data import motion
from ksdiff.models import sample_long
from ksdiff.models.noise import ClipGenerators


def clip_seed(seed: int, clip: str) -> int:
    """Per-clip seed: stable across processes (crc32, not Python's salted hash)."""
    return (int(seed) + zlib.crc32(clip.encode("utf-8"))) % (2**31 - 1)


@dataclass
class ClipSpeech:
    """One clip's speech arrays (ksdiff.data.clip_arrays.ClipArrays, from its pack) and its sampling seed."""

    feat: np.ndarray
    feat_valid: np.ndarray
    prosody: np.ndarray
    words: np.ndarray
    seed: int


def sample_motion(model, stats: ca.Stats, feat: np.ndarray, feat_valid: np.ndarray, prosody: np.ndarray,
                  words: np.ndarray, n_samples: int, seed: int, steps: int | None = None,
                  guidance: float | None = None, pose_frame: str = "absolute") -> tuple[np.ndarray, np.ndarray]:
    """Raw speech arrays -> de-normalised head (S, T, 6) and expr (S, T, K) for ``n_samples`` samples.

    ``pose_frame`` 'reference' (the checkpoint's, see ``pose_frame``): each sample's head motion is returned
    relative to its own first frame, i.e. starting at the reference (module docstring); 'absolute': as sampled.
    """
    return sample_clips(model, stats, [ClipSpeech(feat, feat_valid, prosody, words, seed)], n_samples,
                        steps=steps, guidance=guidance, pose_frame=pose_frame)[0]


def _padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Rows of different lengths (dim 1) zero-padded at the end to the longest, concatenated (dim 0)."""
    n = max(t.shape[1] for t in tensors)
    return torch.cat([torch.cat([t, t.new_zeros(t.shape[0], n - t.shape[1], *t.shape[2:])], 1) for t in tensors])


def sample_clips(model, stats: ca.Stats, clips: list[ClipSpeech], n_samples: int, steps: int | None = None,
                 guidance: float | None = None, pose_frame: str = "absolute") -> list[tuple[np.ndarray, np.ndarray]]:
    """sample_motion for several clips in one batch: [(head (S, T_k, 6), expr (S, T_k, K))] per clip.

    The clips' rows are padded to the longest clip and ``sample_long`` samples each window for the clips
    that reach it (no clip sees another's padding; clips whose last window ends elsewhere are sampled in
    their own call). Each clip draws its noise from its own generator (``seed``) in the shapes it would
    draw alone (ksdiff.models.noise.ClipGenerators), so the result equals sampling each clip alone up
    to float32 rounding: batched matrix products sum in other blocks than a single clip's
    (tests/test_infer_batched.py measures it). One clip alone is exactly sample_motion's old path.
    """
    c = model.cfg
    device = next(model.parameters()).device
    batches = []
    for x in clips:
        feat_n = stats.normalise("feat", x.feat) * np.asarray(x.feat_valid, dtype=np.float32)[:, None]
        batches.append(ds.inference_batch(feat_n, x.feat_valid, x.prosody, x.words, c.n_prev, c.head_dim,
                                          c.expr_dim, n_samples))
    batch = {k: _padded([b[k] for b in batches]).to(device) for k in batches[0]}
    lengths = [len(x.words) for x in clips]
    gen = ClipGenerators(tuple(torch.Generator().manual_seed(int(x.seed)) for x in clips), n_samples)
    out = sample_long(model, batch, steps=steps, guidance=guidance, generator=gen,
                      lengths=None if len(set(lengths)) == 1 else [n for n in lengths for _ in range(n_samples)])
    results = []
    for k, n in enumerate(lengths):
        rows = slice(k * n_samples, (k + 1) * n_samples)
        head = stats.denormalise("head", out["head"][rows, :n])
        if pose_frame == "reference":
            head = np.stack([motion.from_first_frame(h) for h in head])
        results.append((head, stats.denormalise("expr", out["expr"][rows, :n])))
    return results
