"""Config paths that had unit tests only, run through the workflow in one tiny run (issue 25 item 0; the
others are in tests/test_config_paths_end_to_end.py and tests/test_external_end_to_end.py):

- dataset layouts: a synthetic corpus in VoxCeleb's layout (synthetic_layout: voxceleb) to its leaderboard;
  a plain folder holding a copy of its speaker folders, read with layout: auto (detected as voxceleb, the
  same speaker and clip ids), through every per-clip step to its QC table; raw HDTF (layout: hdtf_raw):
  "downloaded" videos made of a synthetic speaker's clips and HDTF's five annotation files per subset, cut by
  `ksdiff hdtf-prepare` into clips whose number and lengths are the annotated spans' (a span past a video's
  end and a video never downloaded are recorded with their reasons), to its leaderboard;
- the trained methods no other e2e run trains: ksdiff_nokel (use_kel false), ksdiff_nosplit (split_paths
  false) and diffspeaker, each scored on every test clip of both datasets and ranked on their leaderboards;
- landmark and coefficient options away from their defaults: landmarks.refine_landmarks false (MediaPipe's
  468 points, the irises NaN), detector_model 0, crop_size 192, coeffs.smoothing_cutoff_hz 6; recorded in the
  tables' attrs, and the 468 points reach scoring: the SyncNet expert trains on them, LVE, MOD, FDD, LSE and
  LMD (eval.video_metrics [lmd]) are scored on every test clip;
- eval.external whose folder lacks the video of a test clip: that clip is listed skipped with its reason in
  the method's metrics table and on the leaderboard, and the other is scored.
"""
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ksdiff.data.hdtf_prepare import TABLE_NAME
from ksdiff.extract.landmarks import landmarks_array
from ksdiff.io import parquet
from ksdiff.io.video import probe
from ksdiff.landmark_points import N_MESH
from ksdiff.metrics import external_check, external_qc
from ksdiff.metrics.registry import F_LMD, FDD, LVE, M_LMD, MOD
from tests.test_external_end_to_end import _snakemake, _write_config  # the workflow run in a working folder

pytestmark = pytest.mark.slow

FPS = 25
TRAINED = {"ksdiff_nokel": {"use_kel": False}, "ksdiff_nosplit": {"split_paths": False},
           "diffspeaker": {"method": "diffspeaker"}}
LANDMARKS = {"refine_landmarks": False, "detector_model": 0, "crop_size": 192}
CUTOFF_HZ = 6.0
VOX = {"name": "vox", "root": "data/vox", "synthetic": True, "synthetic_layout": "voxceleb"}
DATASETS = [VOX, {"name": "auto", "root": "data/auto", "layout": "auto"},
            {"name": "raw", "root": "data/raw", "layout": "hdtf_raw", "videos": "downloads", "annotations": "annotations"}]
CONFIG = {
    "datasets": [VOX],
    # four speakers, two clips each, one sentence: one speaker (two clips) in test
    "synth": {"seed": 0, "speakers": 4, "clips_per_speaker": 2, "sentences_per_clip": 1, "size": 128},
    "shard_size": 4,
    "landmarks": LANDMARKS,
    "coeffs": {"n_expr": 16, "smoothing_cutoff_hz": CUTOFF_HZ},
    "features": {"kind": "logmel"},
    "dataset": {"val_fraction": 0.25, "test_fraction": 0.25},
    "methods": TRAINED,
    "train": {"steps": 10, "num_threads": 1},
    "infer": {"n_samples": 1},
    "eval": {"lse_samples": 1, "bootstrap_samples": 200, "expert_check_clips": 2,
             "expert": {"steps": 20, "batch_size": 4}, "video_metrics": ["lmd"], "video_samples": 1},
}
# Raw HDTF: one "download" per synthetic speaker (its clips end to end, repeated to SOURCE_S at least),
# two annotated spans of SPAN_S each, a third span past the end on the first; a video nobody downloaded.
SOURCE_S, SPAN_S = 5.0, 2
PAST_END = (30, 35)
NOT_DOWNLOADED = "SpeakerZ"
TARGETS = ("reports/vox/leaderboard.md", "reports/raw/leaderboard.md", "results/auto/qc.parquet")


