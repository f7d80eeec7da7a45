"""Train/val/test splits: a published split file, or a speaker-disjoint hash split.

Hash split (no ``dataset.split_file``): speakers (not clips) are shuffled with
the configured seed and assigned to test, then val, then train until each
split holds its fraction of the clips. With three or more speakers, test and
val each get at least one speaker, so a tiny demo corpus still has something
to validate and score on. The same manifest and seed always give the same
splits; adding a new speaker never moves an existing speaker because the
order is a hash of (seed, speaker id).

Published split (``dataset.split_file``), so that a paper's test set is
reproduced exactly. Accepted files (see read_split_file):

- CSV/TSV (``.csv``, ``.tsv``, ``.txt`` with a header) or Parquet: a split
  column (``split`` or ``set``) and an id column: ``clip_id``/``clip`` (clip
  ids), ``speaker_id``/``speaker`` or VoxCeleb's meta ``VoxCeleb1 ID``/
  ``VoxCeleb2 ID`` (speaker ids, e.g. vox1_meta.csv, vox2_meta.csv), or ``id``
  (a clip id when the data has such a clip, else a speaker id). Column names
  are matched case-insensitively, surrounding spaces ignored.
- VoxCeleb1's ``iden_split.txt``: lines ``1 id10001/1zcIwhmdeo4/00001.wav``
  with 1 = train, 2 = val, 3 = test; the path names the clip
  (``id10001_1zcIwhmdeo4_00001`` in the voxceleb layout).
- Plain lists, one id per line (VoxCeleb2's speaker lists), given as a
  mapping ``{train: dev.txt, test: test.txt}``: every id in a file gets that
  split.

Split names: train (also ``dev``, ``training``, ``1``), val (``valid``,
``validation``, ``2``), test (``3``); anything else is an error. An id may be
a path (``id10001/1zcIwhmdeo4/00001.wav``, ``RD_Radio1_000.mp4``): the video
extension is dropped and ``/`` becomes ``_``, as the manifest names clips.
A clip row takes precedence over its speaker's row.

Ids in the file missing from the data and clips of the data the file does not
cover are logged and recorded in splits.parquet's attrs; the latter are left
out (``dataset.split_unlisted: drop``, the default, so nothing leaks into a
published split) or placed by the hash split (``hash``: a clip whose speaker
the file puts in one split joins it, other speakers are hash-assigned among
themselves). When the file places no clip of the data in val (VoxCeleb's
lists have dev and test only), val speakers are drawn from the file's training
speakers with the hash split at ``val_fraction``. A published split is
followed even where it puts one speaker in several splits (VoxCeleb1's
identification split does); the speakers concerned are logged and recorded.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter, defaultdict
from pathlib import Path

from ksdiff.config import split_file_paths
from ksdiff.data.manifest import VIDEO_EXTS, safe_id
from ksdiff.io import parquet

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {
    "train": "train", "training": "train", "dev": "train", "1": "train",
    "val": "val", "valid": "val", "validation": "val", "2": "val",
    "test": "test", "3": "test",
}
_CLIP_COLS = ("clip_id", "clip")
_SPEAKER_COLS = ("speaker_id", "speaker", "voxceleb1 id", "voxceleb2 id")
_SPLIT_COLS = ("split", "set")
_MEDIA_EXTS = VIDEO_EXTS | {".wav", ".m4a", ".flac", ".mp3", ".aac"}
_IDEN_LINE = re.compile(r"^\s*([123])\s+(\S+)\s*$")
MAX_LISTED = 1000  # ids recorded by name in the attrs (counts are always complete)


class SplitFileError(ValueError):
    pass


def _rank(seed: int, speaker: str) -> str:
    return hashlib.sha256(f"{seed}:{speaker}".encode()).hexdigest()


def assign_splits(speaker_clips: dict[str, int], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """speaker -> split, given the number of clips per speaker."""
    speakers = sorted(speaker_clips, key=lambda s: _rank(seed, s))
    total = sum(speaker_clips.values())
    out: dict[str, str] = {}
    counts = Counter()
    quotas = [("test", test_fraction), ("val", val_fraction)]
    i = 0
    for split, frac in quotas:
        # At least one speaker per held-out split when there are enough speakers to keep one for training.
        while i < len(speakers) and (counts[split] < frac * total or (counts[split] == 0 and frac > 0 and len(speakers) >= 3)):
            if len(speakers) - i <= 1:  # always keep a training speaker
                break
            out[speakers[i]] = split
            counts[split] += speaker_clips[speakers[i]]
            i += 1
    for s in speakers[i:]:
        out[s] = "train"
    return out


# ---------------------------------------------------------------- split files


def normalise_id(s: str) -> str:
    """A listed id as the manifest spells it: media extension dropped, '/' -> '_', safe characters."""
    s = str(s).strip()
    p = Path(s)
    if p.suffix.lower() in _MEDIA_EXTS:
        s = s[: -len(p.suffix)]
    return safe_id(s.strip("/").replace("/", "_"))


def split_name(value, where: str) -> str:
    v = str(value).strip().lower()
    if v.endswith(".0"):  # 1.0 from a numeric Parquet/CSV column
        v = v[:-2]
    if v not in SPLIT_NAMES:
        raise SplitFileError(f"{where}: unknown split {value!r} (train/dev/1, val/validation/2, test/3)")
    return SPLIT_NAMES[v]


def _read_columns(path: Path):
    import pandas as pd

    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    first = path.read_text(errors="replace").lstrip("\ufeff").splitlines()[:1]
    sep = "\t" if first and "\t" in first[0] else ","
    return pd.read_csv(path, sep=sep, dtype=str, skipinitialspace=True, keep_default_na=False)


def _table_rows(path: Path) -> list[tuple[str, str, str]]:
    """(kind, id, split) rows of a CSV/TSV/Parquet split table; kind clip | speaker | id."""
    df = _read_columns(path)
    cols = {str(c).strip().lower(): c for c in df.columns}
    split_col = next((cols[c] for c in _SPLIT_COLS if c in cols), None)
    for kind, names in (("clip", _CLIP_COLS), ("speaker", _SPEAKER_COLS), ("id", ("id",))):
        id_col = next((cols[c] for c in names if c in cols), None)
        if id_col is not None:
            break
    if split_col is None or id_col is None:
        raise SplitFileError(
            f"{path}: needs a split column (split or set) and an id column (clip_id, speaker_id, "
            f"VoxCeleb1 ID, VoxCeleb2 ID or id); found {[str(c) for c in df.columns]}"
        )
    return [(kind, normalise_id(i), split_name(s, f"{path} row {k + 2}"))
            for k, (i, s) in enumerate(zip(df[id_col], df[split_col])) if str(i).strip()]


def _text_rows(path: Path, split: str | None) -> list[tuple[str, str, str]]:
    """Rows of iden_split.txt-style lines ('1 id10001/yt/00001.wav') or, with ``split``, a plain id list."""
    lines = [(k + 1, ln.strip()) for k, ln in enumerate(path.read_text().splitlines()) if ln.strip() and not ln.lstrip().startswith("#")]
    if split is not None:
        return [("id", normalise_id(ln), split) for _, ln in lines]
    rows = []
    for k, ln in lines:
        m = _IDEN_LINE.match(ln)
        if not m:
            raise SplitFileError(
                f"{path} line {k}: {ln!r} is not '<1|2|3> <path>' (VoxCeleb1 iden_split.txt); a plain list of "
                "ids needs its split named: dataset.split_file: {train: dev.txt, test: test.txt}"
            )
        rows.append(("clip", normalise_id(m.group(2)), split_name(m.group(1), f"{path} line {k}")))
    return rows


def read_split_file(split_file) -> list[tuple[str, str, str]]:
    """(kind, id, split) rows of ``dataset.split_file``; kind is clip, speaker or id (either)."""
    if isinstance(split_file, dict):
        rows = []
        for split, p in split_file.items():
            rows += _text_rows(Path(p), split_name(split, "dataset.split_file"))
        return rows
    path = Path(split_file)
    if not path.exists():
        raise SplitFileError(f"split file not found: {path}")
    if path.suffix.lower() in (".csv", ".tsv", ".parquet"):
        return _table_rows(path)
    first = next((ln for ln in path.read_text().splitlines() if ln.strip()), "")
    if "," in first or "\t" in first:
        return _table_rows(path)  # a .txt table with a header
    return _text_rows(path, None)  # iden_split.txt lines (a plain list is refused with how to name its split)


def _file_sha256(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def apply_split_file(rows, clips: list[str], speakers: list[str], opts: dict) -> tuple[dict[str, str], dict]:
    """clip -> split for the clips the published split places (or ``split_unlisted`` assigns), and a report.

    ``rows`` from read_split_file; ``clips``, ``speakers``: the manifest's
    clip ids and their speakers (same order).
    """
    clip_set, speaker_set = set(clips), set(speakers)
    by_clip: dict[str, str] = {}
    by_speaker: dict[str, str] = {}
    missing = []
    for kind, i, split in rows:
        if kind == "id":
            kind = "clip" if i in clip_set else "speaker"
        known, target = (clip_set, by_clip) if kind == "clip" else (speaker_set, by_speaker)
        if i not in known:
            missing.append(i)
            continue
        if target.get(i, split) != split:
            raise SplitFileError(f"{kind} {i!r} is listed in both {target[i]!r} and {split!r}")
        target[i] = split
    assign: dict[str, str] = {}
    unlisted = []
    for c, s in zip(clips, speakers):
        split = by_clip.get(c) or by_speaker.get(s)
        if split:
            assign[c] = split
        else:
            unlisted.append(c)
    report = {"split_file": opts["split_file"], "split_file_sha256": _file_sha256(split_file_paths(opts["split_file"])),
              "listed_rows": len(rows), "missing_from_data": len(missing), "unlisted_clips": len(unlisted),
              "split_unlisted": opts.get("split_unlisted", "drop")}
    speaker_of = dict(zip(clips, speakers))
    if unlisted and report["split_unlisted"] == "hash":
        # An unlisted clip of a speaker the file puts in exactly one split joins it.
        placed = defaultdict(set)
        for c, split in assign.items():
            placed[speaker_of[c]].add(split)
        rest = Counter()
        for c in unlisted:
            s = speaker_of[c]
            if len(placed[s]) == 1:
                assign[c] = next(iter(placed[s]))
            else:
                rest[s] += 1
        by_hash = assign_splits(rest, opts["val_fraction"], opts["test_fraction"], opts["seed"]) if rest else {}
        for c in unlisted:
            if c not in assign:
                assign[c] = by_hash[speaker_of[c]]
    if "val" not in assign.values() and opts["val_fraction"] > 0:
        # VoxCeleb's lists have dev and test only: val speakers come from the training speakers.
        train = Counter(speaker_of[c] for c, split in assign.items() if split == "train")
        val = {s for s, split in assign_splits(train, opts["val_fraction"], 0.0, opts["seed"]).items() if split == "val"}
        for c, split in assign.items():
            if split == "train" and speaker_of[c] in val:
                assign[c] = "val"
        report["val_from"] = f"hash split of the file's training speakers (seed {opts['seed']}, val_fraction {opts['val_fraction']})"
    per_speaker = defaultdict(set)
    for c, split in assign.items():
        per_speaker[speaker_of[c]].add(split)
    straddle = sorted(s for s, v in per_speaker.items() if len(v) > 1)
    report.update(
        missing_ids=sorted(set(missing))[:MAX_LISTED], unlisted_ids=unlisted[:MAX_LISTED],
        speakers_in_several_splits=len(straddle), speakers_in_several_splits_ids=straddle[:MAX_LISTED],
    )
    return assign, report


def _log_report(report: dict) -> None:
    if report["missing_from_data"]:
        log.warning("split file: %d listed ids are not in the data (first: %s)", report["missing_from_data"],
                    ", ".join(report["missing_ids"][:5]))
    if report["unlisted_clips"]:
        how = "left out" if report["split_unlisted"] == "drop" else "placed by the hash split"
        log.warning("split file: %d clips of the data are not listed, %s (first: %s)", report["unlisted_clips"], how,
                    ", ".join(report["unlisted_ids"][:5]))
    if report["speakers_in_several_splits"]:
        log.warning("split file puts %d speakers in several splits (first: %s)", report["speakers_in_several_splits"],
                    ", ".join(report["speakers_in_several_splits_ids"][:5]))
    if "val_from" in report:
        log.info("split file has no val clips in this data: val = %s", report["val_from"])


def make_splits(cfg: dict, manifest: str, out: str) -> int:
    opts = cfg["dataset"]
    t = parquet.read_table(manifest, "manifest").table
    clips = t.column("clip_id").to_pylist()
    speakers = t.column("speaker_id").to_pylist()
    attrs = {"seed": opts["seed"], "val_fraction": opts["val_fraction"], "test_fraction": opts["test_fraction"]}
    if opts.get("split_file"):
        assign, report = apply_split_file(read_split_file(opts["split_file"]), clips, speakers, opts)
        _log_report(report)
        attrs.update(report)
        keep = [k for k, c in enumerate(clips) if c in assign]
        clips, speakers = [clips[k] for k in keep], [speakers[k] for k in keep]
        split = [assign[c] for c in clips]
    else:
        by_speaker = assign_splits(Counter(speakers), opts["val_fraction"], opts["test_fraction"], opts["seed"])
        split = [by_speaker[s] for s in speakers]
    parquet.write_table(out, "splits", {"clip_id": clips, "speaker_id": speakers, "split": split}, attrs=attrs)
    c = Counter(split)
    log.info("splits: %d train, %d val, %d test clips over %d speakers", c["train"], c["val"], c["test"], len(set(speakers)))
    return 0
