"""DiffSpeaker-style transformer denoiser for one motion stream (head pose or expression).

Tokens: n_prev clean previous frames (continuity, as in DiffPoseTalk) followed by
the T noisy frames x_t (+ diffusion timestep embedding), each with a type embedding
and its position on the line [previous; window] (``cfg.positions``: FaceFormer's
periodic positional encoding by default). Each layer:
  self-attention with the periodic ALiBi-style bias (+ key padding),
  cross-attention to the condition sequence of the same line (B, P + T, D) under
  the alignment mask (token t sees condition tokens t-r..t+r), and an FFN; pre-norm,
  residuals.
The previous frames' condition is their own aligned speech (``prev_cond``, as in
DiffPoseTalk), masked where there is none (a clip start). The cross-attention keys
start with one learned "sink" token every query may see, so a query whose aligned
condition is all masked still has a key, and a dropped condition (classifier-free
guidance) is "all condition keys blocked": the unconditional model is the same
network, not a learned null vector.
Output: the predicted clean motion x0 for the T frames.

With ``noisy_input=False`` the same network is a deterministic regressor (the
FaceFormer-like baseline): the T frame tokens are a learned query and no
timestep is embedded.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .attention import (NEG, FeedForward, MultiHeadAttention, alignment_mask, key_padding_bias, periodic_bias,
                        periodic_positional_encoding)
from .config import KSDiffConfig


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer diffusion steps (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, emb.new_zeros(emb.shape[0], dim % 2)], dim=-1)


class DenoiserLayer(nn.Module):
    def __init__(self, cfg: KSDiffConfig, ffn_mult: int):
        super().__init__()
        d = cfg.d_model
        self.norm_sa, self.norm_ca, self.norm_ff = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = MultiHeadAttention(d, cfg.n_heads, cfg.dropout)
        self.cross_attn = MultiHeadAttention(d, cfg.n_heads, cfg.dropout)
        self.ffn = FeedForward(d, ffn_mult, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cond, self_bias, cross_bias):
        h = self.norm_sa(x)
        x = x + self.drop(self.self_attn(h, h, self_bias))
        x = x + self.drop(self.cross_attn(self.norm_ca(x), cond, cross_bias))
        return x + self.drop(self.ffn(self.norm_ff(x)))


class MotionTransformer(nn.Module):
    """``n_layers``/``ffn_mult`` default to the config's (the baselines pass their capacity-matched sizes)."""

    def __init__(self, cfg: KSDiffConfig, motion_dim: int, noisy_input: bool = True, n_layers: int | None = None,
                 ffn_mult: int | None = None):
        super().__init__()
        d = cfg.d_model
        self.cfg, self.motion_dim, self.noisy_input = cfg, motion_dim, noisy_input
        self.prev_proj = nn.Linear(motion_dim, d)
        self.type_embed = nn.Parameter(torch.randn(2, d) * 0.02)  # 0: previous frame, 1: frame to predict
        if cfg.positions == "learned":
            self.pos_embed = nn.Parameter(torch.randn(cfg.n_prev + cfg.window, d) * 0.02)
        if noisy_input:
            self.in_proj = nn.Linear(motion_dim, d)
            self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.sink = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.cond_norm = nn.LayerNorm(d)
        n_layers = cfg.n_layers if n_layers is None else n_layers
        ffn_mult = cfg.ffn_mult if ffn_mult is None else ffn_mult
        self.layers = nn.ModuleList(DenoiserLayer(cfg, ffn_mult) for _ in range(n_layers))
        self.norm_out = nn.LayerNorm(d)
        self.out = nn.Linear(d, motion_dim)

    def position_table(self, n_tokens: int, device) -> torch.Tensor:
        """(n_tokens, D) position vectors of the line [previous frames; window] (zeros for positions='none')."""
        c = self.cfg
        if c.positions == "ppe":
            return periodic_positional_encoding(n_tokens, c.d_model, c.alibi_period).to(device)
        if c.positions == "learned":
            if n_tokens > self.pos_embed.shape[0]:
                raise ValueError(f"{n_tokens} tokens exceed the {self.pos_embed.shape[0]} learned positions "
                                 "(n_prev + window); sample in windows (sample_long)")
            return self.pos_embed[:n_tokens]
        return torch.zeros(n_tokens, c.d_model, device=device)

    def prepare(
        self, cond: torch.Tensor, mask: torch.Tensor, prev: torch.Tensor, prev_mask: torch.Tensor, drop: torch.Tensor,
        prev_cond: torch.Tensor | None = None, prev_cond_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Everything that does not change across diffusion steps: condition keys, masks, prev tokens.

        cond (B, T, D); mask (B, T) bool; prev (B, P, Dm); prev_mask (B, P) bool;
        drop (B,) bool: True = this sample is unconditional; prev_cond (B, P, D) the
        previous frames' aligned condition and prev_cond_mask (B, P) where it exists
        (None: they have none).
        """
        b, n, d = cond.shape
        p = prev.shape[1]
        c = self.cfg
        has_prev_cond = prev_cond is not None
        if not has_prev_cond:
            prev_cond = cond.new_zeros(b, p, d)
            prev_cond_mask = mask.new_zeros(b, p)
        line_cond = torch.cat([prev_cond, cond], dim=1)
        keys = torch.cat([self.sink.expand(b, -1, -1), self.cond_norm(line_cond)], dim=1)  # (B, 1 + P + T, D)
        # Self-attention: periodic bias over the prev + current token line, padded keys blocked.
        self_bias = periodic_bias(c.n_heads, p + n, c.alibi_period).to(cond.device)[None]
        self_bias = self_bias + key_padding_bias(torch.cat([prev_mask, mask], dim=1))
        # Cross-attention: sink always; condition token s for token t when |t - s| <= r, s valid, not dropped.
        cond_mask = torch.cat([prev_cond_mask, mask], dim=1)
        allowed = alignment_mask(p + n, p + n, c.align_radius).to(cond.device)[None] & cond_mask[:, None, :]
        allowed = allowed & ~drop[:, None, None]
        if not has_prev_cond:  # previous frames without their speech see no condition (only the sink)
            allowed[:, :p] = False
        allowed = torch.cat([allowed.new_ones(b, p + n, 1), allowed], dim=2)
        cross_bias = torch.where(allowed, 0.0, NEG)[:, None]
        pos = self.position_table(p + n, cond.device)
        prev_tokens = self.prev_proj(prev) + self.type_embed[0] + pos[:p]
        return {"keys": keys, "self_bias": self_bias, "cross_bias": cross_bias, "prev_tokens": prev_tokens,
                "window_pos": pos[p:]}

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
        x = x + ctx["window_pos"][:n]
        p = ctx["prev_tokens"].shape[1]
        x = torch.cat([ctx["prev_tokens"], x], dim=1)
        for layer in self.layers:
            x = layer(x, ctx["keys"], ctx["self_bias"], ctx["cross_bias"])
        return self.out(self.norm_out(x[:, p:]))

    def forward(self, x_t, t, cond, mask, prev, prev_mask, drop, prev_cond=None, prev_cond_mask=None):
        ctx = self.prepare(cond, mask, prev, prev_mask, drop, prev_cond, prev_cond_mask)
        return self.run(ctx, x_t, t, cond.shape[1])
