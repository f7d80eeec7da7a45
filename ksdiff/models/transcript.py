"""Transcript condition: hashed word ids per motion frame -> embedding + small conv.

Words are hashed into a fixed vocabulary (``cfg.vocab_size``; id 0 = no word) so
the model needs no vocabulary file that could drift from the ASR backend, and an
unseen word at test time still maps to a (shared) embedding row instead of failing.
"""
from __future__ import annotations

import re
import zlib

import numpy as np
import torch
from torch import nn

from .config import KSDiffConfig

_WORD = re.compile(r"[^\w']+")


def hash_word(word: str, vocab_size: int) -> int:
    """Stable id in 1..vocab_size-1 for a word (case and punctuation ignored); 0 for an empty token.

    crc32 rather than Python's ``hash`` because the latter is salted per process.
    """
    w = _WORD.sub("", word.lower())
    if not w:
        return 0
    return zlib.crc32(w.encode("utf-8")) % (vocab_size - 1) + 1


def frame_word_ids(
    words: list[str], start_s: np.ndarray, end_s: np.ndarray, n_frames: int, fps: float, vocab_size: int
) -> np.ndarray:
    """(n_frames,) int64: the hashed id of the word spoken at each frame's centre, 0 in silence.

    ``words``/``start_s``/``end_s`` are the TRANSCRIPT table's columns.
    """
    ids = np.zeros(n_frames, dtype=np.int64)
    centres = (np.arange(n_frames) + 0.5) / fps
    for word, start, end in zip(words, np.asarray(start_s, float), np.asarray(end_s, float)):
        if not (np.isfinite(start) and np.isfinite(end)) or end <= start:
            continue
        ids[(centres >= start) & (centres < end)] = hash_word(word, vocab_size)
    return ids


class TranscriptEncoder(nn.Module):
    """(B, T) word ids -> (B, T, D): embedding + a residual conv that lets a frame see its neighbours' words."""

    def __init__(self, cfg: KSDiffConfig):
        super().__init__()
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, d, padding_idx=0)
        self.conv = nn.Conv1d(d, d, cfg.transcript_kernel, padding=cfg.transcript_kernel // 2)
        self.norm = nn.LayerNorm(d)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        if words.min() < 0 or words.max() >= self.embed.num_embeddings:
            raise ValueError(f"word ids must lie in 0..{self.embed.num_embeddings - 1} (hash with the same vocab_size)")
        e = self.embed(words)
        return self.norm(e + self.conv(e.transpose(1, 2)).transpose(1, 2))
