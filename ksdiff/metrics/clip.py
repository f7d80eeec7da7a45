"""One clip's inputs to every scorer, loaded once, and the rows the scorers return.

``ClipInputs`` is what a scorer (ksdiff.metrics.scorers) sees: the clip id, fps, the 16 kHz audio, the
ground-truth motion, the method's samples, frame sources (the method's frames, rendered or its own video;
ground truth's recorded video) and the run's shared resources (SyncNet, the FLAME decoder). Work that
depends only on the clip (audio onsets, the ground truth's decoded meshes) and work several scorers share
per sample (head pose, decoded landmarks) is computed on first use and cached here, so no scorer repeats it.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ksdiff.io import parquet
from ksdiff.io.audio import read_wav
from ksdiff.metrics.beat_align import audio_beats
from ksdiff.metrics.efid import Moments
from ksdiff.metrics.motion import head_pose, is_flame
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.video_settings import VideoSettings
from ksdiff.metrics.weighted import WeightedModels
from ksdiff.render.video import decodable, decode_sample, samples_of, select_sample


@dataclass(frozen=True)
class Row:
    """One metric value of one sample (ACROSS_SAMPLES: of the clip), or why it is undefined."""

    sample: int
    metric: str
    value: float
    reason: str = ""


@dataclass
class Resources:
    """What every clip of a run is scored with: loaded once per run."""

    basis: object  # the dataset's expression basis (ksdiff.extract.basis.load_basis)
    syncnet: object | None = None  # SyncNet model, None: no LSE
    flame: tuple = (None, "no FLAME model configured")  # (LipDecoder or None, why not)
    lse_samples: int | None = None  # LSE on the first N samples only (None: all)
    # E-FID's running moments over the clips scored (set-level: ksdiff.metrics.efid)
    efid: dict = field(default_factory=lambda: {"ground_truth": Moments(), "method": Moments()})
    video: VideoSettings = field(default_factory=VideoSettings)  # the video metrics enabled (none by default)
    weighted: WeightedModels = field(default_factory=WeightedModels)  # FID, FVD, LPIPS, CSIM: configured weights


@dataclass
class ClipInputs:
    """One clip as the scorers see it. ``gt`` is None for an external clip unknown to the dataset."""

    clip_id: str
    fps: float
    wav: np.ndarray  # 16 kHz mono
    motion: parquet.Table  # the method's samples (coeffs table)
    gt: parquet.Table | None  # ground-truth coeffs
    template: np.ndarray | None  # landmark identity every sample is decoded with (None: FLAME tables)
    run: Resources
    is_gt: bool = False  # the method scored is ground truth itself
    frames: object | None = None  # the method's frames: ksdiff.metrics.frames.Rendered or .Video
    source: object | None = None  # ground truth's recorded video (scoring ground truth with SyncNet only)
    reference: object | None = None  # the clip's recorded video, the video metrics' reference (ksdiff.metrics.frames.Video)
    _cache: dict = field(default_factory=dict, repr=False)
    _open: ExitStack = field(default_factory=ExitStack, repr=False)  # frame buffers held open until ``close``

    # ------------------------------------------------------------------ per clip
    @cached_property
    def samples(self) -> list[int]:
        return samples_of(self.motion)

    @cached_property
    def undecodable(self) -> str:
        """Why the coefficients do not decode to landmarks ('' when they do): FLAME tables."""
        return decodable(self.motion) or (decodable(self.gt) if self.gt is not None else "")

    @cached_property
    def onsets(self) -> np.ndarray:
        """The audio's onset frames (BeatAlign), detected once per clip; cut per sample by ``onsets_for``."""
        return audio_beats(self.wav, PROTOCOL.sample_rate, self.fps)

    def onsets_for(self, n_frames: int) -> np.ndarray:
        """Onsets of a motion ``n_frames`` long: those on frames 0..T-2 (ksdiff.metrics.beat_align.audio_beats)."""
        o = self.onsets
        return o[o < n_frames - 1]

    @cached_property
    def gt_aligned(self) -> np.ndarray:
        """Ground truth's (T, 478, 3) canonical landmarks (decoded once per clip)."""
        return decode_sample(self.gt, self.template, self.run.basis, 0)[0]

    @property
    def flame_pair(self) -> bool:
        """Both the method's and ground truth's tables hold FLAME parameters."""
        return is_flame(self.motion) and is_flame(self.gt)

    # ------------------------------------------------------------------ per sample
    def head(self, s: int) -> np.ndarray:
        """(T, 3) head pose in degrees of sample ``s``."""
        return self._memo(("head", s), lambda: head_pose(select_sample(self.motion, s)))

    def decoded(self, s: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(aligned, posed) landmarks of sample ``s``; (None, None) for coefficients that do not decode."""
        if self.undecodable:
            return None, None
        return self._memo(("decoded", s), lambda: decode_sample(self.motion, self.template, self.run.basis, s))

    def _memo(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def opened(self, key, source, posed=None):
        """(frames, landmarks) of a frame source (ksdiff.metrics.frames), opened once and held until ``close``:
        every video metric of a sample reads the same disk-backed frames."""
        return self._memo(("opened", key), lambda: self._open.enter_context(source.open(posed)))

    def close(self) -> None:
        """Release the frame buffers opened for this clip (their temporary files)."""
        self._open.close()
        self._cache = {k: v for k, v in self._cache.items() if k[0] != "opened"}


class Rows:
    """Collects one method's metric rows, and the reasons for the ones that are undefined."""

    def __init__(self, method: str):
        self.method = method
        self.rows: list[tuple] = []
        self.undefined: list[dict] = []

    def add(self, clip: str, sample: int, metric: str, value: float, reason: str = ""):
        if reason or value is None or not np.isfinite(value):
            self.undefined.append({"clip_id": clip, "sample": int(sample), "metric": metric, "reason": reason or "not finite"})
        else:
            self.rows.append((self.method, clip, int(sample), metric, float(value)))

    def extend(self, clip: str, rows: list[Row]):
        for r in rows:
            self.add(clip, r.sample, r.metric, r.value, r.reason)

    def table(self) -> dict:
        cols = list(zip(*self.rows)) if self.rows else [[]] * 5
        names = ("method", "clip_id", "sample", "metric", "value")
        out = {k: list(v) for k, v in zip(names, cols)}
        out["sample"] = np.asarray(out["sample"], dtype=np.int16)
        out["value"] = np.asarray(out["value"], dtype=np.float64)
        return out


def read_audio(path) -> np.ndarray:
    """A clip's wav as the metrics read it: 16 kHz mono (the audio step writes it so; anything else is refused)."""
    x, sr = read_wav(path)
    if sr != PROTOCOL.sample_rate or np.ndim(x) != 1:
        raise ValueError(f"{path}: expected {PROTOCOL.sample_rate} Hz mono, got {sr} Hz shape {np.shape(x)}")
    return x
