"""Dual-Path Speech Encoder (DPSE), as drawn in the paper's Figure 1(b).

trunk:  feat -> adapter (Linear) -> h_s = x + MSDC(x)                      (B, N, D)
pose:   h_s -> pool_long / pool_mid -> Linear -> MHCA(Q=pooled, KV=h_s) -> FFN,
        both resampled to T frames, concatenated -> Linear -> f_h          (B, T, D)
expr:   h' = FiLM(h_s; prosody) -> pool_short -> Linear -> MHCA(Q=pooled, KV=h')
        -> FFN -> Linear, resampled to T frames -> f_e                      (B, T, D)

The pooled token counts differ from T; the paper does not say how the features
reach the motion rate. We interpolate the pooled tokens in time
(``cfg.resample_mode``), which keeps the pose tokens as smooth as their pooling
window intended. With ``cfg.split_paths=False`` (ablation) there is no split:
h_s (FiLM'd by prosody unless ``cfg.use_prosody`` is off) is resampled to T and one
Linear gives the single feature both generators use, so the ablation removes the
split and nothing else.

Positions: each pooled query's cross-attention to the frames within +-2 s carries
an ALiBi-style bias, linear in its distance from the token's centre
(``cfg.dpse_position_bias``), so a token knows which frames are its own.
Valid frames need not start at index 0: the previous frames' audio is prepended and
masked at a clip start, and resampling clamps to the first and last valid tokens.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import NEG, FeedForward, MultiHeadAttention, distance_bias
from .config import KSDiffConfig
from .msdc import MSDC
from .prosody import ProsodyFiLM


def masked_pool(x: torch.Tensor, mask: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average non-overlapping windows of valid frames. (B, N, D) -> (B, ceil(N/w), D), (B, ceil(N/w)) bool."""
    b, n, d = x.shape
    n_tok = -(-n // window)
    pad = n_tok * window - n
    m = mask.to(x.dtype)
    if pad:
        x = torch.cat([x, x.new_zeros(b, pad, d)], dim=1)
        m = torch.cat([m, m.new_zeros(b, pad)], dim=1)
    m = m.view(b, n_tok, window)
    count = m.sum(-1)
    pooled = (x.view(b, n_tok, window, d) * m[..., None]).sum(2) / count.clamp(min=1.0)[..., None]
    return pooled, count > 0


def resample_to_frames(
    tokens: torch.Tensor, token_mask: torch.Tensor, window: int, feat_rate_hz: float, fps: float, n_frames: int,
    mode: str = "linear",
) -> torch.Tensor:
    """Tokens pooled over ``window`` feature frames -> one vector per motion frame.

    Token i covers feature frames [i*w, (i+1)*w); motion frame t covers
    [t/fps, (t+1)/fps). Each frame takes the token value at its own centre time,
    interpolated between the two nearest token centres (or the nearest one),
    clamped to the sample's first and last valid tokens so padding (at either end)
    never leaks in.
    """
    b, n_tok, d = tokens.shape
    # float64 and one ratio so that aligned rates (e.g. 2 features per frame, window 2) map frames exactly
    # (computed on the CPU: not every accelerator has float64)
    t = torch.arange(n_frames, dtype=torch.float64)
    u = ((t + 0.5) * (feat_rate_hz / (fps * window)) - 0.5).to(tokens.device)[None].expand(b, -1)  # token units
    idx = torch.arange(n_tok, device=tokens.device)[None]
    first = torch.where(token_mask, idx, n_tok).min(1).values
    first = torch.where(token_mask.any(1), first, 0).to(u.dtype)[:, None]
    last = torch.where(token_mask, idx, -1).max(1).values.clamp(min=0).to(u.dtype)[:, None]
    u = torch.maximum(torch.minimum(u, last), first)
    if mode == "nearest":
        idx = u.round().long()
        return torch.gather(tokens, 1, idx[..., None].expand(-1, -1, d))
    i0 = u.floor().long()
    i1 = torch.minimum(i0 + 1, last.long())
    a = (u - i0.to(u.dtype))[..., None].to(tokens.dtype)
    x0 = torch.gather(tokens, 1, i0[..., None].expand(-1, -1, d))
    x1 = torch.gather(tokens, 1, i1[..., None].expand(-1, -1, d))
    return (1 - a) * x0 + a * x1


class PooledCrossAttention(nn.Module):
    """pooling -> Linear -> MHCA (pooled tokens query the sequence) -> FFN, pre-norm with residuals."""

    def __init__(self, cfg: KSDiffConfig, window: int):
        super().__init__()
        d = cfg.d_model
        self.window = window
        self.attn_window = None if cfg.dpse_attn_window_s is None else cfg.dpse_attn_window_s * cfg.feat_rate_hz
        self.n_heads, self.position_bias = cfg.n_heads, cfg.dpse_position_bias
        self.proj = nn.Linear(d, d)
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, cfg.n_heads, cfg.dropout)
        self.ffn = FeedForward(d, cfg.ffn_mult, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def bias(self, n_tok: int, mask: torch.Tensor) -> torch.Tensor:
        """(B, H or 1, n_tok, N): padding blocked; keys farther than the attention window from the token centre
        blocked; the others biased by -slope_h * distance / pooling window (``dpse_position_bias='alibi'``)."""
        n = mask.shape[1]
        centre = torch.arange(n_tok, device=mask.device) * self.window + self.window / 2.0
        key = torch.arange(n, device=mask.device) + 0.5
        dist = (centre[:, None] - key[None, :]).abs()  # (n_tok, N) in feature frames
        allowed = mask[:, None, :]  # (B, 1, N)
        if self.attn_window is not None:
            allowed = allowed & (dist <= self.attn_window)[None]
        allowed = allowed[:, None]  # (B, 1, n_tok, N)
        if self.position_bias == "alibi":
            return torch.where(allowed, distance_bias(self.n_heads, dist / self.window)[None], NEG)
        return torch.where(allowed, 0.0, NEG)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, pmask = masked_pool(h, mask, self.window)
        q = self.proj(pooled)
        x = q + self.drop(self.attn(self.norm_q(q), self.norm_kv(h), self.bias(q.shape[1], mask)))
        x = x + self.drop(self.ffn(self.norm_ff(x)))
        return x, pmask


class DPSE(nn.Module):
    def __init__(self, cfg: KSDiffConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.adapter = nn.Linear(cfg.feat_dim, d)  # the paper's "light adapter (projection)"
        self.msdc = MSDC(d, cfg.msdc_dilations, cfg.msdc_kernel, cfg.msdc_groups, cfg.dropout)
        if cfg.split_paths:
            self.pose_long = PooledCrossAttention(cfg, cfg.pool_long)
            self.pose_mid = PooledCrossAttention(cfg, cfg.pool_mid)
            self.pose_out = nn.Linear(2 * d, d)
            self.expr_short = PooledCrossAttention(cfg, cfg.pool_short)
            self.expr_out = nn.Linear(d, d)
            if cfg.path_residual:
                self.pose_skip = nn.Linear(d, d)
                self.expr_skip = nn.Linear(d, d)
        else:
            self.shared_out = nn.Linear(d, d)
        self.film = ProsodyFiLM(d) if cfg.use_prosody else None

    def trunk(self, feat: torch.Tensor, feat_mask: torch.Tensor) -> torch.Tensor:
        """h_s (B, N, D) = x + MSDC(x), x = adapter(feat)."""
        x = self.adapter(feat)
        return x + self.msdc(x, feat_mask)

    def _to_frames(self, tokens: torch.Tensor, token_mask: torch.Tensor, window: int, n_frames: int) -> torch.Tensor:
        c = self.cfg
        return resample_to_frames(tokens, token_mask, window, c.feat_rate_hz, c.fps, n_frames, c.resample_mode)

    def forward(
        self, feat: torch.Tensor, feat_mask: torch.Tensor, prosody: torch.Tensor, n_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (f_h, f_e), each (B, n_frames, D); the same tensor twice when split_paths is off."""
        h_s = self.trunk(feat, feat_mask)
        h_prime = self.film(h_s, prosody) if self.film is not None else h_s
        if not self.cfg.split_paths:
            f = self.shared_out(self._to_frames(h_prime, feat_mask, 1, n_frames))
            return f, f
        long_tok, long_mask = self.pose_long(h_s, feat_mask)
        mid_tok, mid_mask = self.pose_mid(h_s, feat_mask)
        pose = torch.cat(
            [self._to_frames(long_tok, long_mask, self.pose_long.window, n_frames),
             self._to_frames(mid_tok, mid_mask, self.pose_mid.window, n_frames)],
            dim=-1,
        )
        f_h = self.pose_out(pose)
        expr_tok, expr_mask = self.expr_short(h_prime, feat_mask)
        f_e = self.expr_out(self._to_frames(expr_tok, expr_mask, self.expr_short.window, n_frames))
        if self.cfg.path_residual:
            f_h = f_h + self.pose_skip(self._to_frames(h_s, feat_mask, 1, n_frames))
            f_e = f_e + self.expr_skip(self._to_frames(h_prime, feat_mask, 1, n_frames))
        return f_h, f_e
