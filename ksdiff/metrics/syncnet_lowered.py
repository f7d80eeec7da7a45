"""SyncNet's two streams as explicit im2col + matrix products: the CPU path when oneDNN is off (pinned numerics).

Why hand-written: with ``numerics: pinned`` (ksdiff/numerics.py) oneDNN and NNPACK are off, and torch then
runs S's convolutions as ATen's ``slow_conv3d`` / ``slow_conv2d`` (a patch copy and one small GEMM per
window): the lip stream took 104 ms of CPU per window on one core against oneDNN's 39 (benchmarks/README.md,
"LSE on the CPU"). A 2-D rewrite of S does not help (``slow_conv2d`` is as slow). No library offers a
pinned-safe fast convolution on the CPU, so the streams are lowered here to the operations pinned numerics
does promise: MKL matrix products (same bits on every AVX2 CPU under ``MKL_CBWR``) and copies, additions
and maxima, whose results do not depend on the vector width. Measured (benchmarks/README.md, 6 Dec): lip
stream 43.0 ms per window against slow_conv3d's 93.1 (2.2x), 80% of this core's GEMM peak.

What it computes is S.forward_lip of every 5-frame window (and S.forward_aud of every MFCC window), equal
within ~1e-6 relative (another summation order, and BatchNorm folded into the weights;
tests/test_syncnet_lowered.py):

- The lip stream's first layer (3 -> 96 channels, a 5x7x7 kernel over the window's 5 frames, stride
  1x2x2) sums five products per window, frame i + t's 7x7 patches times the kernel's temporal slice t,
  t = 0..4 in that order, each added by the product itself (``addmm_``). A frame's patches are built once
  (five windows use them); no 5x window tensor and no per-window patch matrix is built. One product per
  frame against the five slices side by side, then four strided additions per window, did the same work
  a third slower (the additions stream 23 MB per frame through memory).
- Every later layer (and every audio layer) has a temporal kernel of 1 and runs on channels-last (NHWC)
  maps: its patches copied from a 5-D view of the padded map whose innermost run, kw x channels, is
  contiguous (ATen copies a 6-D view with kw and channels apart 17x slower), times the weights, with the
  folded BatchNorm as the product's bias, then ReLU in place. The patches of a few windows at a time
  (``ROWS`` output positions) are copied into one reused buffer and multiplied, so they stay in the cache:
  one 32-window patch matrix of the second lip layer was 208 MB. Max pooling is ATen's channels-last
  ``max_pool2d`` (exact).
- The fully connected heads are S's own ``netfclip`` / ``netfcaud``.

The results depend on the batch size (MKL blocks a product by its rows; the last layers multiply the whole
batch), so scoring keeps its batch sizes fixed. The lead may adopt the same lowering for the expert's
training forward (ksdiff/metrics/syncnet_train.py); here it is inference only (BatchNorm folded with its
running statistics).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F


def spatial(v) -> tuple[int, int]:
    """The spatial (H, W) part of a 2-D or 3-D layer's kernel/stride/padding."""
    if isinstance(v, int):
        return v, v
    return (int(v[-2]), int(v[-1]))


CONV, BN, POOL = (nn.Conv2d, nn.Conv3d), (nn.BatchNorm2d, nn.BatchNorm3d), (nn.MaxPool2d, nn.MaxPool3d)


