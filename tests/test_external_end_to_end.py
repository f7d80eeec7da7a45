"""Other systems' videos (eval.external) scored through the workflow, from a config to the leaderboard, on a
tiny synthetic corpus. The 'systems' are made from the test clips themselves, so what each must score is
known: an exact copy of the clips must score as ground truth does on its own video (one of the copies has no
audio track: only its length can be checked); a copy padded by 0.2 s at its start must be scored with that lag
removed; a video whose audio is another clip's must not be scored, nor one of a training clip; a video whose
id is no clip of the dataset is scored without LVE; every video's verdict is in the external QC table and the
report says what was measured. Each method's three videos are two shards (shard_size 2): checked and scored
one job per shard, merged per method. Run first with no trained method (`methods: {}`), then with one."""
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from ksdiff.metrics.registry import LVE
from ksdiff.io import parquet
from ksdiff.io.audio import load_audio
from ksdiff.io.video import read_frames, write_video
from ksdiff.metrics import external_check, external_qc
from tests.conftest import REPO

pytestmark = pytest.mark.slow

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
FPS = 25
PAD = 5  # frames (0.2 s) held before the padded copy's first frame
UNKNOWN = "zz_unknown"  # an external video whose id is no clip of the dataset

CONFIG = {
    "datasets": [{"name": "tiny", "root": "data/synth", "synthetic": True, "synthetic_layout": "hdtf"}],
    "shard_size": 2,  # each external method's three videos: two shards
    # four speakers, two clips each, one sentence: one speaker (two clips) in test
    "synth": {"seed": 0, "speakers": 4, "clips_per_speaker": 2, "sentences_per_clip": 1, "size": 128},
    "coeffs": {"n_expr": 16},
    "features": {"kind": "logmel"},
    "dataset": {"val_fraction": 0.25, "test_fraction": 0.25},
    "methods": {},
    "train": {"steps": 20, "num_threads": 1},
    "infer": {"n_samples": 1},
    "eval": {"lse_samples": 1, "bootstrap_samples": 200, "expert_check_clips": 2,
             "expert": {"steps": 20, "batch_size": 4}},
}


def _snakemake(wd, *targets, timeout=2400):
    r = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(wd), "--cores", "2", *targets],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    return r.stdout + r.stderr


def _write_config(wd, cfg):
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))


