"""SyncNet's lip stream as explicit im2col + matrix products: the CPU path when oneDNN is off (pinned numerics).

Why hand-written: with ``numerics: pinned`` (ksdiff/numerics.py) oneDNN is off, and torch then runs S's
Conv3d layers as ATen's ``slow_conv3d`` (a volume-to-columns copy and one GEMM per window), about 2.5x
slower than oneDNN on this CPU (benchmarks/README.md, "LSE on the CPU"). A 2-D rewrite does not help:
ATen sends 2-D convolutions to NNPACK, whose blocking follows the processor's cache sizes (the reason
oneDNN is off), or with NNPACK off to ``slow_conv2d``, as slow as ``slow_conv3d``. No library offers a
pinned-safe fast convolution on the CPU, so the lip stream is lowered here to the operations pinned
numerics does promise: MKL matrix products (same bits on every AVX2 CPU under ``MKL_CBWR``) and copies,
additions and maxima, whose result does not depend on the vector width.

What it computes is S.forward_lip of every 5-frame window, equal within ~1e-6 relative (another
summation order, and BatchNorm folded into the weights; tests/test_syncnet_lowered.py):

- The first layer (3 -> 96 channels, a 5x7x7 kernel over the window's 5 frames, stride 1x2x2) is one
  product per *frame*: the frame's 7x7 patches (built once, although five windows use the frame) times
  the weights' five temporal slices side by side; window i sums slice t of frame i + t, t = 0..4 in that
  order. No 5x window tensor and no per-window patch matrix is built.
- Every later layer has a temporal kernel of 1 and runs on a batch of windows as 2-D channels-last
  (NHWC) patches (``as_strided`` over the padded map) times the weights, with the folded BatchNorm as
  the product's bias, then ReLU in place; max pooling is ATen's channels-last ``max_pool2d`` (exact).
- The fully connected head is S's own ``netfclip``.

The lead may adopt the same lowering for the expert's training forward (ksdiff/metrics/syncnet_train.py);
it is inference-only here (BatchNorm folded with its running statistics).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F


def _pair(v) -> tuple[int, int]:
    """The spatial (H, W) part of a 3-D layer's kernel/stride/padding."""
    return (v, v) if isinstance(v, int) else (int(v[1]), int(v[2]))


