"""SyncNet LSE: fidelity to syncnet_python's arithmetic, crops, weights, our expert."""
import hashlib

import cv2
import numpy as np
import pytest
import torch
from scipy import signal

from ksdiff.metrics import syncnet as sn
from ksdiff.io.video import read_frames, write_video
from ksdiff.metrics.frames import Video, crops_of
from ksdiff.metrics.mouth_crops import ShortStream, face_boxes, face_crops, swap_rb
from ksdiff.metrics.protocol import PROTOCOL

SR, SPF = 16000, 640


def _random_bn(model, seed=0):
    """Non-trivial BatchNorm statistics, so folding them is really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return _random_bn(sn.build_syncnet())


def test_mfcc_matches_syncnet_python_reading_an_int16_wav(tmp_path):
    import python_speech_features
    from scipy.io import wavfile

    wav = (0.3 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    path = tmp_path / "audio.wav"
    wavfile.write(path, SR, sn.to_int16(wav))
    rate, audio = wavfile.read(path)  # syncnet_python's reader
    ref = np.stack([np.array(i) for i in zip(*python_speech_features.mfcc(audio, rate))])
    ours = sn.syncnet_mfcc(wav)
    assert ours.shape == ref.shape and ours.shape[0] == 13
    assert ours.shape[1] == 99  # 100 Hz over 1 s
    np.testing.assert_array_equal(ours, ref.astype(np.float32))  # S sees float32 in both


def test_int16_conversion_is_ffmpegs(tmp_path):
    import shutil
    import subprocess

    import soundfile as sf
    from scipy.io import wavfile

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not on PATH")
    wav = np.clip(0.4 * np.random.default_rng(3).standard_normal(4000), -1, 1).astype(np.float32)
    sf.write(tmp_path / "f.wav", wav, SR, subtype="FLOAT")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(tmp_path / "f.wav"), "-acodec", "pcm_s16le", str(tmp_path / "i.wav")], check=True)
    _, ref = wavfile.read(tmp_path / "i.wav")
    np.testing.assert_array_equal(sn.to_int16(wav), ref)


def test_lse_shapes_offsets_and_definitions(model):
    rng = np.random.default_rng(1)
    T = 26
    crops = rng.integers(0, 256, (T, 224, 224, 3), dtype=np.uint8)
    wav = (0.2 * rng.standard_normal(T * SPF - 100)).astype(np.float32)  # audio a bit short
    r = sn.lse(model, crops, wav)
    np.testing.assert_array_equal(r["offsets"], np.arange(-15, 16))
    assert r["dists"].shape == (31,)
    assert r["n_windows"] == min(T, len(wav) // SPF) - 5
    assert r["lse_d"] == pytest.approx(r["dists"].min(), rel=1e-6)
    assert r["lse_c"] >= 0
    assert r["lse_c"] == pytest.approx(np.median(r["dists"]) - r["dists"].min(), rel=1e-5, abs=1e-6)
    assert r["offset"] == r["offsets"][np.argmin(r["dists"])]
    # the reference arithmetic on the same embeddings: SyncNetInstance.evaluate's lines
    from syncnet_python.SyncNetInstance import calc_pdist

    with torch.inference_mode():
        n = r["n_windows"]
        bgr = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).permute(3, 0, 1, 2)[None].float()
        im = torch.cat([model.forward_lip(bgr[:, :, i : i + 5]) for i in range(n)])
        cc = torch.from_numpy(sn.syncnet_mfcc(wav))[None, None]
        au = torch.cat([model.forward_aud(cc[:, :, :, 4 * i : 4 * i + 20]) for i in range(n)])
    mdist = torch.mean(torch.stack(calc_pdist(im, au, vshift=15), 1), 1).numpy()
    np.testing.assert_allclose(r["dists"], mdist[::-1], rtol=1e-4)
    # channel order matters (SyncNet is fed BGR): passing BGR crops as such is the same as RGB flipped
    bgr = sn.lse(model, np.ascontiguousarray(crops[..., ::-1]), wav, color="bgr")
    np.testing.assert_allclose(bgr["dists"], r["dists"], rtol=1e-5)
    with pytest.raises(ValueError, match="too short"):
        sn.lse(model, crops[:5], wav)


def test_a_clips_audio_cache_gives_the_same_bits_and_runs_the_audio_stream_once_per_window_count(model, monkeypatch):
    """A clip's samples and its recorded video share one audio cache (ksdiff.metrics.scorers.lse): LSE equals,
    value for value, what it is without the cache, and SyncNet's audio stream runs once for each window count."""
    rng = np.random.default_rng(5)
    T = 14
    wav = (0.2 * rng.standard_normal(T * SPF)).astype(np.float32)
    videos = [rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8) for n in (T, T, T - 2)]
    alone = [sn.lse(model, v, wav) for v in videos]
    calls = []
    real = sn.embed_audio
    monkeypatch.setattr(sn, "embed_audio", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    cache: dict = {}
    shared = [sn.lse(model, v, wav, audio_cache=cache) for v in videos]
    for a, b in zip(alone, shared):
        assert (a["lse_d"], a["lse_c"], a["offset"]) == (b["lse_d"], b["lse_c"], b["offset"])
        np.testing.assert_array_equal(a["dists"], b["dists"])
    assert calls == [T - 5, T - 7]  # two samples of T frames, then a shorter video: two window counts


@pytest.mark.parametrize("k", [-4, 0, 6])
def test_offset_sign_convention(k):
    """Audio delayed by k frames (audio window i+k matches video i) -> offset -k."""
    g = torch.Generator().manual_seed(0)
    n = 60
    v = torch.randn(n + 20, 16, generator=g)
    video = v[10 : 10 + n]
    audio = v[10 - k : 10 - k + n]  # audio[i + k] == video[i]
    r = sn.lse_from_embeddings(video, audio)
    assert r["offset"] == -k
    assert r["lse_d"] == pytest.approx(r["dists"][r["offsets"] == -k][0])


def test_load_syncnet(tmp_path):
    with pytest.raises(sn.SyncNetWeightsError, match="syncnet_v2.model"):
        sn.load_syncnet(tmp_path / "syncnet_v2.model")
    torch.manual_seed(1)
    m = _random_bn(sn.build_syncnet(embed_dim=256), seed=2)
    p = tmp_path / "w.model"
    torch.save({"__S__." + k: v for k, v in m.state_dict().items()}, p)  # SyncNetInstance-style keys
    loaded = sn.load_syncnet(p)
    assert loaded.weights_sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert not loaded.training
    a = torch.randn(2, 1, 13, 20)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.forward_aud(a), m.forward_aud(a))
    bad = tmp_path / "bad.model"
    torch.save({"foo": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a SyncNet"):
        sn.load_syncnet(bad)


@pytest.fixture(scope="module")
def official_syncnet(tmp_path_factory):
    """A file laid out as syncnet_python's syncnet_v2.model is (random weights): the plain state_dict of
    ``S(num_layers_in_fc_layers=1024)``, keys without a prefix, in torch's legacy (pre-1.6, non-zip)
    serialization, which SyncNetInstance.loadParameters reads."""
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    torch.save(_random_bn(sn.build_syncnet(), seed=4).state_dict(), path, _use_new_zipfile_serialization=False)
    return path


def test_load_syncnet_reads_the_official_file_format(official_syncnet):
    from syncnet_python.SyncNetInstance import SyncNetInstance

    ref = SyncNetInstance(sn.build_syncnet(), device="cpu")
    ref.loadParameters(str(official_syncnet))  # syncnet_python's own loader
    ref.__S__.eval()
    loaded = sn.load_syncnet(official_syncnet)
    assert loaded.weights_sha256 == hashlib.sha256(official_syncnet.read_bytes()).hexdigest()
    a, v = torch.randn(2, 1, 13, 20), torch.randn(2, 3, 5, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.forward_aud(a), ref.__S__.forward_aud(a))
        torch.testing.assert_close(loaded.forward_lip(v), ref.__S__.forward_lip(v))


def _reference_crop(img, s, x, y, cs=0.4):
    """syncnet_python SyncNetPipeline._crop, one frame, verbatim arithmetic."""
    bs = s
    pad = int(bs * (1 + 2 * cs))
    img_p = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(110, 110, 110))
    my, mx = y + pad, x + pad
    y1, y2 = int(my - bs), int(my + bs * (1 + 2 * cs))
    x1, x2 = int(mx - bs * (1 + cs)), int(mx + bs * (1 + cs))
    return cv2.resize(img_p[y1:y2, x1:x2], (224, 224))


def test_face_crops_follow_syncnet_python_framing():
    rng = np.random.default_rng(0)
    T, H, W = 30, 240, 320
    frames = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    template = rng.uniform(-1, 1, (478, 3))
    t = np.arange(T)[:, None, None]
    cx, cy, half = 160 + 3 * np.sin(t / 4), 110 + 2 * np.cos(t / 5), 55 + t * 0.5
    lm = np.concatenate([cx + half * template[None, :, :1], cy + half * template[None, :, 1:2], template[None, :, 2:] * half], -1)
    lm[7] = np.nan  # a frame without a face: box interpolated
    crops = face_crops(frames, lm)
    assert crops.shape == (T, 224, 224, 3) and crops.dtype == np.uint8
    b = face_boxes(lm)
    assert np.all(np.isfinite(b))
    s, x, y = (signal.medfilt(b[:, i], 13) for i in (2, 0, 1))
    for i in (0, 7, 15, T - 1):
        np.testing.assert_array_equal(crops[i], _reference_crop(frames[i], s[i], x[i], y[i]))


def test_swap_rb_is_the_reversed_channels_copy(tmp_path):
    rng = np.random.default_rng(5)
    crops = rng.integers(0, 256, (7, 224, 224, 3), dtype=np.uint8)
    out = swap_rb(crops)
    np.testing.assert_array_equal(out, crops[..., ::-1])
    assert out.flags.c_contiguous and not np.shares_memory(out, crops)
    np.testing.assert_array_equal(swap_rb(out), crops)  # BGR -> RGB the same way
    mm = np.lib.format.open_memmap(tmp_path / "c.npy", mode="w+", dtype=np.uint8, shape=crops.shape)
    mm[:] = crops
    np.testing.assert_array_equal(swap_rb(mm[1:6]), crops[1:6, ..., ::-1])  # a memory-mapped slice
    np.testing.assert_array_equal(swap_rb(crops[:, ::2, ::2]), crops[:, ::2, ::2, ::-1])  # a strided view
    assert swap_rb(crops[:0]).shape == (0, 224, 224, 3)
    with pytest.raises(ValueError, match="uint8"):
        swap_rb(crops.astype(np.float32))


def test_face_crops_pad_outside_the_frame_with_gray():
    frames = np.zeros((6, 100, 100, 3), np.uint8)
    lm = np.zeros((6, 478, 3))
    lm[:, :, 0] = np.linspace(0, 60, 478)  # face box touching the top-left corner
    lm[:, :, 1] = np.linspace(0, 60, 478)
    crops = face_crops(frames, lm)
    assert np.all(crops[:, :5, :5] == PROTOCOL.crop_pad_value)
    with pytest.raises(ValueError, match="no frame"):
        face_crops(frames, np.full((6, 478, 3), np.nan))


def _moving_face(T, cx=48.0, cy=44.0, half=20.0):
    rng = np.random.default_rng(1)
    template = rng.uniform(-1, 1, (478, 3))
    t = np.arange(T)[:, None, None]
    x, y = cx + 4 * np.sin(t / 3), cy + 3 * np.cos(t / 4)
    return np.concatenate([x + half * template[None, :, :1], y + half * template[None, :, 1:2],
                           np.broadcast_to(half * template[None, :, 2:], (T, 478, 1))], -1)


def test_face_crops_of_a_stream_are_those_of_the_stacked_frames_and_no_frame_is_made_past_the_landmarks():
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (20, 96, 96, 3), dtype=np.uint8)
    lm = _moving_face(20)
    lm[5] = np.nan
    made = []

    def stream(n):
        for f in frames[:n]:
            made.append(1)
            yield f

    np.testing.assert_array_equal(face_crops(stream(20), lm), face_crops(frames, lm))
    made.clear()
    np.testing.assert_array_equal(face_crops(stream(20), lm[:12]), face_crops(frames[:12], lm[:12]))
    assert len(made) == 12  # a longer stream is read as far as the landmarks go, no further
    with pytest.raises(ShortStream) as e:
        face_crops(stream(9), lm)
    assert e.value.n == 9


