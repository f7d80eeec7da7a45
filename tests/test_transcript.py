"""Transcript step: forced alignment of known text, recognition, backend errors.

Speech comes from espeak-ng. Words are synthesised one by one, trimmed and
concatenated with known gaps, so every word's true start and end are known.
"""
from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ksdiff import config
from ksdiff.extract import asr_pocketsphinx as ps
from ksdiff.extract import asr_whisper
from ksdiff.extract.audio import extract_audio
from ksdiff.extract.transcript import transcribe
from ksdiff.io.audio import write_wav
from ksdiff.io.parquet import read_table, write_failure
from ksdiff.io.schemas import MANIFEST
from ksdiff.io.video import write_video
from ksdiff.numba_cache import import_librosa

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

SR = 16000
SENTENCE = "please call stella and ask her to bring these things with her from the store"


def say(text: str) -> np.ndarray:
    import soundfile as sf
    import soxr

    wav = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "--stdout", text],
                         capture_output=True, check=True).stdout
    x, sr = sf.read(io.BytesIO(wav), dtype="float32")
    return soxr.resample(x, sr, SR).astype(np.float32)


def concatenated_words(words: list[str], seed: int = 0, lead_s: float = 0.3):
    """(signal, [(word, start_s, end_s)]) with each word trimmed to its audible part."""
    librosa = import_librosa()

    rng = np.random.default_rng(seed)
    parts, truth, n = [np.zeros(int(lead_s * SR), np.float32)], [], int(lead_s * SR)
    for w in words:
        y, _ = librosa.effects.trim(say(w), top_db=40, frame_length=256, hop_length=64)
        truth.append((w, n / SR, (n + len(y)) / SR))
        gap = np.zeros(int(rng.uniform(0.02, 0.25) * SR), np.float32)
        parts += [y, gap]
        n += len(y) + len(gap)
    parts.append(np.zeros(int(0.3 * SR), np.float32))
    return np.concatenate(parts), truth


@pytest.fixture(scope="module")
def speech():
    return concatenated_words(SENTENCE.split())


def write_manifest(path: Path, clips: dict[str, dict]) -> Path:
    """A hand-made manifest: given columns per clip, type defaults for the rest."""
    from ksdiff.io.parquet import write_table

    default = {"string": "", "bool": True, "double": 0.0}
    cols = {f.name: [c.get(f.name, default.get(str(f.type), 0)) for c in clips.values()] for f in MANIFEST}
    cols["clip_id"], cols["path"] = list(clips), [str(c["path"]) for c in clips.values()]
    write_table(path, "manifest", cols)
    return path


def make_clip(tmp_path: Path, x: np.ndarray, text: str | None, clip="c1"):
    """Video with the speech as its audio (+ optional .txt beside it), manifest, audio step."""
    video = tmp_path / "videos" / f"{clip}.mp4"
    write_video(video, [np.zeros((32, 32, 3), np.uint8)] * int(len(x) / SR * 25), 25, x, SR)
    if text is not None:
        video.with_suffix(".txt").write_text(text)
    m = write_manifest(tmp_path / "manifest.parquet", {clip: {"path": video}})
    audio = tmp_path / "audio" / f"{clip}.parquet"
    extract_audio(config.defaults(), str(m), clip, str(audio.with_suffix(".wav")), str(audio))
    return str(m), str(audio)


def run(tmp_path, manifest, audio, backend="auto", clip="c1", **tcfg):
    cfg = config.defaults(transcript={"backend": backend, **tcfg})
    out = tmp_path / "transcripts" / f"{clip}.parquet"
    transcribe(cfg, manifest, clip, audio, str(out))
    return read_table(out, "transcript")


def assert_well_formed(df, duration):
    start, end = df.start_s.to_numpy(), df.end_s.to_numpy()
    assert np.all(end >= start)
    assert np.all(start[1:] >= end[:-1] - 1e-9), "words overlap or are out of order"
    assert start[0] >= 0 and end[-1] <= duration + 1e-6
    assert df.confidence.between(0, 1).all()


