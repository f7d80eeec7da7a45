"""Speaker-disjoint, deterministic train/val/test splits.

Speakers (not clips) are shuffled with the configured seed and assigned to
test, then val, then train until each split holds its fraction of the clips.
With three or more speakers, test and val each get at least one speaker, so a
tiny demo corpus still has something to validate and score on. The same
manifest and seed always give the same splits; adding a new speaker never
moves an existing speaker because the order is a hash of (seed, speaker id).
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter

from ksdiff.io import parquet

log = logging.getLogger(__name__)


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


def make_splits(cfg: dict, manifest: str, out: str) -> int:
    opts = cfg["dataset"]
    t = parquet.read_table(manifest, "manifest").table
    clips = t.column("clip_id").to_pylist()
    speakers = t.column("speaker_id").to_pylist()
    per_speaker = Counter(speakers)
    assign = assign_splits(per_speaker, opts["val_fraction"], opts["test_fraction"], opts["seed"])
    split = [assign[s] for s in speakers]
    parquet.write_table(out, "splits", {"clip_id": clips, "speaker_id": speakers, "split": split},
                        attrs={"seed": opts["seed"], "val_fraction": opts["val_fraction"], "test_fraction": opts["test_fraction"]})
    c = Counter(split)
    log.info("splits: %d train, %d val, %d test clips over %d speakers", c["train"], c["val"], c["test"], len(per_speaker))
    return 0
