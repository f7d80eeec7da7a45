"""The face-mesh triangulation used by both renderers, and its extension to the frame.

MediaPipe ships the 468-point face mesh only as an edge list
(``FACEMESH_TESSELATION``, an unordered set of vertex pairs), so the triangles
are recovered as the 3-cliques of that graph. Two cliques are not faces: they
are "separating" triangles whose three edges each already border two real
faces (the nose-wing pockets at 49/64/129 and 279/294/358); dropping every
clique whose three edges are all shared by three cliques leaves 852 triangles,
a manifold disc with three holes (mouth and both eyes), Euler characteristic
V - E + F = 468 - 1322 + 852 = -2 = 1 - 3.

The image warp needs every pixel of the frame covered, so ``WarpMesh`` adds
  * a fan around a virtual centre vertex for each hole (the eyes move with the
    lids; the mouth opening is painted over afterwards, see ksdiff.render.warp),
  * triangles from the face's outer silhouette to fixed anchors on the frame
    border, so the background stays put while the face moves.
The extra vertices are derived from the landmarks by the same rule in the
reference and in every posed frame (``WarpMesh.extend``), so one triangle index
list serves both ends of the warp.
"""
from __future__ import annotations

import functools
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

N_MESH = 468  # face-mesh vertices; 468..477 are the refined irises, not part of the tesselation
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14  # mid-points of the inner lip contour
LEFT_MOUTH_CORNER, RIGHT_MOUTH_CORNER = 78, 308  # corners of the inner lip contour


