"""Raw HDTF -> clips: HDTF's real annotation files, and "downloads" made from real HDTF clips.

The fixture download is two real HDTF clips (598x598 and 500x500 faces) padded
into a 1280x720 frame at known offsets and concatenated, 3 s each; its
annotation files are written in HDTF's exact format.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ksdiff.data import hdtf_annotations as ann
from ksdiff.data import hdtf_prepare as hp
from ksdiff.data import manifest
from ksdiff.io import parquet
from ksdiff.io.video import probe, read_frames
from tests.conftest import REPO, SHARED_DATA

REAL_ANN = SHARED_DATA / "hdtf-annotations"
CLIPS = SHARED_DATA / "hdtf"
# (clip, offset x, offset y, side) of the two faces in the 1280x720 download
PADS = [("hdtf_gt_01.mp4", 100, 61, 598), ("hdtf_gt_02.mp4", 700, 110, 500)]
SEG_S = 3

needs_data = pytest.mark.skipif(not REAL_ANN.is_dir() or not CLIPS.is_dir() or shutil.which("ffmpeg") is None,
                                reason="real HDTF files or ffmpeg not available")


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """videos/ with the 720p download (WDA_JaneDoe0), a 360p one of the same (WRA_JaneDoe1), an unreadable
    file (RD_Radio7); annotations/ in HDTF's format, also naming a video nobody downloaded."""
    d = tmp_path_factory.mktemp("hdtf_raw")
    videos, notes = d / "videos", d / "annotations"
    videos.mkdir(), notes.mkdir()
    inputs, chains = [], []
    for k, (name, x, y, _) in enumerate(PADS):
        inputs += ["-t", str(SEG_S), "-i", str(CLIPS / name)]
        chains.append(f"[{k}:v]fps=25,pad=1280:720:{x}:{y},setsar=1[v{k}];[{k}:a]aresample=48000[a{k}]")
    fc = ";".join(chains) + ";[v0][a0][v1][a1]concat=n=2:v=1:a=1[v][a]"
    _ffmpeg(*inputs, "-filter_complex", fc, "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast",
            "-crf", "16", "-c:a", "aac", str(videos / "WDA_JaneDoe0.mp4"))
    _ffmpeg("-i", str(videos / "WDA_JaneDoe0.mp4"), "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "ultrafast",
            "-crf", "16", "-c:a", "copy", str(videos / "WRA_JaneDoe1.mp4"))
    (videos / "RD_Radio7.mp4").write_bytes(b"\x00not a video" * 100)
    wins = [f"{x} {s} {y} {s}" for _, x, y, s in PADS]
    for s, name in (("WDA", "JaneDoe0"), ("WRA", "JaneDoe1"), ("RD", "Radio7")):
        other = {"WDA": "JohnRoe", "WRA": "Missing", "RD": "Radio9"}[s]
        (notes / f"{s}_video_url.txt").write_text(f"{name} https://www.youtube.com/watch?v=abc\n{other} https://youtu.be/x\n")
        (notes / f"{s}_resolution.txt").write_text(f"{name}.mp4 720\n{other}.mp4 1080\n")
        # third span runs past the 6 s download; the trailing blank is in the real files too
        (notes / f"{s}_annotion_time.txt").write_text(f"{name}.mp4 00:00-00:02 00:03-00:05 00:05-00:09 \n{other}.mp4 00:10-00:20\n")
        (notes / f"{s}_crop_wh.txt").write_text(f"{name}_0.mp4 {wins[0]}\n{name}_1.mp4 {wins[1]}\n{name}_2.mp4 {wins[1]}\n")
        (notes / f"{s}_crop_ratio.txt").write_text(f"{name}_0.mp4 1.2\n{name}_1.mp4 1.2\n{name}_2.mp4 1.2\n")
    return d


def _diff(clip, ref, shift=0):
    """Mean absolute difference of the first 10 frames of ``clip`` and of ``ref`` resized to 512 (shifted by ``shift`` px)."""
    import cv2

    got = read_frames(clip, max_frames=10).astype(np.float32)
    ref = read_frames(ref, max_frames=10)
    ref = np.roll(ref, shift, axis=(1, 2))
    ref = np.stack([cv2.resize(f, (512, 512), interpolation=cv2.INTER_AREA) for f in ref]).astype(np.float32)
    return float(np.abs(got - ref).mean())


