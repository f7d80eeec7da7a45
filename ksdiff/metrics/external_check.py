"""Is another system's video of this ground-truth clip, and in step with it?

An external method's video (eval.external) is scored against the ground-truth
clip of the same id frame by frame, so before it is scored its audio track is
cross-correlated with the clip's own audio (both 16 kHz mono, as the audio step
writes them). ``check_clip`` is the one entry point; it measures

  peak_corr  the peak of the normalised cross-correlation (1.0: the same
             recording; polarity is ignored);
  lag_s      where that peak is: how late the video's audio runs against the
             clip's (positive: the video starts later in the recording, e.g.
             padded at its start);
  length     the video's frames against the clip's, after that lag is removed;

and says whether the video is scored (``ClipCheck.scored``): a lag within
``MAX_LAG_S`` is corrected (``ClipCheck.align`` drops the leading frames that
have no counterpart, in the video or in the ground truth), and a video whose
audio does not match or whose length differs by more than
``MAX_LENGTH_DIFF_FRAMES`` is not scored, with the measured reason. A video
without an audio track can only be checked for its length (status
``unchecked``): it is scored as it is when that matches.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import signal

from ksdiff.io import parquet

# A video that matches the clip carries the clip's own recording, re-encoded
# at most (AAC, resampling: the waveform stays the same, the peak stays close
# to 1). The normalised peak is the correlation coefficient between the two
# tracks at the best lag, so below 0.5 at most a quarter (0.5**2) of the video
# track's energy is the clip's audio: it is some other recording (another
# take, another clip, speech synthesised anew), and its frames cannot be
# assumed to follow the clip's speech.
MIN_PEAK_CORR = 0.5
# A constant lag up to half a second is a video cut or padded a little
# differently from the clip (a few frames at its start) and is corrected; beyond
# that the video shows another span of the recording (12 frames at 25 fps, more
# than a syllable), which is not the clip scored against.
MAX_LAG_S = 0.5
# Once the lag is removed, one frame either way at each end is container
# rounding (a video cut to its audio's length, a last partial frame); more means
# the video covers a different span than the clip, and frame-by-frame metrics
# would compare different moments of speech.
MAX_LENGTH_DIFF_FRAMES = 2

OK = "ok"  # matches, no lag of a frame or more
LAG_CORRECTED = "lag corrected"  # matches once shifted by lag_frames
MISMATCH = "mismatch"  # not scored: reason says what was measured
UNCHECKED = "unchecked"  # no audio track in the video: only its length was checked


@dataclass(frozen=True)
class ClipCheck:
    """What was measured on one external video against its ground-truth clip."""

    clip_id: str
    status: str
    peak_corr: float  # NaN when the video has no audio track
    lag_s: float  # NaN when the video has no audio track
    lag_frames: int  # the lag in frames at the scoring frame rate (0 when not measured)
    n_frames: int  # the video's frames
    n_frames_gt: int  # the ground-truth clip's frames
    length_diff_frames: int  # video minus clip, after the lag is removed
    reason: str  # '' when scored as it is; else what was corrected or why it is not scored

    @property
    def scored(self) -> bool:
        return self.status != MISMATCH

    @property
    def video_start(self) -> int:
        """Leading frames of the video with no counterpart in the clip (a positive lag)."""
        return max(self.lag_frames, 0)

    @property
    def gt_start(self) -> int:
        """Leading frames of the clip the video does not show (a negative lag)."""
        return max(-self.lag_frames, 0)

    @classmethod
    def from_row(cls, row: dict) -> "ClipCheck":
        """The check a row of the external videos' QC table (ksdiff.metrics.external_qc) recorded."""
        return cls(**{f.name: float("nan") if row[f.name] is None else row[f.name] for f in fields(cls)})

    def row(self) -> dict:
        """The check as a plain record (a row of the QC table, JSON-safe: NaN as None)."""
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}

    def align(self, gt: parquet.Table, video: parquet.Table, gt_wav: np.ndarray, fps: float,
              sample_rate: int) -> tuple[parquet.Table, parquet.Table, np.ndarray]:
        """The ground-truth coefficients, the video's coefficients and the ground-truth audio with the lag
        removed: frame 0 of each is the same moment of the recording."""
        wav = gt_wav[int(round(self.gt_start * sample_rate / fps)):]
        return _drop_frames(gt, self.gt_start), _drop_frames(video, self.video_start), wav


