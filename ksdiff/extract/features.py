"""Speech-features step: per-frame speech features + prosody of one clip ('features' table).

Kinds (config ``features.kind``):

- ``logmel`` (default): log-mel spectrogram, ``features.n_mels`` bands, 25 ms
  Hann window, hop = sample_rate / ``features.rate_hz`` (320 samples = 20 ms
  at 16 kHz and 50 Hz), power spectrum through librosa's (Slaney) mel filter
  bank, then log(mel + 1e-6). torch.stft does the STFT; librosa only supplies
  the filter bank (torchaudio is not available). Frames are centred: frame i
  is centred on sample i * hop, so a clip of d seconds has 1 + floor(d * rate)
  frames.
- ``wav2vec2`` / ``hubert``: the last hidden state of a frozen pretrained
  transformers model loaded from the local directory ``features.pretrained_dir``
  (never downloaded). Frame i covers the model's receptive field (400 samples
  for the wav2vec 2.0 / HuBERT convolution stack) starting at sample
  i * stride (320), so its centre is at i / 50 s + 12.5 ms. The checkpoint's
  path and the sha256 of its weight files go into the attrs, so a later step
  can verify it is using the same encoder.

``time_s`` is always the centre of the frame's analysis window, and the
prosody columns (F0, voicing, energy; ksdiff.extract.prosody) are computed on
exactly that grid.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from ksdiff.extract import prosody
from ksdiff.io.audio import read_wav
from ksdiff.io.files import sha256_file
from ksdiff.io.parquet import OK, SKIPPED, read_status, write_failure, write_table
from ksdiff.numba_cache import import_librosa

log = logging.getLogger(__name__)

WINDOW_S = 0.025  # log-mel analysis window: the usual 25 ms speech frame
LOG_EPS = 1e-6  # log(mel + eps): floor for digital silence, ~ -138 dB of power
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")  # torch weight files of a checkpoint
MODEL_TYPES = {"wav2vec2": ("wav2vec2",), "hubert": ("hubert",)}  # kind -> accepted config.model_type prefixes


class PretrainedUnavailable(RuntimeError):
    """The pretrained speech encoder cannot be loaded from the configured local directory."""


class TooShort(ValueError):
    """The clip is too short for the feature extractor (recorded as a clip failure)."""


# --- log-mel ----------------------------------------------------------------------------


def logmel(x: np.ndarray, sr: int, n_mels: int, rate_hz: float) -> np.ndarray:
    """(frames, n_mels) float32 log-mel spectrogram, frame i centred on sample i * hop."""
    librosa = import_librosa()
    import torch

    hop = int(round(sr / rate_hz))
    win = int(round(WINDOW_S * sr))
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if len(x) <= win // 2:  # reflect padding needs more than half a window
        x = torch.nn.functional.pad(x, (0, win // 2 + 1 - len(x)))
    spec = torch.stft(x, n_fft=win, hop_length=hop, win_length=win, window=torch.hann_window(win),
                      center=True, pad_mode="reflect", return_complex=True)
    power = spec.abs() ** 2  # (freq, frames)
    fb = torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=win, n_mels=n_mels)).float()
    return torch.log(fb @ power + LOG_EPS).T.numpy().astype(np.float32)


# --- pretrained encoders ----------------------------------------------------------------




def checkpoint_info(model_dir: str | Path) -> dict:
    """{'path': ..., 'sha256': {weight file: hash}} of a local transformers checkpoint."""
    d = Path(model_dir)
    files = sorted({p for pat in WEIGHT_PATTERNS for p in d.glob(pat)})
    if not files:
        raise PretrainedUnavailable(f"no weight file ({', '.join(WEIGHT_PATTERNS)}) in {d}")
    return {"path": str(d.resolve()), "sha256": {p.name: sha256_file(p) for p in files}}


@functools.lru_cache(maxsize=2)
def load_pretrained(model_dir: str, kind: str):
    """(model in eval mode with frozen weights, feature extractor, checkpoint info)."""
    if not model_dir:
        raise PretrainedUnavailable(
            f"features.kind '{kind}' needs features.pretrained_dir: a local transformers checkpoint "
            "directory (config.json, weights, preprocessor_config.json); ksdiff never downloads models"
        )
    d = Path(model_dir).expanduser()
    if not d.is_dir():
        raise PretrainedUnavailable(f"pretrained speech encoder directory not found: {d}")
    for need in ("config.json", "preprocessor_config.json"):
        if not (d / need).is_file():
            raise PretrainedUnavailable(f"{d} is not a complete transformers checkpoint: {need} is missing")
    info = checkpoint_info(d)
    from ksdiff.metrics.tv_compat import import_torchvision  # torch: only for a pretrained encoder

    import_torchvision()  # transformers imports an installed torchvision; see ksdiff.metrics.tv_compat
    from transformers import AutoFeatureExtractor, AutoModel

    model = AutoModel.from_pretrained(str(d), local_files_only=True)
    mtype = model.config.model_type
    if not mtype.startswith(MODEL_TYPES[kind]):
        raise PretrainedUnavailable(f"features.kind is '{kind}' but {d} holds a '{mtype}' model")
    model.eval()
    model.requires_grad_(False)
    fe = AutoFeatureExtractor.from_pretrained(str(d), local_files_only=True)
    info["model_type"] = mtype
    return model, fe, info


def conv_geometry(model_config) -> tuple[int, int]:
    """(stride, receptive field) in samples of the wav2vec2/HuBERT convolutional front end."""
    stride, field = 1, 1
    for k, s in zip(model_config.conv_kernel, model_config.conv_stride):
        field += (k - 1) * stride
        stride *= s
    return stride, field


def pretrained_features(x: np.ndarray, sr: int, model_dir: str, kind: str, rate_hz: float):
    """(features (frames, dim), stride, receptive field, checkpoint info)."""
    import torch

    model, fe, info = load_pretrained(model_dir, kind)
    stride, field = conv_geometry(model.config)
    if getattr(fe, "sampling_rate", sr) != sr:
        raise PretrainedUnavailable(f"{model_dir} expects {fe.sampling_rate} Hz audio, the workflow gives {sr} Hz")
    if abs(sr / stride - rate_hz) > 1e-6:
        raise PretrainedUnavailable(
            f"{model_dir} gives {sr / stride:g} frames/s at {sr} Hz but features.rate_hz is {rate_hz:g}"
        )
    if len(x) < field:
        raise TooShort(f"audio of {len(x)} samples is shorter than the encoder's {field}-sample receptive field")
    inputs = fe(np.asarray(x, dtype=np.float32), sampling_rate=sr, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(inputs["input_values"]).last_hidden_state[0]
    return hidden.float().numpy(), stride, field, info


# --- the step ---------------------------------------------------------------------------


def compute(x: np.ndarray, sr: int, fcfg: dict) -> tuple[dict, dict]:
    """Feature + prosody columns and attrs of a mono signal (see module docstring)."""
    kind, rate = fcfg["kind"], float(fcfg["rate_hz"])
    checkpoint = None
    if kind == "logmel":
        feat = logmel(x, sr, int(fcfg["n_mels"]), rate)
        hop, win, offset = int(round(sr / rate)), int(round(WINDOW_S * sr)), 0
    else:
        feat, hop, win, checkpoint = pretrained_features(x, sr, fcfg["pretrained_dir"], kind, rate)
        offset = win // 2
    n = len(feat)
    pros = prosody.prosody(x, sr, hop, win, n, float(fcfg["f0_min_hz"]), float(fcfg["f0_max_hz"]), offset)
    cols = {
        "frame": np.arange(n, dtype=np.int32),
        "time_s": (np.arange(n) * hop + offset) / sr,
        "feat": list(feat),
        **pros,
    }
    attrs = {
        "kind": kind,
        "rate_hz": sr / hop,
        "dim": int(feat.shape[1]),
        "sample_rate": sr,
        "checkpoint": checkpoint,
        "hop_samples": hop,
        "window_samples": win,
        "first_frame_centre_s": offset / sr,
        "f0": {"method": "librosa.pyin", "fmin_hz": fcfg["f0_min_hz"], "fmax_hz": fcfg["f0_max_hz"],
               "frame_length": prosody.f0_frame_length(sr, float(fcfg["f0_min_hz"]))},
        "energy": f"RMS over {win} samples centred on the frame, dBFS, floored at {prosody.ENERGY_FLOOR_DB:g}",
    }
    return cols, attrs


def extract_features(cfg: dict, audio: str, out: str) -> None:
    """Write the 'features' table of the clip whose audio-step table is ``audio``
    (the 16 kHz WAV lies beside it, same stem). Skipped when the audio step did
    not succeed; failed, with the reason, when the clip is too short for the
    encoder. A missing or mismatched pretrained checkpoint raises
    PretrainedUnavailable: a configuration error, not bad input."""
    status, reason = read_status(audio)
    if status != OK:
        write_failure(out, "features", f"audio: {reason}", status=SKIPPED)
        return
    x, sr = read_wav(Path(audio).with_suffix(".wav"))
    if sr != cfg["sample_rate"]:
        raise ValueError(f"{audio}: WAV at {sr} Hz, config sample_rate is {cfg['sample_rate']}; rerun the audio step")
    try:
        cols, attrs = compute(x, sr, cfg["features"])
    except TooShort as e:
        write_failure(out, "features", str(e))
        return
    attrs["clip_id"] = Path(audio).stem
    write_table(out, "features", cols, attrs=attrs)
    log.info("%s: %d %s frames of dim %d", Path(audio).stem, len(cols["frame"]), attrs["kind"], attrs["dim"])
