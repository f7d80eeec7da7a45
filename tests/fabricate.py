"""A tiny fabricated results/{dataset} folder for the model tests (no video, no extraction).

Speech features are smooth random signals; the expression coefficients are a
fixed nonlinear function of the features at (almost) the same time, so a model
that listens can predict them and a mean-face prediction cannot; head motion is
slow smooth noise. Tables are written with the real schemas (write_table), so
the code under test reads exactly what extraction would write.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ksdiff.io.parquet import write_failure, write_table
from ksdiff.io.schemas import N_LANDMARKS

WORDS = ["hello", "world", "talking", "head", "motion", "speech", "face", "model"]


def smooth_noise(rng, n, d, sigma):
    x = gaussian_filter1d(rng.normal(size=(n, d)), sigma, axis=0, mode="nearest")
    return x / (x.std(0, keepdims=True) + 1e-9)


def fabricate_results(
    root: str | Path,
    n_speakers: int = 4,
    clips_per_speaker: int = 3,
    feat_dim: int = 8,
    n_expr: int = 4,
    fps: float = 25.0,
    rate_hz: float = 50.0,
    durations=(3.0, 5.0),
    seed: int = 0,
    bad_clips: bool = True,
) -> dict:
    """Write coeffs/features/transcripts, qc, splits and basis.npz; return a description.

    Speakers 0..n-3 are train, n-2 val, n-1 test. With ``bad_clips``: one training
    clip is marked unusable in QC, another has a failed features table although
    QC (wrongly) calls it usable, so loaders must skip both.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(1000).normal(size=(feat_dim, n_expr)) / np.sqrt(feat_dim)  # shared across clips
    # template in inter-ocular units and an orthonormal basis, as ksdiff.extract.pose and ksdiff.extract.basis write them
    template = np.random.default_rng(2000).normal(size=(N_LANDMARKS, 3)) * 0.5
    q, _ = np.linalg.qr(np.random.default_rng(3000).normal(size=(N_LANDMARKS * 3, n_expr)))
    basis = q.T
    _mk(root)
    np.savez(root / "basis.npz", mean=np.zeros(N_LANDMARKS * 3, np.float32), components=basis.astype(np.float32),
             std=np.ones(n_expr, np.float32), explained_variance_ratio=np.full(n_expr, 1.0 / n_expr, np.float32),
             n_frames=np.int64(0), n_expr=np.int64(n_expr), clips=np.array(["spk0_clip0"]),
             template_iod=np.float64(1.0))
    r = int(round(rate_hz / fps))
    clips, speakers, split_of = [], [], {}
    for s in range(n_speakers):
        split = "train" if s < n_speakers - 2 else ("val" if s == n_speakers - 2 else "test")
        for k in range(clips_per_speaker):
            clip = f"spk{s}_clip{k}"
            clips.append(clip)
            speakers.append(f"spk{s}")
            split_of[clip] = split
            T = int(rng.uniform(*durations) * fps)
            N = T * r
            z = smooth_noise(rng, N, feat_dim, sigma=2.0)  # speech features, standard units
            feat = -30.0 + 10.0 * z  # dB-like offset and spread, so normalisation matters
            zf = z.reshape(T, r, feat_dim).mean(1)
            expr = 2.0 * np.tanh(zf @ mix) + 0.05 * rng.normal(size=(T, n_expr))
            slow = smooth_noise(rng, T, 6, sigma=10.0)
            yaw, pitch, roll = 6.0 * slow[:, 0], 3.0 * slow[:, 1], 2.0 * slow[:, 2]
            trans = np.stack([128 + 4.0 * slow[:, 3], 120 + 3.0 * slow[:, 4], np.zeros(T)], axis=1)
            scale = 100.0 * np.exp(0.02 * slow[:, 5])  # pixels per inter-ocular distance
            valid = np.ones(T, dtype=bool)
            if k == 1:
                valid[10:14] = False  # a few frames where the fit failed
            from ksdiff import geometry

            rotvec = geometry.matrix_to_rotvec(geometry.euler_to_matrix(yaw, pitch, roll))
            write_table(root / "coeffs" / f"{clip}.parquet", "coeffs", {
                "sample": np.zeros(T, np.int16), "frame": np.arange(T, dtype=np.int32), "time_s": np.arange(T) / fps,
                "valid": valid, "rotvec": rotvec, "yaw": yaw, "pitch": pitch, "roll": roll, "trans": trans,
                "scale": scale, "jaw": np.zeros((T, 3)), "expr": list(expr.astype(np.float32)),
                "residual": np.full(T, 0.01)},
                attrs={"backend": "landmarks", "fps": fps, "n_expr": n_expr, "template": template.tolist(),
                       "basis": {"path": str(root / "basis.npz"), "sha256": ""}})
            voiced = z[:, 0] > -0.3
            f0 = np.where(voiced, 120.0 * np.exp(0.1 * z[:, 1]), 0.0)
            energy = -40.0 + 8.0 * z[:, 0]
            feat_path = root / "features" / f"{clip}.parquet"
            if bad_clips and split == "train" and k == 2 and s == 0:
                write_failure(feat_path, "features", "audio: no audio stream")
            else:
                write_table(feat_path, "features", {
                    "frame": np.arange(N, dtype=np.int32), "time_s": np.arange(N) / rate_hz,
                    "feat": list(feat.astype(np.float32)), "f0_hz": f0, "voiced": voiced, "energy_db": energy},
                    attrs={"kind": "logmel", "rate_hz": rate_hz, "dim": feat_dim, "checkpoint": "",
                           "sample_rate": 16000})
            # words of 0.2-0.5 s with short pauses
            words, starts, ends, t = [], [], [], 0.1
            while t < T / fps - 0.3:
                d = rng.uniform(0.2, 0.5)
                words.append(WORDS[int(rng.integers(len(WORDS)))])
                starts.append(t)
                ends.append(min(t + d, T / fps))
                t += d + rng.uniform(0.0, 0.15)
            write_table(root / "transcripts" / f"{clip}.parquet", "transcript", {
                "word": words, "start_s": starts, "end_s": ends, "confidence": np.ones(len(words))},
                attrs={"backend": "align", "model": "", "text": " ".join(words)})
    usable = [not (bad_clips and c == "spk0_clip1") for c in clips]
    n = len(clips)
    write_table(root / "qc.parquet", "qc", {
        "clip_id": clips, "speaker_id": speakers, "dataset": ["fake"] * n, "usable": usable,
        "reason": ["" if u else "landmarks: face lost" for u in usable], "n_frames": np.zeros(n, np.int64),
        "duration_s": np.zeros(n), "audio_duration_s": np.zeros(n), "av_mismatch_s": np.zeros(n),
        "detection_rate": np.ones(n), "landmark_jitter": np.zeros(n), "fit_residual": np.zeros(n),
        "n_words": np.zeros(n, np.int64)})
    write_table(root / "splits.parquet", "splits", {
        "clip_id": clips, "speaker_id": speakers, "split": [split_of[c] for c in clips]})
    return {"root": root, "clips": clips, "split": split_of, "mix": mix, "template": template, "basis": basis,
            "feat_dim": feat_dim, "n_expr": n_expr}


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def tiny_model_cfg(**over) -> dict:
    """A model small enough for a unit test to train in seconds."""
    d = dict(d_model=32, n_heads=2, n_layers=1, ffn_mult=2, msdc_dilations=[1, 2], msdc_groups=4,
             window=40, n_prev=5, n_train_steps=100, ddim_steps=5, vocab_size=64, dropout=0.0,
             pool_long=10, pool_mid=4)
    d.update(over)
    return d


