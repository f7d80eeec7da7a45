"""The config paths that load pretrained weights, run through the workflow from a config to the leaderboard on
a tiny synthetic corpus (issue 25 item 0: until now these paths had unit tests only).

No pretrained weights can be downloaded here (nor anywhere ksdiff runs: it never downloads), so every file is
randomly initialised and written in the exact on-disk format the real one comes in, by the builders the unit
tests use:

- speech features: features.kind wav2vec2, then hubert, each from features.pretrained_dir, a transformers
  checkpoint folder written by save_pretrained (config.json, model.safetensors, preprocessor_config.json);
  tests/test_features.py;
- LSE: eval.syncnet, a file laid out as syncnet_python's syncnet_v2.model (the plain state_dict of S with 1024
  embedding dimensions, torch's legacy serialization); tests/test_syncnet.py;
- FID (pytorch-fid's Inception state_dict), FVD (a TorchScript model with StyleGAN-V's I3D call signature),
  LPIPS (torchvision's AlexNet state_dict) and CSIM (an ONNX model of ArcFace's signature):
  tests/test_metrics_{fid,fvd,lpips,csim}.py.

The values random weights give are meaningless: these tests assert the wiring (which file scored what, its
sha256 in the tables and the report, the features' kind and dimension reaching training and inference, no
SyncNet expert trained when weights are given, a finite number in every cell), never a metric's quality.

The wav2vec2 run goes to the leaderboard (KSDiff trained and sampled, every method scored); the same
directory is then switched to hubert and run to KSDiff's predictions only (extraction, training, inference:
scoring does not read the speech features). Out of scope: coeffs.backend deca (DECA's and FLAME's files are
licence-gated: no stand-in in their formats can be written without them) and transcript.backend whisper (its
package is not installed).
"""
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ksdiff.io import parquet
from ksdiff.metrics.registry import CSIM, FID, FVD, LPIPS
from tests.conftest import REPO
from tests.test_features import tiny_hubert, tiny_wav2vec2  # noqa: F401  (fixtures: checkpoint folders)
from tests.test_metrics_csim import weights as arcface  # noqa: F401  (fixtures: random weight files)
from tests.test_metrics_fid import weights as fid_weights  # noqa: F401
from tests.test_metrics_fvd import weights as i3d  # noqa: F401
from tests.test_metrics_lpips import backbone  # noqa: F401
from tests.test_syncnet import official_syncnet  # noqa: F401

pytestmark = pytest.mark.slow

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
DATASET = "syn"
METHODS = ("ground_truth", "ksdiff", "static", "mismatched")
CONFIG = {
    "datasets": [{"name": DATASET, "root": "data/syn", "synthetic": True, "synthetic_layout": "hdtf"}],
    # four speakers, two clips each, one sentence: one speaker (two clips) in test
    "synth": {"seed": 0, "speakers": 4, "clips_per_speaker": 2, "sentences_per_clip": 1, "size": 128},
    "coeffs": {"n_expr": 16},
    "dataset": {"val_fraction": 0.25, "test_fraction": 0.25},
    "methods": {"ksdiff": {}},
    "train": {"steps": 10, "num_threads": 1},
    "infer": {"n_samples": 1},
    "eval": {"lse_samples": 1, "video_samples": 1, "bootstrap_samples": 200},
}
WEIGHTED = {"fid": FID, "fvd": FVD, "lpips": LPIPS, "csim": CSIM}


