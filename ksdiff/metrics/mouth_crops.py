"""SyncNet face crops from OUR landmarks instead of S3FD detections.

syncnet_python's reference pipeline (syncnet_pipeline.SyncNetPipeline._crop)
takes an S3FD face box per frame, smooths its half-size s and centre (x, y)
with a 13-frame median filter, then crops, on a frame padded with gray (110),

    rows    y - s            .. y + s (1 + 2 cs)
    columns x - s (1 + cs)   .. x + s (1 + cs)          with cs = 0.4,

a square of side 2.8 s whose top is the box top (the crop reaches below the
chin), and resizes it to 224 x 224. We apply exactly that geometry; only the
box differs: a square on the bounding box of the 478 MediaPipe landmarks
(side max(width, height), centred on it). The mesh spans brow/forehead to
chin and cheek to cheek, the same face region an S3FD box covers; its top
(landmark 10, upper forehead) can sit somewhat higher than an S3FD box top,
so ``PROTOCOL.crop_box_scale`` exists to calibrate it (1.0 = unscaled; it
was not fitted to S3FD output because S3FD's weights are not available here).
Frames with missing landmarks (NaN) take a box interpolated in time.
"""
from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from scipy import signal

from ksdiff.landmark_points import present_points
from ksdiff.metrics.protocol import PROTOCOL


def face_boxes(landmarks: np.ndarray, box_scale: float = PROTOCOL.crop_box_scale) -> np.ndarray:
    """(T, 3) per-frame (cx, cy, half_size) in pixels from (T, N, 2|3) landmarks.

    Not smoothed; frames whose landmarks are all NaN are interpolated from the
    nearest valid frames. Landmarks without irises (landmarks.refine_landmarks false: points
    468-477 NaN in every frame) are boxed on the 468 mesh points, which enclose the irises.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[-1] < 2:
        raise ValueError(f"landmarks must be (T, N, 2 or 3) pixels; got shape {lm.shape}")
    xy = present_points(lm)[..., :2]
    valid = np.all(np.isfinite(xy), axis=(1, 2))
    if not valid.any():
        raise ValueError("no frame has landmarks; cannot place SyncNet crops")
    boxes = np.full((len(lm), 3), np.nan)
    v = xy[valid]
    lo, hi = v.min(axis=1), v.max(axis=1)  # (Tv, 2)
    boxes[valid, :2] = (lo + hi) / 2
    boxes[valid, 2] = (hi - lo).max(axis=1) / 2 * box_scale
    if not valid.all():
        t = np.arange(len(lm))
        for k in range(3):
            boxes[~valid, k] = np.interp(t[~valid], t[valid], boxes[valid, k])
    return boxes


def smooth_boxes(boxes: np.ndarray, kernel: int = PROTOCOL.crop_median_frames) -> np.ndarray:
    """syncnet_python's smoothing: scipy.signal.medfilt (zero-padded edges) per column.

    The kernel shrinks to the largest odd length <= T for short clips so the
    zero padding never holds the majority of a window.
    """
    t = len(boxes)
    k = min(kernel, t if t % 2 else t - 1)
    if k < 3:
        return boxes.copy()
    return np.stack([signal.medfilt(boxes[:, i], k) for i in range(boxes.shape[1])], axis=1)


def crop_windows(boxes: np.ndarray, crop_scale: float = PROTOCOL.crop_scale) -> np.ndarray:
    """(T, 4) integer crop rectangles y1, y2, x1, x2 from smoothed (cx, cy, s) boxes.

    Same arithmetic as syncnet_python's _crop (int() truncation included),
    expressed in unpadded frame coordinates.
    """
    x, y, s = boxes[:, 0], boxes[:, 1], boxes[:, 2]
    pad = (s * (1 + 2 * crop_scale)).astype(np.int64)
    # syncnet_python computes int(my - bs) on the padded frame (my = y + pad).
    y1 = (y + pad - s).astype(np.int64) - pad
    y2 = (y + pad + s * (1 + 2 * crop_scale)).astype(np.int64) - pad
    x1 = (x + pad - s * (1 + crop_scale)).astype(np.int64) - pad
    x2 = (x + pad + s * (1 + crop_scale)).astype(np.int64) - pad
    return np.stack([y1, y2, x1, x2], axis=1)


def _crop_one(frame: np.ndarray, y1: int, y2: int, x1: int, x2: int, pad_value: int) -> np.ndarray:
    """frame[y1:y2, x1:x2] with out-of-frame pixels set to pad_value (like copyMakeBorder)."""
    h, w = frame.shape[:2]
    out = np.full((max(y2 - y1, 1), max(x2 - x1, 1), frame.shape[2]), pad_value, dtype=frame.dtype)
    sy1, sy2, sx1, sx2 = max(y1, 0), min(y2, h), max(x1, 0), min(x2, w)
    if sy2 > sy1 and sx2 > sx1:
        out[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = frame[sy1:sy2, sx1:sx2]
    return out


class ShortStream(ValueError):
    """A stream of frames ended before its landmarks did: ``n`` frames came."""

    def __init__(self, n: int, n_landmarks: int):
        super().__init__(f"{n} frames but {n_landmarks} landmark frames")
        self.n = n


def face_crops(
    frames: np.ndarray | Iterable[np.ndarray],
    landmarks: np.ndarray,
    size: int = PROTOCOL.crop_size,
    box_scale: float = PROTOCOL.crop_box_scale,
) -> np.ndarray:
    """(T, size, size, 3) uint8 SyncNet face crops, same channel order as ``frames``.

    frames: (T, H, W, 3) uint8, or any iterable of (H, W, 3) uint8 frames (a video being decoded, a motion being
    rendered), cropped one by one as they come and not kept: a minute of 512 px video is 1.2 GB of frames and
    52 MB of crops. landmarks: (T, 478, 3) in pixels of those frames (NaN rows for frames without a face); they
    place every crop, so a stream stops after T frames, and one that ends sooner raises ShortStream.
    """
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise ValueError(f"frames must be (T, H, W, 3) uint8; got {frames.shape} {frames.dtype}")
        if len(landmarks) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(landmarks)} landmark frames")
    rects = crop_windows(smooth_boxes(face_boxes(landmarks, box_scale)))
    out = np.empty((len(rects), size, size, 3), dtype=np.uint8)
    n = 0
    for (y1, y2, x1, x2), frame in zip(rects, frames):  # rects first: no frame is made past the last one
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8; got {frame.shape} {frame.dtype}")
        crop = _crop_one(frame, int(y1), int(y2), int(x1), int(x2), PROTOCOL.crop_pad_value)
        out[n] = cv2.resize(crop, (size, size))
        n += 1
    if n < len(rects):
        raise ShortStream(n, len(rects))
    return out


def swap_rb(crops: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 crops with their first and last channels swapped (RGB <-> BGR: SyncNet is fed BGR),
    as a new contiguous array. OpenCV's cvtColor on the frames stacked as one tall image: numpy's copy of the
    reversed view ``crops[..., ::-1]`` moves a byte at a time, 0.36 ms a 224 px frame against 0.02 here
    (one core, 400 frames, 6 Dec); the bytes are the same."""
    crops = np.ascontiguousarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"crops must be (T, H, W, 3) uint8; got {crops.shape} {crops.dtype}")
    if crops.size == 0:
        return crops.copy()
    t, h, w, _ = crops.shape
    return cv2.cvtColor(crops.reshape(t * h, w, 3), cv2.COLOR_RGB2BGR).reshape(crops.shape)
