"""FID: ksdiff's features and distance equal pytorch-fid's own on identical frames, with random Inception
weights saved to a file as a user would configure them (issue 24 item 4); Frechet known answers."""
import numpy as np
import pytest
import torch
from PIL import Image

from ksdiff.metrics import fid
from ksdiff.metrics.efid import Moments, frechet_distance
from ksdiff.metrics.weights import Weights, WeightsMissing
from pytorch_fid import fid_score  # after ksdiff.metrics.fid: torchvision imports through ksdiff.metrics.tv_compat
from torchvision.models.inception import Inception3


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random FID-Inception weights (same names and shapes as pt_inception-2015-12-05), scaled to keep
    activations O(1) through 94 layers (Inception3's own init gives ~1e10)."""
    torch.manual_seed(0)
    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    path = tmp_path_factory.mktemp("fid") / "inception_random.pth"
    torch.save(net.state_dict(), path)
    return Weights.of("fid_inception", path)


def _frames(seed, n=4, size=32):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, size, size, 3))
    return np.clip(base + rng.integers(-40, 41, (n, size, size, 3)), 0, 255).astype(np.uint8)


@pytest.mark.slow  # two 2048-d matrix square roots of singular products: minutes on a shared core
def test_fid_equals_pytorch_fid_on_the_same_frames(weights, tmp_path):
    model = fid.load_inception(weights)
    a, b = _frames(1), _frames(2)
    files = {}
    for name, stack in (("a", a), ("b", b)):
        files[name] = []
        for k, f in enumerate(stack):
            p = tmp_path / f"{name}{k}.png"
            Image.fromarray(f).save(p)
            files[name].append(str(p))
    # pytorch-fid's own path: PNG files -> ImagePathDataset -> get_activations -> np.cov -> frechet distance
    ref = [fid_score.calculate_activation_statistics(files[n], model, batch_size=2, dims=2048, device="cpu",
                                                     num_workers=0) for n in "ab"]
    feats = [fid.inception_features(model, s, batch=2) for s in (a, b)]
    assert np.abs(feats[0]).max() > 1e-3  # the network really responds
    moms = []
    for f, (mu, sigma) in zip(feats, ref):
        m = Moments()
        m.add(f[:2]), m.add(f[2:])  # accumulated clip by clip, as the scorer does
        got_mu, got_sigma = m.gaussian()
        np.testing.assert_allclose(got_mu, mu, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got_sigma, sigma, rtol=1e-6, atol=1e-9 * np.abs(sigma).max())
        moms.append(m)
    want = fid_score.calculate_frechet_distance(ref[0][0], ref[0][1], ref[1][0], ref[1][1])
    got = frechet_distance(*moms[0].gaussian(), *moms[1].gaussian())
    assert got == pytest.approx(want, rel=1e-6)
    assert got > 0


def test_frechet_known_answers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 4))
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-8)
    # two Gaussians with diagonal covariances: |mu1-mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    want = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert frechet_distance(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(want, rel=1e-9)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsMissing, match="eval.fid_inception.*never downloaded"):
        Weights.of("fid_inception", tmp_path / "pt_inception-2015-12-05-6726825d.pth")


def test_frames_must_be_uint8_rgb(weights):
    model = fid.load_inception(weights)
    with pytest.raises(ValueError, match="uint8"):
        fid.inception_features(model, np.zeros((2, 8, 8, 3), np.float32))