def _snakemake(wd, *targets, timeout=2400):
    r = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(wd), "--cores", "2", *targets],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    return r.stdout + r.stderr


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _features(wd, kind, model_dir):
    """What the run left of its speech features, read before the next run replaces them: each clip's
    features table (attrs, feature dimension), the model's record of them and its predictions' tables."""
    tables = {}
    for p in sorted((wd / f"results/{DATASET}/features").glob("*.parquet")):
        t = parquet.read_table(p, "features")
        tables[p.stem] = {"ok": t.ok, "reason": t.reason, "attrs": t.attrs,
                          "shape": np.stack(t.column("feat")).shape if t.ok else None}
    payload = torch.load(wd / f"models/{DATASET}/ksdiff/model.pt", map_location="cpu", weights_only=False)
    preds = {p.stem: parquet.read_table(p, "coeffs") for p in (wd / f"predictions/{DATASET}/ksdiff").glob("*.parquet")}
    return {"kind": kind, "dir": Path(model_dir), "tables": tables, "model": payload["features"],
            "predictions": {c: (t.ok, t.reason, t.attrs.get("checkpoint_sha256")) for c, t in preds.items()},
            "model_sha256": _sha(wd / f"models/{DATASET}/ksdiff/model.pt")}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_wav2vec2, tiny_hubert, official_syncnet, fid_weights, i3d, backbone, arcface):  # noqa: F811
    wd = tmp_path_factory.mktemp("weights")
    weights = {"syncnet": str(official_syncnet), "fid_inception": fid_weights.path, "fvd_i3d": i3d.path,
               "lpips_alexnet": backbone.path, "arcface_model": arcface.path}
    cfg = {**CONFIG, "features": {"kind": "wav2vec2", "pretrained_dir": str(tiny_wav2vec2)},
           "eval": {**CONFIG["eval"], **weights}}
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.monotonic()
    _snakemake(wd)
    t1 = time.monotonic()
    runs = {"wav2vec2": _features(wd, "wav2vec2", tiny_wav2vec2)}
    # The same corpus with HuBERT features, to KSDiff's predictions (scoring does not read the features).
    (wd / "config.yaml").write_text(yaml.safe_dump({**cfg, "features": {"kind": "hubert",
                                                                         "pretrained_dir": str(tiny_hubert)}}))
    _snakemake(wd, f"predictions/{DATASET}/shards/ksdiff/00000.parquet")
    t2 = time.monotonic()
    runs["hubert"] = _features(wd, "hubert", tiny_hubert)
    print(f"wav2vec2 run to the leaderboard {t1 - t0:.0f} s, hubert run to the predictions {t2 - t1:.0f} s")
    splits = parquet.read_table(wd / f"results/{DATASET}/splits.parquet", "splits").to_pandas()
    return {"wd": wd, "runs": runs, "weights": weights, "files": {"fid": fid_weights, "fvd": i3d, "lpips": backbone,
                                                                  "csim": arcface},
            "test": sorted(splits.loc[splits["split"] == "test", "clip_id"])}


def _metrics(run, method):
    t = parquet.read_table(run["wd"] / f"metrics/{DATASET}/{method}.parquet", "metrics")
    assert t.ok, t.reason
    return t.to_pandas(), t.attrs


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert"])
def test_features_tables_record_the_checkpoint_and_have_its_dimension(run, kind):
    r = run["runs"][kind]
    dim = json.loads((r["dir"] / "config.json").read_text())["hidden_size"]
    sha = {"model.safetensors": _sha(r["dir"] / "model.safetensors")}
    assert len(r["tables"]) == 8
    for clip, t in r["tables"].items():
        assert t["ok"], (clip, t["reason"])
        a = t["attrs"]
        assert (a["kind"], a["dim"], a["rate_hz"]) == (kind, dim, 50), (clip, a)
        assert a["checkpoint"] == {"path": str(r["dir"].resolve()), "sha256": sha, "model_type": kind}
        assert t["shape"][1] == dim


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert"])
def test_training_and_inference_consume_the_pretrained_features(run, kind):
    r = run["runs"][kind]
    dim = json.loads((r["dir"] / "config.json").read_text())["hidden_size"]
    # the model was trained on them: its record of the features is the tables'
    table = next(iter(r["tables"].values()))["attrs"]
    assert r["model"]["kind"] == kind and r["model"]["dim"] == dim
    assert r["model"]["checkpoint"] == table["checkpoint"]
    # and sampled every test clip from them (inference refuses features other than the model's)
    assert sorted(r["predictions"]) == run["test"]
    assert all(ok and sha == r["model_sha256"] for ok, _, sha in r["predictions"].values()), r["predictions"]