def _table(wd, path, name):
    t = parquet.read_table(wd / path, name)
    assert t.ok, (path, t.reason)
    return t


def _download(clips, out):
    """``clips`` end to end, repeated until SOURCE_S seconds at least, re-encoded into one video with its audio."""
    seq, total = [], 0.0
    while total < SOURCE_S:
        for c in clips:
            seq.append(c)
            total += probe(c).duration_s
    inputs = [a for c in seq for a in ("-i", str(c))]
    streams = "".join(f"[{k}:v][{k}:a]" for k in range(len(seq)))
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *inputs, "-filter_complex",
                    f"{streams}concat=n={len(seq)}:v=1:a=1[v][a]", "-map", "[v]", "-map", "[a]", "-c:v", "libx264",
                    "-preset", "ultrafast", "-crf", "18", "-c:a", "aac", str(out)], check=True)


def _make_raw_hdtf(wd, manifest):
    """downloads/WDA_Speaker{A..D}.mp4 from the synthetic speakers' clips; annotations/ in HDTF's format (WDA;
    RD and WRA files empty). Returns the videos' names."""
    downloads, notes = wd / "downloads", wd / "annotations"
    downloads.mkdir()
    notes.mkdir()
    names = []
    for k, (_, clips) in enumerate(sorted(manifest.groupby("speaker_id"))):
        name = f"Speaker{chr(ord('A') + k)}"
        _download(sorted(clips["path"]), downloads / f"WDA_{name}.mp4")
        names.append(name)
    spans = {n: [(0, SPAN_S), (SPAN_S, 2 * SPAN_S)] + ([PAST_END] if n == names[0] else []) for n in names}
    spans[NOT_DOWNLOADED] = [(0, SPAN_S)]
    mmss = lambda s: f"{s // 60:02d}:{s % 60:02d}"  # noqa: E731
    lines = {"video_url": [f"{n} https://www.youtube.com/watch?v={n}" for n in spans],
             "resolution": [f"{n}.mp4 128" for n in spans],
             "annotion_time": [f"{n}.mp4 " + " ".join(f"{mmss(a)}-{mmss(b)}" for a, b in s) for n, s in spans.items()],
             "crop_wh": [f"{n}_{i}.mp4 0 128 0 128" for n, s in spans.items() for i in range(len(s))],
             "crop_ratio": [f"{n}_{i}.mp4 1.2" for n, s in spans.items() for i in range(len(s))]}
    for subset in ("RD", "WDA", "WRA"):
        for kind, text in lines.items():
            (notes / f"{subset}_{kind}.txt").write_text("\n".join(text) + "\n" if subset == "WDA" else "")
    return names


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    start = time.monotonic()
    wd = tmp_path_factory.mktemp("layouts")
    _write_config(wd, CONFIG)
    _snakemake(wd, "results/vox/splits.parquet")
    manifest = _table(wd, "results/vox/manifest.parquet", "manifest").to_pandas()
    splits = _table(wd, "results/vox/splits.parquet", "splits").to_pandas()
    test = sorted(splits.loc[splits["split"] == "test", "clip_id"])
    assert len(test) == 2, splits
    for folder in (wd / "data/vox").glob("id*"):  # the auto dataset: the speaker folders, nothing else
        shutil.copytree(folder, wd / "data/auto" / folder.name)
    names = _make_raw_hdtf(wd, manifest)
    (wd / "ext/partial").mkdir(parents=True)  # an external system's video of the first test clip only
    shutil.copy(manifest.set_index("clip_id").loc[test[0], "path"], wd / "ext/partial" / f"{test[0]}.mp4")
    _write_config(wd, {**CONFIG, "datasets": DATASETS,
                       "eval": {**CONFIG["eval"], "external": {"partial": str(wd / "ext/partial")}}})
    _snakemake(wd, *TARGETS)
    print(f"\nworkflow wall time: {time.monotonic() - start:.0f} s")
    return {"wd": wd, "test": test, "names": names}


def _manifest(run, dataset):
    return _table(run["wd"], f"results/{dataset}/manifest.parquet", "manifest").to_pandas()


