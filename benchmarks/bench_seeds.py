"""Training-seed spread of the demo leaderboard's lip error and head motion.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_seeds.py [--seeds 0 1 2]
        [--methods ksdiff regression diffspeaker] [--reuse models/synth]

Trains each method at each seed on the demo's tables (results/synth, the
config's ``train:`` section with ``train.seed`` replaced; one job at a time,
one thread), samples the held-out speaker's test clips with `ksdiff infer`'s
code and scores them with `ksdiff evaluate`'s (no SyncNet: LVE and the head
metrics only), so the numbers are the leaderboard's. The validation speaker's
clips are sampled too and their head temporal diversity measured the same way
(a second held-out speaker: a method's head spread read against two speakers,
not one). ``--reuse``: a folder
of the demo's trained models, used for a seed whose weights it already holds
(same training config apart from run-time fields), so the demo's own run
counts as that seed instead of being trained twice.

Writes benchmarks/out/seeds.json and the "Training seeds" section of
benchmarks/README.md: per method, mean and spread (sample standard deviation,
min, max) over seeds of the test LVE (l2) and temporal diversity (each seed: mean
over clips of the per-clip mean over samples, as the leaderboard does).
Trained models and predictions go to benchmarks/out/seeds/ (reused on rerun).
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ksdiff import config as kconfig  # noqa: E402
from ksdiff.evaluate import evaluate_method  # noqa: E402
from ksdiff.metrics.registry import GROUND_TRUTH, LVE  # noqa: E402
from ksdiff.metrics.test_set import test_clips  # noqa: E402
from ksdiff.io import parquet  # noqa: E402
from ksdiff.report.speaker_spread import clip_temporal_diversity  # noqa: E402
from ksdiff.infer import predict_clip  # noqa: E402
from ksdiff.config import TrainConfig  # noqa: E402
from ksdiff.training.loop import train  # noqa: E402
from readme import replace_section  # benchmarks/readme.py, beside this script

log = logging.getLogger("bench_seeds")
VAL_TD = "val_temporal_diversity"
METRICS = {LVE: "LVE (l2)", "temporal_diversity": "Temporal diversity [deg]", VAL_TD: "val temporal diversity"}


def seed_config(cfg: dict, seed: int) -> dict:
    out = copy.deepcopy(cfg)
    out["train"] = {**(out.get("train") or {}), "seed": seed}
    return out


def reusable(model: Path, cfg: dict) -> bool:
    """Whether ``model`` was trained with ``cfg``'s training config (run-time fields aside)."""
    if not model.exists():
        return False
    held = torch.load(model, map_location="cpu", weights_only=True)["train_cfg"]
    want = TrainConfig.from_dict(cfg.get("train")).to_dict()
    free = set(TrainConfig._RESUME_FREE) - {"steps"}
    return all(held.get(k) == v for k, v in want.items() if k not in free)


def per_clip_means(df, metric: str) -> np.ndarray:
    d = df[df["metric"] == metric]
    return d.groupby("clip_id")["value"].mean().to_numpy()


def val_clips(results: Path) -> list[str]:
    df = parquet.read_table(results / "splits.parquet", "splits").to_pandas()
    return sorted(df.loc[df["split"] == "val", "clip_id"])


def mean_td(paths: list[Path]) -> float:
    """Temporal diversity as the leaderboard takes it (per clip the mean over samples, then over clips)."""
    per_clip = []
    for p in paths:
        t = parquet.read_table(p, "coeffs")
        if t.ok:
            per_clip.append(clip_temporal_diversity(t))
    return float(np.mean(per_clip)) if per_clip else float("nan")


def predict_missing(cfg: dict, results: Path, model: Path, clips: list[str], folder: Path) -> list[Path]:
    """Each clip's prediction by ``model`` under ``folder``, sampled where missing or older than the model."""
    paths = [folder / f"{clip}.parquet" for clip in clips]
    for clip, p in zip(clips, paths):
        if not p.exists() or p.stat().st_mtime < model.stat().st_mtime:
            predict_clip(cfg, str(results), clip, str(p), checkpoint=str(model))
    return paths


