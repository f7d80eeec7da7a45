"""Keyframe Establishment Learning (KEL): one per path.

From its path features f (B, T, D), KEL predicts autoregressively, frame by frame,
whether the frame is a keyframe and the motion value there. Each step sees the
previous frame's keyframe token [value * indicator, indicator] and, through a GRU
state, every earlier keyframe. A GRU rather than a causal transformer because
sampling is sequential anyway and a GRU step costs O(1), which keeps CPU inference
real-time.

Training uses teacher forcing with the ground-truth keyframes (``keyframes.py``);
sampling feeds back its own decisions. Its output token sequence (B, T, motion_dim
+ 1) conditions the path's denoiser.

What the denoiser sees in training (``cfg.kel_condition``): by default
("free_running") the keyframes KEL decodes on its own, exactly as at sampling:
the autoregressive loop fed back its own picks and values, under no_grad, with no
ground truth anywhere in it. The older "sampled" reading drew KEL's picks from its
teacher-forced probabilities; those depend on the ground-truth earlier keyframes
(every GRU step was fed them), so the denoiser met better keyframes in training
than KEL can give it at sampling. Conditioning it on the ground-truth positions
("ground_truth") teaches it that a keyframe token marks a real speed peak; at
sampling KEL's positions are far less exact and the denoiser is misled (on the
synthetic demo corpus this made held-out lip error worse than no KEL at all).
KEL's own loss is teacher-forced in every mode.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import noise
from .config import KSDiffConfig


def keyframe_tokens(indicator: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(B, T) indicator and (B, T, Dm) values -> (B, T, Dm + 1) [values * indicator, indicator]."""
    ind = indicator.to(values.dtype)[..., None]
    return torch.cat([values * ind, ind], dim=-1)


class KEL(nn.Module):
    def __init__(self, cfg: KSDiffConfig, motion_dim: int, min_spacing: int):
        super().__init__()
        d = cfg.d_model
        self.cfg, self.motion_dim, self.min_spacing = cfg, motion_dim, min_spacing
        self.feat_in = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))
        self.prev_in = nn.Linear(motion_dim + 1, d)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.out = nn.Linear(d, 1 + motion_dim)  # keyframe logit, keyframe value

    def teacher_forced(
        self, f: torch.Tensor, indicator: torch.Tensor, motion: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ground-truth keyframes shifted by one frame as inputs -> logits (B, T), values (B, T, Dm)."""
        tokens = keyframe_tokens(indicator, motion)
        shifted = torch.cat([tokens.new_zeros(tokens.shape[0], 1, tokens.shape[2]), tokens[:, :-1]], dim=1)
        h, _ = self.gru(self.feat_in(f) + self.prev_in(shifted))
        out = self.out(h)
        return out[..., 0], out[..., 1:]

    def loss(
        self, f: torch.Tensor, indicator: torch.Tensor, motion: torch.Tensor, mask: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """-> ({bce, value}, denoiser condition tokens).

        BCE on the indicator over valid frames; L1 on the values at ground-truth
        keyframes. The denoiser is conditioned on *predicted* values (no gradient):
        with ground-truth values it would learn to copy them and then meet KEL's far
        less exact values at sampling. Which predictions: ``cfg.kel_condition``.
        """
        logits, values = self.teacher_forced(f, indicator, motion)
        m = mask.to(logits.dtype)
        bce = (F.binary_cross_entropy_with_logits(logits, indicator.to(logits.dtype), reduction="none") * m).sum()
        bce = bce / m.sum().clamp(min=1.0)
        k = (indicator & mask).to(values.dtype)[..., None]
        value = ((values - motion).abs() * k).sum() / (k.sum() * self.motion_dim).clamp(min=1.0)
        if self.cfg.kel_condition == "free_running":
            return {"bce": bce, "value": value}, self.sample(f.detach(), mask)
        if self.cfg.kel_condition == "sampled":
            with torch.no_grad():
                p = torch.sigmoid(logits)
                draws = torch.rand(p.shape, device=p.device) if self.cfg.kel_sampling == "bernoulli" else None
                cond = self.space(self.decide(p, draws) & mask)
        else:
            cond = indicator & mask
        return {"bce": bce, "value": value}, keyframe_tokens(cond, values.detach())

    def decide(self, p: torch.Tensor, draw: torch.Tensor | None) -> torch.Tensor:
        """Keyframe or not from probabilities ``p`` (any shape): Bernoulli(p) given uniform ``draw``s
        of the same shape, or p > kel_threshold."""
        return draw < p if self.cfg.kel_sampling == "bernoulli" else p > self.cfg.kel_threshold

    def space(self, ind: torch.Tensor) -> torch.Tensor:
        """Drop keyframes closer than min_spacing to the previous kept one (left to right), as sampling does."""
        if not self.cfg.kel_enforce_spacing or self.min_spacing <= 1:
            return ind
        out = torch.zeros_like(ind)
        since = torch.full(ind.shape[:1], self.min_spacing, device=ind.device)
        for t in range(ind.shape[1]):
            out[:, t], since = self.spaced(ind[:, t], since)
        return out

    def spaced(self, ind: torch.Tensor, since: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame of the spacing rule: (kept keyframes, frames since the last kept one)."""
        if self.cfg.kel_enforce_spacing:
            ind = ind & (since >= self.min_spacing)
        return ind, torch.where(ind, torch.ones_like(since), since + 1)

    @torch.no_grad()
    def sample(self, f: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Autoregressive keyframes from path features -> (B, T, Dm + 1) condition tokens."""
        b, n, _ = f.shape
        feat = self.feat_in(f)
        token = f.new_zeros(b, self.motion_dim + 1)
        since = torch.full((b,), self.min_spacing, device=f.device)  # frames since the last keyframe
        h = f.new_zeros(b, feat.shape[-1])  # the GRU's state; zeros, as nn.GRU starts from
        # One GRU step as torch.gru_cell with the layer's own weights: the same operations as self.gru on a
        # one-frame sequence (the same bits: tests/test_models.py), without nn.GRU's per-call checks, a quarter
        # of the step's time on a CPU (102 -> 77 us at the demo's batch of 16).
        weights = (self.gru.weight_ih_l0, self.gru.weight_hh_l0, self.gru.bias_ih_l0, self.gru.bias_hh_l0)
        tokens = []
        for t in range(n):
            h = torch.gru_cell(feat[:, t] + self.prev_in(token), h, *weights)
            out = self.out(h)
            p, value = torch.sigmoid(out[:, 0]), out[:, 1:]
            draw = noise.draw(torch.rand, (b,), generator).to(f.device) if self.cfg.kel_sampling == "bernoulli" else None
            ind, since = self.spaced(self.decide(p, draw) & mask[:, t], since)
            token = keyframe_tokens(ind, value)
            tokens.append(token)
        return torch.stack(tokens, dim=1)
