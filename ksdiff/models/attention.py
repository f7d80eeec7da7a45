"""Multi-head attention and the attention masks the paper borrows from DiffSpeaker.

Masks are *additive* float biases (0 = allowed, ``NEG`` = blocked) so one tensor can
carry the periodic ALiBi-style bias and the padding/alignment blocks together.
``NEG`` is finite (not -inf) so a fully blocked row (a padded query) gives a uniform
softmax instead of NaNs, and it stays representable in fp16/bf16.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NEG = -1.0e4


class MultiHeadAttention(nn.Module):
    """Plain multi-head attention on top of ``scaled_dot_product_attention``."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, D) queries; ctx (B, S, D) keys/values; bias broadcastable to (B, H, L, S)."""
        b, n_q, d = x.shape
        h = self.n_heads
        q = self.q(x).view(b, n_q, h, d // h).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        if bias is not None:
            bias = bias.to(q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, n_q, d))


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, mult: int, dropout: float):
        super().__init__(
            nn.Linear(d_model, mult * d_model), nn.GELU(), nn.Dropout(dropout), nn.Linear(mult * d_model, d_model)
        )


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Per-head slopes of ALiBi (Press et al.), as FaceFormer/DiffSpeaker use them."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        slopes = power_of_2(n_heads)
    else:  # the ALiBi recipe for head counts that are not powers of two
        closest = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_2(closest) + power_of_2(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def periodic_bias(n_heads: int, n_tokens: int, period: int) -> torch.Tensor:
    """(H, L, L) bias -slope_h * floor(|i - j| / period).

    FaceFormer's periodic positional bias, made symmetric (non-causal) as in
    DiffSpeaker's denoiser: tokens within one period (1 s) of each other are not
    penalised against each other, and the penalty grows by one slope per period,
    so attention prefers the recent context without a hard cut.
    """
    idx = torch.arange(n_tokens)
    steps = torch.div((idx[:, None] - idx[None, :]).abs(), period, rounding_mode="floor").float()
    return -alibi_slopes(n_heads)[:, None, None] * steps[None]


def periodic_positional_encoding(n_tokens: int, d_model: int, period: int) -> torch.Tensor:
    """(L, D) FaceFormer's periodic positional encoding (PPE): the sinusoidal encoding of t mod period.

    Combined with ``periodic_bias`` (which tells periods apart) it gives every token of
    the line an identity within its period, so the order of frames reaches attention.
    """
    pos = (torch.arange(n_tokens) % period).float()[:, None]
    div = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe = torch.zeros(n_tokens, d_model)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d_model // 2])
    return pe


def distance_bias(n_heads: int, distance: torch.Tensor) -> torch.Tensor:
    """ALiBi's linear bias -slope_h * distance: (...) distances -> (H, ...) biases (steeper heads look closer)."""
    slopes = alibi_slopes(n_heads).to(distance.device)
    return -slopes.view(-1, *([1] * distance.dim())) * distance[None]


def alignment_mask(n_query: int, n_key: int, radius: int) -> torch.Tensor:
    """(L, S) bool, True where query frame t may see condition frame s: |t - s| <= radius.

    Both sequences are at the motion frame rate here (the DPSE already resampled the
    speech to T frames), so DiffSpeaker's alignment mask becomes a band.
    """
    t = torch.arange(n_query)[:, None]
    s = torch.arange(n_key)[None, :]
    return (t - s).abs() <= radius


def key_padding_bias(mask: torch.Tensor) -> torch.Tensor:
    """(B, S) bool valid keys -> (B, 1, 1, S) additive bias."""
    return torch.where(mask, 0.0, NEG)[:, None, None, :].float()
