"""PSNR and SSIM of a video against its reference, frame by frame (scikit-image), and their clip values.

Both compare frame t of the method with frame t of the clip's recorded video, uint8 RGB, data range 255,
as the ViCo challenge's evaluations/compute_base_metrics.py does (there with piq); the clip's value is the
mean over its frames of the per-frame value, as that script averages per-frame values.

PSNR: skimage.metrics.peak_signal_noise_ratio(ref, pred, data_range=255) = 10 log10(255^2 / MSE) over all
pixels and the three channels; a frame equal to its reference has MSE 0 and PSNR +inf (piq instead adds 1e-8
to the MSE, capping at 80 dB on [0, 1] data): ksdiff keeps the infinity and says so rather than pick a cap.
SSIM: skimage.metrics.structural_similarity with Wang et al. (2004)'s settings, a Gaussian window of sigma 1.5
(gaussian_weights=True, truncate 3.5: 11 x 11 like piq's and Wang's kernel), population statistics
(use_sample_covariance=False), K1 0.01, K2 0.03, computed per channel and averaged over R, G and B. Unlike
piq's ssim (downsample=True) and Wang's ssim.m, frames are not downsampled first: at 256 px the two agree, on
larger frames piq's value is that of the frames average-pooled by round(side / 256).
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5


def _check(pred: np.ndarray, ref: np.ndarray) -> None:
    if pred.shape != ref.shape or pred.ndim != 4 or pred.shape[-1] != 3:
        raise ValueError(f"frames {pred.shape} against reference {ref.shape}: need equal (T, H, W, 3) stacks")


def psnr_frames(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(T,) PSNR in dB of each frame of ``pred`` against the same frame of ``ref`` ((T, H, W, 3) uint8)."""
    _check(pred, ref)
    with np.errstate(divide="ignore"):  # an identical frame: MSE 0, PSNR +inf
        return np.array([peak_signal_noise_ratio(r, p, data_range=DATA_RANGE) for p, r in zip(pred, ref)])


def ssim_frames(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(T,) SSIM of each frame of ``pred`` against the same frame of ``ref`` ((T, H, W, 3) uint8)."""
    _check(pred, ref)
    return np.array([structural_similarity(r, p, data_range=DATA_RANGE, channel_axis=-1, gaussian_weights=True,
                                           sigma=SSIM_SIGMA, use_sample_covariance=False)
                     for p, r in zip(pred, ref)])
