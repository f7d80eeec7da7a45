"""LSE scoring's SyncNet path under ``numerics: fast`` on a CPU (oneDNN on): S's layers with BatchNorm folded in,
on channels-last maps, equal S's own forward within float32 rounding, window by window."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ksdiff.metrics import syncnet as sn
from ksdiff.metrics.syncnet_folded import FoldedAudio, FoldedLip, folded_layers
from tests.test_syncnet import _random_bn
from tests.test_syncnet_lowered import N_WIN, _rel, check_lip_stream


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    return _random_bn(sn.build_syncnet(), seed=1)


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(4).integers(0, 256, (N_WIN + 4, 224, 224, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def onednn():
    with torch.backends.mkldnn.flags(enabled=True):
        yield


def test_folded_lip_stream_equals_syncnets_forward(model, crops):
    check_lip_stream(FoldedLip(model), model, crops)


def test_folded_audio_stream_equals_syncnets_forward(model):
    x = torch.randn(40, 1, 13, 20, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        ref = model.forward_aud(x)
    assert _rel(FoldedAudio(model).embed(x), ref) < 1e-5


def test_scoring_with_onednn_runs_the_folded_streams(model, crops):
    """embed_video / embed_audio on a CPU with oneDNN on are the folded streams, bit for bit."""
    assert not sn.pinned_cpu(torch.device("cpu"))
    video = sn.embed_video(model, crops[..., ::-1], N_WIN)
    assert torch.equal(video, FoldedLip(model).embed(torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])), N_WIN))
    mfcc = np.random.default_rng(6).standard_normal((13, 4 * N_WIN + 20)).astype(np.float32)
    audio = sn.embed_audio(model, mfcc, N_WIN)
    wins = torch.stack([torch.from_numpy(mfcc[:, 4 * i:4 * i + 20]) for i in range(N_WIN)])[:, None]
    assert torch.equal(audio, FoldedAudio(model).embed(wins))


def test_only_the_first_convolution_may_span_frames(model):
    bad = torch.nn.Sequential(*list(model.netcnnlip)[:4], torch.nn.Conv3d(96, 8, (2, 3, 3)), torch.nn.BatchNorm3d(8),
                              torch.nn.ReLU())
    with pytest.raises(ValueError, match="only the first convolution"):
        folded_layers(bad, first_spans_frames=True)