class LoweredLip:
    """S's lip stream (eval mode) lowered to matrix products; built from a model's current weights."""

    @torch.no_grad()
    def __init__(self, net: nn.Module):
        self.layers: list[tuple] = []
        mods = list(net.netcnnlip)
        i = 0
        while i < len(mods):
            m = mods[i]
            if isinstance(m, nn.Conv3d):
                bn, relu = mods[i + 1], mods[i + 2]
                if not isinstance(bn, nn.BatchNorm3d) or not isinstance(relu, nn.ReLU):
                    raise ValueError(f"lip stream layer {i}: expected Conv3d, BatchNorm3d, ReLU; got {mods[i:i + 3]}")
                alpha = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                w = m.weight * alpha[:, None, None, None, None]  # (out, in, t, kh, kw)
                bias = m.bias * alpha + (bn.bias - bn.running_mean * alpha)
                t_pad = m.padding if isinstance(m.padding, int) else m.padding[0]
                if t_pad or m.stride[0] != 1 or (self.layers and w.shape[2] != 1):
                    raise ValueError(f"lip stream layer {i}: only the first layer may span frames, unpadded")
                if self.layers:  # (t=1, kh, kw, in) x out: rows in channels-last patch order
                    wm = w.permute(2, 3, 4, 1, 0).reshape(-1, w.shape[0])
                else:  # (kh, kw, in) x (t, out): one product per frame gives every temporal slice
                    wm = w.permute(3, 4, 1, 2, 0).reshape(-1, w.shape[2] * w.shape[0])
                self.layers.append(("conv", wm.contiguous(), bias.contiguous(), int(w.shape[2]),
                                    (int(w.shape[3]), int(w.shape[4])), _pair(m.stride), _pair(m.padding)))
                i += 3
            elif isinstance(m, nn.MaxPool3d):
                self.layers.append(("pool", _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)))
                i += 1
            else:
                raise ValueError(f"lip stream layer {i}: {type(m).__name__} is not lowered")
        if self.layers[0][0] != "conv" or self.layers[0][6] != (0, 0) or self.layers[1][0] != "pool":
            raise ValueError("lip stream must start with an unpadded Conv3d, BatchNorm3d, ReLU, MaxPool3d")
        self.fc = net.netfclip

    @property
    def window(self) -> int:
        return self.layers[0][3]

    def first_layer(self, frames: torch.Tensor, n_win: int) -> Iterator[torch.Tensor]:
        """Each window's first layer (conv, BatchNorm, ReLU, max pool) as a (1, H', W', 96) NHWC map, in
        window order; ``frames``: (T, H, W, 3) uint8 or float, BGR, contiguous."""
        _, wm, bias, kt, (kh, kw), (sh, sw), _ = self.layers[0]
        n_frames, h, w, c = frames.shape
        ho, wo, out = (h - kh) // sh + 1, (w - kw) // sw + 1, bias.shape[0]
        cols = torch.empty(ho, wo, kh, kw * c)
        s_f, s_h, s_w, _ = frames.stride()
        open_windows: dict[int, torch.Tensor] = {}
        for f in range(min(n_frames, n_win + kt - 1)):
            # the frame's patches: each (kw, c) run is contiguous in an HWC frame; uint8 -> float here
            cols.copy_(frames.as_strided((ho, wo, kh, kw * c), (sh * s_h, sw * s_w, s_h, 1),
                                         frames.storage_offset() + f * s_f))
            y = (cols.view(ho * wo, -1) @ wm).view(ho * wo, kt, out)
            for t in range(kt):
                i = f - t
                if 0 <= i < n_win:
                    if t == 0:
                        open_windows[i] = y[:, 0].clone()
                    else:
                        open_windows[i] += y[:, t]
            i = f - kt + 1
            if i >= 0:
                a = open_windows.pop(i)
                a += bias
                yield self.pool(a.relu_().view(1, ho, wo, out), self.layers[1])

    @staticmethod
    def pool(x: torch.Tensor, layer: tuple) -> torch.Tensor:
        _, k, s, p = layer
        return F.max_pool2d(x.permute(0, 3, 1, 2), k, s, p).permute(0, 2, 3, 1)  # channels-last in and out

    @staticmethod
    def conv(x: torch.Tensor, layer: tuple) -> torch.Tensor:
        _, wm, bias, _, (kh, kw), (sh, sw), (ph, pw) = layer
        x = F.pad(x, (0, 0, pw, pw, ph, ph)) if ph or pw else x.contiguous()
        b, h, w, c = x.shape
        ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
        s_b, s_h, s_w, s_c = x.stride()
        cols = x.as_strided((b, ho, wo, kh, kw, c), (s_b, sh * s_h, sw * s_w, s_h, s_w, s_c)).reshape(b * ho * wo, -1)
        return torch.addmm(bias, cols, wm).view(b, ho, wo, -1).relu_()

    def rest(self, h: torch.Tensor) -> torch.Tensor:
        """Layers after the first, on a batch of first-layer maps (B, H', W', C) -> (B, D) embeddings."""
        for layer in self.layers[2:]:
            h = self.pool(h, layer) if layer[0] == "pool" else self.conv(h, layer)
        return self.fc(h.reshape(h.shape[0], -1))

    @torch.inference_mode()
    def embed(self, frames: torch.Tensor, n_win: int, batch_size: int = 32) -> torch.Tensor:
        """(n_win, D) embeddings of the windows starting at frames 0..n_win-1 of ``frames`` (T, H, W, 3) BGR."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3); got {tuple(frames.shape)}")
        if n_win < 1 or n_win + self.window - 1 > len(frames):
            raise ValueError(f"{n_win} windows of {self.window} frames need {n_win + self.window - 1} frames; "
                             f"got {len(frames)}")
        frames = frames.contiguous()
        out, batch = [], []
        for m in self.first_layer(frames, n_win):
            batch.append(m)
            if len(batch) == batch_size:
                out.append(self.rest(torch.cat(batch)))
                batch = []
        if batch:
            out.append(self.rest(torch.cat(batch)))
        return torch.cat(out)
