"""KSDiff: DPSE -> (per path) KEL -> condition -> DiffSpeaker-style denoiser, two diffusion loops.

Every model in this package follows one interface (``MotionModel``):
``loss(batch) -> {"loss": total, <named terms>}``,
``sample(batch, steps=None, guidance=None, generator=None) -> {"head", "expr"}``
(normalized units, reproducible for a given generator), and ``cfg``.
``sample_long`` runs any of them over audio longer than one window.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import KSDiffConfig
from .denoiser import MotionTransformer
from .diffusion import GaussianDiffusion, guided, motion_losses
from .dpse import DPSE
from .kel import KEL
from .keyframes import select_keyframes_batch
from .transcript import TranscriptEncoder


def batch_prev(batch: dict, key: str, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's previous frames for ``key`` and their mask; an empty prefix when the batch has none."""
    ref = batch["mask"]
    if f"prev_{key}" not in batch:
        return ref.new_zeros(ref.shape[0], 0, dim, dtype=torch.float32), ref.new_zeros(ref.shape[0], 0)
    return batch[f"prev_{key}"], batch["prev_mask"]


class MotionModel(nn.Module):
    """Shared plumbing: condition/prev dropping in training, eval-mode no-grad sampling."""

    def __init__(self, cfg: KSDiffConfig):
        super().__init__()
        self.cfg = cfg

    def drop_condition(self, batch_size: int, device) -> torch.Tensor:
        """(B,) True where the speech condition is dropped (classifier-free guidance training)."""
        if not self.training or self.cfg.p_uncond <= 0:
            return torch.zeros(batch_size, dtype=torch.bool, device=device)
        return torch.rand(batch_size, device=device) < self.cfg.p_uncond

    def train_prev_mask(self, prev_mask: torch.Tensor) -> torch.Tensor:
        """Hide the previous frames of some training samples so cold starts (clip beginnings) are learned."""
        if not self.training or self.cfg.p_drop_prev <= 0 or prev_mask.shape[1] == 0:
            return prev_mask
        keep = torch.rand(prev_mask.shape[0], device=prev_mask.device) >= self.cfg.p_drop_prev
        return prev_mask & keep[:, None]

    def sample(
        self, batch: dict, steps: int | None = None, guidance: float | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self._sample(
                    batch, self.cfg.ddim_steps if steps is None else steps,
                    self.cfg.guidance if guidance is None else guidance, generator,
                )
        finally:
            self.train(was_training)


class ConditionFusion(nn.Module):
    """Path condition = Linear(path features) [+ Linear(transcript)] [+ Linear(keyframe tokens)]."""

    def __init__(self, cfg: KSDiffConfig, motion_dim: int):
        super().__init__()
        d = cfg.d_model
        self.feat = nn.Linear(d, d)
        self.words = nn.Linear(d, d) if cfg.use_transcript else None
        self.keys = nn.Linear(motion_dim + 1, d) if cfg.use_kel else None

    def forward(self, f, words=None, keys=None):
        c = self.feat(f)
        if self.words is not None:
            c = c + self.words(words)
        if self.keys is not None:
            c = c + self.keys(keys)
        return c


class PathGenerator(nn.Module):
    """One path (head or expression): its KEL, condition fusion and denoiser."""

    def __init__(self, cfg: KSDiffConfig, name: str, motion_dim: int):
        super().__init__()
        self.cfg, self.name, self.motion_dim = cfg, name, motion_dim
        self.percentile = getattr(cfg, f"keyframe_percentile_{name}")
        self.min_spacing = getattr(cfg, f"keyframe_min_spacing_{name}")
        self.kel = KEL(cfg, motion_dim, self.min_spacing) if cfg.use_kel else None
        self.fusion = ConditionFusion(cfg, motion_dim)
        self.denoiser = MotionTransformer(cfg, motion_dim)

    def loss(self, diffusion, f, words, x0, mask, prev, prev_mask, drop) -> dict[str, torch.Tensor]:
        c = self.cfg
        out, keys = {}, None
        if self.kel is not None:
            ind = select_keyframes_batch(x0, mask, self.percentile, self.min_spacing, c.keyframe_signal)
            kel, keys = self.kel.loss(f, ind, x0, mask)
            out["kel_bce"], out["kel_value"] = kel["bce"], kel["value"]
            out["kel"] = kel["bce"] + c.w_kel_value * kel["value"]
            out["keyframe_rate"] = (ind & mask).sum().float() / mask.sum().clamp(min=1)  # logged, not optimised
        cond = self.fusion(f, words, keys)
        t = diffusion.sample_t(x0.shape[0], x0.device)
        x_t = diffusion.q_sample(x0, t, torch.randn_like(x0))
        pred = self.denoiser(x_t, t, cond, mask, prev, prev_mask, drop)
        terms = motion_losses(pred, x0, mask)
        out.update(terms)
        out["diffusion"] = c.w_value * terms["value"] + c.w_velocity * terms["velocity"] + c.w_smooth * terms["smooth"]
        return out

    def sample(self, diffusion, f, words, mask, prev, prev_mask, steps, guidance, generator) -> torch.Tensor:
        keys = self.kel.sample(f, mask, generator) if self.kel is not None else None
        cond = self.fusion(f, words, keys)
        b = f.shape[0]
        contexts = {
            uncond: self.denoiser.prepare(cond, mask, prev, prev_mask, torch.full((b,), uncond, device=f.device))
            for uncond in ((False, True) if guidance != 1.0 else (False,))
        }
        fn = guided(lambda x, t, uncond: self.denoiser.run(contexts[uncond], x, t, f.shape[1]), guidance)
        shape = (b, f.shape[1], self.motion_dim)
        return diffusion.ddim_sample(fn, shape, steps, self.cfg.ddim_eta, generator, f.device)


class KSDiff(MotionModel):
    """The full model; ablations via cfg.split_paths / use_kel / use_transcript."""

    def __init__(self, cfg: KSDiffConfig):
        super().__init__(cfg)
        self.dpse = DPSE(cfg)
        self.transcript = TranscriptEncoder(cfg) if cfg.use_transcript else None
        self.paths = nn.ModuleDict(
            {"head": PathGenerator(cfg, "head", cfg.head_dim), "expr": PathGenerator(cfg, "expr", cfg.expr_dim)}
        )
        self.diffusion = GaussianDiffusion(cfg)

    def encode(self, batch: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        n_frames = batch["mask"].shape[1]
        f_h, f_e = self.dpse(batch["feat"], batch["feat_mask"], batch["prosody"], n_frames)
        words = self.transcript(batch["words"]) if self.transcript is not None else None
        return {"head": f_h, "expr": f_e}, words

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        c = self.cfg
        feats, words = self.encode(batch)
        mask = batch["mask"]
        drop = self.drop_condition(mask.shape[0], mask.device)
        total, logs = 0.0, {}
        for name, path in self.paths.items():
            prev, prev_mask = batch_prev(batch, name, path.motion_dim)
            terms = path.loss(self.diffusion, feats[name], words, batch[name], mask, prev,
                              self.train_prev_mask(prev_mask), drop)
            total = total + getattr(c, f"w_{name}") * terms["diffusion"] + c.w_kel * terms.get("kel", 0.0)
            logs.update({f"{name}_{k}": v for k, v in terms.items()})
        return {"loss": total, **logs}

    def _sample(self, batch, steps, guidance, generator):
        feats, words = self.encode(batch)
        mask = batch["mask"]
        out = {}
        for name, path in self.paths.items():
            prev, prev_mask = batch_prev(batch, name, path.motion_dim)
            out[name] = path.sample(
                self.diffusion, feats[name], words, mask, prev, prev_mask, steps, guidance, generator
            )
        return out


def sample_long(
    model: MotionModel,
    batch_full: dict,
    window: int | None = None,
    n_prev: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Sample a whole clip in consecutive windows of ``window`` frames (DiffPoseTalk's scheme).

    Each window after the first gets the previous window's last ``n_prev``
    *generated* frames as prev_* (so consecutive windows join continuously); the
    first window uses the batch's own prev_* if it has them. ``batch_full`` has the
    batch contract's keys over the full length (no head/expr needed).
    """
    c = model.cfg
    window = c.window if window is None else window
    n_prev = c.n_prev if n_prev is None else n_prev
    r = c.feat_per_frame
    mask = batch_full["mask"]
    b, n_frames = mask.shape
    n_feat = batch_full["feat"].shape[1]
    if abs(n_feat - n_frames * r) > r:
        raise ValueError(f"{n_feat} feature frames do not match {n_frames} motion frames at {r} features per frame")
    dims = {"head": c.head_dim, "expr": c.expr_dim}
    generated = {k: [] for k in dims}
    prev = {k: batch_prev(batch_full, k, d)[0] for k, d in dims.items()}
    prev_mask = batch_prev(batch_full, "head", c.head_dim)[1]
    for s in range(0, n_frames, window):
        e = min(s + window, n_frames)
        chunk = {
            "feat": batch_full["feat"][:, s * r : e * r],
            "feat_mask": batch_full["feat_mask"][:, s * r : e * r],
            "prosody": batch_full["prosody"][:, s * r : e * r],
            "words": batch_full["words"][:, s:e],
            "mask": mask[:, s:e],
            "prev_mask": prev_mask,
            **{f"prev_{k}": v for k, v in prev.items()},
        }
        if chunk["feat"].shape[1] == 0:
            raise ValueError(f"no speech features left for frames {s}..{e}")
        pred = model.sample(chunk, steps=steps, guidance=guidance, generator=generator)
        for k in dims:
            generated[k].append(pred[k])
            prev[k] = torch.cat(generated[k], dim=1)[:, -n_prev:] if n_prev > 0 else pred[k][:, :0]
        prev_mask = mask[:, max(0, e - n_prev) : e] if n_prev > 0 else mask[:, :0]
    return {k: torch.cat(v, dim=1) for k, v in generated.items()}
