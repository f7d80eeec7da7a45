"""Benchmark of the motion extraction: decode, landmarks (variants), coefficient fit.

    .venv/bin/python benchmarks/bench_extract.py [--frames 500]

Writes benchmarks/out/extract.json and rewrites the "Extraction" section of
benchmarks/README.md (other sections are kept).

The process is pinned to one CPU core (sched_setaffinity) before MediaPipe or
numpy start their threads, and rates are frames per CPU-second of the
process (time.process_time), i.e. frames/s per core. CPU time rather than
wall time because the development machine is shared with other jobs: wall
time then measures the neighbours, CPU time our work (cache and
hyper-thread contention still slow it a little, so the numbers are on the
safe side). Wall-clock rates are stored beside them in the JSON.
Clip: the first --frames motion frames (25 fps) of
../shared/data/hdtf/hdtf_sample_01.mp4 (512x512, a real face) when present,
else a clip of the astronaut photo drifting and tilting, written with
ksdiff.io.video.write_video.

Landmark accuracy has no ground truth on real video, so each variant is
compared with FaceMesh run independently on every full frame in static mode
(MediaPipe's own detection + mesh, the slow, tracking-free reference):
  dev     median over frames of the mean 2-D landmark distance to the
          reference, in inter-ocular distances (outer eye corners 33-263);
  jitter  median over frames of the RMS second temporal difference of the
          2-D landmarks, in inter-ocular distances (lower = steadier).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from readme import cpu_model, replace_section  # benchmarks/readme.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "hdtf"
FPS = 25
log = logging.getLogger("bench_extract")


def pin_one_core() -> int:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def source_clip(tmp: Path, synthetic: bool = False) -> tuple[Path, str]:
    import cv2
    import numpy as np
    import skimage.data

    from ksdiff.io.video import write_video

    p = SHARED / "hdtf_sample_01.mp4"
    if p.exists() and not synthetic:
        return p, "hdtf_sample_01.mp4 (HDTF, 512x512)"
    astro = skimage.data.astronaut()
    frames = []
    for k in range(500):
        m = cv2.getRotationMatrix2D((256, 256), 8 * np.sin(k / 20), 1.0)
        m[:, 2] += (20 * np.sin(k / 30), 10 * np.sin(k / 17))
        frames.append(cv2.warpAffine(astro, m, (512, 512), borderMode=cv2.BORDER_REPLICATE))
    write_video(tmp / "astronaut.mp4", frames, FPS)
    return tmp / "astronaut.mp4", "astronaut photo, drifting and tilting (512x512, synthetic)"


class Clock:
    """Wall and CPU seconds of a block: ``with Clock() as c: ...; c.cpu, c.wall``."""

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c


def iod(lm):
    import numpy as np

    return np.linalg.norm(lm[:, 263, :2] - lm[:, 33, :2], axis=1)


def quality(lm, ref) -> dict:
    import numpy as np

    ok = np.isfinite(lm[:, 0, 0]) & np.isfinite(ref[:, 0, 0])
    scale = iod(ref)
    dev = np.linalg.norm(lm[:, :, :2] - ref[:, :, :2], axis=2).mean(1) / scale
    acc = lm[2:, :, :2] - 2 * lm[1:-1, :, :2] + lm[:-2, :, :2]
    jit = np.sqrt((acc**2).sum(2).mean(1)) / scale[1:-1]
    return {
        "detection_rate": float(np.isfinite(lm[:, 0, 0]).mean()),
        "dev_iod": float(np.median(dev[ok])),
        "jitter_iod": float(np.nanmedian(jit)),
    }


def mediapipe_full_frame(frames, static: bool):
    import mediapipe as mp
    import numpy as np

    from ksdiff.extract.landmarks import _landmark_array

    out = np.full((len(frames), 478, 3), np.nan)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=static, max_num_faces=1, refine_landmarks=True) as fm, Clock() as c:
        for i, f in enumerate(frames):
            r = fm.process(f)
            if r.multi_face_landmarks:
                out[i] = _landmark_array(r.multi_face_landmarks[0]) * (f.shape[1], f.shape[0], f.shape[1])
    return out, c


def tracker(frames, **opts):
    import numpy as np

    from ksdiff.extract.landmarks import LandmarkOptions, track_frames

    with Clock() as c:
        cols, _ = track_frames(((i, i / FPS, i, f) for i, f in enumerate(frames)), LandmarkOptions(**opts))
    return cols, cols["landmarks"].reshape(-1, 478, 3).astype(np.float64), c


def bench(n_frames: int, synthetic: bool = False) -> dict:
    import numpy as np

    from ksdiff.config import defaults
    from ksdiff.extract import basis as B
    from ksdiff.extract import coeffs as C
    from ksdiff.extract import pose as P
    from ksdiff.extract.landmarks import LandmarkOptions, track_frames
    from ksdiff.io.parquet import write_table
    from ksdiff.io.video import iter_frames, read_frames

    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    path, source = source_clip(tmp, synthetic)
    r: dict = {"source": source, "frames": n_frames}

    with Clock() as c:
        n = sum(1 for _ in zip(range(n_frames), iter_frames(path, FPS)))
    r["decode_fps"], r["decode_fps_wall"] = n / c.cpu, n / c.wall
    frames = read_frames(path, FPS, max_frames=n_frames)
    r["frame_size"] = list(frames.shape[1:3])

    ref, clock = mediapipe_full_frame(frames, static=True)
    variants = {"FaceMesh static, full frame (reference)": (ref, clock)}
    lm, clock = mediapipe_full_frame(frames, static=False)
    variants["FaceMesh tracking, full frame (misses small faces)"] = (lm, clock)
    configs = {
        "detect -> crop 256 -> mesh tracking, detect every 25 (default)": {},
        "  same, crop 192": {"crop_size": 192},
        "  same, crop 320": {"crop_size": 320},
        "  same, detect every frame": {"redetect_every": 1},
        "  same, short-range detector": {"detector_model": 0},
    }
    default_cols = None
    for name, opts in configs.items():
        cols, lm, clock = tracker(frames, **opts)
        variants[name] = (lm, clock)
        if default_cols is None:
            default_cols = cols
    r["landmarks"] = {
        name: {"fps": n_frames / c.cpu, "fps_wall": n_frames / c.wall, **quality(lm, ref)} for name, (lm, c) in variants.items()
    }
    r["iod_px"] = float(np.nanmedian(iod(ref)))

    from ksdiff.extract.face_detect import FaceDetector

    r["detector_ms"] = {}
    for model in (0, 1):
        det = FaceDetector(model)
        sub = frames[: min(100, len(frames))]
        with Clock() as c:
            for f in sub:
                det(f)
        det.close()
        r["detector_ms"]["full-range" if model else "short-range"] = 1000 * c.cpu / len(sub)

    # Coefficient fit on the default landmarks, through the real steps (Parquet I/O included).
    cfg = defaults()
    write_table(tmp / "clip.landmarks.parquet", "landmarks", default_cols, attrs={"fps": FPS})
    write_table(tmp / "splits.parquet", "splits", {"clip_id": ["clip"], "speaker_id": ["s"], "split": ["train"]})

    def timed(fn, *a, repeat=3):
        """Least CPU seconds of ``repeat`` runs."""
        best = np.inf
        for _ in range(repeat):
            with Clock() as c:
                fn(*a)
            best = min(best, c.cpu)
        return best

    t_pose = timed(P.fit_pose, cfg, tmp / "clip.landmarks.parquet", tmp / "clip.parquet")
    t_basis = timed(B.fit_basis, cfg, tmp / "splits.parquet", [str(tmp / "clip.parquet")], tmp / "basis.npz")
    t_coeffs = timed(C.project_coeffs, cfg, tmp / "clip.parquet", tmp / "basis.npz", tmp / "clip.coeffs.parquet")
    lm = default_cols["landmarks"].reshape(-1, 478, 3).astype(np.float64)
    t_compute = timed(lambda: P.solve_pose(P.build_template(lm), lm))
    r["fit"] = {
        "pose_fps": n_frames / t_pose,
        "coeffs_fps": n_frames / t_coeffs,
        "pose_plus_coeffs_fps": n_frames / (t_pose + t_coeffs),
        "pose_compute_only_fps": n_frames / t_compute,
        "basis_s_for_clip": t_basis,
    }

    # End to end per clip: decode + landmarks in one pass, then pose + coefficients.
    from itertools import islice

    with Clock() as c:
        track_frames(islice(iter_frames(path, FPS), n_frames), LandmarkOptions())
    t_lm = c.cpu
    r["end_to_end"] = {
        "decode_plus_landmarks_fps_wall": n_frames / c.wall,
        "decode_plus_landmarks_fps": n_frames / t_lm,
        "decode_landmarks_pose_coeffs_fps": n_frames / (t_lm + t_pose + t_coeffs),
    }
    return r


def write_readme(r: dict) -> None:
    m = r["machine"]
    rows = "\n".join(
        f"| {name.strip()} | {v['fps']:.0f} | {100 * v['detection_rate']:.0f}% | {v['dev_iod']:.4f} | {v['jitter_iod']:.4f} |"
        for name, v in r["landmarks"].items()
    )
    f, e = r["fit"], r["end_to_end"]
    md = f"""
