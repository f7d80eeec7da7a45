"""Motion representation, statistics and training windows on a fabricated results folder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fabricate import fabricate_results
from ksdiff import config
from ksdiff.data import clip_arrays as ca
from ksdiff.data import dataset as ds
from ksdiff.data import motion
from ksdiff.data.stats import build_stats
from ksdiff.io.parquet import read_table, write_table

FPS = 25.0


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    info = fabricate_results(root)
    build_stats(config.defaults(), qc=str(root / "qc.parquet"), splits=str(root / "splits.parquet"),
                results=str(root), out=str(root / "stats.parquet"))
    return info


def test_motion_round_trip_recovers_coeffs(fake):
    t = read_table(fake["root"] / "coeffs" / "spk1_clip0.parquet", "coeffs")
    head, expr, valid = motion.motion_from_coeffs(t)
    anchor = motion.anchor_from_coeffs(t)
    cols = motion.coeffs_from_motion(head, expr, anchor, FPS)
    for k in ("yaw", "pitch", "roll", "scale"):
        np.testing.assert_allclose(cols[k], t.column(k), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(cols["trans"][:, :2], t.column("trans")[:, :2], atol=1e-3)
    np.testing.assert_allclose(cols["rotvec"], t.column("rotvec"), atol=1e-5)
    np.testing.assert_allclose(np.stack(cols["expr"]), np.stack(t.column("expr")), atol=1e-6)
    # the written columns satisfy the coeffs schema
    write_table(fake["root"] / "roundtrip.parquet", "coeffs", cols, attrs=t.attrs)


def test_motion_is_resolution_independent(fake, tmp_path):
    """Doubling the video size (translation and fit scale x2) leaves the representation unchanged."""
    t = read_table(fake["root"] / "coeffs" / "spk1_clip0.parquet", "coeffs")
    head, _, _ = motion.motion_from_coeffs(t)
    cols = {f: t.column(f) for f in t.table.column_names}
    cols["expr"] = list(cols["expr"])
    cols["trans"] = cols["trans"] * 2
    cols["scale"] = cols["scale"] * 2
    write_table(tmp_path / "big.parquet", "coeffs", cols, attrs=t.attrs)
    head2, _, _ = motion.motion_from_coeffs(read_table(tmp_path / "big.parquet", "coeffs"))
    np.testing.assert_allclose(head2, head, atol=1e-5)
    assert np.all(head[motion.anchor_from_coeffs(t).frame, 3:] == 0)  # the anchor frame is the origin


def test_invalid_frames_are_interpolated_and_masked(fake):
    t = read_table(fake["root"] / "coeffs" / "spk1_clip1.parquet", "coeffs")
    head, expr, valid = motion.motion_from_coeffs(t)
    assert not valid[10:14].any() and valid[:10].all() and valid[14:].all()
    assert np.isfinite(head).all() and np.isfinite(expr).all()
    # interpolated values lie between the neighbours
    lo, hi = np.minimum(head[9], head[14]), np.maximum(head[9], head[14])
    assert np.all(head[10:14] >= lo - 1e-5) and np.all(head[10:14] <= hi + 1e-5)


def test_stats_use_only_usable_training_clips(fake):
    st = ca.Stats.read(fake["root"] / "stats.parquet")
    # spk0_clip1 is QC-unusable, spk0_clip2 has failed features: neither enters
    assert st.attrs["clips"] == ["spk0_clip0", "spk1_clip0", "spk1_clip1", "spk1_clip2"]
    assert st.mean["feat"].shape == (fake["feat_dim"],) and st.mean["expr"].shape == (fake["n_expr"],)
    assert st.mean["head"].shape == (6,)
    # features were fabricated as -30 + 10 z: the statistics find that
    assert np.all(np.abs(st.mean["feat"] + 30.0) < 3.0) and np.all(np.abs(st.std["feat"] - 10.0) < 3.0)


def test_normalisation_round_trip(fake):
    st = ca.Stats.read(fake["root"] / "stats.parquet")
    x = np.random.default_rng(0).normal(size=(50, fake["n_expr"])).astype(np.float32)
    np.testing.assert_allclose(st.denormalise("expr", st.normalise("expr", x)), x, atol=1e-5)
    back = ca.Stats.from_dict(st.to_dict())
    np.testing.assert_array_equal(back.mean["feat"], st.mean["feat"])


def test_training_windows_are_normalised(fake):
    st = ca.Stats.read(fake["root"] / "stats.parquet")
    clips = ca.load_clips(fake["root"], ca.usable_clips(fake["root"], "train"), FPS)
    norm = [ca.normalise_clip(c, st, 2) for c in clips]
    allx = np.concatenate([c.expr[c.valid] for c in norm])
    np.testing.assert_allclose(allx.mean(0), 0.0, atol=1e-4)
    # expression components share one scale (the basis is orthonormal: keep their relative sizes)
    np.testing.assert_allclose((allx.std(0) ** 2).mean(), 1.0, atol=1e-3)
    raw = np.concatenate([c.expr[c.valid] for c in clips])
    np.testing.assert_allclose(allx.std(0) / raw.std(0), allx.std(0)[0] / raw.std(0)[0], rtol=1e-4)
    allh = np.concatenate([c.head[c.valid] for c in norm])
    np.testing.assert_allclose(allh.std(0), 1.0, atol=1e-3)  # head dimensions have different units: each its own


def test_windows_masks_and_previous_frames(fake):
    st = ca.Stats.read(fake["root"] / "stats.parquet")
    clips = ca.load_clips(fake["root"], ["spk1_clip1"], FPS)
    c = ca.normalise_clip(clips[0], st, 2)
    window, n_prev = 30, 5
    w0 = ca.cut_window(c, 0, window, n_prev)
    assert not w0["prev_mask"].any()  # a clip start has no previous frames
    w = ca.cut_window(c, 12, window, n_prev)
    # prev frames are frames 7..11, right-aligned; 10 and 11 are invalid fits
    np.testing.assert_array_equal(w["prev_head"], c.head[7:12])
    np.testing.assert_array_equal(w["prev_mask"], [True, True, True, False, False])
    assert not w["mask"][:2].any() and w["mask"][2:].all()  # frames 12, 13 invalid
    assert len(w["feat"]) == 2 * window and len(w["words"]) == window
    np.testing.assert_array_equal(w["feat"], c.feat[24:84])

    # a window running past the clip end is cropped; collate pads and masks it
    tail = ca.cut_window(c, c.n_frames - 10, window, n_prev)
    b = ds.collate([w, tail])
    assert b["head"].shape == (2, window, 6) and b["feat"].shape == (2, 2 * window, fake["feat_dim"])
    assert b["mask"][1, :10].all() and not b["mask"][1, 10:].any()
    assert not b["feat_mask"][1, 20:].any() and b["feat_mask"][1, :20].all()
    assert b["words"].dtype == torch.int64 and b["mask"].dtype == torch.bool
    assert b["prev_head"].shape == (2, n_prev, 6) and b["feat"].dtype == torch.float32


def test_transcript_tokens_follow_transcript_timing(fake):
    from ksdiff.models import KSDiffConfig
    from ksdiff.models.transcript import N_PHONE_TOKENS, tokenizer

    t = read_table(fake["root"] / "transcripts" / "spk1_clip0.parquet", "transcript")
    start, end = t.column("start_s"), t.column("end_s")
    for kind, n_ids in (("phones", N_PHONE_TOKENS), ("words", 64)):
        cfg = KSDiffConfig(transcript_tokens=kind, vocab_size=64)
        words = ca.load_clips(fake["root"], ["spk1_clip0"], FPS, tokenizer(cfg))[0].words
        for k, frame_t in enumerate((np.arange(len(words)) + 0.5) / FPS):
            inside = np.any((frame_t >= start) & (frame_t < end))
            assert (words[k] > 0) == inside
        assert words.max() < n_ids
    assert not ca.load_clips(fake["root"], ["spk1_clip0"], FPS)[0].words.any()  # no tokenizer: no transcript


def test_step_sampler_is_a_function_of_the_step():
    lengths = [120, 60, 200]
    a = ds.StepBatchSampler(lengths, 50, 8, seed=3)
    b = ds.StepBatchSampler(lengths, 50, 8, seed=3, start_step=5)
    first = [next(iter(a)) for _ in range(1)]
    assert first[0] == a.batch(0)
    assert next(iter(b)) == a.batch(5)
    assert a.batch(5) != a.batch(6)
    for _ in range(20):
        for clip, start in a.batch(_):
            assert 0 <= start <= max(lengths[clip] - 50, 0)
    assert ds.StepBatchSampler(lengths, 50, 8, seed=4).batch(0) != a.batch(0)


def test_failed_tables_are_skipped_with_reason(fake, caplog):
    with pytest.raises(ca.ClipError, match="features: failed: audio: no audio stream"):
        ca.load_clip(fake["root"], "spk0_clip2", FPS)
    assert [c.clip_id for c in ca.load_clips(fake["root"], ["spk0_clip2", "spk1_clip0"], FPS)] == ["spk1_clip0"]
    assert "spk0_clip2 left out" in caplog.text


def test_deca_jaw_pose_is_part_of_the_expression_stream(tmp_path):
    """FLAME opens the mouth with the jaw joint: for DECA tables the models see [50 expression, 3 jaw]
    and predictions write the jaw back into its column; landmark tables keep their expression only."""
    rng = np.random.default_rng(0)
    n = 20
    jaw = np.zeros((n, 3))
    jaw[:, 0] = 0.2 * np.abs(np.sin(np.arange(n) / 3))  # mouth opening about x, radians
    cols = {"sample": np.zeros(n, np.int16), "frame": np.arange(n, dtype=np.int32), "time_s": np.arange(n) / FPS,
            "valid": np.ones(n, bool), "rotvec": np.zeros((n, 3)), "yaw": np.zeros(n), "pitch": np.zeros(n),
            "roll": np.zeros(n), "trans": np.zeros((n, 3)), "scale": np.full(n, 8.0), "jaw": jaw,
            "expr": list(rng.normal(size=(n, 50)).astype(np.float32)), "residual": np.zeros(n)}
    write_table(tmp_path / "deca.parquet", "coeffs", cols, attrs={"backend": "deca", "fps": FPS, "n_expr": 50})
    t = read_table(tmp_path / "deca.parquet", "coeffs")
    head, expr, valid = motion.motion_from_coeffs(t)
    assert expr.shape == (n, 53) and valid.all()
    np.testing.assert_allclose(expr[:, 50:], jaw, atol=1e-6)
    back = motion.coeffs_from_motion(head, expr, motion.anchor_from_coeffs(t), FPS, backend="deca")
    np.testing.assert_allclose(back["jaw"], jaw, atol=1e-6)
    np.testing.assert_allclose(np.stack(back["expr"]), np.stack(t.column("expr")), atol=1e-6)
    write_table(tmp_path / "pred.parquet", "coeffs", back, attrs={"backend": "deca"})
    landmarks = motion.coeffs_from_motion(head, expr[:, :50], motion.anchor_from_coeffs(t), FPS)
    assert not landmarks["jaw"].any() and np.stack(landmarks["expr"]).shape == (n, 50)
    with pytest.raises(ValueError, match="jaw values"):
        motion.coeffs_from_motion(head, expr[:, :2], motion.anchor_from_coeffs(t), FPS, backend="deca")


def turned_table(t, q: np.ndarray, path):
    """A copy of coeffs Table ``t`` whose head is rotated by ``q`` (3x3) in the camera frame: R'(t) = q R(t)."""
    from ksdiff import geometry

    cols = {f: t.column(f) for f in t.table.column_names}
    cols["expr"] = list(cols["expr"])
    r = geometry.euler_to_matrix(cols["yaw"], cols["pitch"], cols["roll"])
    ypr = geometry.matrix_to_euler(q @ r)
    cols["yaw"], cols["pitch"], cols["roll"] = ypr[:, 0], ypr[:, 1], ypr[:, 2]
    cols["rotvec"] = geometry.matrix_to_rotvec(q @ r)
    write_table(path, "coeffs", cols, attrs=t.attrs)
    return read_table(path, "coeffs")


