"""Multi-scale dilated convolution (MSDC), the DPSE trunk's context block.

L parallel branches, each: depthwise Conv1d with its own dilation -> GroupNorm ->
GLU gate -> pointwise Conv1d. The branch outputs are concatenated and projected
back to D; the caller adds the residual (the paper draws MSDC inside a skip).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskedGroupNorm(nn.Module):
    """GroupNorm whose statistics ignore padded frames.

    ``nn.GroupNorm`` would average the zero padding of short clips into every
    clip's statistics, so the same audio would encode differently depending on
    what it was batched with.
    """

    def __init__(self, groups: int, channels: int, eps: float = 1e-5):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        xg = x.view(b, self.groups, c // self.groups, n)
        m = mask[:, None, None, :].to(x.dtype)
        count = (m.sum(dim=(2, 3), keepdim=True) * (c // self.groups)).clamp(min=1.0)
        mean = (xg * m).sum(dim=(2, 3), keepdim=True) / count
        var = (((xg - mean) ** 2) * m).sum(dim=(2, 3), keepdim=True) / count
        # rsqrt, ATen's own (1 / IEEE sqrt): torch.sqrt on the CPU is MKL's, which differs by processor maker
        y = ((xg - mean) * torch.rsqrt(var + self.eps)).view(b, c, n)
        return y * self.weight[:, None] + self.bias[:, None]


class MSDCBranch(nn.Module):
    def __init__(self, d_model: int, kernel: int, dilation: int, groups: int):
        super().__init__()
        # Depthwise with channel multiplier 2 so the GLU gate halves back to D.
        self.depthwise = nn.Conv1d(
            d_model, 2 * d_model, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2, groups=d_model
        )
        self.norm = MaskedGroupNorm(groups, 2 * d_model)
        self.pointwise = nn.Conv1d(d_model, d_model, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, D, N) with padded frames zeroed -> (B, D, N)."""
        return self.pointwise(F.glu(self.norm(self.depthwise(x), mask), dim=1))


class MSDC(nn.Module):
    def __init__(self, d_model: int, dilations: tuple[int, ...], kernel: int, groups: int, dropout: float):
        super().__init__()
        self.branches = nn.ModuleList(MSDCBranch(d_model, kernel, d, groups) for d in dilations)
        self.proj = nn.Linear(len(dilations) * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, N, D), mask (B, N) bool -> MSDC(x) (B, N, D), without the residual."""
        xc = (x * mask[..., None].to(x.dtype)).transpose(1, 2)  # zero padding = zero-padded conv at clip ends
        y = torch.cat([branch(xc, mask) for branch in self.branches], dim=1).transpose(1, 2)
        return self.dropout(self.proj(y))
