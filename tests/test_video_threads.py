"""The same frames make the same mp4 on any core count: libx264's output depends on how many threads encode,
and left to itself it takes one per core, so a 1-core machine made another synthetic corpus than a 2-core one
(every landmark and metric downstream moved). ksdiff.io.video fixes the count (ENCODER_THREADS).

Each encode runs in a fresh interpreter held to a set of cores (sched_setaffinity), as on a smaller machine."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# A clip with motion (x264's frame threads change what a frame may reference only where there is motion to find).
_FRAMES = """
import numpy as np, cv2
rng = np.random.default_rng(0)
base = cv2.resize(np.clip(rng.normal(128, 60, (48, 48, 3)), 0, 255).astype(np.uint8), (256, 256),
                  interpolation=cv2.INTER_CUBIC)
frames = [np.roll(np.roll(base, int(5 * np.sin(i / 7)), 0), 3 * i, 1) for i in range(60)]
"""
OURS = _FRAMES + """
import sys
from ksdiff.io.video import write_video
write_video(sys.argv[1], frames, 25)
"""
# libx264 left to choose its own thread count: what write_video did before the count was fixed.
LIBX264_DEFAULT = _FRAMES + """
import sys, av
from fractions import Fraction
with av.open(sys.argv[1], mode="w") as c:
    vs = c.add_stream("libx264", rate=Fraction(25))
    vs.pix_fmt, vs.width, vs.height = "yuv420p", 256, 256
    vs.options = {"crf": "18", "preset": "veryfast"}
    for f in frames:
        for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            c.mux(p)
    for p in vs.encode():
        c.mux(p)
"""


def _encode(code: str, path, cores: set) -> str:
    r = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: os.sched_setaffinity(0, cores))
    assert r.returncode == 0, r.stderr[-2000:]
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def core_sets():
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("one core here: nothing to compare a one-core encode with")
    return {cores[0]}, set(cores[:2])


def test_write_video_makes_the_same_file_on_one_core_and_on_two(core_sets, tmp_path):
    one, two = (_encode(OURS, tmp_path / f"{n}.mp4", c) for n, c in zip(("one", "two"), core_sets))
    assert one == two


def test_libx264_left_to_itself_would_not(core_sets, tmp_path):
    """Not a vacuous check: with libx264's own thread count the same frames give another file on one core."""
    one, two = (_encode(LIBX264_DEFAULT, tmp_path / f"{n}.mp4", c) for n, c in zip(("one", "two"), core_sets))
    assert one != two
