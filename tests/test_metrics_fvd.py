"""FVD: ksdiff's I3D call and distance equal StyleGAN-V's on identical videos, with a random TorchScript
detector that has the I3D model's call signature, saved to a file as a user would configure it (issue 24
item 4); the distance's known answers."""
import numpy as np
import pytest
import scipy.linalg
import torch

from ksdiff.metrics import fvd
from ksdiff.metrics.efid import Moments
from ksdiff.metrics.weights import Weights


class TinyI3D(torch.nn.Module):
    """The call signature of StyleGAN-V's i3d_torchscript.pt: forward(x uint8 (b, 3, t, h, w), rescale,
    resize, return_features) -> (b, 400) features; random 3-D convolution weights."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 8, (3, 5, 5), stride=(1, 2, 2))
        self.fc = torch.nn.Linear(8 * 4, 400)

    def forward(self, x, rescale: bool = False, resize: bool = False, return_features: bool = False):
        x = x.float()
        if rescale:
            x = x / 127.5 - 1
        if resize:
            x = torch.nn.functional.interpolate(x, size=(x.shape[2], 24, 24), mode="trilinear", align_corners=False)
        h = torch.relu(self.conv(x))
        h = torch.nn.functional.adaptive_avg_pool3d(h, (4, 1, 1)).flatten(1)
        f = self.fc(h)
        return f if return_features else torch.softmax(f, dim=1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fvd") / "i3d_random_torchscript.pt"
    torch.jit.script(TinyI3D().eval()).save(str(path))
    return Weights.of("fvd_i3d", path)


def _video(seed, t=40, size=32):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (t, size, size, 3)).astype(np.uint8)


# --- StyleGAN-V's code, verbatim (universome/stylegan-v 3fecd69, src/metrics/metric_utils.py FeatureStats
# append/get_mean_cov and src/metrics/frechet_video_distance.py compute_fvd's last lines); disp=False dropped
# only because SciPy 1.17 deprecates it (the matrix is the same).
def _stylegan_v_mean_cov(features):
    raw_mean, raw_cov, num_items = np.zeros(features.shape[1]), np.zeros((features.shape[1],) * 2), 0
    x = np.asarray(features, dtype=np.float32)
    num_items += x.shape[0]
    x64 = x.astype(np.float64)
    raw_mean += x64.sum(axis=0)
    raw_cov += x64.T @ x64
    mean = raw_mean / num_items
    cov = raw_cov / num_items
    cov = cov - np.outer(mean, mean)
    return mean, cov


def _stylegan_v_fvd(mu_gen, sigma_gen, mu_real, sigma_real):
    m = np.square(mu_gen - mu_real).sum()
    s = scipy.linalg.sqrtm(np.dot(sigma_gen, sigma_real))
    return float(np.real(m + np.trace(sigma_gen + sigma_real - s * 2)))


def _stylegan_v_features(model, videos_thwc):
    """StyleGAN-V's loop: [b, t, c, h, w] uint8 batches permuted to [b, c, t, h, w], the detector's kwargs."""
    feats = []
    for v in videos_thwc:
        images = torch.from_numpy(v).permute(0, 3, 1, 2)[None]  # [1, t, c, h, w] as its dataset yields
        images = images.permute(0, 2, 1, 3, 4).contiguous()  # [batch_size, c, t, h, w]
        feats.append(model(images, rescale=True, resize=True, return_features=True).detach().numpy())
    return np.concatenate(feats)


def test_fvd_equals_stylegan_v_on_the_same_videos(weights):
    model = fvd.load_i3d(weights)
    real = [_video(1), _video(2, t=35)]
    gen = [_video(3), _video(4, t=35)]
    # StyleGAN-V sees 16-frame videos: the windows ksdiff cuts, handed over one by one
    cut = lambda vids: [v[k * 16:(k + 1) * 16] for v in vids for k in range(len(v) // 16)]  # noqa: E731
    ref_real, ref_gen = _stylegan_v_features(model, cut(real)), _stylegan_v_features(model, cut(gen))
    got = {}
    for name, vids in (("real", real), ("gen", gen)):
        m = Moments()
        for v in vids:
            f = fvd.i3d_features(model, v, batch=1)  # one window a pass, as StyleGAN-V's loop above
            # batched windows: the same features up to float32 summation order
            np.testing.assert_allclose(fvd.i3d_features(model, v, batch=3), f, rtol=0, atol=1e-6)
            m.add(f)  # clip by clip, as the scorer accumulates
        got[name] = m
    assert got["real"].n == 4 == len(ref_real)  # floor(40/16) + floor(35/16) windows
    for name, ref in (("real", ref_real), ("gen", ref_gen)):
        mu, cov = _stylegan_v_mean_cov(ref)
        g_mu, g_cov = got[name].gaussian(ddof=0)
        np.testing.assert_allclose(g_mu, mu, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(g_cov, cov, rtol=1e-7, atol=1e-10 * np.abs(cov).max())
    want = _stylegan_v_fvd(*_stylegan_v_mean_cov(ref_gen), *_stylegan_v_mean_cov(ref_real))
    value = fvd.fvd_distance(*got["gen"].gaussian(ddof=0), *got["real"].gaussian(ddof=0))
    assert value == pytest.approx(want, rel=1e-6)
    assert value > 0


def test_fvd_known_answers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 3))
    mu, cov = x.mean(0), np.cov(x, rowvar=False, ddof=0)
    assert fvd.fvd_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-8)
    # N(0, I) against N(m, 4 I) in 3-D: |m|^2 + 3 (1 - 2)^2
    m = np.array([1.0, 2.0, 2.0])
    assert fvd.fvd_distance(np.zeros(3), np.eye(3), m, 4 * np.eye(3)) == pytest.approx(9 + 3, rel=1e-9)


def test_windows_are_non_overlapping_from_frame_0():
    v = np.arange(37)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3).astype(np.uint8)
    w = fvd.windows(v)
    assert w.shape == (2, 3, 16, 2, 2)
    assert w[1, 0, :, 0, 0].tolist() == list(range(16, 32))
    assert fvd.windows(v[:15]).shape[0] == 0  # a video under 16 frames gives no window