def test_lse_is_scored_with_the_given_syncnet_file_and_no_expert_is_trained(run):
    sha = _sha(run["weights"]["syncnet"])
    for method in METHODS:
        df, attrs = _metrics(run, method)
        assert attrs["lse"]["scored"] and attrs["lse"]["sha256"] == sha, (method, attrs["lse"])
        assert attrs["lse"]["weights"] == str(Path(run["weights"]["syncnet"]).resolve())
        assert attrs["lse"]["check"] is None  # official weights carry no held-out check of ours
        lse = df[df.metric.isin(["lse_d", "lse_c"])]
        assert set(lse.clip_id) == set(run["test"]) and np.isfinite(lse.value).all(), method
    assert not (run["wd"] / f"models/{DATASET}/syncnet").exists()
    assert not (run["wd"] / f"logs/{DATASET}/syncnet_expert.log").exists()


@pytest.mark.parametrize("name", list(WEIGHTED))
def test_weight_based_metrics_are_scored_for_every_method_with_their_files(run, name):
    w = run["files"][name]
    for method in METHODS:
        df, attrs = _metrics(run, method)
        rec = attrs["weighted"][name]
        assert rec["scored"] and rec["sha256"] == w.sha256 and rec["weights"] == w.path, (method, rec)
        if name in ("fid", "fvd"):  # set-level: one value per method in the attrs
            assert attrs[name]["value"] is not None and np.isfinite(attrs[name]["value"]), (method, attrs[name])
            assert attrs[name]["weights"]["sha256"] == w.sha256
        else:
            rows = df[df.metric == WEIGHTED[name]]
            assert set(rows.clip_id) == set(run["test"]) and np.isfinite(rows.value).all(), (method, rows)


def test_the_leaderboard_has_every_weighted_metric_and_prints_each_files_sha256(run):
    """Each file's path and sha256 in the weights table. The metric notes still define FID, FVD, LPIPS and
    CSIM by the published weights (pt_inception-2015-12-05, Kinetics-400 I3D, ImageNet AlexNet): the report
    cannot tell a stand-in from them, only the sha256 does."""
    board = (run["wd"] / f"reports/{DATASET}/leaderboard.md").read_text()
    weights = board.split("## Software and weights")[1]
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in weights.splitlines()
            if line.startswith("| ")}
    assert rows["SyncNet weights"] == (f"{Path(run['weights']['syncnet']).resolve()} "
                                       f"(sha256 {_sha(run['weights']['syncnet'])})")
    for name, label in (("fid", "FID"), ("fvd", "FVD"), ("lpips", "LPIPS"), ("csim", "CSIM")):
        w = run["files"][name]
        assert rows[f"{label} weights"] == f"{w.path} (sha256 {w.sha256})"
    # the speech encoder KSDiff was trained on (the report was written by the wav2vec2 run)
    w2v = run["runs"]["wav2vec2"]["dir"]
    assert rows["speech encoder of ksdiff (wav2vec2)"] == (f"{w2v.resolve()} "
                                                           f"(model.safetensors sha256 {_sha(w2v / 'model.safetensors')})")
    # a column per weight-based metric, with a number in every method's row
    for label in ("FID", "FVD", "LPIPS", "CSIM"):
        cells = _board_column(board, label)
        assert set(cells) == set(METHODS), (label, cells)
        for method, cell in cells.items():
            assert np.isfinite(float(cell.split(" ")[0].strip("*"))), (label, method, cell)


def _board_column(board: str, label: str) -> dict:
    """{method: cell} of the column headed ``label`` (then its arrow and notes) in the family table holding it."""
    for section in board.split("\n### ")[1:]:
        table = section.split("\n\n")[2]  # the title, the caption, then the table
        lines = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
                 if line.startswith("| ")]  # the header, then the rows ('|---|' is not one)
        hit = [i for i, head in enumerate(lines[0] if lines else []) if head.split(" ")[0] == label]
        if hit:
            method = lines[0].index("Method")
            return {row[method]: row[hit[0]] for row in lines[1:]}
    raise AssertionError(f"no column {label} in the leaderboard")
