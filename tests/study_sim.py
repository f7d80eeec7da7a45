"""For the user-study tests: simulated raters that answer a design's items the way the page records them,
and a fabricated finished run to build a study from."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ksdiff.geometry import euler_to_matrix
from ksdiff.io import parquet
from ksdiff.io.audio import write_wav
from ksdiff.io.schemas import MANIFEST
from ksdiff.io.video import write_video
from ksdiff.study.design import GROUND_TRUTH, MISMATCHED
from tests.render_fixtures import canonical, coeffs_cols, face_photo, write_basis


def answer(design: dict, rater: str, prefer, score, rng, careless: bool = False) -> dict:
    """A ratings file of one rater slot.

    prefer(a, b) -> probability that a beats b (A/B); score(method) -> mean MOS (noise added).
    careless: the rater picks the mismatched floor in every catch trial (and rates it above ground truth).
    """
    crit = [c["name"] for c in design["criteria"]]
    items = next(r for r in design["raters"] if r["id"] == rater)["items"]
    out, t = [], 0
    for it in items:
        ans = {}
        for c in crit:
            if it["kind"] == "ab":
                a, b = it["methods"]
                if it["catch"]:
                    gt_left = a == GROUND_TRUTH
                    ans[c] = ("right" if gt_left else "left") if careless else ("left" if gt_left else "right")
                else:
                    ans[c] = "left" if rng.random() < prefer(a, b) else "right"
            else:
                m = it["methods"][0]
                if it["catch"]:
                    good = {GROUND_TRUTH: 5, MISMATCHED: 1}[m]
                    ans[c] = (6 - good) if careless else good
                else:
                    ans[c] = int(np.clip(round(score(m) + rng.normal(0, 0.7)), 1, 5))
        out.append({"item": it["id"], "kind": it["kind"], "answers": ans, "shown_ms": t, "answered_ms": t + 4000,
                    "plays": [1] * len(it["methods"]), "ended_ms": [t + 2000] * len(it["methods"])})
        t += 5000
    return {"format": "ksdiff-study-ratings", "version": 1, "study_id": design["study_id"], "rater_id": rater,
            "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:10:00Z", "ratings": out}


def write(folder: Path, doc: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"ratings_{doc['study_id']}_{doc['rater_id']}.json"
    p.write_text(json.dumps(doc))
    return p


T, FPS, SR = 20, 25, 16000
CLIPS = ["c0", "c1"]


def _coeffs(path, template, s, r, c, mouth: float, yaw: float):
    expr = np.zeros((T, 2))
    expr[:, 0] = mouth * (1 + np.sin(np.arange(T) / 2))
    rot = euler_to_matrix(np.linspace(0, yaw, T), 0, 0) @ r
    parquet.write_table(path, "coeffs", coeffs_cols(expr, rot, np.tile(c, (T, 1)), np.full(T, s)),
                        attrs={"template": template.tolist(), "fps": FPS})


def fabricate_run(tmp_path: Path) -> tuple[Path, Path]:
    """A finished run's results/{dataset} with two clips (manifest, landmarks, audio, coefficients, basis)
    and predictions of ours, regression and mismatched, which the renderer turns into face videos."""
    ref, lm = face_photo()
    template, s, r, c = canonical(lm)
    res, pred = tmp_path / "results", tmp_path / "predictions"
    for d in ("coeffs", "landmarks", "audio"):
        (res / d).mkdir(parents=True)
    comps = np.zeros((2, 478 * 3))
    comps[0, 14 * 3 + 1] = 1.0  # lower inner lip down
    comps[1, 17 * 3 + 1] = 1.0
    write_basis(res / "basis.npz", comps)
    rows = []
    for clip in CLIPS:
        src = tmp_path / "videos" / f"{clip}.mp4"
        wav = 0.1 * np.sin(2 * np.pi * 200 * np.arange(int(SR * T / FPS)) / SR).astype(np.float32)
        src.parent.mkdir(exist_ok=True)
        write_video(src, [ref] * T, FPS, wav, SR)
        write_wav(res / "audio" / f"{clip}.wav", wav, SR)
        parquet.write_table(res / "landmarks" / f"{clip}.parquet", "landmarks", {
            "frame": np.arange(T, dtype=np.int32), "time_s": np.arange(T) / FPS, "source_frame": np.arange(T, dtype=np.int32),
            "detected": np.ones(T, bool), "score": np.ones(T, np.float32), "n_faces": np.ones(T, np.int16),
            "box": np.tile([0, 0, 160, 160], (T, 1)), "landmarks": np.tile(lm.reshape(-1), (T, 1)),
            "failure": [""] * T}, attrs={"fps": FPS})
        row = {f.name: None for f in MANIFEST}
        row.update(clip_id=clip, speaker_id="s", dataset="d", layout="folder", path=str(src), duration_s=T / FPS,
                   fps=FPS, n_frames=T, width=160, height=160, has_audio=True, audio_sample_rate=SR, audio_channels=1,
                   variable_fps=False, size_bytes=src.stat().st_size, sha256="", probe_error="")
        rows.append(row)
        _coeffs(res / "coeffs" / f"{clip}.parquet", template, s, r, c, 0.06, 6)
        for method, mouth, yaw in (("ours", 0.05, 4), ("regression", 0.0, 0), ("mismatched", 0.02, -6)):
            (pred / method).mkdir(parents=True, exist_ok=True)
            _coeffs(pred / method / f"{clip}.parquet", template, s, r, c, mouth, yaw)
    parquet.write_table(res / "manifest.parquet", "manifest", {k: [r[k] for r in rows] for k in rows[0]})
    return res, pred
