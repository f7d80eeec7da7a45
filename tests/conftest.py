import os
import shutil
from pathlib import Path

from ksdiff import numerics

# Before numpy and torch load (their CPU code paths are chosen then): the suite runs with the workflow's
# default numerics, so a verdict does not depend on the processor. KSDIFF_NUMERICS=fast tries the other.
numerics.pin(os.environ.get("KSDIFF_NUMERICS", numerics.DEFAULT_MODE))
# Thread counts too, for the libraries that honour them whatever the core count: torch's (OpenMP, MKL) at 2, the
# count the records were made with. OpenBLAS, which never runs more threads than there are cores, runs one thread
# under the pin (ksdiff/numerics.py); libx264 encodes with a fixed count (ksdiff.io.video.ENCODER_THREADS). Held
# to one core (taskset -c 1), the suite computes the numbers it computes on two.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "2"
# Under pytest-xdist (README command 2: two workers on two cores) each worker's two OpenMP threads share the cores
# with the other worker's: threads that finish a parallel region sleep instead of spinning on a core the other
# worker needs. Only how threads wait: no number changes.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402,F401  loaded here so that its pinned settings hold in every test

numerics.torch_settings()

# transformers (the pretrained-feature tests) imports torchvision whenever it is installed; where its C++
# extension does not load (PyPI's CUDA wheel beside CPU torch), only ksdiff.metrics.tv_compat's import works.
from ksdiff.metrics.tv_compat import import_torchvision  # noqa: E402

import_torchvision()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """Files with a slow (end-to-end) test first, each file's tests in their order: under pytest-xdist's
    --dist loadfile the two workers start on the files of several minutes and the many short ones fill in
    behind them, rather than one worker running a ten-minute workflow alone at the end."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture
def shared_hdtf():
    """The real HDTF clips beside the project, or a skip when they are absent."""
    d = SHARED_DATA / "hdtf"
    if not d.is_dir():
        pytest.skip("../shared/data/hdtf is not present")
    return d


def make_clip(path, seconds=1.5, fps=25, size=64, audio=True, sr=16000, seed=0):
    """A small valid mp4 (moving gradient + tone) for tests that need a real container."""
    from ksdiff.io.video import write_video

    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    frames = [np.roll(base, i, axis=1) for i in range(n)]
    wav = 0.2 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr).astype(np.float32) if audio else None
    write_video(path, frames, fps, wav, sr)
    return Path(path)


@pytest.fixture
def clip_factory(tmp_path):
    def factory(name, **kw):
        return make_clip(tmp_path / name, **kw)

    return factory


@pytest.fixture
def has_ffmpeg():
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg binary not installed")
