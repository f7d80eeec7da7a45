"""CPBD: the no-reference sharpness of a frame (Narvekar & Karam, IEEE TIP 2011), 0 (blurred) .. 1 (sharp).

The arithmetic of the reference Python port (python-cpbd 1.0.7, ``cpbd.compute``; the ViCo challenge's
evaluations/compute_cpbd.py calls it on every frame read by cv2 and converted to grey), vectorised:

  1. edges: skimage's Canny (sigma 1, default thresholds) on the grey frame as float64 marks the 64 x 64
     blocks that count (more than 0.2% edge pixels); Octave's vertical-gradient Sobel (the kernel divided by
     the sum of its absolute values, its squared response thresholded at 2 x sqrt(mean), thinned against the
     horizontal and vertical neighbours) marks the pixels whose edge width is measured;
  2. width (Marziliano et al.): at a Sobel edge pixel whose gradient angle (numpy's gradient, quantised to
     45 degrees) is 0 or +-180, the number of pixels to the nearest intensity extremum on its left plus on
     its right along the row (each side at most 101);
  3. per edge block, the probability of detecting blur at each width w, P = 1 - exp(-(w / w_JNB)^3.6), with
     the just-noticeable width w_JNB = 5 for block contrast (max - min, truncated to int) <= 50, else 3;
  4. CPBD = the share of all measured edges with P <= 63% (the histogram of round(100 P), buckets 0..63).

Why hand-written: the reference is the definition, but it walks every pixel in Python loops (measured:
benchmarks/bench_video_metrics.py); here the walks of step 2 are run lengths of monotone steps along each row
(cumulative sums), everything else numpy, and tests/test_metrics_video.py checks it equals ``cpbd.compute``
value for value on natural, blurred and synthetic frames. Its quirks are kept on purpose: edge widths only
on rows (angle 0 / 180; the 45 and 90 degree edges of the paper get none, as in the port), a frame of no full
64 x 64 block or no edge block scores 0.

Derived from python-cpbd, which carries this notice: Copyright (c) 2009-2010 Arizona Board of Regents. All
Rights Reserved. Contact: Lina Karam (karam@asu.edu) and Niranjan Narvekar (nnarveka@asu.edu), Image, Video,
and Usability (IVU) Lab, Arizona State University. Redistribution and use in source and binary forms, with
or without modification, are permitted provided that this notice is retained; publications that report
results with this code acknowledge the IVU Lab and cite: N. D. Narvekar and L. J. Karam, "A No-Reference
Image Blur Metric Based on the Cumulative Probability of Blur Detection (CPBD)", IEEE Transactions on Image
Processing, 2011. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import convolve
from skimage.feature import canny

EDGE_BLOCK_SHARE = 0.002  # a block holds edges when more than this share of its pixels are Canny edges
BETA = 3.6  # the psychometric slope of the probability of blur detection
BLOCK = 64  # block side in pixels
P_JNB = 63  # CPBD = P(P_blur <= 63%), in histogram buckets of 1%
MAX_WALK = 100  # the port looks at most 100 steps beyond the first neighbour on each side
# Octave's vertical-gradient Sobel kernel, normalised by the sum of its absolute values (as python-cpbd).
_SOBEL = np.array([[0.25, 0.5, 0.25], [0.0, 0.0, 0.0], [-0.25, -0.5, -0.25]]).T / 2.0


def grey(rgb: np.ndarray) -> np.ndarray:
    """A frame as the ViCo script reads it: OpenCV's grey conversion of the uint8 frame."""
    return rgb if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _sobel_edges(image: np.ndarray) -> np.ndarray:
    strength = np.square(convolve(image, _SOBEL))
    strength[strength <= 2 * np.sqrt(np.mean(strength))] = 0
    zc, zr = np.zeros((image.shape[0], 1)), np.zeros((1, image.shape[1]))
    x = (strength > np.c_[zc, strength[:, :-1]]) & (strength > np.c_[strength[:, 1:], zc])
    y = (strength > np.r_[zr, strength[:-1, :]]) & (strength > np.r_[strength[1:, :], zr])
    return x | y


