"""E-FID: the Frechet distance's known answers, and moments that add up over clips and shards."""
import numpy as np
import pytest

from ksdiff.metrics.efid import Moments, efid, frechet_distance


def test_a_distribution_against_itself_is_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    m = Moments()
    m.add(x)
    value, why = efid(m, m)
    # exactly 0, not sqrtm's rounding: ground truth's own E-FID printed as -0.000000000000004829
    assert why == "" and value == 0.0


def test_one_dimensional_gaussians():
    """N(m1, s1^2) against N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2."""
    assert frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(9 + (2 - 1) ** 2, rel=1e-12)
    # the same through the moments of samples whose mean and (ddof 1) variance are known exactly
    a, b = Moments(), Moments()
    a.add(np.array([[-2.0], [2.0]]))  # mean 0, variance 8
    b.add(np.array([[2.0], [4.0]]))  # mean 3, variance 2
    assert efid(a, b)[0] == pytest.approx(9 + (np.sqrt(8) - np.sqrt(2)) ** 2, rel=1e-12)


def test_a_static_face_scores_the_mean_gap_plus_ground_truths_spread():
    rng = np.random.default_rng(1)
    gt = rng.normal(1.0, 2.0, size=(400, 3))
    mu, cov = gt.mean(0), np.cov(gt.T)
    still = np.tile(mu + 0.5, (400, 1))  # one expression held: zero covariance
    a, b = Moments(), Moments()
    a.add(gt)
    b.add(still)
    assert efid(a, b)[0] == pytest.approx(3 * 0.25 + np.trace(cov), rel=1e-6)


def test_moments_equal_numpy_and_add_up_over_shards():
    rng = np.random.default_rng(2)
    clips = [rng.normal(size=(n, 4)) for n in (30, 12, 50)]
    one, s1, s2 = Moments(), Moments(), Moments()
    for c in clips:
        one.add(c)
    s1.add(clips[0])
    for c in clips[1:]:
        s2.add(c)
    merged = Moments.from_attrs(s1.to_attrs()).merge(Moments.from_attrs(s2.to_attrs()))
    allx = np.concatenate(clips)
    for m in (one, merged):
        mu, cov = m.gaussian()
        assert np.allclose(mu, allx.mean(0)) and np.allclose(cov, np.cov(allx.T))


def test_too_few_frames_or_other_spaces_are_undefined_with_a_reason():
    a, b = Moments(), Moments()
    a.add(np.zeros((1, 2)))
    b.add(np.ones((5, 2)))
    assert np.isnan(efid(a, b)[0]) and "too few frames" in efid(a, b)[1]
    c = Moments()
    c.add(np.ones((5, 3)))
    assert "differ" in efid(b, c)[1]
