"""SyncNet's two streams for oneDNN (``numerics: fast`` on a CPU): BatchNorm folded into the convolutions,
channels-last maps, and the lip stream's first layer one window at a time.

Why not S's own forward, which oneDNN also runs: measured on one core (6 Dec, batches of 32 channels-last
windows, ms of CPU per window), S's lip stream spent 18.6 in its first convolution and 5.3 more in the
BatchNorm, ReLU and MaxPool3d passes over that convolution's output (4.6 MB a window, 146 MB a batch,
streamed from memory three times), of 38.6 in all; its audio stream spent 1.5 of 5.9 outside its
convolutions. Here:

- BatchNorm is folded into each convolution's weights and bias (eval mode, running statistics:
  ``syncnet_lowered.fold_stream``, as the lowered path does) and ReLU runs in place.
- The first layer (3 -> 96 channels, a 5x7x7 kernel over the window's 5 frames, stride 1x2x2) runs one window
  at a time, its ReLU and max pool on the window's map while it is still in the cache: 16.5 ms a window with
  them, against 21.2 for the same layer on batches of 32. A window is a view of the batch's float frames
  (T, H, W, 3), which is the channels-last (NDHWC) layout oneDNN wants: no window tensor is built.
- Every later layer has a temporal kernel of 1 and runs as a 2-D convolution or pool on the batch's
  channels-last (NHWC) maps; so does the audio stream.

Measured together: the lip stream 36.6 -> 29.1 ms a window in the benchmark's side-by-side run
(benchmarks/README.md, "LSE on the CPU"), and the audio stream 5.9 -> 4.3 in the per-layer profile above. The same numbers as S's forward within
~1e-6 relative (another summation order, BatchNorm folded in; tests/test_syncnet_folded.py). oneDNN picks
its kernels and their summation order for the processor, so these numbers, like S's own forward under
``numerics: fast``, are not the same bits on every CPU; pinned numerics uses ksdiff.metrics.syncnet_lowered.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ksdiff.metrics.syncnet_lowered import fold_stream, spatial


def folded_layers(seq: nn.Sequential, first_spans_frames: bool = False) -> list[tuple]:
    """A stream of S as ('conv', weight, bias, stride, padding) and ('pool', kernel, stride, padding) steps,
    BatchNorm folded in (syncnet_lowered.fold_stream, which checks the stream). The first convolution's
    weight stays 5-D (channels-last-3d) if it spans frames (``first_spans_frames``); every other becomes a
    2-D (channels-last) one."""

    def conv_step(m, w, bias, spans):
        w, fmt = (w, torch.channels_last_3d) if spans else (w[:, :, 0], torch.channels_last)
        return "conv", w.contiguous(memory_format=fmt), bias.contiguous(), spatial(m.stride), spatial(m.padding)

    return fold_stream(seq, conv_step, first_spans_frames)


def run(h: torch.Tensor, layers: list[tuple]) -> torch.Tensor:
    """Channels-last (B, C, H, W) maps through 2-D ``layers``."""
    for layer in layers:
        if layer[0] == "conv":
            _, w, bias, stride, padding = layer
            h = F.conv2d(h, w, bias, stride, padding).relu_()
        elif layer[1:3] != ((1, 1), (1, 1)):  # S's audio stream has a 1x1 max pool: the identity
            h = F.max_pool2d(h, *layer[1:])
    return h


def _flat(h: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, 1) -> (B, C): S flattens its last map, which is 1x1, so the layout does not matter."""
    if h.shape[2:] != (1, 1):
        raise ValueError(f"expected a 1x1 map before the fully connected head; got {tuple(h.shape)}")
    return h.reshape(h.shape[0], -1)


class FoldedAudio:
    """S's audio stream (eval mode) folded: MFCC windows (B, 1, 13, 20) -> (B, D)."""

    def __init__(self, net: nn.Module):
        self.layers, self.fc = folded_layers(net.netcnnaud), net.netfcaud

    @torch.inference_mode()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(_flat(run(x.contiguous(memory_format=torch.channels_last), self.layers)))


class FoldedLip:
    """S's lip stream (eval mode) folded; built from a model's current weights."""

    def __init__(self, net: nn.Module):
        self.layers = folded_layers(net.netcnnlip, first_spans_frames=True)
        first = self.layers[0]
        if first[0] != "conv" or first[1].ndim != 5 or first[4] != (0, 0) or self.layers[1][0] != "pool":
            raise ValueError("lip stream must start with an unpadded Conv3d, BatchNorm3d, ReLU, MaxPool3d")
        self.fc = net.netfclip

    @property
    def window(self) -> int:
        return int(self.layers[0][1].shape[2])

    def first_layer(self, frames: torch.Tensor, i: int) -> torch.Tensor:
        """Window i's first layer (convolution, ReLU, max pool) as a (1, 96, H', W') channels-last map;
        ``frames``: (T, H, W, 3) float, contiguous."""
        _, w, bias, stride, _ = self.layers[0]
        win = frames[i:i + self.window][None].permute(0, 4, 1, 2, 3)  # (1, 3, 5, H, W), NDHWC in memory
        h = F.conv3d(win, w, bias, (1, *stride))[:, :, 0].relu_()  # one output frame: (1, 96, H', W')
        return F.max_pool2d(h, *self.layers[1][1:])

    @torch.inference_mode()
    def embed(self, frames: torch.Tensor, n_win: int, batch_size: int = 32) -> torch.Tensor:
        """(n_win, D) embeddings of the windows starting at frames 0..n_win-1 of ``frames`` (T, H, W, 3) BGR,
        uint8 or float; the layers after the first run on ``batch_size`` windows at a time."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3); got {tuple(frames.shape)}")
        k = self.window
        if n_win < 1 or n_win + k - 1 > len(frames):
            raise ValueError(f"{n_win} windows of {k} frames need {n_win + k - 1} frames; got {len(frames)}")
        out = []
        for i in range(0, n_win, batch_size):
            b = min(batch_size, n_win - i)
            f = frames[i:i + b + k - 1].float().contiguous()
            h = torch.cat([self.first_layer(f, j) for j in range(b)])
            out.append(self.fc(_flat(run(h, self.layers[2:]))))
        return torch.cat(out)
