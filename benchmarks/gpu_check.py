"""GPU check: ksdiff's CUDA paths against their CPU results, in one short run on a lent GPU.

    .venv/bin/python benchmarks/gpu_check.py [--steps 60] [--amp bf16] [--model default|tiny]
                                             [--json benchmarks/out/gpu_check.json]

Exits with status 1 and the reason when torch sees no CUDA device (tests/test_gpu_check.py). Otherwise it
runs, on the test suite's fabricated results (tests/fabricate.py: 12 short clips, made in seconds, no
preprocessing) or on ``--results`` (e.g. the demo's results/synth), the same code as `ksdiff train` /
`ksdiff infer` / `ksdiff evaluate`:

1. training on one GPU (ksdiff.training, train.device=cuda):
   a. float32 (train.amp off) for ``--check-steps`` steps against the same steps on the CPU (same seed, same
      batches), with the regression model and no dropout or condition dropping (random numbers drawn on a
      GPU differ from the CPU's): the loss curves' largest relative difference (not bit-equal: two devices
      sum in other orders);
   b. mixed precision (``--amp``) for ``--steps`` steps, the global batch in 2 micro-batches (as 2 DDP
      processes split it): steps/s, peak memory, first and last loss;
2. DDP on 2 GPUs (torchrun --standalone --nproc_per_node 2 -m ksdiff train, nccl) with 1b's global batch:
   its loss curve against 1b's (skipped, with the reason, when fewer than 2 GPUs are visible);
3. batched inference: every test clip sampled in one batch on the GPU (infer.batch_size) against each clip
   sampled alone on the CPU, model of 1b: largest difference of the normalised motion; seconds per second;
4. GPU LSE: SyncNet (random weights: the cost and the check do not depend on them) on ``--lse-windows``
   windows of random crops, lse() on the GPU against the CPU: largest relative difference of the per-offset
   distances (1e-4 required) and windows/s on each.

Writes ``--json`` and prints it; the exit status is 0 only when every check that ran passed its tolerance.
``--device cpu`` runs the same script with the CPU in the GPU's place (a smoke run of the script itself).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from ksdiff import numerics  # noqa: E402

numerics.pin("pinned")  # before torch loads: the CPU references are the pinned numbers

TOL = {"train_fp32": 1e-3, "ddp": 5e-2, "infer": 1e-3, "lse": 1e-4}
DETERMINISTIC = {"method": "regression", "dropout": 0.0, "p_uncond": 0.0, "p_drop_prev": 0.0, "expr_guidance": 1.0}


def require_cuda(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible to torch (torch.cuda.is_available() is False; "
                 f"torch {torch.__version__}, built for CUDA {torch.version.cuda}). Run it on a GPU machine.")


def losses(model_path: Path) -> dict[int, float]:
    with open(model_path.parent / "train_log.csv", newline="") as f:
        return {int(r["step"]): float(r["value"]) for r in csv.DictReader(f) if r["phase"] == "train" and r["metric"] == "loss"}


def max_rel(a: dict, b: dict) -> float:
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-6) for k in b)


def train_cfg(model_cfg: dict, steps: int, device: str, amp: str, **train) -> dict:
    from ksdiff import config

    t = dict(steps=steps, batch_size=16, val_every=steps, ckpt_every=steps, log_every=1, warmup_steps=2, lr=1e-3,
             device=device, amp=amp, num_threads=0, **train)
    return config.defaults(model=model_cfg, train=t, infer={"num_threads": 0, "n_samples": 2})


def timed_train(cfg: dict, results: Path, out: Path) -> float:
    import torch

    from ksdiff.training.loop import train

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    train(cfg, str(results), str(out))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def check_training(args, model_cfg: dict, results: Path, work: Path) -> dict:
    import torch

    out = {}
    # the comparison needs a training that draws no random numbers on the device (diffusion noise, dropout,
    # condition dropping are drawn where the model runs): the regression model without any dropping
    exact = {**model_cfg, **DETERMINISTIC}
    fp32 = {dev: work / f"fp32_{dev}" / "model.pt" for dev in ("cpu", args.device)}
    for dev, path in fp32.items():
        timed_train(train_cfg(exact, args.check_steps, dev, "off"), results, path)
    diff = max_rel(losses(fp32[args.device]), losses(fp32["cpu"]))
    out["fp32_vs_cpu"] = {"steps": args.check_steps, "max_rel_loss_diff": diff, "ok": diff < TOL["train_fp32"]}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    amp = work / "amp" / "model.pt"
    # in 2 micro-batches: the same arithmetic as the 2 DDP processes of check_ddp, which compares with it
    seconds = timed_train(train_cfg(model_cfg, args.steps, args.device, args.amp, micro_batches=2), results, amp)
    curve = losses(amp)
    out["amp"] = {"amp": args.amp, "steps": args.steps, "steps_per_s": args.steps / seconds,
                  "loss_first": curve[min(curve)], "loss_last": curve[max(curve)],
                  "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
                  "ok": curve[max(curve)] < curve[min(curve)]}
    out["model"] = str(amp)
    return out


def check_ddp(args, model_cfg: dict, results: Path, work: Path, one_gpu: Path) -> dict:
    import torch

    n_gpu = torch.cuda.device_count() if args.device == "cuda" else 2  # the CPU smoke run: 2 gloo processes
    if n_gpu < 2:
        return {"skipped": f"{n_gpu} GPU visible: DDP needs 2"}
    cfg = train_cfg(model_cfg, args.steps, args.device if args.device == "cpu" else "cuda", args.amp, nproc_per_node=2)
    out = work / "ddp" / "model.pt"
    # ksdiff from this checkout, and whatever PYTHONPATH already holds (a lent GPU's carried wheels, /tmp/site)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    cmd = (f"torchrun --standalone --nproc_per_node 2 -m ksdiff train --results {results} --out {out} "
           f"--opts {shlex.quote(json.dumps(cfg))}")
    t0 = time.perf_counter()
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode:
        return {"error": r.stderr[-3000:], "ok": False}
    diff = max_rel(losses(out), losses(one_gpu))
    return {"processes": 2, "seconds": time.perf_counter() - t0, "max_rel_loss_diff_vs_1_gpu": diff,
            "ok": diff < TOL["ddp"]}


def check_inference(args, model_path: Path, results: Path, fps: float) -> dict:
    import numpy as np
    import torch

    from ksdiff.data import clip_arrays as ca
    from ksdiff.infer import build_from_checkpoint, load_checkpoint
    from ksdiff.infer_sampling import ClipSpeech, clip_seed, sample_clips
    from ksdiff.models.transcript import tokenizer

    payload = load_checkpoint(model_path)
    stats = ca.Stats.from_dict(payload["stats"])
    models = {dev: build_from_checkpoint(payload, torch.device(dev)) for dev in ("cpu", args.device)}
    clips = ca.usable_clips(results, "test")
    speech = []
    for clip in clips:
        a = ca.load_clip(results, clip, fps, tokenizer(models["cpu"].cfg))
        speech.append(ClipSpeech(a.feat, a.feat_valid, a.prosody, a.words, clip_seed(0, clip)))
    cpu = [sample_clips(models["cpu"], stats, [x], 2)[0] for x in speech]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    batched = sample_clips(models[args.device], stats, speech, 2)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    diff = max(float(np.abs(g - c).max()) for (gh, ge), (ch, ce) in zip(batched, cpu) for g, c in ((gh, ch), (ge, ce)))
    audio_s = sum(len(x.words) for x in speech) / fps
    return {"clips": len(clips), "n_samples": 2, "batch_s": seconds, "seconds_per_audio_second": seconds / audio_s,
            "max_abs_diff_vs_cpu_one_clip_at_a_time": diff, "ok": diff < TOL["infer"]}


def check_lse(args) -> dict:
    import numpy as np
    import torch

    from ksdiff.metrics import syncnet as sn

    torch.manual_seed(0)
    model = sn.build_syncnet().eval()
    rng = np.random.default_rng(0)
    n = args.lse_windows
    crops = rng.integers(0, 256, (n + 5, 224, 224, 3), dtype=np.uint8)
    wav = (0.2 * rng.standard_normal((n + 5) * sn.SAMPLES_PER_FRAME)).astype(np.float32)
    out = {"windows": n}
    for dev in ("cpu", args.device):
        sn.lse(model.to(dev), crops[:40], wav[: 40 * sn.SAMPLES_PER_FRAME])  # warm-up
        t0 = time.perf_counter()
        out[dev] = sn.lse(model.to(dev), crops, wav)
        out[f"{dev}_windows_per_s"] = out[dev]["n_windows"] / (time.perf_counter() - t0)
    diff = float(np.max(np.abs(out[args.device]["dists"] - out["cpu"]["dists"]) / np.abs(out["cpu"]["dists"])))
    for dev in ("cpu", args.device):
        out[dev] = {k: out[dev][k] for k in ("lse_d", "lse_c", "offset")}
    out.update(max_rel_dists_diff=diff, ok=diff < TOL["lse"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=None, help="a results folder with stats and packs (default: fabricated)")
    ap.add_argument("--model", default="default", choices=("default", "tiny"), help="the config's model or the tests' tiny one")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--check-steps", type=int, default=4)
    ap.add_argument("--amp", default="bf16", choices=("bf16", "fp16", "off"))
    ap.add_argument("--lse-windows", type=int, default=500)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help=argparse.SUPPRESS)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "out" / "gpu_check.json"))
    args = ap.parse_args()
    require_cuda(args.device)

    import torch

    from fabricate import fabricate_with_stats, tiny_model_cfg

    numerics.torch_settings("pinned")
    t_start = time.perf_counter()
    report = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu (smoke run)",
              "gpus": torch.cuda.device_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
              "numerics": numerics.describe(), "tolerances": TOL}
    model_cfg = tiny_model_cfg() if args.model == "tiny" else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = Path(args.results) if args.results else fabricate_with_stats(work / "results")
        report["results"] = args.results or "fabricated (tests/fabricate.py)"
        checks = {}
        for name, run in (("training", lambda: check_training(args, model_cfg, results, work)),
                          ("ddp", lambda: check_ddp(args, model_cfg, results, work, work / "amp" / "model.pt")),
                          ("inference", lambda: check_inference(args, work / "amp" / "model.pt", results, float(train_cfg(model_cfg, 1, "cpu", "off")["fps"]))),
                          ("lse", lambda: check_lse(args))):
            t0 = time.perf_counter()
            try:
                checks[name] = run()
            except Exception as e:  # one failed check never hides the others
                checks[name] = {"error": f"{type(e).__name__}: {e}", "ok": False}
            checks[name]["seconds"] = time.perf_counter() - t0
            print(f"gpu_check: {name}: {json.dumps(checks[name], default=str)}", flush=True)
        report["checks"] = checks
    report["total_s"] = time.perf_counter() - t_start
    oks = [c.get("ok", True) for c in report["checks"].values()]
    oks += [c.get("ok", True) for c in report["checks"].get("training", {}).values() if isinstance(c, dict)]
    report["passed"] = all(oks)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    return 0 if report["passed"] else 2


if __name__ == "__main__":
    sys.exit(main())
