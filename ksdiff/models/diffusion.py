"""Gaussian diffusion for x0-predicting denoisers: schedules, q_sample, DDIM sampling, motion losses.

Training is DDPM's (uniform t, x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps, the network
predicts x0). Sampling is DDIM (Song et al. 2021) over an evenly spaced subset of
the training steps; eta = 0 makes it deterministic given the initial noise,
eta = 1 with every step recovers DDPM's ancestral sampler.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from .config import KSDiffConfig
from .noise import draw


def make_betas(cfg: KSDiffConfig) -> np.ndarray:
    n = cfg.n_train_steps
    if cfg.beta_schedule == "scaled_linear":  # linear in sqrt(beta): DiffSpeaker / Stable Diffusion
        return np.linspace(math.sqrt(cfg.beta_start), math.sqrt(cfg.beta_end), n, dtype=np.float64) ** 2
    if cfg.beta_schedule == "linear":
        return np.linspace(cfg.beta_start, cfg.beta_end, n, dtype=np.float64)
    # cosine (Nichol & Dhariwal 2021), DiffPoseTalk's schedule
    s = cfg.cosine_s
    f = np.cos((np.arange(n + 1, dtype=np.float64) / n + s) / (1 + s) * math.pi / 2) ** 2
    return np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)


class GaussianDiffusion(nn.Module):
    """The schedule as buffers (so it follows ``.to(device)``) plus the forward and DDIM processes."""

    def __init__(self, cfg: KSDiffConfig):
        super().__init__()
        self.cfg = cfg
        betas = make_betas(cfg)
        alphas_cumprod = np.cumprod(1.0 - betas)
        self.n_steps = len(betas)
        self.register_buffer("betas", torch.tensor(betas, dtype=torch.float32), persistent=False)
        self.register_buffer("alphas_cumprod", torch.tensor(alphas_cumprod, dtype=torch.float32), persistent=False)
        # The square roots in float64 by numpy (IEEE sqrt, correctly rounded), not torch.sqrt at every step: on
        # the CPU that runs MKL's vector sqrt, which starts from the processor's rsqrt approximation and so
        # differs between Intel and AMD processors (ksdiff.mkl_dispatch).
        self._ab = alphas_cumprod
        self.register_buffer("sqrt_ab", torch.tensor(np.sqrt(alphas_cumprod), dtype=torch.float32), persistent=False)
        self.register_buffer("sqrt_1m_ab", torch.tensor(np.sqrt(1.0 - alphas_cumprod), dtype=torch.float32),
                             persistent=False)

    def sample_t(self, batch_size: int, device: torch.device) -> torch.Tensor:
        return torch.randint(0, self.n_steps, (batch_size,), device=device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        shape = (-1, *([1] * (x0.dim() - 1)))
        return self.sqrt_ab[t].view(shape) * x0 + self.sqrt_1m_ab[t].view(shape) * noise

    def ddim_timesteps(self, steps: int) -> list[int]:
        """``steps`` training steps, evenly spaced from T-1 down to 0; one step is T-1 (pure noise in: the
        x0-predictor's estimate of the mean. Spacing from 0 made it t = 0, so pure noise was read as clean
        motion)."""
        if not 1 <= steps <= self.n_steps:
            raise ValueError(f"DDIM steps must be in 1..{self.n_steps}, got {steps}")
        return [int(t) for t in np.unique(np.linspace(self.n_steps - 1, 0, steps).round().astype(int))[::-1]]

    @torch.no_grad()
    def ddim_sample(
        self,
        predict_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        shape: tuple[int, ...],
        steps: int,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Run DDIM from pure noise; ``predict_x0(x_t, t (B,)) -> x0``. Noise is drawn on the CPU
        from ``generator`` (so a seed gives the same motion on any device) and moved over; a
        ksdiff.models.noise.ClipGenerators draws each clip's rows from its own generator."""
        x = draw(torch.randn, shape, generator).to(device)
        ts = self.ddim_timesteps(steps)
        for i, t in enumerate(ts):
            x0 = predict_x0(x, torch.full((shape[0],), t, device=device, dtype=torch.long))
            # The step's coefficients are scalars: Python floats from the float64 schedule (math.sqrt is IEEE).
            a_t = float(self._ab[t])
            a_prev = float(self._ab[ts[i + 1]]) if i + 1 < len(ts) else 1.0
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
            sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
            x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
            if eta > 0 and i + 1 < len(ts):
                x = x + sigma * draw(torch.randn, shape, generator).to(device)
        return x


def guided(
    predict: Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor], guidance: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Classifier-free guidance on the x0 prediction: x0_u + g (x0_c - x0_u); g = 1 skips the unconditional pass.

    ``predict(x_t, t, uncond)``. Guiding x0 equals guiding eps: both are affine in x0 at fixed x_t.
    """
    if guidance == 1.0:
        return lambda x, t: predict(x, t, False)

    def fn(x, t):
        cond, uncond = predict(x, t, False), predict(x, t, True)
        return uncond + guidance * (cond - uncond)

    return fn


def motion_losses(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Masked MSE on values, on velocities (frame differences) and the mean squared acceleration of ``pred``.

    Differences only count where every frame they touch is valid, so padding and
    gaps never create fake jumps.
    """
    m = mask.to(pred.dtype)[..., None]
    d = pred.shape[-1]

    def mean(x, w):
        return (x * w).sum() / (w.sum() * d).clamp(min=1.0)

    value = mean((pred - target) ** 2, m)
    m_v = m[:, 1:] * m[:, :-1]
    velocity = mean(((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])) ** 2, m_v)
    m_a = m_v[:, 1:] * m_v[:, :-1]
    smooth = mean((pred[:, 2:] - 2 * pred[:, 1:-1] + pred[:, :-2]) ** 2, m_a)
    return {"value": value, "velocity": velocity, "smooth": smooth}
