"""Animate a portrait: deform and pose its face mesh, warp the photo, fill the mouth.

Frames of reference
- photo: the portrait's 478 landmarks P in output pixels (z on the x scale).
- canonical: C = (P - c) @ F with c the landmark centroid and F =
  face_frame(P), so face_frame(C) = I (frontal, upright, centred).
- posed (the ground truth): Q = D(C; jaw_open, mouth_wide) @ R.T + c + trans
  with R = euler_to_matrix(yaw, pitch, roll). The deformation D only moves
  points along the canonical y (jaw) and x (lip corners) and leaves the eye
  corners and forehead fixed, so face_frame(Q) = R exactly: the pose written
  as ground truth is the pose of this mesh.
- drawn: the same motion with MediaPipe's depth scaled by depth_scale along
  the photo's view axis, Q' = D(C) @ (F.T S F) @ R.T + c + trans with
  S = diag(1, 1, depth_scale). It equals the photo's 2-D landmarks at the
  photo's own pose and closed mouth (R = F), so that frame is the photo, and
  it makes the parallax of a turn large enough that MediaPipe, measuring the
  rendered image, recovers the ground-truth angle (see WarpConfig.depth_scale).

The image warp is piecewise affine over a triangulation (frontal_triangulation)
of the 468 mesh points, a ring of points around the head (the face oval pushed
out: hair and neck move with the head) and fixed anchors on the frame border
(the background stays put). One cv2.remap per frame does the sampling; its
inverse map comes from rasterising triangle ids back to front with back-face
culling, so a part of the face turned away is hidden by the nearer one.
About 12 ms a frame at 256 x 256 on one core.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from ksdiff.geometry import CHIN, FOREHEAD, euler_to_matrix, face_frame

from .faces import Portrait, head_mask

N_MESH = 468  # the irises (468..477) move rigidly inside the eye triangles: not needed for the warp

UPPER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291,  # outer contour
             78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)  # inner contour
LOWER_LIP = (146, 91, 181, 84, 17, 314, 405, 321, 375,
             95, 88, 178, 87, 14, 317, 402, 318, 324)
MOUTH_CORNERS = (61, 291)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
INNER_LIP_RING = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308,
                  324, 318, 402, 317, 14, 87, 178, 88, 95)  # closed polygon, in order
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


@dataclass
class WarpConfig:
    """Shape of the deformation and of the warp, in face-relative units."""

    # Turning MediaPipe's own mesh moves the features too little for a 2-D
    # warp of a photo to read as that turn: on such renders MediaPipe measured
    # 0.72x the applied yaw (pitch 0.88x). Drawing with 1.3x the depth brings
    # the gains to yaw 0.92, pitch 1.09, roll 1.02 (mean over the six photos,
    # +-12 deg steps; 1.5 gives 1.07 / 1.24: pitch sets the compromise, and
    # varies 0.6-1.5 between photos).
    depth_scale: float = 1.3
    jaw_drop: float = 0.11  # chin travel at jaw_open = 1, fraction of the face height
    lip_spread: float = 0.25  # lip-corner travel at |mouth_wide| = 1, fraction of the mouth half-width
    ring_scale: float = 1.3  # ring points: face oval pushed out by this factor (takes in hair)
    ring_deform: float = 0.5  # ring points share this much of the jaw motion (neck follows the chin)
    border_points: int = 6  # anchors per frame side
    frame_margin: float = 0.06  # keep ring points this far (fraction of size) inside the frame
    teeth_height: float = 0.035  # visible upper teeth, fraction of the face height
    mouth_alpha_range: tuple[float, float] = (0.03, 0.2)  # jaw_open where the drawn interior fades in


def _contour(us: np.ndarray, vs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """v of a lip contour (points us, vs) at positions u, flat beyond its ends."""
    order = np.argsort(us)
    return np.interp(u, us[order], vs[order]).astype(np.float32)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class FaceRig:
    """Everything per speaker that does not change from frame to frame."""

    def __init__(self, portrait: Portrait, config: WarpConfig | None = None):
        self.cfg = cfg = config or WarpConfig()
        self.image = portrait.image
        self.size = portrait.image.shape[0]
        p = np.asarray(portrait.landmarks, dtype=np.float64)
        self.photo = p
        self.centre = p.mean(0)
        self.base_frame = face_frame(p)
        self.canonical = (p - self.centre) @ self.base_frame
        c = self.canonical
        self.face_height = float(c[CHIN, 1] - c[FOREHEAD, 1])

        # The ring: face oval pushed outwards in the canonical plane, each point
        # pulled back along its ray where it would leave the frame at rest.
        oval = c[list(FACE_OVAL)]
        ring = oval.copy()
        ring[:, :2] *= cfg.ring_scale
        rest = self.to_drawn(ring) @ self.base_frame.T + self.centre
        lo, hi = cfg.frame_margin * self.size, (1 - cfg.frame_margin) * self.size
        for i in range(len(ring)):
            o, r = self.to_drawn(oval[i:i + 1])[0] @ self.base_frame.T + self.centre, rest[i]
            t = 1.0
            for k in range(2):
                d = r[k] - o[k]
                if r[k] < lo and d < 0:
                    t = min(t, (lo - o[k]) / d)
                elif r[k] > hi and d > 0:
                    t = min(t, (hi - o[k]) / d)
            ring[i, :2] = oval[i, :2] * (1 + (cfg.ring_scale - 1) * max(t, 0.0))
        self.ring = ring

        n = self.size - 1
        s = np.linspace(0, n, cfg.border_points)
        border = np.concatenate([np.stack([s, np.zeros_like(s)], 1), np.stack([s, np.full_like(s, n)], 1),
                                 np.stack([np.zeros_like(s[1:-1]), s[1:-1]], 1),
                                 np.stack([np.full_like(s[1:-1], n), s[1:-1]], 1)])
        self.border = border

        src = np.concatenate([p[:N_MESH, :2], rest_ring(self), border])
        self.src = src
        frontal = np.concatenate([self.canonical[:N_MESH, :2], self.ring[:, :2]])
        self.triangles, self.orientation = frontal_triangulation(frontal, src)
        self._yy, self._xx = np.mgrid[0 : self.size, 0 : self.size].astype(np.float32)
        self._weights()
        self._mouth_colours()

    def to_drawn(self, c: np.ndarray) -> np.ndarray:
        """Canonical points -> the shape that is drawn: depth scaled along the view axis.

        Works along the photo's view axis (camera z at the photo's pose), so
        the photo's own 2-D landmarks are unchanged at its own pose.
        """
        v = c @ self.base_frame.T  # photo orientation, centred
        v[:, 2] *= self.cfg.depth_scale
        return v @ self.base_frame

    # --- deformation ------------------------------------------------------------
    def _weights(self):
        """Per-point jaw (vertical) and lip-spread (horizontal) weights in canonical space."""
        c = np.concatenate([self.canonical, self.ring])
        n_face = len(self.canonical)
        up = self.canonical[list(UPPER_LIP[11:])]  # inner contours: where the lips meet
        lo = self.canonical[list(LOWER_INNER)]
        mid = np.concatenate([up, lo])
        order = np.argsort(mid[:, 0])
        xs, ys = mid[order, 0], mid[order, 1]
        corners = self.canonical[list(MOUTH_CORNERS)]
        xc = float(corners[:, 0].mean())
        hw = float(abs(corners[1, 0] - corners[0, 0]) / 2)
        self.mouth_half_width = hw
        h = self.face_height

        x, y = c[:, 0], c[:, 1]
        dx = np.abs(x - xc)
        y_line = np.interp(x, xs, ys)  # where the lips meet, flat beyond the corners
        # The step from "moves with the upper face" to "moves with the jaw" is
        # sharp between the lips and widens beyond the corners so cheeks stretch.
        eps = 0.01 * h + 0.6 * np.maximum(dx - hw, 0.0)
        wv = _smoothstep((y - y_line) / eps + 0.5)
        wv[list(UPPER_LIP)] = 0.0
        wv[list(LOWER_LIP)] = 1.0
        wv[list(MOUTH_CORNERS)] = 0.35
        # Far from the chin the jaw moves less (it pivots near the ears).
        face_hw = float(np.abs(self.canonical[:N_MESH, 0] - xc).max())
        wh = np.exp(-((dx / (0.6 * face_hw)) ** 2))
        jaw = wv * wh
        jaw[n_face:] *= self.cfg.ring_deform
        jaw[FOREHEAD] = 0.0
        self.jaw_weight = jaw  # (478 + ring,)

        # Lip spread: corners move most, the lip centres not at all, nothing
        # beyond ~0.12 face heights above or below the lip line.
        sy = 0.06 * h
        vert = np.exp(-0.5 * ((y - y_line) / sy) ** 2) * (np.abs(y - y_line) < 3 * sy)
        horiz = np.where(dx <= hw, dx / max(hw, 1e-6), np.exp(-0.5 * ((dx - hw) / (0.5 * hw)) ** 2))
        spread = np.sign(x - xc) * horiz * vert
        spread[n_face:] = 0.0
        self.spread_weight = spread

    def deform(self, jaw_open: float, mouth_wide: float) -> np.ndarray:
        """Canonical face + ring points with the mouth state applied ((478 + ring), 3)."""
        c = np.concatenate([self.canonical, self.ring]).copy()
        c[:, 1] += jaw_open * self.cfg.jaw_drop * self.face_height * self.jaw_weight
        c[:, 0] += mouth_wide * self.cfg.lip_spread * self.mouth_half_width * self.spread_weight
        return c

    def pose(self, yaw, pitch, roll, trans, jaw_open, mouth_wide) -> "Posed":
        """The mesh for one frame: ground-truth landmarks and the drawn mesh."""
        r = euler_to_matrix(yaw, pitch, roll)
        d = self.deform(jaw_open, mouth_wide)
        t = self.centre + np.asarray(trans, dtype=np.float64)
        n = len(self.canonical)
        drawn = self.to_drawn(d) @ r.T + t
        # The same frame with the jaw shut: where the lips would be if the photo's own opening were all.
        shut = self.to_drawn(self.deform(0.0, mouth_wide)[:n]) @ r.T + t
        return Posed(landmarks=d[:n] @ r.T + t, drawn=drawn[:n], ring=drawn[n:], rotation=r,
                     jaw_open=float(jaw_open), shut=shut)

    # --- rendering --------------------------------------------------------------
    def _mouth_colours(self):
        mask = head_mask(self.photo, self.size, grow=0.8)[:, :, 0] > 0.5
        skin = self.image[mask].astype(np.float32).mean(0) / 255.0 if mask.any() else np.full(3, 0.6)
        luma = float(skin @ np.array([0.299, 0.587, 0.114]))
        self.teeth = np.clip(1.1 * luma, 0.45, 0.8) * np.array([1.0, 0.96, 0.88])
        self.cavity = np.array([0.16, 0.06, 0.07]) * (0.6 + luma)
        self.tongue = np.array([0.45, 0.18, 0.2]) * (0.6 + luma)

    def render(self, posed: "Posed") -> np.ndarray:
        """Warp the portrait onto the drawn mesh and paint the mouth interior."""
        dst = np.concatenate([posed.drawn[:N_MESH], posed.ring])
        dst_xy = np.concatenate([dst[:, :2], self.border])
        depth = np.concatenate([dst[:, 2], np.full(len(self.border), 1e9)])
        frame = cv2.remap(self.image, *self._inverse_map(dst_xy, depth), interpolation=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        return self._draw_mouth(frame, posed.drawn, posed.jaw_open, posed.rotation, posed.shut)

    def _inverse_map(self, dst_xy: np.ndarray, depth: np.ndarray):
        """Per-pixel source coordinates (map_x, map_y) for cv2.remap."""
        tri = self.triangles
        d = dst_xy[tri] - 0.5  # MediaPipe's x * width puts pixel centres at +0.5
        s = self.src[tri] - 0.5
        # Closed-form affine per triangle (np.linalg.solve on a thousand 3x3
        # systems costs ~10 ms a frame): source = s0 + S @ inv(E) @ (p - d0).
        e = np.stack([d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]], axis=2)  # (n, 2, 2), columns e1 e2
        det = e[:, 0, 0] * e[:, 1, 1] - e[:, 0, 1] * e[:, 1, 0]
        # Back-face culling: a triangle whose orientation flipped relative to
        # the frontal mesh is folded over (turned away); the front-facing
        # triangles around the fold cover the same pixels.
        ok = (np.abs(det) > 1e-6) & (np.sign(det) == self.orientation)
        safe = np.where(ok, det, 1.0)
        inv = np.stack([np.stack([e[:, 1, 1], -e[:, 0, 1]], 1), np.stack([-e[:, 1, 0], e[:, 0, 0]], 1)], 1)
        inv /= safe[:, None, None]
        sm = np.stack([s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]], axis=2)
        lin = sm @ inv  # (n, 2, 2)
        off = s[:, 0] - np.einsum("nij,nj->ni", lin, d[:, 0])
        # Row n is the identity, for pixels no triangle covers (none in practice).
        table = np.zeros((len(tri) + 1, 6), np.float32)
        table[:-1] = np.concatenate([lin.reshape(-1, 4), off], axis=1)
        table[-1] = (1, 0, 0, 1, 0, 0)
        ids = np.full((self.size, self.size), len(tri), np.int32)
        order = np.argsort(-depth[tri].mean(1), kind="stable")  # far first, near last
        pts = np.round(d * 16).astype(np.int32)
        for k in order[ok[order]]:
            cv2.fillConvexPoly(ids, pts[k], int(k), lineType=cv2.LINE_8, shift=4)
        m = table[ids]  # (H, W, 6)
        map_x = m[..., 0] * self._xx + m[..., 1] * self._yy + m[..., 4]
        map_y = m[..., 2] * self._xx + m[..., 3] * self._yy + m[..., 5]
        return map_x, map_y

    def _draw_mouth(self, frame: np.ndarray, posed: np.ndarray, jaw_open: float, rotation: np.ndarray,
                    shut: np.ndarray | None = None):
        """Open the mouth: the photo's own mouth interior split between the lips, the new gap painted.

        The photo's lips may already be parted (a smile's teeth). The warp stretches that interior
        over the whole opening, so the photo's teeth would grow with the jaw; a real mouth keeps its
        teeth: the upper ones stay under the upper lip, the lower ones go down with the jaw. So the
        photo's interior is split at its middle, the upper half follows the upper lip and the lower
        half the lower lip (a remap of the warped frame along the head's down axis), and only the
        opening beyond the photo's own (posed minus ``shut``, the same frame with the jaw shut) is
        painted: teeth hang under the upper half (a band at most teeth_height deep, less what the
        photo already shows, darker towards the back), the tongue shows above the lower half, dark
        cavity between. A photo with closed lips has no interior to split: all the opening is painted.
        """
        lo_a, hi_a = self.cfg.mouth_alpha_range
        amount = float(_smoothstep((jaw_open - lo_a) / (hi_a - lo_a)))
        if amount <= 0:
            return frame
        poly = posed[list(INNER_LIP_RING), :2] - 0.5
        x0, y0 = np.floor(poly.min(0)).astype(int) - 2
        x1, y1 = np.ceil(poly.max(0)).astype(int) + 3
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.size), min(y1, self.size)
        if x1 <= x0 or y1 <= y0:
            return frame
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round((poly - [x0, y0]) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
        inside = mask.astype(np.float32)[:, :, None] / 255.0
        # Position across the opening, column by column in the head's own axes (u right, v down).
        right = rotation[:2, 0] / (np.linalg.norm(rotation[:2, 0]) + 1e-9)
        down = rotation[:2, 1] / (np.linalg.norm(rotation[:2, 1]) + 1e-9)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u = xx * right[0] + yy * right[1]
        v = xx * down[0] + yy * down[1]

        def contours(pts):
            upper = pts[list(UPPER_LIP[11:]), :2] - 0.5
            lower = pts[list(LOWER_INNER), :2] - 0.5
            return _contour(upper @ right, upper @ down, u), _contour(lower @ right, lower @ down, u)

        vu, vl = contours(posed)
        gap = np.maximum(vl - vu, 1e-3)
        own = np.zeros_like(gap) if shut is None else np.clip(np.subtract(*contours(shut)[::-1]), 0.0, gap)
        half = own / 2
        depth = v - vu
        region = frame[y0:y1, x0:x1].astype(np.float32) / 255.0
        if shut is not None and own.max() > 0.5:  # the photo shows its interior: keep it with the lips
            # Warped-frame depth that shows the photo's interior at fraction f is f * gap (the warp
            # stretches it evenly): upper half f = depth / own, lower half f = 1 - (gap - depth) / own.
            scale = gap / np.maximum(own, 1e-3)
            src_depth = np.where(depth < gap / 2, depth * scale, gap - (gap - depth) * scale)
            src_depth = np.clip(src_depth, 0.0, gap)
            sv = vu + src_depth  # same column u, new v
            basis = np.array([right, down], dtype=np.float64)  # (u, v) = basis @ (x, y)
            inv = np.linalg.inv(basis)
            sx = (inv[0, 0] * u + inv[0, 1] * sv).astype(np.float32)
            sy = (inv[1, 0] * u + inv[1, 1] * sv).astype(np.float32)
            moved = cv2.remap(frame, sx, sy, interpolation=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE).astype(np.float32) / 255.0
            region = (1 - inside) * region + inside * moved
        # The new opening between the halves, and its colours measured from its own edges.
        top, bottom = vu + half, vl - half
        new = (_smoothstep(depth - half + 0.5) * _smoothstep(bottom - (vu + depth) + 0.5))[:, :, None]
        alpha = inside * new * amount
        d_new = depth - half
        t = d_new / np.maximum(bottom - top, 1.0)
        band = np.maximum(self.cfg.teeth_height * self.face_height - half, 0.0)
        teeth = (_smoothstep((band - d_new) / (0.3 * np.maximum(band, 1e-3))) * (band > 0)
                 * _smoothstep((0.45 - t) / 0.15))[:, :, None]
        shade = 1.0 - 0.35 * np.clip(d_new / np.maximum(band, 1e-3), 0, 1)[:, :, None]
        tongue = _smoothstep((t - 0.65) / 0.25)[:, :, None] * (1 - teeth)
        col = (self.cavity * (1 - teeth - tongue) + self.teeth * teeth * shade + self.tongue * tongue)
        col = cv2.GaussianBlur(col.astype(np.float32), (0, 0), 0.6)
        out = frame.copy()
        out[y0:y1, x0:x1] = np.clip(((1 - alpha) * region + alpha * col) * 255 + 0.5, 0, 255).astype(np.uint8)
        return out


def frontal_triangulation(frontal: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Delaunay triangles of the warp points, built in the frontal view.

    In the photo a turned face's far side is squeezed and MediaPipe's points
    there zigzag, so a Delaunay triangulation of the photo positions joins
    points that are not neighbours on the face and stretches into spikes when
    that side turns back. Seen frontally the face is a height field whose
    Delaunay triangles follow its surface (and close the eye and mouth holes).
    The ring and border points, which have no frontal position, are taken
    there by the inverse of the affine map that best takes the frontal
    landmarks to the photo. Returns (triangles, their orientation sign in the
    frontal view), the reference for back-face culling.
    """
    n = len(frontal)
    a = np.concatenate([frontal, np.ones((n, 1))], axis=1)
    aff, *_ = np.linalg.lstsq(a, src[:n], rcond=None)  # frontal -> photo, (3, 2)
    lin, off = aff[:2], aff[2]
    others = (src[n:] - off) @ np.linalg.inv(lin)
    pts = np.concatenate([frontal, others])
    tri = Delaunay(pts).simplices.astype(np.int64)
    p3 = np.concatenate([pts[tri], np.ones((len(tri), 3, 1))], axis=2)
    return tri, np.sign(np.linalg.det(p3)) * np.sign(np.linalg.det(lin))


@dataclass
class Posed:
    """One frame's mesh."""

    landmarks: np.ndarray  # (478, 3) ground truth: face_frame(landmarks) == rotation
    drawn: np.ndarray  # (478, 3) the mesh the image is warped to (depth-scaled parallax)
    ring: np.ndarray  # (n_ring, 3) drawn ring points around the head
    rotation: np.ndarray  # (3, 3)
    jaw_open: float
    shut: np.ndarray | None = None  # (478, 3) the drawn mesh of the same frame with the jaw shut


def rest_ring(rig: FaceRig) -> np.ndarray:
    """Ring points at the photo's pose (2-D), i.e. where they are in the portrait."""
    return (rig.to_drawn(rig.ring) @ rig.base_frame.T + rig.centre)[:, :2]
