"""Training under torchrun (torch DDP, gloo on the CPU): N processes train the model one process trains
from the same global batch, and a run whose rank is killed resumes exactly.

Equality is up to float summation order, not bit for bit in general: DDP all-reduces the ranks' gradients
(a sum in the backend's order, then a division by the process count) where one process accumulates its
micro-batches' gradients in place; each micro-batch's own computation is the same in both (same windows,
same padding, same noise seed). Tolerance: rtol 1e-5 (float32 gradients over 12 AdamW steps).
"""
from __future__ import annotations

import csv
import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fabricate import fabricate_with_stats, tiny_model_cfg
from ksdiff import config, plan
from ksdiff.training import loop
from tests.conftest import REPO

STEPS = 12


def make_cfg(**train):
    t = dict(steps=STEPS, batch_size=4, val_every=6, ckpt_every=6, log_every=1, warmup_steps=2, lr=1e-3,
             num_threads=1)
    t.update(train)
    return config.defaults(model=tiny_model_cfg(), train=t)


def run_env() -> dict:
    """This interpreter's bin/ (ksdiff, torchrun) first on PATH, as the workflow puts its environment's."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO))


def run(cmd: str, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=300, cwd=REPO, env=run_env())
    if check:
        assert r.returncode == 0, r.stderr[-4000:]
    return r


def train_args(results, out, cfg) -> str:
    return f"train --results {results} --out {out} --opts {shlex.quote(json.dumps(cfg))}"


def workflow_train(results, out, cfg) -> subprocess.CompletedProcess:
    """The train rule's command for ``cfg`` (ksdiff.plan.train_launch): torchrun when it asks for processes."""
    return run(f"{plan.train_launch(cfg)} {train_args(results, out, cfg)}")


def log_rows(out):
    with open(out.parent / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def curve(out, phase, metric="loss"):
    return {int(r["step"]): float(r["value"]) for r in log_rows(out) if r["phase"] == phase and r["metric"] == metric}


def max_rel_diff(a: dict, b: dict) -> float:
    return max(float(((a[k] - b[k]).abs() / b[k].abs().clamp(min=1e-6)).max()) for k in a)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    # Clips of 1-3 s beside 40-frame windows: some windows are padded, so micro-batches hold different
    # numbers of valid frames and the loss weights are not all equal.
    return fabricate_with_stats(tmp_path_factory.mktemp("results"), durations=(1.0, 3.0))


@pytest.fixture(scope="module")
def two_procs(results, tmp_path_factory):
    """An uninterrupted 2-process run with the default micro_batches (0: one per process)."""
    out = tmp_path_factory.mktemp("ddp2") / "model.pt"
    workflow_train(results, out, make_cfg(nproc_per_node=2))
    return out


def test_one_process_is_launched_as_before():
    assert plan.train_launch(make_cfg()) == "ksdiff"
    assert plan.train_launch(make_cfg(nproc_per_node=2)).startswith("torchrun --standalone --nproc_per_node 2 ")


# slow: each torchrun starts 2 interpreters that import torch and load the clips (~10 s on 2 cores)
@pytest.mark.slow
def test_two_processes_train_the_one_process_model(results, two_procs, tmp_path):
    one = tmp_path / "one" / "model.pt"
    loop.train(make_cfg(micro_batches=2), str(results), str(one))  # the same global batch in 2 micro-batches
    a, b = curve(two_procs, "train"), curve(one, "train")
    assert sorted(a) == list(range(1, STEPS + 1)) and a == pytest.approx(b, rel=1e-5)
    assert curve(two_procs, "val") == pytest.approx(curve(one, "val"), rel=1e-5)
    pa = torch.load(two_procs, weights_only=True)
    pb = torch.load(one, weights_only=True)
    assert pa["step"] == pb["step"] and pa["trained_steps"] == STEPS
    for k in pb["model"]:
        torch.testing.assert_close(pa["model"][k], pb["model"][k], rtol=1e-5, atol=1e-6, msg=k)
    print(f"1 vs 2 processes: train loss max rel diff {max(abs(a[s] - b[s]) / abs(b[s]) for s in a):.3g}, "
          f"weights max rel diff {max_rel_diff(pa['model'], pb['model']):.3g}")
    # rank 0 alone wrote the log and the checkpoints
    rows = [(r["step"], r["phase"], r["metric"]) for r in log_rows(two_procs)]
    assert len(rows) == len(set(rows))
    assert sorted(p.name for p in (two_procs.parent / "checkpoints").iterdir()) == ["step-00000006.pt",
                                                                                   "step-00000012.pt"]
    # and the micro-batches matter: one stream of noise for the whole batch is another trajectory
    plain = tmp_path / "plain" / "model.pt"
    loop.train(make_cfg(steps=3), str(results), str(plain))
    assert curve(plain, "train")[3] != pytest.approx(b[3], rel=1e-3)


@pytest.mark.slow
def test_a_killed_rank_resumes_to_the_uninterrupted_model(results, two_procs, tmp_path):
    out = tmp_path / "killed" / "model.pt"
    # rank 1 is SIGKILLed as step 9 begins; rank 0 wrote the step-6 checkpoint before step 7's all-reduce
    worker = REPO / "tests" / "ddp_kill_worker.py"
    r = run(f"torchrun --standalone --nproc_per_node 2 {worker} 1 9 {train_args(results, out, make_cfg())}",
            check=False)
    assert r.returncode != 0 and "SIGKILL" in r.stderr and not out.exists(), r.stderr[-3000:]
    assert [p.name for p in (out.parent / "checkpoints").iterdir()] == ["step-00000006.pt"]
    workflow_train(results, out, make_cfg(nproc_per_node=2))  # the rerun
    a = torch.load(two_procs, weights_only=True)["model"]
    b = torch.load(out, weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    assert curve(out, "train") == pytest.approx(curve(two_procs, "train"), rel=1e-5)
    rows = [(r["step"], r["phase"], r["metric"]) for r in log_rows(out)]
    assert len(rows) == len(set(rows))  # the killed run's rows past step 6 were dropped, not duplicated


@pytest.mark.slow
def test_two_nodes_meet_at_the_rendezvous_endpoint(results, two_procs, tmp_path):
    """The train rule's multi-node line (train.nnodes 2, one process each), both "nodes" on this machine:
    srun would start one torchrun per node; here two shells do, and they train the 2-process model."""
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "nodes" / "model.pt"
    cfg = make_cfg(nnodes=2, rdzv_endpoint=f"127.0.0.1:{port}")
    line = plan.train_launch(cfg)
    assert line.startswith("srun --ntasks-per-node=1 torchrun --nnodes 2 --nproc_per_node 1 ")
    cmd = f"{line.removeprefix('srun --ntasks-per-node=1 ')} {train_args(results, out, cfg)}"
    logs = [tmp_path / f"node{i}.log" for i in range(2)]  # files, not pipes: a full pipe would stall a node
    nodes = [subprocess.Popen(f"{cmd} > {log} 2>&1", shell=True, cwd=REPO, env=dict(run_env(), SLURM_JOB_ID="4242"))
             for log in logs]
    for node in nodes:
        node.wait(timeout=300)
    assert [node.returncode for node in nodes] == [0, 0], "".join(log.read_text()[-3000:] for log in logs)
    a = torch.load(two_procs, weights_only=True)["model"]
    b = torch.load(out, weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
