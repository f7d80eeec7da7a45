"""Reading the metrics tables a report is built from (shared by the leaderboard and the sanity table)."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ksdiff.io import parquet
from ksdiff.io.files import sha256_file

log = logging.getLogger(__name__)


def read_metrics(paths: list[str]) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """(all rows, attrs of each table, one source record per table). Failed tables add no rows."""
    frames, attrs, sources = [], [], []
    for p in paths:
        t = parquet.read_table(p, "metrics")
        a = dict(t.attrs)
        method = a.get("method") or Path(p).stem
        a["method"] = method
        attrs.append(a)
        sources.append({
            "path": str(p), "method": method, "status": t.status, "reason": t.reason,
            "n_clips": len(a.get("clips", [])), "n_skipped": len(a.get("skipped", [])),
            "n_undefined": len(a.get("undefined", [])),
            "sha256": sha256_file(p),
        })
        if t.ok:
            frames.append(t.to_pandas())
        else:
            log.warning("%s: metrics table %s: %s", p, t.status, t.reason)
    cols = ["method", "clip_id", "sample", "metric", "value"]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    return df, attrs, sources