def fold_batchnorm(conv: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of ``conv`` followed by ``bn`` in eval mode (its running statistics) as one convolution:
    the weight scaled per output channel, in ``conv.weight``'s shape."""
    # 1 / sqrt as BatchNorm computes it (ATen's rsqrt is that): torch.sqrt on the CPU is MKL's, which differs
    # between processor makers (ksdiff.mkl_dispatch)
    alpha = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    w = conv.weight * alpha.view(-1, *([1] * (conv.weight.ndim - 1)))
    return w, conv.bias * alpha + (bn.bias - bn.running_mean * alpha)


@torch.no_grad()
def fold_stream(seq: nn.Sequential, conv_step: Callable, first_spans_frames: bool = False) -> list[tuple]:
    """A stream of S (Conv, BatchNorm, ReLU triples and max pools) as a list of steps: ``conv_step(conv,
    weight, bias, spans)`` for each triple, BatchNorm folded into the weight (out, in, t, kh, kw), and
    ('pool', kernel, stride, padding). Checked: only the first layer may span frames, and only if
    ``first_spans_frames`` (``spans``: it does); no convolution is padded or strided in time, or grouped."""
    steps: list[tuple] = []
    mods = list(seq)
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, CONV):
            bn, relu = mods[i + 1], mods[i + 2]
            if not isinstance(bn, BN) or not isinstance(relu, nn.ReLU):
                raise ValueError(f"layer {i}: expected Conv, BatchNorm, ReLU; got {mods[i:i + 3]}")
            w, bias = fold_batchnorm(m, bn)
            w = w if w.ndim == 5 else w[:, :, None]  # (out, in, t, kh, kw)
            t_pad = 0 if m.weight.ndim == 4 else m.padding if isinstance(m.padding, int) else m.padding[0]
            t_stride = 1 if m.weight.ndim == 4 else m.stride[0]
            spans = first_spans_frames and i == 0
            if t_pad or t_stride != 1 or (w.shape[2] != 1 and not spans) or m.groups != 1:
                raise ValueError(f"layer {i}: only the first convolution may span frames, unpadded")
            steps.append(conv_step(m, w, bias, spans))
            i += 3
        elif isinstance(m, POOL):
            steps.append(("pool", spatial(m.kernel_size), spatial(m.stride), spatial(m.padding)))
            i += 1
        else:
            raise ValueError(f"layer {i}: {type(m).__name__} is not supported")
    return steps


def lowered_layers(seq: nn.Sequential, first_spans_frames: bool = False) -> list[tuple]:
    """A stream of S as ('conv', weights, bias, frames, kernel, stride, padding) and ('pool', kernel, stride,
    padding) steps on channels-last maps, BatchNorm folded into the weights (``fold_stream``). Only the first
    convolution may span frames (``first_spans_frames``: its weights are laid out t x (kh, kw, in) x out, one
    matrix per temporal slice); every other is (kh, kw, in) x out."""

    def conv_step(m, w, bias, spans):
        if spans:  # one (patch, out) matrix per temporal slice
            wm = w.permute(2, 3, 4, 1, 0).reshape(w.shape[2], -1, w.shape[0])
        else:  # rows in channels-last patch order
            wm = w.permute(2, 3, 4, 1, 0).reshape(-1, w.shape[0])
        return ("conv", wm.contiguous(), bias.contiguous(), int(w.shape[2]), (int(w.shape[3]), int(w.shape[4])),
                spatial(m.stride), spatial(m.padding))

    return fold_stream(seq, conv_step, first_spans_frames)


def pool(x: torch.Tensor, layer: tuple) -> torch.Tensor:
    _, k, s, p = layer
    if k == (1, 1) and s == (1, 1):
        return x  # S's audio stream has a 1x1 max pool: the identity
    return F.max_pool2d(x.permute(0, 3, 1, 2), k, s, p).permute(0, 2, 3, 1)  # channels-last in and out


ROWS = 1024  # output positions per product in ``conv``: a few windows' patches, small enough for the cache


