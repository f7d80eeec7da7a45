"""Renderers: the image warp moves face content with the landmarks and leaves it alone
when they stay; the shaded mesh draws only where the face is; clips come out as
mp4 with the right length and audio."""
import numpy as np
import pytest

from ksdiff.geometry import euler_to_matrix
from ksdiff.io import parquet
from ksdiff.render.shaded import render_mesh
from ksdiff.render.triangles import boundary_loops, mesh_triangles, mouth_loop, upper_inner_lip
from ksdiff.render.warp import FaceWarper, piecewise_affine_warp, render_frames
from tests.render_fixtures import canonical, coeffs_cols, face_photo, write_basis

MAGENTA = np.array([255, 0, 255], np.uint8)


def _magenta_centre(img):
    m = (img[..., 0] > 180) & (img[..., 1] < 90) & (img[..., 2] > 180)
    ys, xs = np.nonzero(m)
    return np.array([xs.mean(), ys.mean()]) if len(xs) else None


def _move(lm, yaw=0.0, pitch=0.0, roll=0.0, shift=(0.0, 0.0)):
    """Rotate a landmark set about its centroid and shift it (pixels)."""
    c = lm.mean(0)
    r = euler_to_matrix(yaw, pitch, roll)
    out = (lm - c) @ r.T + c
    out[:, :2] += shift
    return out


def test_mesh_topology_is_a_disc_with_mouth_and_eye_holes():
    tris = mesh_triangles()
    assert tris.shape == (852, 3) and tris.max() == 467
    outer, mouth, *eyes = boundary_loops()
    assert len(eyes) == 2 and 13 in mouth and 14 in mouth
    arc = upper_inner_lip()
    assert arc[0] in (78, 308) and arc[-1] in (78, 308) and 13 in arc and 14 not in arc


def test_identity_warp_returns_the_reference():
    ref, lm = face_photo()
    out = next(render_frames(ref, lm, [lm]))
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 2


def test_bright_dot_at_a_landmark_follows_it():
    ref, lm = face_photo()
    ref = ref.copy()
    k = 4  # nose tip area: inside the mesh, away from the holes
    x, y = np.round(lm[k, :2] - 0.5).astype(int)
    ref[y - 1 : y + 2, x - 1 : x + 2] = MAGENTA
    before = _magenta_centre(ref)
    posed = _move(lm, yaw=8.0, roll=10.0, shift=(9.0, -6.0))
    out = FaceWarper(ref, lm).render(posed)
    after = _magenta_centre(out)
    assert after is not None, "the dot vanished"
    target = posed[k, :2] - 0.5
    assert np.linalg.norm(after - target) < 1.0, (after, target)
    assert np.linalg.norm(after - before) > 5.0  # it really moved
    # The background far from the face stays put.
    assert np.array_equal(out[:3, :3], ref[:3, :3])


def test_open_mouth_is_painted_dark_with_teeth():
    ref, lm = face_photo()
    warper = FaceWarper(ref, lm)
    _, mouth, *_ = boundary_loops()
    lower_lip = set(mouth) - set(upper_inner_lip().tolist())
    lower = sorted(lower_lip | {i for i in range(468) if lm[i, 1] > lm[14, 1] and abs(lm[i, 0] - lm[14, 0]) < 40})
    opened = lm.copy()
    opened[lower, 1] += 10.0  # drop the lower lip and chin: a gap of ~10 px
    out = warper.render(opened)
    centre = np.round((opened[13, :2] + opened[14, :2]) / 2 - 0.5).astype(int)
    assert out[centre[1], centre[0]].mean() < 80  # the cavity
    below_upper = np.round(opened[13, :2] - 0.5 + [0, 1.5]).astype(int)
    assert out[below_upper[1], below_upper[0]].mean() > 150  # the teeth under the upper lip
    closed = warper.render(lm)
    assert closed[centre[1], centre[0]].mean() == pytest.approx(ref[centre[1], centre[0]].mean(), abs=3)


