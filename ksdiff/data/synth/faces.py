"""Face photos for the synthetic corpus and their 478-point face mesh.

The photos come from installed packages only (no download): scikit-image's
astronaut and the sample images that ship inside the insightface wheel. We
never import insightface (it needs onnxruntime); we only read its files.

A *portrait* is one speaker's still image at the output size: the photo is
cropped, de-rolled and scaled so the face has the configured height, then
given a per-speaker look (mirror, colour, background), and the MediaPipe face
mesh is detected once on that final image. The renderer animates the
portrait by warping it from these landmarks, so they must be measured on
exactly the pixels that get warped.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ksdiff.geometry import CHIN, FOREHEAD, LEFT_EYE_OUTER, RIGHT_EYE_OUTER, face_frame, matrix_to_euler

log = logging.getLogger(__name__)

# Framing uses the face_frame landmarks: forehead top to chin is the face
# height, the outer eye corners give the in-plane tilt.

# Photos whose mesh says they are turned further than this are not used: a 2-D
# warp cannot show the hidden half of a face that is already in profile.
MAX_BASE_YAW_DEG = 25.0
# Where the face centre sits in the output frame (fraction of the size): a bit
# above the middle leaves room for the chin's travel and the neck.
FACE_CENTRE = (0.5, 0.48)


class PhotoError(RuntimeError):
    """A photo is missing, or no usable face mesh was found on it."""


@dataclass(frozen=True)
class PhotoSource:
    """One face in one installed photo.

    ``centre``/``box``: approximate face centre and size in the photo's pixels,
    used only to cut a search crop for the mesh (None: search the whole image).
    The insightface group photo t1.jpg is fixed in the pinned wheel; MediaPipe's
    own face detector misses half of its small faces, so the crops are listed
    here and the mesh (which runs its own detector on the crop) does the rest.
    """

    key: str  # stable id written into the ground truth (never an absolute path)
    name: str  # speaker name stem, alphanumeric
    gender: str  # 'f' | 'm': picks an espeak voice variant that suits the face
    package: str  # 'skimage' | 'insightface'
    file: str
    centre: tuple[int, int] | None = None
    box: int | None = None


# Ordered by how well each face animates (frontal, closed mouth first), so the
# default 4 speakers use the best ones. Names are neutral tags, not people.
SOURCES: tuple[PhotoSource, ...] = (
    PhotoSource("skimage:astronaut", "Astronaut", "f", "skimage", "astronaut"),
    PhotoSource("insightface:t1.jpg#2", "PokerB", "m", "insightface", "t1.jpg", (520, 351), 120),
    PhotoSource("insightface:t1.jpg#5", "PokerE", "f", "insightface", "t1.jpg", (1184, 343), 105),
    PhotoSource("insightface:t1.jpg#3", "PokerC", "m", "insightface", "t1.jpg", (798, 421), 105),
    PhotoSource("insightface:t1.jpg#0", "PokerA", "f", "insightface", "t1.jpg", (117, 344), 100),
    PhotoSource("insightface:Tom_Hanks_54745.png", "Portrait", "m", "insightface", "Tom_Hanks_54745.png"),
    # Checked and rejected by MAX_BASE_YAW_DEG, kept so the reason is logged:
    PhotoSource("insightface:t1.jpg#1", "PokerD", "f", "insightface", "t1.jpg", (325, 221), 97),
    PhotoSource("insightface:t1.jpg#4", "PokerF", "m", "insightface", "t1.jpg", (964, 143), 126),
    # The mask_*.jpg photos are left out: the mask hides the mouth this corpus
    # animates, and the face mesh finds no face on them anyway.
)


def insightface_images_dir() -> Path:
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        raise PhotoError("the insightface package is not installed (its sample photos are needed)")
    return Path(spec.submodule_search_locations[0]) / "data" / "images"


def load_photo(src: PhotoSource) -> np.ndarray:
    """The whole photo as RGB uint8, padded when the face fills it (see below)."""
    if src.package == "skimage":
        import skimage.data

        rgb = getattr(skimage.data, src.file)()
    else:
        path = insightface_images_dir() / src.file
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise PhotoError(f"cannot read {path}")
        rgb = bgr[:, :, ::-1]
    rgb = np.ascontiguousarray(rgb[:, :, :3])
    if src.centre is None and min(rgb.shape[:2]) < 200:
        # A tight face crop (the 112x112 ArcFace-aligned portrait): give the
        # detector and the framing some surroundings, a blurred extension of
        # the edges rather than mirrored copies of the face.
        rgb = soft_pad(rgb, rgb.shape[0] // 2)
    return rgb


def soft_pad(rgb: np.ndarray, pad: int) -> np.ndarray:
    """Pad by edge replication, blurred outside the original so it reads as backdrop."""
    big = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    blur = cv2.GaussianBlur(big, (0, 0), pad / 4)
    inside = np.zeros(big.shape[:2], np.float32)
    inside[pad:-pad, pad:-pad] = 1
    inside = cv2.GaussianBlur(inside, (0, 0), pad / 8)[:, :, None]
    return (inside * big + (1 - inside) * blur).astype(np.uint8)


class MeshDetector:
    """MediaPipe face mesh in still-image mode, 478 landmarks in pixels.

    z is MediaPipe's relative depth times the image width, which puts it on
    the same scale as x (MediaPipe's documented convention).
    """

    def __init__(self, min_detection_confidence: float = 0.3):
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            refine_landmarks=True,
            max_num_faces=1,
            min_detection_confidence=min_detection_confidence,
        )

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        res = self._mesh.process(rgb)
        if not res.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        lm = res.multi_face_landmarks[0].landmark
        return np.array([[p.x * w, p.y * h, p.z * w] for p in lm], dtype=np.float64)

    def close(self):
        self._mesh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def find_face(src: PhotoSource, rgb: np.ndarray, detector: MeshDetector) -> np.ndarray:
    """Landmarks of the source's face in full-photo pixel coordinates."""
    if src.centre is None:
        lm = detector(rgb)
        if lm is None:
            raise PhotoError(f"{src.key}: no face found")
        return lm
    x, y = src.centre
    s = int(1.5 * src.box)
    big = cv2.copyMakeBorder(rgb, s, s, s, s, cv2.BORDER_REPLICATE)
    crop = big[y : y + 2 * s, x : x + 2 * s]
    lm = detector(crop)
    if lm is None:
        raise PhotoError(f"{src.key}: no face found in the crop around {src.centre}")
    lm[:, 0] += x - s
    lm[:, 1] += y - s
    return lm


@dataclass
class Look:
    """Per-speaker appearance changes, so two speakers from one photo differ."""

    flip: bool = False
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel colour balance
    gamma: float = 1.0  # brightness curve
    bg_colour: tuple[int, int, int] = (128, 128, 128)  # background tint
    bg_tint: float = 0.0  # 0 keeps the photo's background, 1 replaces it by the tint
    bg_blur: float = 0.0  # Gaussian sigma (pixels) of the background, a depth-of-field look

    @classmethod
    def random(cls, rng: np.random.Generator, flip: bool) -> "Look":
        return cls(
            flip=flip,
            gain=tuple(float(g) for g in rng.uniform(0.88, 1.12, 3)),
            gamma=float(rng.uniform(0.85, 1.15)),
            bg_colour=tuple(int(c) for c in rng.integers(30, 226, 3)),
            bg_tint=float(rng.uniform(0.15, 0.45)),
            bg_blur=float(rng.uniform(0.0, 2.5)),
        )


@dataclass
class Portrait:
    """A speaker's still frame and its face mesh, ready to animate."""

    image: np.ndarray  # (size, size, 3) uint8 RGB
    landmarks: np.ndarray  # (478, 3) pixels (z on the x scale)
    source: PhotoSource
    look: Look
    base_pose: np.ndarray = field(default_factory=lambda: np.zeros(3))  # yaw, pitch, roll of the photo's face


def frame_face(rgb: np.ndarray, lm: np.ndarray, size: int, face_fraction: float) -> np.ndarray:
    """Crop/scale/de-roll the photo so the face is upright, centred, face_fraction high."""
    eye = lm[LEFT_EYE_OUTER, :2] - lm[RIGHT_EYE_OUTER, :2]
    angle = np.degrees(np.arctan2(eye[1], eye[0]))  # in-plane tilt of the eye line
    height = np.linalg.norm(lm[CHIN, :2] - lm[FOREHEAD, :2])
    scale = face_fraction * size / height
    centre = lm[:468, :2].mean(0)
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), float(scale))
    m[:, 2] += np.array([FACE_CENTRE[0] * size, FACE_CENTRE[1] * size]) - centre
    if scale < 1:  # warpAffine samples, it does not average: low-pass first against aliasing
        rgb = cv2.GaussianBlur(rgb, (0, 0), 0.5 / scale)
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def apply_look(img: np.ndarray, lm: np.ndarray, look: Look) -> np.ndarray:
    """Colour balance everywhere; tint and blur outside a feathered head region."""
    x = img.astype(np.float32) / 255.0
    x = np.clip(x * np.asarray(look.gain, np.float32), 0, 1) ** look.gamma
    if look.bg_tint > 0 or look.bg_blur > 0:
        mask = head_mask(lm, img.shape[0])
        bg = x
        if look.bg_blur > 0:
            bg = cv2.GaussianBlur(bg, (0, 0), look.bg_blur)
        bg = (1 - look.bg_tint) * bg + look.bg_tint * np.asarray(look.bg_colour, np.float32) / 255.0
        x = mask * x + (1 - mask) * bg
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def head_mask(lm: np.ndarray, size: int, grow: float = 1.35) -> np.ndarray:
    """(size, size, 1) float mask of the face grown to take in hair, feathered."""
    pts = lm[:468, :2]
    c = pts.mean(0)
    hull = cv2.convexHull(((pts - c) * grow + c).astype(np.float32)).reshape(-1, 2)
    mask = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(mask, np.round(hull * 16).astype(np.int32), 1.0, lineType=cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(mask, (0, 0), size / 40)[:, :, None]


@functools.lru_cache(maxsize=None)
def _photo_landmarks(key: str) -> tuple[np.ndarray, np.ndarray]:
    src = next(s for s in SOURCES if s.key == key)
    rgb = load_photo(src)
    with MeshDetector() as det:
        lm = find_face(src, rgb, det)
    return rgb, lm


def make_portrait(src: PhotoSource, size: int, face_fraction: float, look: Look,
                  detector: MeshDetector | None = None) -> Portrait:
    """Frame, mirror and recolour one photo, then detect its mesh on the result."""
    rgb, lm = _photo_landmarks(src.key)
    img = frame_face(rgb, lm, size, face_fraction)
    if look.flip:
        img = np.ascontiguousarray(img[:, ::-1])
    own = detector is None
    det = detector or MeshDetector()
    try:
        lm_img = det(img)
        if lm_img is None:
            raise PhotoError(f"{src.key}: face lost after framing")
        # Colour changes move landmarks by a fraction of a pixel at most, but
        # the warp must use the mesh of the pixels it warps: detect again.
        img = apply_look(img, lm_img, look)
        lm_final = det(img)
        if lm_final is None:
            raise PhotoError(f"{src.key}: face lost after the colour change")
    finally:
        if own:
            det.close()
    pose = matrix_to_euler(face_frame(lm_final))
    return Portrait(image=img, landmarks=lm_final, source=src, look=look, base_pose=pose)


@functools.lru_cache(maxsize=8)
def usable_sources(size: int, face_fraction: float) -> tuple[PhotoSource, ...]:
    """The sources whose face is found and turned at most MAX_BASE_YAW_DEG (cached per process)."""
    ok = []
    with MeshDetector() as det:
        for src in SOURCES:
            try:
                p = make_portrait(src, size, face_fraction, Look(), det)
            except PhotoError as e:
                log.warning("photo skipped: %s", e)
                continue
            if abs(p.base_pose[0]) > MAX_BASE_YAW_DEG:
                log.info("photo skipped: %s is turned %.0f deg (max %.0f)", src.key, p.base_pose[0],
                         MAX_BASE_YAW_DEG)
                continue
            ok.append(src)
    if not ok:
        raise PhotoError("no usable face photo found in the installed packages")
    return tuple(ok)
