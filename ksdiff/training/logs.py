"""Training logs: a long-format CSV (step, phase, metric, value) and TensorBoard when it is installed."""
from __future__ import annotations

import csv
from pathlib import Path


class CsvLog:
    """Long-format CSV log; on resume, rows past the resumed step (from the killed run) are dropped."""

    FIELDS = ("step", "phase", "metric", "value")

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        rows = []
        if resume_step > 0 and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, self.FIELDS)
            w.writeheader()
            w.writerows(rows)

    def history(self, phase: str, metric: str) -> dict[int, float]:
        """{step: value} of one logged metric, e.g. the validation loss curve."""
        with open(self.path, newline="") as f:
            return {int(r["step"]): float(r["value"]) for r in csv.DictReader(f)
                    if r["phase"] == phase and r["metric"] == metric}

    def write(self, step: int, phase: str, values: dict[str, float]) -> None:
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            for k, v in values.items():
                w.writerow([step, phase, k, str(v) if isinstance(v, int) else f"{v:.6g}"])  # counts stay exact


def tensorboard(folder: Path):
    """A SummaryWriter, or None when tensorboard (optional) is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional dependency: probed, not required
    except ImportError:
        return None
    return SummaryWriter(str(folder))