def test_piecewise_affine_warp_is_exact_for_an_affine_motion():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    src = np.array([[0, 0], [63, 0], [63, 63], [0, 63], [32, 32]], float)
    tris = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    dst = src + [3.0, -2.0]  # pure shift: every triangle's map is the same translation
    out = piecewise_affine_warp(img, src, dst, tris)
    assert np.array_equal(out[10:50, 10:50], img[12:52, 7:47])


def test_mesh_render_draws_inside_the_face_only():
    import cv2

    _, lm = face_photo()
    posed = _move(lm, yaw=15.0, shift=(4.0, 2.0))
    frame = next(render_mesh([posed], (160, 160)))
    assert frame.dtype == np.uint8 and frame.shape == (160, 160, 3)
    hull = cv2.convexHull(np.round(posed[:468, :2] - 0.5).astype(np.int32))
    inside = np.zeros((160, 160), np.uint8)
    cv2.fillConvexPoly(inside, hull, 1)
    inside = cv2.dilate(inside, np.ones((3, 3), np.uint8)).astype(bool)
    lit = frame.max(2) > 0
    assert not lit[~inside].any()
    assert lit[inside].mean() > 0.7  # most of the face is drawn (eyes and mouth are holes)
    assert len(np.unique(frame[lit][:, 0])) > 10  # shaded, not flat


def test_render_clip_writes_mp4_with_frames_and_audio(tmp_path):
    from ksdiff.io.audio import load_audio, write_wav
    from ksdiff.io.video import probe
    from ksdiff.render.video import render_clip

    ref, lm = face_photo()
    template, s, r, c = canonical(lm)
    comps = np.zeros((2, 478 * 3))
    comps[0, 14 * 3 + 1] = 1.0  # lower inner lip down
    comps[1, 17 * 3 + 1] = 1.0
    basis = write_basis(tmp_path / "basis.npz", comps)
    t = 30
    expr = np.zeros((t, 2))
    expr[:, 0] = 0.08 * (1 + np.sin(np.arange(t) / 3))
    rot = euler_to_matrix(np.linspace(0, 8, t), 0, 0) @ r
    cols = coeffs_cols(expr, rot, np.tile(c, (t, 1)), np.full(t, s))
    parquet.write_table(tmp_path / "clip.parquet", "coeffs", cols, attrs={"template": template.tolist(), "fps": 25})
    sr, dur = 16000, 1.2
    write_wav(tmp_path / "clip.wav", 0.1 * np.sin(2 * np.pi * 200 * np.arange(int(sr * dur)) / sr), sr)
    for mode in ("warp", "mesh"):
        out = tmp_path / f"clip_{mode}.mp4"
        n = render_clip(tmp_path / "clip.parquet", None, basis, ref, lm, tmp_path / "clip.wav", out, mode=mode)
        info = probe(out)
        assert n == t and info.n_frames == t and info.has_audio and abs(info.fps - 25) < 1e-6
        audio, *_ = load_audio(out)
        assert abs(len(audio) / sr - dur) < 0.07


def test_frames_without_landmarks_show_the_reference():
    ref, lm = face_photo()
    nan = np.full_like(lm, np.nan)
    out = list(render_frames(ref, lm, [nan]))
    assert np.array_equal(out[0], ref)
    assert next(render_mesh([nan], (160, 160))).max() == 0


def _lower_lip_and_jaw(lm):
    """Landmarks that move down when the mouth opens: the lower inner lip and the points below it near the middle."""
    _, mouth, *_ = boundary_loops()
    return sorted((set(mouth) - set(upper_inner_lip().tolist()))
                  | {i for i in range(468) if lm[i, 1] > lm[14, 1] and abs(lm[i, 0] - lm[14, 0]) < 40})


