"""Ground-truth keyframe selection: known peaks are found, spacing and validity are respected."""
import numpy as np
import pytest
import torch

from ksdiff.models.keyframes import motion_saliency, select_keyframes, select_keyframes_batch


def steps_motion(n: int, centres, amps, width: float = 1.0, dims: int = 1, dim_of=None) -> np.ndarray:
    """Sum of smooth steps: its speed is a sum of bumps peaking exactly at ``centres``."""
    t = np.arange(n, dtype=float)
    m = np.zeros((n, dims))
    for i, (c, a) in enumerate(zip(centres, amps)):
        m[:, 0 if dim_of is None else dim_of[i]] += a / (1 + np.exp(-(t - c) / width))
    return m


def test_steps_give_exactly_their_centres():
    m = steps_motion(120, [15, 40, 70, 100], [1.0, 2.0, 0.7, 1.5])
    assert np.flatnonzero(select_keyframes(m, 80, 5)).tolist() == [15, 40, 70, 100]


def test_peaks_in_different_dimensions_all_count():
    m = steps_motion(100, [20, 50, 80], [1.0, 1.0, 1.0], dims=3, dim_of=[0, 1, 2])
    assert np.flatnonzero(select_keyframes(m, 80, 5)).tolist() == [20, 50, 80]


def test_min_spacing_keeps_the_larger_of_two_close_peaks():
    m = steps_motion(100, [30, 34, 70], [1.0, 2.0, 1.0], width=0.5)
    # both close peaks are real local maxima ...
    assert np.flatnonzero(select_keyframes(m, 80, 1)).tolist() == [30, 34, 70]
    # ... and non-maximum suppression at spacing 5 keeps the faster one
    kept = np.flatnonzero(select_keyframes(m, 80, 5))
    assert kept.tolist() == [34, 70]
    assert np.all(np.diff(kept) >= 5)


def test_percentile_excludes_weak_peaks():
    m = steps_motion(200, [20, 60, 100, 140, 180], [1.0, 1.0, 1.0, 1.0, 0.1])
    s = motion_saliency(m)
    assert s[180] < np.percentile(s, 90) < s[20]  # the weak bump really is below the threshold
    assert np.flatnonzero(select_keyframes(m, 90, 5)).tolist() == [20, 60, 100, 140]
    assert np.flatnonzero(select_keyframes(m, 10, 5)).tolist() == [20, 60, 100, 140, 180]


def test_acceleration_signal_peaks_at_kinks():
    t = np.arange(80, dtype=float)
    # piecewise-linear path with kinks at 20 and 55: constant speed, acceleration only at the kinks
    m = np.where(t < 20, t, np.where(t < 55, 20 - 0.5 * (t - 20), 2.5 + 1.5 * (t - 55)))[:, None]
    assert np.flatnonzero(select_keyframes(m, 80, 5)).size == 0  # speed has plateaus, no strict peaks above 80th pct
    assert np.flatnonzero(select_keyframes(m, 80, 5, signal="accel")).tolist() == [20, 55]


def test_invalid_frames_are_never_keyframes():
    m = steps_motion(100, [20, 50, 80], [1.0, 1.0, 1.0])
    valid = np.ones(100, dtype=bool)
    valid[46:55] = False  # a gap over the middle bump
    valid[90:] = False  # padding
    m[46:55] = m[90:] = 1e3  # garbage where invalid must not matter
    keys = np.flatnonzero(select_keyframes(m, 80, 5, valid=valid))
    assert keys.tolist() == [20, 80]
    # a frame whose difference stencil touches an invalid frame has no saliency
    s = motion_saliency(m, valid)
    assert s[45] == 0 and s[55] == 0 and s[89] == 0 and s[44] > 0


def test_still_motion_has_no_keyframes():
    assert not select_keyframes(np.ones((50, 4)), 80, 3).any()


def test_torch_and_batch_agree_with_numpy():
    m = steps_motion(60, [10, 30, 45], [1.0, 2.0, 1.0], dims=2, dim_of=[0, 1, 0])
    ref = select_keyframes(m, 80, 4)
    out = select_keyframes(torch.tensor(m, dtype=torch.float32), 80, 4)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bool
    assert out.numpy().tolist() == ref.tolist()
    batch = torch.tensor(np.stack([m, m[::-1].copy()]), dtype=torch.float32)
    mask = torch.ones(2, 60, dtype=torch.bool)
    got = select_keyframes_batch(batch, mask, 80, 4)
    assert got[0].numpy().tolist() == ref.tolist()
    assert np.flatnonzero(got[1].numpy()).tolist() == sorted(59 - np.flatnonzero(ref))


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(T, D\)"):
        select_keyframes(np.zeros(10), 80, 3)
