"""The workflow itself: lint-clean, and a dry run plans the whole DAG."""
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SNAKEMAKE = [str(Path(sys.executable).parent / "snakemake")]


def _run(*args, cwd=REPO):
    return subprocess.run(SNAKEMAKE + list(args), cwd=cwd, capture_output=True, text=True, timeout=300)


def test_lint_is_clean():
    r = _run("--lint")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations" in r.stdout + r.stderr


def test_dry_run_plans_the_dag(tmp_path):
    r = _run("-n", "--cores", "1", "--config", f"results_dir={tmp_path}/results")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for rule in ("synth", "listing", "manifest", "splits", "qc", "stats", "test_shards", "sanity", "leaderboard"):
        assert f"rule {rule}:" in out or f"checkpoint {rule}:" in out or f"\n{rule} " in out, rule


def test_the_commands_that_say_why_a_job_would_rerun_need_no_cores(tmp_path):
    """README, "What reruns when": they work as written, without --cores (no rule's threads may need it)."""
    for args in (["-n", "--quiet", "rules"], ["--list-changes", "input"], ["--list-changes", "code"]):
        r = _run(*args, "--config", f"results_dir={tmp_path}/results")
        assert r.returncode == 0, (args, r.stdout + r.stderr)


def test_the_leaderboard_reads_the_sanity_table_of_ground_truth_and_the_floors(tmp_path):
    r = _run("-n", "--cores", "1", "--config", f"results_dir={tmp_path}/results", "-p")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    shell = next(ln for ln in out.splitlines() if " sanity --metrics " in ln)
    assert all(f"metrics/synth/{m}.parquet" in shell for m in ("ground_truth", "mismatched", "static"))
    assert "metrics/synth/sanity.parquet" in next(ln for ln in out.splitlines() if " report --metrics " in ln)


def _alt_venv(root, marker):
    """A second 'environment': its bin/ksdiff records each call, then runs the real ksdiff."""
    bindir = root / "bin"
    bindir.mkdir(parents=True)
    script = bindir / "ksdiff"
    script.write_text(f'#!/bin/sh\necho "$1" >> "{marker}"\nexec "{sys.executable}" -m ksdiff "$@"\n')
    script.chmod(0o755)
    return root


def test_switching_the_interpreter_reruns_nothing(tmp_path):
    """Rules run `ksdiff` of software.venv (or the running venv); which one is not a
    param or part of a rule's code, so a run done in one environment is up to date in another."""
    from tests.conftest import make_clip

    wd = tmp_path / "wd"
    make_clip(wd / "videos" / "spk1" / "clip1.mp4", seconds=1.0)
    marker = tmp_path / "alt_calls.txt"
    alt = _alt_venv(tmp_path / "alt", marker)
    (wd / "config.yaml").write_text(f"datasets: [{{name: d, root: {wd}/videos, layout: folder}}]\n")
    target = "results/d/shards/audio/00000.parquet"  # the audio step's job of the one shard
    base = ["-s", str(REPO / "Snakefile"), "-d", str(wd), "--cores", "1"]

    r = _run(*base, target, "--config", f"software={{venv: {alt}}}")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert marker.read_text().split() == ["list", "probe", "shard"]  # the chosen environment ran every rule
    assert (wd / target).exists() and (wd / "results/d/audio/spk1_clip1.wav").exists()

    # Back to the interpreter running Snakemake (the default): nothing is out of date.
    r = _run(*base, "-n", target)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout + r.stderr
    # `--list-changes params` is not used: snakemake 9.27.1 lists every recorded output
    # there (ParamsChange.__or__ keeps the files of an empty change); the dry run above
    # applies the params trigger itself.
    for trigger in ("code", "input"):
        r = _run(*base, "--list-changes", trigger)
        assert r.returncode == 0 and r.stdout.strip() == "", (trigger, r.stdout, r.stderr)


def test_a_software_venv_without_ksdiff_is_refused(tmp_path):
    r = _run("-n", "--cores", "1", "--config", f"results_dir={tmp_path}/results", f"software={{venv: {tmp_path}}}")
    assert r.returncode != 0
    assert "software.venv" in r.stdout + r.stderr and "ksdiff" in r.stdout + r.stderr


def test_the_conda_env_resolves_from_snakemakes_copy_and_pins_the_tested_stack():
    """Snakemake creates envs/ksdiff.yaml from a copy under .snakemake/conda/: it may not
    name files by relative path, and its pins must be the venv's (envs/requirements.txt)."""
    import yaml

    env = yaml.safe_load((REPO / "envs" / "ksdiff.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert not [p for p in pip if p.split()[0] in ("-r", "-e", "-c", "--requirement", "--editable")]
    req = [ln.strip() for ln in (REPO / "envs" / "requirements.txt").read_text().splitlines()]
    assert sorted(p for p in pip if not p.startswith("-")) == sorted(r for r in req if r and not r.startswith("#"))
    post = (REPO / "envs" / "ksdiff.post-deploy.sh").read_text()
    assert "$KSDIFF_SOURCE" in post and "requirements-nodeps.txt" in post