def _table(out):
    return {(r["clip_id"] or r["reason"]): r for r in parquet.read_table(out / hp.TABLE_NAME, "hdtf_preparation").table.to_pylist()}


# --- the real annotation files ---------------------------------------------------

@needs_data
def test_every_line_of_the_real_files_parses_or_is_reported():
    a = ann.load(REAL_ANN)
    assert not [p for p in a.problems if p.line > 0]  # the shipped files have no malformed line
    lines = {f.stem: sum(1 for ln in f.read_text(encoding="utf-8-sig").splitlines() if ln.strip())
             for f in REAL_ANN.glob("*_*.txt")}
    for s in ann.SUBSETS:  # so every line became part of a record
        vs = [v for v in a.videos.values() if v.subset == s]
        assert sum(bool(v.spans) for v in vs) == lines[f"{s}_annotion_time"]
        assert sum(bool(v.url) for v in vs) == lines[f"{s}_video_url"]
        assert sum(len(v.windows) for v in vs) == lines[f"{s}_crop_wh"]
        assert sum(len(v.ratios) for v in vs) == lines[f"{s}_crop_ratio"]
        # WRA lists one resolution as 0: kept as "not listed", the window then used as given
        assert sum(v.resolution > 0 for v in vs) == lines[f"{s}_resolution"] - (s == "WRA")
    # the BOM of WDA_video_url.txt does not end up in a name
    assert a.videos[("WDA", "CarolynMaloney2")].url.startswith("https://")
    # odd entries are reported, with their reason
    reasons = " | ".join(p.reason for p in a.problems)
    assert "Radio24: no talking spans annotated" in reasons
    v = a.videos[("WRA", "AdamKinzinger2")]
    assert v.spans == [(40.0, 80.0), (120.0, 160.0), (210.0, 230.0)] and v.resolution == 720
    assert v.windows[0] == (397, 0, 513, 513) and v.ratios[0] == 1.2
    assert sum(len(v.spans) for v in a.videos.values()) == 66 + 195 + 175
    # spans without a crop window are known (they need crop: landmarks)
    assert 1 not in a.videos[("WRA", "DuncanHunter")].windows


def test_bad_lines_are_reported_not_fatal(tmp_path):
    (tmp_path / "RD_annotion_time.txt").write_text("A.mp4 00:10-00:05\nB.mp4 00:01-00:70\nC.mp4 00:01-00:04\n")
    (tmp_path / "RD_crop_wh.txt").write_text("C_0.mp4 1 2 3\nCnoindex.mp4 1 2 3 4\n")
    (tmp_path / "RD_crop_ratio.txt").write_text("C_0.mp4 big\n")
    (tmp_path / "RD_resolution.txt").write_text("C.mp4 720p\n")
    a = ann.load(tmp_path, subsets=("RD",))
    got = {(p.file, p.line): p.reason for p in a.problems}
    assert "bad span" in got[("RD_annotion_time.txt", 1)] and "not mm:ss" in got[("RD_annotion_time.txt", 2)]
    assert "min_x width" in got[("RD_crop_wh.txt", 1)] and "video_i" in got[("RD_crop_wh.txt", 2)]
    assert "ratio" in got[("RD_crop_ratio.txt", 1)] and "not a number" in got[("RD_resolution.txt", 1)]
    assert got[("RD_video_url.txt", 0)] == "file missing"
    assert a.videos[("RD", "C")].spans == [(1.0, 4.0)]


def test_speakers_and_names():
    assert ann.clip_name("WRA", "AdamKinzinger0", 2) == "WRA_AdamKinzinger0_2"
    assert ann.speaker_of("WRA", "AdamKinzinger0") == ann.speaker_of("WRA", "AdamKinzinger") == "AdamKinzinger"
    assert ann.speaker_of("RD", "Radio12") == "Radio12"  # different programmes
    assert manifest.HDTF_RE.match("WDA_LucilleRoybal-Allard_0")


