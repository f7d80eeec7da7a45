"""Benchmark of the video metrics without weights: CPU seconds per minute of 25 fps video (1500 frames), one core.

    .venv/bin/python benchmarks/bench_video_metrics.py [--clip PATH] [--frames N]

Writes benchmarks/out/video_metrics.json. Runs on one thread (OMP/MKL/OpenBLAS threads and OpenCV set to 1
before anything loads) on ``--frames`` frames of a real clip (default ../shared/data/hdtf/hdtf_sample_01.mp4,
512x512) and of the same frames resized to 256x256 (the demo's size), and scales to 1500 frames. Per stage:

  decode     the clip's recorded video, decoded at 25 fps (the reference of PSNR, SSIM and LMD; once per clip)
  render     the image warp (ksdiff.render.warp) drawing a motion over the clip's reference frame (every rendered
             method's frames; external methods' are decoded instead)
  psnr, ssim one frame against another (ksdiff.metrics.frame_fidelity)
  cpbd       ksdiff.metrics.cpbd and, on fewer frames, the reference python-cpbd (cpbd.compute), whose values
             it equals
  lmd        ksdiff's landmark extraction of the method's frames (ksdiff.extract.landmarks.track_frames) plus
             the distance itself (the recorded video's landmarks come from the landmark step: not timed)

CPU seconds (time.process_time) are the steadier figure on a shared machine; wall seconds are recorded too.

With ``--hdtf`` it also scores the real HDTF clips of ../shared/data/hdtf/ with SadTalker's videos of the same
audio as an external method: CPBD of every frame of each video, and whether PSNR, SSIM and LMD can compare
SadTalker's frames with the recorded clip's (ksdiff.metrics.video_pair.paired's frame-size rule), written to
benchmarks/out/video_metrics_hdtf.json.

With ``--demo DIR`` it scores every method of a finished demo run in DIR (DIR/results/synth, DIR/predictions/synth,
DIR/config.yaml) with all four video metrics on each test clip's first sample into ``--scored`` (a folder; a
method whose table is already there is not scored again), and writes benchmarks/out/video_metrics_demo.json:
the per-method means, the sanity rows against the floors, and how much of the landmark distance is the whole
face's placement (posed landmarks against ground truth's, raw and with each frame's centroid removed).
"""
from __future__ import annotations

import os

for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_k] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "hdtf" / "hdtf_sample_01.mp4"
PER_MINUTE = 1500


def _timed(fn, n_frames: int) -> dict:
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    c, w = time.process_time() - c, time.perf_counter() - w
    return {"frames": n_frames, "cpu_s": c, "wall_s": w, "cpu_s_per_minute": c / n_frames * PER_MINUTE,
            "wall_s_per_minute": w / n_frames * PER_MINUTE, "_out": out}


def bench(frames: np.ndarray, n_ref_cpbd: int) -> dict:
    import cpbd as cpbd_reference

    from ksdiff.extract.landmarks import LandmarkOptions, track_frames
    from ksdiff.metrics.cpbd import cpbd
    from ksdiff.metrics.frame_fidelity import psnr_frames, ssim_frames
    from ksdiff.metrics.lmd import lmd
    from ksdiff.render.warp import FaceWarper

    n = len(frames)
    pred, ref = frames[1:], frames[:-1]  # neighbouring frames: a realistic, non-zero difference
    out = {}
    lms = _timed(lambda: track_frames(((k, k / 25, k, f) for k, f in enumerate(frames)), LandmarkOptions())[0], n)
    cols = lms.pop("_out")
    lm = cols["landmarks"].reshape(n, -1, 3).astype(np.float64)
    lm[~cols["detected"]] = np.nan
    dist = _timed(lambda: lmd(lm[1:], lm[:-1]), n - 1)
    dist.pop("_out")
    out["lmd"] = {k: lms[k] + dist[k] if k.endswith("_s") or k.endswith("minute") else lms[k] for k in lms}
    warper = FaceWarper(frames[0], lm[0])
    render = _timed(lambda: [warper.render(p) for p in lm[1:]], n - 1)
    render.pop("_out")
    out["render"] = render
    for name, fn in (("psnr", lambda: psnr_frames(pred, ref)), ("ssim", lambda: ssim_frames(pred, ref)),
                     ("cpbd", lambda: [cpbd(f) for f in pred])):
        r = _timed(fn, len(pred))
        r.pop("_out")
        out[name] = r
    sub = pred[:n_ref_cpbd]
    ours = [cpbd(f) for f in sub]
    r = _timed(lambda: [cpbd_reference.compute(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)) for f in sub], len(sub))
    values = r.pop("_out")
    r["equal_to_ksdiff"] = bool(np.array_equal(values, ours))
    out["cpbd_reference"] = r
    return out


def hdtf(folder: Path, out: Path) -> dict:
    """CPBD of every frame of each HDTF clip and SadTalker video, and the frame-size check of each pair."""
    from ksdiff.io.video import iter_frames
    from ksdiff.metrics.cpbd import cpbd
    from ksdiff.metrics.video_pair import size_mismatch

    result = {}
    shapes = {}
    for name in ("hdtf_gt_01", "sadtalker_of_gt_01", "hdtf_gt_02", "sadtalker_of_gt_02"):
        c = time.process_time()
        values = []
        for _, _, _, rgb in iter_frames(folder / f"{name}.mp4", 25.0):
            values.append(cpbd(rgb))
            shapes[name] = rgb.shape[:2]
        result[name] = {"frames": len(values), "size": f"{shapes[name][1]}x{shapes[name][0]}",
                        "cpbd_mean": float(np.mean(values)), "cpbd_std_over_frames": float(np.std(values)),
                        "cpu_s": time.process_time() - c}
        print(name, result[name], flush=True)
    for k in ("01", "02"):
        why = size_mismatch(shapes[f"sadtalker_of_gt_{k}"], shapes[f"hdtf_gt_{k}"])
        result[f"pair_{k}"] = {"psnr_ssim_lmd": f"not scored: {why}" if why else "scored"}
    out.write_text(json.dumps(result, indent=1))
    return result


