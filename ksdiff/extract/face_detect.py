"""Face detection, face choice and square face crops for the landmark step.

MediaPipe's face mesh finds faces with its own short-range detector, which
misses faces smaller than about 15% of the frame. So we detect first with
MediaPipe's face detector (full range by default), pick one face, cut a
square crop around it and mesh the crop (see ksdiff.extract.landmarks).

Close-ups: the full-range detector misses faces that fill most of the frame
(a 964x964 HDTF close-up lost its last 25 frames). FaceFinder therefore asks
the configured detector first and, only when it finds nothing, the other
MediaPipe detector (short range after full range) and then FaceMesh on the
whole frame, whose own detector and landmark model see the frame at their
own scale; each found face says which of them found it (``source``). The
fallbacks are built on first use and run only on frames the first finds no
face in, so frames it handles cost nothing more.

Which face when there are several: the face tracked so far (largest IoU with
the current crop box) and, when nothing is tracked yet, the largest face,
weighted towards the centre of the frame. Talking-head datasets (HDTF,
VoxCeleb) are cropped around the speaker, so the large central face is the
speaker; following it by IoU keeps the choice stable from frame to frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# A re-detection continues the current track when its box overlaps the crop
# box this much; below it the track is considered lost and a face is chosen
# afresh. Crop boxes are ~1.5x the face box, so a face that stayed put
# overlaps its crop box with IoU ~0.4; 0.1 rejects only a neighbour's face.
MIN_TRACK_IOU = 0.1


# Downscale factor above which crops are area-averaged rather than bilinearly
# resampled: up to 2x, bilinear taps still touch every source pixel row/column
# pair, and it is 5x cheaper (see benchmarks/bench_extract.py).
AREA_ABOVE = 2.0


@dataclass
class Detection:
    box: np.ndarray  # x0, y0, x1, y1 in full-frame pixels
    score: float  # NaN when found by FaceMesh, which reports no score


class FaceDetector:
    """MediaPipe face detection returning boxes in pixels.

    model_selection 1 is the full-range model (faces up to ~5 m, i.e. small
    in the frame); 0 is the short-range model (faster, faces within ~2 m).
    """

    def __init__(self, model_selection: int = 1, min_score: float = 0.5):
        import mediapipe as mp

        self.model_selection = model_selection
        self._fd = mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_score
        )

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        res = self._fd.process(rgb)
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            box = np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
            out.append(Detection(box=box, score=float(d.score[0])))
        return out

    def close(self) -> None:
        self._fd.close()


DETECTOR_NAMES = {1: "full-range", 0: "short-range"}
FULL_FRAME_MESH = "face-mesh"  # source name of a face found by FaceMesh on the whole frame


class FullFrameMesh:
    """FaceMesh (static mode) on the whole frame, as a detector: boxes around the landmarks."""

    def __init__(self, min_score: float = 0.5, max_faces: int = 1):
        import mediapipe as mp

        self._fm = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=max_faces, refine_landmarks=False, min_detection_confidence=min_score
        )

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        res = self._fm.process(rgb)
        out = []
        for lm in res.multi_face_landmarks or []:
            p = np.array([[q.x * w, q.y * h] for q in lm.landmark])
            out.append(Detection(box=np.r_[p.min(0), p.max(0)], score=float("nan")))
        return out

    def close(self) -> None:
        self._fm.close()


class FaceFinder:
    """The configured detector, then (only when it finds nothing) the other detector, then full-frame FaceMesh."""

    def __init__(self, model_selection: int = 1, min_score: float = 0.5):
        self.order = [DETECTOR_NAMES[model_selection], DETECTOR_NAMES[1 - model_selection], FULL_FRAME_MESH]
        self._min_score = min_score
        self._finders: dict = {self.order[0]: FaceDetector(model_selection, min_score)}

    def _finder(self, name: str):
        if name not in self._finders:  # a fallback is built on first use
            self._finders[name] = (FullFrameMesh(self._min_score) if name == FULL_FRAME_MESH
                                   else FaceDetector(1 if name == "full-range" else 0, self._min_score))
        return self._finders[name]

    @property
    def built(self) -> list[str]:
        """Names of the finders built so far (a fallback is built when first needed)."""
        return list(self._finders)

    def __call__(self, rgb: np.ndarray) -> tuple[list[Detection], str]:
        """(faces, name of the finder that found them); ([], '') when none did."""
        for name in self.order:
            dets = self._finder(name)(rgb)
            if dets:
                return dets, name
        return [], ""

    def close(self) -> None:
        for f in self._finders.values():
            f.close()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def choose_face(dets: list[Detection], shape: tuple[int, int], track_box: np.ndarray | None = None) -> int | None:
    """Index of the face to follow, or None when ``dets`` is empty.

    With a track: the detection overlapping ``track_box`` most (IoU >=
    MIN_TRACK_IOU). Otherwise: the largest face, its area discounted by its
    distance from the frame centre (a face at a corner counts ~half).
    """
    if not dets:
        return None
    if track_box is not None:
        ious = [iou(d.box, track_box) for d in dets]
        best = int(np.argmax(ious))
        if ious[best] >= MIN_TRACK_IOU:
            return best
    h, w = shape
    centre = np.array([w / 2, h / 2])
    half_diag = np.hypot(w, h) / 2

    def rank(d: Detection) -> float:
        area = (d.box[2] - d.box[0]) * (d.box[3] - d.box[1])
        c = np.array([(d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2])
        return area * (1.0 - 0.5 * np.linalg.norm(c - centre) / half_diag)

    return int(np.argmax([rank(d) for d in dets]))


def square_box(box: np.ndarray, margin: float) -> np.ndarray:
    """Square box around ``box``'s centre, side = longest side * (1 + 2 * margin)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * (0.5 + margin)
    return np.array([cx - half, cy - half, cx + half, cy + half])


def crop_square(rgb: np.ndarray, box: np.ndarray, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Cut the square ``box`` out of ``rgb`` (zero padding outside) at ``size`` x ``size``.

    Returns (crop, side, origin): a crop pixel (u, v) is the full-frame pixel
    origin + (u, v) * side / size. The padding keeps faces at the frame edge
    meshable. Bilinear resampling up to AREA_ABOVE x downscale (~0.2 ms),
    area averaging beyond it, where bilinear would alias (~1 ms).
    """
    h, w = rgb.shape[:2]
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    side = max(1, int(round(box[2] - box[0])))
    x1, y1 = x0 + side, y0 + side
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        patch = np.zeros((side, side, 3), np.uint8)
    else:
        patch = rgb[cy0:cy1, cx0:cx1]
        pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
        if any(pads):
            patch = cv2.copyMakeBorder(patch, *pads, cv2.BORDER_CONSTANT, value=0)
    interp = cv2.INTER_AREA if side > AREA_ABOVE * size else cv2.INTER_LINEAR
    crop = cv2.resize(patch, (size, size), interpolation=interp)
    return np.ascontiguousarray(crop), float(side), np.array([x0, y0], np.float64)
