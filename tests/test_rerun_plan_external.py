"""What reruns when other systems' videos are scored (eval.external): Snakemake's own plan (`snakemake -n`)
on a finished run, job by job, against sets written out here, as tests/test_rerun_plan.py does for the
datasets. The run: a tiny synthetic corpus (`syn`, three clips) and one external method (`other`) whose
folder holds those clips' videos; shard_size 2, so the videos are two shards, each checked
(external_check) and scored (evaluate_external) by its own job, merged per method (merge_external_qc,
merge_external_metrics). The preprocessing and the external checks run for real; the jobs after the
dataset tables are marked done with `snakemake --touch`, as in tests/test_rerun_plan.py.
"""
import shutil

import pytest
import yaml

from ksdiff.io import parquet
from tests.test_rerun_plan import _set, _snakemake, jobs, mark_done, planned

pytestmark = pytest.mark.slow

CONFIG = {
    "datasets": [{"name": "syn", "root": "data/syn", "synthetic": True}],
    "synth": {"seed": 3, "speakers": 3, "clips_per_speaker": 1, "sentences_per_clip": 1},
    "methods": {"regression": {"method": "regression"}},
    "coeffs": {"n_expr": 8},
    "dataset": {"val_fraction": 0.3, "test_fraction": 0.3},  # one speaker per split
    "shard_size": 2,
    "eval": {"external": {"other": "data/ext"}},
}
PSEUDO = "syn-ext-other"
TOUCHED = ("train", "infer", "baseline", "syncnet_expert", "evaluate", "evaluate_ground_truth", "merge_metrics",
           "evaluate_external", "merge_external_metrics", "sanity", "leaderboard")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wd = tmp_path_factory.mktemp("rerun_ext")
    (wd / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    _snakemake(wd, "data/syn/.complete")
    (wd / "data/ext").mkdir(parents=True)
    for video in sorted((wd / "data/syn").glob("*.mp4")):
        shutil.copy2(video, wd / "data/ext" / video.name)
    (wd / "data/ext2").mkdir()  # the folder of a method a case adds (never run)
    _snakemake(wd, "results/syn/test_shards.parquet", "results/syn/stats.parquet",
               "results/syn/external_qc/other.parquet", timeout=2400)  # many small jobs: minutes on a loaded machine
    rows = parquet.read_table(wd / "results/syn/external_qc/other.parquet", "external_qc").table.to_pylist()
    assert len(rows) == 3 and all(r["status"] != "error" for r in rows), rows
    mark_done(wd, TOUCHED)
    return wd


def times(n: int, names: str) -> str:
    return " ".join([names] * n)


# Scoring the external method: each of its two shards scored, merged, and the leaderboard.
EXT_SCORES = times(2, "evaluate_external:other") + " merge_external_metrics:other leaderboard"
# ... and checked before that.
EXT_CHECKS = times(2, "external_check:other") + " merge_external_qc:other " + EXT_SCORES
SCORES = """evaluate:regression evaluate:static evaluate:mismatched evaluate_ground_truth
    merge_metrics:regression merge_metrics:static merge_metrics:mismatched merge_metrics:ground_truth sanity"""
# Everything that reads the dataset tables: models, predictions, scores (the one test clip: one test shard).
MODELS_AND_SCORES = "train:regression infer:regression baseline:static baseline:mismatched syncnet_expert " + SCORES

CASES = {
    "an external method added: its own videos from their listing, no other job but the leaderboard": (
        lambda c: c["eval"]["external"].update(more="data/ext2"),
        {"syn-ext-more": jobs("listing"), "syn": jobs("merge_external_qc:more merge_external_metrics:more leaderboard")}),
    "an external method removed: the leaderboard only": (lambda c: c["eval"]["external"].clear(), {"syn": jobs("leaderboard")}),
    "an external method's folder moved: its videos from their listing": (
        lambda c: c["eval"]["external"].update(other="data/ext2"),
        {PSEUDO: jobs("listing"), "syn": jobs("merge_external_qc:other merge_external_metrics:other leaderboard")}),
    "eval: lse_samples rescores the external shards, checks none": (
        _set("eval", lse_samples=1), {"syn": jobs(SCORES, EXT_SCORES)}),
    "coeffs: smoothing_cutoff_hz re-extracts the videos' coefficients and checks them again": (
        _set("coeffs", smoothing_cutoff_hz=8.0),
        {"syn": jobs(times(2, "coeffs pack stats_part"), "qc stats test_shards", MODELS_AND_SCORES, EXT_CHECKS),
         PSEUDO: jobs(times(2, "coeffs"))}),
    "dataset: min_detection_rate (QC) checks the videos again against the usable clips": (
        _set("dataset", min_detection_rate=0.8),
        {"syn": jobs("qc", times(2, "stats_part"), "stats test_shards", MODELS_AND_SCORES, EXT_CHECKS)}),
    "report: report_clips": (_set("eval", report_clips=1), {"syn": jobs("leaderboard")}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_change_plans_exactly_its_jobs(finished, case):
    change, expected = CASES[case]
    assert planned(finished, change) == expected
