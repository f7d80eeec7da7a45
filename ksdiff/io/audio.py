"""Audio I/O: decode any container's audio track to mono float32 at a target rate.

PyAV decodes (AAC in mp4, wav, flac, ...), soxr resamples (high quality, fast),
soundfile writes 16-bit PCM WAV.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class AudioError(RuntimeError):
    """No usable audio (missing file, no audio stream, undecodable)."""


def load_audio(path: str | Path, sample_rate: int | None = 16000, mono: bool = True):
    """Return (samples float32 [-1, 1], sample_rate, source_rate, source_channels).

    samples has shape (n,) when mono, else (n, channels). ``sample_rate`` None
    keeps the source rate.
    """
    import av
    import soxr

    path = Path(path)
    if not path.exists():
        raise AudioError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioError("zero-byte file")
    try:
        container = av.open(str(path))
    except Exception as e:
        raise AudioError(f"unreadable container: {type(e).__name__}: {e}") from e
    with container:
        if not container.streams.audio:
            raise AudioError("no audio stream")
        stream = container.streams.audio[0]
        src_rate = int(stream.codec_context.sample_rate)
        src_ch = int(stream.codec_context.channels)
        chunks = []
        try:
            for frame in container.decode(stream):
                a = frame.to_ndarray()  # (channels, n) planar or (1, n*channels) packed
                if frame.format.is_planar:
                    a = a.T
                else:
                    a = a.reshape(-1, len(frame.layout.channels))
                if a.dtype.kind == "i":
                    a = a.astype(np.float32) / np.iinfo(a.dtype).max
                chunks.append(a.astype(np.float32))
        except av.error.FFmpegError as e:
            if not chunks:
                raise AudioError(f"undecodable audio: {e}") from e
    if not chunks:
        raise AudioError("audio stream has no samples")
    x = np.concatenate(chunks, axis=0)
    if mono:
        x = x.mean(axis=1)
    rate = src_rate
    if sample_rate is not None and sample_rate != src_rate:
        x = soxr.resample(x, src_rate, sample_rate).astype(np.float32)
        rate = sample_rate
    return np.clip(x, -1.0, 1.0), rate, src_rate, src_ch


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV, written atomically."""
    import io

    import soundfile as sf

    from ksdiff.io.files import atomic_write_bytes

    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples, dtype=np.float32), sample_rate, subtype="PCM_16", format="WAV")
    atomic_write_bytes(path, buf.getvalue())


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float32", always_2d=False)
    return x, sr
