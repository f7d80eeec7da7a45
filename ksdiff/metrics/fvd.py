"""FVD's features: the I3D TorchScript model of StyleGAN-V (and DisCo) on 16-frame windows, and its distance.

The detector is StyleGAN-V's ``i3d_torchscript.pt`` (the TF-Hub I3D of Unterthiner et al.'s FVD, Kinetics-400,
as TorchScript), loaded from the file the user configured (``eval.fvd_i3d``), never downloaded. It is called
exactly as StyleGAN-V's src/metrics/frechet_video_distance.py calls it: a uint8 batch shaped
(batch, 3, 16, H, W) with ``rescale=True, resize=True, return_features=True`` (the model scales to [-1, 1]
and resizes to 224 x 224 itself) -> 400 features per window. StyleGAN-V's fvd2048_16f draws 16-frame windows
at random offsets; ksdiff takes every non-overlapping 16-frame window from frame 0 on (floor(T/16) per
video; a shorter video gives none), so the value does not depend on a seed.

The distance is StyleGAN-V's: mean and covariance of the features with the covariance divided by N
(FeatureStats.get_mean_cov: raw second moment minus the outer product of the mean), then
``||mu_g - mu_r||^2 + tr(S_g + S_r - 2 sqrtm(S_g S_r))`` with scipy's sqrtm and the real part taken, no eps
fallback (unlike pytorch-fid's FID). Set-level over a method's test clips, like FID and E-FID.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from ksdiff.metrics.weights import Weights

WINDOW = 16  # frames per I3D clip (StyleGAN-V's fvd2048_16f)
FEATURES = 400
BATCH = 4  # windows per forward pass (the model has no batch statistics: no effect on values)
DETECTOR_KWARGS = dict(rescale=True, resize=True, return_features=True)  # StyleGAN-V's, verbatim


def load_i3d(weights: Weights) -> torch.jit.ScriptModule:
    return torch.jit.load(weights.path, map_location="cpu").eval()


def windows(frames: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """(n, 3, window, H, W) uint8: the non-overlapping windows of (T, H, W, 3) RGB frames from frame 0."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"FVD needs (T, H, W, 3) uint8 RGB frames, got {frames.dtype} {frames.shape}")
    n = len(frames) // window
    return frames[: n * window].reshape(n, window, *frames.shape[1:]).transpose(0, 4, 1, 2, 3)


def i3d_features(model, frames: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """(floor(T/16), 400) I3D features of a video's (T, H, W, 3) uint8 frames, float32 as StyleGAN-V keeps them."""
    w = windows(frames)
    out = []
    with torch.no_grad():
        for i in range(0, len(w), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(w[i:i + batch])), **DETECTOR_KWARGS).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, FEATURES), np.float32)


def fvd_distance(mu_gen: np.ndarray, sigma_gen: np.ndarray, mu_real: np.ndarray, sigma_real: np.ndarray) -> float:
    """StyleGAN-V's compute_fvd arithmetic on two (mean, covariance ddof 0) pairs."""
    m = np.square(mu_gen - mu_real).sum()
    s = scipy.linalg.sqrtm(np.dot(sigma_gen, sigma_real))
    return float(np.real(m + np.trace(sigma_gen + sigma_real - s * 2)))
