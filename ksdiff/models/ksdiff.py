"""KSDiff: DPSE -> (per path) KEL -> condition -> DiffSpeaker-style denoiser, two diffusion loops.

Every model in this package follows one interface (``MotionModel``):
``loss(batch) -> {"loss": total, <named terms>}``,
``sample(batch, steps=None, guidance=None, generator=None) -> {"head", "expr"}``
(normalized units, reproducible for a given generator), and ``cfg``.
``sample_long`` runs any of them over audio longer than one window.

Batch contract (see ksdiff.data.dataset): feat, feat_mask, prosody, words, mask, and
the previous frames prev_head, prev_expr, prev_mask; optionally their speech,
prev_feat (B, P * r, F), prev_feat_mask, prev_prosody and prev_words (B, P), which
the models encode together with the window's (``speech_line``) when
``cfg.prev_condition`` is on. Without them the previous frames have no condition.
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
from .noise import ClipGenerators
from .transcript import TranscriptEncoder


def batch_prev(batch: dict, key: str, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's previous frames for ``key`` and their mask; an empty prefix when the batch has none."""
    ref = batch["mask"]
    if f"prev_{key}" not in batch:
        return ref.new_zeros(ref.shape[0], 0, dim, dtype=torch.float32), ref.new_zeros(ref.shape[0], 0)
    return batch[f"prev_{key}"], batch["prev_mask"]


