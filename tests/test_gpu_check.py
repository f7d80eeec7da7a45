"""benchmarks/gpu_check.py on a machine without CUDA: it says so and exits non-zero, before any work."""
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible: the script would run its checks")
def test_gpu_check_refuses_without_cuda(tmp_path):
    out = tmp_path / "gpu_check.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--json", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 1
    assert "no CUDA device visible to torch" in r.stderr
    assert not out.exists()  # nothing written, nothing fabricated
