"""Per-frame 478-point face mesh of one clip: detect -> crop -> mesh, tracked.

Pipeline per frame (FaceTracker):
  1. Face detection (MediaPipe, full range by default) on the first frame,
     every ``redetect_every`` frames, and whenever the mesh loses the face.
     When it finds nothing (close-ups defeat the full-range model), the
     short-range detector and then FaceMesh on the whole frame are asked
     before the frame is declared faceless (ksdiff.extract.face_detect.FaceFinder).
     With several faces the tracked one is kept (IoU), else the largest,
     most central one (ksdiff.extract.face_detect.choose_face).
  2. A square crop around the face (box + ``crop_margin`` on each side),
     resized to ``crop_size`` pixels. Meshing a face-centred crop is what
     lets small faces (< ~15% of the frame, which FaceMesh's own short-range
     detector misses) be found, and it makes the mesh's cost independent of
     the frame size.
  3. MediaPipe FaceMesh on the crop in tracking mode (static_image_mode=False):
     between frames it reuses the previous landmarks as its region of
     interest instead of re-detecting, ~1.5x faster than static mode at the
     same accuracy (benchmarks/bench_extract.py measures both).
  4. Landmarks mapped back to full-frame pixels; z (MediaPipe: relative
     depth in units of the input width) is scaled by the crop's side in
     full-frame pixels, so x, y and z share one pixel scale. The crop
     follows the head: it moves to the landmarks' box (plus margin) once
     the face has drifted by more than CROP_KEEP of the crop side.

n_faces is the number of faces the detector saw at its latest run (it runs at
least every ``redetect_every`` frames); score is that run's score of the
followed face (NaN when full-frame FaceMesh found it: it reports no score).
Which finder located the face a frame's landmarks descend from (full-range,
short-range, face-mesh; '' without a face) is recorded per frame, run-length
encoded in the table's attrs (``face_source_runs``, decoded by face_sources,
and ``face_source_counts``), without changing the table's columns.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, fields

import numpy as np

from ksdiff.data.manifest import clip_row
from ksdiff.extract.face_detect import FaceDetector, FaceFinder, choose_face, crop_square, square_box
from ksdiff.io.parquet import write_failure, write_table
from ksdiff.io.schemas import N_LANDMARKS

log = logging.getLogger(__name__)


@dataclass
class LandmarkOptions:
    """cfg['landmarks'] (defaults and descriptions in workflow/schemas/config.schema.yaml)."""

    min_detection_score: float = 0.5
    redetect_every: int = 25
    crop_margin: float = 0.25
    refine_landmarks: bool = True
    detector_model: int = 1
    crop_size: int = 256
    min_tracking_score: float = 0.5

    @classmethod
    def from_cfg(cls, section: dict | None) -> "LandmarkOptions":
        section = section or {}
        return cls(**{f.name: section[f.name] for f in fields(cls) if f.name in section})


@dataclass
class FrameResult:
    detected: bool
    score: float
    n_faces: int
    box: np.ndarray  # crop box x0, y0, x1, y1 (NaN when nothing to crop)
    landmarks: np.ndarray | None  # (n_points, 3) full-frame pixels
    failure: str = ""
    source: str = ""  # finder that located the face these landmarks descend from; '' without a face


# A serialised NormalizedLandmarkList whose landmarks carry exactly x, y, z is
# 17 bytes per landmark: 0x0a 0x0f (field 1, length 15) then three tagged
# float32 (0x0d x, 0x15 y, 0x1d z). Reading that with numpy takes ~10 us
# instead of ~200 us for 478 Python attribute look-ups (5% of the frame
# budget); any other layout falls back to the attribute loop.
_LM_DTYPE = np.dtype([("h", "u1", 2), ("tx", "u1"), ("x", "<f4"), ("ty", "u1"), ("y", "<f4"), ("tz", "u1"), ("z", "<f4")])


def _landmark_array(lm_list) -> np.ndarray:
    n = len(lm_list.landmark)
    buf = lm_list.SerializeToString()
    if len(buf) == 17 * n:
        a = np.frombuffer(buf, dtype=_LM_DTYPE)
        if (a["h"] == (0x0A, 0x0F)).all() and (a["tx"] == 0x0D).all() and (a["ty"] == 0x15).all() and (a["tz"] == 0x1D).all():
            return np.stack([a["x"], a["y"], a["z"]], axis=1).astype(np.float64)
    return np.array([[p.x, p.y, p.z] for p in lm_list.landmark], dtype=np.float64)


# The crop moves only when the face's box has shifted by more than this
# fraction of the crop side (or changed size by more): with the default 25%
# margin a 10% shift still leaves the whole face inside the crop.
CROP_KEEP = 0.1


class FaceTracker:
    """Detect -> crop -> mesh with tracking; call once per frame, in order."""

    def __init__(self, opts: LandmarkOptions | None = None):
        import mediapipe as mp

        self.opts = opts or LandmarkOptions()
        self.detector = FaceFinder(self.opts.detector_model, self.opts.min_detection_score)
        self._mp = mp
        self.mesh = self._new_mesh()
        self.crop_box: np.ndarray | None = None
        self._det_box: np.ndarray | None = None  # the followed face's latest detector box
        self.since_detect = 0
        self.score = 0.0
        self.n_faces = 0
        self.source = ""  # finder of the followed face's latest detection
        self.prefer_box: np.ndarray | None = None  # detector box of the face to follow first (speaking_face)

    def _new_mesh(self):
        return self._mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=self.opts.refine_landmarks,
            min_detection_confidence=self.opts.min_detection_score,
            min_tracking_confidence=self.opts.min_tracking_score,
        )

    @property
    def description(self) -> str:
        import mediapipe as mp

        first, *fallbacks = self.detector.order
        fallback = f"; when it finds nothing: {', then '.join(fallbacks)}" if fallbacks else ""
        return (
            f"mediapipe {mp.__version__} face_detection ({first}, every {self.opts.redetect_every} frames{fallback}) -> "
            f"square crop (margin {self.opts.crop_margin}, {self.opts.crop_size}px) -> "
            f"face_mesh (tracking, refine_landmarks={self.opts.refine_landmarks})"
        )

    def close(self) -> None:
        self.detector.close()
        self.mesh.close()

    def _detect(self, rgb: np.ndarray) -> str:
        """Run the detector and set the crop box; '' on success, else why not."""
        dets, source = self.detector(rgb)
        self.n_faces = len(dets)
        self.since_detect = 0
        i = choose_face(dets, rgb.shape[:2], self.crop_box if self.crop_box is not None else self.prefer_box)
        if i is None:
            self.crop_box = None
            return "no face detected"
        self.score, self.source = dets[i].score, source
        self._det_box = dets[i].box
        self._follow(square_box(dets[i].box, self.opts.crop_margin))
        return ""

    def _follow(self, box: np.ndarray) -> None:
        """Move the crop to ``box`` unless the current crop already fits it.

        A crop that stays put while the face moves a little gives FaceMesh's
        tracker the same image geometry from frame to frame; re-cropping on
        every frame feeds the landmarks' own noise back into the crop and
        measurably adds jitter (benchmarks/bench_extract.py).
        """
        c = self.crop_box
        if c is not None:
            side, new_side = c[2] - c[0], box[2] - box[0]
            shift = np.abs((box[:2] + box[2:]) / 2 - (c[:2] + c[2:]) / 2).max()
            if shift < CROP_KEEP * side and abs(new_side / side - 1) < CROP_KEEP:
                return
        self.crop_box = box

    def _mesh(self, rgb: np.ndarray) -> np.ndarray | None:
        crop, side, origin = crop_square(rgb, self.crop_box, self.opts.crop_size)
        res = self.mesh.process(crop)
        if not res.multi_face_landmarks:
            return None
        p = _landmark_array(res.multi_face_landmarks[0])
        p[:, :2] = origin + p[:, :2] * side
        p[:, 2] *= side
        return p

    def __call__(self, rgb: np.ndarray) -> FrameResult:
        detected_now = False
        if self.crop_box is None or self.since_detect >= self.opts.redetect_every:
            why = self._detect(rgb)
            if why:
                return FrameResult(False, 0.0, self.n_faces, np.full(4, np.nan), None, why)
            detected_now = True
        box = self.crop_box
        p = self._mesh(rgb)
        if p is None and not detected_now:
            # Tracking lost: re-detect on this very frame rather than drop it.
            why = self._detect(rgb)
            if why:
                return FrameResult(False, 0.0, self.n_faces, np.full(4, np.nan), None, f"face lost; {why}")
            box = self.crop_box
            p = self._mesh(rgb)
        if p is not None and detected_now and not _inside(p, self._det_box):
            # The mesh locked onto another face in the crop (a neighbour's
            # face at the crop edge): start the mesh afresh on a tight crop.
            self.mesh.close()
            self.mesh = self._new_mesh()
            self.crop_box = square_box(self._det_box, min(self.opts.crop_margin, 0.1))
            box = self.crop_box
            p = self._mesh(rgb)
            if p is not None and not _inside(p, self._det_box):
                p = None
        self.since_detect += 1
        if p is None:
            self.crop_box = None
            return FrameResult(False, self.score, self.n_faces, box, None, "face mesh found no face in the crop")
        x0, y0 = p[:, :2].min(0)
        x1, y1 = p[:, :2].max(0)
        self._follow(square_box(np.array([x0, y0, x1, y1]), self.opts.crop_margin))
        return FrameResult(True, self.score, self.n_faces, box, p, source=self.source)


def _inside(p: np.ndarray, box: np.ndarray) -> bool:
    """Whether the centre of landmarks ``p`` lies inside ``box``."""
    cx, cy = p[:, :2].mean(0)
    return bool(box[0] <= cx <= box[2] and box[1] <= cy <= box[3])


SPEAKER_PROBE_FRAMES = 50  # 2 s at 25 fps: enough syllables to tell a talking mouth from a still one
SPEAKER_PROBE_STEP = 2  # mesh every 2nd probe frame: mouth opening changes over several frames


def speaking_face(frames_rgb: list[np.ndarray], opts: LandmarkOptions) -> np.ndarray | None:
    """Detector box of the face whose mouth opening varies most over ``frames_rgb``.

    Only when the first frame shows several faces (else None): each face's
    fixed crop is meshed on every SPEAKER_PROBE_STEP-th frame and the standard
    deviation of its inner-lip gap (landmarks 13-14, in crop units so face size
    does not matter) ranks the faces. The tracker then starts on that face and
    keeps it by box overlap.
    """
    if not frames_rgb:
        return None
    detector = FaceDetector(opts.detector_model, opts.min_detection_score)
    try:
        dets = detector(frames_rgb[0])
    finally:
        detector.close()
    if len(dets) < 2:
        return None
    import mediapipe as mp

    motion = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                         refine_landmarks=False) as mesh:
        for d in dets:
            box = square_box(d.box, opts.crop_margin)
            gaps = []
            for rgb in frames_rgb[::SPEAKER_PROBE_STEP]:
                crop, _, _ = crop_square(rgb, box, opts.crop_size)
                res = mesh.process(crop)
                if res.multi_face_landmarks:
                    lm = res.multi_face_landmarks[0].landmark
                    gaps.append(np.hypot(lm[13].x - lm[14].x, lm[13].y - lm[14].y))
            motion.append(float(np.std(gaps)) if len(gaps) >= 3 else -1.0)
    best = int(np.argmax(motion))
    log.info("%d faces; mouth motion %s: following face %d", len(dets), np.round(motion, 4).tolist(), best)
    return dets[best].box


def track_frames(frames, opts: LandmarkOptions | None = None, *, progress: bool = False) -> tuple[dict, dict]:
    """Landmarks of a frame sequence.

    ``frames`` yields (frame, time_s, source_frame, rgb) as
    ksdiff.io.video.iter_frames does. Returns (columns of the 'landmarks'
    table, info with width, height and the tracker description). A source
    frame repeated by frame-rate resampling is meshed once and its row copied.
    Raises VideoError from the decoder.
    """
    from tqdm import tqdm

    opts = opts or LandmarkOptions()
    n_pts = N_LANDMARKS if opts.refine_landmarks else 468
    rows: list[tuple] = []
    # Several faces: find the speaking one on the first frames, then track it.
    frames = iter(frames)
    head = list(itertools.islice(frames, SPEAKER_PROBE_FRAMES))
    frames = itertools.chain(head, frames)
    tracker = FaceTracker(opts)
    tracker.prefer_box = speaking_face([h[3] for h in head], opts)
    info = {"width": 0, "height": 0, "detector": tracker.description}
    last_src, last = None, None
    try:
        for k, t, src, rgb in tqdm(frames, desc="landmarks", unit="frame", disable=None if progress else True, leave=False):
            if src != last_src:
                last = tracker(rgb)
                if last.landmarks is not None:
                    last.landmarks = last.landmarks.astype(np.float32)  # what the table stores; halves memory
                last_src = src
                info["height"], info["width"] = rgb.shape[:2]
            rows.append((k, t, src, last))
    finally:
        tracker.close()
    n = len(rows)
    lm = np.full((n, N_LANDMARKS * 3), np.nan, np.float32)
    cols = {
        "frame": np.array([r[0] for r in rows], np.int32),
        "time_s": np.array([r[1] for r in rows], np.float64),
        "source_frame": np.array([r[2] for r in rows], np.int32),
        "detected": np.array([r[3].detected for r in rows], bool),
        "score": np.array([r[3].score for r in rows], np.float32),
        "n_faces": np.array([r[3].n_faces for r in rows], np.int16),
        "box": np.array([r[3].box for r in rows], np.float32).reshape(n, 4),
        "failure": [r[3].failure for r in rows],
    }
    sources = [r[3].source for r in rows]
    info["face_source_runs"] = [[k, len(g), src] for k, src, g in _runs(sources)]
    info["face_source_counts"] = {src: sources.count(src) for src in sorted(set(sources)) if src}
    for i, r in enumerate(rows):
        if r[3].landmarks is not None:
            lm[i, : n_pts * 3] = r[3].landmarks.reshape(-1)
    cols["landmarks"] = lm
    return cols, info


def _runs(values: list[str]):
    """(first index, value, group) of each run of equal values."""
    k = 0
    for v, g in itertools.groupby(values):
        g = list(g)
        yield k, v, g
        k += len(g)


def face_sources(table) -> list[str]:
    """Per row of a 'landmarks' Table: the finder that located its face (full-range, short-range, face-mesh; '' none)."""
    return [src for _, n, src in table.attrs.get("face_source_runs", []) for _ in range(n)]


def landmarks_array(table) -> np.ndarray:
    """(T, 478, 3) landmarks of a 'landmarks' Table (NaN where not detected)."""
    return table.column("landmarks").reshape(-1, N_LANDMARKS, 3).astype(np.float64)


def extract_landmarks(cfg: dict, manifest, clip: str, out, max_frames: int | None = None) -> None:
    """Write the 'landmarks' table of ``clip`` to ``out`` (a failure record if it cannot).

    ``max_frames`` stops after that many motion frames (quick looks, tests).
    Clip-level failures (status failed, reason): the manifest's probe error,
    an unreadable video, fewer frames than cfg['dataset']['min_duration_s']
    (the same minimum QC applies), no face in any frame. Frames without a
    face are rows with detected=False and a reason.
    """
    from itertools import islice

    from ksdiff.io.video import VideoError, iter_frames

    row = clip_row(manifest, clip)
    fps = float(cfg["fps"])
    attrs = {"clip_id": clip, "fps": fps, "source_fps": row.get("fps") or 0.0}
    if row.get("probe_error"):
        write_failure(out, "landmarks", f"unreadable video (probe): {row['probe_error']}", attrs=attrs)
        return
    opts = LandmarkOptions.from_cfg(cfg.get("landmarks"))
    frames = iter_frames(row["path"], fps)
    if max_frames is not None:
        frames = islice(frames, max_frames)
    try:
        cols, info = track_frames(frames, opts, progress=log.isEnabledFor(logging.INFO))
    except VideoError as e:
        write_failure(out, "landmarks", f"unreadable video: {e}", attrs=attrs)
        return
    n = len(cols["frame"])
    min_s = float(cfg.get("dataset", {}).get("min_duration_s", 1.0))
    if n < max(1, int(np.ceil(min_s * fps - 1e-6))):
        write_failure(out, "landmarks", f"too short: {n} frames ({n / fps:.2f} s) < {min_s:g} s", attrs=attrs)
        return
    n_det = int(cols["detected"].sum())
    if n_det == 0:
        why = sorted(set(cols["failure"]))
        write_failure(out, "landmarks", f"no face detected in any of {n} frames ({'; '.join(why)})", attrs=attrs)
        return
    attrs.update(info, n_frames=n, detection_rate=n_det / n)
    write_table(out, "landmarks", cols, attrs=attrs)
    log.info("%s: face in %d/%d frames", clip, n_det, n)