def run_one(cfg: dict, results: Path, out: Path, method: str, seed: int, reuse: Path | None) -> dict:
    scfg = seed_config(cfg, seed)
    model = out / "models" / f"{method}-s{seed}" / "model.pt"
    demo = reuse / method / "model.pt" if reuse else None
    t0 = time.time()
    if demo is not None and reusable(demo, scfg):
        model, trained = demo, "reused"
    elif model.exists() and reusable(model, scfg):
        trained = "cached"
    else:
        train(scfg, str(results), str(model), method)
        trained = f"trained in {time.time() - t0:.0f} s"
    pred = out / "predictions" / f"{method}-s{seed}"
    clips, _ = test_clips(results)
    predict_missing(scfg, results, model, clips, pred)
    val = predict_missing(scfg, results, model, val_clips(results), out / "predictions" / f"{method}-s{seed}-val")
    df = evaluate_method(scfg, str(results), predictions=str(pred), method=method, syncnet="")
    row = {"method": method, "seed": seed, "model": str(model), "how": trained, "n_clips": len(clips)}
    row.update({m: float(np.mean(per_clip_means(df, m))) for m in METRICS if m != VAL_TD})
    row[VAL_TD] = mean_td(val)
    d = df[df["metric"] == LVE]
    row["lve_per_clip"] = {str(k): float(v) for k, v in d.groupby("clip_id")["value"].mean().items()}
    log.info("%s", row)
    return row


def summarise(rows: list[dict], gt: dict) -> dict:
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]
        out[method] = {"seeds": [r["seed"] for r in rs]}
        for m in METRICS:
            v = np.array([r[m] for r in rs])
            out[method][m] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                              "min": float(v.min()), "max": float(v.max()), "per_seed": v.tolist()}
    out[GROUND_TRUTH] = gt
    return out


def paired_with(rows: list[dict], ref: str = "ksdiff") -> dict:
    """Each method's test LVE minus ``ref``'s, paired by seed and clip: per clip the mean over the seeds both have,
    then the mean over clips with a 95% percentile-bootstrap interval over clips (> 0: ``ref`` is lower),
    and on how many of the shared seeds ``ref``'s mean LVE is lower."""
    from ksdiff.report.bootstrap import bootstrap_ci

    mine = {r["seed"]: r for r in rows if r["method"] == ref}
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows if r["method"] != ref):
        theirs = {r["seed"]: r for r in rows if r["method"] == method}
        seeds = sorted(set(mine) & set(theirs))
        clips = sorted(set.intersection(*[set(mine[s]["lve_per_clip"]) & set(theirs[s]["lve_per_clip"]) for s in seeds])) \
            if seeds else []
        if not clips:
            continue
        d = [np.mean([theirs[s]["lve_per_clip"][c] - mine[s]["lve_per_clip"][c] for s in seeds]) for c in clips]
        mean, lo, hi = bootstrap_ci(d, n=2000, alpha=0.05, seed=0)
        wins = sum(mine[s][LVE] < theirs[s][LVE] for s in seeds)
        out[method] = {"seeds": seeds, "n_clips": len(clips), "mean": mean, "lo": lo, "hi": hi,
                       "clips_ref_lower": int(sum(x > 0 for x in d)), "seeds_ref_lower": int(wins)}
    return out


