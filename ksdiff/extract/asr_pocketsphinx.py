"""PocketSphinx backend: word recognition and forced alignment of known text.

Uses the US English acoustic model, CMUdict and language model bundled with
the pocketsphinx wheel, so it works offline with nothing to download.

- Recognition: the audio is cut into speech regions by pocketsphinx's own VAD
  (``Segmenter``), each region is decoded with the n-gram LM, and the word
  segmentation (100 frames per second) is returned with each word's lattice
  posterior probability as its confidence. Cutting at pauses is what
  pocketsphinx recommends for long audio: cepstral mean normalisation then
  adapts per region and the search stays small.
- Alignment: the normalised reference text is aligned as one linear grammar
  (``Decoder.set_align_text``). Words missing from CMUdict cannot be aligned
  (pocketsphinx 5 has no grapheme-to-phoneme model), so they are left out of
  the grammar and given the time between their aligned neighbours, with
  confidence 0; aligned words get confidence 1.

Backends return plain ``(word, start_s, end_s, confidence)`` tuples.
"""
from __future__ import annotations

import functools
import io
import logging
import re

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # the bundled acoustic model is trained on 16 kHz speech
# Alignment beams: equal frame/word/phone beams avoid the "final result does not
# match the grammar" failure of the default (narrower) word beam. Wider beams
# measured *worse* (more incomplete alignments), so there is one setting.
ALIGN_BEAM = 1e-48
# Alignment silence probabilities, tried in order until one aligns every word:
# 0.1 (speakers pause between words far more often than the recogniser's
# default 0.005 assumes; chosen on the benchmark, where it cut the mean boundary
# error from 42 to 30 ms), then pocketsphinx's default.
# Measured numbers for this and the next two settings: benchmarks/README.md.
ALIGN_SILPROBS = (0.1, 0.005)
# Noise floor added before feature extraction (Gaussian, fixed seed, -60 dBFS
# RMS): digital silence (exact zeros, common in synthetic or edited audio)
# broke 11 of the 20 benchmark alignments; a real recording's own noise floor
# is at this level or above, so real speech is practically unchanged.
NOISE_FLOOR = 1e-3
# Silence padded on both sides before alignment: a clip cut mid-word leaves the
# grammar's last word no frames to finish in, and pocketsphinx then drops it
# (benchmark of clips cut mid-word: 10 of 20 fail unpadded, 3 with 0.3 s, 1 with 0.6 s).
ALIGN_PAD_S = 0.6

Word = tuple  # (word, start_s, end_s, confidence)


class AlignmentError(RuntimeError):
    """The reference text could not be aligned to the audio."""


