"""Which video metrics a run scores (config ``eval.video_metrics``), on how many samples, and each clip's
reference: the dataset's recorded video of the clip.

The video metrics (ksdiff.metrics.scorers: psnr, ssim, cpbd, lmd) read the method's frames (rendered by the
image warp, or an external method's own video) and, except CPBD, the clip's recorded video as it was
decoded for extraction, frame t against frame t, with the landmarks ksdiff extracted from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ksdiff.io import parquet
from ksdiff.metrics.frames import Video
from ksdiff.metrics.weighted import KEYS as WEIGHTED_KEYS

VIDEO_METRICS = ("psnr", "ssim", "cpbd", "lmd")  # the config's names; lmd scores F-LMD and M-LMD


@dataclass(frozen=True)
class VideoSettings:
    metrics: tuple[str, ...] = ()  # enabled, of VIDEO_METRICS
    samples: int | None = None  # the first N samples of each clip (None: all)
    landmarks: dict = field(default_factory=dict)  # cfg['landmarks']: extraction from rendered frames (LMD)
    results: Path | None = None  # results/{dataset}: the recorded videos' landmarks
    gt_videos: dict = field(default_factory=dict)  # clip id -> the dataset's recorded video
    weighted: bool = False  # a weight-based metric (FID, FVD, LPIPS, CSIM) is configured: frames and reference too

    @classmethod
    def from_cfg(cls, cfg: dict, results: Path) -> "VideoSettings":
        ev = cfg.get("eval", {})
        names = tuple(ev.get("video_metrics") or ())
        unknown = sorted(set(names) - set(VIDEO_METRICS))
        if unknown:
            raise ValueError(f"eval.video_metrics: unknown {unknown}; known: {list(VIDEO_METRICS)}")
        videos = {}
        weighted = any(ev.get(k) for k in WEIGHTED_KEYS.values())
        if (names or weighted) and (Path(results) / "manifest.parquet").exists():
            man = parquet.read_table(Path(results) / "manifest.parquet", "manifest").to_pandas()
            videos = dict(man[["clip_id", "path"]].values)
        return cls(names, ev.get("video_samples"), dict(cfg.get("landmarks") or {}), Path(results), videos, weighted)

    @property
    def frames_needed(self) -> bool:
        """A method's frames are read: a video metric or a weight-based one is on."""
        return bool(self.metrics) or self.weighted

    def on(self, name: str) -> bool:
        return name in self.metrics

    def scores(self, sample: int) -> bool:
        return self.samples is None or sample < self.samples

    def reference(self, clip: str, fps: float, start: int = 0):
        """The clip's recorded video from frame ``start`` on (ksdiff.metrics.frames.Video), or None when no
        metric compares with it or the dataset has no video of that clip."""
        if (not set(self.metrics) - {"cpbd"} and not self.weighted) or clip not in self.gt_videos:
            return None
        return Video(self.gt_videos[clip], self.results / "landmarks" / f"{clip}.parquet", fps, start)