def _without_audio(src, dst):
    """``src``'s video stream alone, its packets copied (the same frames, no audio track)."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                o.mux(packet)


def _make_external_videos(wd, test, other):
    """ext/copy: test[0] as it is, test[1]'s frames without an audio track, ``other`` (a training clip) as it is.
    ext/shifted: test[0] padded by PAD frames (its first frame held, silence), test[1] with the audio of ``other``
    (cut or padded to its length), and test[0] again under an id unknown to the dataset."""
    manifest = parquet.read_table(wd / "results/tiny/manifest.parquet", "manifest").to_pandas().set_index("clip_id")
    copy, shifted = wd / "ext/copy", wd / "ext/shifted"
    copy.mkdir(parents=True)
    shifted.mkdir(parents=True)
    shutil.copy(manifest.loc[test[0], "path"], copy / f"{test[0]}.mp4")
    _without_audio(manifest.loc[test[1], "path"], copy / f"{test[1]}.mp4")
    shutil.copy(manifest.loc[other, "path"], copy / f"{other}.mp4")
    shutil.copy(manifest.loc[test[0], "path"], shifted / f"{UNKNOWN}.mp4")
    src = manifest.loc[test[0], "path"]
    frames, (wav, sr) = read_frames(src, FPS), load_audio(src, None)[:2]
    write_video(shifted / f"{test[0]}.mp4", [frames[0]] * PAD + list(frames), FPS,
                np.concatenate([np.zeros(PAD * sr // FPS, np.float32), wav]), sr)
    src = manifest.loc[test[1], "path"]
    frames, (wav, sr) = read_frames(src, FPS), load_audio(src, None)[:2]
    dub = load_audio(manifest.loc[other, "path"], sr)[0][: len(wav)]
    write_video(shifted / f"{test[1]}.mp4", list(frames), FPS, np.pad(dub, (0, len(wav) - len(dub))), sr)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("external")
    _write_config(wd, CONFIG)
    _snakemake(wd, "results/tiny/splits.parquet")
    splits = parquet.read_table(wd / "results/tiny/splits.parquet", "splits").to_pandas()
    test = sorted(splits.loc[splits["split"] == "test", "clip_id"])
    train = sorted(splits.loc[splits["split"] == "train", "clip_id"])
    assert len(test) == 2, splits
    _make_external_videos(wd, test, train[0])
    cfg = {**CONFIG, "eval": {**CONFIG["eval"], "external": {"copy": str(wd / "ext/copy"),
                                                             "shifted": str(wd / "ext/shifted")}}}
    _write_config(wd, cfg)
    _snakemake(wd)
    first = {"board": (wd / "reports/tiny/leaderboard.md").read_text()}
    # The same run with one trained method added: the external rows stand beside it.
    _write_config(wd, {**cfg, "methods": {"regression": {"method": "regression"}}})
    _snakemake(wd)
    return {"wd": wd, "test": test, "dubbed_with": train[0], "first": first}


def _metrics(run, method):
    t = parquet.read_table(run["wd"] / f"metrics/tiny/{method}.parquet", "metrics")
    assert t.ok, t.reason
    return t.to_pandas(), t.attrs


def _clip_means(df, metric):
    return df[df.metric == metric].groupby("clip_id")["value"].mean()


def _external_qc(run, method):
    t = parquet.read_table(run["wd"] / f"results/tiny/external_qc/{method}.parquet", "external_qc")
    return {r["clip_id"]: r for r in t.table.to_pylist()}


def test_every_external_video_is_in_its_methods_qc_table_with_its_verdict(run):
    train = run["dubbed_with"]
    padded, dubbed = run["test"]
    copy, shifted = _external_qc(run, "copy"), _external_qc(run, "shifted")
    assert {c: (r["status"], r["scored"]) for c, r in copy.items()} == {
        padded: (external_check.OK, True), dubbed: (external_check.UNCHECKED, True), train: (external_qc.OTHER_SPLIT, False)}
    assert {c: (r["status"], r["scored"]) for c, r in shifted.items()} == {
        padded: (external_check.LAG_CORRECTED, True), dubbed: (external_check.MISMATCH, False),
        UNKNOWN: (external_qc.NO_GROUND_TRUTH, True)}
    assert copy[padded]["peak_corr"] == pytest.approx(1.0, abs=1e-6) and copy[padded]["lag_s"] == 0
    # no audio track: nothing measured but the length, which matches
    assert copy[dubbed]["peak_corr"] is None and copy[dubbed]["length_diff_frames"] == 0
    assert "no audio track" in copy[dubbed]["reason"] and "train split" in copy[train]["reason"]
    assert shifted[padded]["lag_frames"] == PAD and shifted[dubbed]["peak_corr"] < external_check.MIN_PEAK_CORR
    assert all(r["method"] == m and r["dataset"] == "tiny" and r["path"].endswith(f"ext/{m}/{c}.mp4")
               for m, rows in (("copy", copy), ("shifted", shifted)) for c, r in rows.items())
    # what scoring recorded is what the QC table says
    for method, rows in (("copy", copy), ("shifted", shifted)):
        _, attrs = _metrics(run, f"ext-{method}")
        assert attrs["clips"] == sorted(c for c, r in rows.items() if r["scored"])
        assert {c["clip_id"]: c["status"] for c in attrs["external_check"]} == {
            c: r["status"] for c, r in rows.items() if r["status"] in external_qc.CHECKED}


def test_external_videos_are_checked_and_scored_one_job_per_shard(run):
    for method in ("copy", "shifted"):
        parts = sorted(p.name for p in (run["wd"] / f"results/tiny/external_qc/{method}").glob("*.parquet"))
        scored = sorted(p.name for p in (run["wd"] / f"metrics/tiny/shards/ext-{method}").glob("*.parquet"))
        assert parts == scored == ["00000.parquet", "00001.parquet"], (parts, scored)


def test_an_exact_copy_of_the_clips_scores_as_ground_truth_does(run):
    df, attrs = _metrics(run, "ext-copy")
    assert attrs["external"] and attrs["clips"] == run["test"]
    assert [s["clip_id"] for s in attrs["skipped"]] == [run["dubbed_with"]]  # a training clip's video
    assert [(c["clip_id"], c["status"]) for c in attrs["external_check"]] == [
        (run["test"][0], external_check.OK), (run["test"][1], external_check.UNCHECKED)]
    # the same video, extracted by the same code: its motion is the ground truth's
    assert np.allclose(_clip_means(df, LVE), 0.0, atol=1e-6)
    # LSE on its own frames is LSE of the source video, which ground truth is also scored on
    gt, _ = _metrics(run, "ground_truth")
    for metric in ("lse_d", "lse_c"):
        np.testing.assert_allclose(_clip_means(df, metric), _clip_means(gt, f"{metric}_video"), rtol=1e-5)


def test_a_padded_copy_is_scored_with_its_lag_removed_and_a_dubbed_one_is_not_scored(run):
    df, attrs = _metrics(run, "ext-shifted")
    padded, dubbed = run["test"]
    checks = {c["clip_id"]: c for c in attrs["external_check"]}
    assert checks[padded]["status"] == external_check.LAG_CORRECTED and checks[padded]["lag_frames"] == PAD
    assert checks[padded]["lag_s"] == pytest.approx(PAD / FPS, abs=0.01) and checks[padded]["peak_corr"] > 0.9
    assert checks[dubbed]["status"] == external_check.MISMATCH
    assert checks[dubbed]["peak_corr"] < external_check.MIN_PEAK_CORR
    assert attrs["clips"] == [padded, UNKNOWN] and set(df.clip_id) == {padded, UNKNOWN}
    # no ground truth: scored on its own audio and frames, without LVE
    assert set(df[df.metric == LVE].clip_id) == {padded} and UNKNOWN in set(df[df.metric == "lse_c"].clip_id)
    why = {s["clip_id"]: s["reason"] for s in attrs["skipped"]}
    assert why == {dubbed: f"external check: {checks[dubbed]['reason']}"}
    # Aligned, the padded copy's lips follow the clip's: well within the static mean face's error (not 0: the
    # re-encoded video and its held frames change what extraction finds). Five frames off they would not.
    static, _ = _metrics(run, "static")
    lve, lve_static = _clip_means(df, LVE)[padded], _clip_means(static, LVE)[padded]
    assert lve < 0.5 * lve_static, (lve, lve_static)


def test_the_leaderboard_has_the_external_rows_and_says_why_a_video_was_not_scored(run):
    _, attrs = _metrics(run, "ext-shifted")
    dubbed = run["test"][1]
    reason = next(c["reason"] for c in attrs["external_check"] if c["clip_id"] == dubbed)
    for board, methods in ((run["first"]["board"], ()), ((run["wd"] / "reports/tiny/leaderboard.md").read_text(),
                                                         ("regression",))):
        rows = {line.split("|")[1].strip(): line for line in board.split("## Leaderboard")[1].split("\n\n")[1].splitlines()[2:]}
        assert {"ground_truth", "static", "mismatched", "copy", "shifted", *methods} <= set(rows), rows
        assert "| 2 |" in rows["copy"] and "| 2 |" in rows["shifted"]  # clips scored
        section = board.split("## External videos against their ground truth")[1].split("\n## ")[0]
        assert f"| shifted | {dubbed} | mismatch |" in section and reason in section
        assert f"| shifted | {run['test'][0]} | lag corrected |" in section
        # from the QC table: the videos that were never checked against a clip, with their reason
        assert f"| copy | {run['dubbed_with']} | other split |" in section and f"| shifted | {UNKNOWN} | no ground truth |" in section
        assert f"| copy | {dubbed} | unchecked |" in section
        assert f"| shifted | {dubbed} | external check: {reason} |" in board.split("## Skipped clips")[1]
