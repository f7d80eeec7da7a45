"""Benchmark of the metrics from weights the user supplies: CPU seconds per minute of 25 fps video (1500
frames), one core, pinned numerics (the workflow's default).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_weighted_metrics.py [--clip PATH] [--frames N]

Writes benchmarks/out/weighted_metrics.json. The cost of a network does not depend on its weights' values, so
the real architectures are timed with random weights: pytorch-fid's FID InceptionV3 (ksdiff.metrics.fid) and
lpips' AlexNet LPIPS (ksdiff.metrics.lpips_score) on ``--frames`` frames of a real clip (default
../shared/data/hdtf/hdtf_sample_01.mp4, 512x512) and of the same frames at 256x256, scaled to 1500 frames.
Not timed: FVD's I3D and CSIM's ArcFace ResNet, whose architectures come only with their weight files
(i3d_torchscript.pt, an InsightFace ONNX pack), which are not on this machine; only CSIM's own share (5-point
alignment, norm_crop, batching) is timed, with a tiny ONNX model standing in for the network.
"""
from __future__ import annotations

import os

for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_k] = "1"

from ksdiff import numerics  # noqa: E402

numerics.pin("pinned")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "hdtf" / "hdtf_sample_01.mp4"
PER_MINUTE = 1500


def _timed(fn, n_frames: int) -> dict:
    c, w = time.process_time(), time.perf_counter()
    fn()
    c, w = time.process_time() - c, time.perf_counter() - w
    return {"frames": n_frames, "cpu_s": c, "wall_s": w, "cpu_s_per_minute": c / n_frames * PER_MINUTE,
            "wall_s_per_minute": w / n_frames * PER_MINUTE}


def _weights(tmp: Path) -> dict:
    from ksdiff.metrics.tv_compat import import_torchvision

    import_torchvision()  # see ksdiff.metrics.tv_compat
    from torchvision.models import alexnet
    from torchvision.models.inception import Inception3

    from ksdiff.metrics.weights import Weights

    torch.manual_seed(0)
    torch.save(Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict(), tmp / "inc.pth")
    torch.save(alexnet().state_dict(), tmp / "alex.pth")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 4, stride=4)
            self.fc = torch.nn.Linear(8 * 16, 512)

        def forward(self, x):
            return self.fc(torch.nn.functional.adaptive_avg_pool2d(self.conv(x), 4).flatten(1))

    torch.onnx.export(Tiny().eval(), torch.zeros(1, 3, 112, 112), str(tmp / "arc.onnx"), dynamo=False,
                      input_names=["input"], output_names=["fc1"], dynamic_axes={"input": {0: "n"}, "fc1": {0: "n"}})
    return {"fid": Weights.of("fid_inception", tmp / "inc.pth"), "lpips": Weights.of("lpips_alexnet", tmp / "alex.pth"),
            "csim": Weights.of("arcface_model", tmp / "arc.onnx")}


def bench(frames: np.ndarray, landmarks: np.ndarray, w: dict) -> dict:
    from ksdiff.metrics import csim, fid, lpips_score

    inc, lp, arc = fid.load_inception(w["fid"]), lpips_score.load_lpips(w["lpips"]), csim.load_arcface(w["csim"])
    n = len(frames)
    other = np.ascontiguousarray(frames[::-1])
    return {
        "fid_inception": _timed(lambda: fid.inception_features(inc, frames), n),
        "lpips_alexnet": _timed(lambda: lpips_score.lpips_frames(lp, frames, other), n),
        "csim_alignment_only": _timed(lambda: csim.embeddings(arc, frames, landmarks), n),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=str(CLIP))
    ap.add_argument("--frames", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from ksdiff.io.video import iter_frames
    from tests.render_fixtures import face_photo

    frames = np.stack([rgb for k, _, _, rgb in iter_frames(args.clip, 25.0) if k < args.frames])
    # CSIM's share is the same for any face: the fixture photo's landmarks scaled to the frame stand in
    _, lm = face_photo()
    lm512 = np.repeat((lm * frames.shape[1] / 160.0)[None], len(frames), 0)
    out = {"clip": Path(args.clip).name, "threads": 1, "numerics": numerics.describe(), "load_avg": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        w = _weights(Path(tmp))
        out[f"{frames.shape[2]}x{frames.shape[1]}"] = bench(frames, lm512, w)
        small = np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) for f in frames])
        out["256x256"] = bench(small, lm512 / 2, w)
    path = ROOT / "benchmarks" / "out" / "weighted_metrics.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps({k: v for k, v in out.items() if "x" in k}, indent=1))


if __name__ == "__main__":
    main()
