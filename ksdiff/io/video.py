"""Video I/O: probing, frame reading at a target frame rate, mp4 writing with audio.

Reading and writing both use PyAV (FFmpeg's libraries): sequential threaded
decode keeps the timestamps, which we need to resample variable-frame-rate
sources to the motion rate, and writing libx264 + AAC in mp4 needs no ffmpeg
binary at run time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

log = logging.getLogger(__name__)

# libx264's threads, fixed. Its output depends on how many threads encode (frame threading changes what each
# frame may reference), and left to itself it takes one per core: a 1-core machine wrote another synthetic
# corpus than a 2-core one, and a 16-core one another again (measured, tests/test_video_threads.py), so every
# landmark and metric downstream moved with the core count. 2 is what every record here was made with (CI's
# machines have 2 cores); decoding stays threaded, since H.264 decoding is exact whatever the thread count.
ENCODER_THREADS = 2
# libx264's cpu-independent mode, for the same reason across processors. Left to itself x264 picks some
# algorithms by the CPU's instruction sets: its SSSE3-and-up "x9" intra-mode searches decide otherwise than the
# plain search, and its macroblock-tree cost propagation divides in float differently per instruction set (the
# AVX2 version refines rcpps's approximate reciprocal, whose bits differ between vendors; the AVX-512 version
# divides exactly). So the same frames made other bytes on an
# AVX2-only AMD EPYC than on an AVX-512 one (all 60 of the demo's synthetic videos) and other bytes with x264's
# assembly off. ``cpu-independent=1`` is x264's switch for exact reproducibility across CPUs: those two use
# their canonical C versions and the rest of x264's assembly is bit-exact with C (its checkasm), so auto and
# asm=0 write the same file (tests/test_video_cpu.py). Measured, it costs no encoding time.
X264_PARAMS = "cpu-independent=1"


class VideoError(RuntimeError):
    """The file cannot be read as a video (missing, empty, corrupt, no video stream)."""


@dataclass
class VideoInfo:
    path: str
    duration_s: float
    fps: float
    n_frames: int
    width: int
    height: int
    has_audio: bool
    audio_sample_rate: int
    audio_channels: int
    variable_fps: bool


def probe(path: str | Path) -> VideoInfo:
    """Container facts via PyAV; raises VideoError with the reason when unreadable."""
    import av

    path = Path(path)
    if not path.exists():
        raise VideoError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise VideoError("zero-byte file")
    try:
        with av.open(str(path)) as c:
            vs = [s for s in c.streams if s.type == "video"]
            if not vs:
                raise VideoError("no video stream")
            v = vs[0]
            a = next((s for s in c.streams if s.type == "audio"), None)
            fps = float(v.average_rate) if v.average_rate else 0.0
            if v.duration is not None and v.time_base is not None:
                duration = float(v.duration * v.time_base)
            elif c.duration is not None:
                duration = c.duration / 1e6
            else:
                duration = 0.0
            n = int(v.frames) if v.frames else int(round(duration * fps))
            # A stream whose guessed (base) rate differs from its average rate has
            # frames of unequal duration: variable frame rate.
            base = float(v.base_rate) if v.base_rate else fps
            vfr = bool(fps and base and abs(base - fps) / fps > 0.01)
            return VideoInfo(
                path=str(path),
                duration_s=duration,
                fps=fps,
                n_frames=n,
                width=int(v.codec_context.width),
                height=int(v.codec_context.height),
                has_audio=a is not None,
                audio_sample_rate=int(a.codec_context.sample_rate) if a is not None else 0,
                audio_channels=int(a.codec_context.channels) if a is not None else 0,
                variable_fps=vfr,
            )
    except VideoError:
        raise
    except Exception as e:  # PyAV raises many kinds (InvalidDataError, OSError, ...)
        raise VideoError(f"unreadable container: {type(e).__name__}: {e}") from e


def iter_frames(path: str | Path, fps: float | None = None) -> Iterator[tuple[int, float, int, np.ndarray]]:
    """Yield (frame, time_s, source_frame, rgb uint8 HxWx3) at ``fps``.

    With ``fps`` None the source frames are yielded as they are. Otherwise the
    source is resampled by timestamp: output frame k at time k/fps takes the
    latest source frame whose presentation time is <= k/fps (+ half a source
    frame), which is what a constant-rate re-encode does, and works for
    variable-frame-rate sources too.
    """
    import av

    path = str(path)
    try:
        container = av.open(path)
    except Exception as e:
        raise VideoError(f"unreadable container: {type(e).__name__}: {e}") from e
    with container:
        streams = container.streams.video
        if not streams:
            raise VideoError("no video stream")
        stream = streams[0]
        stream.thread_type = "AUTO"
        k = 0
        prev = None  # (time, index, rgb)
        src_i = -1
        try:
            for frame in container.decode(stream):
                src_i += 1
                t = float(frame.pts * stream.time_base) if frame.pts is not None else src_i / float(stream.average_rate or 25)
                rgb = frame.to_ndarray(format="rgb24")
                if fps is None:
                    yield src_i, t, src_i, rgb
                    continue
                # Emit every output frame whose time falls before this source frame.
                while prev is not None and k / fps < t - 1e-6:
                    yield k, k / fps, prev[1], prev[2]
                    k += 1
                prev = (t, src_i, rgb)
        except av.error.FFmpegError as e:
            if src_i < 0:
                raise VideoError(f"no decodable frames: {e}") from e
            log.warning("%s: decoding stopped after %d frames (%s)", path, src_i + 1, e)
        if fps is not None and prev is not None:
            # The last source frame lasts one source frame duration.
            rate = float(stream.average_rate or fps)
            end = prev[0] + 1.0 / rate
            while k / fps < end - 1e-6:
                yield k, k / fps, prev[1], prev[2]
                k += 1
        if src_i < 0:
            raise VideoError("no decodable frames")


def read_frames(path: str | Path, fps: float | None = None, max_frames: int | None = None) -> np.ndarray:
    """All frames as one (T, H, W, 3) uint8 array (see iter_frames)."""
    out = []
    for i, (_, _, _, rgb) in enumerate(iter_frames(path, fps)):
        if max_frames is not None and i >= max_frames:
            break
        out.append(rgb)
    return np.stack(out)


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 25,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    crf: int = 18,
    audio_bitrate: int = 128_000,
    faststart: bool = False,
) -> None:
    """Write RGB uint8 frames as H.264 (yuv420p) mp4, with mono/stereo float audio as AAC.

    ``audio``: float32 in [-1, 1], shape (n,) or (n, channels). Written to a
    temporary name and renamed, so a reader never sees half a file.
    ``faststart``: the index (moov) goes before the frames, so a browser starts
    playing a file served over HTTP before it has all of it (user-study pages).
    """
    import av

    from ksdiff.io.files import atomic_path

    with atomic_path(path, suffix=".mp4") as tmp:
        with av.open(tmp, mode="w", options={"movflags": "+faststart"} if faststart else {}) as c:
            vs = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            vs.pix_fmt = "yuv420p"
            vs.options = {"crf": str(crf), "preset": "veryfast", "threads": str(ENCODER_THREADS),
                          "x264-params": X264_PARAMS}
            ast = None
            if audio is not None:
                audio = np.asarray(audio, dtype=np.float32)
                if audio.ndim == 1:
                    audio = audio[:, None]
                layout = "mono" if audio.shape[1] == 1 else "stereo"
                ast = c.add_stream("aac", rate=sample_rate, layout=layout)
                ast.bit_rate = audio_bitrate
            first = True
            for rgb in frames:
                rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
                if first:
                    h, w = rgb.shape[:2]
                    vs.width, vs.height = w - w % 2, h - h % 2
                    first = False
                rgb = rgb[: vs.height, : vs.width]
                for pkt in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    c.mux(pkt)
            if first:
                raise VideoError("no frames to write")
            for pkt in vs.encode():
                c.mux(pkt)
            if ast is not None:
                # AAC wants planar float frames of 1024 samples; PyAV's resampler regroups.
                block = 1024 * 8
                pts = 0
                for i in range(0, len(audio), block):
                    chunk = np.ascontiguousarray(audio[i : i + block].T)
                    af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                    af.sample_rate = sample_rate
                    af.pts = pts
                    pts += chunk.shape[1]
                    for pkt in ast.encode(af):
                        c.mux(pkt)
                for pkt in ast.encode():
                    c.mux(pkt)
