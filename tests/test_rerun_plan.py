"""What reruns when: on a finished run of two datasets, Snakemake's own plan (`snakemake -n`)
for each change of the config, job by job (rule, dataset, method), against a set written
out here. A change that widens a rerun (another dataset's jobs, a scoring option that
retrains, an option that redoes other stages) fails its case.

The finished run: a tiny synthetic corpus (`syn`, three speakers, one clip each) and a
folder dataset (`dir`) holding copies of those clips, prepared for real up to the QC,
statistics and test shards; the jobs after them (training, the expert, inference,
scoring, the leaderboard) are marked done with `snakemake --touch` over placeholder
files, which records their params and code as a real run does, so the plans below are
the plans Snakemake makes after a real run.
"""
import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ksdiff.io import parquet
from tests.conftest import REPO, make_clip

pytestmark = pytest.mark.slow

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CONFIG = {
    "datasets": [
        {"name": "syn", "root": "data/syn", "synthetic": True},
        {"name": "dir", "root": "data/dir", "layout": "folder"},
    ],
    "synth": {"seed": 3, "speakers": 3, "clips_per_speaker": 1, "sentences_per_clip": 1},
    "methods": {"ksdiff": {}, "regression": {"method": "regression"}},
    "coeffs": {"n_expr": 8},
    "dataset": {"val_fraction": 0.3, "test_fraction": 0.3},  # one speaker per split
}
# The jobs after the dataset tables, marked done rather than run.
TOUCHED = ("train", "infer", "baseline", "syncnet_expert", "evaluate", "evaluate_ground_truth", "merge_metrics",
           "sanity", "leaderboard")


def _snakemake(wd, *args, timeout=900):
    r = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(wd), "--cores", "2", *args],
                       capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wd = tmp_path_factory.mktemp("rerun")
    (wd / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    _snakemake(wd, "data/syn/.complete")
    for video in sorted((wd / "data/syn").glob("*.mp4")):  # RD_PokerE_000.mp4 -> dir/PokerE/ (folder: speaker)
        speaker = wd / "data/dir" / video.stem.split("_")[1]
        speaker.mkdir(parents=True)
        for f in (video, video.with_suffix(".txt")):
            shutil.copy2(f, speaker / f.name)
    for i, spk in enumerate(("anna", "ben")):  # the dataset a case adds (never run)
        make_clip(wd / "data/new" / spk / f"clip{i}.mp4", seconds=1.0, seed=i)
    _snakemake(wd, *(f"results/{d}/{t}.parquet" for d in ("syn", "dir") for t in ("test_shards", "stats")))
    for d in ("syn", "dir"):
        q = parquet.read_table(wd / f"results/{d}/qc.parquet", "qc").to_pandas()
        assert q["usable"].all() and len(q) == 3, q
    mark_done(wd, TOUCHED)
    return wd


def mark_done(wd, rules):
    """Every job still planned marked done (rules: theirs) with placeholder outputs, as a real run records them."""
    plan = _snakemake(wd, "-n")
    for out in re.findall(r"^\s+output: (.*)$", plan, re.M):
        for f in (wd / p.strip() for p in out.split(",")):
            if f.name == "plots":
                f.mkdir(parents=True, exist_ok=True)
            else:
                f.parent.mkdir(parents=True, exist_ok=True)
                f.touch()
    _snakemake(wd, "--touch", "--forcerun", *rules)
    out = _snakemake(wd, "-n")
    assert "Nothing to be done" in out and "missing provenance" not in out, out[-3000:]


def planned(wd, change) -> dict[str, collections.Counter]:
    """The jobs `snakemake -n` plans after ``change`` (a function editing the config), by dataset:
    'rule' or 'rule:method' (one shard per dataset here, so each is one job). The config is restored."""
    base = (wd / "config.yaml").read_text()
    cfg = yaml.safe_load(base)
    change(cfg)
    try:
        (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
        out = _snakemake(wd, "-n")
    finally:
        (wd / "config.yaml").write_text(base)
    roots = {d["root"]: d["name"] for d in cfg["datasets"]}
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:\n)", out):
        m = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):\n", block)
        if not m or m.group(1) == "all":
            continue
        w = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        wc = dict(kv.split("=", 1) for kv in w.group(1).split(", "))
        dataset = wc["dataset"] if "dataset" in wc else roots[wc["root"]]  # synth: by its root
        jobs.setdefault(dataset, collections.Counter())[m.group(1) + (f":{wc['method']}" if "method" in wc else "")] += 1
    return jobs


