"""Frame sources: what a clip looks like to a video metric (LSE), rendered or recorded.

``Rendered``: a motion drawn by the image warp (ksdiff.render.warp) over the clip's reference frame, as every
method and ground truth are rendered, so renderer artefacts cancel between them. ``Video``: a recorded video
(an external method's own frames, or the dataset's clip) with the landmarks extracted from it. Both hand out
(frames, landmarks) in a disk-backed buffer: a minute of 512 px video is about 1 GB.
"""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ksdiff.io import parquet


def to_buffer(frames, n: int, tmp: Path) -> np.ndarray:
    """Stack up to ``n`` frames in a disk-backed array."""
    buf = None
    k = 0
    for k, f in enumerate(frames):
        if k >= n:
            break
        if buf is None:
            buf = np.memmap(tmp / "frames.u8", dtype=np.uint8, mode="w+", shape=(n, *f.shape))
        buf[k] = f
    if buf is None:
        raise ValueError("no frames")
    return buf[: k + 1] if k + 1 < n else buf


@dataclass
class Rendered:
    """A motion's frames drawn by the warp renderer over the clip's reference frame."""

    warper: object  # ksdiff.render.warp.FaceWarper

    @contextmanager
    def open(self, posed: np.ndarray | None):
        """(frames, landmarks) of the posed (T, 478, 3) landmarks of one sample."""
        if posed is None:
            raise ValueError("nothing to render: the coefficients did not decode to landmarks")
        with tempfile.TemporaryDirectory(prefix="ksdiff-frames-") as tmp:
            yield to_buffer((self.warper.render(p) for p in posed), len(posed), Path(tmp)), posed


@dataclass
class Video:
    """A recorded video's frames from frame ``start`` on, with its extracted (T, 478, 3) landmarks."""

    path: str
    landmarks: np.ndarray | Path  # a landmarks table is read when the frames are first needed
    fps: float
    start: int = 0

    @contextmanager
    def open(self, posed=None):
        """(frames, landmarks); ``posed`` is ignored: a recorded video is the same for every sample."""
        from ksdiff.io.video import iter_frames

        lm = landmarks_px(self.landmarks) if isinstance(self.landmarks, Path) else self.landmarks
        lm = lm[self.start:]
        with tempfile.TemporaryDirectory(prefix="ksdiff-frames-") as tmp:
            frames = to_buffer((rgb for k, _, _, rgb in iter_frames(self.path, self.fps) if k >= self.start),
                               len(lm), Path(tmp))
            yield frames, lm[: len(frames)]


def landmarks_px(path: Path) -> np.ndarray:
    """(T, 478, 3) landmarks of a landmarks table, NaN where no face was found."""
    t = parquet.read_table(path, "landmarks")
    if not t.ok:
        raise ValueError(f"landmarks {t.status}: {t.reason}")
    lm = t.column("landmarks").reshape(len(t.table), -1, 3).astype(np.float64)
    lm[~t.column("detected").astype(bool)] = np.nan
    return lm
