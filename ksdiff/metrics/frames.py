"""Frame sources: what a clip looks like to a video metric (LSE), rendered or recorded.

``Rendered``: a motion drawn by the image warp (ksdiff.render.warp) over the clip's reference frame, as every
method and ground truth are rendered, so renderer artefacts cancel between them. ``Video``: a recorded video
(an external method's own frames, or the dataset's clip) with the landmarks extracted from it. Both hand out
(frames, landmarks) as a stream, each frame made when it is read (``stream``: LSE crops them as they come), or
in a disk-backed buffer that several metrics read (``open``: a minute of 512 px video is about 1.2 GB).
"""
from __future__ import annotations

import tempfile
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ksdiff.io import parquet
from ksdiff.io.video import iter_frames
from ksdiff.metrics.mouth_crops import ShortStream, face_crops


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
    def stream(self, posed: np.ndarray | None):
        """(frames rendered one by one as they are read, landmarks) of the posed (T, 478, 3) landmarks of one sample."""
        if posed is None:
            raise ValueError("nothing to render: the coefficients did not decode to landmarks")
        yield (self.warper.render(p) for p in posed), posed

    @contextmanager
    def open(self, posed: np.ndarray | None):
        """(frames, landmarks) of the posed (T, 478, 3) landmarks of one sample, the frames in a buffer."""
        with self.stream(posed) as (frames, landmarks), tempfile.TemporaryDirectory(prefix="ksdiff-frames-") as tmp:
            yield to_buffer(frames, len(landmarks), Path(tmp)), landmarks


@dataclass
class Video:
    """A recorded video's frames from frame ``start`` on, with its extracted (T, 478, 3) landmarks."""

    path: str
    landmarks: np.ndarray | Path  # a landmarks table is read when the frames are first needed
    fps: float
    start: int = 0

    @contextmanager
    def stream(self, posed=None):
        """(frames decoded one by one as they are read, landmarks); ``posed`` is ignored: a recorded video is the
        same for every sample. The video may end before its landmarks (``open`` cuts them to its frames)."""
        lm = landmarks_px(self.landmarks) if isinstance(self.landmarks, Path) else self.landmarks
        decoded = iter_frames(self.path, self.fps)
        with closing(decoded):  # a reader that stops early closes the container now, not when collected
            yield (rgb for k, _, _, rgb in decoded if k >= self.start), lm[self.start:]

    @contextmanager
    def open(self, posed=None):
        """(frames, landmarks) with the frames in a buffer; ``posed`` is ignored."""
        with self.stream() as (frames, lm), tempfile.TemporaryDirectory(prefix="ksdiff-frames-") as tmp:
            frames = to_buffer(frames, len(lm), Path(tmp))
            yield frames, lm[: len(frames)]


def crops_of(source, posed=None) -> np.ndarray:
    """SyncNet's face crops of a source's frames (mouth_crops.face_crops), each frame cropped as it is made and not
    kept. A video that ends before its landmarks is cropped again from its buffer, on the crop track of the frames
    it has (the boxes are median-filtered over time, so the last ones depend on where the track ends)."""
    try:
        with source.stream(posed) as (frames, landmarks):
            return face_crops(frames, landmarks)
    except ShortStream:
        with source.open(posed) as (frames, landmarks):
            return face_crops(frames, landmarks)


def landmarks_px(path: Path) -> np.ndarray:
    """(T, 478, 3) landmarks of a landmarks table, NaN where no face was found."""
    t = parquet.read_table(path, "landmarks")
    if not t.ok:
        raise ValueError(f"landmarks {t.status}: {t.reason}")
    lm = t.column("landmarks").reshape(len(t.table), -1, 3).astype(np.float64)
    lm[~t.column("detected").astype(bool)] = np.nan
    return lm
