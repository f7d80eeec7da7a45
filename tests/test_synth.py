"""The synthetic corpus: layouts, A/V container facts, and that its ground truth is true.

One tiny corpus (2 speakers x 1 clip of one sentence, 160 px) is generated per
layout for the whole module; the checks then look at it as a user would: file
names, the decoded audio and video, and MediaPipe run on the rendered frames.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ksdiff import config
from ksdiff.geometry import face_frame, matrix_to_euler
from ksdiff.io.audio import load_audio
from ksdiff.io.parquet import read_status, read_table
from ksdiff.io.video import probe, read_frames

SYNTH = {"seed": 3, "speakers": 2, "clips_per_speaker": 1, "sentences_per_clip": 1, "size": 160}
HDTF_NAME = re.compile(r"^(RD|WDA|WRA)_[A-Za-z0-9]+_\d+\.mp4$")


def _cfg(**synth):
    return config.defaults(synth={**SYNTH, **synth})


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    from ksdiff.data.synth.corpus import make_corpus

    root = tmp_path_factory.mktemp("synth")
    cfg = _cfg()
    for layout in ("hdtf", "voxceleb"):
        assert make_corpus(cfg, root / layout, layout) == 0
    return cfg, root


def _clips(root):
    return sorted(p for p in root.rglob("*.mp4"))


def _gt(mp4):
    return read_table(str(mp4)[:-4] + ".motion.parquet", "synth_motion")


def _rig(cfg, speaker_name):
    from ksdiff.data.synth.corpus import plan_speakers, speaker_rig

    spk = next(s for s in plan_speakers(cfg) if s.name == speaker_name)
    return speaker_rig(cfg, spk)[1]


def test_layout_names(corpora):
    cfg, root = corpora
    hdtf = _clips(root / "hdtf")
    assert len(hdtf) == 2 and all(HDTF_NAME.match(p.name) for p in hdtf)
    vox = _clips(root / "voxceleb")
    assert len(vox) == 2
    for p in vox:
        rel = p.relative_to(root / "voxceleb").parts
        assert re.fullmatch(r"id\d{5}", rel[0]) and re.fullmatch(r"[A-Za-z0-9_-]{11}", rel[1])
        assert re.fullmatch(r"\d{5}\.mp4", rel[2])
    for layout in ("hdtf", "voxceleb"):
        meta = json.loads((root / layout / "speakers.json").read_text())
        assert [len(s["clips"]) for s in meta["speakers"]] == [1, 1]
        assert (root / layout / ".complete").exists()
        for p in _clips(root / layout):
            text = p.with_suffix(".txt").read_text()
            assert text.strip() and text.count("\n") == 1
            assert _gt(p).attrs["text"] == text.strip()


def test_same_content_in_both_layouts(corpora):
    """The layout names the files; the clips themselves are the same."""
    _, root = corpora
    a = {_gt(p).attrs["speaker"]: _gt(p) for p in _clips(root / "hdtf")}
    b = {_gt(p).attrs["speaker"]: _gt(p) for p in _clips(root / "voxceleb")}
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].table.equals(b[k].table)
        assert a[k].attrs["text"] == b[k].attrs["text"]


def test_deterministic_from_seed(corpora, tmp_path):
    """Same seed: byte-identical motion table and text; another seed: different."""
    from ksdiff.data.synth.corpus import make_clip, plan_speakers, speaker_rig

    cfg, root = corpora
    clip = _clips(root / "hdtf")[0]
    rel = clip.stem
    spk = next(s for s in plan_speakers(cfg) if s.name == _gt(clip).attrs["speaker"])
    portrait, rig = speaker_rig(cfg, spk)
    make_clip(tmp_path, rel, cfg, spk, rig, portrait.base_pose, 0)
    assert (tmp_path / f"{rel}.motion.parquet").read_bytes() == (root / "hdtf" / f"{rel}.motion.parquet").read_bytes()
    assert (tmp_path / f"{rel}.txt").read_text() == clip.with_suffix(".txt").read_text()

    other = _cfg(seed=SYNTH["seed"] + 1)
    spk2 = plan_speakers(other)[spk.index]
    portrait2, rig2 = speaker_rig(other, spk2)
    make_clip(tmp_path / "other", rel, other, spk2, rig2, portrait2.base_pose, 0)
    t1, t2 = _gt(clip), read_table(tmp_path / "other" / f"{rel}.motion.parquet")
    assert t1.attrs["text"] != t2.attrs["text"] or t1.attrs["voice"] != t2.attrs["voice"]
    assert not t1.table.equals(t2.table)


def test_worker_processes_write_the_same_files(corpora, tmp_path):
    """threads=2 (the workflow's synth job) spreads the speakers over two processes: every file, the videos
    included, is the same bytes as the one-process corpus's."""
    from ksdiff.data.synth.corpus import make_corpus

    cfg, root = corpora
    assert make_corpus(cfg, tmp_path, "hdtf", threads=2) == 0
    one = sorted(p.relative_to(root / "hdtf") for p in (root / "hdtf").rglob("*") if p.is_file())
    two = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert one == two and len(one) == 2 * 3 + 2  # 2 clips x (mp4, txt, motion) + speakers.json + .complete
    for rel in one:
        assert (tmp_path / rel).read_bytes() == (root / "hdtf" / rel).read_bytes(), rel


def test_rerun_is_a_no_op(corpora):
    from ksdiff.data.synth.corpus import make_corpus

    cfg, root = corpora
    before = {p: p.stat().st_mtime_ns for p in (root / "hdtf").iterdir()}
    assert make_corpus(cfg, root / "hdtf", "hdtf") == 0
    assert {p: p.stat().st_mtime_ns for p in (root / "hdtf").iterdir()} == before


def test_video_is_25fps_with_aac_matching_duration(corpora):
    import av

    cfg, root = corpora
    for p in _clips(root / "hdtf"):
        info = probe(p)
        assert info.fps == pytest.approx(25.0)
        assert (info.width, info.height) == (SYNTH["size"], SYNTH["size"])
        with av.open(str(p)) as c:
            assert c.streams.audio[0].codec_context.name == "aac"
        audio, sr, _, _ = load_audio(p)
        n = _gt(p).table.num_rows
        assert info.n_frames == n
        assert abs(len(audio) / sr - n / 25.0) < 0.1


def _rms_at(audio, sr, times, win_s=0.08):
    """RMS in a window centred on each time (plain numpy, independent of the generator)."""
    half = int(win_s * sr / 2)
    x = np.pad(audio, (half, half))
    centres = np.round(np.asarray(times) * sr).astype(int) + half
    return np.array([np.sqrt(np.mean(x[max(c - half, 0) : c + half] ** 2)) for c in centres])


def test_jaw_follows_speech_energy(corpora):
    """jaw_open at frame k tracks the loudness at k / fps + audio_lead_s (r > 0.8)."""
    cfg, root = corpora
    lead = cfg["synth"]["audio_lead_s"]
    for p in _clips(root / "hdtf"):
        gt = _gt(p)
        audio, sr, _, _ = load_audio(p)  # decoded from the mp4's AAC track
        rms = _rms_at(audio, sr, gt.column("time_s") + lead)
        jaw = gt.column("jaw_open")
        assert np.corrcoef(jaw, rms)[0, 1] > 0.8
        assert jaw.min() >= 0 and jaw.max() <= 1
        assert jaw[:2].max() < 0.05  # leading silence: mouth closed


def test_pose_limits(corpora):
    cfg, root = corpora
    sc = cfg["synth"]
    for p in _clips(root / "hdtf"):
        gt = _gt(p)
        base = np.array(gt.attrs["base_pose"])
        for i, (name, lim) in enumerate([("yaw", sc["max_yaw_deg"]), ("pitch", sc["max_pitch_deg"]),
                                         ("roll", sc["max_roll_deg"])]):
            exc = gt.column(name) - base[i]
            assert np.abs(exc).max() <= lim + 1e-3
            assert exc.std() > 0.05  # the head does move


def test_gt_pose_is_the_rendered_mesh_pose(corpora):
    """face_frame of the posed mesh gives back exactly the written angles."""
    cfg, root = corpora
    p = _clips(root / "hdtf")[0]
    gt = _gt(p)
    rig = _rig(cfg, gt.attrs["speaker"])
    for i in range(0, gt.table.num_rows, 7):
        ang = [float(gt.column(k)[i]) for k in ("yaw", "pitch", "roll")]
        posed = rig.pose(*ang, gt.column("trans")[i], float(gt.column("jaw_open")[i]),
                         float(gt.column("mouth_wide")[i]))
        np.testing.assert_allclose(matrix_to_euler(face_frame(posed.landmarks)), ang, atol=0.1)


def test_mediapipe_measures_the_gt_pose(corpora):
    """The real check: MediaPipe on rendered frames recovers the head angles."""
    from ksdiff.data.synth.faces import MeshDetector

    cfg, root = corpora
    p = next(c for c in _clips(root / "hdtf") if _gt(c).attrs["speaker"] == "Astronaut")
    gt = _gt(p)
    frames = read_frames(p)
    angles = np.stack([gt.column(k) for k in ("yaw", "pitch", "roll")], axis=1)
    # The frames furthest from the rest pose in yaw, in pitch and in roll, and two others.
    far = np.abs(angles - np.array(gt.attrs["base_pose"])).argmax(0)
    picks = sorted(set(far.tolist()) | {len(frames) // 3, 2 * len(frames) // 3})
    assert np.abs(angles[far[0], 0] - gt.attrs["base_pose"][0]) > 5  # a real turn is among them
    errors = []
    with MeshDetector() as det:
        for i in picks:
            lm = det(frames[i])
            assert lm is not None, f"no face found in rendered frame {i}"
            errors.append(matrix_to_euler(face_frame(lm)) - angles[i])
    errors = np.abs(np.array(errors))
    assert errors.max() < 4.0, errors
    assert errors.mean() < 2.0, errors


def test_mouth_is_dark_when_open(corpora):
    cfg, root = corpora
    for p in _clips(root / "hdtf"):
        gt = _gt(p)
        rig = _rig(cfg, gt.attrs["speaker"])
        frames = read_frames(p)
        jaw = gt.column("jaw_open")
        half = int(0.06 * rig.face_height)

        def mouth_luma(i):
            posed = rig.pose(*[float(gt.column(k)[i]) for k in ("yaw", "pitch", "roll")], gt.column("trans")[i],
                             float(jaw[i]), float(gt.column("mouth_wide")[i]))
            cx, cy = ((posed.drawn[13, :2] + posed.drawn[14, :2]) / 2).astype(int)
            return frames[i][cy - half : cy + half + 1, cx - half : cx + half + 1].mean()

        open_, shut = np.argsort(-jaw)[:5], np.flatnonzero(jaw < 0.05)[:5]
        assert len(shut) >= 3
        assert np.mean([mouth_luma(i) for i in open_]) < np.mean([mouth_luma(i) for i in shut]) - 20


def test_failed_clip_is_recorded(tmp_path, monkeypatch):
    """A clip whose speech fails gets a failed table with the reason; no .complete marker."""
    from ksdiff.data.synth import corpus, speech

    def broken(*a, **k):
        raise speech.SpeechError("espeak-ng failed (1): voice not found")

    monkeypatch.setattr(speech, "speak", broken)
    cfg = _cfg(speakers=1)
    assert corpus.make_corpus(cfg, tmp_path, "hdtf") == 1
    (table,) = tmp_path.glob("*.motion.parquet")
    status, reason = read_status(table)
    assert status == "failed" and "voice not found" in reason
    assert not (tmp_path / ".complete").exists()


def test_parted_lips_keep_their_teeth_when_the_jaw_opens():
    """A photo that shows its teeth (the demo's test speaker smiles) keeps them on open frames: the upper
    teeth stay under the upper lip, the lower teeth go down with the lower lip, the new gap between is dark.
    The rig used to paint the whole opening, so the teeth vanished whenever the mouth opened and MediaPipe
    then followed the true lip gap with r = 0.65 on that speaker (0.97 on a closed-lipped one)."""
    cfg = config.defaults(synth={**SYNTH, "speakers": 6, "size": 256})
    rig = _rig(cfg, "Astronaut")
    rest, open_ = rig.pose(0, 0, 0, np.zeros(3), 0.0, 0.0), rig.pose(0, 0, 0, np.zeros(3), 0.6, 0.0)
    img_rest, img_open = (rig.render(p).astype(float).mean(-1) for p in (rest, open_))
    x = int(round(rest.drawn[13, 0] - 0.5))
    up0, lo0 = rest.drawn[13, 1] - 0.5, rest.drawn[14, 1] - 0.5
    lo1 = open_.drawn[14, 1] - 0.5
    own = lo0 - up0
    assert own > 6  # the photo's own opening, in pixels: its teeth
    drop = lo1 - lo0
    assert drop > 8

    n = int(own / 2) - 2  # rows of each half of the photo's teeth, a pixel clear of the lip lines

    def patch(img, top):
        r = int(round(top))
        return img[r: r + n, x - 4: x + 5]

    teeth_upper, teeth_lower = patch(img_rest, up0 + 1), patch(img_rest, lo0 - 1 - n)
    # Upper teeth in place, lower teeth moved down by the jaw's drop, both as bright as in the photo.
    assert np.abs(patch(img_open, up0 + 1) - teeth_upper).mean() < 12
    assert np.abs(patch(img_open, lo1 - 1 - n) - teeth_lower).mean() < 12
    gap = img_open[int(round(up0 + own / 2 + 2)): int(round(lo1 - own / 2 - 2)), x - 4: x + 5]
    assert gap.size and gap.mean() < min(teeth_upper.mean(), teeth_lower.mean()) - 60
