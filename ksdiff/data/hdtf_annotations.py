"""HDTF's annotation files -> one record per video, with every odd line reported.

HDTF (Zhang et al., CVPR 2021) ships, per subset ``RD`` / ``WDA`` / ``WRA``:

- ``{S}_video_url.txt``        ``name url``
- ``{S}_resolution.txt``       ``name.mp4 height`` (the download the authors used)
- ``{S}_annotion_time.txt``    ``name.mp4 mm:ss-mm:ss ...`` (clip i = the i-th span)
- ``{S}_crop_wh.txt``          ``name_i.mp4 min_x width min_y height`` (at that height)
- ``{S}_crop_ratio.txt``       ``name_i.mp4 scale`` (enlarges the landmark square)

The shipped files have quirks we keep working through: a UTF-8 BOM
(WDA_video_url), trailing blanks, a video listed with a URL but no spans
(RD Radio24), spans without a crop window, a listed resolution of 0. A line
that does not parse is reported (file, line, reason) and skipped; it never
stops the others from being read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SUBSETS = ("RD", "WDA", "WRA")
_TIME = re.compile(r"^(\d+):([0-5]\d)$")
_NAME = re.compile(r"^[A-Za-z0-9-]+$")
_CLIP = re.compile(r"^(?P<video>[A-Za-z0-9-]+)_(?P<index>\d+)$")


@dataclass
class Video:
    subset: str
    name: str
    url: str = ""
    resolution: int = 0  # listed download height; 0 when not listed (or listed as 0)
    spans: list[tuple[float, float]] = field(default_factory=list)  # (start_s, end_s) per clip
    windows: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # index -> (x, y, w, h)
    ratios: dict[int, float] = field(default_factory=dict)  # index -> crop ratio


@dataclass
class Problem:
    file: str
    line: int  # 1-based; 0 for a problem of the file as a whole
    reason: str


@dataclass
class Annotations:
    videos: dict[tuple[str, str], Video]  # (subset, name) -> Video
    problems: list[Problem]


def clip_name(subset: str, video: str, index: int) -> str:
    """``{subset}_{video}_{index}``: HDTF's ``video_i`` with the subset in front,
    which is what the manifest's ``hdtf`` layout reads (and keeps WDA and WRA apart)."""
    return f"{subset}_{video}_{index}"


def speaker_of(subset: str, video: str) -> str:
    """The person of a video. WDA/WRA number one politician's videos
    (AdamKinzinger0, AdamKinzinger1; BennieThompson, BennieThompson1), so the
    digits go; RD's RadioN are different programmes and keep theirs."""
    return video if subset == "RD" else (video.rstrip("0123456789") or video)


def parse_time(s: str) -> float:
    """``mm:ss`` -> seconds (ValueError otherwise)."""
    m = _TIME.match(s)
    if m is None:
        raise ValueError(f"not mm:ss: {s!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


def _lines(path: Path):
    # utf-8-sig drops the BOM one shipped file starts with.
    for i, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), 1):
        parts = line.split()
        if parts:
            yield i, parts


def _stem(token: str) -> str:
    return token[:-4] if token.lower().endswith(".mp4") else token


KINDS = ("annotion_time", "resolution", "video_url", "crop_wh", "crop_ratio")  # {S}_{kind}.txt, HDTF's spelling


def annotation_files(folder: str | Path, subsets=SUBSETS) -> list[Path]:
    """The annotation files ``load`` reads that exist under ``folder``."""
    folder = Path(folder)
    return [p for s in subsets for k in KINDS if (p := folder / f"{s}_{k}.txt").exists()]


def load(folder: str | Path, subsets=SUBSETS) -> Annotations:
    """Read every subset's five files under ``folder``; missing files are problems."""
    folder = Path(folder)
    videos: dict[tuple[str, str], Video] = {}
    problems: list[Problem] = []

    def video(subset, name):
        return videos.setdefault((subset, name), Video(subset, name))

    for s in subsets:
        files = {k: folder / f"{s}_{k}.txt" for k in KINDS}
        for k, path in files.items():
            if not path.exists():
                problems.append(Problem(path.name, 0, "file missing"))
                continue
            for i, parts in _lines(path):
                try:
                    _read_line(s, k, parts, video)
                except ValueError as e:
                    problems.append(Problem(path.name, i, str(e)))
    for (s, name), v in sorted(videos.items()):
        if not v.spans:
            problems.append(Problem(f"{s}_annotion_time.txt", 0, f"{name}: no talking spans annotated"))
        for i in sorted(set(v.windows) | set(v.ratios)):
            if i >= len(v.spans):
                problems.append(Problem(f"{s}_crop_wh.txt", 0, f"{name}_{i}: crop given for a span that is not annotated"))
    return Annotations(videos, problems)


def _read_line(s: str, kind: str, parts: list[str], video) -> None:
    """Parse one line into its video's record; ValueError says what is wrong."""
    if kind in ("annotion_time", "resolution", "video_url"):
        name = _stem(parts[0])
        if not _NAME.match(name):
            raise ValueError(f"bad video name {parts[0]!r}")
        if kind == "annotion_time":
            if len(parts) < 2:
                raise ValueError(f"{name}: no spans")
            spans = []
            for tok in parts[1:]:
                a, sep, b = tok.partition("-")
                start, end = parse_time(a), parse_time(b) if sep else None
                if end is None or end <= start:
                    raise ValueError(f"{name}: bad span {tok!r}")
                spans.append((float(start), float(end)))
            video(s, name).spans = spans
        elif kind == "resolution":
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(f"{name}: resolution is not a number: {' '.join(parts[1:])!r}")
            video(s, name).resolution = int(parts[1])
        else:
            if len(parts) != 2 or "://" not in parts[1]:
                raise ValueError(f"{name}: no URL")
            video(s, name).url = parts[1]
        return
    m = _CLIP.match(_stem(parts[0]))
    if m is None:
        raise ValueError(f"bad clip name {parts[0]!r} (want video_i.mp4)")
    v, i = video(s, m.group("video")), int(m.group("index"))
    if kind == "crop_wh":
        if len(parts) != 5 or not all(p.isdigit() for p in parts[1:]):
            raise ValueError(f"{parts[0]}: want 'min_x width min_y height', got {' '.join(parts[1:])!r}")
        x, w, y, h = (int(p) for p in parts[1:])
        if w <= 0 or h <= 0:
            raise ValueError(f"{parts[0]}: empty window")
        v.windows[i] = (x, y, w, h)
    else:
        try:
            r = float(parts[1]) if len(parts) == 2 else float("nan")
        except ValueError:
            r = float("nan")
        if not r > 0:
            raise ValueError(f"{parts[0]}: crop ratio is not a positive number: {' '.join(parts[1:])!r}")
        v.ratios[i] = r
