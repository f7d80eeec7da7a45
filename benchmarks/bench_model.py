"""Benchmark of the motion models: inference real-time factor and training speed on CPU.

    .venv/bin/python benchmarks/bench_model.py [--repeats 3]

Writes benchmarks/out/model.json and rewrites the "Model" section of
benchmarks/README.md (other sections are kept).

- Inference: 10 s of audio (500 log-mel frames of 80 bands at 50 Hz -> 250 motion
  frames at 25 fps, 50 expression coefficients), the whole clip through
  ``sample_long`` (windows of 100 frames) at each model's default number of DDIM
  steps; real-time factor = compute seconds per second of audio (target <= 0.05).
  One sample, and three samples in one batch (what `ksdiff infer` does).
- Training: steps per second at the TrainConfig defaults (batch 16, windows of
  100 frames + 10 previous frames), forward + backward + AdamW.
Models are the default KSDiffConfig per method (d_model 128; KSDiff's denoisers 2 layers, the
capacity-matched baselines 7 layers with FFN 4 x d_model; "params" column).

Timing: the process is pinned to one core with one torch thread and the numbers
are CPU seconds of that core, because the development machine is shared with
other jobs (wall-clock figures, also in the JSON, swing with its load). On an
idle 2-core machine one thread per process gives about these wall times; two
threads help the larger matrix products only modestly at these sizes.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ksdiff.models import KSDiffConfig, build_model, sample_long  # noqa: E402
from ksdiff.models.transcript import n_tokens  # noqa: E402
from ksdiff.config import TrainConfig  # noqa: E402
from readme import replace_section  # benchmarks/readme.py, beside this script

log = logging.getLogger("bench_model")
AUDIO_S = 10.0
FEAT_DIM, EXPR_DIM = 80, 50
VARIANTS = {
    "ksdiff": {},
    "ksdiff (no KEL)": {"use_kel": False},
    "diffspeaker": {"method": "diffspeaker"},
    "regression": {"method": "regression"},
    "ksdiff, 50 DDIM steps (DiffSpeaker's)": {"ddim_steps": 50},
}


def speech_batch(cfg: KSDiffConfig, n: int, seconds: float) -> dict:
    t = int(round(seconds * cfg.fps))
    m = t * cfg.feat_per_frame
    g = torch.Generator().manual_seed(0)
    return {
        "feat": torch.randn(n, m, cfg.feat_dim, generator=g),
        "feat_mask": torch.ones(n, m, dtype=torch.bool),
        "prosody": torch.randn(n, m, 2, generator=g),
        "words": torch.randint(0, n_tokens(cfg), (n, t), generator=g),
        "mask": torch.ones(n, t, dtype=torch.bool),
        "prev_head": torch.zeros(n, cfg.n_prev, cfg.head_dim),
        "prev_expr": torch.zeros(n, cfg.n_prev, cfg.expr_dim),
        "prev_mask": torch.zeros(n, cfg.n_prev, dtype=torch.bool),
    }


def train_batch(cfg: KSDiffConfig, n: int) -> dict:
    b = speech_batch(cfg, n, cfg.window / cfg.fps)
    g = torch.Generator().manual_seed(1)
    t = cfg.window
    b.update(head=torch.randn(n, t, cfg.head_dim, generator=g), expr=torch.randn(n, t, cfg.expr_dim, generator=g),
             prev_head=torch.randn(n, cfg.n_prev, cfg.head_dim, generator=g),
             prev_expr=torch.randn(n, cfg.n_prev, cfg.expr_dim, generator=g),
             prev_mask=torch.ones(n, cfg.n_prev, dtype=torch.bool))
    p = cfg.n_prev * cfg.feat_per_frame  # the previous frames' speech, as training windows carry it
    b.update(prev_feat=torch.randn(n, p, cfg.feat_dim, generator=g), prev_feat_mask=torch.ones(n, p, dtype=torch.bool),
             prev_prosody=torch.randn(n, p, 2, generator=g),
             prev_words=torch.randint(0, n_tokens(cfg), (n, cfg.n_prev), generator=g))
    return b


def timed(fn, repeats: int) -> tuple[float, float]:
    """(best CPU seconds, wall seconds of that run) over ``repeats`` calls after one warm-up."""
    fn()
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cur = (time.process_time() - c, time.perf_counter() - w)
        best = min(best, cur)
    return best


def bench_variant(overrides: dict, repeats: int, train_steps: int) -> dict:
    cfg = KSDiffConfig.from_dict({"feat_dim": FEAT_DIM, "expr_dim": EXPR_DIM, **overrides})
    torch.manual_seed(0)
    model = build_model(cfg)
    out = {"method": cfg.method, "ddim_steps": cfg.ddim_steps, "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    for n in (1, 3):
        batch = speech_batch(cfg, n, AUDIO_S)
        cpu, wall = timed(lambda: sample_long(model, batch, generator=torch.Generator().manual_seed(0)), repeats)
        out[f"rtf_{n}"] = cpu / AUDIO_S
        out[f"rtf_{n}_wall"] = wall / AUDIO_S
    tcfg = TrainConfig()
    batch = train_batch(cfg, tcfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr)
    model.train()

    def steps():
        for _ in range(train_steps):
            loss = model.loss(batch)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    cpu, wall = timed(steps, 1)
    out["train_steps_per_s"] = train_steps / cpu
    out["train_steps_per_s_wall"] = train_steps / wall
    out["demo_train_min"] = tcfg.steps / out["train_steps_per_s"] / 60
    return out


def write_readme(r: dict) -> None:
    m = r["machine"]
    tc = TrainConfig()
    rows = "\n".join(
        f"| {name} | {v['params_m']:.2f} | {v['ddim_steps'] if v['method'] != 'regression' else '-'} | "
        f"{v['rtf_1']:.3f} | {v['rtf_3']:.3f} | {v['train_steps_per_s']:.2f} | {v['demo_train_min']:.1f} |"
        for name, v in r["variants"].items()
    )
    md = f"""
