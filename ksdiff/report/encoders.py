"""The report's rows for the pretrained speech encoders the learned methods were trained on (features.kind
wav2vec2 or hubert, from features.pretrained_dir): the checkpoint folder and the sha256 of each of its weight
files, as each method's predictions record them (ksdiff.infer copies the model's record of its features).
Methods on log-mel features, the baselines and external videos use no such weights and give no row."""
from __future__ import annotations

from pathlib import Path

from ksdiff.io import parquet


def trained_features(folder: Path) -> dict | None:
    """The model's record of its speech features ({kind, dim, rate_hz, checkpoint}) from the first prediction
    table in ``folder`` that carries one; None when none does (a baseline, an external method's videos)."""
    for p in sorted(Path(folder).glob("*.parquet")):
        attrs = parquet.read_attrs(p)
        if "features" in attrs:
            return attrs["features"]
        if parquet.read_status(p)[0] == parquet.OK:
            return None  # a scored prediction without the record: not a learned method's (or an older one)
    return None


def encoder_rows(predictions: dict[str, Path]) -> list[dict]:
    """[{name, value}] rows for the report's weights table: one per learned method on a pretrained encoder."""
    rows = []
    for method, folder in predictions.items():
        rec = trained_features(folder) or {}
        ckpt = rec.get("checkpoint")
        if isinstance(ckpt, dict) and ckpt.get("sha256"):
            files = ", ".join(f"{name} sha256 {sha}" for name, sha in sorted(ckpt["sha256"].items()))
            rows.append({"name": f"speech encoder of {method} ({rec.get('kind')})", "value": f"{ckpt['path']} ({files})"})
    return rows
