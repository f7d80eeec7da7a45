"""Does the head sampler, or more training, give a model its speakers' head spread?

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_head_sampler.py [--root .] [--method ksdiff]
        [--variants 20:0:1 50:0:1 10:0:1 5:0:1 2:0:1 20:1:1 20:0:2] [--checkpoint other/model.pt ...]

Takes the trained model of a finished demo run under ``--root``
(models/synth/{method}/model.pt) and samples it with other head-path settings,
each a ``steps:eta:guidance`` triple: DDIM steps, DDIM eta (0 deterministic,
1 DDPM-like) and classifier-free audio guidance. A variant is a copy of the
checkpoint with those fields of its model config changed, sampled by `ksdiff
infer`'s code, so nothing else differs; KSDiff's expression path keeps its own
sampler (expr_ddim_steps / expr_guidance). ``--checkpoint``: further trained
weights (e.g. the same config trained longer, ``train.steps: 1200`` with
``train.select: last``), scored at their default sampler.

Each is measured on three sets of clips: the first ``--per-speaker`` clips of
every training speaker (the clips the model learned from), the validation
speaker and the test speaker. Per set: head temporal diversity and frame-level
jitter (benchmarks/bench_head_spread.py's definitions, mean over samples and
clips) and, on the test clips, LVE (l2) as the leaderboard scores it.

Writes benchmarks/out/head_sampler.json and the "Head sampler and training
length" section of benchmarks/README.md. Variant checkpoints and predictions go
to benchmarks/out/head_sampler/ (reused on rerun).
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
import torch  # noqa: E402

from ksdiff import config as kconfig  # noqa: E402
from ksdiff.evaluate import evaluate_method  # noqa: E402
from ksdiff.metrics.registry import LVE  # noqa: E402
from ksdiff.io.files import atomic_torch_save  # noqa: E402
from bench_head_spread import ground_truth_spread, mean_rows, predictions  # beside this script
from bench_seeds import per_clip_means  # beside this script
from readme import replace_section  # benchmarks/readme.py, beside this script

log = logging.getLogger("bench_head_sampler")
SETS = ("train", "val", "test")


def parse_variant(text: str) -> dict:
    steps, eta, guidance = text.split(":")
    return {"ddim_steps": int(steps), "ddim_eta": float(eta), "guidance": float(guidance)}


def variant_checkpoint(model: Path, fields: dict, folder: Path) -> Path:
    """A copy of ``model`` whose model config samples the head path with ``fields`` (written once)."""
    name = "steps{ddim_steps}-eta{ddim_eta:g}-g{guidance:g}".format(**fields)
    out = folder / name / "model.pt"
    if not out.exists() or out.stat().st_mtime < model.stat().st_mtime:
        payload = torch.load(model, map_location="cpu", weights_only=True)
        payload["model_cfg"] = {**payload["model_cfg"], **fields}
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(payload, out)
    return out


def clip_sets(results: Path, per_speaker: int) -> dict[str, list[str]]:
    split = pd.read_parquet(results / "splits.parquet")
    train = split[split["split"] == "train"]
    return {"train": sum((g.clip_id.tolist()[:per_speaker] for _, g in train.groupby("speaker_id")), []),
            "val": split.loc[split["split"] == "val", "clip_id"].tolist(),
            "test": split.loc[split["split"] == "test", "clip_id"].tolist()}


def score(cfg: dict, results: Path, model: Path, sets: dict[str, list[str]], folder: Path, method: str) -> dict:
    row: dict = {"model": str(model)}
    for name in SETS:
        row[name] = mean_rows(predictions(cfg, results, model, sets[name], folder / name))
    df = evaluate_method(cfg, str(results), predictions=str(folder / "test"), method=method, syncnet="")
    row[LVE] = float(np.mean(per_clip_means(df, LVE)))
    log.info("%s", row)
    return row


def write_readme(summary: dict, note: str) -> None:
    gt = summary["ground_truth"]
    lines = [f"Model: {summary['method']} (seed-0 demo weights unless named). Ground truth: temporal diversity "
             f"train {gt['train']['td']:.2f} / val {gt['val']['td']:.2f} / test {gt['test']['td']:.2f} deg, "
             f"jitter {gt['train']['jitter']:.2f} / {gt['val']['jitter']:.2f} / {gt['test']['jitter']:.2f}.", "",
             "| weights | head sampler (steps, eta, guidance) | TD train | TD val | TD test | jitter train | "
             "jitter val | jitter test | test LVE (l2) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['weights']} | {r['sampler']} | " + " | ".join(f"{r[s]['td']:.2f}" for s in SETS) + " | "
                     + " | ".join(f"{r[s]['jitter']:.2f}" for s in SETS) + f" | {r[LVE]:.4f} |")
    body = (__doc__.split("\n\n", 2)[2].split("\nWrites")[0].strip() + "\n\n" + "\n".join(lines) + "\n\n" + note)
    path = ROOT / "benchmarks" / "README.md"
    path.write_text(replace_section(path.read_text() if path.exists() else "", "Head sampler and training length",
                                    body))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(ROOT), help="a folder the demo ran in")
    ap.add_argument("--method", default="ksdiff")
    ap.add_argument("--variants", nargs="*", help="steps:eta:guidance of the head path",
                    default=["20:0:1", "50:0:1", "10:0:1", "5:0:1", "2:0:1", "20:1:1", "20:0:2"])
    ap.add_argument("--checkpoint", nargs="*", default=[], help="other weights of the same method (default sampler)")
    ap.add_argument("--per-speaker", type=int, default=3, help="training clips per training speaker")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    ap.add_argument("--note", default="", help="a paragraph for the README section")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    root, out = Path(args.root).resolve(), Path(args.out)
    cfg = kconfig.load(root / "config.yaml")
    cfg["eval"] = {**cfg.get("eval", {}), "syncnet": None}  # LVE and head metrics only
    results = root / "results" / "synth"
    sets = clip_sets(results, args.per_speaker)
    work = out / "head_sampler"
    gt = {name: ground_truth_spread(results, clips) for name, clips in sets.items()}
    model = root / "models" / "synth" / args.method / "model.pt"
    rows = []
    for text in args.variants:
        fields = parse_variant(text)
        ck = variant_checkpoint(model, fields, work / "checkpoints")
        row = score(cfg, results, ck, sets, work / "predictions" / ck.parent.name, args.method)
        rows.append({"weights": "demo", "sampler": text.replace(":", ", "), **row})
    for other in args.checkpoint:
        other = Path(other).resolve()
        row = score(cfg, results, other, sets, work / "predictions" / f"other-{other.parent.name}", args.method)
        rows.append({"weights": other.parent.name, "sampler": "default", **row})
    summary = {"root": str(root), "method": args.method, "sets": sets, "ground_truth": gt, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "head_sampler.json").write_text(json.dumps(summary, indent=1))
    write_readme(summary, args.note)


if __name__ == "__main__":
    main()
