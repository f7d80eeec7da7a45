"""Image-warp renderer: the speaker's reference frame moved by posed landmarks.

Each output frame is one ``cv2.remap`` of the reference image through an
inverse map built per triangle: the destination triangles are rasterised into
an index image (cv2.fillConvexPoly, far to near so that a turned head hides
its far side), and each destination pixel takes the affine map of its
triangle back to the reference. This is a piecewise-affine warp like
skimage's PiecewiseAffineTransform, but about two orders of magnitude faster
because the per-pixel triangle lookup is a rasterisation instead of a point
location query, which is why it is hand-written here.

The mouth opening has no texture in the reference (it may even be closed), so
it is painted: the inner-lip polygon dark, with a lighter band of teeth under
the upper lip when the mouth is open. The opening is measured against the
reference frame's own: the warped reference already shows the mouth as it is
at that opening (a smile's teeth, a parted mouth), so only the opening beyond
it is painted, fading in with it. Painting every frame's whole opening dark
instead hid a smiling reference's teeth on every frame, so a mouth at rest and
a mouth wide open looked alike: on the demo's test speaker (an open smile)
SyncNet then found no sync in re-rendered ground truth (benchmarks/README.md,
"Ground truth through extraction and rendering"). A reference that shows its
teeth keeps them when the mouth opens wider: the warp stretches its interior
over the whole opening, so that interior is split at its middle, the upper half
stays under the upper lip and the lower half goes down with the lower lip, and
only the gap between is painted (as the synthetic rig opens a photo's mouth,
ksdiff/data/synth/warp.py). Methods and ground truth go through the same code,
so the video metrics compare motion, not rendering.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ksdiff.landmark_points import N_MESH, present_points
from ksdiff.render.triangles import (
    LOWER_INNER_LIP,
    UPPER_INNER_LIP,
    WarpMesh,
    build_warp_mesh,
    lower_inner_lip,
    mouth_loop,
    upper_inner_lip,
)
from ksdiff.geometry import LEFT_EYE_OUTER, RIGHT_EYE_OUTER


# Landmarks are continuous image coordinates (MediaPipe's x * width), where
# pixel i covers [i, i + 1) and has its centre at i + 0.5; OpenCV's drawing
# and remap address pixel centres as integers. Subtracting this converts.
PIXEL_CENTRE = 0.5


def to_array_coords(landmarks: np.ndarray) -> np.ndarray:
    """(N, 2) OpenCV pixel-centre coordinates of (N, 2|3) landmark pixels."""
    return np.asarray(landmarks, dtype=np.float64)[:, :2] - PIXEL_CENTRE


@dataclass(frozen=True)
class MouthStyle:
    """How the mouth interior is painted (one place, so every renderer run agrees)."""

    cavity_rgb: tuple[int, int, int] = (45, 18, 22)  # dark red-brown: reads as an open mouth, not a hole
    teeth_rgb: tuple[int, int, int] = (215, 210, 196)  # off-white: pure white looks pasted on
    # Openings are the inner-lip gap / inter-ocular distance BEYOND the reference frame's own gap.
    closed_threshold: float = 0.01  # below this nothing is painted: the warped reference is right as it is
    open_threshold: float = 0.03  # the cavity fades in between the two thresholds; above it teeth show (~2 px at 256 px)
    teeth_fraction: float = 0.35  # teeth band height as a fraction of the lip gap
    teeth_max_fraction: float = 0.06  # ... but at most this fraction of the inter-ocular distance
    # A reference whose own interior (its opening, stretched by the warp over today's) is at least this
    # many pixels tall keeps it split between the lips; a thinner one is painted over as a closed mouth.
    min_kept_px: float = 1.0


MOUTH = MouthStyle()


def affine_maps(src_pts: np.ndarray, dst_pts: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F, 2, 3) affine maps taking each destination triangle onto its source triangle.

    Closed form (barycentric edge vectors) rather than a batched
    np.linalg.solve, which costs ~10x more for a thousand 3x3 systems.
    Degenerate destination triangles (zero area) cover no pixel; they get the
    translation between centroids so the result stays finite.
    """
    s = np.asarray(src_pts, dtype=np.float64)[triangles]  # (F, 3, 2)
    d = np.asarray(dst_pts, dtype=np.float64)[triangles]
    e1, e2 = d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]  # destination edges
    f1, f2 = s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]  # the same edges in the source
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) > 1e-9
    inv_det = np.where(ok, 1.0, 0.0) / np.where(ok, det, 1.0)
    # Inverse of the destination edge matrix E = [e1 e2] (columns), then L = F E^-1.
    inv = np.stack([np.stack([e2[:, 1], -e2[:, 0]], 1), np.stack([-e1[:, 1], e1[:, 0]], 1)], 1) * inv_det[:, None, None]
    lin = np.stack([f1, f2], 2) @ inv  # (F, 2, 2)
    lin[~ok] = np.eye(2)
    shift = np.where(ok[:, None], s[:, 0] - np.einsum("fij,fj->fi", lin, d[:, 0]), s.mean(1) - d.mean(1))
    return np.concatenate([lin, shift[:, :, None]], axis=2)


