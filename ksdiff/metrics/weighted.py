"""The metrics that need pretrained weights the user supplies (FID, FVD, LPIPS, CSIM): which are configured,
their loaded models and hashes, and the set-level moments of FID and FVD.

Each metric reads one ``eval`` key (``KEYS``); null leaves it out and every clip records why
(``reason``), a set path that is missing stops the run before any clip (ksdiff.metrics.weights). The models
load only when configured (their packages import torch, torchvision, onnxruntime: ``LOADERS`` name the
modules, imported then). FID and FVD are set-level like E-FID: each scored clip adds its frames' features to
running moments per side (ground truth's recorded video, the method's frames); the tables keep the moments
in their attrs (``set_record``, compact: float64 bytes in base64, the covariance's upper triangle: 2048
dimensions are 17 MB, not 4 million JSON numbers) so shards add up exactly (``merged``).
"""
from __future__ import annotations

import base64
import importlib
from dataclasses import dataclass, field

import numpy as np

from ksdiff.metrics.efid import Moments, frechet_distance
from ksdiff.metrics.weights import Weights, not_configured

KEYS = {"fid": "fid_inception", "fvd": "fvd_i3d", "lpips": "lpips_alexnet", "csim": "arcface_model"}
LABELS = {"fid": "FID", "fvd": "FVD", "lpips": "LPIPS", "csim": "CSIM"}
# name -> (module under ksdiff.metrics, its loader): imported only when the metric's weights are configured
LOADERS = {"fid": ("fid", "load_inception"), "fvd": ("fvd", "load_i3d"), "lpips": ("lpips_score", "load_lpips"),
           "csim": ("csim", "load_arcface")}
SET_LEVEL = ("fid", "fvd")
SIDES = ("ground_truth", "method")


def _module(name: str):
    return importlib.import_module(f"ksdiff.metrics.{LOADERS[name][0]}")


@dataclass
class WeightedModels:
    """The configured weight-based metrics of one run: models, weights, FID/FVD moments."""

    weights: dict = field(default_factory=dict)  # name -> Weights
    models: dict = field(default_factory=dict)  # name -> loaded model
    sets: dict = field(default_factory=lambda: {n: {s: Moments() for s in SIDES} for n in SET_LEVEL})

    @classmethod
    def from_cfg(cls, ev: dict) -> "WeightedModels":
        out = cls()
        for name, key in KEYS.items():
            if ev.get(key):
                w = Weights.of(key, ev[key])  # raises now when a configured file is missing
                out.weights[name] = w
                out.models[name] = getattr(_module(name), LOADERS[name][1])(w)
        return out

    def on(self, name: str) -> bool:
        return name in self.models

    @staticmethod
    def reason(name: str) -> str:
        return not_configured(LABELS[name], KEYS[name])

    def describe(self) -> dict:
        """attrs['weighted']: per metric, the weights that scored it (path, sha256) or why it was not scored."""
        out = {}
        for name in KEYS:
            if name not in self.weights:
                out[name] = {"scored": False, "note": self.reason(name)}
            elif name == "lpips":
                out[name] = {"scored": True, **_module(name).describe(self.models[name], self.weights[name])}
            else:
                out[name] = {"scored": True, **self.weights[name].describe()}
        return out


def encode(m: Moments) -> dict:
    if m.n == 0:
        return {"n": 0}
    iu = np.triu_indices(len(m.total))
    b64 = lambda a: base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode()  # noqa: E731
    return {"n": int(m.n), "dim": len(m.total), "sum": b64(m.total), "outer_upper": b64(m.outer[iu])}


def decode(d: dict | None) -> Moments:
    if not d or not d.get("n"):
        return Moments()
    k = int(d["dim"])
    total = np.frombuffer(base64.b64decode(d["sum"]), dtype="<f8").copy()
    outer = np.zeros((k, k))
    outer[np.triu_indices(k)] = np.frombuffer(base64.b64decode(d["outer_upper"]), dtype="<f8")
    outer = outer + np.triu(outer, 1).T
    return Moments(int(d["n"]), total, outer)


def distance(name: str, gt: Moments, method: Moments) -> tuple[float, str]:
    """(FID or FVD, '') or (NaN, why): FID with pytorch-fid's arithmetic (ddof 1), FVD with StyleGAN-V's
    (ddof 0, ksdiff.metrics.fvd.fvd_distance; method = 'gen', ground truth = 'real')."""
    if gt.n < 2 or method.n < 2:
        unit = "frames" if name == "fid" else "16-frame windows"
        return float("nan"), f"too few {unit} for a covariance (ground truth {gt.n}, method {method.n})"
    if name == "fid":
        return frechet_distance(*gt.gaussian(), *method.gaussian()), ""
    return _module("fvd").fvd_distance(*method.gaussian(ddof=0), *gt.gaussian(ddof=0)), ""


def set_record(name: str, acc: dict, weights: list[dict | None], definition: str,
               known: tuple[float, str] | None = None) -> dict:
    """A table's attrs[name] for FID or FVD: the moments per side, the value or why there is none.
    ``weights``: the weights' record (Weights.describe()) of each part scored (one job, or every shard).
    ``known``: (value, why) already computed from these very moments and weights (``merged_record``)."""
    hashes = {w["sha256"] for w in weights if w}
    if not hashes:
        value, why = float("nan"), WeightedModels.reason(name)
    elif len(hashes) > 1 or None in weights:
        value, why = float("nan"), (f"{LABELS[name]}: the shards were scored with different weights "
                                    f"({len(hashes)} files, {weights.count(None)} shard(s) without): not one distribution")
    elif known is not None:
        value, why = known
    else:
        value, why = distance(name, acc["ground_truth"], acc["method"])
    return {"ground_truth": encode(acc["ground_truth"]), "method": encode(acc["method"]),
            "value": value if np.isfinite(value) else None, "reason": why, "definition": definition,
            "weights": next((w for w in weights if w), None)}


def merged_record(name: str, records: list[dict], definition: str) -> dict:
    """attrs[name] of a merged table: ``set_record`` over the shards' summed moments. A run whose test clips
    fit one shard (the demo, most small runs) has one record, whose value is already the merged one (the
    same moments, the same weights): it is taken rather than recomputed, since FID's distance is two
    2048-d matrix square roots (about 40 s on a slow core) per method."""
    acc, weights = merged(name, records), [r.get("weights") for r in records]
    known = None
    if len(records) == 1 and "value" in records[0]:
        value = records[0]["value"]
        known = (float("nan") if value is None else float(value), records[0].get("reason", ""))
    return set_record(name, acc, weights, definition, known)


def merged(name: str, records: list[dict | None]) -> dict:
    """The summed moments per side of the shards' attrs[name] records."""
    acc = {s: Moments() for s in SIDES}
    for r in records:
        for s in SIDES:
            acc[s] = acc[s].merge(decode((r or {}).get(s)))
    return acc