@functools.lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """(852, 3) int32 vertex indices of the face-mesh triangles (unoriented)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    edges = {tuple(sorted(e)) for e in FACEMESH_TESSELATION}
    adj: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    cliques = {tuple(sorted((a, b, c))) for a, b in edges for c in adj[a] & adj[b]}
    uses = Counter(e for t in cliques for e in itertools.combinations(t, 2))
    faces = [t for t in cliques if not all(uses[e] >= 3 for e in itertools.combinations(t, 2))]
    tris = np.array(sorted(faces), dtype=np.int32)
    n_edges = len(edges)
    if N_MESH - n_edges + len(tris) != -2:  # guard against a changed mediapipe mesh
        raise RuntimeError(
            f"unexpected face-mesh topology: V={N_MESH} E={n_edges} F={len(tris)}; "
            "expected a disc with three holes (mouth, eyes)"
        )
    return tris


@functools.lru_cache(maxsize=1)
def boundary_loops() -> tuple[tuple[int, ...], ...]:
    """Ordered vertex loops bounding the mesh: (outer silhouette, mouth, eye, eye).

    The outer loop is the longest; the mouth loop is the one through the inner
    lip mid-points 13 and 14 (it is the inner lip contour).
    """
    uses = Counter(e for t in mesh_triangles() for e in itertools.combinations(sorted(t), 2))
    nb: dict[int, list[int]] = defaultdict(list)
    for (a, b), n in uses.items():
        if n == 1:
            nb[a].append(b)
            nb[b].append(a)
    loops, seen = [], set()
    for start in sorted(nb):
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = [v for v in nb[cur] if v != prev and v not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(tuple(loop))
    loops.sort(key=len, reverse=True)
    outer, holes = loops[0], loops[1:]
    mouth = next(h for h in holes if UPPER_INNER_LIP in h and LOWER_INNER_LIP in h)
    eyes = [h for h in holes if h is not mouth]
    return (outer, mouth, *eyes)


def mouth_loop() -> np.ndarray:
    """The inner lip contour, ordered around the mouth opening."""
    return np.asarray(boundary_loops()[1])


def upper_inner_lip() -> np.ndarray:
    """The inner lip contour from one corner to the other through the upper mid-point 13."""
    loop = list(boundary_loops()[1])
    i, j = loop.index(LEFT_MOUTH_CORNER), loop.index(RIGHT_MOUTH_CORNER)
    arc = loop[i : j + 1] if i <= j else loop[i:] + loop[: j + 1]
    if UPPER_INNER_LIP not in arc:  # went round the lower side: take the other arc
        arc = loop[j : i + 1] if j <= i else loop[j:] + loop[: i + 1]
    return np.asarray(arc)


def lower_inner_lip() -> np.ndarray:
    """The inner lip contour from one corner to the other through the lower mid-point 14."""
    upper = set(upper_inner_lip().tolist()) - {LEFT_MOUTH_CORNER, RIGHT_MOUTH_CORNER}
    return np.asarray([i for i in boundary_loops()[1] if i not in upper])


def border_anchors(height: int, width: int, per_side: int = 8) -> np.ndarray:
    """(4 * per_side, 2) points evenly spaced along the frame border, corners included."""
    t = np.linspace(0.0, 1.0, per_side, endpoint=False)
    x1, y1 = width - 1.0, height - 1.0
    top = np.stack([t * x1, np.zeros_like(t)], 1)
    right = np.stack([np.full_like(t, x1), t * y1], 1)
    bottom = np.stack([x1 - t * x1, np.full_like(t, y1)], 1)
    left = np.stack([np.zeros_like(t), y1 - t * y1], 1)
    return np.concatenate([top, right, bottom, left])


@dataclass(frozen=True)
class WarpMesh:
    """A triangulation of the whole frame built around one reference face.

    Vertex order of ``extend``: 468 mesh vertices, one centre per hole, the
    border anchors. ``triangles`` are grouped so that drawing them in order
    lets the face cover the background: ``n_outer`` background triangles
    first, then hole fans, then the face-mesh triangles (``face_slice``).
    """

    triangles: np.ndarray  # (F, 3) int32 into the extended vertex list
    anchors: np.ndarray  # (A, 2) fixed border points
    holes: tuple[tuple[int, ...], ...]  # mouth, eye, eye loops
    n_outer: int
    n_hole_tris: int

    @property
    def face_slice(self) -> slice:
        return slice(self.n_outer + self.n_hole_tris, len(self.triangles))

    def extend(self, landmarks: np.ndarray) -> np.ndarray:
        """(N_MESH + holes + anchors, 2) vertices from (>= 468, 2 or 3) landmark points
        (in the anchors' pixel convention: OpenCV pixel centres)."""
        p = np.asarray(landmarks, dtype=np.float64)[:N_MESH, :2]
        centres = np.stack([p[list(h)].mean(0) for h in self.holes])
        return np.concatenate([p, centres, self.anchors])

    def depth(self, landmarks: np.ndarray) -> np.ndarray:
        """Per-vertex depth of the extended list: hole centres take their loop's mean z,
        anchors are infinitely far (drawn first)."""
        p = np.asarray(landmarks, dtype=np.float64)
        z = p[:N_MESH, 2] if p.shape[1] > 2 else np.zeros(N_MESH)
        centres = np.array([z[list(h)].mean() for h in self.holes])
        return np.concatenate([z, centres, np.full(len(self.anchors), np.inf)])


def build_warp_mesh(ref_landmarks: np.ndarray, size: tuple[int, int], per_side: int = 8) -> WarpMesh:
    """Triangulate the frame of ``size`` = (H, W) around the reference landmarks.

    The background ring is a Delaunay triangulation (scipy) of the outer
    silhouette and the border anchors, keeping the triangles outside the
    silhouette. It is built once on the reference face; a posed frame reuses
    the same indices, so the ring stretches with the face.
    """
    from matplotlib.path import Path as MplPath
    from scipy.spatial import Delaunay

    h, w = size
    outer, *holes = boundary_loops()
    anchors = border_anchors(h, w, per_side)
    p = np.asarray(ref_landmarks, dtype=np.float64)[:N_MESH, :2]
    n_ext = N_MESH + len(holes)

    ring_pts = np.concatenate([p[list(outer)], anchors])
    ring_ids = np.concatenate([np.asarray(outer), n_ext + np.arange(len(anchors))])
    tri = Delaunay(ring_pts).simplices
    inside = MplPath(p[list(outer)]).contains_points(ring_pts[tri].mean(1))
    ring = ring_ids[tri[~inside]]

    fans = []
    for k, loop in enumerate(holes):
        centre = N_MESH + k
        fans += [(a, b, centre) for a, b in zip(loop, loop[1:] + loop[:1])]
    tris = np.concatenate([ring, np.asarray(fans), mesh_triangles()]).astype(np.int32)
    return WarpMesh(tris, anchors, tuple(holes), n_outer=len(ring), n_hole_tris=len(fans))
