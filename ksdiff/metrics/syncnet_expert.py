"""The workflow's SyncNet expert: trained on a prepared dataset's training split.

Used when no official ``syncnet_v2.model`` is configured (``eval.syncnet``), as
Wav2Lip trained its own lip-sync expert. Training pairs come from the
training split's usable clips, from their original video frames cropped with
our own landmarks (the same crops LSE scoring uses), so the expert never sees
a test clip. The report names these weights by their sha256 and says that the
numbers are comparable within this benchmark only.

After training, the expert is checked on the validation split (``check_sync``:
does it find offset 0, a known delay, and score in-sync audio above another
clip's audio?). The result is stored beside the weights and printed in every
report, so a leaderboard never shows LSE from an expert that did not learn sync
without saying so.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ksdiff.config import ExpertConfig, dataclass_from_dict
from ksdiff.data.manifest import clip_row
from ksdiff.io import parquet
from ksdiff.io.audio import read_wav
from ksdiff.metrics.frames import Video, crops_of
from ksdiff.metrics.syncnet_train import check_sync, describe_check, save_expert, train_expert

log = logging.getLogger(__name__)


def expert_config(opts: dict) -> ExpertConfig:
    """ExpertConfig with the overrides in cfg['eval']['expert'] (unknown keys refused)."""
    return dataclass_from_dict(ExpertConfig, opts, "eval.expert")


def split_clips(results: Path, split: str, max_clips: int) -> list[str]:
    """Usable clips of one split, in a stable order."""
    sp = parquet.read_table(results / "splits.parquet", "splits").to_pandas()
    qc = parquet.read_table(results / "qc.parquet", "qc").to_pandas()
    usable = set(qc.loc[qc["usable"], "clip_id"])
    clips = sorted(c for c in sp.loc[sp["split"] == split, "clip_id"] if c in usable)
    return clips[:max_clips]


def clip_crops(results: Path, clip: str, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(face crops (T, 224, 224, 3) RGB uint8, 16 kHz wav) of one clip."""
    video = Video(clip_row(results / "manifest.parquet", clip)["path"], results / "landmarks" / f"{clip}.parquet", fps)
    wav, _ = read_wav(results / "audio" / f"{clip}.wav")
    return crops_of(video), wav


def crops_on_disk(results: Path, clips: Sequence[str], fps: float, path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(crops, wav) of each clip, the crops appended to one uint8 file at ``path`` and memory-mapped back.

    Why: the expert samples 5-frame windows anywhere in its clips, and holding every crop in memory
    (150 kB a frame: 6 GB for 200 clips of 8 s) is what made its memory grow with ``eval.expert_max_clips``.
    Mapped from a file, the crops are pages the kernel reads on demand and can drop, so the process's own
    memory is one clip's video while cropping and the sampled batch while training; the disk holds them
    instead. The windows read are the same bytes, so the trained weights are unchanged.
    """
    spans = []
    with open(path, "wb") as f:
        for c in tqdm(clips, desc="expert crops", unit="clip", disable=None):
            crops, wav = clip_crops(results, c, fps)
            f.write(np.ascontiguousarray(crops).tobytes())
            spans.append((len(crops), crops.shape[1:], wav))
    store = np.memmap(path, dtype=np.uint8, mode="r")
    out, start = [], 0
    for n, shape, wav in spans:
        size = n * int(np.prod(shape))
        out.append((store[start : start + size].reshape(n, *shape), wav))
        start += size
    return out


def train_on_dataset(cfg: dict, results: str, out: str) -> int:
    results = Path(results)
    ev = cfg["eval"]
    ecfg = expert_config(ev.get("expert", {}))
    clips = split_clips(results, "train", ev.get("expert_max_clips", 200))
    if not clips:
        raise RuntimeError(f"{results}: no usable training clip to train a SyncNet expert on")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(out).parent, prefix=".expert-crops-") as tmp:
        data = crops_on_disk(results, clips, cfg["fps"], Path(tmp) / "crops.u8")
        log.info("training the SyncNet expert on %d clips (%.2f GB of crops on disk), %d steps", len(data),
                 sum(d[0].nbytes for d in data) / 1e9, ecfg.steps)
        model, info = train_expert(data, ecfg)
        del data
    first, last = np.mean(info["losses"][:20]), np.mean(info["losses"][-20:])
    log.info("expert loss %.4f -> %.4f", first, last)
    held_out = split_clips(results, "val", ev.get("expert_check_clips", 8))
    try:
        info["check"] = check_sync(model, [clip_crops(results, c, cfg["fps"]) for c in held_out], color=ecfg.color)
        info["check"]["split"], info["check"]["clip_ids"] = "val", held_out
    except ValueError as e:  # fewer than two usable validation clips, or all too short
        info["check"] = None
        log.warning("the expert could not be checked on the validation split: %s", e)
    log.info("SyncNet expert %s", describe_check(info["check"]))
    saved = save_expert(model, out, info)
    log.info("saved %s sha256 %s", out, saved["sha256"])
    return 0