def test_a_videos_crops_made_while_decoding_equal_the_decoded_frames_crops_also_when_it_ends_first(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "v.mp4"
    write_video(path, list(rng.integers(0, 256, (16, 96, 96, 3), dtype=np.uint8)), 25)
    frames = read_frames(path, 25)
    lm = _moving_face(len(frames) + 5)  # landmarks beyond the video's end
    np.testing.assert_array_equal(crops_of(Video(str(path), lm[: len(frames)], 25.0)), face_crops(frames, lm[: len(frames)]))
    # the video ends first: cropped on the track of the frames it has (the medians near its end differ)
    np.testing.assert_array_equal(crops_of(Video(str(path), lm, 25.0)), face_crops(frames, lm[: len(frames)]))
    assert not np.array_equal(face_crops(frames, lm[: len(frames)])[-1],
                              face_crops(np.concatenate([frames, frames[:5]]), lm)[len(frames) - 1])


@pytest.mark.slow
def test_trained_expert_recovers_a_known_audio_shift(tmp_path):
    from ksdiff.metrics.syncnet_train import ExpertConfig, check_sync, synthetic_sync_clips, train_expert

    torch.set_num_threads(2)
    clips = synthetic_sync_clips(n_clips=8, n_frames=75, seed=0)
    cfg = ExpertConfig(steps=60, batch_size=8, embed_dim=256, lr=1e-4, seed=0, num_threads=2)  # the two cores
    model, info = train_expert(clips, cfg, out_path=tmp_path / "expert.model")
    losses = np.array(info["losses"])
    assert losses[-12:].mean() < 0.85 * losses[:12].mean()
    loaded = sn.load_syncnet(tmp_path / "expert.model")
    assert loaded.weights_sha256 == info["sha256"]
    held_out = synthetic_sync_clips(n_clips=3, n_frames=125, seed=123)
    for crops, wav in held_out[:2]:
        delayed = np.concatenate([np.zeros(5 * SPF, np.float32), wav])[: len(wav)]
        assert abs(sn.lse(loaded, crops, wav)["offset"]) <= 1
        assert abs(sn.lse(loaded, crops, delayed)["offset"] - (-5)) <= 1
    # the held-out check the workflow stores beside an expert and prints in reports
    check = check_sync(loaded, held_out)
    assert check["detects_sync"] and check["n_clips"] == 3
    assert check["lse_c_sync_median"] > check["lse_c_mismatched_median"]
    # the same check on untrained weights says they do not detect sync
    torch.manual_seed(1)
    assert not check_sync(_random_bn(sn.build_syncnet(embed_dim=256)), held_out)["detects_sync"]
    # stored beside the weights it describes, read back by load_syncnet, ignored for other weights
    side = tmp_path / "expert.model.json"
    import json

    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, "check": check}))
    assert sn.load_syncnet(tmp_path / "expert.model").sync_check["detects_sync"]
    side.write_text(json.dumps({**meta, "sha256": "0" * 64, "check": check}))
    assert sn.load_syncnet(tmp_path / "expert.model").sync_check is None