def conv(x: torch.Tensor, layer: tuple) -> torch.Tensor:
    _, wm, bias, _, (kh, kw), (sh, sw), (ph, pw) = layer
    x = F.pad(x, (0, 0, pw, pw, ph, ph)) if ph or pw else x.contiguous()
    b, h, w, c = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    s_b, s_h, s_w, _ = x.stride()  # contiguous NHWC: s_w == c, so a (kw, c) run is contiguous
    patches = x.as_strided((b, ho, wo, kh, kw * c), (s_b, sh * s_h, sw * s_w, s_h, 1))
    out = torch.empty(b, ho * wo, wm.shape[1])
    step = max(1, ROWS // (ho * wo))  # windows per product
    cols = torch.empty(min(step, b), ho, wo, kh, kw * c)
    for i in range(0, b, step):
        n = min(step, b - i)
        cols[:n].copy_(patches[i:i + n])
        torch.addmm(bias, cols[:n].view(n * ho * wo, -1), wm, out=out[i:i + n].view(n * ho * wo, -1))
    return out.view(b, ho, wo, -1).relu_()


def run(h: torch.Tensor, layers: list[tuple]) -> torch.Tensor:
    """Channels-last maps (B, H, W, C) through ``layers``."""
    for layer in layers:
        h = pool(h, layer) if layer[0] == "pool" else conv(h, layer)
    return h


class LoweredAudio:
    """S's audio stream (eval mode) lowered the same way: MFCC windows (B, 1, 13, 20) -> (B, D)."""

    def __init__(self, net: nn.Module):
        self.layers, self.fc = lowered_layers(net.netcnnaud), net.netfcaud

    @torch.inference_mode()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = run(x.permute(0, 2, 3, 1), self.layers)
        return self.fc(h.reshape(h.shape[0], -1))


class LoweredLip:
    """S's lip stream (eval mode) lowered to matrix products; built from a model's current weights."""

    def __init__(self, net: nn.Module):
        self.layers = lowered_layers(net.netcnnlip, first_spans_frames=True)
        if self.layers[0][0] != "conv" or self.layers[0][6] != (0, 0) or self.layers[1][0] != "pool":
            raise ValueError("lip stream must start with an unpadded Conv3d, BatchNorm3d, ReLU, MaxPool3d")
        self.fc = net.netfclip

    @property
    def window(self) -> int:
        return self.layers[0][3]

    def first_layer(self, frames: torch.Tensor, n_win: int, reuse_repeats: bool = True) -> Iterator[torch.Tensor]:
        """Each window's first layer (conv, BatchNorm, ReLU, max pool) as a (1, H', W', 96) NHWC map, in
        window order; ``frames``: (T, H, W, 3) uint8 or float, BGR, contiguous.

        A window whose frames all equal the window before's (a frozen video: the static-face floor, a
        method that holds a frame) reuses that window's map: the same products of the same patches, so the
        same bits (``reuse_repeats=False`` recomputes it; tests/test_syncnet_lowered.py)."""
        _, wm, bias, kt, (kh, kw), (sh, sw), _ = self.layers[0]
        n_frames, h, w, c = frames.shape
        ho, wo, out = (h - kh) // sh + 1, (w - kw) // sw + 1, bias.shape[0]
        s_f, s_h, s_w, _ = frames.stride()
        ring = torch.empty(kt, ho * wo, kh * kw * c)  # the patches of the last kt frames, frame f in slot f % kt
        same = [False] * kt  # frame f equals frame f - 1, slot f % kt
        acc = torch.empty(ho * wo, out)
        a = None
        for f in range(min(n_frames, n_win + kt - 1)):
            same[f % kt] = reuse_repeats and f > 0 and torch.equal(frames[f], frames[f - 1])
            if same[f % kt]:
                ring[f % kt].copy_(ring[(f - 1) % kt])
            else:  # the frame's patches: each (kw, c) run is contiguous in an HWC frame; uint8 -> float here
                ring[f % kt].view(ho, wo, kh, kw * c).copy_(frames.as_strided(
                    (ho, wo, kh, kw * c), (sh * s_h, sw * s_w, s_h, 1), frames.storage_offset() + f * s_f))
            i = f - kt + 1  # the window that ends at frame f
            if i < 0:
                continue
            if a is None or not all(same):  # window i's frames are not window i - 1's
                torch.mm(ring[i % kt], wm[0], out=acc)
                for t in range(1, kt):
                    acc.addmm_(ring[(i + t) % kt], wm[t])
                a = pool(torch.add(acc, bias).relu_().view(1, ho, wo, out), self.layers[1])
            yield a

    def rest(self, h: torch.Tensor) -> torch.Tensor:
        """Layers after the first, on a batch of first-layer maps (B, H', W', C) -> (B, D) embeddings."""
        h = run(h, self.layers[2:])
        return self.fc(h.reshape(h.shape[0], -1))

    @torch.inference_mode()
    def embed(self, frames: torch.Tensor, n_win: int, batch_size: int = 32, reuse_repeats: bool = True) -> torch.Tensor:
        """(n_win, D) embeddings of the windows starting at frames 0..n_win-1 of ``frames`` (T, H, W, 3) BGR."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3); got {tuple(frames.shape)}")
        if n_win < 1 or n_win + self.window - 1 > len(frames):
            raise ValueError(f"{n_win} windows of {self.window} frames need {n_win + self.window - 1} frames; "
                             f"got {len(frames)}")
        frames = frames.contiguous()
        out, batch = [], []
        for m in self.first_layer(frames, n_win, reuse_repeats):
            batch.append(m)
            if len(batch) == batch_size:
                out.append(self.rest(torch.cat(batch)))
                batch = []
        if batch:
            out.append(self.rest(torch.cat(batch)))
        return torch.cat(out)
