"""DiffSpeaker-style transformer denoiser for one motion stream (head pose or expression).

Tokens: n_prev clean previous frames (continuity, as in DiffPoseTalk) followed by
the T noisy frames x_t (+ diffusion timestep embedding). Each layer:
  self-attention with the periodic ALiBi-style bias (+ key padding),
  cross-attention to the condition sequence (B, T, D) under the alignment mask
  (frame t sees condition frames t-r..t+r), and an FFN; pre-norm, residuals.
The cross-attention keys start with one learned "sink" token every query may
see: previous frames (which have no aligned condition) attend only to it, and a
dropped condition (classifier-free guidance) is "all condition keys blocked",
so the unconditional model is the same network, not a learned null vector.
Output: the predicted clean motion x0 for the T frames.

With ``noisy_input=False`` the same network is a deterministic regressor (the
FaceFormer-like baseline): the T frame tokens are a learned query and no
timestep is embedded.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .attention import NEG, FeedForward, MultiHeadAttention, alignment_mask, key_padding_bias, periodic_bias
from .config import KSDiffConfig


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer diffusion steps (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, emb.new_zeros(emb.shape[0], dim % 2)], dim=-1)


class DenoiserLayer(nn.Module):
    def __init__(self, cfg: KSDiffConfig):
        super().__init__()
        d = cfg.d_model
        self.norm_sa, self.norm_ca, self.norm_ff = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = MultiHeadAttention(d, cfg.n_heads, cfg.dropout)
        self.cross_attn = MultiHeadAttention(d, cfg.n_heads, cfg.dropout)
        self.ffn = FeedForward(d, cfg.ffn_mult, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cond, self_bias, cross_bias):
        h = self.norm_sa(x)
        x = x + self.drop(self.self_attn(h, h, self_bias))
        x = x + self.drop(self.cross_attn(self.norm_ca(x), cond, cross_bias))
        return x + self.drop(self.ffn(self.norm_ff(x)))


class MotionTransformer(nn.Module):
    def __init__(self, cfg: KSDiffConfig, motion_dim: int, noisy_input: bool = True):
        super().__init__()
        d = cfg.d_model
        self.cfg, self.motion_dim, self.noisy_input = cfg, motion_dim, noisy_input
        self.prev_proj = nn.Linear(motion_dim, d)
        self.type_embed = nn.Parameter(torch.randn(2, d) * 0.02)  # 0: previous frame, 1: frame to predict
        if noisy_input:
            self.in_proj = nn.Linear(motion_dim, d)
            self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.sink = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.cond_norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(DenoiserLayer(cfg) for _ in range(cfg.n_layers))
        self.norm_out = nn.LayerNorm(d)
        self.out = nn.Linear(d, motion_dim)

    def prepare(
        self, cond: torch.Tensor, mask: torch.Tensor, prev: torch.Tensor, prev_mask: torch.Tensor, drop: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Everything that does not change across diffusion steps: condition keys, masks, prev tokens.

        cond (B, T, D); mask (B, T) bool; prev (B, P, Dm); prev_mask (B, P) bool;
        drop (B,) bool: True = this sample is unconditional.
        """
        b, n, _ = cond.shape
        p = prev.shape[1]
        c = self.cfg
        keys = torch.cat([self.sink.expand(b, -1, -1), self.cond_norm(cond)], dim=1)  # (B, 1 + T, D)
        # Self-attention: periodic bias over the prev + current token line, padded keys blocked.
        self_bias = periodic_bias(c.n_heads, p + n, c.alibi_period).to(cond.device)[None]
        self_bias = self_bias + key_padding_bias(torch.cat([prev_mask, mask], dim=1))
        # Cross-attention: sink always; condition frame s for frame t when |t - s| <= r, s valid, not dropped.
        allowed = alignment_mask(n, n, c.align_radius).to(cond.device)[None] & mask[:, None, :] & ~drop[:, None, None]
        allowed = torch.cat([allowed.new_zeros(b, p, n), allowed], dim=1)  # prev frames see only the sink
        allowed = torch.cat([allowed.new_ones(b, p + n, 1), allowed], dim=2)
        cross_bias = torch.where(allowed, 0.0, NEG)[:, None]
        prev_tokens = self.prev_proj(prev) + self.type_embed[0]
        return {"keys": keys, "self_bias": self_bias, "cross_bias": cross_bias, "prev_tokens": prev_tokens}

    def run(
        self, ctx: dict[str, torch.Tensor], x_t: torch.Tensor | None, t: torch.Tensor | None, n: int
    ) -> torch.Tensor:
        """Predict x0 (B, n, Dm) from prepared context, noisy frames x_t (B, n, Dm) and steps t (B,)."""
        b = ctx["keys"].shape[0]
        if self.noisy_input:
            temb = self.time_mlp(timestep_embedding(t, self.cfg.d_model))[:, None]
            x = self.in_proj(x_t) + temb + self.type_embed[1]
        else:
            x = self.type_embed[1].expand(b, n, -1)
        p = ctx["prev_tokens"].shape[1]
        x = torch.cat([ctx["prev_tokens"], x], dim=1)
        for layer in self.layers:
            x = layer(x, ctx["keys"], ctx["self_bias"], ctx["cross_bias"])
        return self.out(self.norm_out(x[:, p:]))

    def forward(self, x_t, t, cond, mask, prev, prev_mask, drop):
        return self.run(self.prepare(cond, mask, prev, prev_mask, drop), x_t, t, cond.shape[1])
