"""Shared fixtures for the renderer / evaluation / report tests: a real face and
fabricated results folders whose coefficients decode exactly to known landmarks."""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from ksdiff.geometry import LEFT_EYE_OUTER, RIGHT_EYE_OUTER, face_frame, matrix_to_euler, matrix_to_rotvec

N = 478


@functools.lru_cache(maxsize=4)
def face_photo(size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (size, size, 3) uint8, landmarks (478, 3) pixels) of insightface's Tom Hanks
    photo scaled into a grey frame, landmarks from MediaPipe FaceMesh on that frame."""
    import cv2
    import mediapipe as mp

    d = Path(importlib.util.find_spec("insightface").submodule_search_locations[0]) / "data" / "images"
    img = cv2.cvtColor(cv2.imread(str(d / "Tom_Hanks_54745.png")), cv2.COLOR_BGR2RGB)
    inner = int(size * 0.75)
    img = cv2.resize(img, (inner, inner), interpolation=cv2.INTER_CUBIC)
    frame = np.full((size, size, 3), 96, np.uint8)
    o = (size - inner) // 2
    frame[o : o + inner, o : o + inner] = img
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as fm:
        res = fm.process(frame)
    lm = res.multi_face_landmarks[0].landmark
    pts = np.array([[p.x * size, p.y * size, p.z * size] for p in lm], dtype=np.float64)
    frame.setflags(write=False)
    pts.setflags(write=False)
    return frame, pts


def canonical(landmarks: np.ndarray):
    """(template, scale, rotation matrix, trans) with landmarks = scale * template @ R.T + trans,
    template in inter-ocular units (outer eye corners 1 apart), frontal."""
    p = np.asarray(landmarks, dtype=np.float64)
    c = p.mean(0)
    r = face_frame(p)
    s = float(np.linalg.norm(p[LEFT_EYE_OUTER] - p[RIGHT_EYE_OUTER]))
    return (p - c) @ r / s, s, r, c


def write_basis(path: Path, components: np.ndarray) -> Path:
    """A basis file in fit_basis's format with the given orthonormal (K, 1434) components."""
    k = len(components)
    np.savez(
        path, mean=np.zeros(N * 3, np.float32), components=components.astype(np.float32),
        std=np.ones(k, np.float32), explained_variance_ratio=np.full(k, 1.0 / k, np.float32),
        n_frames=np.int64(100), n_expr=np.int64(k), n_expr_requested=np.int64(k), frame_stride=np.int64(1),
        clips=np.array(["train_a"]), template_iod=np.float64(1.0),
    )
    return path


def coeffs_cols(expr: np.ndarray, rot: np.ndarray, trans: np.ndarray, scale: np.ndarray, sample: int = 0, fps: float = 25) -> dict:
    """Columns of a 'coeffs' table: expr (T, K), rot (T, 3, 3), trans (T, 3), scale (T,)."""
    t = len(expr)
    ypr = matrix_to_euler(rot)
    return {
        "sample": np.full(t, sample, np.int16), "frame": np.arange(t, dtype=np.int32), "time_s": np.arange(t) / fps,
        "valid": np.ones(t, bool), "rotvec": matrix_to_rotvec(rot), "yaw": ypr[:, 0], "pitch": ypr[:, 1], "roll": ypr[:, 2],
        "trans": trans, "scale": scale, "jaw": np.zeros((t, 3)), "expr": list(np.asarray(expr, np.float32)),
        "residual": np.zeros(t),
    }


def concat_cols(*cols: dict) -> dict:
    return {k: (sum((list(c[k]) for c in cols), []) if k == "expr" else np.concatenate([c[k] for c in cols])) for k in cols[0]}


def head_motion(t: int, seed: int, amp: float = 6.0) -> np.ndarray:
    """(T, 3) smooth yaw/pitch/roll wobble in degrees."""
    rng = np.random.default_rng(seed)
    x = np.arange(t) / 25.0
    f = rng.uniform(0.3, 1.5, 3)
    ph = rng.uniform(0, 2 * np.pi, 3)
    return amp * np.sin(2 * np.pi * f * x[:, None] + ph)