def test_mouth_open_in_the_reference_is_painted_only_beyond_its_own_opening():
    """A smiling reference (teeth showing) keeps its own mouth at its own opening; wider is painted dark."""
    from ksdiff.render.warp import lip_gap

    ref0, lm = face_photo()
    lower = _lower_lip_and_jaw(lm)
    open6 = lm.copy()
    open6[lower, 1] += 6.0
    ref = FaceWarper(ref0, lm).render(open6)  # a reference whose mouth is already open (cavity and teeth)
    warper = FaceWarper(ref, open6)
    assert warper.ref_gap == pytest.approx(lip_gap(open6)) and warper.ref_gap > 0.05
    same = warper.render(open6)
    assert np.abs(same.astype(int) - ref.astype(int)).mean() < 0.5  # nothing painted over the reference's mouth
    teeth = np.round(open6[13, :2] - 0.5 + [0, 1.5]).astype(int)
    wider = open6.copy()
    wider[lower, 1] += 8.0
    out = warper.render(wider)
    centre = np.round((wider[13, :2] + wider[14, :2]) / 2 - 0.5).astype(int)
    assert out[centre[1], centre[0]].mean() < 80  # the extra opening is the cavity
    assert out[teeth[1], teeth[0]].mean() > 150  # with teeth under the upper lip
    # Just beyond the reference's opening the cavity fades in: on a flat grey frame, an opening
    # 0.02 inter-ocular distances wider than the reference's is half-way to the cavity colour.
    from ksdiff.render.warp import MOUTH, paint_mouth

    grey = np.full_like(ref, 200)
    darkest = lambda img: img.reshape(-1, 3).mean(1).min()  # noqa: E731
    assert darkest(paint_mouth(grey.copy(), open6, ref_gap=lip_gap(open6) - 0.005)) == 200  # below closed_threshold
    half = darkest(paint_mouth(grey.copy(), open6, ref_gap=lip_gap(open6) - 0.02))
    cavity = float(np.mean(MOUTH.cavity_rgb))
    assert half == pytest.approx((200 + cavity) / 2, abs=3)
    assert darkest(paint_mouth(grey.copy(), open6, ref_gap=lip_gap(open6) - 0.05)) == pytest.approx(cavity, abs=2)


def test_reference_teeth_stay_with_the_lips_when_the_mouth_opens_wider():
    """A reference showing its teeth: opened wider, the upper half of its interior stays under the upper lip,
    the lower half goes down with the lower lip, and only the gap between is the painted cavity (the old
    renderer painted the whole opening, so a smiling speaker's teeth vanished on every open frame)."""
    import cv2

    from ksdiff.render.warp import MOUTH

    ref0, lm = face_photo()
    lower = _lower_lip_and_jaw(lm)
    open8 = lm.copy()
    open8[lower, 1] += 8.0
    ref = FaceWarper(ref0, lm).render(open8)
    # Teeth of two colours in the reference's interior: upper half blue-ish, lower half yellow-ish.
    poly = np.round((open8[mouth_loop(), :2] - 0.5) * 16).astype(np.int32)
    m = np.zeros(ref.shape[:2], np.uint8)
    cv2.fillPoly(m, [poly], 255, shift=4)
    mid = (open8[13, 1] + open8[14, 1]) / 2 - 0.5
    rows = np.arange(ref.shape[0])[:, None]
    ref[(m > 0) & (rows < mid)] = (90, 140, 230)
    ref[(m > 0) & (rows >= mid)] = (230, 220, 90)
    warper = FaceWarper(ref, open8)
    wider = open8.copy()
    wider[lower, 1] += 12.0
    out = warper.render(wider).astype(int)
    x = int(round(wider[13, 0] - 0.5))
    below_upper = out[int(round(wider[13, 1] - 0.5)) + 2, x]
    above_lower = out[int(round(wider[14, 1] - 0.5)) - 2, x]
    centre = out[int(round((wider[13, 1] + wider[14, 1]) / 2 - 0.5)), x]
    assert np.abs(below_upper - (90, 140, 230)).max() < 30  # upper teeth in place
    assert np.abs(above_lower - (230, 220, 90)).max() < 30  # lower teeth moved down with the lip
    assert np.abs(centre - MOUTH.cavity_rgb).max() < 10  # the new gap is the cavity
