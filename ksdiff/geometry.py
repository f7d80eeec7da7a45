"""Rotation conventions shared by the synthetic corpus, the fit and the renderer.

Coordinates: image-like, x right, y down, z away from the camera (MediaPipe's
convention: z grows into the screen). Head angles in degrees:
  yaw   rotation about the y (vertical) axis: positive turns the face to the viewer's left
  pitch rotation about the x axis: positive tips the chin down (a nod)
  roll  rotation about the z (optical) axis: positive tilts the head clockwise on screen
The rotation matrix is R = Ry(yaw) @ Rx(pitch) @ Rz(roll) (intrinsic Y-X-Z),
acting on column vectors of a face centred at the origin.

Using scipy's Rotation keeps the Euler and axis-angle conversions in one
well-tested place; the helpers below only pin the order and units.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

_ORDER = "YXZ"  # intrinsic, upper case in scipy


def euler_to_matrix(yaw, pitch, roll) -> np.ndarray:
    """(..., 3, 3) rotation matrices from angles in degrees."""
    angles = np.stack(np.broadcast_arrays(yaw, pitch, roll), axis=-1)
    shape = angles.shape[:-1]
    m = Rotation.from_euler(_ORDER, angles.reshape(-1, 3), degrees=True).as_matrix()
    return m.reshape(*shape, 3, 3)


def matrix_to_euler(m) -> np.ndarray:
    """(..., 3) yaw, pitch, roll in degrees from rotation matrices."""
    m = np.asarray(m, dtype=np.float64)
    shape = m.shape[:-2]
    e = Rotation.from_matrix(m.reshape(-1, 3, 3)).as_euler(_ORDER, degrees=True)
    return e.reshape(*shape, 3)


def matrix_to_rotvec(m) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    shape = m.shape[:-2]
    return Rotation.from_matrix(m.reshape(-1, 3, 3)).as_rotvec().reshape(*shape, 3)


def rotvec_to_matrix(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    shape = v.shape[:-1]
    return Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix().reshape(*shape, 3, 3)


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None):
    """Similarity transform (s, R, t) minimising sum w |dst - (s R src + t)|^2.

    src, dst: (N, 3). Umeyama (1991) with weights; the reflection case is
    excluded so R is always a proper rotation.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s = w @ src
    mu_d = w @ dst
    xs = src - mu_s
    xd = dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    r = (u * sign) @ vt
    var_s = (w * (xs**2).sum(1)).sum()
    s = float((d * sign).sum() / var_s) if var_s > 0 else 1.0
    t = mu_d - s * r @ mu_s
    return s, r, t


# MediaPipe face-mesh indices that define the head's own axes (see face_frame).
RIGHT_EYE_OUTER, LEFT_EYE_OUTER, FOREHEAD, CHIN = 33, 263, 10, 152


def face_frame(landmarks: np.ndarray) -> np.ndarray:
    """Rotation matrix whose columns are the face's own x, y, z axes.

    x runs from the subject's right outer eye corner (33) to the left one (263),
    y from the forehead (10) towards the chin (152), made orthogonal to x, and
    z = x cross y points away from the viewer. A face with face_frame == I is
    frontal and upright: this is the zero of yaw, pitch and roll everywhere in
    ksdiff (the synthetic corpus frontalises its photos with it, the landmark
    fit measures against it), which avoids depending on a canonical face model
    file that the mediapipe wheel does not ship.
    """
    p = np.asarray(landmarks, dtype=np.float64)
    x = p[LEFT_EYE_OUTER] - p[RIGHT_EYE_OUTER]
    x /= np.linalg.norm(x)
    y = p[CHIN] - p[FOREHEAD]
    y -= (y @ x) * x
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=1)
