"""Dataset layouts -> the manifest table (one row per clip).

Layouts
- ``hdtf``: ``{RD|WDA|WRA}_{Name}_{index}.mp4`` files (HDTF's clip naming); the
  speaker is ``Name``, unless ``ksdiff hdtf-prepare`` wrote the clip: its
  preparation table in the root names the person (AdamKinzinger0 and
  AdamKinzinger1 are one speaker, so no split holds him twice). Other video files in the folder are kept with their stem
  as speaker (and a warning), so a stray file is never silently dropped.
- ``voxceleb``: ``id{NNNNN}/{youtube_id}/{NNNNN}.mp4`` (VoxCeleb1/2); the speaker
  is the ``id`` folder, the clip id ``{id}_{youtube_id}_{NNNNN}``.
- ``folder``: every video below the root; a clip in a sub-folder takes the
  first sub-folder as speaker, a clip directly in the root is its own speaker.
- ``hdtf_raw``: ``hdtf``, for a root that ``ksdiff hdtf-prepare`` filled.
- ``auto``: ``voxceleb`` if the root holds ``id*`` folders, ``hdtf`` if any file
  matches the HDTF pattern, else ``folder``.

A clip whose container cannot be read still gets a row, with ``probe_error``
saying why: the QC table reports it and every later step skips it.
"""
from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

from tqdm import tqdm

from ksdiff.io import parquet
from ksdiff.io.files import sha256_file
from ksdiff.io.video import VideoError, probe

log = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
HDTF_RE = re.compile(r"^(RD|WDA|WRA)_(?P<name>[A-Za-z0-9-]+?)_(?P<index>\d+)$")
VOX_ID_RE = re.compile(r"^id\d+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_id(s: str) -> str:
    """A clip or speaker id usable as a file name and a Snakemake wildcard."""
    return _UNSAFE.sub("-", s).strip("-.") or "clip"


def _videos(root: Path, recursive: bool) -> list[Path]:
    it = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in it if p.suffix.lower() in VIDEO_EXTS and not p.name.startswith("."))


def detect_layout(root: Path) -> str:
    if any(p.is_dir() and VOX_ID_RE.match(p.name) for p in root.iterdir()):
        return "voxceleb"
    if any(HDTF_RE.match(p.stem) for p in _videos(root, recursive=False)):
        return "hdtf"
    return "folder"


def _prepared_speakers(root: Path) -> dict[str, str]:
    """clip -> speaker from the table ``ksdiff hdtf-prepare`` leaves in ``root`` (empty without one)."""
    from ksdiff.data.hdtf_prepare import TABLE_NAME

    path = root / TABLE_NAME
    if not path.exists():
        return {}
    try:
        t = parquet.read_table(path, "hdtf_preparation").table
    except Exception as e:  # e.g. another schema version: names still give speakers
        log.warning("%s not read (%s): speakers from the clip names", path, e)
        return {}
    return dict(zip(t.column("clip_id").to_pylist(), t.column("speaker_id").to_pylist()))