def test_expert_losses_and_clip_preparation():
    from ksdiff.metrics.syncnet_train import ExpertConfig, pair_loss, prepare_clips

    v = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    a = torch.tensor([[3.0, 4.0], [3.0, 4.0], [1.0, 1.0]])
    y = torch.tensor([1.0, 0.0, 1.0])
    cfg = ExpertConfig(margin=10.0)
    # positives: d^2 (25 and ~0); the negative at d = 5 < margin: (10 - 5)^2
    assert pair_loss(v, a, y, cfg).item() == pytest.approx((25 + 25 + 0) / 3, rel=1e-4)
    far = ExpertConfig(margin=4.0)  # the negative beyond the margin costs nothing
    assert pair_loss(v[1:2], a[1:2], y[1:2], far).item() == 0.0
    bce = ExpertConfig(loss="bce_cosine")
    assert pair_loss(a[:1], a[:1], torch.ones(1), bce).item() < 1e-4  # same direction, in sync
    assert pair_loss(a[:1], -a[:1], torch.zeros(1), bce).item() < 1e-4  # opposite, off sync

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (12, 120, 160, 3), dtype=np.uint8)
    lm = np.zeros((12, 478, 3))
    lm[..., 0] = rng.uniform(50, 110, 478)
    lm[..., 1] = rng.uniform(30, 90, 478)
    wav = np.zeros(12 * SPF, np.float32)
    clips = prepare_clips([(frames, lm, wav), (frames[:4], lm[:4], wav)])  # the second is too short
    assert len(clips) == 1 and clips[0].crops_bgr.shape == (12, 224, 224, 3) and clips[0].n_win == 7
    with pytest.raises(ValueError, match="no usable clip"):
        prepare_clips([(frames[:4], lm[:4], wav)])


