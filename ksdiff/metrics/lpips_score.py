"""LPIPS (Zhang et al. 2018) with the lpips package: its v0.1 linear layers and an AlexNet backbone from a file.

The network is ``lpips.LPIPS(net='alex', version='0.1')`` itself. Its linear calibration layers ship inside
the lpips wheel (lpips/weights/v0.1/alex.pth, hashed into the table's attrs like any weights); its AlexNet
backbone is torchvision's ImageNet AlexNet, which lpips would download through torchvision: here it is the
file the user configured (``eval.lpips_alexnet``: torchvision's ``alexnet-owt-7be5be79.pth``), loaded into
the package's own backbone slices (features 0-1, 2-4, 5-7, 8-9, 10-11) after the model is built with
``pnet_rand=True`` (no download). Frames go in as lpips' own ``im2tensor`` scales them (RGB uint8 / 127.5 - 1),
whole frames at their size; the distance of a frame pair is the network's output, spatially averaged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ksdiff.io.files import sha256_file
from ksdiff.metrics.tv_compat import import_torchvision
from ksdiff.metrics.weights import Weights

tv = import_torchvision()  # lpips builds its backbone from torchvision's AlexNet (see ksdiff.metrics.tv_compat)
import lpips  # noqa: E402

NET = "alex"
VERSION = "0.1"
BATCH = 8  # frame pairs per forward pass (no batch statistics: no effect on values)


def linear_weights() -> Path:
    """The lpips wheel's own linear-layer file for NET (what LPIPS(pretrained=True) loads)."""
    return Path(lpips.__file__).parent / "weights" / f"v{VERSION}" / f"{NET}.pth"


def load_lpips(backbone: Weights) -> lpips.LPIPS:
    """lpips.LPIPS(alex, v0.1) with the package's linear layers and the configured AlexNet backbone."""
    model = lpips.LPIPS(pretrained=True, net=NET, version=VERSION, pnet_rand=True, verbose=False)
    alexnet = tv.models.alexnet()
    alexnet.load_state_dict(torch.load(backbone.path, map_location="cpu", weights_only=True))
    features = alexnet.features.state_dict()
    # the package's slices keep torchvision's feature indices as module names: slice2.3.weight is features.3.weight
    model.net.load_state_dict({k: features[k.split(".", 1)[1]] for k in model.net.state_dict()})
    return model.eval()


def describe(model: lpips.LPIPS, backbone: Weights) -> dict:
    return {**backbone.describe(), "net": NET, "version": VERSION, "linear_layers": str(linear_weights()),
            "linear_layers_sha256": sha256_file(linear_weights())}


def im2tensor(frames: np.ndarray) -> torch.Tensor:
    """lpips.im2tensor (image / (255 / 2) - 1, NCHW float32) for a stack of (N, H, W, 3) uint8 frames."""
    return torch.Tensor((np.asarray(frames) / (255.0 / 2.0) - 1.0).transpose(0, 3, 1, 2))


def lpips_frames(model: lpips.LPIPS, a: np.ndarray, b: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """(N,) LPIPS distances of paired (N, H, W, 3) RGB uint8 frames."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"LPIPS needs two (N, H, W, 3) frame stacks of one shape, got {a.shape} and {b.shape}")
    out = []
    with torch.no_grad():
        for i in range(0, len(a), batch):
            out.append(model(im2tensor(a[i:i + batch]), im2tensor(b[i:i + batch])).flatten().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)
