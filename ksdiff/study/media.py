"""The study's videos: where each method's video of a clip is, and its re-encode for the page.

Sources, in the order tried for a (method, clip):
- video folders: ``DIR`` whose sub-folders are methods (``DIR/{method}/{clip}.mp4``, e.g. the
  renders of a run, ``eval.external`` folders gathered in one place), or ``name=DIR`` holding
  ``{clip}.mp4`` of one method;
- a finished run: ``results/{dataset}`` plus the methods' prediction folders; the clip is rendered
  with ksdiff's renderer (ground truth from the clip's extracted coefficients), as the leaderboard's
  figures are.

Every video is re-encoded to H.264 (yuv420p, the one codec every browser plays) with AAC audio, at
one size for all methods (ground truth's aspect ratio, letterboxed when a method's differs), with its
index first so a static host can stream it. A video without an audio track gets its clip's ground-truth
audio: every method is heard with the same speech.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from ksdiff.io.audio import AudioError, load_audio
from ksdiff.io.video import iter_frames, probe, write_video
from ksdiff.study.design import GROUND_TRUTH

log = logging.getLogger(__name__)


class MediaError(ValueError):
    """A video the study needs is missing or unreadable (the message names it)."""


def parse_folders(items: list[str] | None) -> dict[str, Path]:
    """method -> folder of {clip}.mp4, from 'name=DIR' items and DIRs whose sub-folders are methods."""
    out: dict[str, Path] = {}
    for item in items or []:
        if "=" in item:
            name, _, folder = item.partition("=")
            out[name] = Path(folder)
            continue
        root = Path(item)
        if not root.is_dir():
            raise MediaError(f"video folder not found: {root}")
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.mp4"))):
            out.setdefault(sub.name, sub)
    for name, folder in out.items():
        if not folder.is_dir():
            raise MediaError(f"video folder of {name!r} not found: {folder}")
    return out


def parse_predictions(items: list[str] | None) -> dict[str, Path]:
    """method -> folder of {clip}.parquet coefficient tables ('name=DIR', or DIR named after its method)."""
    out = {}
    for item in items or []:
        name, _, folder = item.partition("=") if "=" in item else (Path(item).name, "", item)
        out[name] = Path(folder)
    return out


class Sources:
    """Finds (and, from a finished run, renders) the source video of a method's clip."""

    def __init__(self, cfg: dict, videos: dict[str, Path], results: Path | None, predictions: dict[str, Path],
                 render_dir: Path):
        self.cfg, self.videos, self.results, self.predictions, self.render_dir = cfg, videos, results, predictions, render_dir

    def methods(self) -> set[str]:
        rendered = set(self.predictions) | ({GROUND_TRUTH} if self.results is not None else set())
        return set(self.videos) | rendered

    def clips(self, method: str) -> set[str]:
        found = {p.stem for p in self.videos[method].glob("*.mp4")} if method in self.videos else set()
        if method == GROUND_TRUTH and self.results is not None:
            found |= {p.stem for p in (self.results / "coeffs").glob("*.parquet")}
        elif method in self.predictions:
            found |= {p.stem for p in self.predictions[method].glob("*.parquet")}
        return found

    def path(self, method: str, clip: str) -> Path:
        if method in self.videos and (p := self.videos[method] / f"{clip}.mp4").exists():
            return p
        coeffs = (self.results / "coeffs" / f"{clip}.parquet" if method == GROUND_TRUTH and self.results is not None
                  else self.predictions[method] / f"{clip}.parquet" if method in self.predictions else None)
        if coeffs is None or not coeffs.exists():
            raise MediaError(f"no video of {method!r} for clip {clip!r} (no {method}/{clip}.mp4 in the video folders"
                             f"{' and no prediction to render' if self.results is not None else ''})")
        out = self.render_dir / method / f"{clip}.mp4"
        if not out.exists():
            # The renderer loads the face models: imported only when a study is built from a run.
            from ksdiff.render.video import render_command

            log.info("rendering %s / %s from %s", method, clip, coeffs)
            out.parent.mkdir(parents=True, exist_ok=True)
            render_command(self.cfg, str(coeffs), str(self.results), clip, str(out))
        return out


def frame_size(path: Path, height: int | None) -> tuple[int, int]:
    """(width, height) of the page's videos: ground truth's aspect ratio at ``height``, both even."""
    info = probe(path)
    h = int(height or info.height)
    w = int(round(h * info.width / info.height))
    return w - w % 2, h - h % 2


def fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale into ``size`` keeping the aspect ratio; the rest is black (a method's other shape shows as bars)."""
    w, h = size
    sh, sw = rgb.shape[:2]
    s = min(w / sw, h / sh)
    nw, nh = max(1, round(sw * s)), max(1, round(sh * s))
    img = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    if (nw, nh) == (w, h):
        return img
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y:y + nh, x:x + nw] = img
    return out


def encode(src: Path, out: Path, size: tuple[int, int], crf: int, audio_from: Path | None) -> dict:
    """Re-encode ``src`` for the page; its own audio, else ``audio_from``'s (the clip's ground truth)."""
    info = probe(src)
    audio_src = src if info.has_audio else audio_from
    if audio_src is None:
        raise MediaError(f"{src}: no audio track and no ground-truth audio to give it")
    try:
        wav, sr, _, _ = load_audio(audio_src, sample_rate=None, mono=True)
    except AudioError as e:
        raise MediaError(f"{audio_src}: audio unreadable: {e}") from e
    fps = info.fps or 25.0
    frames = (fit(rgb, size) for _, _, _, rgb in iter_frames(src, fps=fps))
    write_video(out, frames, fps, wav, sr, crf=crf, faststart=True)
    return {"source": str(src), "audio": "own" if audio_src == src else f"ground truth ({audio_src})",
            "fps": fps, "source_size": [info.width, info.height], "duration_s": info.duration_s}
