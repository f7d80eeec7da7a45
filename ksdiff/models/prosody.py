"""Prosody's FiLM conditioning of the expression path.

The prosody extractor itself runs in feature extraction (librosa pyin + RMS energy,
stored as ``f0_hz``/``voiced``/``energy_db`` in the FEATURES table).
``ksdiff.data.clip_arrays.prosody_features`` turns those columns into the model's
(N, 2) input; it is plain numpy because it is input preparation, not part of the
learned model.
"""
from __future__ import annotations

import torch
from torch import nn


class ProsodyFiLM(nn.Module):
    """h' = gamma(p) * h + beta(p), gamma and beta from two Linear layers on prosody p.

    Both layers start at zero (gamma = 1, beta = 0) so an untrained expression path
    begins as the shared trunk and learns how much prosody should modulate it.
    """

    def __init__(self, d_model: int, prosody_dim: int = 2):
        super().__init__()
        self.gamma = nn.Linear(prosody_dim, d_model)
        self.beta = nn.Linear(prosody_dim, d_model)
        for layer in (self.gamma, self.beta):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor, prosody: torch.Tensor) -> torch.Tensor:
        """h (B, N, D), prosody (B, N, 2) -> (B, N, D)."""
        return (1.0 + self.gamma(prosody)) * h + self.beta(prosody)
