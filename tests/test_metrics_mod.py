"""MOD (ksdiff's definition, PROTOCOL.mod_def): known answers."""
import numpy as np
import pytest

from ksdiff.metrics.mod import mod, mouth_opening
from ksdiff.metrics.protocol import PROTOCOL

UP, LO = PROTOCOL.mod_lip_pair


def _talking(T=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(478, 3))[None].repeat(T, 0)
    x[:, LO] = x[:, UP] + np.stack([np.zeros(T), 0.2 + 0.1 * np.sin(np.arange(T) / 3), np.zeros(T)], 1)
    return x


def test_a_mouth_that_never_opens_scores_the_mean_opening():
    gt = _talking()
    closed = gt.copy()
    closed[:, LO] = closed[:, UP]  # inner lips touch on every frame
    assert np.all(mouth_opening(closed) == 0)
    assert mod(closed, gt) == pytest.approx(mouth_opening(gt).mean(), rel=1e-12)
    assert mod(closed, gt, scale=2.0) == pytest.approx(mouth_opening(gt).mean() / 2, rel=1e-12)


def test_the_same_opening_scores_zero_and_a_constant_offset_scores_the_offset():
    gt = _talking(seed=1)
    assert mod(gt.copy(), gt) == 0.0
    wider = gt.copy()
    wider[:, LO, 1] += 0.05  # every frame 0.05 wider
    assert mod(wider, gt) == pytest.approx(0.05, rel=1e-9)


def test_lengths_must_match():
    with pytest.raises(ValueError):
        mod(_talking(10), _talking(12))