def _drop_frames(table: parquet.Table, k: int) -> parquet.Table:
    """``table`` without its first ``k`` frames (of every sample), frames renumbered from 0."""
    if k <= 0:
        return table
    t = table.table
    t = t.filter(pc.greater_equal(t.column("frame"), k))
    i = t.schema.get_field_index("frame")
    frame = pc.subtract(t.column("frame"), pa.scalar(k, t.schema.field("frame").type))
    t = t.set_column(i, t.schema.field("frame"), frame)
    return parquet.Table(table=t, name=table.name, version=table.version, status=table.status,
                         reason=table.reason, attrs=table.attrs)


def _correlate(video_wav: np.ndarray, gt_wav: np.ndarray) -> tuple[float, int]:
    """(peak normalised correlation, lag in samples) of the video's audio against the clip's; a positive lag
    means the video's audio runs that many samples later."""
    a = np.asarray(video_wav, dtype=np.float64)
    b = np.asarray(gt_wav, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt(np.dot(a, a) * np.dot(b, b))
    if norm == 0.0:
        return 0.0, 0
    c = signal.correlate(a, b, mode="full", method="fft")  # c[k] = sum_n a[n + k] b[n]
    lags = signal.correlation_lags(len(a), len(b), mode="full")
    i = int(np.argmax(np.abs(c)))
    return float(abs(c[i]) / norm), int(lags[i])


def check_clip(clip_id: str, video_wav: np.ndarray | None, gt_wav: np.ndarray, n_frames: int, n_frames_gt: int,
               fps: float, sample_rate: int) -> ClipCheck:
    """Check one external video against its ground-truth clip.

    video_wav, gt_wav: the video's and the clip's audio at ``sample_rate``, mono (video_wav None: the video has
    no audio track). n_frames, n_frames_gt: their lengths in frames at ``fps`` (the frames that are scored).
    """
    if video_wav is None or len(video_wav) == 0:
        diff = int(n_frames) - int(n_frames_gt)
        why = "no audio track: its lag could not be measured, only its length"
        if abs(diff) > MAX_LENGTH_DIFF_FRAMES:
            return ClipCheck(clip_id, MISMATCH, float("nan"), float("nan"), 0, int(n_frames), int(n_frames_gt), diff,
                             f"{why}; {_length_reason(n_frames, n_frames_gt, diff, 0.0)}")
        return ClipCheck(clip_id, UNCHECKED, float("nan"), float("nan"), 0, int(n_frames), int(n_frames_gt), diff, why)

    corr, lag = _correlate(video_wav, gt_wav)
    lag_s = lag / float(sample_rate)
    lag_frames = int(round(lag_s * fps))
    matched = corr >= MIN_PEAK_CORR and abs(lag_s) <= MAX_LAG_S
    problems = []
    if corr < MIN_PEAK_CORR:
        problems.append(f"audio does not match the clip's: peak normalised correlation {corr:.2f} < {MIN_PEAK_CORR:g} "
                        f"(at lag {lag_s:+.3f} s)")
    elif not matched:
        problems.append(f"audio runs {lag_s:+.3f} s against the clip's (peak correlation {corr:.2f}), "
                        f"beyond the ±{MAX_LAG_S:g} s that is corrected")
    # The length once the lag is removed; a lag that is not trusted is not removed.
    diff = int(n_frames) - (lag_frames if matched else 0) - int(n_frames_gt)
    if abs(diff) > MAX_LENGTH_DIFF_FRAMES:
        problems.append(_length_reason(n_frames, n_frames_gt, diff, lag_s if matched else 0.0))
    if problems:
        return ClipCheck(clip_id, MISMATCH, corr, lag_s, lag_frames, int(n_frames), int(n_frames_gt), diff,
                         "; ".join(problems))
    if lag_frames:
        return ClipCheck(clip_id, LAG_CORRECTED, corr, lag_s, lag_frames, int(n_frames), int(n_frames_gt), diff,
                         f"audio runs {lag_s:+.3f} s against the clip's (peak correlation {corr:.2f}): "
                         f"scored shifted by {lag_frames:+d} frames")
    return ClipCheck(clip_id, OK, corr, lag_s, 0, int(n_frames), int(n_frames_gt), diff, "")


def _length_reason(n_frames: int, n_frames_gt: int, diff: int, lag_s: float) -> str:
    after = f" once its {lag_s:+.3f} s lag is removed" if round(lag_s, 3) else ""
    return (f"{n_frames} frames against the clip's {n_frames_gt}: {abs(diff)} frames "
            f"{'longer' if diff > 0 else 'shorter'}{after}, more than the {MAX_LENGTH_DIFF_FRAMES} tolerated")
