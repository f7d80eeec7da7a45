"""benchmarks/compare_runs.py: two runs that computed the same values are the same though their files name
their own folders and wall times; one changed number, tensor or file makes them differ, and says where."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from benchmarks.compare_runs import compare, same

REPO = Path(__file__).resolve().parents[1]


def _run(root: Path, *, score: float = 0.25, weight: float = 1.0, seconds: float = 1.0) -> Path:
    """A run's folder in miniature: a metrics table (NaNs, a list column, attrs naming the run), a job summary
    with its wall time, a checkpoint, a training log and a media file."""
    (root / "metrics/synth").mkdir(parents=True)
    table = pa.table({"clip_id": ["a", "b"], "lse_c": [score, float("nan")],
                      "per_frame": [[0.5, float("nan")], [1.0]], "video": [str(root / "data/a.mp4"), None]})
    attrs = {"lse": {"weights": str(root / "models/synth/syncnet/expert.pt")}, "checkpoint_sha256": str(root)}
    pq.write_table(table.replace_schema_metadata({"ksdiff.attrs": json.dumps(attrs)}),
                   root / "metrics/synth/ksdiff.parquet")
    (root / "results/synth/shards/audio").mkdir(parents=True)
    pq.write_table(pa.table({"shard": [0], "seconds": [seconds]}), root / "results/synth/shards/audio/00000.parquet")
    (root / "models/synth/ksdiff").mkdir(parents=True)
    torch.save({"model": {"w": torch.tensor([weight, 2.0]), "n": torch.tensor([3])}, "step": 300,
                "train_cfg": {"packs": str(root / "results/synth/packs")}},
               root / "models/synth/ksdiff/model.pt")
    (root / "models/synth/ksdiff/train_log.csv").write_text(
        f"step,phase,metric,value\n100,train,loss,0.5\n100,train,steps_per_s,{1 / seconds}\n")
    (root / "data").mkdir()
    (root / "data/a.mp4").write_bytes(b"\x00\x01frames")
    return root


def _differ(result: dict) -> dict:
    return {rel: d["notes"] for r in result.values() for rel, d in r["differ"].items()}


def test_the_same_values_in_other_folders_with_other_wall_times_are_the_same(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "run_b", seconds=7.5)
    result = compare(a, b, progress=False)
    assert same(result), _differ(result)
    assert sum(r["compared"] for r in result.values()) == 5
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/compare_runs.py"), str(a), str(b), "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "SAME values" in r.stdout, r.stdout + r.stderr


def test_one_changed_score_weight_or_file_is_found_and_located(tmp_path):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", score=np.nextafter(0.25, 1.0), weight=1.0 + 1e-6)
    (b / "metrics/synth/static.parquet").write_bytes((a / "metrics/synth/ksdiff.parquet").read_bytes())
    result = compare(a, b, progress=False)
    assert not same(result)
    notes = _differ(result)
    assert set(notes) == {"metrics/synth/ksdiff.parquet", "models/synth/ksdiff/model.pt"}
    assert notes["metrics/synth/ksdiff.parquet"][0].startswith("lse_c: 1 of 2 values differ, by at most 5.55e-17")
    assert notes["models/synth/ksdiff/model.pt"][0].startswith("/model/w: 1 of 2 values differ")
    assert result["metrics"]["only_b"] == ["metrics/synth/static.parquet"]
    out = tmp_path / "cmp.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/compare_runs.py"), str(a), str(b), "--quiet",
                        "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 1 and "the runs DIFFER" in r.stdout
    assert json.loads(out.read_text())["same"] is False


def test_a_path_to_another_file_or_changed_media_bytes_differ(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    (b / "data/a.mp4").write_bytes(b"\x00\x02frames")
    table = pq.read_table(b / "metrics/synth/ksdiff.parquet")
    pq.write_table(table.set_column(3, "video", pa.array([str(b / "data/other.mp4"), None])),
                   b / "metrics/synth/ksdiff.parquet")
    notes = _differ(compare(a, b, progress=False))
    assert notes["data/a.mp4"] == ["bytes differ"]
    assert notes["metrics/synth/ksdiff.parquet"][0] == "video: 1 of 2 strings differ"
