"""benchmarks/gpu_check.py: on a machine without CUDA it says so and exits non-zero, before any work; with the CPU
in the GPU's place (--device cpu) it runs every check."""
import json
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


def test_gpu_check_runs_every_check_with_the_cpu_in_the_gpus_place(tmp_path):
    """The script itself, end to end (``--device cpu``: the CPU plays the GPU): every check runs and passes within
    the script's tolerances, and the float32 training, the same computation twice, agrees bit for bit. A lent
    GPU's short lease is not the place to find that the script broke."""
    out = tmp_path / "gpu_check.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--model", "tiny",
                        "--steps", "6", "--check-steps", "2", "--lse-windows", "20", "--json", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(out.read_text())
    checks = report["checks"]
    assert report["passed"] and set(checks) == {"training", "ddp", "inference", "lse"}
    assert checks["training"]["fp32_vs_cpu"]["max_rel_loss_diff"] == 0.0
    assert checks["training"]["amp"]["loss_last"] < checks["training"]["amp"]["loss_first"]
    assert checks["ddp"]["processes"] == 2 and checks["ddp"]["ok"]  # 2 gloo processes, the same curve
    assert checks["inference"]["clips"] >= 2 and checks["inference"]["ok"]  # batched = one clip at a time
    assert checks["lse"]["windows"] == 20 and checks["lse"]["ok"]