Measured by `benchmarks/bench_extract.py` on {r['source']}, first {r['frames']} frames at 25 fps,
{r['frame_size'][1]}x{r['frame_size'][0]}; process pinned to one core of {m['cpus']}
({m['processor']}), mediapipe {m['mediapipe']}. All rates are frames per CPU-second of
that core, i.e. frames/s **per core** (the machine was shared with other jobs, which
makes wall-clock rates meaningless; they are in `benchmarks/out/extract.json` too).

| stage | frames/s per core |
| --- | ---: |
| decode only (PyAV, resampled to 25 fps) | {r['decode_fps']:.0f} |
| landmarks, default (decoded frames in memory) | {next(iter(v['fps'] for k, v in r['landmarks'].items() if 'default' in k)):.0f} |
| pose fit (`fit_pose`, Parquet read + write included) | {f['pose_fps']:.0f} |
| coefficients (`project_coeffs`, Parquet I/O included) | {f['coeffs_fps']:.0f} |
| pose fit, numpy only (template + per-frame Umeyama) | {f['pose_compute_only_fps']:.0f} |
| **decode + landmarks** | **{e['decode_plus_landmarks_fps']:.0f}** |
| **decode + landmarks + pose + coefficients** | **{e['decode_landmarks_pose_coeffs_fps']:.0f}** |