def speech_line(batch: dict, cfg: KSDiffConfig) -> tuple[dict, int, torch.Tensor | None]:
    """The speech of the token line [previous frames; window] -> (speech, P, prev_cond_mask (B, P) or None).

    ``speech`` has feat, feat_mask, prosody and words over P + T frames, with P = 0 (the
    window alone) when the previous frames' speech is not in the batch or
    ``cfg.prev_condition`` is off. A previous frame has a condition where any of its
    feature frames is valid (none at a clip start).
    """
    window = {k: batch[k] for k in ("feat", "feat_mask", "prosody", "words")}
    p = batch["prev_mask"].shape[1] if "prev_mask" in batch else 0
    if not cfg.prev_condition or p == 0 or "prev_feat" not in batch:
        return window, 0, None
    r = cfg.feat_per_frame
    if batch["prev_feat"].shape[1] != p * r or batch["prev_words"].shape[1] != p:
        raise ValueError(f"previous-frame speech covers {batch['prev_feat'].shape[1]} feature frames and "
                         f"{batch['prev_words'].shape[1]} words for {p} previous frames at {r} features per frame")
    line = {k: torch.cat([batch[f"prev_{k}"], v], dim=1) for k, v in window.items()}
    prev_cond_mask = batch["prev_feat_mask"].reshape(-1, p, r).any(-1)
    return line, p, prev_cond_mask


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

    def sampler(self, path: str, steps: int | None = None, guidance: float | None = None) -> tuple[int, float]:
        """(DDIM steps, guidance) one path is sampled with: the caller's where given (they apply to every
        path), else the path's defaults (KSDiff's expression path: ``cfg.expr_ddim_steps``/``expr_guidance``)."""
        c = self.cfg
        own_steps, own_guidance = (c.expr_ddim_steps, c.expr_guidance) if path == "expr" else (None, None)
        if steps is None:
            steps = c.ddim_steps if own_steps is None else own_steps
        if guidance is None:
            guidance = c.guidance if own_guidance is None else own_guidance
        return int(steps), float(guidance)

    def sample(
        self, batch: dict, steps: int | None = None, guidance: float | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """``steps``/``guidance`` None: each path's defaults (``sampler``)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self._sample(batch, steps, guidance, generator)
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
        """``keys`` None with KEL on: no keyframes known (the previous frames' condition)."""
        c = self.feat(f)
        if self.words is not None:
            c = c + self.words(words)
        if self.keys is not None:
            c = c + (self.keys(keys) if keys is not None else self.keys.bias)
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
        self.denoiser = MotionTransformer(cfg, motion_dim, n_layers=getattr(cfg, f"{name}_n_layers"),
                                          ffn_mult=cfg.expr_ffn_mult if name == "expr" else None)

    def loss(self, diffusion, f, words, x0, mask, prev, prev_mask, drop, prev_cond=None, prev_cond_mask=None):
        """-> loss terms; ``prev_cond`` (B, P, D) is the previous frames' fused condition (or None)."""
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
        pred = self.denoiser(x_t, t, cond, mask, prev, prev_mask, drop, prev_cond, prev_cond_mask)
        terms = motion_losses(pred, x0, mask)
        out.update(terms)
        out["diffusion"] = c.w_value * terms["value"] + c.w_velocity * terms["velocity"] + c.w_smooth * terms["smooth"]
        return out

    def sample(self, diffusion, f, words, mask, prev, prev_mask, steps, guidance, generator, prev_cond=None,
               prev_cond_mask=None) -> torch.Tensor:
        keys = self.kel.sample(f, mask, generator) if self.kel is not None else None
        cond = self.fusion(f, words, keys)
        b = f.shape[0]
        contexts = {
            uncond: self.denoiser.prepare(cond, mask, prev, prev_mask, torch.full((b,), uncond, device=f.device),
                                          prev_cond, prev_cond_mask)
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

    def encode(self, batch: dict) -> dict:
        """Path features of the window and of the previous frames (encoded in one pass with them).

        -> {"feats": {path: (B, T, D)}, "words": (B, T, D) or None, "prev": None or
        {"feats": {path: (B, P, D)}, "words": ..., "mask": (B, P)}}.
        """
        line, p, prev_cond_mask = speech_line(batch, self.cfg)
        n_frames = batch["mask"].shape[1]
        f_h, f_e = self.dpse(line["feat"], line["feat_mask"], line["prosody"], p + n_frames)
        words = self.transcript(line["words"]) if self.transcript is not None else None
        feats = {"head": f_h, "expr": f_e}
        enc = {"feats": {k: v[:, p:] for k, v in feats.items()}, "words": None if words is None else words[:, p:],
               "prev": None}
        if p:
            enc["prev"] = {"feats": {k: v[:, :p] for k, v in feats.items()},
                           "words": None if words is None else words[:, :p], "mask": prev_cond_mask}
        return enc

    def prev_condition(self, enc: dict, name: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The previous frames' fused condition for one path (no keyframes are known there), and its mask."""
        if enc["prev"] is None:
            return None, None
        prev = enc["prev"]
        return self.paths[name].fusion(prev["feats"][name], prev["words"]), prev["mask"]

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        c = self.cfg
        enc = self.encode(batch)
        mask = batch["mask"]
        drop = self.drop_condition(mask.shape[0], mask.device)
        total, logs = 0.0, {}
        for name, path in self.paths.items():
            prev, prev_mask = batch_prev(batch, name, path.motion_dim)
            terms = path.loss(self.diffusion, enc["feats"][name], enc["words"], batch[name], mask, prev,
                              self.train_prev_mask(prev_mask), drop, *self.prev_condition(enc, name))
            total = total + getattr(c, f"w_{name}") * terms["diffusion"] + c.w_kel * terms.get("kel", 0.0)
            logs.update({f"{name}_{k}": v for k, v in terms.items()})
        return {"loss": total, **logs}

    def _sample(self, batch, steps, guidance, generator):
        enc = self.encode(batch)
        mask = batch["mask"]
        out = {}
        for name, path in self.paths.items():
            prev, prev_mask = batch_prev(batch, name, path.motion_dim)
            out[name] = path.sample(self.diffusion, enc["feats"][name], enc["words"], mask, prev, prev_mask,
                                    *self.sampler(name, steps, guidance), generator, *self.prev_condition(enc, name))
        return out


def before(x: torch.Tensor, start: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x[:, start - n : start] left-padded with zeros where it reaches before frame 0, and (B, n) validity."""
    lo = max(start - n, 0)
    part = x[:, lo:start]
    pad = n - part.shape[1]
    valid = torch.ones(x.shape[0], n, dtype=torch.bool, device=x.device)
    if pad:
        part = torch.cat([part.new_zeros(x.shape[0], pad, *x.shape[2:]), part], dim=1)
        valid[:, :pad] = False
    return part, valid


def sample_long(
    model: MotionModel,
    batch_full: dict,
    window: int | None = None,
    n_prev: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    generator: torch.Generator | ClipGenerators | None = None,
    overlap: int | None = None,
    lengths: list[int] | None = None,
) -> dict[str, torch.Tensor]:
    """Sample a whole clip in windows of ``window`` frames (DiffPoseTalk's scheme).

    Each window after the first gets the ``n_prev`` *generated* frames before it as
    prev_* (so consecutive windows join continuously) and their speech as
    prev_feat/prev_feat_mask/prev_prosody/prev_words, which exists there (at the clip
    start it does not: masked, as in training); the first window uses the batch's
    own prev_* if it has them. Windows start every ``window - overlap`` frames
    (``cfg.window_overlap`` by default); where two overlap, the output fades linearly
    from the earlier window's frames to the later one's. ``batch_full`` has the batch
    contract's keys over the full length (no head/expr needed).

    Several clips in one batch (ksdiff.infer): ``lengths`` gives each row's own frame count (rows padded
    at the end to the longest). Windows start at the same frames whatever the length, so each window is
    sampled for the rows that reach it, one call per distinct window end: no row ever sees another's
    padding, and with ``generator`` a ksdiff.models.noise.ClipGenerators every clip draws the noise it
    would draw alone. Frames past a row's length stay zero.
    """
    c = model.cfg
    window = c.window if window is None else window
    n_prev = c.n_prev if n_prev is None else n_prev
    overlap = c.window_overlap if overlap is None else overlap
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in 0..{window - 1}, got {overlap}")
    r = c.feat_per_frame
    mask = batch_full["mask"]
    b, n_frames = mask.shape
    lengths = [n_frames] * b if lengths is None else [int(n) for n in lengths]
    if len(lengths) != b or not all(0 < n <= n_frames for n in lengths):
        raise ValueError(f"lengths must give 1..{n_frames} frames for each of the {b} rows, got {lengths}")
    n_feat = batch_full["feat"].shape[1]
    if abs(n_feat - n_frames * r) > r:
        raise ValueError(f"{n_feat} feature frames do not match {n_frames} motion frames at {r} features per frame")
    dims = {"head": c.head_dim, "expr": c.expr_dim}
    out = {k: None for k in dims}
    done = 0  # frames [0, done) are generated (for every row still sampling)
    s = 0
    live = list(range(b))  # rows whose clip continues past frame s
    while live:
        ends = {}
        for i in live:
            ends.setdefault(min(s + window, lengths[i]), []).append(i)
        for e, rows in sorted(ends.items()):
            _sample_window(model, batch_full, out, dims, rows if len(rows) < b else None, s, e, done, n_prev,
                           steps, guidance, generator)
        done = s + window
        live = [i for i in live if lengths[i] > done]
        s = done - overlap
    return out


def _sample_window(model, batch_full, out, dims, rows, s, e, done, n_prev, steps, guidance, generator):
    """Frames [s, e) of ``rows`` (None: every row) sampled and written into ``out`` (sample_long's loop)."""
    r = model.cfg.feat_per_frame
    full = batch_full if rows is None else {k: v[rows] for k, v in batch_full.items()}
    gen = generator
    if rows is not None and isinstance(generator, ClipGenerators):  # the generators of these rows' clips
        gen = generator.take(sorted({i // generator.rows_per_clip for i in rows}))
    mask = full["mask"]
    chunk = {
        "feat": full["feat"][:, s * r: e * r],
        "feat_mask": full["feat_mask"][:, s * r: e * r],
        "prosody": full["prosody"][:, s * r: e * r],
        "words": full["words"][:, s:e],
        "mask": mask[:, s:e],
    }
    if chunk["feat"].shape[1] == 0:
        raise ValueError(f"no speech features left for frames {s}..{e}")
    mine = {k: (None if v is None else v if rows is None else v[rows]) for k, v in out.items()}
    if s == 0:
        chunk["prev_mask"] = batch_prev(full, "head", dims["head"])[1]
        chunk.update({f"prev_{k}": batch_prev(full, k, d)[0] for k, d in dims.items()})
    else:
        gen_valid = before(mask, s, n_prev)
        chunk["prev_mask"] = gen_valid[0] & gen_valid[1]
        chunk.update({f"prev_{k}": before(mine[k], s, n_prev)[0] for k in dims})
    p = chunk["prev_mask"].shape[1]
    if p:
        feat, feat_ok = before(full["feat"], s * r, p * r)
        chunk["prev_feat"] = feat
        chunk["prev_feat_mask"] = before(full["feat_mask"], s * r, p * r)[0] & feat_ok
        chunk["prev_prosody"] = before(full["prosody"], s * r, p * r)[0]
        chunk["prev_words"] = before(full["words"], s, p)[0]
    pred = model.sample(chunk, steps=steps, guidance=guidance, generator=gen)
    for k in dims:
        new = pred[k]
        if out[k] is None:
            out[k] = new.new_zeros(*batch_full["mask"].shape, new.shape[-1])
        at = slice(None) if rows is None else torch.as_tensor(rows, device=new.device)
        n_old = done - s  # frames of this window already generated by the previous one
        if n_old > 0:
            w = (torch.arange(1, n_old + 1, dtype=new.dtype, device=new.device) / (n_old + 1))[None, :, None]
            out[k][at, s:done] = (1 - w) * out[k][at, s:done] + w * new[:, :n_old]
        out[k][at, done:e] = new[:, max(n_old, 0):]
