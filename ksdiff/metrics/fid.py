"""FID's features: pytorch-fid's InceptionV3 (pool3, 2048 dimensions) on video frames, weights from a file.

The network is pytorch-fid's own ``InceptionV3([3])`` (FID's patched Inception blocks, resize to 299x299
bilinear, inputs scaled to [-1, 1]), built with the weights file the user configured
(``eval.fid_inception``: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``) instead of the download
pytorch-fid would start: its weight loader is pointed at that file while the model is built, nothing else of
pytorch-fid changes. Frames go in as pytorch-fid's ``get_activations`` feeds its PNG files (RGB uint8 ->
float32 / 255 in contiguous NCHW, torchvision's ToTensor), batch by batch. FID itself is the Frechet distance of the two
Gaussians (ksdiff.metrics.efid.frechet_distance: pytorch-fid's arithmetic, covariance ddof 1), set-level
over a method's test clips like E-FID.
"""
from __future__ import annotations

from unittest import mock

import numpy as np
import torch

from ksdiff.metrics.tv_compat import import_torchvision
from ksdiff.metrics.weights import Weights

import_torchvision()  # pytorch-fid imports torchvision's Inception3 (see ksdiff.metrics.tv_compat)
from pytorch_fid import inception as pytorch_fid_inception  # noqa: E402

DIMS = 2048  # pool3: the only dimension FID tables report
BATCH = 50  # pytorch-fid's default batch size (no effect on the values: eval mode, no batch statistics)


def load_inception(weights: Weights) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 (pool3) with the configured FID Inception weights, in eval mode."""
    state = torch.load(weights.path, map_location="cpu", weights_only=True)
    with mock.patch.object(pytorch_fid_inception, "load_state_dict_from_url", lambda *a, **k: state):
        model = pytorch_fid_inception.InceptionV3([pytorch_fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[DIMS]])
    return model.eval()


def inception_features(model: torch.nn.Module, frames: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """(N, 2048) pool3 activations of (N, H, W, 3) RGB uint8 frames, float64 as pytorch-fid keeps them."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"FID needs (N, H, W, 3) uint8 RGB frames, got {frames.dtype} {frames.shape}")
    out = np.empty((len(frames), DIMS))
    with torch.no_grad():
        for i in range(0, len(frames), batch):
            x = torch.from_numpy(np.ascontiguousarray(frames[i:i + batch])).permute(0, 3, 1, 2).contiguous().float().div(255)
            out[i:i + len(x)] = model(x)[0].squeeze(3).squeeze(2).numpy()
    return out
