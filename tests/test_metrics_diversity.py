"""Diversity: known answers for sample and temporal diversity (degrees)."""
import numpy as np
import pytest

from ksdiff.metrics.diversity import sample_diversity, temporal_diversity


def _motion(T=100, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=(T, 3)), axis=0)


def test_identical_samples_have_zero_sample_diversity():
    h = _motion()
    assert sample_diversity(np.stack([h, h, h])) == 0.0


def test_samples_offset_by_constants_give_the_mean_pairwise_distance():
    h = _motion()
    offsets = np.array([[0, 0, 0], [3, 4, 0], [0, 0, 12]], float)  # pair distances 5, 12, 13
    samples = h[None] + offsets[:, None, :]
    assert sample_diversity(samples) == pytest.approx(10.0)
    # two samples: exactly their distance, independent of the shared motion
    assert sample_diversity(samples[:2]) == pytest.approx(5.0)


def test_sample_diversity_averages_frames():
    a = np.zeros((4, 3))
    b = np.zeros((4, 3))
    b[2, 0] = 8.0  # differs on one frame of four
    assert sample_diversity(np.stack([a, b])) == pytest.approx(2.0)


def test_single_sample_is_nan():
    assert np.isnan(sample_diversity(_motion()[None]))


def test_temporal_diversity_known_values():
    t = np.arange(400)
    yaw = 6.0 * np.sin(2 * np.pi * t / 40)  # whole periods: std = 6 / sqrt(2)
    head = np.stack([yaw, np.zeros_like(yaw), np.zeros_like(yaw)], 1)
    assert temporal_diversity(head) == pytest.approx(6 / np.sqrt(2) / 3)
    assert temporal_diversity(np.ones((50, 3)) * 7) == 0.0
    # std 1 and std 3 over two dimensions average to 2
    two = np.stack([np.tile([-1.0, 1.0], 50), np.tile([-3.0, 3.0], 50)], 1)
    assert temporal_diversity(two) == pytest.approx(2.0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        sample_diversity(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError):
        temporal_diversity(np.zeros((0, 3)))
