"""Transcript condition: per-frame tokens from the transcript table -> embedding + small conv.

Two tokenisations (``cfg.transcript_tokens``):

- ``"phones"`` (default): each word is looked up in CMUdict (the copy bundled
  with the pocketsphinx wheel, so nothing is downloaded) and its phones are laid
  over the word's aligned span, vowels given ``VOWEL_WEIGHT`` times a consonant's
  share of the time. 39 ARPAbet phones are a closed set that every training run
  sees, they carry the lip shapes (visemes) directly, and an unseen word at test
  time still gets meaningful tokens. Measured on the synthetic demo corpus:
  hashed words made the held-out lip error worse than no transcript at all.
  Words missing from the dictionary get the ``UNKNOWN`` token over their span.
- ``"words"``: each word hashed into ``cfg.vocab_size`` ids (DiffSpeaker-style
  text condition without a vocabulary file). Rows of words never seen in
  training keep their random initialisation, so this only suits corpora whose
  test vocabulary was seen in training.

Token 0 is "no word" (silence) in both.
"""
from __future__ import annotations

import functools
import re
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import KSDiffConfig

_WORD = re.compile(r"[^\w']+")

# CMUdict's 39 phones (stress already stripped in pocketsphinx's copy).
PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
    "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y",
    "Z", "ZH",
)
VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"})
# Vowels last about twice as long as consonants in read English; 2 would starve
# short consonant clusters in fast speech, 1.6 is the compromise (phones are
# placed without an acoustic model, so the split is an approximation anyway).
VOWEL_WEIGHT = 1.6
SILENCE, UNKNOWN = 0, 1
PHONE_ID = {p: i + 2 for i, p in enumerate(PHONES)}
N_PHONE_TOKENS = len(PHONES) + 2


def normalise_word(word: str) -> str:
    return _WORD.sub("", word.lower())


def hash_word(word: str, vocab_size: int) -> int:
    """Stable id in 1..vocab_size-1 for a word (case and punctuation ignored); 0 for an empty token.

    crc32 rather than Python's ``hash`` because the latter is salted per process.
    """
    w = normalise_word(word)
    if not w:
        return 0
    return zlib.crc32(w.encode("utf-8")) % (vocab_size - 1) + 1


def cmudict_path() -> Path:
    import pocketsphinx

    return Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"


@functools.lru_cache(maxsize=1)
def cmudict() -> dict[str, tuple[str, ...]]:
    """word -> phones of its first pronunciation, from pocketsphinx's bundled CMUdict (~0.3 s, once)."""
    path = cmudict_path()
    if not path.exists():
        raise FileNotFoundError(f"CMUdict not found at {path}: is pocketsphinx installed?")
    out: dict[str, tuple[str, ...]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2 or "(" in parts[0]:  # "word(2)" = alternative pronunciation
                continue
            out.setdefault(parts[0], tuple(p.rstrip("012") for p in parts[1:]))
    return out


def word_phones(word: str) -> tuple[str, ...] | None:
    """CMUdict phones of a word (case and punctuation ignored), None when the word is not in it."""
    w = normalise_word(word)
    return cmudict().get(w) if w else ()


def _spans(words, start_s, end_s):
    for word, start, end in zip(words, np.asarray(start_s, float), np.asarray(end_s, float)):
        if np.isfinite(start) and np.isfinite(end) and end > start:
            yield word, start, end


def frame_word_ids(
    words: list[str], start_s: np.ndarray, end_s: np.ndarray, n_frames: int, fps: float, vocab_size: int
) -> np.ndarray:
    """(n_frames,) int64: the hashed id of the word spoken at each frame's centre, 0 in silence.

    ``words``/``start_s``/``end_s`` are the TRANSCRIPT table's columns.
    """
    ids = np.zeros(n_frames, dtype=np.int64)
    centres = (np.arange(n_frames) + 0.5) / fps
    for word, start, end in _spans(words, start_s, end_s):
        ids[(centres >= start) & (centres < end)] = hash_word(word, vocab_size)
    return ids


def frame_phone_ids(words: list[str], start_s: np.ndarray, end_s: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """(n_frames,) int64: the phone spoken at each frame's centre (PHONE_ID), UNKNOWN over
    out-of-dictionary words, SILENCE elsewhere."""
    ids = np.zeros(n_frames, dtype=np.int64)
    centres = (np.arange(n_frames) + 0.5) / fps
    for word, start, end in _spans(words, start_s, end_s):
        inside = (centres >= start) & (centres < end)
        phones = word_phones(word)
        if not phones:
            ids[inside] = UNKNOWN if phones is None else SILENCE
            continue
        w = np.array([VOWEL_WEIGHT if p in VOWELS else 1.0 for p in phones])
        bounds = start + (end - start) * np.concatenate([[0.0], np.cumsum(w) / w.sum()])
        k = np.clip(np.searchsorted(bounds, centres[inside], side="right") - 1, 0, len(phones) - 1)
        ids[inside] = np.array([PHONE_ID[p] for p in phones])[k]
    return ids


def n_tokens(cfg: KSDiffConfig) -> int:
    """Embedding rows the configured tokenisation needs."""
    return N_PHONE_TOKENS if cfg.transcript_tokens == "phones" else cfg.vocab_size


def frame_tokens(cfg: KSDiffConfig, words: list[str], start_s, end_s, n_frames: int, fps: float) -> np.ndarray:
    """The configured per-frame tokens of a transcript (``cfg.transcript_tokens``)."""
    if cfg.transcript_tokens == "phones":
        return frame_phone_ids(words, start_s, end_s, n_frames, fps)
    return frame_word_ids(words, start_s, end_s, n_frames, fps, cfg.vocab_size)


def tokenizer(cfg: KSDiffConfig):
    """``tokenize(words, start_s, end_s, n_frames, fps) -> (n_frames,) ids`` for ``cfg``."""
    return functools.partial(frame_tokens, cfg)


class TranscriptEncoder(nn.Module):
    """(B, T) token ids -> (B, T, D): embedding + a residual conv that lets a frame see its neighbours' tokens."""

    def __init__(self, cfg: KSDiffConfig):
        super().__init__()
        d = cfg.d_model
        self.embed = nn.Embedding(n_tokens(cfg), d, padding_idx=0)
        self.conv = nn.Conv1d(d, d, cfg.transcript_kernel, padding=cfg.transcript_kernel // 2)
        self.norm = nn.LayerNorm(d)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        if words.min() < 0 or words.max() >= self.embed.num_embeddings:
            raise ValueError(f"token ids must lie in 0..{self.embed.num_embeddings - 1} "
                             "(tokenise with the model's transcript_tokens / vocab_size)")
        e = self.embed(words)
        return self.norm(e + self.conv(e.transpose(1, 2)).transpose(1, 2))