VIDEO = ("psnr_db", "ssim", "cpbd", "f_lmd_px", "m_lmd_px")


def demo(run: Path, scored: Path, out: Path) -> dict:
    """Score a finished demo run's methods with the video metrics (sample 0) and summarise them."""
    import pandas as pd
    import yaml

    from ksdiff import config
    from ksdiff.evaluate import evaluate_method
    from ksdiff.extract.basis import load_basis
    from ksdiff.io import parquet
    from ksdiff.metrics.protocol import MEDIAPIPE_LIP_INDICES
    from ksdiff.render.video import decode_sample, template_of
    from ksdiff.report.bootstrap import clip_means
    from ksdiff.report.sanity import sanity_table

    res, preds = run / "results" / "synth", run / "predictions" / "synth"
    cfg = config.validate(yaml.safe_load((run / "config.yaml").read_text()))
    cfg["eval"].update(video_metrics=["psnr", "ssim", "cpbd", "lmd"], video_samples=1)
    methods = ["ground_truth"] + sorted(p.name for p in preds.iterdir() if p.is_dir() and p.name != "shards")
    scored.mkdir(parents=True, exist_ok=True)
    tables, attrs = [], []
    for m in methods:
        path = scored / f"{m}.parquet"
        if not path.exists():
            evaluate_method(cfg, str(res), None if m == "ground_truth" else str(preds / m), m, out=str(path), syncnet="")
        t = parquet.read_table(path, "metrics")
        df = t.to_pandas()
        tables.append(df[df.metric.isin(VIDEO) & (df["sample"] == 0)])
        attrs.append(t.attrs)
    df = pd.concat(tables)
    cm = clip_means(df)
    means = {m: {k: float(g.value.mean()) for k, g in cm[cm.method == m].groupby("metric")} for m in methods}
    sanity = sanity_table(df, attrs).to_dict(orient="records")
    # placement: posed landmarks of each method's sample 0 against ground truth's, mean |dx|, |dy| in pixels
    basis, placement = load_basis(res / "basis.npz"), {}
    for m in methods[1:]:
        acc = {"face_raw": [], "face_centred": [], "lips_raw": [], "lips_centred": []}
        for c in attrs[0]["clips"]:
            gt = parquet.read_table(res / "coeffs" / f"{c}.parquet", "coeffs")
            tpl = template_of(gt)
            g = decode_sample(gt, tpl, basis, 0)[1][..., :2]
            p = decode_sample(parquet.read_table(preds / m / f"{c}.parquet", "coeffs"), tpl, basis, 0)[1][..., :2]
            n = min(len(g), len(p))
            ok = np.isfinite(g[:n]).all((1, 2)) & np.isfinite(p[:n]).all((1, 2))
            d = p[:n][ok] - g[:n][ok]
            dc = d - d.mean(1, keepdims=True)  # each frame's centroid translation removed
            for part, idx in (("face", slice(None)), ("lips", list(MEDIAPIPE_LIP_INDICES))):
                acc[f"{part}_raw"].append(np.abs(d[:, idx]).mean())
                acc[f"{part}_centred"].append(np.abs(dc[:, idx]).mean())
        placement[m] = {k: float(np.mean(v)) for k, v in acc.items()}
    result = {"run": str(run), "clips": attrs[0]["clips"], "means": means, "sanity": sanity, "placement": placement}
    out.write_text(json.dumps(result, indent=1, default=float))
    return result


def main() -> None:
    from ksdiff.io.video import iter_frames

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=str(CLIP))
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--reference-cpbd-frames", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "video_metrics.json"))
    ap.add_argument("--hdtf", action="store_true", help="only score ../shared/data/hdtf (SadTalker vs the clips)")
    ap.add_argument("--demo", help="only score the finished demo run in this folder")
    ap.add_argument("--scored", default="video_metrics_demo", help="with --demo: where the metrics tables go")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.demo:
        demo(Path(args.demo), Path(args.scored), ROOT / "benchmarks" / "out" / "video_metrics_demo.json")
        return
    if args.hdtf:
        hdtf(CLIP.parent, ROOT / "benchmarks" / "out" / "video_metrics_hdtf.json")
        return
    frames = []
    c, w = time.process_time(), time.perf_counter()
    for k, _, _, rgb in iter_frames(args.clip, 25.0):
        if k >= args.frames:
            break
        frames.append(rgb)
    decode = {"frames": len(frames), "cpu_s": time.process_time() - c, "wall_s": time.perf_counter() - w}
    decode["cpu_s_per_minute"] = decode["cpu_s"] / len(frames) * PER_MINUTE
    decode["wall_s_per_minute"] = decode["wall_s"] / len(frames) * PER_MINUTE
    frames = np.stack(frames)
    h, w_ = frames.shape[1:3]
    small = np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) for f in frames])
    result = {
        "clip": Path(args.clip).name,
        "machine": {"processor": platform.processor() or platform.machine(), "load_avg": os.getloadavg()},
        "threads": 1,
        f"{w_}x{h}": {"decode": decode, **bench(frames, args.reference_cpbd_frames)},
        "256x256 (resized)": bench(small, args.reference_cpbd_frames),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    for size in (f"{w_}x{h}", "256x256 (resized)"):
        print(size)
        for k, v in result[size].items():
            print(f"  {k:15s} {v['cpu_s_per_minute']:8.1f} CPU s per minute of video  ({v['frames']} frames)")


if __name__ == "__main__":
    main()
