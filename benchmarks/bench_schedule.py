"""How the workflow's job priorities order a run on few cores: a finished demo run's own jobs, simulated.

Reads the Snakemake log of a finished run (bench_demo.py keeps it as bench_workflow.log): every job's rule,
threads, input and output files, and its duration from the log's one-second stamps. A job waits for the jobs
that write its inputs. Then simulates what Snakemake does on ``--cores`` cores: whenever cores are free, the
ready job of highest priority starts, equals in an arbitrary order (Snakemake's ILP scheduler weighs priority
first and leaves ties to the solver, so the order of equals changes with the timing of each run). Each policy is
simulated over many seeded random orders of equals:

- ``expert only``: the SyncNet expert's priority alone (the workflow before its PRIORITY table);
- ``workflow``: PRIORITY from workflow/rules/common.smk (read from the file).

The durations come from one run under one policy; a job's time hardly depends on what runs beside it on a
quiet 2-core machine, but that is assumed, not measured here. Writes benchmarks/out/schedule.json.

    python benchmarks/bench_schedule.py /tmp/demo15/bench_workflow.log
"""
from __future__ import annotations

import argparse
import ast
import json
import random
import re
import statistics
from pathlib import Path

from bench_demo import ROOT, parse_log  # the Snakemake log parser of the demo's benchmark (run as a script)


def load_jobs(path: Path) -> list[dict]:
    """Every job that ran (bench_demo.parse_log, with its files), timed in seconds (at least 0.5 s: the log's
    stamps are whole seconds), with empty file lists where the log shows none."""
    jobs = [j for j in parse_log(path, files=True)["jobs"] if j["rule"] != "all"]
    for j in jobs:
        j["seconds"] = max(j["end"] - j["start"], 0.5)
        j.setdefault("input", [])
        j.setdefault("output", [])
    return jobs


def dependencies(jobs: list[dict]) -> list[set[int]]:
    """For each job, the jobs writing one of its inputs (a file, or a file inside an output folder)."""
    writer = {o.rstrip("/"): i for i, j in enumerate(jobs) for o in j["output"]}
    deps = []
    for j in jobs:
        d = set()
        for path in j["input"]:
            p = path.rstrip("/")
            while p and p not in writer:
                p = p.rpartition("/")[0]
            if p:
                d.add(writer[p])
        deps.append(d)
    return deps


def simulate(jobs: list[dict], deps: list[set[int]], priority: dict, cores: int, rng: random.Random) -> float:
    """Makespan of list scheduling: highest priority first among ready jobs, equals in a random order."""
    n, t, free = len(jobs), 0.0, cores
    started, done, running = set(), set(), []  # running: (end time, job, cores)
    while len(done) < n:
        ready = [i for i in range(n) if i not in started and deps[i] <= done]
        rng.shuffle(ready)
        ready.sort(key=lambda i: -priority.get(jobs[i]["rule"], 0))
        for i in ready:
            need = min(jobs[i]["threads"], cores)
            if need <= free:
                started.add(i)
                free -= need
                running.append((t + jobs[i]["seconds"], i, need))
        running.sort()
        t, i, need = running.pop(0)
        done.add(i)
        free += need
    return t


def workflow_priority() -> dict:
    """PRIORITY as workflow/rules/common.smk writes it (a literal dict)."""
    text = (ROOT / "workflow/rules/common.smk").read_text()
    m = re.search(r"^PRIORITY = (\{.*?\})$", text, re.S | re.M)
    return ast.literal_eval(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path, help="a finished run's Snakemake log (bench_demo.py's bench_workflow.log)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/schedule.json")
    args = ap.parse_args()
    jobs = load_jobs(args.log)
    deps = dependencies(jobs)
    actual = max(j["end"] for j in jobs) - min(j["start"] for j in jobs)
    res = {"log": str(args.log), "jobs": len(jobs), "cores": args.cores, "trials": args.trials,
           "work_core_s": sum(j["seconds"] * min(j["threads"], args.cores) for j in jobs), "actual_s": actual,
           "policies": {}}
    for name, prio in (("expert only", {"syncnet_expert": 10}), ("workflow", workflow_priority())):
        rng = random.Random(0)
        spans = sorted(simulate(jobs, deps, prio, args.cores, rng) for _ in range(args.trials))
        res["policies"][name] = {"priority": prio, "mean_s": statistics.mean(spans), "median_s": statistics.median(spans),
                                 "p90_s": spans[int(0.9 * (len(spans) - 1))], "max_s": spans[-1], "min_s": spans[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"{res['jobs']} jobs, {res['work_core_s']:.0f} core-s of work on {args.cores} cores; "
          f"this run took {actual:.0f} s")
    print("| policy | mean (s) | median (s) | 90th pct (s) | worst (s) | best (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, p in res["policies"].items():
        print(f"| {name} | {p['mean_s']:.0f} | {p['median_s']:.0f} | {p['p90_s']:.0f} | {p['max_s']:.0f} | {p['min_s']:.0f} |")


if __name__ == "__main__":
    main()
