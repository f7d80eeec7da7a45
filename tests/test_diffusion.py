"""Diffusion schedule, forward process, DDIM sampler, guidance and motion losses."""
import numpy as np
import pytest
import torch

from ksdiff.models.config import KSDiffConfig
from ksdiff.models.diffusion import GaussianDiffusion, guided, make_betas, motion_losses


@pytest.mark.parametrize("schedule", ["scaled_linear", "linear", "cosine"])
def test_alphas_cumprod_decrease_from_one_to_nearly_zero(schedule):
    d = GaussianDiffusion(KSDiffConfig(beta_schedule=schedule))
    ac = d.alphas_cumprod.numpy()
    assert d.n_steps == 1000
    assert np.all(np.diff(ac) < 0)
    assert 0.99 < ac[0] < 1.0 and 0.0 < ac[-1] < 0.01


def test_scaled_linear_matches_diffspeaker_endpoints():
    betas = make_betas(KSDiffConfig())
    assert betas[0] == pytest.approx(0.00085) and betas[-1] == pytest.approx(0.012)
    assert np.all(np.diff(np.sqrt(betas)) > 0) and np.allclose(np.diff(np.sqrt(betas), 2), 0, atol=1e-12)


def test_q_sample_keeps_x0_at_t0_and_destroys_it_at_T():
    d = GaussianDiffusion(KSDiffConfig())
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 50, 8, generator=g)
    noise = torch.randn(64, 50, 8, generator=g)
    early = d.q_sample(x0, torch.zeros(64, dtype=torch.long), noise)
    late = d.q_sample(x0, torch.full((64,), 999, dtype=torch.long), noise)
    assert (early - x0).abs().mean() < 0.03  # sqrt(1 - a_0) ~ 0.029 of unit noise
    corr = lambda a, b: float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])
    assert corr(early, x0) > 0.999
    assert abs(corr(late, x0)) < 0.1 and corr(late, noise) > 0.99


def test_ddim_timesteps_are_evenly_spaced_and_full_at_T():
    d = GaussianDiffusion(KSDiffConfig(n_train_steps=100, ddim_steps=10))
    assert d.ddim_timesteps(100) == list(range(99, -1, -1))
    ts = d.ddim_timesteps(12)
    assert len(ts) == 12 and ts[0] == 99 and ts[-1] == 0 and all(a > b for a, b in zip(ts, ts[1:]))
    assert d.ddim_timesteps(1) == [99]  # one step starts where the noise is pure, not at t = 0
    with pytest.raises(ValueError):
        d.ddim_timesteps(0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps", [1, 7, 100])
def test_ddim_with_an_oracle_denoiser_returns_x0(steps, eta):
    d = GaussianDiffusion(KSDiffConfig(n_train_steps=100, ddim_steps=10))
    x0 = torch.randn(2, 30, 5)
    out = d.ddim_sample(lambda x, t: x0, x0.shape, steps, eta, torch.Generator().manual_seed(3))
    assert torch.allclose(out, x0, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_is_reproducible_per_seed_and_differs_across_seeds(eta):
    d = GaussianDiffusion(KSDiffConfig(n_train_steps=100))
    shrink = lambda x, t: 0.5 * x  # an imperfect denoiser keeps part of the noise
    run = lambda seed, steps: d.ddim_sample(shrink, (1, 20, 3), steps, eta, torch.Generator().manual_seed(seed))
    for steps in (10, 100):  # 100 = every training step (DDPM-equivalent when eta = 1)
        assert torch.equal(run(0, steps), run(0, steps))
        assert not torch.allclose(run(0, steps), run(1, steps))


def test_guidance_one_is_the_conditional_model_and_otherwise_extrapolates():
    calls = []

    def predict(x, t, uncond):
        calls.append(uncond)
        return x + (0.0 if uncond else 1.0)

    x, t = torch.zeros(1, 4, 2), torch.zeros(1, dtype=torch.long)
    assert torch.equal(guided(predict, 1.0)(x, t), torch.ones_like(x)) and calls == [False]
    assert torch.allclose(guided(predict, 2.5)(x, t), torch.full_like(x, 2.5))


def test_motion_losses_ignore_padding_and_measure_jumps():
    target = torch.zeros(1, 10, 2)
    mask = torch.ones(1, 10, dtype=torch.bool)
    mask[0, 7:] = False
    pred = target.clone()
    pred[0, 7:] = 100.0  # garbage in padding
    assert all(float(v) == 0.0 for v in motion_losses(pred, target, mask).values())
    pred[0, 3] = 1.0  # one spike inside the valid part
    terms = motion_losses(pred, target, mask)
    assert float(terms["value"]) == pytest.approx(2 / (7 * 2))  # both dims off by 1 on one of 7 frames
    assert float(terms["velocity"]) == pytest.approx(4 / (6 * 2))  # two jumps of 1 in 6 valid differences
    assert float(terms["smooth"]) > 0