def _run_from_left(good: np.ndarray) -> np.ndarray:
    """Per pixel, how many consecutive ``good`` pixels end there along its row (0 where not good)."""
    c = np.cumsum(good, axis=1, dtype=np.int32)
    return c - np.maximum.accumulate(np.where(good, 0, c), axis=1)


def _widths(edges: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Marziliano edge widths at the row-direction Sobel edges (0 elsewhere), as python-cpbd measures them."""
    gy, gx = np.gradient(image)
    widths = np.zeros(image.shape)
    # the port's angle map is atan2(gy, gx) in degrees where gx != 0, 90 where gx == 0 and gy == pi/2, else 0;
    # it measures no width at all when that map is 0 everywhere (atan2 is 0 only for gy == 0 < gx)
    if not (np.any((gx != 0) & ~((gy == 0) & (gx > 0))) or np.any((gx == 0) & (gy == np.pi / 2))):
        return widths
    inner = np.zeros(image.shape, bool)
    inner[1:-1, 1:-1] = True
    rows, cols = np.nonzero(edges & inner)
    ey, ex = gy[rows, cols], gx[rows, cols]
    q = 45 * np.round(np.where(ex != 0, np.arctan2(ey, ex) * (180 / np.pi), np.where(ey == np.pi / 2, 90.0, 0.0)) / 45)
    step_left = np.zeros(image.shape)  # image[c-1] - image[c]
    step_left[:, 1:] = image[:, :-1] - image[:, 1:]
    step_right = np.zeros(image.shape)  # image[c+1] - image[c]
    step_right[:, :-1] = image[:, 1:] - image[:, :-1]
    last = np.zeros(image.shape, bool)
    last[:, -1] = True
    first = np.zeros(image.shape, bool)
    first[:, 0] = True

    def left(good):  # walk from c-1 leftwards while ``good``: the first failing step, capped
        return np.minimum(_run_from_left(good & ~first), MAX_WALK) + 1

    def right(good):  # walk from c+1 rightwards while ``good``
        return np.minimum(_run_from_left((good & ~last)[:, ::-1])[:, ::-1], MAX_WALK) + 1

    # angle +-180: intensity falls from left to right on both sides of the edge; angle 0: it rises
    for sel, lw, rw in ((np.abs(q) == 180, left(step_left > 0), right(step_right < 0)),
                        (q == 0, left(step_left < 0), right(step_right > 0))):
        r, c = rows[sel], cols[sel]
        widths[r, c] = lw[r, c - 1] + rw[r, c + 1]
    return widths


def cpbd(frame: np.ndarray) -> float:
    """CPBD sharpness of one frame (uint8 RGB or grey): the share of edges whose blur is not noticeable."""
    image = grey(frame).astype(np.float64)
    blocks_y, blocks_x = image.shape[0] // BLOCK, image.shape[1] // BLOCK
    if not blocks_y or not blocks_x:
        return 0.0
    canny_edges = canny(image)
    widths = _widths(_sobel_edges(image), image)
    h, w = blocks_y * BLOCK, blocks_x * BLOCK

    def blocks(a):
        return a[:h, :w].reshape(blocks_y, BLOCK, blocks_x, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK * BLOCK)

    n_edges = np.count_nonzero(blocks(canny_edges), axis=1)
    im = blocks(image)
    contrast = (im.max(1) - im.min(1)).astype(int)
    jnb = np.where(contrast <= 50, 5.0, 3.0)
    wb = blocks(widths)
    hist = np.zeros(101)
    for k in np.flatnonzero(n_edges > BLOCK * BLOCK * EDGE_BLOCK_SHARE):
        bw = wb[k][wb[k] != 0]
        p = 1 - np.exp(-np.abs(bw / jnb[k]) ** BETA)
        hist += np.bincount(np.round(p * 100).astype(int), minlength=101)
    total = hist.sum()
    return float(np.sum(hist[: P_JNB + 1] / total)) if total else 0.0
