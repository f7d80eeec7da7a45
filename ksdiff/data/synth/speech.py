"""Speech with known text: espeak-ng voices and a fixed list of sentences.

espeak-ng is a formant synthesiser: robotic, but deterministic, installed as a
binary, and its text is known exactly, which is what the transcript step and
the lip-sync metrics need from a corpus with ground truth.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Short, varied English (5-8 words, about two seconds each): statements,
# questions, numbers, plosive-rich and vowel-rich lines, so mouth shapes and
# prosody cover a useful range within clips of a few seconds.
SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the dog.",
    "Please water the plants before you leave.",
    "Would you like a cup of tea?",
    "Our team finished two weeks early.",
    "She sells sea shells by the shore.",
    "I think this is the best choice.",
    "Today is cool and cloudy with rain.",
    "Peter Piper picked a peck of peppers.",
    "How many people will come tomorrow?",
    "Let us open all the windows now.",
    "Twenty seven students passed the exam.",
    "Music can change how we feel.",
    "Good morning, and thank you for coming.",
    "The old bridge was rebuilt after the flood.",
    "Could you say that once more, slowly?",
    "Yellow balloons floated above the market.",
    "He runs around the park every morning.",
    "The results surprised almost everybody.",
    "Why would anyone leave such a place?",
    "Keep both hands on the wheel.",
    "A good book is all I need.",
    "The committee will decide next week.",
    "Blue whales are enormous animals.",
    "Do not forget your passport.",
    "Moving here was harder than expected.",
    "The children played in the warm sun.",
    "We measured it every hour for three days.",
    "Have you never seen the ocean?",
    "Fresh bread smells wonderful in the morning.",
    "Thank you, that was extremely helpful.",
    "Nobody knows where the old map came from.",
    "The office is five minutes from the station.",
    "Wow, I did not expect you here!",
    "Oil prices rose sharply this year.",
    "Please look directly into the camera.",
    "Large orange boats moved through the water.",
)


@dataclass(frozen=True)
class Voice:
    """One espeak-ng speaker: language voice + variant, speed and pitch."""

    name: str  # e.g. 'en-gb-scotland+m3'
    rate_wpm: int  # espeak -s
    pitch: int  # espeak -p, 0..99

    def __str__(self) -> str:
        return f"{self.name} -s {self.rate_wpm} -p {self.pitch}"


# espeak-ng's English voices (gmw family; `espeak-ng --voices=en`) and its
# built-in male/female variants. MBROLA voices are left out: they need
# separately installed voice data.
LANGUAGE_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc",
                   "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = {"m": ("m1", "m2", "m3", "m4", "m7"), "f": ("f1", "f2", "f3", "f4", "f5")}
# Typical ranges of a clear talker: words per minute, and espeak pitch per gender.
RATE_WPM = (150, 185)
PITCH = {"m": (30, 50), "f": (50, 75)}
PAUSE_S = (0.15, 0.35)  # silence between sentences
EDGE_SILENCE_S = (0.15, 0.30)  # silence before the first and after the last sentence
PEAK = 0.9  # peak normalisation of each clip's waveform


class SpeechError(RuntimeError):
    """espeak-ng is missing or failed."""


def pick_voice(speaker_index: int, gender: str, rng: np.random.Generator) -> Voice:
    """A voice for this speaker: language voices cycle, so neighbours differ."""
    lang = LANGUAGE_VOICES[speaker_index % len(LANGUAGE_VOICES)]
    variants = VARIANTS.get(gender, VARIANTS["m"] + VARIANTS["f"])
    variant = variants[int(rng.integers(len(variants)))]
    lo, hi = PITCH.get(gender, (35, 70))
    return Voice(f"{lang}+{variant}", int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1)),
                 int(rng.integers(lo, hi + 1)))


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechError("the espeak-ng binary is not installed (apt-get install espeak-ng)")
    return exe


def speak(text: str, voice: Voice, sample_rate: int) -> np.ndarray:
    """Synthesise one sentence: mono float32 at sample_rate, silence trimmed."""
    import soundfile as sf
    import soxr

    with tempfile.TemporaryDirectory(prefix="ksdiff-espeak-") as tmp:
        wav = Path(tmp) / "s.wav"
        cmd = [espeak_binary(), "-v", voice.name, "-s", str(voice.rate_wpm), "-p", str(voice.pitch),
               "-w", str(wav), text]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if res.returncode != 0 or not wav.exists():
            raise SpeechError(f"espeak-ng failed ({res.returncode}): {res.stderr.strip()[:300]}")
        x, sr = sf.read(str(wav), dtype="float32", always_2d=False)
    if x.ndim > 1:
        x = x.mean(axis=1)
    if x.size == 0:
        raise SpeechError(f"espeak-ng wrote no samples for {text!r}")
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate).astype(np.float32)
    return trim(x, sample_rate)


def trim(x: np.ndarray, sample_rate: int, threshold: float = 1e-3) -> np.ndarray:
    """Drop espeak's leading/trailing near-silence so our own pauses set the timing."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    if loud.size == 0:
        return x
    pad = int(0.01 * sample_rate)
    return x[max(0, loud[0] - pad) : loud[-1] + pad]


def pick_sentences(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct sentences (repeats only when n exceeds the list)."""
    order = rng.permutation(len(SENTENCES))
    return [SENTENCES[order[i % len(order)]] for i in range(n)]


def make_utterance(sentences: list[str], voice: Voice, sample_rate: int, fps: float,
                   rng: np.random.Generator) -> np.ndarray:
    """The clip's audio: sentences with pauses, padded to a whole number of frames.

    The length is an exact multiple of sample_rate / fps (when that is whole,
    e.g. 640 samples at 16 kHz and 25 fps) so audio and video end together.
    """
    parts = [np.zeros(int(rng.uniform(*EDGE_SILENCE_S) * sample_rate), np.float32)]
    for i, s in enumerate(sentences):
        if i:
            parts.append(np.zeros(int(rng.uniform(*PAUSE_S) * sample_rate), np.float32))
        parts.append(speak(s, voice, sample_rate))
    parts.append(np.zeros(int(rng.uniform(*EDGE_SILENCE_S) * sample_rate), np.float32))
    x = np.concatenate(parts)
    hop = sample_rate / fps
    n_frames = int(np.ceil(len(x) / hop))
    x = np.pad(x, (0, int(round(n_frames * hop)) - len(x)))
    peak = float(np.abs(x).max())
    if peak > 0:
        x = x * (PEAK / peak)
    return x.astype(np.float32)
