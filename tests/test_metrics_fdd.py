"""FDD against CodeTalker's cal_metric.py arithmetic, and its known answers."""
import numpy as np
import pytest

from ksdiff.metrics.fdd import fdd, upper_face_dynamics
from ksdiff.metrics.protocol import PROTOCOL


def _codetalker(pred, gt, template, upper_map):
    """CodeTalker's cal_metric.py, line for line: motion = vertices - template, then per upper-face vertex the
    squared displacement, summed over xyz, std over time (np.std), mean over vertices; GT minus prediction."""
    def dyn(v):
        motion = v - template[None]
        L2_dis_upper = np.array([np.square(motion[:, u, :]) for u in upper_map])
        L2_dis_upper = np.transpose(L2_dis_upper, (1, 0, 2))
        L2_dis_upper = np.sum(L2_dis_upper, axis=2)
        L2_dis_upper = np.std(L2_dis_upper, axis=0)
        return np.mean(L2_dis_upper)
    return dyn(gt) - dyn(pred)


def test_equals_codetalkers_arithmetic_on_random_meshes():
    rng = np.random.default_rng(0)
    template = rng.normal(size=(50, 3))
    gt, pred = template + 0.1 * rng.normal(size=(2, 30, 50, 3))
    upper = [1, 4, 7, 20, 33]
    assert fdd(pred, gt, template, upper) == pytest.approx(_codetalker(pred, gt, template, upper), rel=1e-12)
    # a scale divides coordinates first: squared units
    assert fdd(pred, gt, template, upper, scale=2.0) == pytest.approx(_codetalker(pred, gt, template, upper) / 4, rel=1e-12)


def test_identical_sequences_give_zero():
    rng = np.random.default_rng(1)
    template = rng.normal(size=(478, 3))
    x = template + 0.05 * rng.normal(size=(25, 478, 3))
    assert fdd(x, x.copy(), template, PROTOCOL.fdd_landmark_indices) == 0.0


def test_a_frozen_upper_face_scores_ground_truths_own_dynamics():
    """The prediction's upper face never leaves the template: its dynamics is 0, so FDD is ground truth's own."""
    rng = np.random.default_rng(2)
    template = rng.normal(size=(478, 3))
    gt = template + 0.05 * rng.normal(size=(40, 478, 3))
    frozen = gt.copy()
    idx = np.asarray(PROTOCOL.fdd_landmark_indices)
    frozen[:, idx] = template[idx]  # the lower face may still move: FDD does not look at it
    own = upper_face_dynamics(gt, template, idx)
    assert own > 0 and fdd(frozen, gt, template, idx) == pytest.approx(own, rel=1e-12)
    assert fdd(gt, frozen, template, idx) == pytest.approx(-own, rel=1e-12)  # signed: GT minus prediction


def test_upper_face_indices_are_mediapipes_eye_and_eyebrow_sets():
    fmc = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")
    sets = fmc.FACEMESH_LEFT_EYE | fmc.FACEMESH_RIGHT_EYE | fmc.FACEMESH_LEFT_EYEBROW | fmc.FACEMESH_RIGHT_EYEBROW
    assert PROTOCOL.fdd_landmark_indices == tuple(sorted({i for e in sets for i in e}))
    assert not set(PROTOCOL.fdd_landmark_indices) & set(PROTOCOL.lve_lip_indices)


def test_bad_inputs_are_refused():
    t = np.zeros((10, 3))
    with pytest.raises(ValueError):
        fdd(np.zeros((5, 10, 3)), np.zeros((4, 10, 3)), t, [0])
    with pytest.raises(ValueError):
        upper_face_dynamics(np.zeros((5, 10, 3)), t, [12])