# --- text normalisation ---------------------------------------------------------------

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _int_words(n: int) -> list[str]:
    """Cardinal reading of 0 <= n < 10**9 (hand-written: num2words is not a dependency)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + (_int_words(n % 100) if n % 100 else [])
    for size, name in ((10**6, "million"), (1000, "thousand")):
        if n >= size:
            return _int_words(n // size) + [name] + (_int_words(n % size) if n % size else [])
    raise AssertionError(n)


def number_words(token: str) -> list[str]:
    """Spoken words of a digit string: '42' -> forty two, '3.5' -> three point five,
    four-digit years 1100-1999 / 2010-2099 read in pairs ('1999' -> nineteen ninety nine).
    Numbers of a billion or more are read digit by digit."""
    if "." in token:
        whole, frac = token.split(".", 1)
        return number_words(whole) + ["point"] + [_ONES[int(c)] for c in frac]
    n = int(token)
    if len(token) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099) and n % 100:
        hi, lo = divmod(n, 100)
        return _int_words(hi) + (["oh"] if lo < 10 else []) + _int_words(lo)
    if n >= 10**9:
        return [_ONES[int(c)] for c in token]
    return _int_words(n)


def normalize_text(text: str) -> list[str]:
    """Lower-case words as CMUdict spells them: punctuation dropped (apostrophes
    inside words kept: "don't"), hyphens split words, digits spelled out, '%' and
    '&' spoken."""
    t = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    t = re.sub(r"(?<=\d),(?=\d{3})", "", t)  # 1,000 -> 1000
    t = t.replace("%", " percent ").replace("&", " and ")
    words: list[str] = []
    for tok in re.findall(r"[a-z]+(?:'[a-z]+)*|\d+(?:\.\d+)?", t):
        words.extend(number_words(tok) if tok[0].isdigit() else [tok])
    return words


# --- decoding -------------------------------------------------------------------------


def model_name() -> str:
    from importlib.metadata import version

    return f"pocketsphinx {version('pocketsphinx')} en-us (cmudict-en-us, en-us.lm.bin)"


def _decoder(kind: str, silprob: float = 0.0):
    """A new decoder: 'recognize' (n-gram LM) or 'align' (no LM, given silence probability).

    New for every clip (~0.3 s with the LM, ~0.1 s without): a reused decoder
    carries adaptation state (cepstral mean and more) from the clips before,
    which made the same audio decode differently depending on what came first.
    """
    from pocketsphinx import Decoder

    if kind == "recognize":
        return Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    b = ALIGN_BEAM
    return Decoder(samprate=SAMPLE_RATE, lm=None, loglevel="FATAL", beam=b, wbeam=b, pbeam=b, silprob=silprob)


@functools.lru_cache(maxsize=None)
def _lexicon():
    """A decoder kept only for dictionary look-ups (they change no state)."""
    return _decoder("align", ALIGN_SILPROBS[0])


def _pcm16(x: np.ndarray, sr: int) -> bytes:
    """16-bit PCM at 16 kHz with the NOISE_FLOOR added (deterministic)."""
    x = np.asarray(x, dtype=np.float32)
    if sr != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sr, SAMPLE_RATE)
    x = x + NOISE_FLOOR * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _is_filler(word: str) -> bool:
    # <s>, </s>, <sil>, [NOISE], ++GARBAGE++ ...
    return word[:1] in "<[+"


def _base(word: str) -> str:
    return re.sub(r"\(\d+\)$", "", word)  # "don't(2)" is the 2nd pronunciation of "don't"


def _words_of(decoder, offset_s: float, frate: float) -> list[Word]:
    out = []
    for s in decoder.seg() or []:
        if _is_filler(s.word):
            continue
        # end_frame is inclusive; prob is already linear (pocketsphinx applies logmath.exp)
        conf = float(min(max(s.prob, 0.0), 1.0))
        start, end = offset_s + s.start_frame / frate, offset_s + (s.end_frame + 1) / frate
        out.append((_base(s.word), round(start, 6), round(end, 6), conf))
    return out


def recognize(x: np.ndarray, sr: int) -> list[Word]:
    """Recognised words with times (seconds) and posterior confidences."""
    from pocketsphinx import Segmenter

    d = _decoder("recognize")
    frate = float(d.config["frate"])
    words: list[Word] = []
    for region in Segmenter(sample_rate=SAMPLE_RATE).segment(io.BytesIO(_pcm16(x, sr))):
        d.start_utt()
        d.process_raw(region.pcm, full_utt=True)
        d.end_utt()
        words.extend(_words_of(d, float(region.start_time), frate))
    return words


def in_dictionary(words: list[str]) -> list[bool]:
    d = _lexicon()
    return [d.lookup_word(w) is not None for w in words]


def _align_known(pcm: bytes, words: list[str]) -> list[Word]:
    errors = []
    for silprob in ALIGN_SILPROBS:
        d = _decoder("align", silprob)
        frate = float(d.config["frate"])
        try:
            d.set_align_text(" ".join(words))
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
        except RuntimeError as e:
            errors.append(f"silprob {silprob:g}: {e}")
            continue
        if d.hyp() is None:
            errors.append(f"silprob {silprob:g}: no path through the text reaches the end of the audio")
            continue
        got = _words_of(d, 0.0, frate)
        if [w for w, *_ in got] == words:
            return got
        # pocketsphinx returns its best partial path when the grammar's end is not reached.
        errors.append(f"silprob {silprob:g}: incomplete alignment ({len(got)} of {len(words)} words)")
    raise AlignmentError("; ".join(errors))


def align(x: np.ndarray, sr: int, words: list[str]) -> list[Word]:
    """Time every word of ``words`` (normalised, see normalize_text) in the audio.

    Raises AlignmentError when the text does not fit the audio with any of
    ALIGN_SILPROBS. Out-of-dictionary words are interpolated (confidence 0).
    """
    duration = len(x) / sr
    known = in_dictionary(words)
    pad = np.zeros(int(ALIGN_PAD_S * sr), dtype=np.float32)
    got = _align_known(_pcm16(np.concatenate([pad, x, pad]), sr), [w for w, k in zip(words, known) if k]) if any(known) else []

    def inside(t: float) -> float:
        return round(min(max(t - len(pad) / sr, 0.0), duration), 6)

    aligned = iter([(w, inside(s), inside(e), c) for w, s, e, c in got])
    timed: list[Word | None] = [next(aligned) if k else None for k in known]
    for w, k in zip(words, known):
        if not k:
            log.info("'%s' is not in the pronunciation dictionary: interpolated, confidence 0", w)
    # Out-of-dictionary runs share the gap between their aligned neighbours equally.
    i = 0
    while i < len(timed):
        if timed[i] is not None:
            i += 1
            continue
        j = i
        while j < len(timed) and timed[j] is None:
            j += 1
        t0 = timed[i - 1][2] if i > 0 else 0.0
        t1 = timed[j][1] if j < len(timed) else duration
        step = max(t1 - t0, 0.0) / (j - i)
        for k in range(i, j):
            timed[k] = (words[k], t0 + (k - i) * step, t0 + (k - i + 1) * step, 0.0)
        i = j
    # Confidence 1 for aligned words (the schema's convention for known text), 0 for interpolated ones.
    return [(w, s, e, 1.0 if k else 0.0) for (w, s, e, _), k in zip(timed, known)]
