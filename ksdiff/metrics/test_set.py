"""Which clips a method is scored on: the test split minus what QC marked unusable, or one shard of it.

A split/QC query, kept out of ksdiff.evaluate so that the shard planner (ksdiff.data.shards) and the scorer
can both use it without importing each other.
"""
from __future__ import annotations

from pathlib import Path

from ksdiff.io import parquet


def test_clips(results: Path) -> tuple[list[str], list[dict]]:
    """Test-split clip ids, minus clips QC marked unusable (listed with the reason)."""
    sp = parquet.read_table(results / "splits.parquet", "splits")
    if not sp.ok:
        raise RuntimeError(f"{results / 'splits.parquet'} is {sp.status}: {sp.reason}")
    df = sp.to_pandas()
    clips = sorted(df.loc[df["split"] == "test", "clip_id"])
    skipped = []
    qc_path = results / "qc.parquet"
    if qc_path.exists():
        qc = parquet.read_table(qc_path, "qc").to_pandas().set_index("clip_id")
        keep = []
        for c in clips:
            if c in qc.index and not bool(qc.loc[c, "usable"]):
                skipped.append({"clip_id": c, "reason": f"qc: {qc.loc[c, 'reason']}"})
            else:
                keep.append(c)
        clips = keep
    return clips, skipped


def shard_clips(shards: str | Path, shard: int) -> set[str]:
    """The clip ids of one shard of a test_shards table (written by `ksdiff test-shards`)."""
    t = parquet.read_table(shards, "test_shards").to_pandas()
    return set(t.loc[t["shard"] == int(shard), "clip_id"])
