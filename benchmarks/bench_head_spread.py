"""Head-motion spread per speaker: is a method's temporal diversity the speaker's, or everyone's?

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_head_spread.py [--root .] [--splits train val test]

Reads a finished demo run under ``--root`` (its config.yaml, results/synth and
models/synth/*/model.pt), samples every trained model on the clips of each
split with `ksdiff infer`'s code and default sampler (the test split's
predictions/synth/{method}/ are reused when newer than the model), and
measures head pose (yaw, pitch, roll, degrees) per clip, as the leaderboard
does (mean over samples, then over clips):

- temporal diversity (TD): mean over the three angles of the std over frames;
- smooth TD: the same after a 9-frame (0.36 s) moving average, the slow motion;
- jitter: the std of what that average removes, the frame-level motion.

Ground truth (the extracted pose the models train on) is measured per speaker
on every split, so a method's spread can be read against the speaker it is
scored on and against the speakers it learned from. The models see no speaker
style: speech, transcript and the reference frame only.

Writes benchmarks/out/head_spread.json and the "Head-motion spread by speaker"
section of benchmarks/README.md. Predictions of splits other than test go to
benchmarks/out/head_spread/ (reused on rerun).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.ndimage import uniform_filter1d  # noqa: E402

from ksdiff import config as kconfig  # noqa: E402
from ksdiff.metrics.motion import head_pose  # noqa: E402
from ksdiff.io import parquet  # noqa: E402
from ksdiff.metrics.diversity import temporal_diversity  # noqa: E402
from ksdiff.render.video import samples_of, select_sample  # noqa: E402
from bench_seeds import predict_missing  # beside this script
from readme import replace_section  # benchmarks/readme.py, beside this script

log = logging.getLogger("bench_head_spread")
SMOOTH = 9  # frames of the moving average that separates slow motion from frame-level jitter


def spread(head: np.ndarray) -> dict[str, float]:
    """(T, 3) pose in degrees -> TD, smooth TD and jitter (all in degrees)."""
    slow = uniform_filter1d(head, SMOOTH, axis=0, mode="nearest")
    return {"td": temporal_diversity(head), "smooth_td": temporal_diversity(slow),
            "jitter": temporal_diversity(head - slow)}


def clip_spread(table) -> dict[str, float]:
    """Mean over a prediction's samples (or a coefficient table's one motion)."""
    per = [spread(head_pose(select_sample(table, s))) for s in samples_of(table)]
    return {k: float(np.mean([p[k] for p in per])) for k in per[0]}


def ground_truth_spread(results: Path, clips: list[str]) -> dict[str, float]:
    """Mean TD, smooth TD and jitter of the extracted pose the models train on, over ``clips``."""
    return mean_rows([clip_spread(parquet.read_table(results / "coeffs" / f"{c}.parquet", "coeffs")) for c in clips])


def mean_rows(rows: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in ("td", "smooth_td", "jitter")}


def predictions(cfg, results: Path, model: Path, clips: list[str], folder: Path) -> list[dict]:
    out = []
    for p in predict_missing(cfg, results, model, clips, folder):
        t = parquet.read_table(p, "coeffs")
        if t.ok:
            out.append(clip_spread(t))
        else:
            log.warning("%s: %s", p, t.reason)
    return out


def measure(root: Path, splits: list[str], out: Path) -> dict:
    """Ground truth and every trained model per (split, speaker): TD, smooth TD, jitter (mean over clips)."""
    cfg = kconfig.load(root / "config.yaml")
    results = root / "results" / "synth"
    split = pd.read_parquet(results / "splits.parquet")
    summary: dict = {"root": str(root), "ground_truth": {}, "methods": {}}
    groups = list(split.groupby(["split", "speaker_id"]))
    for (name, speaker), g in groups:
        summary["ground_truth"][f"{name}/{speaker}"] = {"split": name, "speaker": speaker, "n_clips": len(g),
                                                        **ground_truth_spread(results, g.clip_id.tolist())}
    for model in sorted((root / "models" / "synth").glob("*/model.pt")):
        method = model.parent.name
        for (name, speaker), g in groups:
            if name not in splits:
                continue
            folder = root / "predictions" / "synth" / method if name == "test" else out / "head_spread" / method
            rows = predictions(cfg, results, model, g.clip_id.tolist(), folder)
            key = f"{name}/{speaker}/{method}"
            summary["methods"][key] = {"split": name, "speaker": speaker, "method": method, "n_clips": len(rows),
                                       **mean_rows(rows)}
            log.info("%s: %s", key, summary["methods"][key])
    return summary


def pivot(summary: dict, value: str) -> list[str]:
    """A Markdown table: ground truth and each method as rows, each speaker (train first) as a column."""
    gt = sorted(summary["ground_truth"].values(), key=lambda g: (g["split"] != "train", g["split"], g["speaker"]))
    cols = [g for g in gt if any(m["split"] == g["split"] and m["speaker"] == g["speaker"]
                                 for m in summary["methods"].values())]
    lines = ["| | " + " | ".join(f"{g['speaker']} ({g['split']})" for g in cols) + " |",
             "|---|" + "---|" * len(cols),
             "| ground truth | " + " | ".join(f"{g[value]:.2f}" for g in cols) + " |"]
    for method in sorted({m["method"] for m in summary["methods"].values()}):
        cells = []
        for g in cols:
            m = summary["methods"].get(f"{g['split']}/{g['speaker']}/{method}")
            cells.append(f"{m[value]:.2f}" if m and m["n_clips"] else "–")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def write_readme(summary: dict, note: str) -> None:
    n = {f"{g['split']}/{g['speaker']}": g["n_clips"] for g in summary["ground_truth"].values()}
    lines = ["Temporal diversity [deg] per speaker: ground truth (the extracted pose the models train on) and each "
             "trained model (default sampler, mean over samples, then over the speaker's clips; on a training "
             "speaker, the very clips the model was trained on: how much of that speaker's spread it learned at all). "
             "The leaderboard's 'closer to ground truth' ranks by |TD - GT| against the speaker's ground-truth row. "
             "Clips per speaker: "
             + ", ".join(f"{k.split('/')[1]} {v}" for k, v in sorted(n.items())) + ".", ""]
    lines += pivot(summary, "td")
    lines += ["", "Smooth TD (the slow motion) per speaker:", ""] + pivot(summary, "smooth_td")
    lines += ["", "Jitter (the frame-level motion) per speaker:", ""] + pivot(summary, "jitter")
    body = (__doc__.split("\n\n", 2)[2].split("\nWrites")[0].strip() + "\n\n" + "\n".join(lines) + "\n\n" + note)
    path = ROOT / "benchmarks" / "README.md"
    path.write_text(replace_section(path.read_text() if path.exists() else "", "Head-motion spread by speaker", body))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(ROOT), help="a folder the demo ran in")
    ap.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    ap.add_argument("--note", default="", help="a paragraph for the README section (what it shows, what was not run)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = measure(Path(args.root).resolve(), args.splits, out)
    (out / "head_spread.json").write_text(json.dumps(summary, indent=1))
    write_readme(summary, args.note)


if __name__ == "__main__":
    main()
