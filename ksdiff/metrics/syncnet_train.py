"""Train our own SyncNet expert, for users without the official syncnet_v2.model.

As Wav2Lip trained its lip-sync expert: the SAME network (syncnet_python's
``S``) learns from (5-frame face-crop window, 20-step MFCC window) pairs,
positives in sync and negatives with the audio window shifted in time.

Choices (all in ExpertConfig):
- Architecture: ``S`` exactly. Its convolution widths are fixed in
  syncnet_python's class; the only width it exposes is the embedding size
  (``num_layers_in_fc_layers``), which ``embed_dim`` sets. Its input size is
  fixed too: the video stream must end in a 1x1 map, which only inputs of
  about 211..241 px give, so crops stay 224 x 224 (SyncNet's face framing,
  mouth in the lower half). A CPU run is kept short by few steps, not by a
  smaller network.
- Loss: the contrastive loss of the original SyncNet (Chung & Zisserman 2016)
  on the Euclidean distance, y d^2 + (1 - y) max(margin - d, 0)^2, because LSE
  scores exactly that distance; ``loss='bce_cosine'`` gives Wav2Lip's BCE on
  the cosine similarity (mapped to [0, 1]) instead.
- Each sampled video window is paired with its in-sync audio AND one shifted
  audio window, so a batch is balanced and every costly video forward pass
  serves two pairs.
Numbers from our expert are NOT comparable to published LSE values (which
use syncnet_v2.model); they compare methods within one benchmark only. The
weights' sha256 is saved beside them and must be printed in reports.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ksdiff import numerics
from ksdiff.config import ExpertConfig  # defaults live with the config (the workflow reads num_threads torch-free)
from ksdiff.io.files import atomic_torch_save
from ksdiff.metrics.mouth_crops import face_crops, swap_rb
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.syncnet import (SAMPLES_PER_FRAME, build_syncnet, channels_last, embed_audio, embed_video, file_sha256,
                                   lse_from_embeddings, n_windows, syncnet_mfcc, video_layout)

log = logging.getLogger(__name__)


@dataclass
class _Clip:
    # (T, 224, 224, 3) uint8, as given: in memory or a view of a memory-mapped file (the workflow's expert,
    # ksdiff.metrics.syncnet_expert), never copied, so the expert's memory does not hold every crop.
    crops: np.ndarray
    rgb: bool  # channel order of ``crops``; S is fed BGR, flipped per sampled window
    mfcc: np.ndarray  # (13, n) float32
    n_win: int

    @property
    def crops_bgr(self) -> np.ndarray:
        """All crops in BGR (a copy when they are RGB): for checks and tests, not the training loop."""
        return swap_rb(self.crops) if self.rgb else self.crops


def prepare_clips(clips: Sequence[tuple], color: str = "rgb") -> list[_Clip]:
    """Clips as (crops, wav16k) or (frames, landmarks, wav16k) tuples -> training clips."""
    out = []
    for k, clip in enumerate(clips):
        if len(clip) == 2:
            crops, wav = clip
        elif len(clip) == 3:
            frames, landmarks, wav = clip
            crops = face_crops(frames, landmarks)
        else:
            raise ValueError(f"clip {k}: expected (crops, wav) or (frames, landmarks, wav)")
        crops = np.asarray(crops)
        if crops.shape[1:] != (PROTOCOL.crop_size, PROTOCOL.crop_size, 3) or crops.dtype != np.uint8:
            raise ValueError(f"clip {k}: crops must be (T, {PROTOCOL.crop_size}, {PROTOCOL.crop_size}, 3) uint8, got {crops.shape} {crops.dtype}")
        n_win = n_windows(len(crops), len(wav))
        if n_win < 1:
            log.warning("clip %d skipped: too short for a SyncNet window", k)
            continue
        out.append(_Clip(crops, color == "rgb", syncnet_mfcc(np.asarray(wav)), n_win))
    if not out:
        raise ValueError("no usable clip for SyncNet training")
    return out


def _sample_batch(clips: list[_Clip], cfg: ExpertConfig, rng: np.random.Generator):
    """(video (B, 3, 5, H, W), audio_pos (B, 1, 13, 20), audio_neg (B, 1, 13, 20))."""
    p = PROTOCOL
    vids, pos, neg = [], [], []
    while len(vids) < cfg.batch_size:
        c = clips[rng.integers(len(clips))]
        i = int(rng.integers(c.n_win))
        cand = [j for j in range(c.n_win) if cfg.neg_min_shift <= abs(j - i) <= cfg.neg_max_shift]
        if not cand:
            continue
        j = int(rng.choice(cand))
        window = c.crops[i : i + p.syncnet_window_frames]
        vids.append(window[..., ::-1] if c.rgb else window)  # np.stack below copies it, flipped, to BGR
        a = p.syncnet_mfcc_per_frame
        pos.append(c.mfcc[:, a * i : a * i + p.syncnet_mfcc_steps])
        neg.append(c.mfcc[:, a * j : a * j + p.syncnet_mfcc_steps])
    v = torch.from_numpy(np.stack(vids)).permute(0, 4, 1, 2, 3).float()  # (B, 3, 5, H, W)
    v = v.contiguous(memory_format=video_layout())
    return v, torch.from_numpy(np.stack(pos))[:, None], torch.from_numpy(np.stack(neg))[:, None]


def pair_loss(v: torch.Tensor, a: torch.Tensor, y: torch.Tensor, cfg: ExpertConfig) -> torch.Tensor:
    if cfg.loss == "contrastive":
        d = F.pairwise_distance(v, a)  # the distance calc_pdist (and so LSE) uses
        return (y * d**2 + (1 - y) * F.relu(cfg.margin - d) ** 2).mean()
    if cfg.loss == "bce_cosine":
        p = ((F.cosine_similarity(v, a) + 1) / 2).clamp(1e-6, 1 - 1e-6)
        return F.binary_cross_entropy(p, y)
    raise ValueError(f"unknown loss {cfg.loss!r}")


def train_expert(
    clips: Sequence[tuple], cfg: ExpertConfig = ExpertConfig(), out_path: str | Path | None = None
) -> tuple[torch.nn.Module, dict]:
    """Train S on the clips; save its state_dict (loadable by load_syncnet) to out_path.

    Returns (model in eval mode, info) with info = dict(losses, sha256, path, config).
    A JSON sidecar ``<out_path>.json`` records the config, sha256 and losses.
    """
    ambient = torch.get_num_threads()
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _train(clips, cfg, out_path)
    finally:  # a caller's own thread count (a notebook, the test session) is left as it was
        torch.set_num_threads(ambient)


def _train(clips: Sequence[tuple], cfg: ExpertConfig, out_path: str | Path | None) -> tuple[torch.nn.Module, dict]:
    numerics.torch_settings()  # deterministic algorithms unless the process runs numerics 'fast'
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = prepare_clips(clips, cfg.color)
    model = channels_last(build_syncnet(cfg.embed_dim).to(cfg.device))  # the convolutions' fast layout
    model.train()
    # fused: the IEEE square root of ATen's vector code, not MKL's, which differs by processor maker (ksdiff.mkl_dispatch)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=torch.device(cfg.device).type in ("cpu", "cuda"))
    ones = torch.ones(cfg.batch_size, device=cfg.device)
    y = torch.cat([ones, torch.zeros_like(ones)])
    losses = []
    bar = tqdm(range(cfg.steps), desc="syncnet expert", disable=None)
    for step in bar:
        v, ap, an = (t.to(cfg.device) for t in _sample_batch(data, cfg, rng))
        ve = model.forward_lip(v)
        ae = model.forward_aud(torch.cat([ap, an]))
        loss = pair_loss(torch.cat([ve, ve]), ae, y, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % cfg.log_every == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            log.debug("step %d loss %.4f", step, losses[-1])
    model.eval()
    info = {"losses": losses, "config": asdict(cfg), "numerics": numerics.describe(), "path": None, "sha256": None}
    if out_path is not None:
        info.update(save_expert(model, out_path, info))
    return model, info


def save_expert(model: torch.nn.Module, path: str | Path, info: dict | None = None) -> dict:
    """Atomically save S's state_dict (syncnet_python's format) and a JSON sidecar with its sha256."""
    path = Path(path)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_torch_save(state, path)
    sha = file_sha256(path)
    side = {"sha256": sha, "path": str(path.resolve()), **{k: v for k, v in (info or {}).items() if k not in ("sha256", "path")}}
    path.with_name(path.name + ".json").write_text(json.dumps(side, indent=1))
    log.info("saved SyncNet expert %s sha256 %s", path, sha)
    return {"sha256": sha, "path": str(path.resolve())}


# --------------------------------------------------------------------------- checking weights

CHECK_SHIFT = 6  # frames the audio is delayed by in the shift test: well inside the +-15 search, beyond a window
# Verdict thresholds: weights "detect sync" on a set of held-out clips when at least half of the clips
# put the in-sync audio within one frame of offset 0 AND recover the known delay within one frame, and
# in-sync audio scores a higher LSE-C than another clip's audio on at least half of the clips.
CHECK_MIN_FRACTION = 0.5


def check_sync(model: torch.nn.Module, clips: Sequence[tuple], shift: int = CHECK_SHIFT, color: str = "rgb") -> dict:
    """Does a SyncNet see lip sync on these (held-out) clips? Numbers for the report, and a verdict.

    ``clips``: (face crops (T, 224, 224, 3), wav16k) pairs of real, in-sync video.
    Per clip, LSE is computed with (a) its own audio, (b) its audio delayed by
    ``shift`` frames (SyncNet must answer offset -shift) and (c) the next clip's
    audio (mismatched). The video embeddings, the costly part, are computed once
    per clip and reused for all three. At least two clips are needed (c).
    """
    if len(clips) < 2:
        raise ValueError("check_sync needs at least two clips (one lends the other its audio)")
    was = model.training
    model.eval()
    rows = []
    try:
        for k, (crops, wav) in enumerate(clips):
            crops, wav = np.asarray(crops), np.asarray(wav, dtype=np.float32)
            other = np.asarray(clips[(k + 1) % len(clips)][1], dtype=np.float32)
            delayed = np.concatenate([np.zeros(shift * SAMPLES_PER_FRAME, np.float32), wav])[: len(wav)]
            n_win = min(n_windows(len(crops), len(wav)), n_windows(len(crops), len(other)))
            if n_win < 2 * PROTOCOL.syncnet_vshift:
                log.warning("check_sync: clip %d has %d windows, fewer than the offset search needs; left out", k, n_win)
                continue
            bgr = swap_rb(crops) if color == "rgb" else crops  # embed_video makes it contiguous
            video = embed_video(model, bgr, n_win)
            r = {name: lse_from_embeddings(video, embed_audio(model, syncnet_mfcc(a), n_win))
                 for name, a in (("sync", wav), ("delayed", delayed), ("mismatched", other))}
            rows.append({"sync_offset": r["sync"]["offset"], "delayed_offset": r["delayed"]["offset"],
                         "lse_c_sync": r["sync"]["lse_c"], "lse_c_mismatched": r["mismatched"]["lse_c"],
                         "lse_d_sync": r["sync"]["lse_d"], "lse_d_mismatched": r["mismatched"]["lse_d"]})
    finally:
        model.train(was)
    if not rows:
        raise ValueError("check_sync: no clip is long enough for the offset search")
    sync_ok = np.mean([abs(r["sync_offset"]) <= 1 for r in rows])
    shift_ok = np.mean([abs(r["delayed_offset"] + shift) <= 1 for r in rows])
    c_wins = np.mean([r["lse_c_sync"] > r["lse_c_mismatched"] for r in rows])
    med = lambda key: float(np.median([r[key] for r in rows]))  # noqa: E731
    return {
        "n_clips": len(rows), "shift_frames": shift,
        "sync_offset_within_1": float(sync_ok), "shift_recovered_within_1": float(shift_ok),
        "lse_c_sync_beats_mismatched": float(c_wins),
        "lse_c_sync_median": med("lse_c_sync"), "lse_c_mismatched_median": med("lse_c_mismatched"),
        "lse_d_sync_median": med("lse_d_sync"), "lse_d_mismatched_median": med("lse_d_mismatched"),
        "detects_sync": bool(min(sync_ok, shift_ok, c_wins) >= CHECK_MIN_FRACTION),
        "rule": f"detects_sync: on >= {CHECK_MIN_FRACTION:.0%} of held-out clips, in-sync audio found within 1 frame "
                f"of offset 0, a {shift}-frame delay recovered within 1 frame, and LSE-C(in sync) > "
                "LSE-C(another clip's audio)",
        "clips": rows,
    }


def describe_check(check: dict | None) -> str:
    """One sentence about a check_sync result, for logs and reports."""
    if not check:
        return "not checked on held-out clips"
    verdict = "detects lip sync" if check["detects_sync"] else "does NOT reliably detect lip sync: LSE values are not meaningful"
    return (f"{verdict} on {check['n_clips']} held-out clips (offset 0 found on {check['sync_offset_within_1']:.0%}, "
            f"a {check['shift_frames']}-frame delay recovered on {check['shift_recovered_within_1']:.0%}, "
            f"LSE-C in sync {check['lse_c_sync_median']:.2f} vs mismatched audio {check['lse_c_mismatched_median']:.2f} "
            f"(medians), in-sync higher on {check['lse_c_sync_beats_mismatched']:.0%})")


def synthetic_sync_clips(n_clips: int = 8, n_frames: int = 75, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tiny (crops RGB, wav16k) clips whose mouth brightness follows audio energy.

    For tests and smoke runs of the expert: syllable-like bursts (2-6 frames)
    of band-limited noise; each frame's mouth region brightness equals that
    frame's audio envelope, so sync is learnable from the pixels and the MFCC
    log-energy alone, and a shifted audio track has a known offset.
    """
    rng = np.random.default_rng(seed)
    size, spf = PROTOCOL.crop_size, SAMPLES_PER_FRAME
    yy, xx = np.mgrid[0:size, 0:size]
    mouth = ((yy - 165) / 28.0) ** 2 + ((xx - 112) / 50.0) ** 2 <= 1.0
    clips = []
    for _ in range(n_clips):
        env = np.zeros(n_frames)
        t = int(rng.integers(0, 3))
        while t < n_frames:
            n_on = int(rng.integers(2, 7))
            env[t : t + n_on] = rng.uniform(0.5, 1.0)
            t += n_on + int(rng.integers(1, 5))
        face = rng.uniform(90, 170, 3)
        base = np.empty((size, size, 3), np.float32)
        base[:] = face + rng.normal(0, 6, (size, size, 3))
        crops = np.empty((n_frames, size, size, 3), np.uint8)
        for f in range(n_frames):
            img = base.copy()
            img[mouth] = 20 + 220 * env[f]
            crops[f] = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
        noise = np.convolve(rng.standard_normal(n_frames * spf), np.ones(4) / 4, mode="same")
        wav = (noise * (0.01 + 0.4 * np.repeat(env, spf))).astype(np.float32)
        clips.append((crops, wav))
    return clips