def jobs(*groups: str) -> collections.Counter:
    return collections.Counter(" ".join(groups).split())


# Written out once, used by several cases below.
SCORES = """evaluate:ksdiff evaluate:regression evaluate:static evaluate:mismatched evaluate_ground_truth
    merge_metrics:ksdiff merge_metrics:regression merge_metrics:static merge_metrics:mismatched
    merge_metrics:ground_truth sanity leaderboard"""
# Everything that reads the dataset tables (qc, splits, stats, basis): models, predictions, scores.
MODELS_AND_SCORES = """train:ksdiff train:regression infer:ksdiff infer:regression baseline:static
    baseline:mismatched syncnet_expert """ + SCORES
# The listing and the test shards are checkpoints: when one reruns, Snakemake plans what does not
# wait on its new shards, and the rest once it has run.
AFTER_TEST_SHARDS = """merge_metrics:ksdiff merge_metrics:regression merge_metrics:static merge_metrics:mismatched
    merge_metrics:ground_truth sanity leaderboard"""
FROM_LISTING = "listing manifest splits qc stats test_shards " + AFTER_TEST_SHARDS


def _set(section, **kv):
    return lambda c: c.setdefault(section, {}).update(kv)


CASES = {
    # the list of datasets
    "add a dataset": (lambda c: c["datasets"].append({"name": "new", "root": "data/new", "layout": "folder"}),
                      {"new": jobs(FROM_LISTING)}),
    "remove a dataset": (lambda c: c["datasets"].pop(1), {}),
    "reorder the datasets": (lambda c: c["datasets"].reverse(), {}),
    "another dataset's root": (lambda c: c["datasets"][1].update(root="data/dir_moved"), {"dir": jobs(FROM_LISTING)}),
    "results_dir": (lambda c: c.update(results_dir="results2"), {"syn": jobs(FROM_LISTING), "dir": jobs(FROM_LISTING)}),
    # one option of each stage
    "audio: sample_rate (the synthetic corpus is made at it too)": (
        lambda c: c.update(sample_rate=8000),
        {"syn": jobs("synth", FROM_LISTING),
         "dir": jobs("audio transcript features pack qc stats_part stats test_shards", MODELS_AND_SCORES)}),
    "transcript: backend": (_set("transcript", backend="align"),
                            {d: jobs("transcript pack qc stats_part stats test_shards", MODELS_AND_SCORES) for d in ("syn", "dir")}),
    "landmarks: min_detection_score": (
        _set("landmarks", min_detection_score=0.45),
        {d: jobs("landmarks pose basis_part basis coeffs pack qc stats_part stats test_shards", MODELS_AND_SCORES) for d in ("syn", "dir")}),
    "coeffs: smoothing_cutoff_hz (the basis does not read it)": (
        _set("coeffs", smoothing_cutoff_hz=8.0),
        {d: jobs("coeffs pack qc stats_part stats test_shards", MODELS_AND_SCORES) for d in ("syn", "dir")}),
    "coeffs: n_expr": (_set("coeffs", n_expr=6),
                       {d: jobs("basis coeffs pack qc stats_part stats test_shards", MODELS_AND_SCORES) for d in ("syn", "dir")}),
    "features: n_mels": (_set("features", n_mels=40),
                         {d: jobs("features pack qc stats_part stats test_shards", MODELS_AND_SCORES) for d in ("syn", "dir")}),
    "dataset: seed (the splits)": (
        _set("dataset", seed=1),
        {d: jobs("splits basis_part basis coeffs pack qc stats_part stats test_shards", AFTER_TEST_SHARDS) for d in ("syn", "dir")}),
    "dataset: min_detection_rate (QC)": (_set("dataset", min_detection_rate=0.8),
                                         {d: jobs("qc stats_part stats test_shards", MODELS_AND_SCORES) for d in ("syn", "dir")}),
    "train: steps": (
        _set("train", steps=10),
        {d: jobs("train:ksdiff train:regression infer:ksdiff infer:regression evaluate:ksdiff evaluate:regression"
                 " merge_metrics:ksdiff merge_metrics:regression leaderboard") for d in ("syn", "dir")}),
    "one method's model option": (
        lambda c: c["methods"]["regression"].update(seed=1),
        {d: jobs("train:regression infer:regression evaluate:regression merge_metrics:regression leaderboard")
         for d in ("syn", "dir")}),
    "a method added": (
        lambda c: c["methods"].update(diffspeaker={"method": "diffspeaker"}),
        {d: jobs("train:diffspeaker infer:diffspeaker evaluate:diffspeaker merge_metrics:diffspeaker leaderboard")
         for d in ("syn", "dir")}),
    "infer: n_samples": (
        _set("infer", n_samples=2),
        {d: jobs("infer:ksdiff infer:regression baseline:static baseline:mismatched evaluate:ksdiff evaluate:regression"
                 " evaluate:static evaluate:mismatched merge_metrics:ksdiff merge_metrics:regression"
                 " merge_metrics:static merge_metrics:mismatched sanity leaderboard") for d in ("syn", "dir")}),
    "eval: lse_samples": (_set("eval", lse_samples=1), {d: jobs(SCORES) for d in ("syn", "dir")}),
    "eval: the SyncNet expert's steps": (_set("eval", expert={"steps": 50}),
                                         {d: jobs("syncnet_expert", SCORES) for d in ("syn", "dir")}),
    "eval: bootstrap_samples (the intervals)": (_set("eval", bootstrap_samples=500),
                                                {d: jobs("sanity leaderboard") for d in ("syn", "dir")}),
    "report: report_clips": (_set("eval", report_clips=1), {d: jobs("leaderboard") for d in ("syn", "dir")}),
    "numerics (torch's CPU code paths)": (
        lambda c: c.update(numerics="fast"),
        {d: jobs("train:ksdiff train:regression infer:ksdiff infer:regression syncnet_expert", SCORES)
         for d in ("syn", "dir")}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_change_plans_exactly_its_jobs(finished, case):
    change, expected = CASES[case]
    assert planned(finished, change) == expected


def test_a_moved_dataset_reruns_its_jobs_and_keeps_every_clip(finished, tmp_path):
    """Its listing, manifest and per-clip jobs rerun (the clips' paths changed), but every clip's
    table is current (same options, newer than its video), and each shard summary says kept."""
    wd = tmp_path / "wd"
    shutil.copytree(finished, wd, symlinks=True)  # mtimes kept (copy2)
    shutil.copytree(wd / "data/dir", wd / "data/dir_moved")
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["datasets"][1]["root"] = "data/dir_moved"
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    steps = ("audio", "transcript", "landmarks", "pose", "features")
    out = _snakemake(wd, *(f"results/dir/shards/{s}/00000.parquet" for s in steps))
    for s in steps:
        assert re.search(rf"^(local)?rule {s}:$", out, re.M), s  # the job ran
        summary = parquet.read_table(wd / f"results/dir/shards/{s}/00000.parquet", "shard").to_pandas()
        assert len(summary) == 3 and set(summary["action"]) == {"kept"}, (s, summary)
        assert set(summary["status"]) == {"ok"}
