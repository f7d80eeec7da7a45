"""Prosody input (F0, energy) for the expression path, and its FiLM conditioning.

The prosody extractor itself runs in feature extraction (librosa pyin + RMS energy,
stored as ``f0_hz``/``voiced``/``energy_db`` in the FEATURES table).
``prosody_features`` turns those columns into the model's (N, 2) input; it is plain
numpy because it is input preparation, not part of the learned model.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

_EPS = 1e-6


def prosody_features(f0_hz: np.ndarray, voiced: np.ndarray, energy_db: np.ndarray) -> np.ndarray:
    """(N,) F0 in Hz, voiced flags and energy in dB -> (N, 2) float32 [log-F0, energy].

    Both channels are normalized per clip (zero mean, unit std) so that a speaker's
    pitch range and the recording level do not leak into the expression path: what
    is left is the contour (rises, falls, stress), which is what FiLM should see.
    log-F0 uses voiced frames only for its statistics and is 0 where unvoiced (0 =
    the speaker's mean, i.e. "no prosodic information"), as the batch contract says.
    """
    f0_hz = np.asarray(f0_hz, dtype=np.float64)
    voiced = np.asarray(voiced, dtype=bool) & np.isfinite(f0_hz) & (f0_hz > 0)
    energy_db = np.asarray(energy_db, dtype=np.float64)
    if not (f0_hz.shape == voiced.shape == energy_db.shape) or f0_hz.ndim != 1:
        raise ValueError(f"f0_hz, voiced and energy_db must be equal-length 1-D arrays, got {f0_hz.shape}, "
                         f"{voiced.shape}, {energy_db.shape}")
    out = np.zeros((f0_hz.shape[0], 2), dtype=np.float32)
    if voiced.any():
        logf0 = np.log(f0_hz[voiced])
        out[voiced, 0] = (logf0 - logf0.mean()) / (logf0.std() + _EPS)
    finite = np.isfinite(energy_db)
    if finite.any():
        e = energy_db[finite]
        out[finite, 1] = (e - e.mean()) / (e.std() + _EPS)
    return out


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
