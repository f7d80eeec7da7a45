"""GPU readiness check: train the demo configuration on CUDA with mixed precision, then sample.

    .venv/bin/python benchmarks/gpu_check.py [--results results/synth] [--steps 300] [--amp bf16]
                                             [--methods ksdiff diffspeaker] [--out /tmp/gpu_check]

Meant to finish within 8 minutes on one H200 with the default arguments:

1. refuses to run (exit status 1, with the reason) when torch sees no CUDA device;
2. prepares the demo's dataset tables with snakemake when ``--results`` lacks them
   (synthetic corpus, preprocessing on the CPU cores; skipped when they exist);
3. trains each method of ``--methods`` for ``--steps`` steps with ``train.device=cuda``
   and ``train.amp`` (bf16 by default; fp16 uses the grad scaler), the demo's other
   training settings unchanged, and reads the validation lip error against the
   static mean face's from its train_log.csv;
4. samples every usable test clip (the leaderboard's ``infer.n_samples``) on the GPU
   and times it (real-time factor = seconds of compute per second of audio);
5. writes everything to ``benchmarks/out/gpu_check.json`` and prints it.

Nothing here tunes anything: it runs the same code as `ksdiff train` / `ksdiff infer`.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TABLES = ("qc.parquet", "splits.parquet", "stats.parquet", "basis.npz")


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible to torch (torch.cuda.is_available() is False; "
                 f"torch {torch.__version__}, built for CUDA {torch.version.cuda}). Run it on a GPU machine.")


def prepare(results: Path, cores: int) -> float:
    """Build the dataset tables with the workflow when missing; returns the seconds it took."""
    if all((results / t).exists() for t in TABLES):
        return 0.0
    t0 = time.perf_counter()
    targets = [os.path.relpath(results / t, ROOT) for t in TABLES]  # the rules' outputs are relative paths
    cmd = [str(ROOT / ".venv" / "bin" / "snakemake"), "--cores", str(cores), "--directory", str(ROOT), *targets]
    print("gpu_check: preparing the demo tables:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def val_rows(log_path: Path) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    with open(log_path, newline="") as f:
        for r in csv.DictReader(f):
            if r["phase"] in ("val", "model"):
                out.setdefault(r["metric"], {})[int(r["step"])] = float(r["value"])
    return out


def train_one(cfg: dict, results: Path, out_dir: Path, method: str) -> dict:
    import torch

    from ksdiff.training.loop import train

    model_path = out_dir / method / "model.pt"
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    train(cfg, str(results), str(model_path), method=method)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    rows = val_rows(model_path.parent / "train_log.csv")
    last = max(rows["loss"]) if "loss" in rows else None
    return {"train_s": seconds, "steps_per_s": cfg["train"]["steps"] / seconds, "model": str(model_path),
            "n_params": int(rows.get("n_params", {}).get(0, 0)),
            "val_lve": rows.get("lve", {}).get(last), "val_lve_best": min(rows["lve"].values()) if "lve" in rows else None,
            "lve_static": rows.get("lve_static", {}).get(0), "val_loss": rows.get("loss", {}).get(last),
            "seam_head": rows.get("seam_head", {}).get(last), "seam_expr": rows.get("seam_expr", {}).get(last),
            "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30}


def sample_test(model_path: Path, results: Path, cfg: dict) -> dict:
    import torch

    from ksdiff.data import dataset as ds
    from ksdiff.infer import build_from_checkpoint, load_checkpoint, sample_motion
    from ksdiff.models.transcript import tokenizer

    payload = load_checkpoint(model_path)
    model = build_from_checkpoint(payload, torch.device("cuda"))
    stats = ds.Stats.from_dict(payload["stats"])
    n_samples = int(cfg.get("infer", {}).get("n_samples", 3))
    compute, audio = 0.0, 0.0
    clips = ds.usable_clips(results, "test")
    for k, clip in enumerate(clips):
        a = ds.load_clip(results, clip, float(cfg["fps"]), tokenizer(model.cfg))
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        sample_motion(model, stats, a.feat, a.feat_valid, a.prosody, a.words, n_samples, k)
        torch.cuda.synchronize()
        compute += time.perf_counter() - t0
        audio += len(a.words) / float(cfg["fps"])
    return {"test_clips": len(clips), "n_samples": n_samples, "sample_s": compute,
            "rtf": compute / audio if audio else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--results", default=str(ROOT / "results" / "synth"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--amp", default="bf16", choices=("bf16", "fp16", "off"))
    ap.add_argument("--methods", nargs="+", default=["ksdiff", "diffspeaker", "regression"])
    ap.add_argument("--out", default="/tmp/gpu_check")
    ap.add_argument("--cores", type=int, default=16, help="CPU cores for preparing the tables")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "out" / "gpu_check.json"))
    args = ap.parse_args()
    require_cuda()

    import logging

    import torch

    from ksdiff import config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    t_start = time.perf_counter()
    results = Path(args.results)
    prep_s = prepare(results, args.cores)
    cfg = config.load(args.config)
    cfg["train"] = {**cfg.get("train", {}), "steps": args.steps, "device": "cuda", "amp": args.amp,
                    "num_threads": 0}
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
              "amp": args.amp, "bf16_supported": torch.cuda.is_bf16_supported(), "steps": args.steps,
              "prepare_s": prep_s, "methods": {}}
    out_dir = Path(args.out)
    for method in args.methods:
        torch.cuda.reset_peak_memory_stats()
        r = train_one(cfg, results, out_dir, method)
        r.update(sample_test(Path(r["model"]), results, cfg))
        report["methods"][method] = r
        print(f"gpu_check: {method}: {json.dumps(r)}", flush=True)
    report["total_s"] = time.perf_counter() - t_start
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
