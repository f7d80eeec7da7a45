"""Head placement of predictions: median over clips of |mean predicted angle - mean ground-truth angle|.

    .venv/bin/python benchmarks/bench_pose_anchor.py \
        --predictions predictions/synth/ksdiff --coeffs results/synth/coeffs [--out benchmarks/out/pose_anchor.json]

One number per angle (yaw, pitch, roll; degrees) plus the per-clip offsets, for
every prediction table in --predictions that is ok and has ground truth in
--coeffs (ksdiff.metrics.pose_offset). Several folders may be given to
--predictions (one per method); each is reported under its folder name.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ksdiff.io.parquet import read_table  # noqa: E402
from ksdiff.metrics.pose_offset import mean_pose_offset, median_offsets  # noqa: E402


def offsets_of(pred_dir: Path, coeffs_dir: Path) -> dict:
    per_clip = {}
    for p in sorted(pred_dir.glob("*.parquet")):
        pred = read_table(p, "coeffs")
        gt_path = coeffs_dir / p.name
        if not pred.ok or not gt_path.exists():
            continue
        gt = read_table(gt_path, "coeffs")
        if gt.ok:
            per_clip[p.stem] = mean_pose_offset(pred, gt)
    return {"n_clips": len(per_clip), "median": median_offsets(list(per_clip.values())), "per_clip": per_clip}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", nargs="+", required=True, type=Path)
    ap.add_argument("--coeffs", required=True, type=Path)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    res = {d.name: offsets_of(d, a.coeffs) for d in a.predictions}
    for name, r in res.items():
        m = r["median"]
        print(f"{name}: {r['n_clips']} clips, median |mean pred - mean gt| yaw {m['yaw']:.2f}, "
              f"pitch {m['pitch']:.2f}, roll {m['roll']:.2f} deg")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
