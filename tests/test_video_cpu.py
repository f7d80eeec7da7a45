"""The same frames make the same mp4 on any processor: what ksdiff encodes does not depend on which of their
SIMD code paths libx264 and FFmpeg run.

Left to itself libx264 picks some algorithms by the CPU's instruction sets, and FFmpeg's SIMD scalers round
otherwise than its C one: an AVX2-only AMD EPYC wrote other bytes than an AVX-512 one for all 60 of the demo's
synthetic videos, and every landmark and metric downstream moved. ksdiff runs x264 cpu-independent
(ksdiff.io.video.X264_PARAMS) and scales HDTF clips bit-exactly (ksdiff.data.hdtf_prepare.cut_clip). A machine's
instruction sets cannot be changed in a test, so the tests switch the libraries' SIMD off instead (x264's ``asm=0``,
FFmpeg's ``-cpuflags 0``): equal to that plain C path, every processor's path is equal too. The audio is the
exception: FFmpeg's AAC encoder has SSE and SSE2 code only, which every x86-64 processor runs and which encodes
other bytes than its C code, so a whole file is compared at x86-64's baseline instead."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from ksdiff.data import hdtf_prepare as hp
from ksdiff.io import video
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not available")


@pytest.fixture(scope="module")
def frames():
    """A clip with motion and texture, where x264's mode decisions and macroblock tree have work to do."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), (0, 0), 3)
    return [np.roll(np.roll(base, int(5 * np.sin(i / 7)), 0), 3 * i, 1) for i in range(60)]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _libx264(frames, path, params: str) -> str:
    """Encode with write_video's settings but the given x264-params."""
    with av.open(str(path), mode="w") as c:
        vs = c.add_stream("libx264", rate=Fraction(25))
        vs.pix_fmt, vs.width, vs.height = "yuv420p", 256, 256
        vs.options = {"crf": "18", "preset": "veryfast", "threads": str(video.ENCODER_THREADS),
                      **({"x264-params": params} if params else {})}
        for f in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
    return _sha(path)


def test_write_video_makes_the_same_file_with_x264s_assembly_on_and_off(frames, tmp_path, monkeypatch):
    video.write_video(tmp_path / "auto.mp4", frames, 25)
    monkeypatch.setattr(video, "X264_PARAMS", video.X264_PARAMS + ":asm=0")  # x264's plain C everywhere
    video.write_video(tmp_path / "c.mp4", frames, 25)
    assert _sha(tmp_path / "auto.mp4") == _sha(tmp_path / "c.mp4")


def test_libx264_left_to_itself_would_not(frames, tmp_path):
    """Not a vacuous check: without cpu-independent, x264's SIMD code makes another file of the same frames."""
    assert _libx264(frames, tmp_path / "auto.mp4", "") != _libx264(frames, tmp_path / "c.mp4", "asm=0")


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    """A 640x480 "download" with moving detail and a tone, made by FFmpeg's own test sources."""
    path = tmp_path_factory.mktemp("download") / "src.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25:duration=2",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-crf", "10", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True)
    return path


def _video_sha(path) -> str:
    """sha256 of the file's H.264 stream (its packets), leaving the audio out."""
    h = hashlib.sha256()
    with av.open(str(path)) as c:
        for packet in c.demux(video=0):
            h.update(bytes(packet))
    return h.hexdigest()


def _cut(src, tmp_path, name: str, cpuflags: str | None, monkeypatch):
    """cut_clip's file from ``src``, with FFmpeg's CPU flags forced to ``cpuflags`` (None: detected)."""
    run = subprocess.run

    def with_flags(cmd, *a, **kw):
        if cpuflags is not None and cmd[0] == "ffmpeg":
            cmd = [cmd[0], "-cpuflags", cpuflags, *cmd[1:]]
        return run(cmd, *a, **kw)

    monkeypatch.setattr(hp.subprocess, "run", with_flags)
    out = tmp_path / f"{name}.mp4"
    hp.cut_clip(src, 0.5, 1.0, (40, 30, 400, 400), out, 256, 25, interlaced=False)
    monkeypatch.setattr(hp.subprocess, "run", run)
    return out


@needs_ffmpeg
def test_an_hdtf_clip_is_cut_to_the_same_video_with_ffmpegs_simd_off(download, tmp_path, monkeypatch):
    """Deinterlacing, cropping and scaling as FFmpeg's plain C code does them, then x264 cpu-independent."""
    detected = _cut(download, tmp_path, "detected", None, monkeypatch)
    assert _video_sha(detected) == _video_sha(_cut(download, tmp_path, "plain", "0", monkeypatch))


@needs_ffmpeg
def test_an_hdtf_clip_is_cut_to_the_same_file_on_x86_64s_baseline(download, tmp_path, monkeypatch):
    """The whole file, audio too, as a processor with only x86-64's own SIMD (SSE2) writes it. FFmpeg's AAC
    encoder has SSE and SSE2 code only, which every x86-64 processor runs; with FFmpeg's SIMD off entirely its
    C code encodes other bytes, which no x86-64 processor runs."""
    detected = _cut(download, tmp_path, "detected", None, monkeypatch)
    assert _sha(detected) == _sha(_cut(download, tmp_path, "baseline", "mmx+mmxext+sse+sse2", monkeypatch))


@needs_ffmpeg
def test_ffmpegs_lanczos_scaler_without_bitexact_would_not(download):
    """Not a vacuous check: the same crop and scale without accurate_rnd+bitexact gives other frames with
    FFmpeg's SIMD off."""
    def frames_of(cpuflags: list[str]) -> str:
        r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *cpuflags, "-ss", "0.5", "-t", "1.0", "-i",
                            str(download), "-map", "0:v:0", "-vf", "crop=400:400:40:30,scale=256:256:flags=lanczos",
                            "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"], capture_output=True, check=True)
        return hashlib.sha256(r.stdout).hexdigest()

    assert frames_of([]) != frames_of(["-cpuflags", "0"])
