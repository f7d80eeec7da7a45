"""LSE scoring's SyncNet paths: the lowered streams (pinned numerics) equal S's own forward, their bits do
not depend on the CPU settings, and batching windows changes nothing but float32 rounding (the GPU path)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ksdiff import numerics
from ksdiff.metrics import syncnet as sn
from ksdiff.metrics.syncnet_lowered import LoweredAudio, LoweredLip
from tests.conftest import REPO
from tests.test_numerics import SETTINGS, run_probe
from tests.test_syncnet import _random_bn

PROBE = REPO / "tests" / "syncnet_scoring_probe.py"
N_WIN = 9


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return _random_bn(sn.build_syncnet())


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(2).integers(0, 256, (N_WIN + 4, 224, 224, 3), dtype=np.uint8)


def _reference(model, crops_bgr: np.ndarray, n_win: int) -> torch.Tensor:
    """S's forward window by window on plain float windows, as syncnet_python's evaluate slices them."""
    with torch.inference_mode():
        v = torch.from_numpy(np.ascontiguousarray(crops_bgr)).permute(3, 0, 1, 2)[None].float()
        return torch.cat([model.forward_lip(v[:, :, i:i + 5]) for i in range(n_win)])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def check_lip_stream(stream, model, crops: np.ndarray) -> None:
    """``stream`` (a LoweredLip or FoldedLip of ``model``) gives S's forward's embeddings at every batch size."""
    ref = _reference(model, crops, N_WIN)
    for batch in (1, 4, 32):
        got = stream.embed(torch.from_numpy(crops), N_WIN, batch_size=batch)
        assert got.shape == ref.shape
        assert _rel(got, ref) < 1e-5, batch  # measured ~1e-6: another summation order, BatchNorm folded in
    # windows start at every frame: dropping the first frame shifts every embedding by one window
    shifted = stream.embed(torch.from_numpy(crops[1:]), N_WIN - 1)
    assert _rel(shifted, ref[1:]) < 1e-5
    with pytest.raises(ValueError, match="frames"):
        stream.embed(torch.from_numpy(crops[:6]), 3)


def test_lowered_lip_stream_equals_syncnets_forward(model, crops):
    check_lip_stream(LoweredLip(model), model, crops)


def test_repeated_windows_reuse_their_map_with_the_same_bits(model, crops):
    """A frozen stretch (the static-face floor's video) reuses the window before's first-layer map where all
    five frames repeat: the embeddings are the same bits as recomputing every window, and still S's forward's
    within rounding."""
    frozen = crops.copy()
    frozen[3:9] = frozen[2]  # frames 2..8 equal: windows 2..4 identical, 0..1 and 5..8 mixed
    f = torch.from_numpy(frozen)
    reused = LoweredLip(model).embed(f, N_WIN)
    assert torch.equal(reused, LoweredLip(model).embed(f, N_WIN, reuse_repeats=False))
    assert torch.equal(reused[2], reused[3]) and torch.equal(reused[3], reused[4])
    assert _rel(reused, _reference(model, frozen, N_WIN)) < 1e-5


def test_lowered_audio_stream_equals_syncnets_forward(model):
    x = torch.from_numpy(np.random.default_rng(4).standard_normal((7, 1, 13, 20)).astype(np.float32))
    with torch.inference_mode():
        ref = model.forward_aud(x)
    assert _rel(LoweredAudio(model).embed(x), ref) < 1e-5  # measured ~5e-7


def test_pinned_lse_uses_the_lowered_path_and_syncnet_pythons_numbers(model, crops):
    assert numerics.describe()["mode"] != "pinned" or sn.pinned_cpu(torch.device("cpu"))
    wav = (0.2 * np.random.default_rng(3).standard_normal((N_WIN + 5) * sn.SAMPLES_PER_FRAME)).astype(np.float32)
    r = sn.lse(model, crops, wav)
    from syncnet_python.SyncNetInstance import calc_pdist

    video = _reference(model, crops[..., ::-1], r["n_windows"])
    with torch.inference_mode():
        cc = torch.from_numpy(sn.syncnet_mfcc(wav))[None, None]
        audio = torch.cat([model.forward_aud(cc[:, :, :, 4 * i:4 * i + 20]) for i in range(r["n_windows"])])
    mdist = torch.mean(torch.stack(calc_pdist(video, audio, vshift=15), 1), 1).numpy()
    np.testing.assert_allclose(r["dists"], mdist[::-1], rtol=1e-5)


def test_batched_windows_equal_one_window_at_a_time(model, crops):
    """S's own forward on batches of windows (the GPU's path, and the CPU's with oneDNN) against one
    window per call, here on the CPU with oneDNN on; and against the lowered path."""
    with torch.backends.mkldnn.flags(enabled=True):
        assert not sn.pinned_cpu(torch.device("cpu"))
        one = sn.embed_video(model, crops, N_WIN, batch_size=1)
        many = sn.embed_video(model, crops, N_WIN, batch_size=32)
        odd = sn.embed_video(model, crops, N_WIN, batch_size=4)
    assert _rel(many, one) < 1e-5 and _rel(odd, one) < 1e-5
    assert _rel(many, _reference(model, crops, N_WIN)) < 1e-5
    with torch.backends.mkldnn.flags(enabled=False):
        lowered = sn.embed_video(model, crops, N_WIN)
    assert _rel(lowered, many) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the GPU path is checked by benchmarks/gpu_check.py")
def test_lse_on_the_gpu_equals_the_cpu(model, crops):
    wav = (0.2 * np.random.default_rng(3).standard_normal((N_WIN + 5) * sn.SAMPLES_PER_FRAME)).astype(np.float32)
    cpu = sn.lse(model, crops, wav)
    gpu = sn.lse(model.to("cuda"), crops, wav)
    model.to("cpu")
    np.testing.assert_allclose(gpu["dists"], cpu["dists"], rtol=1e-4)


def _probe(mode: str, setting: dict) -> dict:
    return run_probe(mode, setting, PROBE)


@pytest.mark.slow
def test_pinned_scoring_bits_do_not_depend_on_the_cpu_settings():
    pinned = {name: _probe("pinned", s) for name, s in SETTINGS.items()}
    for name, got in pinned.items():
        assert got["lowered"] and got["numerics"]["aten_capability"] == "AVX2", (name, got)
        assert (got["video"], got["audio"]) == (pinned["native"]["video"], pinned["native"]["audio"]), name
    # not vacuous: unpinned, the same settings give other embeddings
    fast = {name: _probe("fast", SETTINGS[name]) for name in ("avx2-only", "no-simd")}
    assert fast["avx2-only"]["video"] != fast["no-simd"]["video"]


def test_scoring_device_from_the_config(tmp_path, model):
    """eval.device: auto takes a GPU when torch sees one, else the CPU; cuda without one is refused."""
    path = tmp_path / "s.model"
    torch.save(model.state_dict(), path)
    auto = sn.load_syncnet(path, device="auto")
    assert auto.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert next(auto.parameters()).device.type == auto.device
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            sn.load_syncnet(path, device="cuda")
