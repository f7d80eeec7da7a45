"""What pinned numerics cost: training steps/s and LSE throughput, pinned against fast, one run each.

    .venv/bin/python benchmarks/bench_numerics.py [--steps 40] [--repeats 3]

Each mode runs in its own interpreter (the libraries read their code paths once, when they load), one
after the other on the same machine, interleaved over ``--repeats`` rounds, and the medians are kept:
this machine is shared, so one measurement is noise. Measured per mode, on one thread (as the workflow
runs them):
- the SyncNet expert's training (syncnet_python's S, batch 16, synthetic crops): steps/s;
- KSDiff's training with the demo's model config (fabricated tables with 80 log-mel-sized features, batch 16): steps/s;
- LSE scoring with the expert: 5-frame video windows embedded per second (the costly half of LSE).
Rates are per CPU second of the measuring process (time.process_time), not wall time: on one thread that is
the work itself, while wall time on this shared machine moves with the other jobs' load (a wall-clock
version of this script gave LSE 0.41x pinned/fast under load where CPU time gives about 0.75x).
Writes benchmarks/out/numerics.json and the "Numerics: pinned against fast" section of benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from readme import write_section  # noqa: E402  benchmarks/readme.py, beside this script

# One mode's measurement, run as `python -c CHILD mode steps` in a fresh interpreter.
CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
from ksdiff import numerics
mode, steps = sys.argv[1], int(sys.argv[2])
numerics.pin(mode)
import numpy as np, torch
sys.path.insert(0, sys.argv[3])
from fabricate import fabricate_with_stats
from ksdiff import config
from ksdiff.metrics.syncnet import embed_video
from ksdiff.metrics.syncnet_train import ExpertConfig, synthetic_sync_clips, train_expert
from ksdiff.training.loop import train
torch.set_num_threads(1)
out = {"numerics": None}
clips = synthetic_sync_clips(n_clips=4, n_frames=60, seed=0)
t = time.process_time()
model, _ = train_expert(clips, ExpertConfig(steps=steps, batch_size=16, log_every=10**6))
out["expert_steps_per_s"] = steps / (time.process_time() - t)
crops = np.ascontiguousarray(clips[0][0][..., ::-1])
n_win = len(crops) - 5
with torch.no_grad():
    t = time.process_time()
    for _ in range(3):
        embed_video(model, crops, n_win)
out["lse_windows_per_s"] = 3 * n_win / (time.process_time() - t)
with tempfile.TemporaryDirectory() as tmp:
    results = fabricate_with_stats(Path(tmp) / "r", feat_dim=80, durations=(4.0, 8.0))
    cfg = config.defaults(numerics=mode, train=dict(steps=steps, batch_size=16, val_every=10**6, ckpt_every=10**6,
                                                    log_every=10**6, num_threads=1))
    t = time.process_time()
    train(cfg, str(results), str(Path(tmp) / "m" / "model.pt"))
    out["model_steps_per_s"] = steps / (time.process_time() - t)
out["numerics"] = numerics.describe()
print(json.dumps(out))
"""

METRICS = (("expert_steps_per_s", "SyncNet expert training, steps/s"),
           ("model_steps_per_s", "KSDiff training (demo config), steps/s"),
           ("lse_windows_per_s", "LSE scoring, video windows/s"))


def measure(mode: str, steps: int) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, mode, str(steps), str(ROOT / "tests")],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"{mode}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs = {"pinned": [], "fast": []}
    for _ in range(args.repeats):
        for mode in runs:  # interleaved, so a change in the machine's load hits both modes
            runs[mode].append(measure(mode, args.steps))
    med = {m: {k: statistics.median(r[k] for r in rs) for k, _ in METRICS} for m, rs in runs.items()}
    res = {"date": time.strftime("%Y-%m-%d"), "cpu": platform.processor() or platform.machine(),
           "cpu_model": _cpu_model(), "steps": args.steps, "repeats": args.repeats, "median": med,
           "numerics": {m: rs[0]["numerics"] for m, rs in runs.items()}, "runs": runs}
    out = ROOT / "benchmarks" / "out" / "numerics.json"
    out.write_text(json.dumps(res, indent=1))
    rows = "\n".join(f"| {label} | {med['pinned'][k]:.2f} | {med['fast'][k]:.2f} | {med['pinned'][k] / med['fast'][k]:.2f} |"
                     for k, label in METRICS)
    body = f"""`benchmarks/bench_numerics.py`: the cost of `numerics: pinned` (the default; ksdiff/numerics.py) against
`numerics: fast`, each in its own interpreter on one thread, interleaved over {args.repeats} rounds, medians of rates per
CPU second (process time, steadier than wall time on a shared machine); measured on
{res['date']} on {res['cpu_model']} (fast runs ATen {res['numerics']['fast'].get('aten_capability')}, pinned
ATen {res['numerics']['pinned'].get('aten_capability')}). {args.steps} steps per training measurement.

| measurement | pinned | fast | pinned / fast |
|---|---:|---:|---:|
{rows}
"""
    write_section("Numerics: pinned against fast", body)
    print(body)
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                return line.split(":", 1)[1].strip() + (" (AVX-512)" if " avx512f" in flags else " (AVX2, no AVX-512)")
    except OSError:
        pass
    return platform.machine()


if __name__ == "__main__":
    sys.exit(main())
