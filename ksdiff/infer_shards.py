"""The workflow's inference jobs: the usable test clips cut into shards (``ksdiff test-shards``), and one
shard's predictions with one model load (``ksdiff infer-shard``), run through the resumable per-clip loop of
ksdiff.data.shards (a clip whose prediction is current is kept).

Kept apart from ksdiff.data.shards so that the shard loop, which the packs and the training data use, does
not import inference (and through it the training package): no import cycle.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ksdiff.data.clip_arrays import clip_path
from ksdiff.data.shards import ClipWork, is_current, n_shards, options_hash, run_loop, shard_name, shard_rows
from ksdiff.infer import CheckpointError, Predictor
from ksdiff.io import parquet
from ksdiff.metrics.test_set import test_clips
from ksdiff.stage_config import stage_options

log = logging.getLogger(__name__)


def test_shards(cfg: dict, results: str, out: str) -> int:
    """Usable test clips of results/{dataset} in shards of cfg['shard_size'] -> ``out``."""
    size = int(cfg["shard_size"])
    clips, _ = test_clips(Path(results))
    k = n_shards(len(clips), size)
    parquet.write_table(out, "test_shards", {"clip_id": clips, "shard": [i // size for i in range(len(clips))]},
                        attrs={"shard_size": size, "n_shards": k})
    log.info("%d usable test clips in %d shard(s)", len(clips), k)
    return 0


def infer_shard(cfg: dict, results: str, shards: str, shard: int, out_dir: str, out: str,
                checkpoint: str | None = None, method: str | None = None) -> int:
    """`ksdiff infer-shard`: predictions for one shard of test clips -> ``out_dir``/{clip}.parquet,
    the model loaded once (ksdiff.infer caches it per checkpoint file)."""
    r = Path(results)
    clips = [row["clip_id"] for row in shard_rows(shards, shard)]
    # Everything a prediction reads besides its options: the clip's tables, the
    # dataset tables and the checkpoint (retraining redoes every prediction).
    common = [r / "splits.parquet", r / "stats.parquet", r / "basis.npz"] + ([Path(checkpoint)] if checkpoint else [])

    def work(clip):
        pred = Path(out_dir) / f"{clip}.parquet"
        ins = [clip_path(r, s, clip) for s in ("coeffs", "features", "transcripts")] + common
        return ClipWork(clip, lambda: predictor.predict(clip, str(pred)), pred, "coeffs", [pred], ins)

    # `method` is part of the hash: a baseline and a model never share predictions.
    options = {**stage_options(cfg, "infer" if checkpoint else "baseline"), "_method": method or ""}
    opts_hash = options_hash(options, "coeffs")
    works = [work(c) for c in clips]
    # the clips whose predictions are not current, sampled infer.batch_size at a time in this order
    predictor = Predictor(cfg, results, [w.clip for w in works if not is_current(w.outputs, w.inputs, w.table, opts_hash)],
                          checkpoint=checkpoint, method=method)
    run_loop(works, opts_hash, out, stage=f"infer {method or Path(out_dir).name}", shard=shard_name(shard),
             fatal=(CheckpointError, MemoryError))
    return 0