def test_expert_weights_do_not_depend_on_the_callers_thread_count():
    # The expert scores every LSE on the leaderboard, so its weights must not change with the cores
    # Snakemake was given: it trains on ExpertConfig.num_threads whatever the caller set, and leaves
    # the caller's setting as it was.
    from ksdiff.metrics.syncnet_train import ExpertConfig, synthetic_sync_clips, train_expert

    clips = synthetic_sync_clips(n_clips=3, n_frames=30, seed=0)
    cfg = ExpertConfig(steps=3, batch_size=4, embed_dim=64, seed=0)
    before = torch.get_num_threads()
    weights = []
    try:
        for ambient in (2, 1):
            torch.set_num_threads(ambient)
            model, info = train_expert(clips, cfg)
            assert torch.get_num_threads() == ambient
            weights.append(model.state_dict())
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_expert_trained_from_memory_mapped_crops_is_the_in_memory_expert(tmp_path):
    # The workflow's expert reads its crops from a memory-mapped file (syncnet_expert.crops_on_disk) so its
    # memory does not grow with the clips it trains on: the clips must not be copied into memory on the way
    # in, and the weights must be those of the same crops held in memory.
    from ksdiff.metrics.syncnet_train import ExpertConfig, prepare_clips, synthetic_sync_clips, train_expert

    clips = synthetic_sync_clips(n_clips=3, n_frames=30, seed=0)
    path = tmp_path / "crops.u8"
    path.write_bytes(b"".join(np.ascontiguousarray(c).tobytes() for c, _ in clips))
    store = np.memmap(path, dtype=np.uint8, mode="r")
    mapped, start = [], 0
    for crops, wav in clips:
        mapped.append((store[start : start + crops.size].reshape(crops.shape), wav))
        start += crops.size
    prepared = prepare_clips(mapped)
    assert all(np.shares_memory(p.crops, store) for p in prepared)  # views of the file, no copies
    assert np.array_equal(prepared[0].crops_bgr, clips[0][0][..., ::-1])
    cfg = ExpertConfig(steps=3, batch_size=4, embed_dim=64, seed=0)
    a, info_a = train_expert(clips, cfg)
    b, info_b = train_expert(mapped, cfg)
    assert info_a["losses"] == info_b["losses"]
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_identical_weights_saved_twice_have_one_hash(tmp_path):
    # The report prints the weights' sha256 as provenance: the same tensors must
    # give the same hash whatever temporary file the atomic write went through.
    from ksdiff.metrics.syncnet_train import save_expert

    torch.manual_seed(0)
    model = sn.build_syncnet(embed_dim=64)
    a = save_expert(model, tmp_path / "a" / "expert.pt")
    b = save_expert(model, tmp_path / "b" / "expert.pt")
    assert a["sha256"] == b["sha256"]
    assert (tmp_path / "a" / "expert.pt").read_bytes() == (tmp_path / "b" / "expert.pt").read_bytes()
    state = torch.load(tmp_path / "b" / "expert.pt", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