def test_forced_alignment_recovers_known_word_boundaries(tmp_path, speech):
    x, truth = speech
    m, audio = make_clip(tmp_path, x, "Please call Stella, and ask her to bring these things with her from the store.")
    tab = run(tmp_path, m, audio)
    assert tab.ok, tab.reason
    assert tab.attrs["backend"] == "align" and tab.attrs["text_source"] == "reference"
    df = tab.to_pandas()
    assert list(df.word) == SENTENCE.split()
    assert_well_formed(df, len(x) / SR)
    assert (df.confidence == 1.0).all()
    err = np.abs(np.r_[df.start_s - [t[1] for t in truth], df.end_s - [t[2] for t in truth]])
    # pocketsphinx at 10 ms frames on synthetic speech: ~40 ms mean error (benchmarks/README.md).
    assert err.mean() < 0.08, err
    assert err.max() < 0.3, err


def test_out_of_dictionary_word_is_interpolated_with_zero_confidence(speech):
    x, truth = speech
    words = SENTENCE.split()
    words[3] = "zorblaxian"  # not in CMUdict: the audio of "and" is left to it
    got = ps.align(x, SR, words)
    assert [w for w, *_ in got] == words
    w, s, e, c = got[3]
    assert c == 0.0 and all(g[3] == 1.0 for i, g in enumerate(got) if i != 3)
    assert got[2][2] <= s <= e <= got[4][1]


def test_clip_cut_mid_word_keeps_every_word(speech):
    x, truth = speech
    last = truth[-1]
    cut = x[: int((last[1] + 0.6 * (last[2] - last[1])) * SR)]  # the last word loses its end
    got = ps.align(cut, SR, SENTENCE.split())
    assert [w for w, *_ in got] == SENTENCE.split()
    assert all(c == 1.0 for *_, c in got)
    assert abs(got[-1][1] - last[1]) < 0.1 and got[-1][2] <= len(cut) / SR


