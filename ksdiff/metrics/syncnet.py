"""LSE-D / LSE-C with SyncNet (Chung & Zisserman 2016) on Wav2Lip's protocol.

What is reused from syncnet_python, unchanged: the network class ``S``
(SyncNetModel.py), its weights' format, the pairwise distance over offsets
``calc_pdist`` (SyncNetInstance.py), and the exact arithmetic of
SyncNetInstance.evaluate (MFCC via python_speech_features on int16 samples,
windows of 5 frames x 20 MFCC steps, min_length = min(frames, samples/640),
``min_length - 5`` windows, offset = vshift - argmin, conf = median - min).

What differs: crops come from our landmarks (ksdiff.metrics.mouth_crops), not
from S3FD + tracking + an XVID/JPEG re-encode, and frames stay in memory as
uint8 (syncnet_python reads every crop from JPEG into one float64 array).
Windows are batched, and each window's video embedding is computed once and
reused for every offset, as syncnet_python does. Where the two streams run
(``embed_video``, ``embed_audio``): on a CPU under pinned numerics (oneDNN off)
lowered to MKL matrix products (ksdiff.metrics.syncnet_lowered: 2.2x faster than
ATen's slow_conv3d, as pinned); on a CPU with oneDNN (``numerics: fast``) S's
layers with BatchNorm folded in on channels-last maps (ksdiff.metrics.syncnet_folded:
a quarter faster than S's own forward there); on a GPU S's own forward in float32 (no TF32).
Every path equals S's plain forward within ~1e-6 relative (other summation
orders; tests/test_syncnet_lowered.py); benchmarks/README.md "LSE on the CPU"
has the costs.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ksdiff.io.files import sha256_file
from ksdiff.metrics.mouth_crops import swap_rb
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.syncnet_folded import FoldedAudio, FoldedLip
from ksdiff.metrics.syncnet_lowered import LoweredAudio, LoweredLip

log = logging.getLogger(__name__)

MFCC_RATE_HZ = 100  # python_speech_features' winstep 0.01 s: SyncNet's audio steps per second


def frame_steps(fps: float) -> tuple[int, int]:
    """(audio samples, MFCC steps) per video frame at ``fps``: (640, 4) at 25 fps, syncnet_python's constants.

    SyncNet was trained on 5-frame windows against 20 MFCC steps, i.e. at
    PROTOCOL.fps only; any other frame rate would pair each window with the
    wrong stretch of audio, so it is refused here rather than scored.
    """
    if fps != PROTOCOL.fps:
        raise ValueError(f"LSE (SyncNet) is defined at {PROTOCOL.fps:g} fps only (5 frames per "
                         f"{PROTOCOL.syncnet_mfcc_steps} MFCC steps at {MFCC_RATE_HZ} Hz); got motion at {fps:g} fps: "
                         f"resample it to {PROTOCOL.fps:g} fps first")
    samples, steps = PROTOCOL.sample_rate / fps, MFCC_RATE_HZ / fps
    if samples != int(samples) or steps != PROTOCOL.syncnet_mfcc_per_frame:
        raise ValueError(f"protocol inconsistent: {PROTOCOL.sample_rate} Hz / {fps:g} fps = {samples:g} samples and "
                         f"{steps:g} MFCC steps per frame (syncnet_mfcc_per_frame = {PROTOCOL.syncnet_mfcc_per_frame})")
    return int(samples), int(steps)


SAMPLES_PER_FRAME = frame_steps(PROTOCOL.fps)[0]  # 640, syncnet_python's constant


class SyncNetWeightsError(FileNotFoundError):
    pass


def _syncnet_classes():
    # Imported lazily: importing syncnet_python pulls in its whole pipeline
    # (cv2, ffmpeg-python, scenedetect), which the other metrics do not need.
    from syncnet_python.SyncNetInstance import calc_pdist
    from syncnet_python.SyncNetModel import S

    return S, calc_pdist


file_sha256 = sha256_file  # the weights' identity, printed in every report


def build_syncnet(embed_dim: int = 1024) -> nn.Module:
    """syncnet_python's ``S`` with random weights (``embed_dim`` = num_layers_in_fc_layers)."""
    S, _ = _syncnet_classes()
    return S(num_layers_in_fc_layers=embed_dim)