def _test_clips(run, dataset):
    splits = _table(run["wd"], f"results/{dataset}/splits.parquet", "splits").to_pandas()
    return sorted(splits.loc[splits["split"] == "test", "clip_id"])


def _metrics(run, dataset, method):
    t = _table(run["wd"], f"metrics/{dataset}/{method}.parquet", "metrics")
    return t.to_pandas(), t.attrs


def _board_rows(run, dataset):
    board = (run["wd"] / f"reports/{dataset}/leaderboard.md").read_text()
    table = board.split("## Leaderboard")[1].split("\n\n")[1].splitlines()[2:]
    return board, {line.split("|")[1].strip(): line for line in table}


def test_the_synthetic_voxceleb_corpus_and_its_copy_read_with_layout_auto_have_voxceleb_ids(run):
    vox, auto = _manifest(run, "vox"), _manifest(run, "auto")
    assert set(vox["layout"]) == set(auto["layout"]) == {"voxceleb"}
    assert len(vox) == 8 and vox["speaker_id"].nunique() == 4
    for df, root in ((vox, "data/vox"), (auto, "data/auto")):
        for r in df.itertuples():  # id{NNNNN}/{youtube id}/{NNNNN}.mp4 -> speaker id{NNNNN}, clip {id}_{yt}_{NNNNN}
            spk, yt, utt = Path(r.path).relative_to((run["wd"] / root).resolve()).with_suffix("").parts
            assert re.fullmatch(r"id\d{5}", spk) and re.fullmatch(r"\d{5}", utt), r.path
            assert (r.speaker_id, r.clip_id) == (spk, f"{spk}_{yt}_{utt}")
    key = ["clip_id", "speaker_id", "sha256"]
    assert vox[key].sort_values("clip_id").values.tolist() == auto[key].sort_values("clip_id").values.tolist()
    # the auto dataset's split follows the same speakers
    split = {d: _table(run["wd"], f"results/{d}/splits.parquet", "splits").to_pandas().set_index("clip_id")["split"]
             for d in ("vox", "auto")}
    assert split["auto"].sort_index().equals(split["vox"].sort_index())
    assert _table(run["wd"], "results/auto/qc.parquet", "qc").to_pandas()["usable"].all()


def test_raw_hdtf_is_cut_into_the_annotated_spans(run):
    prep = _table(run["wd"], f"data/raw/{TABLE_NAME}", "hdtf_preparation").to_pandas().set_index("clip_id")
    ok = prep[prep["status"] == "ok"]
    want = {f"WDA_{n}_{i}" for n in run["names"] for i in range(2)}
    assert set(ok.index) == want
    assert (ok["end_s"] - ok["start_s"] == SPAN_S).all() and (ok["crop_method"] == "fixed").all()
    first = run["names"][0]
    past = prep.loc[f"WDA_{first}_2"]
    assert past["status"] == "skipped" and "past the end of the video" in past["reason"]
    missing = prep.loc[f"WDA_{NOT_DOWNLOADED}_0"]
    assert missing["status"] == "skipped" and "not downloaded" in missing["reason"]
    # the clips the dataset reads: the prepared ones, at the annotated lengths, 512 px, 25 fps, with audio
    m = _manifest(run, "raw").set_index("clip_id")
    assert set(m.index) == want and set(m["layout"]) == {"hdtf"}
    assert {s: sorted(m.index[m.speaker_id == s]) for s in m.speaker_id.unique()} == {
        n: [f"WDA_{n}_0", f"WDA_{n}_1"] for n in run["names"]}
    assert np.allclose(m["duration_s"], SPAN_S, atol=1.5 / FPS), m["duration_s"]
    assert (m["n_frames"] - SPAN_S * FPS).abs().max() <= 1 and (m["width"] == 512).all() and m["has_audio"].all()
    qc = _table(run["wd"], "results/raw/qc.parquet", "qc").to_pandas()
    assert qc["usable"].all(), qc[~qc["usable"]][["clip_id", "reason"]]