def test_window_scaling_and_clamping():
    assert hp.fixed_window((100, 61, 598, 598), 720, 640, 360)[0] == (50, 30, 298, 298)
    box, notes = hp.fixed_window((389, 0, 776, 776), 720, 1280, 720)  # MaggieHassan_0: taller than its 720p
    assert box == (389 + 28, 0, 720, 720) and "window shrunk to the frame" in notes
    assert "no listed resolution" in hp.fixed_window((10, 0, 300, 300), 0, 1280, 720)[1][0]


# --- preparing the fixture download ------------------------------------------------

@needs_data
def test_fixed_crop_cuts_scales_names_and_reports(raw, tmp_path):
    out = tmp_path / "clips"
    assert hp.prepare_hdtf({}, raw / "videos", raw / "annotations", out, crop="fixed") == 0
    t = _table(out)
    for clip in ("WDA_JaneDoe0_0", "WDA_JaneDoe0_1", "WRA_JaneDoe1_0", "WRA_JaneDoe1_1"):
        assert t[clip]["status"] == "ok", t[clip]
        info = probe(out / f"{clip}.mp4")
        assert (info.width, info.height, round(info.fps)) == (512, 512, 25)
        assert info.has_audio and abs(info.duration_s - 2.0) < 0.1 and info.n_frames == 50
    # the 360p download's window is the 720p one halved
    assert (t["WRA_JaneDoe1_0"]["crop_x"], t["WRA_JaneDoe1_0"]["crop_w"]) == (50, 298)
    assert "scaled x0.500" in t["WRA_JaneDoe1_0"]["notes"]
    # the crop is the padded clip: the prepared frames match the original clip resized to 512
    for clip, (name, *_) in (("WDA_JaneDoe0_0", PADS[0]), ("WDA_JaneDoe0_1", PADS[1]), ("WRA_JaneDoe1_0", PADS[0])):
        tol = 14 if clip.startswith("WRA") else 9  # the 360p download lost detail
        d = _diff(out / f"{clip}.mp4", CLIPS / name)
        assert d < tol, clip
        assert _diff(out / f"{clip}.mp4", CLIPS / name, shift=30) > 1.5 * d  # a window 5% off would not match
    # spans past the end, a download that is missing, an unreadable file: reasoned rows, nothing else lost
    assert t["WDA_JaneDoe0_2"]["status"] == "skipped" and "past the end" in t["WDA_JaneDoe0_2"]["reason"]
    assert "not downloaded" in t["WDA_JohnRoe_0"]["reason"] and "not downloaded" in t["WRA_Missing_0"]["reason"]
    assert t["RD_Radio7_0"]["status"] == "skipped" and "unreadable" in t["RD_Radio7_0"]["reason"]
    assert t["WRA_JaneDoe1_0"]["speaker_id"] == "JaneDoe" and t["RD_Radio7_0"]["speaker_id"] == "Radio7"
    assert (out / hp.MARKER).exists()
    # the manifest's hdtf layout reads the folder: the clips, with the prepared speakers
    rows = {r["clip_id"]: r["speaker_id"] for r in manifest.scan(out)}
    assert rows == {c: "JaneDoe" for c in ("WDA_JaneDoe0_0", "WDA_JaneDoe0_1", "WRA_JaneDoe1_0", "WRA_JaneDoe1_1")}
    # a second run keeps what the first one cut
    mtime = (out / "WDA_JaneDoe0_0.mp4").stat().st_mtime_ns
    hp.prepare_hdtf({}, raw / "videos", raw / "annotations", out, crop="fixed")
    assert _table(out)["WDA_JaneDoe0_0"]["status"] == "reused"
    assert (out / "WDA_JaneDoe0_0.mp4").stat().st_mtime_ns == mtime


@needs_data
def test_landmark_crop_lands_on_the_face(raw, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "WDA_JaneDoe0.mp4").symlink_to(raw / "videos" / "WDA_JaneDoe0.mp4")
    out = tmp_path / "clips"
    hp.prepare_hdtf({}, videos, raw / "annotations", out, crop="landmarks")
    t = _table(out)
    for k, (_, x, y, side) in enumerate(PADS):
        r = t[f"WDA_JaneDoe0_{k}"]
        assert r["status"] == "ok" and r["face_rate"] > 0.9 and r["crop_ratio"] == 1.2
        cx, cy = r["crop_x"] + r["crop_w"] / 2, r["crop_y"] + r["crop_h"] / 2
        # the window is centred on the face's own clip and about its size
        assert abs(cx - (x + side / 2)) < 0.2 * side and abs(cy - (y + side / 2)) < 0.25 * side
        assert 0.6 < r["crop_w"] / side < 1.6 and r["crop_w"] == r["crop_h"]
        info = probe(out / f"WDA_JaneDoe0_{k}.mp4")
        assert (info.width, info.height, info.n_frames, info.has_audio) == (512, 512, 50, True)


