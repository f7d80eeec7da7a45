"""Landmarks without irises (landmarks.refine_landmarks false: MediaPipe's 468 points, 468-477 NaN) are
scored as the 478 are: SyncNet's face boxes and crops, the renderer and LMD look at the 468 mesh points,
which enclose the irises, so the same face gives the same boxes and frames with or without them. Before,
every frame without irises counted as "no face": the SyncNet expert could not train, no clip was scored,
and LVE, MOD and FDD found no valid frame."""
import numpy as np
import pytest

from ksdiff.landmark_points import N_MESH, frames_with_points, has_irises, present_points
from ksdiff.metrics import csim
from ksdiff.metrics.lmd import lmd
from ksdiff.metrics.mouth_crops import face_boxes, face_crops
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.scorers.lve import lve_rows
from ksdiff.render.warp import FaceWarper
from tests.render_fixtures import face_photo

SIZE, T = 160, 6


def _without_irises(lm):
    out = np.array(lm, dtype=np.float64, copy=True)
    out[..., N_MESH:, :] = np.nan
    return out


@pytest.fixture(scope="module")
def face():
    """(reference frame, its 478 landmarks, T frames of landmarks: the face shifted and the jaw opened)."""
    rgb, lm = face_photo(SIZE)
    rng = np.random.default_rng(0)
    seq = np.repeat(lm[None], T, axis=0)
    seq[..., :2] += rng.uniform(-3, 3, (T, 1, 2))  # the head moves a little
    seq[:, 14, 1] += np.linspace(0, 4, T)  # lower inner lip: the mouth opens
    seq[2] = np.nan  # a frame without a face
    return rgb, np.asarray(lm), seq


def test_which_points_are_present():
    lm = np.zeros((3, 478, 3))
    assert has_irises(lm) and present_points(lm).shape == (3, 478, 3)
    lm[1] = np.nan  # a frame without a face leaves the others' irises
    assert has_irises(lm) and present_points(lm).shape == (3, 478, 3)
    assert not has_irises(_without_irises(lm)) and present_points(_without_irises(lm)).shape == (3, N_MESH, 3)
    assert present_points(np.zeros((N_MESH, 2))).shape == (N_MESH, 2)
    assert frames_with_points(_without_irises(lm)).tolist() == [True, False, True]


def test_lve_is_scored_on_the_same_frames_without_irises(face):
    _, lm, seq = face
    gt = np.repeat(lm[None], T, axis=0)
    rows = lve_rows(0, seq, gt, PROTOCOL.lve_lip_indices, 30.0, False, "clip")
    assert rows and all(np.isfinite(r.value) and r.value > 0 for r in rows)
    assert lve_rows(0, _without_irises(seq), _without_irises(gt), PROTOCOL.lve_lip_indices, 30.0, False, "clip") == rows


def test_syncnet_boxes_and_crops_are_the_same_without_irises(face):
    rgb, _, seq = face
    frames = np.repeat(rgb[None], T, axis=0)
    np.testing.assert_array_equal(face_boxes(_without_irises(seq)), face_boxes(seq))
    np.testing.assert_array_equal(face_crops(frames, _without_irises(seq)), face_crops(frames, seq))
    with pytest.raises(ValueError, match="no frame has landmarks"):  # a clip with no face at all still says so
        face_boxes(np.full((T, 478, 3), np.nan))


def test_the_renderer_draws_the_same_frames_without_irises(face):
    rgb, lm, seq = face
    with_irises, without = FaceWarper(rgb, lm), FaceWarper(rgb, _without_irises(lm))
    for posed in seq:
        a, b = with_irises.render(posed), without.render(_without_irises(posed))
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(without.render(_without_irises(seq[-1])), rgb)  # a moved face, not the still reference
    with pytest.raises(ValueError, match="finite"):  # a mesh point missing is still refused
        bad = lm.copy()
        bad[10] = np.nan
        FaceWarper(rgb, bad)


def test_lmd_without_irises_is_over_the_468_mesh_points(face):
    _, lm, seq = face
    ref = np.repeat(lm[None], T, axis=0)
    full = lmd(seq, ref, range(N_MESH))
    assert full[1] == T - 1 and full[0] > 0
    assert lmd(_without_irises(seq), _without_irises(ref)) == full
    assert lmd(seq, _without_irises(ref)) == full  # one side without irises: the points both have
    assert lmd(seq, ref)[0] != full[0]  # with irises on both sides: all 478, as before


def test_csim_says_it_needs_the_irises(face):
    """CSIM aligns faces on InsightFace's five points, two of them the iris centres: without irises it records
    that reason (the scorer turns the ValueError into each sample's reason), not "no face"."""
    _, lm, seq = face
    assert np.isfinite(csim.five_points(seq)[[0, 1, 3]]).all()
    with pytest.raises(ValueError, match="refine_landmarks is false"):
        csim.five_points(_without_irises(seq))
    assert np.isnan(csim.five_points(np.full((T, 478, 3), np.nan))).all()  # no face at all: NaN rows, as before
