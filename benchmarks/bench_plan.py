"""Benchmark of workflow planning at VoxCeleb2 scale, and the shard jobs' overhead.

    .venv/bin/python benchmarks/bench_plan.py [--sizes 1000 10000 100000 1100000] [--results results/synth]
    .venv/bin/python benchmarks/bench_plan.py --sizes --results results/synth   # the overhead alone

Writes benchmarks/out/plan.json and rewrites the "Workflow planning" section of
benchmarks/README.md (other sections are kept).

Planning: for each size, a dataset root of that many empty videos (HDTF naming,
40 clips per speaker) and the state a real run has after its listing checkpoint:
the listing is written by the workflow's own `listing` rule (a real `snakemake`
run of that one target, timed as ``listing_s``), then `snakemake -n` plans the
whole DAG up to the next checkpoint (test_shards): probe, manifest, the six
per-clip steps per shard, basis, qc, splits, stats. ``plan_s`` is its wall time
and ``peak_mb`` its maximum resident set size (GNU time), ``n_jobs`` the planned jobs.

Overhead (with ``--results``, a finished run's results/{dataset}): every per-clip
step's shard command on a shard whose clips are all current, so the job does
nothing but start, check each clip and write its summary: the fixed start-up
and the cost per clip, amortised over a shard of the
configured size. Start-up: the job's wall time less its loop's; per clip: the loop's
own time per clip (in the shard summary). Wall time on a shared 2-core machine, medians of 3.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from readme import write_section  # noqa: E402  benchmarks/readme.py, beside this script

BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
CLIPS_PER_SPEAKER = 40
STAGES = ("audio", "transcript", "landmarks", "pose", "coeffs", "features")


def make_root(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"WRA_Spk{i // CLIPS_PER_SPEAKER:06d}_{i % CLIPS_PER_SPEAKER:03d}.mp4").touch()


def _timed(cmd: list[str], cwd: Path) -> tuple[float, float, float, str]:
    """(wall s, CPU s (user + system), peak RSS MB, output) of a command, through GNU time."""
    t = cwd / "time.txt"
    r = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(t)] + cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    wall, user, system, kb = t.read_text().split()[-4:]
    return float(wall), float(user) + float(system), int(kb) / 1024, r.stdout + r.stderr


def plan(n: int, shard_size: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-plan-{n}-", dir="/tmp") as d:
        wd = Path(d)
        t0 = time.perf_counter()
        make_root(wd / "videos", n)
        make_s = time.perf_counter() - t0
        cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
        cfg["datasets"] = [{"name": "bench", "root": "videos", "layout": "hdtf"}]
        if shard_size:
            cfg["shard_size"] = shard_size
        (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
        base = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(wd), "--cores", "1"]
        listing_s, _, _, _ = _timed(base + ["results/bench/listing.parquet"], wd)
        plan_s, cpu_s, peak_mb, out = _timed(base + ["-n", "--quiet", "rules"], wd)
        jobs = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                jobs[parts[0]] = int(parts[1])
        rec = {"n_clips": n, "plan_s": round(plan_s, 2), "plan_cpu_s": round(cpu_s, 2), "peak_mb": round(peak_mb), "n_jobs": jobs.get("total"),
               "listing_s": round(listing_s, 1), "make_videos_s": round(make_s, 1)}
        print(json.dumps(rec), flush=True)
        return rec


def overhead(results: Path, reps: int = 3) -> dict:
    """Seconds of a shard job whose clips are all current: start-up, and per clip (the loop's
    own per-clip time, from the shard summary: the check that a clip is current)."""
    import pyarrow.parquet as pq

    from ksdiff import config

    cfg = config.load(ROOT / "config.yaml")
    part = sorted((results / "manifest").glob("*.parquet"))[0]
    n = pq.read_metadata(part).num_rows
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-", dir="/tmp") as d:
        for stage in STAGES:
            summary = Path(d) / f"{stage}.parquet"
            cmd = [str(BIN / "python"), "-m", "ksdiff", "shard", "--stage", stage, "--manifest", str(part),
                   "--results", str(results), "--out", str(summary), "--opts", json.dumps(cfg)]
            if stage == "coeffs":
                cmd += ["--basis", str(results / "basis.npz")]
            walls, loops = [], []
            for _ in range(reps):
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                walls.append(time.perf_counter() - t0)
                t = pq.read_table(summary)
                if set(t.column("action").to_pylist()) != {"kept"}:
                    raise RuntimeError(f"{stage}: {results} is not a finished run")
                loops.append(sum(t.column("seconds").to_pylist()))
            wall, loop = statistics.median(walls), statistics.median(loops)
            out[stage] = {"job_s": round(wall, 3), "fixed_s": round(wall - loop, 3), "per_clip_s": round(loop / n, 5)}
    size = int(cfg["shard_size"])
    amortised = {s: v["fixed_s"] / size + v["per_clip_s"] for s, v in out.items()}
    return {"results": str(results), "n_clips": n, "shard_size": size, "stages": out,
            "amortised_s_per_clip": {s: round(v, 4) for s, v in amortised.items()},
            "max_amortised_s_per_clip": round(max(amortised.values()), 4)}


def write_readme(res: dict) -> None:
    lines = [
        "`benchmarks/bench_plan.py`: `snakemake -n` of the whole workflow for a dataset of N empty videos, in the",
        "state after its listing checkpoint (written by the workflow's own `listing` rule); planned up to the",
        "test_shards checkpoint (probe, manifest, six per-clip steps per shard, basis, qc, splits, stats).",
        f"Shard size {res['shard_size']} (config `shard_size`). Wall time and peak RSS (GNU time) on "
        f"{res['machine']} (CPU time: user + system, what the plan costs without other load; the wall time here "
        "includes waiting for cores shared with other jobs); targets: 1.1M clips < 60 s and < 2 GB, 100k clips < 10 s.",
        "",
        "| clips | jobs planned | plan, wall (s) | plan, CPU (s) | peak memory (MB) | listing job, wall (s) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["plan"]:
        lines.append(f"| {r['n_clips']:,} | {r['n_jobs']:,} | {r['plan_s']:.1f} | {r['plan_cpu_s']:.1f} | {r['peak_mb']:,} "
                     f"| {r['listing_s']:.1f} |")
    small = min(res["plan"], key=lambda r: r["n_clips"]) if res["plan"] else None
    load = res.get("load_avg")
    lines += ["", (f"Load average (1 min) on the 2 cores when planning started: {load:.1f}. " if load is not None else "")
              + "Wall time above CPU time is waiting for a core shared with other jobs; the CPU time is what planning "
              "costs." + (f" The smallest dataset's plan ({small['n_clips']:,} clips, {small['plan_s']:.1f} s) is about "
                          "Snakemake's own start-up, paid whatever the size." if small else "")]
    lines += ["", "Before shards (issue 10, one job per clip per step, same machine): 1,000 clips 11 s / 331 MB, "
              "10,000 clips 242 s / 1,361 MB, 100,000 clips did not finish in 11 minutes."]
    o = res.get("overhead")
    if o:
        lines += [
            "",
            f"Shard-job overhead (a finished run's {o['results']}, {o['n_clips']} clips in the shard, all current: "
            "the job only starts, checks each clip's outputs and writes its summary; medians of 3):",
            "",
            f"| step | job, {o['n_clips']} clips (s) | start-up (s) | per clip (s) | amortised over a shard of "
            f"{o['shard_size']} (s/clip) |",
            "|---|---:|---:|---:|---:|",
        ]
        for s, v in o["stages"].items():
            lines.append(f"| {s} | {v['job_s']:.2f} | {v['fixed_s']:.2f} | {v['per_clip_s']:.4f} "
                         f"| {o['amortised_s_per_clip'][s]:.4f} |")
        lines += ["", f"Worst step: {o['max_amortised_s_per_clip']:.4f} s per clip (target < 0.05 s). "
                  "Snakemake's own per-job cost (about 1.3 s locally, issue 10) is paid once per shard."]
    write_section("Workflow planning", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000, 1100000],
                    help="none: keep the planning entries of benchmarks/out/plan.json (to add the overhead alone)")
    ap.add_argument("--shard-size", type=int, default=None, help="default: the config schema's")
    ap.add_argument("--results", type=Path, default=None, help="a finished run's results/{dataset}, for the overhead")
    args = ap.parse_args()
    from ksdiff import config

    out = ROOT / "benchmarks" / "out" / "plan.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    res = {"machine": f"{platform.machine()}, {platform.python_version()}",
           "load_avg": round(os.getloadavg()[0], 2) if args.sizes else old.get("load_avg"),
           "shard_size": args.shard_size or config.defaults()["shard_size"],
           "plan": [plan(n, args.shard_size) for n in args.sizes] if args.sizes else old.get("plan", [])}
    if args.results:
        res["overhead"] = overhead(args.results)
        print(json.dumps(res["overhead"]), flush=True)
    elif "overhead" in old:
        res["overhead"] = old["overhead"]
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    write_readme(res)


if __name__ == "__main__":
    main()
