"""Landmark extraction: detect -> crop -> mesh on real face images and bad inputs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import skimage.io

from ksdiff.config import defaults
from ksdiff.extract.face_detect import FaceDetector, FaceFinder, FullFrameMesh, iou
from ksdiff.extract.landmarks import extract_landmarks, face_sources, landmarks_array
from ksdiff.io.parquet import read_table, write_table
from ksdiff.io.video import VideoError, iter_frames, probe, write_video

SHARED = Path(__file__).parents[2] / "shared" / "data"
FPS = 25


def write_manifest(path: Path, videos: dict[str, Path]) -> Path:
    """A 'manifest' table for ``videos`` (clip_id -> path), probe errors recorded."""
    cols = {k: [] for k in ("clip_id", "path", "duration_s", "fps", "n_frames", "width", "height", "probe_error")}
    for clip, p in videos.items():
        try:
            i = probe(p)
            facts, err = (i.duration_s, i.fps, i.n_frames, i.width, i.height), ""
        except VideoError as e:
            facts, err = (0.0, 0.0, 0, 0, 0), str(e)
        for k, v in zip(("clip_id", "path", "duration_s", "fps", "n_frames", "width", "height", "probe_error"), (clip, str(p), *facts, err)):
            cols[k].append(v)
    n = len(videos)
    cols.update(
        speaker_id=["s"] * n, dataset=["test"] * n, layout=["folder"] * n, has_audio=[False] * n,
        audio_sample_rate=[0] * n, audio_channels=[0] * n, variable_fps=[False] * n, size_bytes=[0] * n, sha256=[""] * n,
    )
    write_table(path, "manifest", cols)
    return path


def motion(k: int, w: int = 512, h: int = 512) -> np.ndarray:
    """2x3 affine of frame k of the 'moving' clip: drift (3, 1) px/frame and a slow tilt."""
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 5 * np.sin(k / 6), 1.0)
    m[:, 2] += (-60 + 3 * k, -20 + k)
    return m


def shifted(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(img, m, img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def closeup(img: np.ndarray, centre, half: float, size: int = 512) -> np.ndarray:
    """The square of half-side ``half`` around ``centre`` of ``img``, scaled to ``size`` px."""
    s = size / (2 * half)
    m = np.float32([[s, 0, -(centre[0] - half) * s], [0, s, -(centre[1] - half) * s]])
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# The astronaut's face box (full-range detector) is (174, 68)-(278, 172): a
# 104 px square around it fills the frame, a close-up the full-range model misses.
ASTRO_FACE_CENTRE, ASTRO_CLOSE_HALF = (226, 120), 52


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    astro = skimage.data.astronaut()
    n = 40  # 1.6 s
    videos = {}
    # The astronaut drifting right 3 px/frame, down 1 px/frame, tilting a little.
    write_video(d / "moving.mp4", [shifted(astro, motion(k)) for k in range(n)], FPS)
    videos["moving"] = d / "moving.mp4"
    # The whole 512 px photo in a 1024 px canvas: face ~10% of the frame height.
    canvas = np.full((1024, 1024, 3), 90, np.uint8)
    canvas[400:912, 400:912] = astro
    write_video(d / "small.mp4", [canvas] * 30, FPS)
    videos["small"] = d / "small.mp4"
    (d / "empty.mp4").write_bytes(b"")
    videos["empty"] = d / "empty.mp4"
    good = (d / "moving.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(good[: len(good) // 2])
    videos["truncated"] = d / "truncated.mp4"
    rng = np.random.default_rng(0)
    write_video(d / "noise.mp4", [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(30)], FPS)
    videos["noise"] = d / "noise.mp4"
    write_video(d / "flat.mp4", [np.full((256, 256, 3), 128, np.uint8)] * 30, FPS)
    videos["flat"] = d / "flat.mp4"
    write_video(d / "short.mp4", [astro] * 10, FPS)
    videos["short"] = d / "short.mp4"
    images = importlib.util.find_spec("insightface").submodule_search_locations[0] + "/data/images/"
    group = skimage.io.imread(images + "t1.jpg")[..., :3]
    write_video(d / "group.mp4", [shifted(group, np.array([[1.0, 0, 2 * k], [0, 1, 0]])) for k in range(30)], FPS)
    videos["group"] = d / "group.mp4"
    # A close-up: the face fills the frame, drifting 0.5 px/frame (of the photo) right, 0.3 down.
    cx, cy = ASTRO_FACE_CENTRE
    write_video(d / "closeup.mp4", [closeup(astro, (cx + k / 2, cy + 0.3 * k), ASTRO_CLOSE_HALF) for k in range(30)], FPS)
    videos["closeup"] = d / "closeup.mp4"
    return write_manifest(d / "manifest.parquet", videos), d


def run(clips, clip, **kw):
    manifest, d = clips
    out = d / f"{clip}.landmarks.parquet"
    extract_landmarks(defaults(), manifest, clip, out, **kw)
    return read_table(out, "landmarks")


def box_centres(t):
    b = t.column("box")
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)


def test_moving_face_is_tracked_on_every_frame(clips):
    t = run(clips, "moving")
    assert t.ok
    assert t.column("detected").all()
    assert (t.column("n_faces") == 1).all()
    lm = landmarks_array(t)
    assert lm.shape == (40, 478, 3) and np.isfinite(lm).all()
    assert t.attrs["fps"] == FPS and t.attrs["width"] == 512 and t.attrs["height"] == 512
    # The landmarks follow the picture's motion: map frame 0's points back to
    # the photo, then forward with each frame's transform.
    m0 = np.vstack([motion(0), [0, 0, 1]])
    photo = (np.linalg.inv(m0)[:2] @ np.c_[lm[0, :, :2], np.ones(478)].T).T
    expected = np.stack([(motion(k) @ np.c_[photo, np.ones(478)].T).T for k in range(40)])
    err = np.linalg.norm(lm[:, :, :2] - expected, axis=2)
    assert np.median(err) < 2.0 and err.mean(1).max() < 4.0
    # ... and so does the crop box: it moves with the face (in steps: it is
    # kept while the face stays well inside) and keeps the nose near its centre.
    boxes = t.column("box")
    side = boxes[:, 2] - boxes[:, 0]
    offset = np.abs(box_centres(t) - expected[:, 1]).max(1)
    assert (offset < 0.25 * side).all()
    assert np.linalg.norm(box_centres(t)[-1] - box_centres(t)[0] - (3 * 39, 39)) < 0.1 * side.mean()
    # x, y in full-frame pixels: the photo's nose tip (landmark 1) is near (227, 130).
    assert np.linalg.norm(photo[1] - (227, 130)) < 12
    # z shares the pixel scale: the face is about as deep as a third of its width.
    depth = lm[0, :, 2].max() - lm[0, :, 2].min()
    width = lm[0, :, 0].max() - lm[0, :, 0].min()
    assert 0.2 * width < depth < 1.0 * width


def test_small_face_is_found_by_detect_crop_mesh(clips):
    import mediapipe as mp

    t = run(clips, "small")
    assert t.ok and t.column("detected").all()
    lm = landmarks_array(t)
    face_h = lm[0, 152, 1] - lm[0, 10, 1]
    assert face_h / 1024 < 0.15
    assert np.linalg.norm(lm[0, 1, :2] - (400 + 227, 400 + 130)) < 12
    # The point of detect -> crop: FaceMesh on the whole frame misses this face.
    canvas = np.full((1024, 1024, 3), 90, np.uint8)
    canvas[400:912, 400:912] = skimage.data.astronaut()
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as fm:
        assert fm.process(canvas).multi_face_landmarks is None


@pytest.mark.parametrize(
    "clip, words",
    [
        ("empty", ["zero-byte"]),
        ("truncated", ["unreadable"]),
        ("noise", ["no face"]),
        ("flat", ["no face"]),
        ("short", ["too short", "10 frames"]),
    ],
)
def test_bad_input_records_a_reason(clips, clip, words):
    t = run(clips, clip)
    assert t.status == "failed"
    assert t.table.num_rows == 0
    for w in words:
        assert w in t.reason, t.reason


def test_unreadable_video_without_probe_error_is_recorded(clips, tmp_path):
    # A manifest that did not catch the problem: decoding itself must fail cleanly.
    _, d = clips
    manifest = write_manifest(tmp_path / "manifest.parquet", {"empty": d / "empty.mp4", "truncated": d / "truncated.mp4"})
    t = read_table(manifest, "manifest").table
    write_table(manifest, "manifest", t.set_column(t.schema.get_field_index("probe_error"), "probe_error", [["", ""]]))
    for clip in ("empty", "truncated"):
        out = tmp_path / f"{clip}.parquet"
        extract_landmarks(defaults(), manifest, clip, out)
        t = read_table(out, "landmarks")
        assert t.status == "failed" and t.reason.startswith("unreadable video:"), t.reason


def test_several_faces_one_consistent_track(clips):
    t = run(clips, "group")
    assert t.ok and t.column("detected").all()
    assert (t.column("n_faces") >= 2).all()
    boxes = t.column("box")
    # One face followed throughout: every crop box overlaps its predecessor
    # and the track moves with the picture (2 px per frame to the right).
    assert min(iou(a, b) for a, b in zip(boxes[:-1], boxes[1:])) > 0.7
    slope = np.polyfit(t.column("frame"), box_centres(t)[:, 0], 1)[0]
    assert abs(slope - 2) < 0.5


def test_max_frames_limits_the_clip(clips):
    t = run(clips, "moving", max_frames=30)
    assert t.ok and t.table.num_rows == 30
    np.testing.assert_allclose(t.column("time_s"), np.arange(30) / FPS)


def test_closeup_face_is_found_by_the_fallback_detector(clips):
    t = run(clips, "closeup")
    assert t.ok and t.column("detected").mean() >= 29 / 30
    # The configured full-range detector finds nothing on the first frame; the
    # short-range one found the face every landmark descends from.
    _, _, _, first = next(iter_frames(clips[1] / "closeup.mp4"))
    full = FaceDetector(1)
    try:
        assert full(first) == []
    finally:
        full.close()
    src = face_sources(t)
    assert len(src) == 30 and src[0] == "short-range"
    assert t.attrs["face_source_counts"].get("short-range", 0) >= 25
    lm = landmarks_array(t)
    face_h = lm[0, 152, 1] - lm[0, 10, 1]  # forehead to chin: more than the frame's height
    assert face_h > 0.9 * 512


def test_fallbacks_run_only_when_the_detector_finds_nothing():
    astro = skimage.data.astronaut()
    finder = FaceFinder(1)
    try:
        dets, source = finder(astro)
        assert source == "full-range" and len(dets) == 1 and finder.built == ["full-range"]
        dets, source = finder(closeup(astro, ASTRO_FACE_CENTRE, ASTRO_CLOSE_HALF))
        assert source == "short-range" and finder.built == ["full-range", "short-range"]
        dets, source = finder(np.full((256, 256, 3), 128, np.uint8))
        assert (dets, source) == ([], "") and finder.built == ["full-range", "short-range", "face-mesh"]
    finally:
        finder.close()
    # The last resort, FaceMesh on the whole frame, boxes the same face as the detector.
    mesh, det = FullFrameMesh(), FaceDetector(1)
    try:
        (m,), (d,) = mesh(astro), det(astro)
        assert iou(m.box, d.box) > 0.5 and np.isnan(m.score)
    finally:
        mesh.close()
        det.close()


@pytest.mark.skipif(not (SHARED / "hdtf").exists(), reason="../shared/data/hdtf is absent")
def test_hdtf_clips_detected_on_nearly_every_frame(tmp_path):
    videos = {p.stem: p for p in sorted((SHARED / "hdtf").glob("*.mp4"))}
    # A close-up of a real clip: a fixed 322 px square around the face of
    # hdtf_sample_01 (the face box is 293 px wide), at 964x964, 4 s. The
    # full-range detector alone finds its face on 2% of these frames.
    frames = [f[3] for _, f in zip(range(100), iter_frames(videos["hdtf_sample_01"], FPS))]
    write_video(tmp_path / "close.mp4", [cv2.resize(f[133:455, 102:424], (964, 964)) for f in frames], FPS)
    videos["close"] = tmp_path / "close.mp4"
    manifest = write_manifest(tmp_path / "manifest.parquet", videos)
    for clip in videos:
        out = tmp_path / f"{clip}.parquet"
        extract_landmarks(defaults(), manifest, clip, out)
        t = read_table(out, "landmarks")
        assert t.ok, t.reason
        assert t.column("detected").mean() >= 0.99, (clip, t.column("detected").mean())
    assert "short-range" in t.attrs["face_source_counts"]  # the close-up needed the fallback
