"""Renderer throughput: frames per second of the image warp and the shaded mesh.

A real face (insightface's Tom Hanks photo, MediaPipe landmarks) is turned and
moved through a sweep of head poses with the mouth opening and closing, and
each renderer draws every frame. The process is pinned to one core before
OpenCV starts its threads and rates are frames per CPU-second of that core
(time.process_time): the machine is shared, so wall-clock rates would measure
the neighbours. Writes benchmarks/out/render.json (wall-clock rates included).

    .venv/bin/python benchmarks/bench_render.py
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ksdiff.geometry import euler_to_matrix  # noqa: E402
from ksdiff.render.shaded import render_mesh  # noqa: E402
from ksdiff.render.triangles import boundary_loops, upper_inner_lip  # noqa: E402
from ksdiff.render.warp import FaceWarper  # noqa: E402
from tests.render_fixtures import face_photo  # noqa: E402

N_FRAMES = 200


def poses(lm: np.ndarray, n: int) -> np.ndarray:
    """(n, 478, 3): yaw/pitch/roll sweep, a small drift and a mouth opening 0..12% of the face."""
    c = lm.mean(0)
    t = np.arange(n) / 25.0
    _, mouth, *_ = boundary_loops()
    lower = sorted((set(mouth) - set(upper_inner_lip().tolist())) | {i for i in range(468) if lm[i, 1] > lm[14, 1]})
    face_h = np.ptp(lm[:, 1])
    out = []
    for k in range(n):
        p = lm.copy()
        p[lower, 1] += 0.06 * face_h * (1 + np.sin(2 * np.pi * 2.5 * t[k]))
        r = euler_to_matrix(12 * np.sin(2 * np.pi * 0.4 * t[k]), 6 * np.sin(2 * np.pi * 0.3 * t[k]), 5 * np.sin(2 * np.pi * 0.2 * t[k]))
        p = (p - c) @ r.T + c
        p[:, :2] += 0.02 * face_h * np.sin(2 * np.pi * 0.5 * t[k])
        out.append(p)
    return np.stack(out)


def fps(fn, frames) -> tuple[float, float]:
    """(frames per CPU-second, frames per wall-clock second)."""
    fn(frames[0])  # warm-up (triangulation caches, first allocation)
    w0, c0 = time.perf_counter(), time.process_time()
    for f in frames:
        fn(f)
    return len(frames) / (time.process_time() - c0), len(frames) / (time.perf_counter() - w0)


def main() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    results = {"n_frames": N_FRAMES, "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
               "load_avg_1min": os.getloadavg()[0], "runs": []}
    for size in (256, 512):
        ref, lm = face_photo(size)
        posed = poses(lm, N_FRAMES)
        warper = FaceWarper(ref, lm)
        mesh = lambda p, s=size: next(render_mesh([p], (s, s)))  # noqa: E731
        for name, fn in (("warp", warper.render), ("mesh", mesh)):
            cpu, wall = fps(fn, posed)
            results["runs"].append({"renderer": name, "size": size, "fps_per_core": round(cpu, 1), "fps_wall": round(wall, 1)})
    out = Path(__file__).parent / "out" / "render.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    for r in results["runs"]:
        print(f"{r['renderer']:5s} {r['size']}x{r['size']}: {r['fps_per_core']:7.1f} frames/s per core ({r['fps_wall']:.1f} wall)")
    print(f"(load average {results['load_avg_1min']:.1f} on {results['cpu_count']} cores) -> {out}")


if __name__ == "__main__":
    main()