@functools.lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def piecewise_affine_warp(
    image: np.ndarray,
    src_pts: np.ndarray,
    dst_pts: np.ndarray,
    triangles: np.ndarray,
    order: np.ndarray | None = None,
    out_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Warp ``image`` so that each triangle of ``src_pts`` lands on the same triangle of ``dst_pts``.

    image: (H, W, C) or (H, W); src_pts, dst_pts: (N, 2) pixel (x, y);
    triangles: (F, 3) vertex indices. ``order``: the drawing order of the
    triangles, later ones win where destination triangles overlap (default:
    as given). Pixels covered by no triangle keep the identity map.
    out_size: (H, W) of the result, default the image's.
    """
    import cv2

    h, w = out_size or image.shape[:2]
    tris = np.asarray(triangles)
    order = np.arange(len(tris)) if order is None else np.asarray(order)
    if len(tris) >= np.iinfo(np.int32).max:
        raise ValueError("too many triangles")
    index = np.full((h, w), -1, dtype=np.int32)
    corners = np.round(np.asarray(dst_pts, dtype=np.float64)[tris] * 16).astype(np.int32)  # 4 fractional bits
    for f in order.tolist():
        cv2.fillConvexPoly(index, corners[f], f, lineType=cv2.LINE_8, shift=4)
    # One extra identity map (index -1 -> last row) for pixels no triangle covers.
    maps = np.concatenate([affine_maps(src_pts, dst_pts, tris).reshape(-1, 6), [[1, 0, 0, 0, 1, 0]]])
    coef = [np.take(c, index) for c in np.ascontiguousarray(maps.T, dtype=np.float32)]  # 6 x (h, w)
    xs, ys = _pixel_grid(h, w)
    map_x = coef[0] * xs
    map_x += coef[1] * ys
    map_x += coef[2]
    map_y = coef[3] * xs
    map_y += coef[4] * ys
    map_y += coef[5]
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def lip_gap(landmarks: np.ndarray) -> float:
    """Inner-lip gap (landmarks 13-14) in inter-ocular distances (outer eye corners); 0 without a face size."""
    p = np.asarray(landmarks, dtype=np.float64)[:, :2]
    iod = float(np.linalg.norm(p[LEFT_EYE_OUTER] - p[RIGHT_EYE_OUTER]))
    return float(np.linalg.norm(p[LOWER_INNER_LIP] - p[UPPER_INNER_LIP])) / iod if iod > 0 else 0.0


def paint_mouth(frame: np.ndarray, landmarks: np.ndarray, style: MouthStyle = MOUTH, ref_gap: float = 0.0) -> np.ndarray:
    """Paint the mouth opening of ``frame`` (in place) from its (478, 2|3) landmark pixels.

    ref_gap: the reference frame's own lip gap (``lip_gap``): only the opening beyond it
    is painted, the cavity fading in between style.closed_threshold and open_threshold.
    """
    import cv2

    p = to_array_coords(landmarks)
    iod = float(np.linalg.norm(p[LEFT_EYE_OUTER] - p[RIGHT_EYE_OUTER]))
    gap = float(np.linalg.norm(p[LOWER_INNER_LIP] - p[UPPER_INNER_LIP]))
    extra = gap / iod - ref_gap if iod > 0 else 0.0
    if extra < style.closed_threshold:
        return frame  # no wider than the reference: the warped reference already shows this mouth
    mouth = np.round(p[mouth_loop()] * 16).astype(np.int32)
    fade = min(1.0, (extra - style.closed_threshold) / (style.open_threshold - style.closed_threshold))
    x0, y0 = np.floor(p[mouth_loop()].min(0)).astype(int) - 1
    x1, y1 = np.ceil(p[mouth_loop()].max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, frame.shape[1]), min(y1, frame.shape[0])
    if x1 <= x0 or y1 <= y0:
        return frame
    off = np.array([x0, y0])
    keep = ref_gap * iod / gap  # share of today's opening the reference's own interior fills once warped
    if keep * gap >= style.min_kept_px:
        return _open_between_teeth(frame, p, gap, iod, keep, fade, style, (x0, y0, x1, y1))
    if fade < 1.0:  # opening just beyond the reference's: the cavity fades in over the reference's pixels
        m = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(m, [mouth - off * 16], 255, lineType=cv2.LINE_AA, shift=4)
        a = (m.astype(np.float32) * (fade / 255.0))[..., None]
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = (roi * (1 - a) + np.float32(style.cavity_rgb) * a + 0.5).astype(np.uint8)
        return frame
    cv2.fillPoly(frame, [mouth], style.cavity_rgb, lineType=cv2.LINE_AA, shift=4)
    # Teeth: the upper inner-lip arc and the same arc moved down by the band height,
    # clipped to the opening so they never cover the lower lip.
    band = min(style.teeth_fraction * gap, style.teeth_max_fraction * iod)
    arc = p[upper_inner_lip()]
    down = (p[LOWER_INNER_LIP] - p[UPPER_INNER_LIP]) / gap
    teeth = np.concatenate([arc, arc[::-1] + band * down])
    m_open = np.zeros((y1 - y0, x1 - x0), np.uint8)
    m_teeth = np.zeros_like(m_open)
    cv2.fillPoly(m_open, [np.round((p[mouth_loop()] - off) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    cv2.fillPoly(m_teeth, [np.round((teeth - off) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    alpha = (np.minimum(m_open, m_teeth).astype(np.float32) / 255.0)[..., None]
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = (roi * (1 - alpha) + np.float32(style.teeth_rgb) * alpha).astype(np.uint8)
    return frame


def _along(us: np.ndarray, vs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A contour's v at each u (linear between its points, flat beyond its ends)."""
    order = np.argsort(us)
    return np.interp(u, us[order], vs[order])


def _open_between_teeth(frame, p, gap, iod, keep, fade, style, box) -> np.ndarray:
    """Open a mouth whose reference shows its own interior: keep that interior with the lips, paint the gap.

    Column by column across the mouth (u along the lips, v from upper to lower inner lip, in the
    frame's 13 -> 14 direction), the warped interior fills the opening evenly, so its fraction f
    sits at depth f * g. The upper half of the reference's interior (f < 1/2) is shown at depth
    f * own below the upper lip and the lower half at g - (1 - f) * own, own = keep * g: a cv2.remap
    of the warped frame along v. Between the halves the new opening is the cavity (fading in like a
    closed reference's), with teeth under the upper half where the reference shows fewer than the
    band a closed mouth gets.
    """
    import cv2

    x0, y0, x1, y1 = box
    down = (p[LOWER_INNER_LIP] - p[UPPER_INNER_LIP]) / gap
    right = np.array([down[1], -down[0]])
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    u, v = xs * right[0] + ys * right[1], xs * down[0] + ys * down[1]
    upper, lower = p[upper_inner_lip()], p[lower_inner_lip()]
    vu = _along(upper @ right, upper @ down, u)
    vl = _along(lower @ right, lower @ down, u)
    g = np.maximum(vl - vu, 1e-3)
    own = keep * g
    d = v - vu
    src = np.clip(np.where(d < g / 2, d / keep, g - (g - d) / keep), 0.0, g)
    sv = vu + src
    moved = cv2.remap(frame, (u * right[0] + sv * down[0]).astype(np.float32),
                      (u * right[1] + sv * down[1]).astype(np.float32), interpolation=cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(m, [np.round((p[mouth_loop()] - [x0, y0]) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    inside = (m.astype(np.float32) / 255.0)[..., None]
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    roi = roi * (1 - inside) + moved * inside
    depth = d - own / 2  # below the kept upper half
    new = np.clip(depth + 0.5, 0, 1) * np.clip(vl - own / 2 - v + 0.5, 0, 1)
    a = (inside[..., 0] * new * fade)[..., None]
    roi = roi * (1 - a) + np.float32(style.cavity_rgb) * a
    band = min(style.teeth_fraction * gap, style.teeth_max_fraction * iod) - own / 2
    if fade >= 1.0:
        t = (a[..., 0] * np.clip(band - depth + 0.5, 0, 1))[..., None]
        roi = roi * (1 - t) + np.float32(style.teeth_rgb) * t
    frame[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)
    return frame


class FaceWarper:
    """Renders posed landmark sets over one reference frame (the triangulation is built once)."""

    def __init__(self, ref_rgb: np.ndarray, ref_landmarks: np.ndarray, style: MouthStyle = MOUTH):
        ref_rgb = np.asarray(ref_rgb)
        if ref_rgb.ndim != 3 or ref_rgb.shape[2] != 3 or ref_rgb.dtype != np.uint8:
            raise ValueError(f"reference frame must be (H, W, 3) uint8, got {ref_rgb.shape} {ref_rgb.dtype}")
        ref_landmarks = np.asarray(ref_landmarks, dtype=np.float64)
        # the irises (468-477) are NaN with landmarks.refine_landmarks false; the mesh is the 468 points
        if ref_landmarks.ndim != 2 or ref_landmarks.shape[0] < N_MESH or not np.isfinite(present_points(ref_landmarks)).all():
            raise ValueError(f"reference landmarks must be finite (478, 3) pixels (or 468 without irises), got {ref_landmarks.shape}")
        self.ref = ref_rgb
        self.size = ref_rgb.shape[:2]
        self.style = style
        self.mesh: WarpMesh = build_warp_mesh(ref_landmarks, self.size)
        self.src = self.mesh.extend(to_array_coords(ref_landmarks))
        self.ref_gap = lip_gap(ref_landmarks)  # the reference's own opening is already in its pixels

    def draw_order(self, posed: np.ndarray) -> np.ndarray:
        """Background ring first, then hole fans and face triangles far to near (z grows away)."""
        z = self.mesh.depth(posed)[self.mesh.triangles[self.mesh.n_outer :]].mean(1)
        face = self.mesh.n_outer + np.argsort(-z, kind="stable")
        return np.concatenate([np.arange(self.mesh.n_outer), face])

    def render(self, posed: np.ndarray) -> np.ndarray:
        """One (H, W, 3) uint8 frame for (478, 3) posed landmarks in pixels."""
        posed = np.asarray(posed, dtype=np.float64)
        if not np.isfinite(present_points(posed)[:, :2]).all():
            return self.ref.copy()  # no face this frame: show the still reference
        frame = piecewise_affine_warp(
            self.ref, self.src, self.mesh.extend(to_array_coords(posed)), self.mesh.triangles, order=self.draw_order(posed)
        )
        return paint_mouth(frame, posed, self.style, self.ref_gap)


def render_frames(ref_rgb: np.ndarray, ref_landmarks: np.ndarray, posed: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Yield one warped (H, W, 3) uint8 frame per (478, 3) posed landmark set (pixels).

    ref_rgb: the speaker's reference frame; ref_landmarks: its (478, 3)
    landmarks in the same pixels; posed: (T, 478, 3) or any iterable of
    (478, 3). Frames whose posed landmarks are NaN show the reference.
    """
    warper = FaceWarper(ref_rgb, ref_landmarks)
    for p in posed:
        yield warper.render(p)
