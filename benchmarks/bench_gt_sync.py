"""Where does ground truth lose lip sync between the source video and the leaderboard?

On the demo's test clips, with the SyncNet weights the leaderboard uses, LSE-C and the
AV offset of the same speech against five renderings of the same clip:

  source     the synthetic corpus's own video (what SyncNet was trained on)
  rig        the rig's TRUE landmarks (as drawn) rendered by ksdiff.render.warp over
             the rig's own frame 0: what the leaderboard's renderer alone loses
  landmarks  the extracted MediaPipe landmarks rendered directly (no basis)
  coeffs     the extracted coefficients decoded through the basis and rendered
             (the leaderboard's "ground truth" row)
  mismatched / static   the floors, rendered the same way (from the predictions folder)

and how well the extracted lips follow the rig's true (drawn) lips: the correlation
and the spread ratio of the inner-lip gap (landmarks 13-14), and the RMS error of the
40 lip landmarks' motion (each landmark's clip mean removed), in inter-ocular units.
Run after the demo (README command 1):

    .venv/bin/python benchmarks/bench_gt_sync.py [--root .] [--clips 10] [--label v3]
        [--mouth teeth|reference|whole] [--corpus "a sentence on the corpus"]

``--mouth`` picks how the renderer paints the mouth (the same renderer for every row):
``teeth`` (the current one: a reference's own teeth stay with the lips, the gap between
is painted), ``reference`` (the whole opening painted once it is wider than the
reference's own; the renderer of the previous release) or ``whole`` (every frame's whole
inner-lip polygon painted dark, as before that). Each run is stored under its label with
a line saying which corpus and renderer it measured; the README table shows them all.

Writes benchmarks/out/gt_sync.json and the "Ground truth through extraction and
rendering" section of benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def rig_landmarks(cfg: dict, data_root: Path, clip: str):
    """(frame-0 rgb, (T, 478, 3) drawn landmarks) of the rig that made ``clip``."""
    from ksdiff.data.synth import corpus
    from ksdiff.io import parquet

    m = parquet.read_table(data_root / f"{clip}.motion.parquet", "synth_motion")
    if not m.ok:
        raise ValueError(f"{clip}: no rig ground truth ({m.reason})")
    spk = next(s for s in corpus.plan_speakers(cfg) if s.name == m.attrs["speaker"])
    _, rig = corpus.speaker_rig(cfg, spk)
    cols = {k: parquet.column_to_numpy(m.table.column(k)) for k in ("yaw", "pitch", "roll", "jaw_open", "mouth_wide")}
    trans = np.stack(parquet.column_to_numpy(m.table.column("trans"))).astype(np.float64)
    posed = [rig.pose(float(cols["yaw"][i]), float(cols["pitch"][i]), float(cols["roll"][i]), trans[i],
                      float(cols["jaw_open"][i]), float(cols["mouth_wide"][i])) for i in range(len(trans))]
    return rig.render(posed[0]), np.stack([p.drawn for p in posed])


def lse_of(model, warper, posed, wav):
    from ksdiff.metrics.frames import Rendered
    from ksdiff.metrics.protocol import PROTOCOL
    from ksdiff.metrics.scorers.lse import lse_of as scored

    r = scored(model, Rendered(warper), posed, wav, PROTOCOL.fps)
    return {"lse_c": float(r["lse_c"]), "lse_d": float(r["lse_d"]), "offset": int(r["offset"])}


def extraction_error(a: np.ndarray, b: np.ndarray) -> dict:
    """How landmarks ``a`` follow the true landmarks ``b`` (T, 478, 2|3) on the frames valid in both:
    inner-lip gap correlation and spread ratio, lip-motion RMS error (clip means removed), in
    inter-ocular units."""
    from ksdiff.geometry import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
    from ksdiff.metrics.protocol import PROTOCOL
    from ksdiff.render.triangles import LOWER_INNER_LIP, UPPER_INNER_LIP

    n = min(len(a), len(b))
    ok = np.isfinite(a[:n, :, :2]).all((1, 2)) & np.isfinite(b[:n, :, :2]).all((1, 2))
    a, b = a[:n][ok][..., :2], b[:n][ok][..., :2]
    iod = np.linalg.norm(b[:, LEFT_EYE_OUTER] - b[:, RIGHT_EYE_OUTER], axis=1).mean()
    lips = list(PROTOCOL.lve_lip_indices)
    da, db = a[:, lips] - a[:, lips].mean(0), b[:, lips] - b[:, lips].mean(0)
    ga = np.linalg.norm(a[:, LOWER_INNER_LIP] - a[:, UPPER_INNER_LIP], axis=1)
    gb = np.linalg.norm(b[:, LOWER_INNER_LIP] - b[:, UPPER_INNER_LIP], axis=1)
    return {"gap_corr": float(np.corrcoef(ga, gb)[0, 1]), "gap_std_ratio": float(ga.std() / gb.std()),
            "lip_motion_rms": float(np.sqrt(((da - db) ** 2).sum(-1).mean()) / iod),
            "true_lip_motion_rms": float(np.sqrt((db ** 2).sum(-1).mean()) / iod)}


MOUTHS = {"teeth": "a reference's teeth kept with the lips", "reference": "whole opening painted beyond the "
          "reference's own", "whole": "every frame's whole opening painted"}


def run(root: Path, n_clips: int, mouth: str = "teeth", splits=("test", "val")) -> dict:
    from ksdiff import config as kcfg
    from ksdiff.metrics.clip import read_audio as _wav
    from ksdiff.metrics.frames import Video, landmarks_px as _landmarks_px
    from ksdiff.metrics.scorers.lse import lse_of as scored_lse
    from ksdiff.metrics.test_set import test_clips
    from ksdiff.extract.basis import load_basis
    from ksdiff.io import parquet
    from ksdiff.metrics.syncnet import load_syncnet
    from ksdiff.render.video import decode_sample, reference_frame, template_of
    from ksdiff.render.warp import FaceWarper

    cfg = kcfg.load(root / "config.yaml")
    ds = cfg["datasets"][0]
    results = root / "results" / ds["name"]
    data_root = root / ds["root"]
    weights = cfg["eval"].get("syncnet") or root / "models" / ds["name"] / "syncnet" / "expert.pt"
    model = load_syncnet(weights)
    basis = load_basis(results / "basis.npz")
    fps = float(cfg["fps"])
    man = dict(parquet.read_table(results / "manifest.parquet", "manifest").to_pandas()[["clip_id", "path"]].values)
    clips, _ = test_clips(results)
    sp = parquet.read_table(results / "splits.parquet", "splits").to_pandas()
    rows, extraction = [], {}
    t0 = time.time()
    for split in splits:  # extraction error needs no SyncNet: cheap, so the validation speaker too
        for clip in sorted(sp.loc[sp["split"] == split, "clip_id"])[:n_clips]:
            _, rig_lm = rig_landmarks(cfg, data_root, clip)
            e = extraction_error(_landmarks_px(results / "landmarks" / f"{clip}.parquet"), rig_lm)
            gt = parquet.read_table(results / "coeffs" / f"{clip}.parquet", "coeffs")
            d = extraction_error(decode_sample(gt, template_of(gt), basis, 0)[1], rig_lm)
            extraction.setdefault(split, []).append({"clip": clip, "landmarks": e, "coeffs": d})
    for clip in clips[:n_clips]:
        wav = _wav(results / "audio" / f"{clip}.wav")
        gt = parquet.read_table(results / "coeffs" / f"{clip}.parquet", "coeffs")
        template = template_of(gt)
        extracted = _landmarks_px(results / "landmarks" / f"{clip}.parquet")
        rig_rgb, rig_lm = rig_landmarks(cfg, data_root, clip)
        ref_rgb, ref_lm, _ = reference_frame(results, clip, fps)
        warper = FaceWarper(ref_rgb, ref_lm)
        rig_warper = FaceWarper(rig_rgb, rig_lm[0])
        for w in (warper, rig_warper):
            if mouth == "whole":  # as before the mouth was painted relative to the reference's own opening
                w.ref_gap = 0.0
            if mouth in ("whole", "reference"):  # as before a reference's teeth were kept with the lips
                w.style = dataclasses.replace(w.style, min_kept_px=float("inf"))
        decoded = decode_sample(gt, template, basis, 0)[1]
        row = {"clip": clip}
        row["source"] = {k: (float(v) if k != "offset" else int(v)) for k, v in
                         scored_lse(model, Video(man[clip], extracted, fps), None, wav, fps).items() if k in ("lse_c", "lse_d", "offset")}
        row["rig"] = lse_of(model, rig_warper, rig_lm, wav)
        row["landmarks"] = lse_of(model, warper, extracted, wav)
        row["coeffs"] = lse_of(model, warper, decoded, wav)
        for floor in ("mismatched", "static"):
            p = root / "predictions" / ds["name"] / floor / f"{clip}.parquet"
            if p.exists():
                row[floor] = lse_of(model, warper, decode_sample(parquet.read_table(p, "coeffs"), template, basis, 0)[1], wav)
        rows.append(row)
        print(clip, {k: (round(v["lse_c"], 3), v["offset"]) for k, v in row.items() if k != "clip"}, flush=True)
    return {"weights": str(weights), "mouth": mouth, "clips": rows, "extraction": extraction,
            "seconds": time.time() - t0}


RENDERINGS = ("source", "rig", "landmarks", "coeffs", "mismatched", "static")
LABELS = {
    "source": "(a) source video",
    "rig": "(b) rig's true landmarks, rendered",
    "landmarks": "(c) extracted landmarks, rendered",
    "coeffs": "(d) extracted coefficients, decoded and rendered (the leaderboard's ground truth)",
    "mismatched": "floor: mismatched motion, rendered",
    "static": "floor: static face, rendered",
}


def summary(res: dict) -> list[dict]:
    out = []
    for k in RENDERINGS:
        vals = [r[k] for r in res["clips"] if k in r]
        if not vals:
            continue
        c = np.array([v["lse_c"] for v in vals])
        off = np.array([v["offset"] for v in vals])
        out.append({"rendering": k, "n": len(vals), "lse_c_mean": float(c.mean()), "lse_c_median": float(np.median(c)),
                    "offset_within_1": float(np.mean(np.abs(off) <= 1)), "offset_median": float(np.median(off))})
    return out


def readme_section(allres: dict) -> str:
    labels = list(allres)
    lines = ["Measured by `benchmarks/bench_gt_sync.py` after the demo (README command 1), on its test clips (one held-out "
             "speaker), with that demo's SyncNet expert; results in `benchmarks/out/gt_sync.json`. "
             "LSE-C of the same speech against each rendering; 'offset ok' = share of clips whose AV offset is within ±1 "
             "frame. Each column group is one measurement:", ""]
    lines += [f"- {lab}: {allres[lab].get('describe', '')}" for lab in labels] + [""]
    head = "| rendering | " + " | ".join(f"{lab}: LSE-C mean | {lab}: median | {lab}: offset ok" for lab in labels) + " |"
    lines += [head, "|---|" + "---:|" * (3 * len(labels))]
    summ = {lab: {r["rendering"]: r for r in allres[lab]["summary"]} for lab in labels}
    for k in RENDERINGS:
        cells = []
        for lab in labels:
            r = summ[lab].get(k)
            cells += ([f"{r['lse_c_mean']:.3f}", f"{r['lse_c_median']:.3f}", f"{r['offset_within_1']:.0%}"] if r else ["–"] * 3)
        lines.append(f"| {LABELS[k]} | " + " | ".join(cells) + " |")
    lines += ["", "Extraction against the rig's truth (mean over clips; gap = inner-lip gap 13-14; lip motion = the 40 "
              "LVE lip landmarks with each one's clip mean removed, inter-ocular units; the renderer plays no part, so "
              "one row per corpus):", "",
              "| measurement | split | landmarks | gap correlation | gap spread / true | lip-motion RMS error | "
              "true lip-motion RMS |", "|---|---|---|---:|---:|---:|---:|"]
    seen = set()
    for lab in labels:
        ext = allres[lab].get("extraction", {})
        key = json.dumps(ext, sort_keys=True)
        if not ext or key in seen:
            continue
        seen.add(key)
        for split, rows in ext.items():
            for src in ("landmarks", "coeffs"):
                m = {k: np.mean([r[src][k] for r in rows]) for k in rows[0][src]}
                lines.append(f"| {lab} | {split} ({len(rows)} clips) | {src} | {m['gap_corr']:.2f} | "
                             f"{m['gap_std_ratio']:.2f} | {m['lip_motion_rms']:.4f} | {m['true_lip_motion_rms']:.4f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from readme import replace_section

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=".", help="the workflow's working directory (after the demo)")
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--mouth", choices=sorted(MOUTHS), default="teeth", help="how the renderer paints the mouth")
    ap.add_argument("--corpus", default="", help="a sentence on the corpus measured (for the README)")
    ap.add_argument("--label", default="now", help="name of this measurement in the JSON")
    ap.add_argument("--out", default=str(HERE / "out" / "gt_sync.json"))
    ap.add_argument("--readme", default=str(HERE / "README.md"))
    a = ap.parse_args(argv)
    res = run(Path(a.root).resolve(), a.clips, mouth=a.mouth)
    res["describe"] = f"{a.corpus + '; ' if a.corpus else ''}renderer: {MOUTHS[a.mouth]} (`--mouth {a.mouth}`)"
    res["summary"] = summary(res)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    allres = json.loads(out.read_text()) if out.exists() else {}
    allres[a.label] = res
    out.write_text(json.dumps(allres, indent=1))
    for s in res["summary"]:
        print(s)
    readme = Path(a.readme)
    readme.write_text(replace_section(readme.read_text() if readme.exists() else "", "Ground truth through extraction and rendering",
                                      readme_section(allres)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
