"""Config paths a researcher is likely to take, run through the workflow in one tiny run, from the config to the
leaderboards (issue 25 item 0: paths that had unit tests only):

- two datasets to completion, one of them a plain folder of speaker folders (layout: folder);
- a published split file (dataset.split_file, a CSV of speakers) that both datasets follow;
- KSDiff itself trained and sampled (the other end-to-end runs train the regression baseline only),
  with train.num_threads 0 (torch's default threads; the job takes every core);
- several samples per clip (infer.n_samples 2) and several test shards (shard_size 3, four test clips);
- numerics: fast (the processor's own kernels), recorded in what was scored;
- a folder without the clips' texts: transcribed by recognition (transcript.backend auto -> pocketsphinx);
- a QC threshold: a clip shorter than dataset.min_duration_s is recorded unusable with its reason and the rest
  of its dataset runs to the end.
External methods' videos (ids unknown to the dataset, videos without audio, several shards) are run through
the workflow in tests/test_external_end_to_end.py; the VoxCeleb, auto and raw-HDTF layouts, the ablations'
and DiffSpeaker's training, landmark and coefficient options away from their defaults (468 points) and an
external folder missing a test clip's video in tests/test_layouts_end_to_end.py.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ksdiff.io import parquet
from ksdiff.data.manifest import scan
from ksdiff.metrics.registry import ACROSS_SAMPLES, LVE
from tests.conftest import REPO, make_clip

pytestmark = pytest.mark.slow

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
DATASETS = ("syn", "dir")
CONFIG = {
    "datasets": [{"name": "syn", "root": "data/syn", "synthetic": True, "synthetic_layout": "hdtf"},
                 {"name": "dir", "root": "data/dir", "layout": "folder"}],
    "synth": {"seed": 1, "speakers": 4, "clips_per_speaker": 2, "sentences_per_clip": 1, "size": 128},
    "shard_size": 3,
    "numerics": "fast",
    "coeffs": {"n_expr": 16},
    "features": {"kind": "logmel"},
    "methods": {"ksdiff": {}},
    "train": {"steps": 15, "num_threads": 0},
    "infer": {"n_samples": 2},
    "eval": {"lse_samples": 1, "bootstrap_samples": 200, "expert_check_clips": 2,
             "expert": {"steps": 20, "batch_size": 4}},
}
SHORT = "short"  # the folder dataset's clip below dataset.min_duration_s (1 s by default)


def _snakemake(wd, *targets, timeout=2400):
    r = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(wd), "--cores", "2", *targets],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("paths")
    (wd / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    _snakemake(wd, "data/syn/.complete")
    clips = scan(wd / "data/syn", "hdtf")
    speakers = sorted({c["speaker_id"] for c in clips})
    assert len(speakers) == 4, speakers
    for c in clips:  # the folder dataset: the same clips, one folder per speaker
        (wd / "data/dir" / c["speaker_id"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(c["path"], wd / "data/dir" / c["speaker_id"] / Path(c["path"]).name)
    make_clip(wd / "data/dir" / speakers[-1] / f"{SHORT}.mp4", seconds=0.6, size=128)
    split = {speakers[0]: "test", speakers[1]: "test", speakers[2]: "val", speakers[3]: "train"}
    (wd / "splits.csv").write_text("speaker_id,split\n" + "".join(f"{s},{k}\n" for s, k in split.items()))
    cfg = {**CONFIG, "dataset": {"split_file": str(wd / "splits.csv")}}
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    _snakemake(wd)
    return {"wd": wd, "split": split}


def _table(run, path, name):
    t = parquet.read_table(run["wd"] / path, name)
    assert t.ok, (path, t.reason)
    return t


@pytest.mark.parametrize("dataset", DATASETS)
def test_both_datasets_follow_the_published_split_file(run, dataset):
    splits = _table(run, f"results/{dataset}/splits.parquet", "splits").to_pandas()
    assert dict(zip(splits["speaker_id"], splits["split"])) == run["split"]
    assert splits.groupby("split").size().to_dict() == {"test": 4, "val": 2, "train": 2 + (dataset == "dir")}


def test_a_clip_below_the_qc_minimum_is_recorded_and_its_dataset_completes(run):
    qc = _table(run, "results/dir/qc.parquet", "qc").to_pandas().set_index("clip_id")
    short = qc.loc[[c for c in qc.index if c.endswith(SHORT)]]
    assert len(short) == 1 and not short["usable"].iloc[0]
    # the first step to refuse it: landmarks, which reads the same minimum (QC names the first failed step)
    lm = parquet.read_table(run["wd"] / f"results/dir/landmarks/{short.index[0]}.parquet", "landmarks")
    assert not lm.ok and "too short" in lm.reason, lm.reason
    assert qc.drop(short.index)["usable"].all()
    assert (run["wd"] / "reports/dir/leaderboard.md").exists()


def test_clips_without_known_text_are_transcribed_by_recognition(run):
    """The synthetic clips carry their text ({clip}.txt: forced alignment); the folder dataset's copies do not
    (transcript.backend auto: pocketsphinx recognises the words)."""
    for dataset, backend, source in (("syn", "align", "reference"), ("dir", "pocketsphinx", "recognised")):
        qc = _table(run, f"results/{dataset}/qc.parquet", "qc").to_pandas()
        for clip in qc.loc[qc["usable"], "clip_id"]:
            attrs = _table(run, f"results/{dataset}/transcripts/{clip}.parquet", "transcript").attrs
            assert (attrs["backend"], attrs["text_source"]) == (backend, source), (dataset, clip, attrs)


@pytest.mark.parametrize("dataset", DATASETS)
def test_ksdiff_scored_on_every_test_clip_in_two_shards_with_two_samples(run, dataset):
    shards = _table(run, f"results/{dataset}/test_shards.parquet", "test_shards")
    assert shards.attrs["n_shards"] == 2
    for method in ("ksdiff", "ground_truth", "static"):
        parts = sorted(p.name for p in (run["wd"] / f"metrics/{dataset}/shards/{method}").glob("*.parquet"))
        assert parts == ["00000.parquet", "00001.parquet"], (method, parts)
    t = _table(run, f"metrics/{dataset}/ksdiff.parquet", "metrics")
    df = t.to_pandas()
    test = sorted(shards.to_pandas()["clip_id"])
    assert len(test) == 4 and sorted(t.attrs["clips"]) == test and t.attrs["skipped"] == []
    assert set(df[df.metric == LVE]["sample"]) == {0, 1}
    across = df[df.metric == "sample_diversity"]
    assert set(across["sample"]) == {ACROSS_SAMPLES} and sorted(across.clip_id) == test
    assert (across.value > 0).all()  # two samples of a diffusion model differ


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_leaderboard_says_the_numbers_came_from_fast_numerics(run, dataset):
    for method in ("ksdiff", "ground_truth"):
        assert _table(run, f"metrics/{dataset}/{method}.parquet", "metrics").attrs["numerics"]["mode"] == "fast"
    board = (run["wd"] / f"reports/{dataset}/leaderboard.md").read_text()
    assert "numerics fast" in board
    rows = {line.split("|")[1].strip() for line in board.splitlines() if line.startswith("| ")}
    assert {"ground_truth", "ksdiff", "static", "mismatched"} <= rows, rows