def test_recognition_without_text_returns_timed_words(tmp_path):
    x = np.concatenate([np.zeros(SR // 4, np.float32), say("we will meet at the station tomorrow morning"),
                        np.zeros(SR // 4, np.float32)])
    m, audio = make_clip(tmp_path, x, None)
    tab = run(tmp_path, m, audio)
    assert tab.ok and tab.attrs["backend"] == "pocketsphinx" and tab.attrs["text_source"] == "recognised"
    df = tab.to_pandas()
    assert len(df) >= 3  # espeak's voice is far from the model's training speech: words, not accuracy
    assert_well_formed(df, len(x) / SR)
    assert df.start_s.iloc[0] >= 0.15  # nothing recognised in the leading silence
    assert tab.attrs["text"] == " ".join(df.word)


def test_results_do_not_depend_on_what_was_decoded_before(speech):
    x, _ = speech
    other = say("she had your dark suit in greasy wash water all year")
    first = ps.recognize(x, SR), ps.align(x, SR, SENTENCE.split())
    ps.recognize(other, SR)
    ps.align(other, SR, "she had your dark suit in greasy wash water all year".split())
    assert (ps.recognize(x, SR), ps.align(x, SR, SENTENCE.split())) == first


def test_text_that_does_not_fit_the_audio(tmp_path):
    x = np.zeros(SR, np.float32)
    x[SR // 2] = 0.001  # not digital silence only
    m, audio = make_clip(tmp_path, x, " ".join(["the quick brown fox jumps over the lazy dog"] * 3))
    tab = run(tmp_path, m, audio, backend="align")
    assert tab.status == "failed" and "alignment failed" in tab.reason
    tab = run(tmp_path, m, audio, backend="auto")  # falls back to recognition and says so
    assert tab.ok and tab.attrs["backend"] == "pocketsphinx"
    assert any("alignment" in n for n in tab.attrs["notes"])
    assert tab.attrs["text_source"] == "reference"


def test_align_backend_without_text_fails_with_reason(tmp_path):
    m, audio = make_clip(tmp_path, say("hello"), None)
    tab = run(tmp_path, m, audio, backend="align")
    assert tab.status == "failed" and "c1.txt" in tab.reason


def test_failed_audio_step_is_skipped(tmp_path):
    m = write_manifest(tmp_path / "m.parquet", {"c1": {"path": tmp_path / "c1.mp4"}})
    audio = tmp_path / "c1.parquet"
    write_failure(audio, "audio", "no audio track")
    write_wav(audio.with_suffix(".wav"), np.zeros(0, np.float32), SR)
    tab = run(tmp_path, str(m), str(audio))
    assert tab.status == "skipped" and tab.reason == "audio: no audio track"


def test_normalize_text():
    assert ps.normalize_text("In 1999, 42% of us paid $3.5 & it's well-known: 2,500 people!") == [
        "in", "nineteen", "ninety", "nine", "forty", "two", "percent", "of", "us", "paid", "three", "point",
        "five", "and", "it's", "well", "known", "two", "thousand", "five", "hundred", "people"]
    assert ps.normalize_text("Don\u2019t STOP") == ["don't", "stop"]
    assert ps.number_words("2008") == ["two", "thousand", "eight"]
    assert ps.number_words("1905") == ["nineteen", "oh", "five"]


# --- whisper: clear errors, never a download ----------------------------------------------


def test_whisper_without_model_dir_is_a_clear_error(tmp_path):
    m, audio = make_clip(tmp_path, say("hello"), None)
    with pytest.raises(asr_whisper.WhisperUnavailable, match="whisper_model_dir"):
        run(tmp_path, m, audio, backend="whisper")
    with pytest.raises(asr_whisper.WhisperUnavailable, match="not found"):
        run(tmp_path, m, audio, backend="whisper", whisper_model_dir=str(tmp_path / "nope"))


def test_whisper_model_dir_contents(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(asr_whisper.WhisperUnavailable, match="no faster-whisper model"):
        asr_whisper.resolve_model(str(empty))
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "model.bin").write_bytes(b"\0")
    assert asr_whisper.resolve_model(str(fw)) == ("faster-whisper", fw)
    ow = tmp_path / "ow"
    ow.mkdir()
    (ow / "base.en.pt").write_bytes(b"\0")
    assert asr_whisper.resolve_model(str(ow)) == ("openai-whisper", ow / "base.en.pt")


@pytest.mark.parametrize("kind,file,module", [("faster-whisper", "model.bin", "faster_whisper"),
                                              ("openai-whisper", "tiny.pt", "whisper")])
def test_whisper_missing_package_is_named(tmp_path, kind, file, module):
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{kind} is installed here")
    d = tmp_path / kind
    d.mkdir()
    (d / file).write_bytes(b"\0")
    with pytest.raises(asr_whisper.WhisperUnavailable, match=f"'{kind}'.*not installed"):
        asr_whisper.recognize(np.zeros(SR, np.float32), SR, str(d))


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.shared
@pytest.mark.skipif(not (SHARED / "hdtf").is_dir(), reason="../shared/data/hdtf not present")
def test_real_speech_recognised_then_aligned_back():
    """HDTF clip (cut mid-sentence at its end): recognition gives many timed words with
    confidences, and aligning those words back places every one of them."""
    from ksdiff.io.audio import load_audio

    x, *_ = load_audio(SHARED / "hdtf" / "hdtf_sample_01.mp4", SR)
    hyp = ps.recognize(x, SR)
    assert len(hyp) > 20  # ~20 s of continuous speech
    assert 0.2 < np.mean([h[3] for h in hyp]) <= 1.0
    got = ps.align(x, SR, [h[0] for h in hyp])
    assert [g[0] for g in got] == [h[0] for h in hyp] and all(g[3] == 1.0 for g in got)
    starts = np.array([g[1] for g in got])
    assert np.all(np.diff(starts) >= 0) and got[-1][2] <= len(x) / SR
    # Same acoustic model both ways: the segmentations agree closely.
    assert np.median(np.abs(starts - [h[1] for h in hyp])) < 0.05