Measured by `benchmarks/bench_model.py`: process pinned to one core of {m['cpus']} ({m['processor']}),
torch {m['torch']} with 1 thread; results in `benchmarks/out/model.json`. Times are CPU seconds of that
core (the machine is shared with other jobs, load average {m['load_average'][0]:.1f}; wall-clock
figures are in the JSON). Default model sizes (d_model 128, 4 heads; KSDiff's denoisers 2 layers,
the capacity-matched baselines 7 layers with FFN 4 x d_model), 80 log-mel bands, 50 expression
coefficients. Training includes KEL's free-running keyframe decoding (no ground truth) that
conditions KSDiff's denoisers.

- **RTF**: compute seconds per second of audio for {r['audio_s']:.0f} s of speech, whole clip
  through `sample_long` (windows of 100 frames), default DDIM steps; target <= 0.05.
  "x3" samples three motions in one batch (what `ksdiff infer` does per clip).
- **train steps/s**: TrainConfig defaults (batch {tc.batch_size}, windows of 100 + 10 previous
  frames), forward + backward + AdamW; "demo min" = the default {tc.steps} steps at that rate.

| model | params (M) | DDIM steps | RTF | RTF x3 | train steps/s | demo min |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}
"""
    readme = ROOT / "benchmarks" / "README.md"
    text = readme.read_text() if readme.exists() else ""
    readme.write_text(replace_section(text, "Model", md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "model.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    results = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "pinned_cores": 1, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "load_average": os.getloadavg()},
        "timing": "CPU seconds of one pinned core; *_wall fields are wall-clock on the shared machine",
        "audio_s": AUDIO_S,
        "variants": {},
    }
    for name, over in VARIANTS.items():
        log.info("%s", name)
        results["variants"][name] = bench_variant(over, args.repeats, args.train_steps)
        log.info("%s", results["variants"][name])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    if not args.no_readme:
        write_readme(results)
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
