"""The QC table of an external method's videos (eval.external): one row per video, scored or not, and why.

Before another system's videos are scored, each one is placed against the dataset (``check_videos``):

  ok, lag corrected, unchecked, mismatch
      a video of a usable ground-truth test clip, checked against that clip by its audio
      (ksdiff.metrics.external_check: peak correlation, lag, length); all but 'mismatch' are scored,
      a corrected lag is removed before scoring;
  no ground truth   its id is no clip of the dataset: scored on its own audio, without LVE;
  other split       a clip of the training or validation split: only test clips are scored;
  ground truth unusable  a test clip QC left out (or whose tables cannot be read): nothing to score against;
  not extracted     the workflow could not extract the video's coefficients (or, without ground truth, its audio);
  error             the check itself raised (the message is the reason); the other videos are still checked.

A usable test clip the method's folder holds no video of has no row here (the table lists videos): its
metrics table lists it as skipped, with ``NO_VIDEO`` as the reason (``missing_videos``).

The workflow checks one shard of the videos per job (`ksdiff external-check`, ``check_shard``): that part is
what the shard's scoring job reads (ksdiff.evaluate, ``checks``), and ``merge_external_qc`` joins the parts into
results/{dataset}/external_qc/{method}.parquet, which the leaderboard shows. Schema: ksdiff.io.schemas.EXTERNAL_QC.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from ksdiff.io import parquet, schemas
from ksdiff.metrics import external_check
from ksdiff.metrics.clip import read_audio
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.test_set import test_clips

log = logging.getLogger(__name__)

NO_GROUND_TRUTH = "no ground truth"
OTHER_SPLIT = "other split"
GT_UNUSABLE = "ground truth unusable"
NOT_EXTRACTED = "not extracted"
ERROR = "error"
NO_VIDEO = "no video: the method's folder holds no video of this test clip"
# Statuses measured against a ground-truth clip (external_check), and those of videos that are scored.
CHECKED = (external_check.OK, external_check.LAG_CORRECTED, external_check.UNCHECKED, external_check.MISMATCH)
SCORED = (external_check.OK, external_check.LAG_CORRECTED, external_check.UNCHECKED, NO_GROUND_TRUTH)


def n_frames(table: parquet.Table) -> int:
    """Frames of a coeffs table's first sample."""
    s = table.column("sample")
    return int((s == s.min()).sum()) if len(s) else 0


def _coeffs(path: Path) -> tuple[parquet.Table | None, str]:
    if not path.exists():
        return None, f"missing {path}"
    t = parquet.read_table(path, "coeffs")
    return (t, "") if t.ok else (None, f"{path.parent.name}: {t.status}: {t.reason}")


def _row(clip: str, path: str, status: str, reason: str, frames: int = 0) -> dict:
    return dict(clip_id=clip, path=path, status=status, scored=status in SCORED, reason=reason, peak_corr=None,
                lag_s=None, lag_frames=0, n_frames=frames, n_frames_gt=0, length_diff_frames=0)


def check_video(clip: str, path: str, results: Path, ext_root: Path, split_of: dict, qc_why: dict, fps: float) -> dict:
    """The QC row of one external video. results: results/{dataset}; ext_root: the folder its extraction wrote
    (results/{dataset}-ext-{method}: coeffs/, audio/); split_of: clip -> split; qc_why: test clips QC left out."""
    video, why = _coeffs(ext_root / "coeffs" / f"{clip}.parquet")
    if why:
        return _row(clip, path, NOT_EXTRACTED, f"the video's coefficients: {why}")
    frames = n_frames(video)
    video_wav = ext_root / "audio" / f"{clip}.wav"
    split = split_of.get(clip)
    if split is None:
        if not video_wav.exists():
            return _row(clip, path, NOT_EXTRACTED, "no clip of the dataset has this id, and the video has no "
                        "extracted audio to score it on", frames)
        return _row(clip, path, NO_GROUND_TRUTH, "no clip of the dataset has this id: scored on its own audio, "
                    "without LVE", frames)
    if split != "test":
        return _row(clip, path, OTHER_SPLIT, f"a clip of the {split} split: only test clips are scored", frames)
    if clip in qc_why:
        return _row(clip, path, GT_UNUSABLE, qc_why[clip], frames)
    gt, why = _coeffs(results / "coeffs" / f"{clip}.parquet")
    gt_wav = results / "audio" / f"{clip}.wav"
    if why or not gt_wav.exists():
        return _row(clip, path, GT_UNUSABLE, f"ground truth {why}" if why else f"ground truth: no audio ({gt_wav})", frames)
    check = external_check.check_clip(clip, read_audio(video_wav) if video_wav.exists() else None, read_audio(gt_wav),
                                      frames, n_frames(gt), fps, PROTOCOL.sample_rate)
    return {**check.row(), "path": path, "scored": check.scored}