@needs_data
def test_a_span_without_a_listed_window_gets_the_landmark_window(raw, tmp_path):
    videos, notes = tmp_path / "videos", tmp_path / "annotations"
    videos.mkdir()
    (videos / "WDA_JaneDoe0.mp4").symlink_to(raw / "videos" / "WDA_JaneDoe0.mp4")
    shutil.copytree(raw / "annotations", notes)
    wh = notes / "WDA_crop_wh.txt"
    wh.write_text("".join(ln for ln in wh.read_text().splitlines(keepends=True) if not ln.startswith("JaneDoe0_1.mp4")))
    hp.prepare_hdtf({}, videos, notes, tmp_path / "clips", crop="fixed")
    t = _table(tmp_path / "clips")
    assert (t["WDA_JaneDoe0_0"]["crop_x"], t["WDA_JaneDoe0_0"]["crop_w"], t["WDA_JaneDoe0_0"]["notes"]) == (100, 598, "")
    r = t["WDA_JaneDoe0_1"]
    assert r["status"] == "ok" and r["crop_method"] == "landmarks" and "landmark window" in r["notes"]
    assert r["face_rate"] > 0.9 and t["WDA_JaneDoe0_0"]["crop_method"] == "fixed"
    _, x, y, side = PADS[1]
    assert abs(r["crop_x"] + r["crop_w"] / 2 - (x + side / 2)) < 0.2 * side


@needs_data
def test_the_workflow_prepares_raw_hdtf_into_the_manifest(raw, tmp_path):
    """`layout: hdtf_raw` in the config: the workflow cuts the clips, then its manifest lists them."""
    import sys

    import yaml

    root = tmp_path / "clips"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "datasets": [{"name": "hdtfraw", "root": str(root), "layout": "hdtf_raw", "videos": str(raw / "videos"),
                      "annotations": str(raw / "annotations"), "crop": "fixed"}],
        "results_dir": str(tmp_path / "results"), "logs_dir": str(tmp_path / "logs"),
    }))
    snakemake = [str(Path(sys.executable).parent / "snakemake")]
    target = tmp_path / "results" / "hdtfraw" / "manifest.parquet"
    dry = subprocess.run(snakemake + ["-n", "-p", "--cores", "1", "--configfile", str(cfg)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "rule hdtf_prepare:" in dry.stdout and f"--out {root} --crop fixed" in dry.stdout
    r = subprocess.run(snakemake + [str(target), "--cores", "1", "--configfile", str(cfg)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    t = parquet.read_table(target, "manifest").table
    assert sorted(t.column("clip_id").to_pylist()) == ["WDA_JaneDoe0_0", "WDA_JaneDoe0_1", "WRA_JaneDoe1_0", "WRA_JaneDoe1_1"]
    assert set(t.column("speaker_id").to_pylist()) == {"JaneDoe"} and set(t.column("width").to_pylist()) == {512}


@needs_data
def test_an_interlaced_download_comes_out_progressive(raw, tmp_path):
    src = tmp_path / "interlaced.mp4"
    _ffmpeg("-t", "2", "-i", str(raw / "videos" / "WDA_JaneDoe0.mp4"), "-vf", "scale=640:360", "-flags", "+ilme+ildct",
            "-top", "1", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(src))
    info = hp.probe_source(src)
    assert info["interlaced"]
    hp.cut_clip(src, 0.0, 1.0, (50, 30, 298, 298), tmp_path / "out.mp4", 512, 25, info["interlaced"])
    out = hp.probe_source(tmp_path / "out.mp4")
    assert not out["interlaced"] and (out["width"], out["height"]) == (512, 512) and out["has_audio"]
