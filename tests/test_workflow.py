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
    for rule in ("synth", "manifest", "splits", "qc", "stats", "sanity", "leaderboard"):
        assert f"rule {rule}:" in out or f"checkpoint {rule}:" in out or f"\n{rule} " in out, rule


def test_the_leaderboard_reads_the_sanity_table_of_ground_truth_and_the_floors(tmp_path):
    r = _run("-n", "--cores", "1", "--config", f"results_dir={tmp_path}/results", "-p")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    shell = next(ln for ln in out.splitlines() if " sanity --metrics " in ln)
    assert all(f"metrics/synth/{m}.parquet" in shell for m in ("ground_truth", "mismatched", "static"))
    assert "metrics/synth/sanity.parquet" in next(ln for ln in out.splitlines() if " report --metrics " in ln)
