"""LVE: known answers for the pinned protocol (lip set, units, variants)."""
import pickle

import numpy as np
import pytest

from ksdiff.metrics.lve import flame_lip_indices, inter_ocular_distance, lve, lve_name, lve_per_frame
from ksdiff.metrics.protocol import MEDIAPIPE_LIP_INDICES, PROTOCOL

LIPS = np.array(MEDIAPIPE_LIP_INDICES)


def _face(T=20, iod=2.0, seed=0):
    """(T, 478, 3) landmarks whose outer eye corners are exactly iod apart."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, 478, 3))
    x[:, 33] = [-iod / 2, 0.0, 0.0]
    x[:, 263] = [iod / 2, 0.0, 0.0]
    return x


def test_lip_indices_are_mediapipe_facemesh_lips():
    conn = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")
    assert MEDIAPIPE_LIP_INDICES == tuple(sorted({i for e in conn.FACEMESH_LIPS for i in e}))
    assert PROTOCOL.lve_lip_indices == MEDIAPIPE_LIP_INDICES and len(LIPS) == 40


def test_identical_sequences_have_zero_lve():
    gt = _face()
    assert lve(gt, gt.copy()) == 0.0
    assert lve(gt, gt.copy(), variant="squared_l2") == 0.0


@pytest.mark.parametrize("d", [0.05, 0.3, 1.5])
def test_rigid_lip_offset_gives_d_and_d_squared(d):
    iod = 2.0
    gt = _face(iod=iod)
    direction = np.array([1.0, 2.0, -2.0]) / 3.0  # unit vector
    pred = gt.copy()
    pred[:, LIPS] += d * iod * direction  # d in inter-ocular units
    non_lip = np.setdiff1d(np.arange(478), np.r_[LIPS, 33, 263])
    pred[:, non_lip] += 100.0  # errors off the lips must not count
    assert lve(pred, gt) == pytest.approx(d, rel=1e-12)
    assert lve(pred, gt, variant="squared_l2") == pytest.approx(d**2, rel=1e-12)
    # explicit template scale == default (GT eye corners); raw units scale by iod
    assert lve(pred, gt, scale=inter_ocular_distance(gt[0])) == pytest.approx(d)
    assert lve(pred, gt, scale=1.0) == pytest.approx(d * iod)


def test_per_frame_takes_the_worst_lip_vertex_then_averages_frames():
    gt = _face(T=4)
    pred = gt.copy()
    pred[1, LIPS[0], 0] += 0.2 * 2.0  # 0.2 IOD on one vertex of frame 1
    pred[1, LIPS[5], 1] += 0.1 * 2.0  # smaller error on another: ignored by the max
    pred[3, LIPS[-1], 2] += 0.4 * 2.0
    np.testing.assert_allclose(lve_per_frame(pred, gt), [0, 0.2, 0, 0.4], atol=1e-12)
    assert lve(pred, gt) == pytest.approx(0.15)


def test_names_and_bad_input():
    assert lve_name("l2") == "lve_l2_iod" and lve_name("squared_l2", units="raw") == "lve_sql2_raw"
    assert lve_name("l2", units="mm") == "lve_l2_mm"
    with pytest.raises(ValueError, match="units"):
        lve_name("l2", units="cm")
    gt = _face()
    with pytest.raises(ValueError, match="variant"):
        lve(gt, gt, variant="l1")
    with pytest.raises(ValueError, match="shape|both"):
        lve(gt[:, :100], gt)
    flame = np.zeros((5, 30, 3))
    with pytest.raises(ValueError, match="eye-corner|out of range"):
        lve(flame, flame, lip_idx=[1, 2, 3])


def test_flame_lip_mask(tmp_path):
    p = tmp_path / "FLAME_masks.pkl"
    with open(p, "wb") as f:
        pickle.dump({"lips": np.array([7, 3, 5, 3]), "eye_region": np.array([1])}, f)
    idx = flame_lip_indices(p)
    assert idx == (3, 5, 7)
    gt = np.zeros((3, 10, 3))
    pred = gt.copy()
    pred[:, 5, 0] = 0.002  # 2 mm on a lip vertex of a mesh in metres
    assert lve(pred, gt, lip_idx=idx, scale=1e-3) == pytest.approx(2.0)
    with pytest.raises(FileNotFoundError, match="FLAME_masks.pkl"):
        flame_lip_indices(tmp_path / "missing.pkl")


def test_protocol_is_frozen_and_printable():
    import dataclasses
    import json

    with pytest.raises(dataclasses.FrozenInstanceError):
        PROTOCOL.lve_variant = "squared_l2"
    d = json.loads(PROTOCOL.describe())
    assert d["lve_variant"] == "l2" and d["syncnet_vshift"] == 15 and d["crop_size"] == 224
    assert d["lve_lip_indices"].split(",")[:3] == ["0", "13", "14"]


def test_squared_variant_is_not_the_square_of_the_l2_mean():
    """The two variants differ by more than a monotone map: mean of squares vs square of the mean."""
    gt = _face(T=2)
    pred = gt.copy()
    pred[0, LIPS[0], 0] += 0.1 * 2.0  # 0.1 IOD in frame 0, 0.3 IOD in frame 1
    pred[1, LIPS[0], 0] += 0.3 * 2.0
    assert lve(pred, gt) == pytest.approx(0.2)
    assert lve(pred, gt, variant="squared_l2") == pytest.approx((0.1**2 + 0.3**2) / 2)  # 0.05, not 0.2**2 = 0.04


def test_both_variants_are_scored_under_their_own_names_and_units():
    from ksdiff.metrics.registry import LVE, LVE_FLAME, LVE_FLAME_SQ, LVE_SQ, METRIC_INFO

    assert PROTOCOL.lve_variants == ("l2", "squared_l2")
    assert (LVE, LVE_SQ, LVE_FLAME, LVE_FLAME_SQ) == ("lve_l2_iod", "lve_sql2_iod", "lve_l2_mm", "lve_sql2_mm")
    assert METRIC_INFO[LVE_SQ][1].endswith("²") and METRIC_INFO[LVE_FLAME_SQ][1] == "mm²"
    assert METRIC_INFO[LVE][1] == "inter-ocular units" and METRIC_INFO[LVE_FLAME][1] == "mm"
    assert all(METRIC_INFO[k][2] == "lower" for k in (LVE, LVE_SQ, LVE_FLAME, LVE_FLAME_SQ))