The expression basis (`fit_basis`, once per dataset) took {f['basis_s_for_clip']:.2f} s for this clip's frames.
One face detector call costs {r['detector_ms']['full-range']:.1f} ms (full range, the default) or
{r['detector_ms']['short-range']:.1f} ms (short range).

Landmark variants (same frames; dev and jitter in inter-ocular distances, see the script's
docstring; the inter-ocular distance is {r['iod_px']:.0f} px here, so 0.018 is ~{0.018 * r['iod_px']:.1f} px):

| variant | frames/s | detected | dev vs static | jitter |
| --- | ---: | ---: | ---: | ---: |
{rows}

FaceMesh in tracking mode reuses the previous frame's landmarks as its region of interest,
which is what makes it faster than static mode. Meshing a face-centred crop instead of the
full frame costs a little more per frame (crop + the detector every 25 frames) and finds
small faces: the landmark tests show a face at 10% of a 1024 px frame that full-frame
FaceMesh misses. The crop stays put until the face drifts by 10% of its side, which makes
the landmarks steadier than static mode and than re-cropping on every frame (an earlier
version did that: jitter 0.0155). All variants agree with the static reference to ~0.02
inter-ocular distances, about the reference's own frame-to-frame jitter. Crop sizes
192-320 differ by less than the run-to-run noise of this shared machine (+-10%); 256 is the
default. Detecting on every frame halves the rate for no accuracy gain.
"""
    readme = ROOT / "benchmarks" / "README.md"
    text = readme.read_text() if readme.exists() else ""
    readme.write_text(replace_section(text, "Extraction", md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--synthetic", action="store_true", help="use the astronaut clip even when HDTF is present")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cpu = pin_one_core()
    import mediapipe as mp

    results = bench(args.frames, args.synthetic)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "pinned_cpu": cpu,
        "processor": cpu_model(),
        "mediapipe": mp.__version__,
    }
    out = ROOT / "benchmarks" / "out" / "extract.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    write_readme(results)
    log.info("wrote %s and benchmarks/README.md", out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
