"""Audio step: decoding to 16 kHz mono, level statistics, recorded failures."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ksdiff import config
from ksdiff.extract.audio import audio_stats, extract_audio
from ksdiff.io.audio import read_wav
from ksdiff.io.parquet import read_table
from ksdiff.io.video import write_video

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CFG = config.defaults()


def write_manifest(path: Path, clips: dict[str, dict]) -> Path:
    """A hand-made manifest: clip_id -> {path, has_audio, probe_error, ...}."""
    from ksdiff.io.parquet import write_table

    ids = list(clips)

    def col(name, default):
        return [clips[c].get(name, default) for c in ids]

    write_table(path, "manifest", {
        "clip_id": ids, "speaker_id": col("speaker_id", "spk"), "dataset": col("dataset", "test"),
        "layout": col("layout", "folder"), "path": [str(clips[c]["path"]) for c in ids],
        "duration_s": col("duration_s", 0.0), "fps": col("fps", 25.0), "n_frames": col("n_frames", 0),
        "width": col("width", 64), "height": col("height", 64), "has_audio": col("has_audio", True),
        "audio_sample_rate": col("audio_sample_rate", 0), "audio_channels": col("audio_channels", 0),
        "variable_fps": col("variable_fps", False), "size_bytes": col("size_bytes", 0),
        "sha256": col("sha256", ""), "probe_error": col("probe_error", ""),
    })
    return path


def frames(n: int):
    return [np.full((64, 64, 3), (i * 5) % 255, np.uint8) for i in range(n)]


def run(tmp_path: Path, clip: str, **row):
    m = write_manifest(tmp_path / "manifest.parquet", {clip: row})
    wav, out = tmp_path / "audio" / f"{clip}.wav", tmp_path / "audio" / f"{clip}.parquet"
    extract_audio(CFG, str(m), clip, str(wav), str(out))
    return read_table(out, "audio"), wav


def test_48k_stereo_aac_becomes_16k_mono_of_the_right_duration(tmp_path):
    sr, dur = 48000, 2.0
    t = np.arange(int(sr * dur)) / sr
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)], 1).astype(np.float32)
    video = tmp_path / "stereo.mp4"
    write_video(video, frames(50), 25, stereo, sr)
    tab, wav = run(tmp_path, "stereo", path=video)
    assert tab.ok, tab.reason
    r = tab.to_pandas().iloc[0]
    assert (r.sample_rate, r.source_sample_rate, r.source_channels) == (16000, 48000, 2)
    info = sf.info(str(wav))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert info.frames == r.n_samples
    assert abs(r.duration_s - dur) < 0.03  # AAC priming/padding only
    x, _ = read_wav(wav)
    # Mono is the channel mean: the 440 Hz component keeps half its amplitude (0.25).
    spec = np.abs(np.fft.rfft(x[4000:20000]))
    f = np.fft.rfftfreq(16000, 1 / 16000)
    assert abs(spec[np.argmin(abs(f - 440))] / 8000 - 0.25) < 0.02
    assert abs(spec[np.argmin(abs(f - 660))] / 8000 - 0.125) < 0.02


def test_full_scale_sine_rms_is_minus_3_dbfs():
    sr = 16000
    x = np.sin(2 * np.pi * 1000 * np.arange(sr * 3) / sr)
    stats, notes = audio_stats(x, sr)
    assert stats["rms_dbfs"] == pytest.approx(-3.0103, abs=0.01)
    assert stats["peak_dbfs"] == pytest.approx(0.0, abs=0.01)
    # BS.1770: a 0 dBFS 1 kHz sine reads -3.01 LKFS (K-weighting is ~0 dB at 1 kHz).
    assert stats["loudness_lufs"] == pytest.approx(-3.01, abs=0.15)
    assert stats["silence_fraction"] == 0.0 and notes == []


def test_level_statistics_of_a_known_signal(tmp_path):
    """-6 dBFS sine for 2 s, then 1 s of digital silence, then 1 s clipped at full scale."""
    sr = 16000
    t = np.arange(2 * sr) / sr
    sine = 0.5 * np.sin(2 * np.pi * 500 * t)
    clipped = np.clip(2.0 * np.sin(2 * np.pi * 500 * t[:sr]), -1, 1)  # 2/3 of samples at full scale
    x = np.concatenate([sine, np.zeros(sr), clipped]).astype(np.float32)
    src = tmp_path / "known.wav"
    sf.write(src, x, sr, subtype="FLOAT")
    tab, _ = run(tmp_path, "known", path=src)
    r = tab.to_pandas().iloc[0]
    mean_sq = (2 * sr * 0.125 + np.sum(clipped**2)) / len(x)
    assert r.rms_dbfs == pytest.approx(10 * np.log10(mean_sq), abs=0.02)
    assert r.peak_dbfs == pytest.approx(0.0, abs=0.01)
    assert r.silence_fraction == pytest.approx(0.25, abs=0.01)
    expected_clip = np.mean(np.abs(clipped) >= 0.999) / 4
    assert r.clipped_fraction == pytest.approx(expected_clip, abs=0.005)
    assert r.clipped_fraction > 0.1
    assert -20 < r.loudness_lufs < 0


def test_clip_shorter_than_the_loudness_block_has_nan_loudness_and_a_note(tmp_path):
    src = tmp_path / "short.wav"
    sf.write(src, 0.1 * np.sin(2 * np.pi * 300 * np.arange(4800) / 16000), 16000)
    tab, _ = run(tmp_path, "short", path=src)
    assert tab.ok
    assert math.isnan(tab.to_pandas().loudness_lufs.iloc[0])
    assert any("400 ms" in n for n in tab.attrs["notes"])


def _assert_failed_with_empty_wav(tab, wav, *words):
    assert tab.status == "failed"
    assert all(w in tab.reason for w in words), tab.reason
    assert tab.table.num_rows == 0
    x, sr = read_wav(wav)
    assert sr == 16000 and len(x) == 0


def test_video_without_audio_track(tmp_path):
    video = tmp_path / "silent.mp4"
    write_video(video, frames(10), 25)
    # Manifest says so (the usual case) ...
    tab, wav = run(tmp_path, "silent", path=video, has_audio=False)
    _assert_failed_with_empty_wav(tab, wav, "no audio")
    # ... and a manifest that wrongly claims audio is caught by the decoder.
    tab, wav = run(tmp_path, "silent", path=video, has_audio=True)
    _assert_failed_with_empty_wav(tab, wav, "no audio stream")


@pytest.mark.parametrize("kind,content,words", [
    ("zero", b"", ["zero-byte"]),
    ("corrupt", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), ["unreadable"]),
    ("missing", None, ["not found"]),
])
def test_bad_files_are_recorded_not_raised(tmp_path, kind, content, words):
    path = tmp_path / f"{kind}.mp4"
    if content is not None:
        path.write_bytes(content)
    tab, wav = run(tmp_path, kind, path=path)
    _assert_failed_with_empty_wav(tab, wav, *words)


def test_probe_error_in_manifest_is_passed_on(tmp_path):
    tab, wav = run(tmp_path, "bad", path=tmp_path / "x.mp4", probe_error="moov atom not found")
    _assert_failed_with_empty_wav(tab, wav, "probe error", "moov atom")


def test_clip_missing_from_manifest_is_an_error(tmp_path):
    m = write_manifest(tmp_path / "m.parquet", {"a": {"path": tmp_path / "a.mp4"}})
    with pytest.raises(KeyError, match="'b' is not in"):
        extract_audio(CFG, str(m), "b", str(tmp_path / "b.wav"), str(tmp_path / "b.parquet"))


def test_cli_runs_the_audio_step(tmp_path):
    from ksdiff.cli import main

    src = tmp_path / "tone.wav"
    sf.write(src, 0.3 * np.sin(2 * np.pi * 200 * np.arange(22050) / 22050), 22050)
    m = write_manifest(tmp_path / "m.parquet", {"tone": {"path": src}})
    assert main(["audio", "--manifest", str(m), "--clip", "tone", "--out-wav", str(tmp_path / "t.wav"),
                 "--out", str(tmp_path / "t.parquet")]) == 0
    r = read_table(tmp_path / "t.parquet", "audio").to_pandas().iloc[0]
    assert r.source_sample_rate == 22050 and r.n_samples == 16000


@pytest.mark.shared
@pytest.mark.skipif(not (SHARED / "hdtf").is_dir(), reason="../shared/data/hdtf not present")
def test_real_hdtf_clip(tmp_path):
    from ksdiff.io.video import probe

    video = SHARED / "hdtf" / "hdtf_gt_02.mp4"
    tab, wav = run(tmp_path, "hdtf", path=video)
    assert tab.ok, tab.reason
    r = tab.to_pandas().iloc[0]
    assert (r.sample_rate, r.source_sample_rate, r.source_channels) == (16000, 48000, 2)
    assert abs(r.duration_s - probe(video).duration_s) < 0.1
    # Speech at broadcast level: loud enough, not clipped, some pauses.
    assert -35 < r.loudness_lufs < -5
    assert r.clipped_fraction < 0.001
    assert 0.0 <= r.silence_fraction < 0.5
    assert sf.info(str(wav)).frames == r.n_samples