@pytest.mark.parametrize("dataset", ["vox", "raw"])
def test_each_trained_method_is_scored_on_every_test_clip_and_ranked(run, dataset):
    test = _test_clips(run, dataset)
    assert len(test) == 2
    _, rows = _board_rows(run, dataset)
    for method in TRAINED:
        assert (run["wd"] / f"models/{dataset}/{method}/model.pt").exists()
        df, attrs = _metrics(run, dataset, method)
        assert attrs["clips"] == test and attrs["skipped"] == [], (method, attrs["skipped"])
        lve = df[df.metric == LVE].groupby("clip_id")["value"].mean()
        assert sorted(lve.index) == test and np.isfinite(lve).all() and (lve > 0).all(), (method, lve)
        assert f"| {len(test)} |" in rows[method], rows[method]
    assert {"ground_truth", "static", "mismatched", *TRAINED, "partial"} <= set(rows), rows


@pytest.mark.parametrize("dataset", ["vox", "auto", "raw"])
def test_landmark_and_coefficient_options_are_recorded_in_the_tables(run, dataset):
    clip = _manifest(run, dataset)["clip_id"].iloc[0]
    lm = _table(run["wd"], f"results/{dataset}/landmarks/{clip}.parquet", "landmarks")
    det = lm.attrs["detector"]
    assert "face_detection (short-range," in det and "192px" in det and "refine_landmarks=False" in det, det
    points = landmarks_array(lm)[lm.column("detected").astype(bool)]
    assert len(points) and np.isfinite(points[:, :N_MESH]).all() and np.isnan(points[:, N_MESH:]).all()
    coeffs = _table(run["wd"], f"results/{dataset}/coeffs/{clip}.parquet", "coeffs")
    assert coeffs.attrs["smoothing_cutoff_hz"] == CUTOFF_HZ


@pytest.mark.parametrize("dataset", ["vox", "raw"])
def test_the_468_point_landmarks_reach_scoring(run, dataset):
    """Without irises the SyncNet expert trains, and LSE (face boxes on the 468 points), LVE, MOD, FDD and
    F-/M-LMD (the 468 points of both videos) are scored for ground truth and every trained method on every
    test clip (LVE not for ground truth: 0 by definition)."""
    test = _test_clips(run, dataset)
    assert (run["wd"] / f"models/{dataset}/syncnet/expert.pt").exists()
    for method in ("ground_truth", *TRAINED):
        df, attrs = _metrics(run, dataset, method)
        for metric in ("lse_c", "lse_d", F_LMD, M_LMD, MOD, FDD) + (() if method == "ground_truth" else (LVE,)):
            v = df[df.metric == metric].groupby("clip_id")["value"].mean()
            assert sorted(v.index) == test and np.isfinite(v).all(), (method, metric, v, attrs["undefined"][:3])


def test_an_external_folder_without_a_test_clips_video_scores_the_other_and_says_why(run):
    have, missing = run["test"]
    qc = {r["clip_id"]: r for r in external_qc.read_rows(run["wd"] / "results/vox/external_qc/partial.parquet")}
    assert {c: (r["status"], r["scored"]) for c, r in qc.items()} == {have: (external_check.OK, True)}
    df, attrs = _metrics(run, "vox", "ext-partial")
    assert attrs["clips"] == [have] and set(df.clip_id) == {have}
    assert attrs["skipped"] == [{"clip_id": missing, "reason": external_qc.NO_VIDEO}]
    board, rows = _board_rows(run, "vox")
    assert "| 1 |" in rows["partial"], rows["partial"]
    assert f"| partial | {missing} | {external_qc.NO_VIDEO} |" in board.split("## Skipped clips")[1]
    # the raw HDTF dataset has no clip of that id: the video is scored on its own audio, both test clips missing
    qc = external_qc.read_rows(run["wd"] / "results/raw/external_qc/partial.parquet")
    assert [(r["clip_id"], r["status"], r["scored"]) for r in qc] == [(have, external_qc.NO_GROUND_TRUTH, True)]
    _, attrs = _metrics(run, "raw", "ext-partial")
    assert attrs["clips"] == [have] and attrs["external_check"] == []
    assert attrs["skipped"] == [{"clip_id": c, "reason": external_qc.NO_VIDEO} for c in _test_clips(run, "raw")]