def check_videos(results: str | Path, ext_root: str | Path, videos: dict[str, str], method: str, fps: float) -> list[dict]:
    """The QC rows of ``videos`` (clip id -> video path) of external method ``method``, in clip order; a video
    whose check raises gets status 'error' with the message, and the others are still checked."""
    results, ext_root = Path(results), Path(ext_root)
    splits = parquet.read_table(results / "splits.parquet", "splits").to_pandas()
    split_of = dict(zip(splits["clip_id"], splits["split"]))
    _, qc_skipped = test_clips(results)
    qc_why = {s["clip_id"]: s["reason"] for s in qc_skipped}
    rows = []
    for clip in sorted(videos):
        try:
            row = check_video(clip, videos[clip], results, ext_root, split_of, qc_why, fps)
        except (ValueError, OSError, KeyError) as e:  # one bad video never stops the table
            log.exception("%s: %s", clip, e)
            row = _row(clip, videos[clip], ERROR, f"{type(e).__name__}: {e}")
        rows.append({**row, "method": method, "dataset": results.name})
        log.info("%s: %s%s", clip, row["status"], f" ({row['reason']})" if row["reason"] else "")
    return rows


def missing_videos(results: str | Path, videos) -> list[dict]:
    """The usable test clips of ``results`` (results/{dataset}) that ``videos`` (the ids of an external method's
    videos) has none of, each as a skipped record (clip_id, reason) of the method's metrics table."""
    have = set(videos)
    return [{"clip_id": c, "reason": NO_VIDEO} for c in test_clips(Path(results))[0] if c not in have]


def _attrs(dataset: str, method: str, fps: float) -> dict:
    return {"dataset": dataset, "method": method, "fps": fps, "sample_rate": PROTOCOL.sample_rate,
            "thresholds": {"min_peak_corr": external_check.MIN_PEAK_CORR, "max_lag_s": external_check.MAX_LAG_S,
                           "max_length_diff_frames": external_check.MAX_LENGTH_DIFF_FRAMES}}


def write_rows(out: str | Path, rows: list[dict], attrs: dict) -> None:
    parquet.write_table(out, "external_qc", {f.name: [r[f.name] for r in rows] for f in schemas.EXTERNAL_QC}, attrs=attrs)


def read_rows(path: str | Path) -> list[dict]:
    """The rows of an external QC table (a shard's part or the merged table); not measured values are None."""
    return parquet.read_table(path, "external_qc").table.to_pylist()


def check_shard(cfg: dict, results: str, external: str, manifest: str, method: str, out: str) -> int:
    """`ksdiff external-check`: the QC rows of one shard of an external method's videos (``manifest``: the
    shard's manifest part of results/{dataset}-ext-{method}, whose extraction is ``external``)."""
    m = parquet.read_table(manifest, "manifest").to_pandas()
    fps = float(cfg["fps"])
    rows = check_videos(results, external, dict(zip(m["clip_id"], m["path"])), method, fps)
    write_rows(out, rows, _attrs(Path(results).name, method, fps))
    n = sum(r["scored"] for r in rows)
    log.info("%s: %d of %d videos scored", method, n, len(rows))
    return 0


def merge_external_qc(cfg: dict, parts: list, out: str) -> int:
    """`ksdiff merge-external-qc`: the shards' parts (in shard order) -> the method's external QC table."""
    tabs = [parquet.read_table(p, "external_qc") for p in parts]
    table = (pa.concat_tables([t.table.replace_schema_metadata(None) for t in tabs]) if tabs
             else schemas.EXTERNAL_QC.empty_table())
    attrs = dict(tabs[0].attrs) if tabs else {}
    parquet.write_table(out, "external_qc", table, attrs={**attrs, "n_parts": len(tabs)})
    log.info("external QC: %d videos from %d part(s)", table.num_rows, len(tabs))
    return 0
