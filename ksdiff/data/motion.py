"""The motion representation the models learn, and its exact inverse to the 'coeffs' schema.

Per motion frame the models see ``head`` (6 values) and ``expr`` (n_expr values):

  head[0:3]  yaw, pitch, roll in degrees (ksdiff.geometry convention) of the head's
             rotation *relative to the clip's anchor frame*: the Euler angles of
             R_rel = R_anchor^T R(t), so R(t) = R_anchor R_rel. 0 is the speaker's
             own pose in the reference frame, whatever way they face the camera.
  head[3:5]  x, y translation of the face since the clip's *anchor frame*, divided
             by the anchor's face size: (trans - trans_anchor) / face_size_anchor.
  head[5]    log(scale / scale_anchor): how much larger the face is than at the anchor.
  expr       the expression coefficients as extracted (already in the shared basis),
             followed, for coefficient backends with a jaw pose (``JAW_BACKENDS``:
             DECA's FLAME), by the 3 jaw axis-angle values: FLAME opens the mouth with
             the jaw joint, not with expression blendshapes, so a model that left the
             jaw out could not open the mouth (DiffPoseTalk models the same 50 + 3).

Why relative to an anchor, and why this anchor. Where the face sits in the frame
is camera framing, not motion, and which way a speaker faces the camera is a
property of the recording and the speaker, not of the speech: neither can be
predicted from the audio, and a method that animates a reference frame (every
method we compare, and ``ksdiff generate``) gets both from the reference. So the
whole head pose is measured from the clip's first valid frame (the natural
"reference frame" of a clip: the renderer warps the first frame with a face) and
predictions are placed back at the same anchor, its rotation composed back in
(``coeffs_from_motion``). With absolute angles the models learned the training
speakers' average pose and turned every test head towards it.

The rotation is made relative by composing rotations, not by subtracting Euler
angles: R_anchor^T R(t) is the motion as the head itself sees it (a nod stays a
nod about the head's own ear-to-ear axis whichever way the head is turned), the
inverse R_anchor R_rel is exact to rounding, and another reference pose can be
put in its place (``ksdiff generate``, the ``mismatched`` baseline). Euler
differences would be exact too but mix the axes as soon as the anchor is turned
(the Y-X-Z angles do not commute).

Dividing the translation by the face size in pixels (fit scale x template radius)
makes the numbers independent of the video resolution, whether the coefficient
backend keeps its template in fixed units (then the fit scale grows with
resolution) or in pixels (then the template does). The z translation is not
modelled: the landmark fit is weak-perspective, so it carries no information;
the inverse writes the anchor's value back.

``POSE_FRAMES``: checkpoints trained before the rotation was anchored
(representation ``head6-anchor-v1``) learned absolute angles; ``pose_frame_of``
tells which a representation uses, and both functions below take a
``pose_frame`` so such a model is still placed as it was trained.

Frames whose fit is not valid are filled by linear interpolation between valid
neighbours (so velocities stay finite) and reported in the returned mask, which
the dataset turns into the loss mask.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ksdiff import geometry

HEAD_NAMES = ("yaw", "pitch", "roll", "tx", "ty", "log_scale")
HEAD_DIM = len(HEAD_NAMES)
JAW_BACKENDS = ("deca",)  # coefficient backends whose tables carry a jaw pose the models must learn
JAW_DIM = 3


def has_jaw(backend: str | None) -> bool:
    """Whether the expression stream of this coefficient backend ends with the 3 jaw-pose values."""
    return backend in JAW_BACKENDS
REPRESENTATION = "head6-ref-v2"  # recorded in stats and checkpoints so a change cannot pass silently
POSE_FRAMES = ("reference", "absolute")  # head rotation relative to the anchor frame, or absolute (legacy)
POSE_FRAME = "reference"  # the pose frame of REPRESENTATION
_POSE_FRAME_OF = {REPRESENTATION: "reference", "head6-anchor-v1": "absolute"}


def pose_frame_of(representation: str | None) -> str:
    """'reference' or 'absolute': how a representation (of a checkpoint, a stats table) holds head rotation."""
    if representation not in _POSE_FRAME_OF:
        raise ValueError(f"unknown motion representation {representation!r}; known: {sorted(_POSE_FRAME_OF)}")
    return _POSE_FRAME_OF[representation]


def _check_pose_frame(pose_frame: str) -> None:
    if pose_frame not in POSE_FRAMES:
        raise ValueError(f"pose_frame must be one of {POSE_FRAMES}, got {pose_frame!r}")


def relative_angles(ypr: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(T, 3) yaw, pitch, roll of R_ref^T R(t): the rotation since the reference, in the head's own frame."""
    ypr = np.asarray(ypr, dtype=np.float64).reshape(-1, 3)
    if len(ypr) == 0:
        return ypr.copy()
    r_ref = geometry.euler_to_matrix(*np.asarray(ref, dtype=np.float64))
    r = geometry.euler_to_matrix(ypr[:, 0], ypr[:, 1], ypr[:, 2])
    return geometry.matrix_to_euler(r_ref.T @ r)