def write_readme(summary: dict, static_lve: float | None, note: str) -> None:
    gt_td, gt_val = summary[GROUND_TRUTH]["temporal_diversity"], summary[GROUND_TRUTH][VAL_TD]
    lines = ["| Method | seeds | LVE (l2) mean ± sd [min, max] | LVE / static | Temporal diversity [deg] mean ± sd "
             f"(GT {gt_td:.2f}) | val speaker's temporal diversity (GT {gt_val:.2f}) | per-seed LVE |",
             "|---|---|---|---|---|---|---|"]
    methods = {m: s for m, s in summary.items() if m not in (GROUND_TRUTH, "paired_with_ksdiff")}
    for method, s in methods.items():
        lv, td, tv = s[LVE], s["temporal_diversity"], s[VAL_TD]
        ratio = f"{lv['mean'] / static_lve:.3f}" if static_lve else "–"
        lines.append(f"| {method} | {','.join(map(str, s['seeds']))} | {lv['mean']:.4f} ± {lv['std']:.4f} "
                     f"[{lv['min']:.4f}, {lv['max']:.4f}] | {ratio} | {td['mean']:.2f} ± {td['std']:.2f} | "
                     f"{tv['mean']:.2f} ± {tv['std']:.2f} | "
                     + ", ".join(f"{v:.4f}" for v in lv["per_seed"]) + " |")
    lines += ["", "Head spread against ground truth, read two ways (test speaker GT "
              f"{gt_td:.2f}, validation speaker GT {gt_val:.2f}): the distance of the mean over seeds, and the mean "
              "over seeds of each run's distance (what one run's leaderboard ranks by):", "",
              "| Method | test: abs(mean - GT) | test: mean abs(TD - GT) | val: abs(mean - GT) "
              "| val: mean abs(TD - GT) |",
              "|---|---|---|---|---|"]
    for method, s in methods.items():
        cells = []
        for m, gt in (("temporal_diversity", gt_td), (VAL_TD, gt_val)):
            per = np.array(s[m]["per_seed"])
            cells += [f"{abs(per.mean() - gt):.2f}", f"{np.abs(per - gt).mean():.2f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    paired = summary.get("paired_with_ksdiff") or {}
    if paired:
        lines += ["", "Test LVE paired with KSDiff (method minus ksdiff per clip, averaged over the seeds both have; "
                  "95% bootstrap interval over clips; > 0: KSDiff lower):", "",
                  "| Method | difference [95% interval] | clips where KSDiff is lower | seeds where KSDiff is lower |",
                  "|---|---|---|---|"]
        for method, p in paired.items():
            lines.append(f"| {method} | {p['mean']:+.4f} [{p['lo']:+.4f}, {p['hi']:+.4f}] | {p['clips_ref_lower']} of "
                         f"{p['n_clips']} | {p['seeds_ref_lower']} of {len(p['seeds'])} |")
    body = (__doc__.split("\n\n", 2)[2].split("\nWrites")[0].strip() + "\n\n" + "\n".join(lines) + "\n\n"
            + (f"Static mean face: LVE {static_lve:.4f} (the same test clips). " if static_lve else "") + note)
    path = ROOT / "benchmarks" / "README.md"
    path.write_text(replace_section(path.read_text() if path.exists() else "", "Training seeds", body))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--results", default=str(ROOT / "results" / "synth"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["ksdiff", "regression", "diffspeaker"])
    ap.add_argument("--reuse", default=str(ROOT / "models" / "synth"), help="the demo's models ('' = none)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    ap.add_argument("--note", default="", help="a sentence for the README section (what was not run)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = kconfig.load(args.config)
    cfg["eval"] = {**cfg.get("eval", {}), "syncnet": None}  # LVE and head metrics only
    results, out = Path(args.results), Path(args.out)
    reuse = Path(args.reuse) if args.reuse else None
    rows = []
    for seed in args.seeds:  # one seed of every method first: a cut-short run still compares methods
        for method in args.methods:
            rows.append(run_one(cfg, results, out / "seeds", method, seed, reuse))
    gt = evaluate_method(cfg, str(results), method=GROUND_TRUTH, syncnet="")
    gt_val = mean_td([results / "coeffs" / f"{clip}.parquet" for clip in val_clips(results)])
    summary = summarise(rows, {"temporal_diversity": float(np.mean(per_clip_means(gt, "temporal_diversity"))),
                               VAL_TD: gt_val})
    summary["paired_with_ksdiff"] = paired_with(rows)
    static = None
    try:
        static_pred = out / "seeds" / "predictions" / "static"
        clips, _ = test_clips(results)
        for clip in clips:
            if not (static_pred / f"{clip}.parquet").exists():
                predict_clip(cfg, str(results), clip, str(static_pred / f"{clip}.parquet"), method="static")
        static = float(np.mean(per_clip_means(evaluate_method(cfg, str(results), predictions=str(static_pred),
                                                               method="static", syncnet=""), LVE)))
    except (OSError, ValueError) as e:
        log.warning("static baseline not scored: %s", e)
    summary["static"] = {LVE: static}
    (out / "seeds.json").write_text(json.dumps({"config": args.config, "rows": rows, "summary": summary}, indent=2))
    write_readme({k: v for k, v in summary.items() if k != "static"}, static, args.note)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