def load_syncnet(path: str | Path | None, device: str = "cpu") -> nn.Module:
    """Load a SyncNet state_dict (official ``syncnet_v2.model`` or our expert).

    The file is never downloaded: users get syncnet_v2.model from the
    syncnet_python authors and point the config at it. Keys may carry the
    ``__S__.`` prefix of a saved SyncNetInstance. The returned model (eval
    mode, on ``device``: cpu, cuda or auto) has ``weights_path``, ``weights_sha256``
    and ``device`` attributes for reports.
    """
    if path is None or not Path(path).is_file():
        raise SyncNetWeightsError(
            f"SyncNet weights not found at {path!r}. LSE-D/LSE-C need syncnet_python's "
            "official 'syncnet_v2.model' (obtain it from the syncnet_python authors, "
            "see https://github.com/joonson/syncnet_python) or an expert trained with "
            "ksdiff.metrics.syncnet_train; set its local path in the config. "
            "Nothing is downloaded."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    for prefix in ("__S__.", "module."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    if "netfcaud.3.weight" not in state:
        raise ValueError(f"{path} is not a SyncNet (syncnet_python S) state_dict: no 'netfcaud.3.weight'")
    model = build_syncnet(embed_dim=int(state["netfcaud.3.weight"].shape[0]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: state_dict does not match syncnet_python S (missing {missing[:5]}, unexpected {unexpected[:5]})")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"SyncNet on {device!r} requested (eval.device) but torch sees no CUDA device")
    model.eval().to(device)
    model.device = str(device)  # where LSE is scored: recorded in the metrics table's attrs
    model.weights_path = str(Path(path).resolve())
    model.weights_sha256 = file_sha256(path)
    model.sync_check = weights_check(path, model.weights_sha256)
    log.info("SyncNet weights %s sha256 %s", model.weights_path, model.weights_sha256)
    return model


def weights_check(path: str | Path, sha256: str) -> dict | None:
    """The held-out sync check stored beside an expert (``<weights>.json``, see
    syncnet_train.check_sync), if it belongs to these exact weights; else None."""
    import json

    side = Path(str(path) + ".json")
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("sha256") != sha256:
        log.warning("%s describes other weights than %s (sha256 differs): its check is ignored", side, path)
        return None
    return meta.get("check")


# --------------------------------------------------------------------------- audio


def to_int16(wav: np.ndarray) -> np.ndarray:
    """Float [-1, 1] samples as the int16 values ffmpeg's pcm_s16le writes."""
    x = np.asarray(wav, dtype=np.float64) * PROTOCOL.audio_int16_scale
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def syncnet_mfcc(wav16k: np.ndarray) -> np.ndarray:
    """(13, n_steps) MFCC at 100 Hz exactly as SyncNetInstance.evaluate computes it."""
    import python_speech_features

    wav = np.asarray(wav16k)
    if wav.ndim != 1:
        raise ValueError(f"audio must be mono (n,), got shape {wav.shape}")
    audio = wav if wav.dtype == np.int16 else to_int16(wav)
    return np.asarray(python_speech_features.mfcc(audio, PROTOCOL.sample_rate)).T.astype(np.float32)


# --------------------------------------------------------------------------- scoring


def n_windows(n_frames: int, n_samples: int) -> int:
    """syncnet_python's window count: min(frames, samples // 640) - 5."""
    return min(n_frames, math.floor(n_samples / SAMPLES_PER_FRAME)) - PROTOCOL.syncnet_window_frames


def model_device(net: nn.Module, device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else the device the model's weights are on."""
    return torch.device(device) if device is not None else next(net.parameters()).device


def pinned_cpu(device: torch.device) -> bool:
    """True where SyncNet runs on the CPU with oneDNN off, i.e. under pinned numerics (ksdiff/numerics.py)."""
    return device.type == "cpu" and not torch.backends.mkldnn.enabled


@torch.inference_mode()
def embed_video(net, crops_bgr: np.ndarray, n_win: int, batch_size: int = 32, device=None) -> torch.Tensor:
    """(n_win, D) embeddings of the 5-frame windows starting at frames 0..n_win-1, on the CPU.

    ``device``: where S runs (default: where its weights are); batches of ``batch_size`` windows.
    - CPU with oneDNN off (pinned numerics): the lip stream lowered to MKL matrix products
      (ksdiff.metrics.syncnet_lowered), 2.2x faster than ATen's slow_conv3d and as pinned.
    - CPU with oneDNN on (``numerics: fast``): S's layers with BatchNorm folded in, on channels-last maps,
      the first layer one window at a time (ksdiff.metrics.syncnet_folded).
    - A GPU: S's own forward (cuDNN) on batched windows; frames are copied to it per batch as uint8.
    """
    device = model_device(net, device)
    frames = torch.from_numpy(np.ascontiguousarray(crops_bgr))  # (T, H, W, 3) uint8
    if pinned_cpu(device):
        return LoweredLip(net).embed(frames, n_win, batch_size=batch_size)
    if device.type == "cpu":
        return FoldedLip(net).embed(frames, n_win, batch_size=batch_size)
    k = PROTOCOL.syncnet_window_frames
    layout = video_layout(device)
    channels_last(net, layout)
    out = []
    with float32_gpu():
        for i in range(0, n_win, batch_size):
            b = min(batch_size, n_win - i)
            f = frames[i : i + b + k - 1].to(device).float()  # (b+4, H, W, 3)
            # (b, 5, H, W, 3) -> (b, 3, 5, H, W) as syncnet_python slices it
            win = torch.stack([f[j : j + b] for j in range(k)], dim=1).permute(0, 4, 1, 2, 3)
            out.append(net.forward_lip(win.contiguous(memory_format=layout)).cpu())
    return torch.cat(out)


def float32_gpu():
    """cuDNN in float32 for SyncNet on a GPU: torch lets cuDNN's convolutions use TF32 (10-bit mantissas)
    by default on Ampere and later, about 1e-3 from float32; LSE keeps float32's numbers (deterministic
    algorithms too). No effect on the CPU."""
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False)


def video_layout(device: torch.device | None = None) -> torch.memory_format:
    """The memory layout of S's video windows and lip-stream weights where S's own layers run them (the
    expert's training; scoring on a GPU): channels-last (NDHWC) where oneDNN runs the convolutions on a CPU
    (its fast layout, about half the Conv3d cost), the plain layout elsewhere (a GPU's cuDNN, and ATen's
    convolutions under pinned numerics)."""
    on_cpu = device is None or torch.device(device).type == "cpu"
    return torch.channels_last_3d if on_cpu and torch.backends.mkldnn.enabled else torch.contiguous_format


def channels_last(net: nn.Module, layout: torch.memory_format | None = None) -> nn.Module:
    """Store S's lip-stream Conv3d weights in ``layout`` (default ``video_layout()``), in place."""
    for m in net.netcnnlip:
        if isinstance(m, nn.Conv3d):
            m.to(memory_format=layout or video_layout())
    return net


@torch.inference_mode()
def embed_audio(net, mfcc: np.ndarray, n_win: int, batch_size: int = 256, device=None) -> torch.Tensor:
    """(n_win, D) embeddings of the 20-step MFCC windows starting at 4 * frame, batched on S's device
    (on a CPU lowered to MKL matrix products under pinned numerics, folded for oneDNN otherwise, like the
    lip stream)."""
    p = PROTOCOL
    device = model_device(net, device)
    cc = torch.from_numpy(np.ascontiguousarray(mfcc, dtype=np.float32))
    starts = np.arange(n_win) * p.syncnet_mfcc_per_frame
    if n_win and starts[-1] + p.syncnet_mfcc_steps > cc.shape[1]:
        raise ValueError("audio shorter than the video windows it must cover")
    if device.type == "cpu":  # as embed_video's paths
        forward = LoweredAudio(net).embed if pinned_cpu(device) else FoldedAudio(net).embed
    else:
        forward = net.forward_aud
    out = []
    with float32_gpu():
        for i in range(0, n_win, batch_size):
            s = starts[i : i + batch_size]
            x = torch.stack([cc[:, j : j + p.syncnet_mfcc_steps] for j in s])[:, None]  # (b, 1, 13, 20)
            out.append(forward(x.to(device)).cpu())
    return torch.cat(out)


def lse_from_embeddings(video_emb: torch.Tensor, audio_emb: torch.Tensor, vshift: int = PROTOCOL.syncnet_vshift) -> dict:
    """syncnet_python's offset/confidence arithmetic on precomputed embeddings."""
    _, calc_pdist = _syncnet_classes()
    dists = calc_pdist(video_emb, audio_emb, vshift=vshift)
    mdist = torch.mean(torch.stack(dists, 1), 1)  # (2 vshift + 1,), index j <-> offset vshift - j
    minval, minidx = torch.min(mdist, 0)
    conf = torch.median(mdist) - minval
    offsets = np.arange(-vshift, vshift + 1)
    return {
        "lse_d": float(minval),
        "lse_c": float(conf),
        "offset": int(vshift - minidx),
        "offsets": offsets,  # ascending, -vshift..vshift
        "dists": mdist.numpy()[::-1].copy(),  # mdist at each entry of ``offsets``
        "n_windows": int(len(video_emb)),
    }


def lse(
    model: nn.Module,
    crops: np.ndarray,
    wav16k: np.ndarray,
    color: str = "rgb",
    batch_size: int = 32,
    device: str | None = None,
    vshift: int = PROTOCOL.syncnet_vshift,
    fps: float = PROTOCOL.fps,
    audio_cache: dict | None = None,
) -> dict:
    """LSE-D, LSE-C and the AV offset of one clip.

    crops: (T, 224, 224, 3) uint8 face crops at 25 fps (mouth_crops.face_crops);
    ``color`` says their channel order ('rgb' from ksdiff's readers, or
    'bgr'): SyncNet was trained on, and syncnet_python feeds, BGR.
    wav16k: mono float32 [-1, 1] (or int16) at 16 kHz, aligned with frame 0.
    Returns dict(lse_d, lse_c, offset, offsets (-15..15), dists (mdist per
    offset), n_windows). The offset follows syncnet_python's sign: > 0 when
    the audio leads the video. ``fps``: the crops' frame rate; anything but
    PROTOCOL.fps raises ValueError (frame_steps). ``device``: where SyncNet runs (default: where the
    model's weights are, see load_syncnet); windows go to it ``batch_size`` at a time. ``audio_cache``: a dict
    the caller keeps for one ``wav16k`` and ``model`` (several samples of a clip, and its recorded video), holding
    the audio embeddings by window count: the audio stream runs once per count, and its embeddings are the same
    bits as computed anew (the same windows in the same batches).
    """
    frame_steps(fps)
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"crops must be (T, H, W, 3) uint8; got {crops.shape} {crops.dtype}")
    if crops.shape[1:3] != (PROTOCOL.crop_size, PROTOCOL.crop_size):
        raise ValueError(f"crops must be {PROTOCOL.crop_size}x{PROTOCOL.crop_size} (SyncNet's fixed input); got {crops.shape[1:3]}")
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    n_win = n_windows(len(crops), len(wav16k))
    if n_win < 1:
        raise ValueError(
            f"clip too short for SyncNet: {len(crops)} frames, {len(wav16k) / PROTOCOL.sample_rate:.2f} s of audio "
            f"(need at least {PROTOCOL.syncnet_window_frames + 1} frames of both)"
        )
    gap = len(wav16k) / PROTOCOL.sample_rate - len(crops) / PROTOCOL.fps
    if abs(gap) > 0.1:  # syncnet_python warns too; the shorter stream sets the window count
        log.warning("audio and video lengths differ by %.2f s; scoring the first %d windows", gap, n_win)
    bgr = swap_rb(crops) if color == "rgb" else crops
    was_training = model.training
    model.eval()
    try:
        net = model.to(model_device(model, device))
        video_emb = embed_video(net, bgr, n_win, batch_size=batch_size)
        audio_emb = audio_cache.get(n_win) if audio_cache is not None else None
        if audio_emb is None:
            audio_emb = embed_audio(net, syncnet_mfcc(wav16k), n_win)
            if audio_cache is not None:
                audio_cache[n_win] = audio_emb
    finally:
        model.train(was_training)
    return lse_from_embeddings(video_emb, audio_emb, vshift=vshift)
