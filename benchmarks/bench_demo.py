"""Benchmark of the demo's run time (README command 1): install, workflow, and where the workflow's time goes.

    .venv/bin/python benchmarks/bench_demo.py --run [--dir /tmp/demo]   # clone HEAD, run command 1, time it
    .venv/bin/python benchmarks/bench_demo.py --from /work/demo          # a finished run's folder

Writes benchmarks/out/demo.json and rewrites the "Demo run time" section of
benchmarks/README.md (other sections are kept). Target: the whole command
(install and workflow) within 25 minutes on 2 CPU cores.

``--run`` clones this repository's HEAD (committed files only, as a new user
gets them) and runs README command 1 as written there, split at its ``&&`` so
the install and the workflow are timed apart. ``--from`` reads a finished run
(its wall times come from a ``--times`` JSON this script wrote, else only the
workflow's, from Snakemake's log).

From the run's Snakemake log (the newest in .snakemake/log): each job's rule,
threads, start and end (the log's one-second timestamps), so per rule the job
count, summed and longest job time; how busy the cores were (job seconds times
threads over wall seconds times cores); and the core-seconds in which a core had
no job, the schedule's waste. Wall time on a shared machine varies from
run to run with the other load; the load average at the start is recorded.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from readme import replace_section  # noqa: E402  benchmarks/readme.py, beside this script

TARGET_MIN = 25.0
_STAMP = re.compile(r"^\[(\w{3} \w{3}\s+\d+ \d\d:\d\d:\d\d \d{4})\]$")
_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")


def readme_command() -> str:
    """README command 1: the first line after the '# 1.' comment of the set-up block."""
    lines = (ROOT / "README.md").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("# 1."):
            return lines[i + 1].strip()
    raise RuntimeError("README.md has no '# 1.' set-up command")


def parse_log(path: Path, files: bool = False) -> dict:
    """Jobs (rule, threads, start s, end s from the first job's start) and the cores Snakemake was given;
    with ``files``, each job's input and output paths too (bench_schedule.py derives the dependencies)."""
    text = path.read_text().splitlines()
    cores = next((int(m.group(1)) for m in map(re.compile(r"^Provided cores: (\d+)").match, text) if m), 1)
    jobs, open_, stamp, current, t0 = [], {}, None, None, None
    for line in text:
        m = _STAMP.match(line)
        if m:
            stamp = dt.datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            t0 = t0 or stamp
            continue
        m = _JOB.match(line)
        if m:
            current = {"rule": m.group(1), "threads": 1, "start": (stamp - t0).total_seconds()}
            continue
        if current is not None:
            m = re.match(r"^\s+jobid: (\d+)$", line)
            if m:
                open_[m.group(1)] = current
                continue
            m = re.match(r"^\s+threads: (\d+)$", line)
            if m:
                current["threads"] = int(m.group(1))
                continue
            m = re.match(r"^\s+(input|output): (.*)$", line)
            if m and files:
                current[m.group(1)] = [p.strip() for p in m.group(2).split(",") if p.strip()]
                continue
        m = re.match(r"^Finished jobid: (\d+)", line)
        if m and m.group(1) in open_:
            job = open_.pop(m.group(1))
            job["end"] = (stamp - t0).total_seconds()
            jobs.append(job)
    if open_:
        raise RuntimeError(f"{path}: {len(open_)} job(s) never finished (a failed or interrupted run)")
    return {"cores": cores, "jobs": sorted(jobs, key=lambda j: j["start"])}


def summarise(run: dict) -> dict:
    jobs, cores = run["jobs"], run["cores"]
    wall = max(j["end"] for j in jobs)
    per_rule: dict[str, dict] = {}
    for j in jobs:
        r = per_rule.setdefault(j["rule"], {"n": 0, "sum_s": 0.0, "max_s": 0.0, "threads": j["threads"]})
        d = j["end"] - j["start"]
        r["n"] += 1
        r["sum_s"] += d
        r["max_s"] = max(r["max_s"], d)
    busy = sum((j["end"] - j["start"]) * j["threads"] for j in jobs)
    # idle core-seconds: one-second steps in which fewer threads than cores were running
    idle = 0
    for t in range(int(wall)):
        used = sum(j["threads"] for j in jobs if j["start"] <= t < j["end"])
        idle += max(cores - used, 0)
    return {"cores": cores, "workflow_wall_s": wall, "job_core_s": busy, "core_busy": busy / (wall * cores),
            "idle_core_s": idle, "rules": dict(sorted(per_rule.items(), key=lambda kv: -kv[1]["sum_s"])),
            "jobs": jobs}


def newest_log(folder: Path) -> Path:
    logs = sorted((folder / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise FileNotFoundError(f"{folder}: no .snakemake/log/*.snakemake.log (not a workflow run)")
    return logs[-1]


def run_demo(folder: Path) -> dict:
    """Clone HEAD into ``folder`` and run README command 1 there, install and workflow timed apart."""
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: the benchmark runs a fresh clone")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(folder)], check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True).stdout
    install, workflow = (p.strip() for p in readme_command().split("&&", 1))
    out = {"commit": head.strip(), "command": readme_command(), "load_1min_at_start": os.getloadavg()[0]}
    for name, cmd in (("install", install), ("workflow", workflow)):
        t = time.time()
        with open(folder / f"bench_{name}.log", "w") as log:
            rc = subprocess.run(["bash", "-c", cmd], cwd=folder, stdout=log, stderr=subprocess.STDOUT).returncode
        out[f"{name}_s"] = time.time() - t
        if rc:
            raise RuntimeError(f"{name} failed with exit status {rc}: see {folder / f'bench_{name}.log'}")
    out["total_s"] = out["install_s"] + out["workflow_s"]
    (folder / "bench_times.json").write_text(json.dumps(out, indent=1))
    return out


def load_text(load) -> str:
    # a run timed by hand (``--times`` written afterwards) may not know the load it started under
    return "load average when it started not recorded." if load is None else f"load average {load:.1f} when it started."


def table(res: dict) -> str:
    s, t = res["summary"], res.get("times", {})
    lines = []
    if "total_s" in t:
        verdict = "within" if t["total_s"] <= TARGET_MIN * 60 else "OVER"
        lines.append(f"README command 1 from a fresh clone of {t['commit']}: {t['total_s'] / 60:.1f} min "
                     f"(install {t['install_s'] / 60:.1f}, workflow {t['workflow_s'] / 60:.1f}), {verdict} the "
                     f"{TARGET_MIN:.0f} min target; " + load_text(t.get("load_1min_at_start")))
    else:
        lines.append(f"Workflow only (no install timing for this run): {s['workflow_wall_s'] / 60:.1f} min.")
    lines += ["", f"Snakemake's jobs on {s['cores']} cores: {s['job_core_s'] / 60:.1f} core-minutes of jobs in "
              f"{s['workflow_wall_s'] / 60:.1f} min, cores busy {100 * s['core_busy']:.0f}% of the time; "
              f"{s['idle_core_s'] / 60:.1f} core-minutes idle (a core with no job while the run went on).", "",
              "| rule | jobs | threads | summed (s) | longest (s) |", "|---|---:|---:|---:|---:|"]
    for name, r in s["rules"].items():
        if r["sum_s"] >= 5:
            lines.append(f"| {name} | {r['n']} | {r['threads']} | {r['sum_s']:.0f} | {r['max_s']:.0f} |")
    lines += ["", "Rules under 5 s in all are left out. Times are the log's one-second stamps."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--run", action="store_true", help="clone HEAD and run README command 1")
    g.add_argument("--from", dest="from_", type=Path, help="a finished run's folder")
    ap.add_argument("--dir", type=Path, default=None, help="where --run clones (default: a new temporary folder)")
    ap.add_argument("--times", type=Path, default=None, help="with --from: the bench_times.json of that run")
    ap.add_argument("--note", default="", help="a paragraph appended to the README section")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()

    if args.run:
        import tempfile

        folder = args.dir or Path(tempfile.mkdtemp(prefix="ksdiff-demo-"))
        times = run_demo(folder)
    else:
        folder = args.from_
        tp = args.times or folder / "bench_times.json"
        times = json.loads(tp.read_text()) if tp.exists() else {}
    res = {"folder": str(folder), "host": platform.node(), "python": platform.python_version(), "times": times,
           "summary": summarise(parse_log(newest_log(folder)))}
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "demo.json").write_text(json.dumps(res, indent=1))
    body = ("`benchmarks/bench_demo.py`: README command 1 (the whole demo, install included) and where the "
            "workflow's time goes, from Snakemake's log. Target: within 25 min on 2 CPU cores.\n\n" + table(res))
    if args.note:
        body += "\n\n" + args.note.strip()
    print(body)
    if not args.no_readme:
        p = ROOT / "benchmarks" / "README.md"
        p.write_text(replace_section(p.read_text() if p.exists() else "", "Demo run time", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
