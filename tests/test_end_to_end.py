"""The whole preprocessing workflow on a tiny synthetic corpus, checked against the
corpus's known motion and text. This is the test that says the data a model
trains on is right: extraction must recover what the generator put in."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ksdiff import config
from ksdiff.data.clip_arrays import STATS_NAMES, Stats
from ksdiff.data.stats import build_stats
from ksdiff.extract.basis import fit_basis
from ksdiff.io import parquet
from tests.conftest import REPO

pytestmark = pytest.mark.slow

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("e2e")
    cfg = {
        "datasets": [{"name": "tiny", "root": "data/synth", "synthetic": True, "synthetic_layout": "hdtf"}],
        "synth": {"seed": 3, "speakers": 4, "clips_per_speaker": 2, "sentences_per_clip": 1},
        "coeffs": {"n_expr": 16},
        "dataset": {"val_fraction": 0.2, "test_fraction": 0.2},
        "shard_size": 4,  # three shards of the nine clips: several jobs per step, as on a real dataset
    }
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    # One bad clip beside the good ones: the run must record it and finish the rest.
    r = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(wd), "--cores", "2",
         f"{wd}/data/synth/.complete"],
        capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (wd / "data" / "synth" / "WRA_Broken_000.mp4").write_bytes(b"not a video")
    r = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(wd), "--cores", "2",
         "results/tiny/qc.parquet", "results/tiny/stats.parquet"],
        capture_output=True, text=True, timeout=1800,
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    return wd


def _good_clips(wd):
    q = parquet.read_table(wd / "results/tiny/qc.parquet", "qc").to_pandas()
    return q, sorted(q.loc[q["usable"], "clip_id"])


def test_bad_clip_recorded_and_good_clips_complete(workdir):
    q, good = _good_clips(workdir)
    assert len(good) == 8
    bad = q.set_index("clip_id").loc["WRA_Broken_000"]
    assert not bad["usable"] and bad["reason"].startswith("manifest: unreadable container")


def test_head_pose_recovered_within_two_degrees(workdir):
    _, good = _good_clips(workdir)
    errs = {"yaw": [], "pitch": [], "roll": []}
    for clip in good:
        gt = parquet.read_table(workdir / "data/synth" / f"{clip}.motion.parquet", "synth_motion").to_pandas()
        c = parquet.read_table(workdir / "results/tiny/coeffs" / f"{clip}.parquet", "coeffs").to_pandas()
        n = min(len(gt), len(c))
        valid = c["valid"].to_numpy()[:n]
        for k in errs:
            errs[k].append(np.abs(c[k].to_numpy()[:n] - gt[k].to_numpy()[:n])[valid])
    for k, e in errs.items():
        med = float(np.median(np.concatenate(e)))
        assert med <= 2.0, f"{k}: median error {med:.2f} deg"


def test_jaw_carried_by_an_expression_coefficient(workdir):
    _, good = _good_clips(workdir)
    gt_all, ex_all = [], []
    for clip in good:
        gt = parquet.read_table(workdir / "data/synth" / f"{clip}.motion.parquet", "synth_motion").to_pandas()
        c = parquet.read_table(workdir / "results/tiny/coeffs" / f"{clip}.parquet", "coeffs")
        ex = np.stack(c.column("expr"))
        n = min(len(gt), len(ex))
        valid = c.column("valid")[:n].astype(bool)  # frames without a face carry NaN
        gt_all.append(gt["jaw_open"].to_numpy()[:n][valid])
        ex_all.append(ex[:n][valid])
    gt_all, ex_all = np.concatenate(gt_all), np.concatenate(ex_all)
    # PCA may split the jaw over its leading components (how depends on the speakers in the training
    # split): the jaw must be a linear function of the first three coefficients (multiple correlation).
    x = np.column_stack([np.ones(len(gt_all)), ex_all[:, :3]])
    fit = x @ np.linalg.lstsq(x, gt_all, rcond=None)[0]
    r = np.corrcoef(gt_all, fit)[0, 1]
    assert r >= 0.9, f"multiple correlation of jaw with the first three coefficients: {r:.3f}"


def test_aligned_transcripts_reproduce_the_known_words(workdir):
    import re

    _, good = _good_clips(workdir)
    for clip in good:
        text = (workdir / "data/synth" / f"{clip}.txt").read_text()
        words = re.sub(r"[^a-z' ]", " ", text.lower()).split()
        t = parquet.read_table(workdir / "results/tiny/transcripts" / f"{clip}.parquet", "transcript")
        got = [w.lower() for w in t.table.column("word").to_pylist()]
        assert got == words
        start = t.column("start_s")
        assert np.all(np.diff(start) >= 0)


def test_stats_and_basis_merged_from_shards_equal_the_single_jobs(workdir, tmp_path):
    """The workflow computes both as map-reduce over the three shards (per-shard moments merged);
    the single jobs over all training clips give the same values (relative to the largest entry)."""
    res = workdir / "results/tiny"
    cfg = config.load(workdir / "config.yaml")
    build_stats(cfg, str(res / "qc.parquet"), str(res / "splits.parquet"), str(res), str(tmp_path / "stats.parquet"))
    single, merged = Stats.read(tmp_path / "stats.parquet"), Stats.read(res / "stats.parquet")
    assert merged.attrs == single.attrs and merged.attrs["n_clips"] >= 4
    for name in STATS_NAMES:
        for a, b in ((single.mean[name], merged.mean[name]), (single.std[name], merged.std[name])):
            assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a)), name
    shards = sorted((res / "shards/pose").glob("*.parquet"))
    assert len(shards) == 3
    fit_basis(cfg, res / "splits.parquet", [str(p) for p in shards], tmp_path / "basis.npz", pose_dir=str(res / "pose"))
    one, parts = np.load(tmp_path / "basis.npz"), np.load(res / "basis.npz")
    for key in ("mean", "components", "std", "explained_variance_ratio"):
        assert np.max(np.abs(one[key] - parts[key])) <= 1e-6 * np.max(np.abs(one[key])), key
    assert list(one["clips"]) == list(parts["clips"]) and int(one["n_frames"]) == int(parts["n_frames"])


def test_syncnet_expert_learns_sync_on_the_talking_head_corpus(workdir, tmp_path):
    """The workflow's expert, trained on the two training speakers' four clips: on the validation
    speaker's clips it must put real audio at offset 0, find a known 6-frame delay, and score the
    clip's own audio above another clip's (LSE-C). (The test speaker's photo is unlike both training
    photos; that takes the demo corpus's four training speakers, where all ten test clips pass.)"""
    import json

    from ksdiff import config
    from ksdiff.cli import main
    from ksdiff.metrics.syncnet import load_syncnet
    from ksdiff.metrics.syncnet_expert import clip_crops, split_clips
    from ksdiff.metrics.syncnet_train import check_sync

    cfg = config.load(workdir / "config.yaml")
    cfg["eval"]["expert"] = {"steps": 150, "batch_size": 8, "num_threads": 2}  # the two cores: nothing else runs
    out = tmp_path / "expert.pt"
    res = workdir / "results/tiny"
    assert main(["syncnet-expert", "--results", str(res), "--out", str(out), "--opts", json.dumps(cfg)]) == 0
    expert = load_syncnet(out)
    assert expert.sync_check is not None and expert.sync_check["split"] == "val"  # stored beside the weights
    held_out = split_clips(res, "val", 10)
    check = check_sync(expert, [clip_crops(res, c, 25.0) for c in held_out])
    assert check["n_clips"] == 2 and check["detects_sync"], check
    assert check["sync_offset_within_1"] == 1.0 and check["shift_recovered_within_1"] == 1.0, check
    assert check["lse_c_sync_median"] > check["lse_c_mismatched_median"], check


def _plan(workdir, *args):
    r = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2", *args],
        capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


def _shard_of(workdir, clip):
    t = parquet.read_table(workdir / "results/tiny/listing.parquet", "listing").to_pandas().set_index("clip_id")
    return f"{int(t.loc[clip, 'shard']):05d}"


def test_rerun_after_interruption_redoes_only_what_is_missing(workdir):
    # As if the run had been killed in the middle of one shard's landmarks job, on
    # good[0]: that clip's landmarks, the shard's summary and everything after are missing.
    _, good = _good_clips(workdir)
    res = workdir / "results/tiny"
    shard = _shard_of(workdir, good[0])
    for p in [res / "landmarks" / f"{good[0]}.parquet", res / "pose" / f"{good[0]}.parquet",
              res / "coeffs" / f"{good[0]}.parquet", res / "shards/landmarks" / f"{shard}.parquet",
              res / "basis.npz", res / "qc.parquet", res / "stats.parquet"]:
        p.unlink()
    untouched = [p for p in (res / "landmarks").glob("*.parquet") if p.stem != good[0]]
    before = {p: p.stat().st_mtime_ns for p in untouched}
    plan = _plan(workdir, "-n", "results/tiny/qc.parquet")
    blocks = [b for b in plan.split("\nrule ")[1:] if b.startswith("landmarks:")]
    outputs = [line for b in blocks for line in b.splitlines() if line.strip().startswith("output:")]
    assert len(outputs) == 1 and f"shards/landmarks/{shard}.parquet" in outputs[0], plan[-3000:]
    assert "rule audio:" not in plan and "rule transcript:" not in plan  # finished steps are kept
    _plan(workdir, "results/tiny/qc.parquet")
    lm = parquet.read_table(res / "shards/landmarks" / f"{shard}.parquet", "shard").to_pandas().set_index("clip_id")
    assert lm.loc[good[0], "action"] == "ran" and set(lm.drop(index=good[0])["action"]) == {"kept"}
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # finished clips untouched
    q, now_good = _good_clips(workdir)
    assert now_good == good


def test_a_changed_option_plans_only_the_affected_step(workdir):
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["features"] = {"kind": "logmel", "n_mels": 40}
    (workdir / "changed.yaml").write_text(yaml.safe_dump(cfg))
    plan = _plan(workdir, "-n", "results/tiny/qc.parquet", "--configfile", str(workdir / "changed.yaml"))
    assert "rule features:" in plan
    for rule in ("audio", "transcript", "landmarks", "pose", "coeffs"):
        assert f"rule {rule}:" not in plan, rule