def compose_angles(rel: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(T, 3) yaw, pitch, roll of R_ref R_rel: the exact inverse of relative_angles."""
    rel = np.asarray(rel, dtype=np.float64).reshape(-1, 3)
    if len(rel) == 0:
        return rel.copy()
    r_ref = geometry.euler_to_matrix(*np.asarray(ref, dtype=np.float64))
    return geometry.matrix_to_euler(r_ref @ geometry.euler_to_matrix(rel[:, 0], rel[:, 1], rel[:, 2]))


@dataclass
class Anchor:
    """The reference placement that the relative head pose is measured from."""

    trans: np.ndarray  # (3,) translation of the anchor frame, coefficient units (pixels for the landmark fit)
    scale: float  # fit scale of the anchor frame
    size: float  # RMS radius of the template in its own units (1.0 without a template)
    frame: int = 0  # which frame of the clip it came from (-1: an external reference image)
    ypr: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) yaw, pitch, roll of the anchor, degrees

    @property
    def face_size(self) -> float:
        """Face radius in coefficient (pixel) units at the anchor."""
        return float(self.scale * self.size)

    def to_dict(self) -> dict:
        return {"trans": [float(v) for v in self.trans], "scale": float(self.scale), "size": float(self.size),
                "frame": int(self.frame), "ypr": [float(v) for v in self.ypr]}

    @classmethod
    def from_dict(cls, d: dict) -> "Anchor":
        return cls(np.asarray(d["trans"], dtype=np.float64), float(d["scale"]), float(d["size"]),
                   int(d.get("frame", 0)), np.asarray(d.get("ypr", np.zeros(3)), dtype=np.float64))


def template_size(template) -> float:
    """RMS distance of the template's points from their centroid (1.0 when there is no template).

    The DECA backend has no landmark template (its translation is in camera units),
    so its face size is the fit scale itself.
    """
    if template is None:
        return 1.0
    t = np.asarray(template, dtype=np.float64).reshape(-1, 3)
    t = t[np.isfinite(t).all(1)]  # points the fit lacks (irises without refinement) are NaN
    if len(t) == 0:
        return 1.0
    r = float(np.sqrt(((t - t.mean(0)) ** 2).sum(1).mean()))
    if not np.isfinite(r) or r <= 0:
        raise ValueError("degenerate template: all points coincide")
    return r


def _columns(table):
    """(yaw, pitch, roll, trans, scale, expr, valid) of a coeffs Table, sample 0 only."""
    t = table.table
    if t.num_rows == 0:
        raise ValueError(f"coeffs table is empty (status {table.status}: {table.reason or 'no reason'})")
    sample = table.column("sample")
    keep = sample == sample.min()  # predictions hold several samples; extraction only sample 0
    frame = table.column("frame")[keep]
    order = np.argsort(frame, kind="stable")
    idx = np.flatnonzero(keep)[order]
    yaw = table.column("yaw")[idx].astype(np.float64)
    pitch = table.column("pitch")[idx].astype(np.float64)
    roll = table.column("roll")[idx].astype(np.float64)
    trans = table.column("trans")[idx].astype(np.float64)
    scale = table.column("scale")[idx].astype(np.float64)
    expr_list = table.column("expr")
    expr = np.stack([np.asarray(expr_list[i], dtype=np.float64) for i in idx]) if len(idx) else np.zeros((0, 0))
    if has_jaw(table.attrs.get("backend")):
        expr = np.concatenate([expr, table.column("jaw")[idx].astype(np.float64).reshape(len(idx), JAW_DIM)], axis=1)
    valid = table.column("valid")[idx].astype(bool)
    valid &= np.isfinite(yaw) & np.isfinite(pitch) & np.isfinite(roll) & np.isfinite(scale) & (scale > 0)
    valid &= np.isfinite(trans).all(1) & np.isfinite(expr).all(1)
    return yaw, pitch, roll, trans, scale, expr, valid


def from_first_frame(head: np.ndarray) -> np.ndarray:
    """(T, 6) head motion re-expressed relative to its own first frame (rotation R(0)^T R(t); translation and
    log-scale minus frame 0's), so that it starts exactly at the reference.

    A ground-truth clip's relative motion is unchanged by it (its first frame is the reference, 0 by
    construction). A generated sample also starts where the reference is, whatever offset the model's
    noise gave its first window (see ksdiff.infer).
    """
    head = np.asarray(head, dtype=np.float64)
    if len(head) == 0:
        return head.astype(np.float32)
    out = head - head[:1]
    out[:, 0:3] = relative_angles(head[:, 0:3], head[0, 0:3])
    return out.astype(np.float32)


def anchor_from_coeffs(table) -> Anchor:
    """The clip's anchor: its first valid frame (placement and rotation), with the template radius from the
    table's attrs."""
    yaw, pitch, roll, trans, scale, _, valid = _columns(table)
    if not valid.any():
        raise ValueError("no valid frame in the coeffs table")
    i = int(np.argmax(valid))
    return Anchor(trans[i].copy(), float(scale[i]), template_size(table.attrs.get("template")), frame=i,
                  ypr=np.array([yaw[i], pitch[i], roll[i]]))


def _fill_invalid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation over invalid rows (edges hold the nearest valid value)."""
    if valid.all():
        return x
    t = np.arange(len(x))
    out = x.copy()
    for d in range(x.shape[1]):
        out[:, d] = np.interp(t, t[valid], x[valid, d])
    return out


def motion_from_coeffs(table, anchor: Anchor | None = None,
                       pose_frame: str = POSE_FRAME) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A coeffs Table -> head (T, 6) float32, expr (T, K) float32, valid (T,) bool.

    ``anchor`` defaults to the clip's own (first valid frame). ``pose_frame``
    'reference' (the models' representation) gives the rotation relative to the
    anchor's, 'absolute' the angles as they are (the legacy representation).
    Invalid frames are interpolated and marked False in ``valid``. Raises
    ValueError when no frame is valid (the caller records a skip).
    """
    _check_pose_frame(pose_frame)
    yaw, pitch, roll, trans, scale, expr, valid = _columns(table)
    if not valid.any():
        raise ValueError("no valid frame in the coeffs table")
    if anchor is None:
        anchor = anchor_from_coeffs(table)
    safe_scale = np.where(valid, scale, anchor.scale)
    ypr = np.where(valid[:, None], np.stack([yaw, pitch, roll], axis=1), anchor.ypr[None])
    if pose_frame == "reference":
        ypr = relative_angles(ypr, anchor.ypr)
    head = np.stack(
        [
            ypr[:, 0],
            ypr[:, 1],
            ypr[:, 2],
            (trans[:, 0] - anchor.trans[0]) / anchor.face_size,
            (trans[:, 1] - anchor.trans[1]) / anchor.face_size,
            np.log(safe_scale / anchor.scale),
        ],
        axis=1,
    )
    head = _fill_invalid(np.where(valid[:, None], head, 0.0), valid)
    expr = _fill_invalid(np.where(valid[:, None], expr, 0.0), valid)
    return head.astype(np.float32), expr.astype(np.float32), valid


def coeffs_from_motion(
    head: np.ndarray,
    expr: np.ndarray,
    anchor: Anchor,
    fps: float,
    sample: int = 0,
    valid: np.ndarray | None = None,
    backend: str | None = None,
    pose_frame: str = POSE_FRAME,
) -> dict:
    """head (T, 6) + expr (T, K) placed at ``anchor`` -> columns of the 'coeffs' schema.

    ``pose_frame`` says what head[:, 0:3] hold: 'reference' (rotation relative to
    the anchor's, composed back as R_anchor R_rel) or 'absolute' (written as they
    are). The exact inverse of motion_from_coeffs for yaw/pitch/roll, x/y translation,
    scale, expression and (for a ``backend`` with a jaw, see JAW_BACKENDS) the jaw
    pose, taken from expr's last 3 values; rotvec is recomputed from the angles, z
    translation is the anchor's, jaw is zero for the landmark representation (it
    has none) and ``residual`` is NaN because a prediction is not a fit.
    """
    head = np.asarray(head, dtype=np.float64)
    expr = np.asarray(expr, dtype=np.float64)
    if head.ndim != 2 or head.shape[1] != HEAD_DIM:
        raise ValueError(f"head must be (T, {HEAD_DIM}), got {head.shape}")
    if expr.ndim != 2 or len(expr) != len(head):
        raise ValueError(f"expr must be (T, K) with T = {len(head)}, got {expr.shape}")
    n = len(head)
    jaw = np.zeros((n, JAW_DIM))
    if has_jaw(backend):
        if expr.shape[1] <= JAW_DIM:
            raise ValueError(f"backend {backend!r} expects expression + {JAW_DIM} jaw values, got {expr.shape[1]} values")
        expr, jaw = expr[:, :-JAW_DIM], expr[:, -JAW_DIM:]
    _check_pose_frame(pose_frame)
    ypr = compose_angles(head[:, 0:3], anchor.ypr) if pose_frame == "reference" else head[:, 0:3]
    yaw, pitch, roll = ypr[:, 0], ypr[:, 1], ypr[:, 2]
    rotvec = geometry.matrix_to_rotvec(geometry.euler_to_matrix(yaw, pitch, roll)) if n else np.zeros((0, 3))
    trans = np.empty((n, 3))
    trans[:, 0] = anchor.trans[0] + head[:, 3] * anchor.face_size
    trans[:, 1] = anchor.trans[1] + head[:, 4] * anchor.face_size
    trans[:, 2] = anchor.trans[2]
    frames = np.arange(n)
    return {
        "sample": np.full(n, sample, dtype=np.int16),
        "frame": frames.astype(np.int32),
        "time_s": frames / float(fps),
        "valid": np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool),
        "rotvec": rotvec.astype(np.float32),
        "yaw": yaw.astype(np.float32),
        "pitch": pitch.astype(np.float32),
        "roll": roll.astype(np.float32),
        "trans": trans.astype(np.float32),
        "scale": (anchor.scale * np.exp(head[:, 5])).astype(np.float32),
        "jaw": jaw.astype(np.float32),
        "expr": [row.astype(np.float32) for row in expr],
        "residual": np.full(n, np.nan, dtype=np.float32),
    }


def concat_columns(parts: list[dict]) -> dict:
    """Stack several coeffs column dicts (e.g. one per sample) into one table's columns."""
    if not parts:
        raise ValueError("nothing to concatenate")
    out = {}
    for k in parts[0]:
        if isinstance(parts[0][k], list):
            out[k] = [row for p in parts for row in p[k]]
        else:
            out[k] = np.concatenate([p[k] for p in parts])
    return out
