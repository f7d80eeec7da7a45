"""Speech features: log-mel shape, rate and frequency axis; pYIN F0 and voicing;
a real (tiny, randomly initialised) wav2vec2 checkpoint loaded from a local folder."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from ksdiff import config
from ksdiff.extract import features as F
from ksdiff.io.audio import write_wav
from ksdiff.io.parquet import read_table, write_failure, write_table
from ksdiff.numba_cache import import_librosa

SR = 16000


def tone(f0: float, dur: float, harmonics: int = 1, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(dur * SR)) / SR
    return sum(amp / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, harmonics + 1)).astype(np.float32)


def write_audio(tmp_path: Path, x: np.ndarray, clip="c1") -> str:
    """What the audio step leaves: {clip}.wav and its one-row 'audio' table."""
    audio = tmp_path / "audio" / f"{clip}.parquet"
    write_wav(audio.with_suffix(".wav"), x, SR)
    write_table(audio, "audio", {
        "clip_id": [clip], "sample_rate": [SR], "n_samples": [len(x)], "duration_s": [len(x) / SR],
        "source_sample_rate": [SR], "source_channels": [1], "rms_dbfs": [0.0], "peak_dbfs": [0.0],
        "loudness_lufs": [0.0], "clipped_fraction": [0.0], "silence_fraction": [0.0]})
    return str(audio)


def run(tmp_path, x, **fcfg):
    out = tmp_path / "features" / "c1.parquet"
    F.extract_features(config.defaults(features=fcfg), write_audio(tmp_path, x), str(out))
    return read_table(out, "features")


def test_logmel_shape_and_rate(tmp_path):
    dur = 2.3
    tab = run(tmp_path, tone(220, dur, harmonics=3))
    assert tab.ok
    feat = np.stack(tab.column("feat"))
    assert abs(len(feat) - dur * 50) <= 1 + 1e-9 and feat.shape[1] == 80
    assert tab.attrs["kind"] == "logmel" and tab.attrs["dim"] == 80 and tab.attrs["rate_hz"] == 50
    assert tab.attrs["checkpoint"] is None
    assert np.allclose(np.diff(tab.column("time_s")), 0.02)
    assert np.isfinite(feat).all()


def test_pure_tone_peaks_in_its_mel_band():
    librosa = import_librosa()

    centres = librosa.mel_frequencies(n_mels=80 + 2, fmax=SR / 2)[1:-1]
    for f in (300.0, 1000.0, 3000.0):
        feat = F.logmel(tone(f, 1.0), SR, 80, 50)
        band = int(np.argmax(feat[5:-5].mean(axis=0)))
        assert abs(band - np.argmin(np.abs(centres - f))) <= 1, (f, band)


def test_pyin_f0_of_a_harmonic_tone_and_silence(tmp_path):
    x = np.concatenate([tone(150, 1.0, harmonics=5), np.zeros(SR // 2, np.float32)])
    tab = run(tmp_path, x)
    df = tab.to_pandas()
    tone_frames, silent = df[(df.time_s > 0.1) & (df.time_s < 0.9)], df[df.time_s > 1.1]
    assert tone_frames.voiced.all()
    assert np.median(tone_frames.f0_hz) == pytest.approx(150, rel=0.02)
    assert not silent.voiced.any() and (silent.f0_hz == 0).all()
    # energy: RMS of the harmonic tone in dB; silence at the floor.
    rms_db = 10 * np.log10(np.mean(tone(150, 1.0, harmonics=5) ** 2))
    assert np.median(tone_frames.energy_db) == pytest.approx(rms_db, abs=0.5)
    assert (silent.energy_db == -100).all()


def test_failed_audio_is_skipped(tmp_path):
    audio = tmp_path / "c1.parquet"
    write_failure(audio, "audio", "zero-byte file")
    out = tmp_path / "f.parquet"
    F.extract_features(config.defaults(), str(audio), str(out))
    tab = read_table(out, "features")
    assert tab.status == "skipped" and tab.reason == "audio: zero-byte file"


# --- pretrained encoder from a local folder ------------------------------------------------


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    d = tmp_path_factory.mktemp("w2v")
    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    Wav2Vec2Model(cfg).save_pretrained(d)
    Wav2Vec2FeatureExtractor(sampling_rate=SR).save_pretrained(d)
    return d


def test_wav2vec2_from_local_folder(tmp_path, tiny_wav2vec2):
    x = tone(180, 1.37, harmonics=4)
    tab = run(tmp_path, x, kind="wav2vec2", pretrained_dir=str(tiny_wav2vec2))
    assert tab.ok, tab.reason
    feat = np.stack(tab.column("feat"))
    assert feat.shape == ((len(x) - 400) // 320 + 1, 32)
    assert tab.attrs["rate_hz"] == 50 and tab.attrs["dim"] == 32
    t = tab.column("time_s")
    assert t[0] == pytest.approx(0.0125) and np.allclose(np.diff(t), 0.02)
    weights = tiny_wav2vec2 / "model.safetensors"
    assert tab.attrs["checkpoint"]["sha256"] == {"model.safetensors": hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert tab.attrs["checkpoint"]["path"] == str(tiny_wav2vec2.resolve())
    # Frozen and deterministic: the same (16-bit) audio gives the same features.
    from ksdiff.io.audio import read_wav

    x16, _ = read_wav(tmp_path / "audio" / "c1.wav")
    again = F.compute(x16, SR, config.defaults(features={"kind": "wav2vec2", "pretrained_dir": str(tiny_wav2vec2)})["features"])[0]
    assert np.allclose(np.stack(again["feat"]), feat)
    # Prosody on the encoder's frame grid: a voiced tone throughout.
    assert tab.to_pandas().voiced.iloc[5:-5].all()


def test_pretrained_errors_are_clear(tmp_path, tiny_wav2vec2):
    x = tone(200, 0.5)
    with pytest.raises(F.PretrainedUnavailable, match="pretrained_dir"):
        run(tmp_path, x, kind="wav2vec2")
    with pytest.raises(F.PretrainedUnavailable, match="not found"):
        run(tmp_path, x, kind="hubert", pretrained_dir=str(tmp_path / "missing"))
    with pytest.raises(F.PretrainedUnavailable, match="'hubert' but .* 'wav2vec2'"):
        run(tmp_path, x, kind="hubert", pretrained_dir=str(tiny_wav2vec2))


def test_clip_shorter_than_the_receptive_field_is_a_recorded_failure(tmp_path, tiny_wav2vec2):
    tab = run(tmp_path, tone(200, 0.02), kind="wav2vec2", pretrained_dir=str(tiny_wav2vec2))
    assert tab.status == "failed" and "receptive field" in tab.reason


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory):
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    d = tmp_path_factory.mktemp("hubert")
    torch.manual_seed(0)
    HubertModel(HubertConfig(hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
                             conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                             num_conv_pos_embedding_groups=2)).save_pretrained(d)
    Wav2Vec2FeatureExtractor(sampling_rate=SR, do_normalize=False).save_pretrained(d)
    return d


def test_hubert_from_local_folder(tmp_path, tiny_hubert):
    x = tone(120, 1.0, harmonics=3)
    tab = run(tmp_path, x, kind="hubert", pretrained_dir=str(tiny_hubert))
    assert tab.ok and tab.attrs["kind"] == "hubert" and tab.attrs["checkpoint"]["model_type"] == "hubert"
    assert np.stack(tab.column("feat")).shape == ((len(x) - 400) // 320 + 1, 24)


def test_cli_runs_the_features_step(tmp_path):
    from ksdiff.cli import main

    audio = write_audio(tmp_path, tone(200, 0.8))
    out = tmp_path / "f.parquet"
    assert main(["features", "--audio", audio, "--out", str(out)]) == 0
    tab = read_table(out, "features")
    assert tab.ok and len(tab.column("frame")) == 41 and tab.attrs["clip_id"] == "c1"