def test_head_pose_is_relative_to_the_reference_and_composes_back_exactly(fake, tmp_path):
    """Issue 9.3: the models see the rotation since the reference frame (R_ref^T R(t)); composing it with the
    reference's rotation returns the ground truth, also for a head turned far from the camera."""
    from scipy.spatial.transform import Rotation

    from ksdiff import geometry

    q = geometry.euler_to_matrix(35.0, -20.0, 15.0)
    t = turned_table(read_table(fake["root"] / "coeffs" / "spk1_clip1.parquet", "coeffs"), q, tmp_path / "t.parquet")
    head, expr, valid = motion.motion_from_coeffs(t)
    anchor = motion.anchor_from_coeffs(t)
    assert anchor.frame == 0 and np.allclose(head[0, :3], 0, atol=1e-4)  # the reference frame is the origin
    # the relative rotation, computed independently with scipy, in the head's own frame
    rot = Rotation.from_euler("YXZ", np.stack([t.column(a) for a in ("yaw", "pitch", "roll")], 1), degrees=True)
    rel = (rot[0].inv() * rot).as_euler("YXZ", degrees=True)
    np.testing.assert_allclose(head[valid, :3], rel[valid], atol=1e-4)
    # turning the whole head leaves what the models see unchanged: pose is the speaker's, not the motion
    head0, _, _ = motion.motion_from_coeffs(read_table(fake["root"] / "coeffs" / "spk1_clip1.parquet", "coeffs"))
    np.testing.assert_allclose(head[valid], head0[valid], atol=1e-4)
    # composition with the reference gives the ground truth back
    cols = motion.coeffs_from_motion(head, expr, anchor, FPS, valid=valid)
    for k in ("yaw", "pitch", "roll"):
        np.testing.assert_allclose(cols[k][valid], t.column(k)[valid], atol=1e-4)
    np.testing.assert_allclose(cols["rotvec"][valid], t.column("rotvec")[valid], atol=1e-5)
    # and in float64 to rounding
    ypr = np.stack([t.column(a) for a in ("yaw", "pitch", "roll")], 1).astype(np.float64)[valid]
    np.testing.assert_allclose(motion.compose_angles(motion.relative_angles(ypr, anchor.ypr), anchor.ypr), ypr,
                               atol=1e-9)
    # the legacy representation keeps absolute angles, both ways
    head_abs, _, _ = motion.motion_from_coeffs(t, pose_frame="absolute")
    np.testing.assert_allclose(head_abs[valid, 0], t.column("yaw")[valid], atol=1e-5)
    back = motion.coeffs_from_motion(head_abs, expr, anchor, FPS, pose_frame="absolute")
    np.testing.assert_allclose(back["yaw"][valid], t.column("yaw")[valid], atol=1e-5)
    assert motion.pose_frame_of(motion.REPRESENTATION) == "reference"
    assert motion.pose_frame_of("head6-anchor-v1") == "absolute"
    with pytest.raises(ValueError, match="unknown motion representation"):
        motion.pose_frame_of("head7-v9")
    assert motion.Anchor.from_dict(anchor.to_dict()).ypr.tolist() == anchor.ypr.tolist()


