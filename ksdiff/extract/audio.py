"""Audio step: decode a clip's audio track to 16 kHz mono WAV and measure its level.

Every later audio step (transcripts, speech features, SyncNet's MFCCs) reads
the WAV written here, so they all see the same samples at the same rate.

Level conventions (all in the 'audio' table, see ksdiff.io.schemas.AUDIO):

- ``rms_dbfs`` = 20 log10(RMS) of the 16 kHz mono signal, re a full-scale
  *square* wave; a full-scale sine therefore reads -3.01 dBFS (the AES-17
  convention, which would read 0 dBFS, is not used).
- ``peak_dbfs`` = 20 log10(max |x|) of the 16 kHz mono signal.
- ``loudness_lufs``: ITU-R BS.1770-4 integrated loudness (pyloudnorm, K-weighted,
  400 ms gating blocks). NaN with a note in the attrs when the clip is shorter
  than one 400 ms block; -inf when every block is below the -70 LUFS absolute
  gate (digital silence).
- ``clipped_fraction``: fraction of *source* samples (all channels, source
  rate, before downmixing and resampling) with |x| >= CLIP_LEVEL. Measured
  before resampling because the resampler's ringing smears a clipped plateau
  into values just below full scale.
- ``silence_fraction``: fraction of non-overlapping 20 ms frames of the 16 kHz
  mono signal whose RMS is below SILENCE_DBFS.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from ksdiff.data.manifest import clip_row
from ksdiff.io.audio import AudioError, load_audio, write_wav
from ksdiff.io.parquet import write_failure, write_table

log = logging.getLogger(__name__)

# |x| at or above this counts as clipped: int16 full scale is 1.0 after
# scaling, and lossy codecs decode a clipped plateau to values within ~0.1% of it.
CLIP_LEVEL = 0.999
# A 20 ms frame quieter than this is silence: well below quiet speech
# (about -30..-40 dBFS) and above the noise floor of 16-bit recordings.
SILENCE_DBFS = -50.0
SILENCE_FRAME_S = 0.020
# pyloudnorm's gating block (BS.1770): shorter clips have no loudness.
LOUDNESS_BLOCK_S = 0.400


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


def audio_stats(x: np.ndarray, sample_rate: int) -> tuple[dict, list[str]]:
    """Level statistics of a mono float signal (see the module docstring).

    Returns (columns, notes); ``notes`` says why a value is NaN or infinite.
    """
    import pyloudnorm

    notes: list[str] = []
    x = np.asarray(x, dtype=np.float64)
    rms = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if len(x) < int(round(LOUDNESS_BLOCK_S * sample_rate)) + 1:
        loudness = math.nan
        notes.append(f"loudness_lufs is NaN: clip shorter than the {LOUDNESS_BLOCK_S * 1000:.0f} ms BS.1770 gating block")
    else:
        loudness = float(pyloudnorm.Meter(sample_rate, block_size=LOUDNESS_BLOCK_S).integrated_loudness(x))
        if math.isinf(loudness):
            notes.append("loudness_lufs is -inf: every block is below the -70 LUFS absolute gate")
    hop = int(round(SILENCE_FRAME_S * sample_rate))
    n = len(x) // hop
    if n:
        frame_rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
        silence = float(np.mean(frame_rms < 10 ** (SILENCE_DBFS / 20)))
    else:
        silence = math.nan
        notes.append("silence_fraction is NaN: clip shorter than one 20 ms frame")
    cols = {
        "rms_dbfs": _db(rms),
        "peak_dbfs": _db(peak),
        "loudness_lufs": loudness,
        "silence_fraction": silence,
    }
    return cols, notes


def extract_audio(cfg: dict, manifest: str, clip: str, out_wav: str, out: str) -> None:
    """Decode ``clip``'s audio to ``out_wav`` (mono 16-bit PCM at cfg['sample_rate'])
    and write its one-row 'audio' table to ``out``.

    On bad input (probe error in the manifest, no audio track, missing,
    zero-byte, corrupt or undecodable file) the 'audio' table is written with
    status failed and the reason, and ``out_wav`` is still written as a valid
    WAV with zero samples: the workflow declares the WAV as an output of this
    step, so it must exist for every clip; readers check the table's status,
    never the WAV alone.
    """
    sr = int(cfg["sample_rate"])
    row = clip_row(manifest, clip)  # KeyError: a wiring error of the workflow, not bad input

    def fail(reason: str) -> None:
        log.warning("%s: audio failed: %s", clip, reason)
        write_wav(out_wav, np.zeros(0, dtype=np.float32), sr)
        write_failure(out, "audio", reason, attrs={"clip_id": clip, "source": row.get("path", "")})

    if row.get("probe_error"):
        return fail(f"probe error: {row['probe_error']}")
    if row.get("has_audio") is False:
        return fail("no audio track")
    try:
        # Source rate and channels kept, so clipping is measured before the
        # downmix and the resampler (see module docstring).
        src, src_rate, _, src_ch = load_audio(row["path"], sample_rate=None, mono=False)
    except AudioError as e:
        return fail(str(e))
    clipped = float(np.mean(np.abs(src) >= CLIP_LEVEL)) if src.size else 0.0
    x = src.mean(axis=1)
    if src_rate != sr:
        import soxr

        x = soxr.resample(x, src_rate, sr).astype(np.float32)
    x = np.clip(x, -1.0, 1.0)
    if len(x) == 0:
        return fail("audio stream has no samples")
    stats, notes = audio_stats(x, sr)
    write_wav(out_wav, x, sr)
    cols = {
        "clip_id": [clip],
        "sample_rate": [sr],
        "n_samples": [len(x)],
        "duration_s": [len(x) / sr],
        "source_sample_rate": [src_rate],
        "source_channels": [src_ch],
        "clipped_fraction": [clipped],
        **{k: [v] for k, v in stats.items()},
    }
    attrs = {
        "clip_id": clip,
        "source": row["path"],
        "wav": str(out_wav),
        "rms_reference": "full-scale square wave (a full-scale sine is -3.01 dBFS)",
        "clip_level": CLIP_LEVEL,
        "silence_dbfs": SILENCE_DBFS,
        "silence_frame_s": SILENCE_FRAME_S,
        "notes": notes,
    }
    write_table(out, "audio", cols, attrs=attrs)
    log.info("%s: %.2f s audio, %.1f dBFS RMS, %.1f LUFS", clip, len(x) / sr, stats["rms_dbfs"], stats["loudness_lufs"])
