"""CSIM: cosine similarity of ArcFace identity embeddings, with InsightFace's own ArcFace code path.

The model is an ArcFace ONNX file from an InsightFace model pack (``eval.arcface_model``, e.g. buffalo_l's
w600k_r50.onnx), run by ``insightface.model_zoo.arcface_onnx.ArcFaceONNX`` on onnxruntime's CPU provider:
InsightFace's alignment (``face_align.norm_crop``: similarity transform of 5 points onto ArcFace's 112 x 112
template), its input scaling (read from the model as InsightFace does) and its ``compute_sim``. Frames are
handed over in BGR, as InsightFace reads images with cv2.

Where ksdiff departs from InsightFace's FaceAnalysis: the 5 points come from the 478 MediaPipe landmarks
ksdiff extracts (or renders) for the frame, not from InsightFace's SCRFD detector: iris centres 468 and 473
(the eyes), nose tip 1, mouth corners 61 and 291, in InsightFace's order (image-left eye first). A frame
without landmarks has no embedding. Crops of one video are embedded in batches (one session run for many
faces; the same per-face arithmetic).
"""
from __future__ import annotations

import numpy as np
import onnxruntime
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from insightface.utils import face_align

from ksdiff.landmark_points import N_MESH, has_irises
from ksdiff.metrics.weights import Weights

FIVE_POINTS = (468, 473, 1, 61, 291)  # MediaPipe: iris centres, nose tip, mouth corners (InsightFace's kps order)
NO_IRISES = ("the face is aligned on its iris centres (landmarks 468 and 473, InsightFace's five points), and these "
             "landmarks have none (landmarks.refine_landmarks is false)")
BATCH = 32


def load_arcface(weights: Weights) -> ArcFaceONNX:
    session = onnxruntime.InferenceSession(weights.path, providers=["CPUExecutionProvider"])
    return ArcFaceONNX(model_file=weights.path, session=session)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(T, 5, 2) InsightFace keypoints of (T, 478, >=2) MediaPipe landmarks in pixels (NaN where none).
    ValueError (NO_IRISES) for faces meshed without irises."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if np.isfinite(lm[:, :N_MESH]).any() and not has_irises(lm):
        raise ValueError(NO_IRISES)
    return lm[:, list(FIVE_POINTS), :2]


def embeddings(model: ArcFaceONNX, frames: np.ndarray, landmarks: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """(T, D) ArcFace embeddings of (T, H, W, 3) RGB uint8 frames; NaN rows where the frame has no landmarks."""
    kps = five_points(landmarks)
    ok = np.flatnonzero(np.isfinite(kps).all(axis=(1, 2)))
    size = model.input_size[0]
    crops = [face_align.norm_crop(np.ascontiguousarray(frames[t][..., ::-1]), landmark=kps[t], image_size=size)
             for t in ok]
    feats = [model.get_feat(crops[i:i + batch]) for i in range(0, len(crops), batch)]
    dim = int(model.output_shape[-1]) if isinstance(model.output_shape[-1], int) else (feats[0].shape[1] if feats else 512)
    out = np.full((len(kps), dim), np.nan)
    if feats:
        out[ok] = np.concatenate(feats)
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row ArcFaceONNX.compute_sim (dot / product of norms); NaN where either row is NaN."""
    return np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