def test_stats_describe_the_relative_pose(fake):
    """Normalisation statistics are those of the relative targets (the training speakers' own pose is gone)."""
    from scipy.spatial.transform import Rotation

    st = ca.Stats.read(fake["root"] / "stats.parquet")
    assert st.attrs["representation"] == motion.REPRESENTATION and st.pose_frame == "reference"
    rel = []
    for c in st.attrs["clips"]:
        t = read_table(fake["root"] / "coeffs" / f"{c}.parquet", "coeffs")
        rot = Rotation.from_euler("YXZ", np.stack([t.column(a) for a in ("yaw", "pitch", "roll")], 1),
                                  degrees=True)
        rel.append((rot[0].inv() * rot).as_euler("YXZ", degrees=True)[t.column("valid")])
    rel = np.concatenate(rel)
    np.testing.assert_allclose(st.mean["head"][:3], rel.mean(0), atol=1e-3)
    np.testing.assert_allclose(st.std["head"][:3], rel.std(0), rtol=1e-3)


def test_motion_from_its_first_frame(fake):
    """A ground-truth clip's relative motion already starts at the reference (unchanged); a sample whose
    whole head is offset (rotated by q, shifted, scaled) is brought back to start there."""
    from ksdiff import geometry

    t = read_table(fake["root"] / "coeffs" / "spk1_clip0.parquet", "coeffs")
    head, _, _ = motion.motion_from_coeffs(t)
    np.testing.assert_allclose(motion.from_first_frame(head), head, atol=1e-4)
    q = geometry.euler_to_matrix(12.0, -7.0, 4.0)
    off = head.astype(np.float64).copy()
    off[:, :3] = geometry.matrix_to_euler(q @ geometry.euler_to_matrix(head[:, 0], head[:, 1], head[:, 2]))
    off[:, 3:] += [0.3, -0.2, 0.1]
    np.testing.assert_allclose(motion.from_first_frame(off), head, atol=1e-4)
