"""LPIPS: ksdiff's LPIPS equals the lpips package's own on identical frames, with a random AlexNet backbone
saved as a torchvision weights file (as a user would configure it) and the package's linear layers (issue 24
item 4); known answers."""
import numpy as np
import pytest
import torch

from ksdiff.metrics import lpips_score
from ksdiff.metrics.weights import Weights
import lpips  # noqa: E402  after ksdiff.metrics.lpips_score (torchvision through ksdiff.metrics.tv_compat)
from torchvision.models import alexnet


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lpips") / "alexnet_random.pth"
    torch.save(alexnet().state_dict(), path)
    return Weights.of("lpips_alexnet", path)


def _frames(seed, n=3, size=48):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.uint8)


def test_lpips_equals_the_package_on_the_same_frames(backbone):
    model = lpips_score.load_lpips(backbone)
    # the package's own model: its linear layers, its backbone built from the same random AlexNet
    ref = lpips.LPIPS(pretrained=True, net="alex", version="0.1", pnet_rand=True, verbose=False)
    net = alexnet()
    net.load_state_dict(torch.load(backbone.path, weights_only=True))
    ref.net = lpips.pretrained_networks.alexnet(requires_grad=False, pretrained=False)
    for k in range(5):  # the package's slicing of torchvision's features, as alexnet.__init__ does it
        slice_ = getattr(ref.net, f"slice{k + 1}")
        for name in list(slice_._modules):
            slice_._modules[name] = net.features[int(name)]
    ref.eval()
    a, b = _frames(1), _frames(2)
    got = lpips_score.lpips_frames(model, a, b, batch=2)
    want = [float(ref(lpips.im2tensor(x), lpips.im2tensor(y))) for x, y in zip(a, b)]  # one pair a call, its im2tensor
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert min(got) > 0
    assert np.all(lpips_score.lpips_frames(model, a, a) == 0)  # a frame against itself
    d = lpips_score.describe(model, backbone)
    assert d["sha256"] == backbone.sha256 and len(d["linear_layers_sha256"]) == 64


def test_lpips_refuses_frames_of_different_shapes(backbone):
    model = lpips_score.load_lpips(backbone)
    with pytest.raises(ValueError, match="one shape"):
        lpips_score.lpips_frames(model, _frames(1, size=48), _frames(1, size=40))
