"""Video I/O: frame-rate mapping (variable and other constant rates) and clear errors."""
from fractions import Fraction

import av
import numpy as np
import pytest

from ksdiff.io.video import VideoError, iter_frames, probe


def _write_vfr(path, times, size=32):
    """A video whose frame i (brightness 10*i) is shown from times[i] seconds."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            f = av.VideoFrame.from_ndarray(np.full((size, size, 3), 10 * i, np.uint8), format="rgb24")
            f.pts = int(round(t * 1000))
            f.time_base = Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_variable_frame_rate_is_resampled_by_timestamp(tmp_path):
    # Irregular frame times: 0, 0.1, 0.15, 0.4, 0.45 s (+ the last lasts ~one frame).
    times = [0.0, 0.1, 0.15, 0.4, 0.45]
    p = tmp_path / "vfr.mp4"
    _write_vfr(p, times)
    assert probe(p).variable_fps
    out = list(iter_frames(p, fps=25))
    assert [k for k, *_ in out] == list(range(len(out)))
    for k, t, src, rgb in out:
        assert np.isclose(t, k / 25)
        # the source frame shown at time t is the latest one that started by then
        expect = max(i for i, ti in enumerate(times) if ti <= t + 1e-6)
        assert src == expect, (k, t, src)
        assert abs(int(rgb[0, 0, 0]) - 10 * expect) <= 3


def test_other_constant_rate_maps_to_25fps(clip_factory):
    p = clip_factory("a.mp4", seconds=2.0, fps=50)
    out = list(iter_frames(p, fps=25))
    assert len(out) == 50
    assert [src for _, _, src, _ in out[:4]] == [0, 2, 4, 6]
    assert probe(p).fps == 50


def test_unreadable_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(VideoError, match="file not found"):
        probe(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="zero-byte"):
        probe(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00junk" * 100)
    with pytest.raises(VideoError, match="unreadable container"):
        probe(tmp_path / "junk.mp4")
