"""The model file and the training checkpoints: the writer (training) and the reader (`ksdiff infer`,
`ksdiff generate`) in one module, so the format has one definition.

Model file (``out``, e.g. models/synth/ksdiff/model.pt): ``model_payload`` plus ``val_loss`` and
``trained_steps``; everything inference needs (model and training configs, normalisation statistics, the
speech-feature kind and extractor checkpoint, the motion representation and the expression basis), so
`ksdiff infer` / `ksdiff generate` cannot silently pair it with other data.

Training checkpoint (checkpoints/step-{N:08d}.pt beside ``out``, the last ``keep_checkpoints`` kept): the
model payload plus the optimizer and grad-scaler states, the RNG states of python, numpy and torch (CPU
and CUDA), the best weights so far and the run's ``fingerprint``; with the step, that is all the data
order and noise depend on, so a run killed after checkpoint N and restarted continues on the same
trajectory. Only rank 0 writes, atomically (write + rename), so a kill never leaves half a file.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import torch

from ksdiff import __version__, numerics
from ksdiff.config import TrainConfig
from ksdiff.data import clip_arrays as ca
from ksdiff.data import motion
from ksdiff.models import METHODS, KSDiffConfig, build_model
from ksdiff.training.data import TrainData

CHECKPOINT_FORMAT = "ksdiff-checkpoint"
# 2: models with token positions, previous-frame speech and DPSE position bias (version-1 weights do not
# fit them: `ksdiff infer` refuses them with "retrain").
CHECKPOINT_VERSION = 2
REQUIRED_KEYS = ("format", "version", "method", "model_cfg", "model", "stats", "features", "motion")


class CheckpointError(ValueError):
    """Not a usable ksdiff model file (wrong kind, wrong method, missing keys, unreadable)."""


# ---------------------------------------------------------------------------- writing


def fingerprint(mcfg: dict, tcfg: TrainConfig, stats: ca.Stats, clips: list[str], chunks: int = 1) -> str:
    """What a resumable run must agree on: model and trajectory-relevant training config, stats, clips, and
    the micro-batches a step's noise is drawn in (ksdiff.training.loop; 1 = one stream, left out so
    single-process checkpoints keep their fingerprint)."""
    t = {k: v for k, v in tcfg.to_dict().items() if k not in TrainConfig._RESUME_FREE}
    blob = {"model": mcfg, "train": t, "stats": stats.to_dict(), "clips": clips}
    if chunks > 1:
        blob["chunks"] = chunks
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def checkpoint_dir(out: Path) -> Path:
    return out.parent / "checkpoints"


def list_checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("step-*.pt")) if folder.exists() else []


def prune_checkpoints(folder: Path, keep: int) -> None:
    for p in list_checkpoints(folder)[:-keep]:
        p.unlink(missing_ok=True)


def model_payload(model, mcfg, tcfg: TrainConfig, data: TrainData, step: int, name: str) -> dict:
    """Everything inference needs besides the speech: weights, configs, stats, feature kind, basis."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "n_params": int(sum(p.numel() for p in model.parameters())),  # the leaderboard's capacity column
        "method": mcfg.method,  # the architecture
        "name": name,  # the configured variant (e.g. ksdiff_nokel)
        "step": step,
        "numerics": numerics.describe(),  # which CPU code paths trained it (ksdiff/numerics.py)
        "model_cfg": mcfg.to_dict(),
        "train_cfg": tcfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "stats": data.stats.to_dict(),
        "features": {"kind": data.info["feature_kind"], "dim": data.info["feat_dim"],
                     "rate_hz": data.info["feat_rate_hz"], "checkpoint": data.info["feature_checkpoint"]},
        "motion": {"representation": motion.REPRESENTATION, "head_names": list(motion.HEAD_NAMES),
                   "fps": mcfg.fps, "expr_dim": mcfg.expr_dim,
                   "coeffs_backend": data.stats.attrs.get("coeffs_backend", ""),
                   "basis_ref": data.stats.attrs.get("basis", "")},
        "basis": data.basis,
        "ksdiff_version": __version__,
    }


def rng_state() -> dict:
    npst = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"key": npst[0], "state": torch.from_numpy(npst[1].astype(np.int64)), "pos": int(npst[2]),
                  "has_gauss": int(npst[3]), "cached": float(npst[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["key"], n["state"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------- reading


def load_checkpoint(path: str | Path, expect_method: str | None = None) -> dict:
    """Read and check a model file written by `ksdiff train`; CheckpointError says what is wrong."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, zip errors, truncated files
        raise CheckpointError(f"{path} is not a readable torch checkpoint: {type(e).__name__}: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a ksdiff model checkpoint (no format={CHECKPOINT_FORMAT!r})")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')}, this ksdiff reads "
                              f"{CHECKPOINT_VERSION}; retrain")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    if payload["method"] not in METHODS:
        raise CheckpointError(f"{path}: unknown method {payload['method']!r}; expected one of {METHODS}")
    if expect_method is not None and expect_method not in (payload["method"], payload.get("name")):
        raise CheckpointError(f"{path} holds a {payload.get('name', payload['method'])!r} model "
                              f"({payload['method']}), expected {expect_method!r}")
    try:
        motion.pose_frame_of(payload["motion"].get("representation"))
    except ValueError:
        raise CheckpointError(f"{path}: motion representation {payload['motion'].get('representation')!r}, "
                              f"this ksdiff uses {motion.REPRESENTATION!r}; retrain") from None
    return payload


def build_from_checkpoint(payload: dict, device: torch.device):
    """The model of a checked payload (``load_checkpoint``), in eval mode on ``device``."""
    # Checkpoints from before transcript_tokens existed were trained on hashed words.
    mcfg = KSDiffConfig.from_dict({"transcript_tokens": "words", **payload["model_cfg"]})
    model = build_model(mcfg)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit the {mcfg.method} model: {e}") from e
    return model.to(device).eval()


def resume_state(folder: Path, fp: str, steps: int) -> dict | None:
    """The latest training checkpoint in ``folder`` when it belongs to this run (same ``fingerprint``, not past
    ``steps``), else None. Every process reads the same file; deleting a stale one is the caller's (rank 0's)."""
    found = list_checkpoints(folder)
    if not found:
        return None
    state = torch.load(found[-1], map_location="cpu", weights_only=True)
    if state.get("fingerprint") == fp and state["step"] <= steps:
        state["path"] = str(found[-1])
        return state
    return None