def scan(root: str | Path, layout: str = "auto") -> list[dict]:
    """(clip_id, speaker_id, path, layout) for every video of a dataset root."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root is not a folder: {root}")
    if layout == "auto":
        layout = detect_layout(root)
    elif layout == "hdtf_raw":  # root holds what `ksdiff hdtf-prepare` cut: HDTF's clip naming
        layout = "hdtf"
    rows = []
    if layout == "hdtf":
        prepared = _prepared_speakers(root)
        for p in _videos(root, recursive=False):
            m = HDTF_RE.match(p.stem)
            if m is None:
                log.warning("%s does not follow HDTF naming; its stem is taken as the speaker", p.name)
            speaker = prepared.get(p.stem) or (m.group("name") if m else p.stem)
            rows.append(dict(clip_id=safe_id(p.stem), speaker_id=safe_id(speaker), path=p))
    elif layout == "voxceleb":
        for p in _videos(root, recursive=True):
            rel = p.relative_to(root).parts
            if len(rel) != 3 or not VOX_ID_RE.match(rel[0]):
                log.warning("%s is not at id*/youtube_id/utterance: skipped from the VoxCeleb layout", p)
                continue
            rows.append(dict(clip_id=safe_id(f"{rel[0]}_{rel[1]}_{p.stem}"), speaker_id=rel[0], path=p))
    elif layout == "folder":
        for p in _videos(root, recursive=True):
            rel = p.relative_to(root).parts
            speaker = rel[0] if len(rel) > 1 else p.stem
            clip = "_".join(rel[:-1] + (p.stem,))
            rows.append(dict(clip_id=safe_id(clip), speaker_id=safe_id(speaker), path=p))
    else:
        raise ValueError(f"unknown layout {layout!r} (hdtf, voxceleb, folder or auto)")
    seen: dict[str, int] = {}
    for r in rows:  # make ids unique without losing a clip
        n = seen.get(r["clip_id"], 0)
        seen[r["clip_id"]] = n + 1
        if n:
            r["clip_id"] = f"{r['clip_id']}-{n}"
        r["layout"] = layout
    return rows


def probe_row(r: dict, dataset: str) -> dict:
    """The manifest row of one scanned clip: size, content hash and container probe.
    An unreadable file gets its row with ``probe_error`` saying why."""
    path = Path(r["path"]).resolve()
    rec = dict(
        clip_id=r["clip_id"], speaker_id=r["speaker_id"], dataset=dataset, layout=r["layout"],
        path=str(path), duration_s=0.0, fps=0.0, n_frames=0, width=0, height=0, has_audio=False,
        audio_sample_rate=0, audio_channels=0, variable_fps=False, size_bytes=0, sha256="", probe_error="",
    )
    try:
        rec["size_bytes"] = path.stat().st_size
        rec["sha256"] = sha256_file(path)
        info = probe(path)
        rec.update(
            duration_s=info.duration_s, fps=info.fps, n_frames=info.n_frames, width=info.width,
            height=info.height, has_audio=info.has_audio, audio_sample_rate=info.audio_sample_rate,
            audio_channels=info.audio_channels, variable_fps=info.variable_fps,
        )
    except (VideoError, OSError) as e:
        rec["probe_error"] = str(e) or type(e).__name__
        log.warning("%s: %s", r["clip_id"], rec["probe_error"])
    return rec


def write_manifest(out, rows: list[dict], dataset: str, root, desc: str) -> None:
    """Probe ``rows`` (from ``scan``) and write them as a manifest table."""
    cols = {f.name: [] for f in parquet.schemas.MANIFEST}
    for r in tqdm(rows, desc=desc, unit="clip", disable=None):
        rec = probe_row(r, dataset)
        for k in cols:
            cols[k].append(rec[k])
    n_bad = sum(1 for e in cols["probe_error"] if e)
    log.info("%s: %d clips (%d unreadable) in %s", desc, len(rows), n_bad, root)
    parquet.write_table(out, "manifest", cols, attrs={"root": str(Path(root).resolve()), "dataset": dataset})


def build_manifest(cfg: dict, root: str, dataset: str, out: str, layout: str = "auto") -> int:
    """Scan ``root`` and write the manifest table to ``out`` (one serial job; the
    workflow probes shard by shard instead, ksdiff.data.shards)."""
    write_manifest(out, scan(root, layout), dataset, root, f"manifest {dataset}")
    return 0


@functools.lru_cache(maxsize=4)
def _rows_by_clip(path: str, mtime_ns: int) -> dict[str, dict]:
    t = parquet.read_table(path, "manifest").table.to_pylist()
    return {r["clip_id"]: r for r in t}


def clip_row(manifest: str | Path, clip: str) -> dict:
    """The manifest row of one clip as a dict (KeyError if absent). The table is read
    once per process and file version: a shard job asks for each of its clips."""
    p = Path(manifest)
    rows = _rows_by_clip(str(p.resolve()), p.stat().st_mtime_ns)
    if clip not in rows:
        raise KeyError(f"clip {clip!r} is not in {manifest}")
    return dict(rows[clip])
