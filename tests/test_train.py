"""Training: it learns, its checkpoints carry what inference needs, and a killed run resumes exactly."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from ksdiff.training import loop as train_mod
from fabricate import fabricate_with_stats, tiny_model_cfg
from ksdiff import cli, config
from ksdiff.infer import build_from_checkpoint, load_checkpoint


def make_cfg(**train):
    t = dict(steps=12, batch_size=4, val_every=6, ckpt_every=6, log_every=3, warmup_steps=2, lr=1e-3, num_threads=1)
    t.update(train)
    return config.defaults(model=tiny_model_cfg(), train=t)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    fabricate_with_stats(root)
    return root


def val_curve(out_dir, metric="loss"):
    with open(out_dir / "train_log.csv", newline="") as f:
        return {int(r["step"]): float(r["value"]) for r in csv.DictReader(f)
                if r["phase"] == "val" and r["metric"] == metric}


def test_training_lowers_validation_loss_and_writes_a_complete_model(results, tmp_path):
    out = tmp_path / "m" / "model.pt"
    train_mod.train(make_cfg(steps=120, val_every=40, ckpt_every=60), str(results), str(out))
    curve = val_curve(out.parent)
    assert sorted(curve) == [0, 40, 80, 120]
    assert curve[120] < 0.8 * curve[0], curve  # the untrained loss is the reference
    p = load_checkpoint(out, expect_method="ksdiff")
    assert p["trained_steps"] == 120 and p["val_loss"] == curve
    # select=best_val: the final weights are those of the lowest validation loss after training began
    assert p["step"] == min((s for s in curve if s > 0), key=curve.get)
    assert p["features"] == {"kind": "logmel", "dim": 8, "rate_hz": 50.0, "checkpoint": ""}
    assert p["model_cfg"]["feat_dim"] == 8 and p["model_cfg"]["expr_dim"] == 4  # shapes come from the data
    assert p["stats"]["attrs"]["clips"] == ["spk0_clip0", "spk1_clip0", "spk1_clip1", "spk1_clip2"]
    assert tuple(p["basis"]["components"].shape) == (4, 478 * 3) and len(p["basis"]["sha256"]) == 64
    assert "optimizer" not in p  # the final file is for inference only
    # the parameter count (the leaderboard's capacity column), in the model file and the log
    n_params = sum(v.numel() for v in build_from_checkpoint(p, torch.device("cpu")).parameters())
    assert p["n_params"] == n_params
    with open(out.parent / "train_log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["phase"] == "model"]
    assert [(r["step"], r["metric"], int(r["value"])) for r in rows] == [("0", "n_params", n_params)]
    # the validation samples' seams between windows are logged beside the lip error
    assert set(val_curve(out.parent, "seam_expr")) == {0, 40, 80, 120}
    # checkpoints: the last keep_checkpoints (2) are kept, each a full training state
    ck = sorted((out.parent / "checkpoints").glob("step-*.pt"))
    assert [c.name for c in ck] == ["step-00000060.pt", "step-00000120.pt"]
    state = torch.load(ck[-1], weights_only=True)
    assert {"optimizer", "scaler", "rng", "fingerprint", "sampler"} <= set(state)


def test_resume_after_a_kill_matches_an_uninterrupted_run(results, tmp_path, monkeypatch):
    cfg = make_cfg(steps=12, ckpt_every=6)
    full = tmp_path / "full" / "model.pt"
    train_mod.train(cfg, str(results), str(full))

    # Same run, killed at step 9: everything in memory is lost, only the step-6 checkpoint survives.
    part = tmp_path / "part" / "model.pt"
    real_lr_at = train_mod.lr_at

    def dying_lr_at(step, tcfg):
        if step == 9:
            raise KeyboardInterrupt("killed")
        return real_lr_at(step, tcfg)

    monkeypatch.setattr(train_mod, "lr_at", dying_lr_at)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(cfg, str(results), str(part))
    assert not part.exists()
    assert [p.name for p in (part.parent / "checkpoints").glob("step-*.pt")] == ["step-00000006.pt"]
    monkeypatch.setattr(train_mod, "lr_at", real_lr_at)
    torch.manual_seed(999)  # a fresh process would have another RNG state: the checkpoint must restore it
    train_mod.train(cfg, str(results), str(part))

    a = torch.load(full, weights_only=True)["model"]
    b = torch.load(part, weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    va, vb = val_curve(full.parent), val_curve(part.parent)
    assert vb == pytest.approx(va, rel=1e-5)
    # the killed run's log rows after step 6 were dropped, not duplicated
    with open(part.parent / "train_log.csv", newline="") as f:
        rows = [(r["step"], r["phase"], r["metric"]) for r in csv.DictReader(f)]
    assert len(rows) == len(set(rows))


def test_select_last_keeps_the_final_weights(results, tmp_path):
    out = tmp_path / "m" / "model.pt"
    train_mod.train(make_cfg(steps=6, select="last"), str(results), str(out))
    p = torch.load(out, weights_only=True)
    ck = torch.load(out.parent / "checkpoints" / "step-00000006.pt", weights_only=True)
    assert p["step"] == 6 and all(torch.equal(p["model"][k], ck["model"][k]) for k in p["model"])


def test_a_changed_configuration_does_not_resume(results, tmp_path, caplog):
    out = tmp_path / "m" / "model.pt"
    train_mod.train(make_cfg(steps=6), str(results), str(out))
    before = torch.load(out, weights_only=True)["model"]
    train_mod.train(make_cfg(steps=6, lr=5e-4), str(results), str(out))
    assert "belong to another configuration" in caplog.text
    after = torch.load(out, weights_only=True)
    assert after["train_cfg"]["lr"] == 5e-4 and after["step"] == 6
    assert any(not torch.equal(before[k], after["model"][k]) for k in before)


def test_unknown_settings_are_refused(results, tmp_path):
    with pytest.raises(ValueError, match="unknown train config keys"):
        train_mod.train(make_cfg(stepz=3), str(results), str(tmp_path / "m.pt"))
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        train_mod.train(make_cfg(), str(results), str(tmp_path / "m.pt"), method="nope")


def test_cli_trains_a_configured_method_variant(results, tmp_path):
    cfg = make_cfg(steps=3, val_every=3, ckpt_every=3)
    out = tmp_path / "nokel" / "model.pt"
    rc = cli.main(["train", "--results", str(results), "--out", str(out), "--method", "ksdiff_nokel",
                   "--opts", json.dumps(cfg)])
    assert rc == 0
    p = load_checkpoint(out, expect_method="ksdiff_nokel")
    assert p["method"] == "ksdiff" and p["name"] == "ksdiff_nokel" and p["model_cfg"]["use_kel"] is False


def test_validation_lip_error_is_the_leaderboards_lve_and_can_select_the_weights(results, tmp_path):
    import numpy as np

    from ksdiff.data import clip_arrays as ca
    from ksdiff.extract.basis import load_basis
    from ksdiff.extract.coeffs import decode_landmarks
    from ksdiff.infer import build_from_checkpoint
    from ksdiff.infer_sampling import sample_motion
    from ksdiff.metrics.lve import lve
    from ksdiff.metrics.protocol import PROTOCOL
    from ksdiff.models.transcript import tokenizer

    out = tmp_path / "m" / "model.pt"
    train_mod.train(make_cfg(steps=120, val_every=40, ckpt_every=60, select="best_val_lve"), str(results), str(out))
    curve = val_curve(out.parent, "lve")
    assert sorted(curve) == [0, 40, 80, 120]
    best = min((s for s in curve if s > 0), key=curve.get)
    assert curve[best] < 0.7 * curve[0], curve  # it learned to move the lips with the speech
    static = val_curve(out.parent, "lve_static")
    assert list(static) == [0] and curve[best] < 0.8 * static[0]  # and beats the mean face, logged for comparison
    p = load_checkpoint(out)
    assert p["step"] == best
    # the logged number is the pinned LVE on decoded landmarks of the same samples
    model = build_from_checkpoint(p, torch.device("cpu"))
    stats = ca.Stats.from_dict(p["stats"])
    basis = load_basis(results / "basis.npz")

    def landmarks(e):  # aligned landmarks of expression coefficients, identity template at the origin
        n = len(e)
        pose = {"expr": e, "rotvec": np.zeros((n, 3)), "trans": np.zeros((n, 3)), "scale": np.ones(n)}
        return decode_landmarks(pose, np.zeros((478, 3)), basis)[0]

    errors = []
    for k, clip in enumerate(ca.usable_clips(results, "val")):
        a = ca.load_clip(results, clip, 25.0, tokenizer(model.cfg))
        _, expr = sample_motion(model, stats, a.feat, a.feat_valid, a.prosody, a.words, 1,
                                config.TrainConfig().val_seed + k)
        errors.append(lve(landmarks(expr[0])[a.valid], landmarks(a.expr)[a.valid], PROTOCOL.lve_lip_indices,
                          PROTOCOL.lve_variant, scale=1.0))
    assert curve[best] == pytest.approx(float(np.mean(errors)), rel=1e-4)


def test_gpu_check_refuses_clearly_without_cuda():
    """benchmarks/gpu_check.py needs a GPU; without one it says so instead of training on the CPU."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_check.py"), "--results", "/nonexistent"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "no CUDA device" in r.stderr, r.stderr