def pack_results(root: Path) -> Path:
    """Every clip of a fabricated results folder in one training pack (ksdiff.data.packs), as the
    workflow's pack step writes it: what training reads."""
    from ksdiff import config
    from ksdiff.data.packs import pack_shard
    from ksdiff.io.schemas import MANIFEST

    clips = sorted(p.stem for p in (root / "coeffs").glob("*.parquet"))
    n = len(clips)
    cols = {f.name: [""] * n if str(f.type) == "string" else np.zeros(n) for f in MANIFEST}
    cols.update(clip_id=clips, has_audio=np.ones(n, bool), variable_fps=np.zeros(n, bool))
    write_table(root / "manifest" / "00000.parquet", "manifest", cols)
    pack_shard(config.defaults(), str(root / "manifest" / "00000.parquet"), str(root), str(root / "packs" / "00000.parquet"))
    return root


def fabricate_with_stats(root: Path, **kw) -> Path:
    """fabricate_results plus the normalisation statistics and the packs the trainer needs."""
    from ksdiff import config
    from ksdiff.data.stats import build_stats

    fabricate_results(root, **kw)
    build_stats(config.defaults(), qc=str(root / "qc.parquet"), splits=str(root / "splits.parquet"),
                results=str(root), out=str(root / "stats.parquet"))
    return pack_results(root)
