"""The QC table: clip by clip, was it usable, and if not, why.

A clip is usable when every per-clip step succeeded and it passes the dataset
thresholds (cfg['dataset']): long enough, face detected on enough frames,
audio and video durations agree. ``reason`` names the first thing that failed
(``step: reason`` for a failed step, a threshold otherwise), so a researcher
can see at a glance what to fix in their data.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ksdiff.io import parquet
from ksdiff.landmark_points import present_points

log = logging.getLogger(__name__)

# Per-clip steps in pipeline order: (step, folder under results/{dataset}/, table name).
STEPS = [
    ("audio", "audio", "audio"),
    ("transcript", "transcripts", "transcript"),
    ("landmarks", "landmarks", "landmarks"),
    ("pose", "pose", "pose"),
    ("coeffs", "coeffs", "coeffs"),
    ("features", "features", "features"),
]


def step_path(results: str | Path, folder: str, clip: str) -> Path:
    return Path(results) / folder / f"{clip}.parquet"


def _landmark_stats(t: parquet.Table) -> tuple[float, float]:
    """(detection rate, median frame-to-frame landmark motion / face size)."""
    det = t.column("detected").astype(bool)
    if len(det) == 0:
        return 0.0, float("nan")
    lm = present_points(t.column("landmarks").reshape(len(det), -1, 3))[:, :, :2]  # 468 without irises
    box = t.column("box")
    size = np.maximum(box[:, 2] - box[:, 0], 1e-6)
    both = det[1:] & det[:-1]
    if not both.any():
        return float(det.mean()), float("nan")
    step = np.linalg.norm(lm[1:] - lm[:-1], axis=2).mean(axis=1)
    jitter = float(np.median(step[both] / size[1:][both]))
    return float(det.mean()), jitter


def clip_qc(row: dict, results: str | Path, opts: dict) -> dict:
    clip = row["clip_id"]
    rec = dict(
        clip_id=clip, speaker_id=row["speaker_id"], dataset=row["dataset"], usable=False, reason="",
        n_frames=int(row["n_frames"]), duration_s=float(row["duration_s"]), audio_duration_s=float("nan"),
        av_mismatch_s=float("nan"), detection_rate=float("nan"), landmark_jitter=float("nan"),
        fit_residual=float("nan"), n_words=0,
    )
    reasons = []
    if row["probe_error"]:
        reasons.append(f"manifest: {row['probe_error']}")
    for step, folder, name in STEPS:
        p = step_path(results, folder, clip)
        if not p.exists():
            reasons.append(f"{step}: output missing")
            continue
        t = parquet.read_table(p, name)
        if not t.ok:
            reasons.append(f"{step}: {t.reason}")
            continue
        if step == "audio":
            rec["audio_duration_s"] = float(t.column("duration_s")[0])
            rec["av_mismatch_s"] = abs(rec["audio_duration_s"] - rec["duration_s"])
        elif step == "transcript":
            rec["n_words"] = t.table.num_rows
        elif step == "landmarks":
            rec["detection_rate"], rec["landmark_jitter"] = _landmark_stats(t)
            rec["n_frames"] = t.table.num_rows
        elif step == "coeffs":
            res = t.column("residual")
            valid = t.column("valid").astype(bool)
            rec["fit_residual"] = float(np.median(res[valid])) if valid.any() else float("nan")
    # Thresholds: only meaningful once the steps themselves succeeded.
    if rec["duration_s"] < opts["min_duration_s"] and not row["probe_error"]:
        reasons.append(f"too short: {rec['duration_s']:.2f} s < {opts['min_duration_s']} s")
    if np.isfinite(rec["detection_rate"]) and rec["detection_rate"] < opts["min_detection_rate"]:
        reasons.append(f"face detected on {rec['detection_rate']:.0%} of frames < {opts['min_detection_rate']:.0%}")
    if np.isfinite(rec["av_mismatch_s"]) and rec["av_mismatch_s"] > opts["max_av_mismatch_s"]:
        reasons.append(f"audio/video durations differ by {rec['av_mismatch_s']:.2f} s > {opts['max_av_mismatch_s']} s")
    rec["usable"] = not reasons
    rec["reason"] = reasons[0] if reasons else ""
    return rec


def build_qc(cfg: dict, manifest: str, results: str, out: str) -> int:
    m = parquet.read_table(manifest, "manifest").to_pandas()
    recs = [clip_qc(row, results, cfg["dataset"]) for row in tqdm(m.to_dict("records"), desc="qc", unit="clip", disable=None)]
    cols = {f.name: [r[f.name] for r in recs] for f in parquet.schemas.QC}
    parquet.write_table(out, "qc", cols)
    n_ok = sum(r["usable"] for r in recs)
    log.info("qc: %d of %d clips usable", n_ok, len(recs))
    for r in recs:
        if not r["usable"]:
            log.info("  %s: %s", r["clip_id"], r["reason"])
    return 0
