"""Shaded-mesh renderer: the posed face mesh as flat Lambert-shaded grey triangles on black.

No texture and no identity photo, so it shows motion alone (useful for
looking at head pose and lip shape side by side across methods). Hidden
surfaces are resolved with the painter's algorithm: triangles are filled
with cv2.fillConvexPoly from far to near (z grows away from the camera, the
MediaPipe convention). Lighting is two-sided (|n . l|) because MediaPipe's
tesselation comes as an unoriented edge list, so triangle winding carries no
outside/inside information. The eye and mouth openings are holes of the
mesh and stay black.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ksdiff.render.triangles import mesh_triangles
from ksdiff.render.warp import PIXEL_CENTRE


@dataclass(frozen=True)
class ShadeStyle:
    """Lighting of the shaded mesh (one place so every figure looks the same)."""

    light_dir: tuple[float, float, float] = (-0.3, -0.5, -1.0)  # from upper left, towards the face (image axes, z away)
    ambient: float = 0.25  # keeps faces turned away from the light visible
    diffuse: float = 0.75  # ambient + diffuse = 1: a face lit head-on is white
    grey: int = 220  # peak grey level: leaves head-room so the mesh never clips to pure white


SHADE = ShadeStyle()


def shade_frame(posed: np.ndarray, size: tuple[int, int], style: ShadeStyle = SHADE) -> np.ndarray:
    """One (H, W, 3) uint8 frame of the (>= 468, 3) posed mesh in pixels."""
    import cv2

    h, w = size
    p = np.asarray(posed, dtype=np.float64)
    if not np.isfinite(p[:468]).all():
        return np.zeros((h, w, 3), np.uint8)  # no face this frame
    tris = mesh_triangles()
    v = p[tris]  # (F, 3, 3)
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    norm = np.linalg.norm(n, axis=1)
    light = np.asarray(style.light_dir, dtype=np.float64)
    light /= np.linalg.norm(light)
    lambert = np.abs(n @ light) / np.where(norm > 0, norm, 1.0)
    level = np.clip(style.grey * (style.ambient + style.diffuse * lambert), 0, 255).astype(int).tolist()
    corners = np.round((v[:, :, :2] - PIXEL_CENTRE) * 16).astype(np.int32)  # 4 fractional bits
    order = np.argsort(-v[:, :, 2].mean(1), kind="stable")  # far to near
    # Draw into one channel and replicate: a third of the fill work.
    grey = np.zeros((h, w), np.uint8)
    for f in order[norm[order] > 0].tolist():
        cv2.fillConvexPoly(grey, corners[f], level[f], lineType=cv2.LINE_8, shift=4)
    return np.repeat(grey[..., None], 3, axis=2)


def render_mesh(posed: Iterable[np.ndarray], size: tuple[int, int], style: ShadeStyle = SHADE) -> Iterator[np.ndarray]:
    """Yield one shaded (H, W, 3) uint8 frame per (478, 3) posed landmark set (pixels)."""
    for p in posed:
        yield shade_frame(p, size, style)
