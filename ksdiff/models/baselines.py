"""Baselines sharing KSDiff's speech trunk so comparisons isolate the method, not the encoder.

What each sees: the speech features only (the DPSE trunk without the split, adapter +
MSDC resampled to T: the stand-in for DiffSpeaker's contextual wav2vec2 encoder when
features are log-mels), over the same token line as KSDiff, i.e. the previous
frames' audio too (``cfg.prev_condition``) and the same previous frames. No
prosody (FiLM off: DiffSpeaker and FaceFormer read speech features only), no KEL, no
transcript.

Capacity: at the shared sizes one network has a third of KSDiff's parameters, so
both baselines use ``cfg.baseline_n_layers`` layers with ``cfg.baseline_ffn_mult``
FFN width (at the defaults 7 layers x 4 d_model: 1.06x and 1.04x KSDiff's count,
checked by tests/test_models.py), so a KSDiff win is not a capacity win.

- ``DiffSpeakerModel``: one DiffSpeaker-style denoiser over the concatenated
  [head, expr] motion, one diffusion loop, classifier-free guidance like KSDiff.
- ``RegressionModel``: FaceFormer-like deterministic regressor: the same
  transformer (periodic self-attention bias, periodic positional encoding, aligned
  cross-attention to speech) without noisy input or timestep, trained with the same
  value/velocity losses. Non-autoregressive: FaceFormer's autoregression is
  replaced by the same prev-frame prefix the other models get, which keeps
  sampling one forward pass.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .config import KSDiffConfig
from .denoiser import MotionTransformer
from .diffusion import GaussianDiffusion, guided, motion_losses
from .dpse import DPSE
from .ksdiff import MotionModel, batch_prev, speech_line


class _JointMotionModel(MotionModel):
    """Speech trunk -> condition for one network over concatenated [head, expr]."""

    def __init__(self, cfg: KSDiffConfig, noisy_input: bool):
        super().__init__(cfg)
        self.encoder = DPSE(dataclasses.replace(cfg, split_paths=False, use_prosody=False))
        self.cond = nn.Linear(cfg.d_model, cfg.d_model)
        self.net = MotionTransformer(cfg, cfg.head_dim + cfg.expr_dim, noisy_input=noisy_input,
                                     n_layers=cfg.baseline_n_layers, ffn_mult=cfg.baseline_ffn_mult)

    def condition(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """-> the window's condition (B, T, D), the previous frames' (B, P, D) and its mask (or None, None)."""
        line, p, prev_mask = speech_line(batch, self.cfg)
        f, _ = self.encoder(line["feat"], line["feat_mask"], line["prosody"], p + batch["mask"].shape[1])
        f = self.cond(f)
        return f[:, p:], (f[:, :p] if p else None), prev_mask

    def joint_prev(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        head, prev_mask = batch_prev(batch, "head", self.cfg.head_dim)
        expr, _ = batch_prev(batch, "expr", self.cfg.expr_dim)
        return torch.cat([head, expr], dim=-1), prev_mask

    def split(self, motion: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"head": motion[..., : self.cfg.head_dim], "expr": motion[..., self.cfg.head_dim :]}

    def weighted(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Value/velocity/smoothness per stream, combined with the same weights KSDiff uses."""
        c = self.cfg
        out, total = {}, 0.0
        for name, p in self.split(pred).items():
            terms = motion_losses(p, target[name], mask)
            out.update({f"{name}_{k}": v for k, v in terms.items()})
            total = total + getattr(c, f"w_{name}") * (
                c.w_value * terms["value"] + c.w_velocity * terms["velocity"] + c.w_smooth * terms["smooth"]
            )
        return {"loss": total, **out}


class DiffSpeakerModel(_JointMotionModel):
    def __init__(self, cfg: KSDiffConfig):
        super().__init__(cfg, noisy_input=True)
        self.diffusion = GaussianDiffusion(cfg)

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        mask = batch["mask"]
        x0 = torch.cat([batch["head"], batch["expr"]], dim=-1)
        prev, prev_mask = self.joint_prev(batch)
        t = self.diffusion.sample_t(x0.shape[0], x0.device)
        x_t = self.diffusion.q_sample(x0, t, torch.randn_like(x0))
        drop = self.drop_condition(x0.shape[0], x0.device)
        cond, prev_cond, prev_cond_mask = self.condition(batch)
        pred = self.net(x_t, t, cond, mask, prev, self.train_prev_mask(prev_mask), drop, prev_cond, prev_cond_mask)
        return self.weighted(pred, batch, mask)

    def _sample(self, batch, steps, guidance, generator):
        steps, guidance = self.sampler("joint", steps, guidance)  # one path: the shared defaults
        (cond, prev_cond, prev_cond_mask), mask = self.condition(batch), batch["mask"]
        prev, prev_mask = self.joint_prev(batch)
        b, n = mask.shape
        contexts = {
            uncond: self.net.prepare(cond, mask, prev, prev_mask, torch.full((b,), uncond, device=mask.device),
                                     prev_cond, prev_cond_mask)
            for uncond in ((False, True) if guidance != 1.0 else (False,))
        }
        fn = guided(lambda x, t, uncond: self.net.run(contexts[uncond], x, t, n), guidance)
        motion = self.diffusion.ddim_sample(
            fn, (b, n, self.cfg.head_dim + self.cfg.expr_dim), steps, self.cfg.ddim_eta, generator, mask.device
        )
        return self.split(motion)


class RegressionModel(_JointMotionModel):
    def __init__(self, cfg: KSDiffConfig):
        super().__init__(cfg, noisy_input=False)

    def _predict(self, batch: dict, prev_mask: torch.Tensor) -> torch.Tensor:
        mask = batch["mask"]
        prev, _ = self.joint_prev(batch)
        no_drop = torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device)
        cond, prev_cond, prev_cond_mask = self.condition(batch)
        return self.net(None, None, cond, mask, prev, prev_mask, no_drop, prev_cond, prev_cond_mask)

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        _, prev_mask = self.joint_prev(batch)
        return self.weighted(self._predict(batch, self.train_prev_mask(prev_mask)), batch, batch["mask"])

    def _sample(self, batch, steps, guidance, generator):
        """Deterministic: steps, guidance and generator do not apply."""
        return self.split(self._predict(batch, self.joint_prev(batch)[1]))
