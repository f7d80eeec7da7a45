"""`ksdiff pose`: the rigid head pose of one clip's frames and its identity template, from its landmarks.

The first of the three motion-coefficient steps (ksdiff.extract.pose -> ksdiff.extract.basis ->
ksdiff.extract.coeffs):
  fit_pose        per clip: an identity template (478x3, canonical frame) and a
                  similarity transform per frame (rotation -> yaw/pitch/roll),
                  the landmarks with the head pose removed ("aligned").

Units: the template lives in the canonical frame of ksdiff.geometry.face_frame
(frontal upright = zero yaw/pitch/roll), centred on the centroid of its rigid
points and scaled so that its outer inter-ocular distance (33-263) is
TEMPLATE_IOD = 1. Aligned landmarks, displacements, expression components and
residuals are therefore in inter-ocular units for every clip, which lets one
basis serve all speakers; scale * template gives full-frame pixels.
Frames without landmarks have valid=False and NaN values.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ksdiff.geometry import face_frame, matrix_to_euler, matrix_to_rotvec
from ksdiff.io.parquet import SKIPPED, Table, read_table, write_failure, write_table

log = logging.getLogger(__name__)

# Points that move with the skull and not with expressions, for the rigid fit:
# MediaPipe face-mesh indices, left/right pairs. Mouth, jaw, chin, eyelids,
# brows and lower cheeks (which move with smiles) are left out, and so is the
# face oval (FACE_OVAL): silhouette points mark the outline, not a point of
# skin, and slide across the face as the head turns, which leaks head
# rotation into the expression basis (on the synthetic corpus the jaw's
# correlation with the first expression component rose from 0.58-0.89 to
# 0.95-0.96 per clip when temples, outer forehead and face-side points were
# dropped; pose errors stayed the same).
RIGID_GROUPS = {
    "forehead": [151, 9, 108, 337, 69, 299, 104, 333],
    "nose_bridge": [168, 6, 197, 195, 5, 4],
    "eye_corners": [33, 133, 362, 263],
    "cheekbones": [116, 345, 117, 346, 123, 352],
}
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
RIGID_INDICES = np.array(sorted(i for g in RIGID_GROUPS.values() for i in g))
TEMPLATE_IOD = 1.0  # template scale: outer eye corner distance (see module docstring)
TEMPLATE_ITERS = 3  # generalised Procrustes rounds: align to reference, average, repeat


def batch_umeyama(src: np.ndarray, dst: np.ndarray):
    """Similarity transforms (s, R, t) with dst[i] ~ s[i] R[i] src[i] + t[i], for all i at once.

    src: (N, 3) or (T, N, 3); dst: (T, N, 3). The same algorithm as
    ksdiff.geometry.umeyama (unweighted), vectorised over frames because a
    Python loop of 3x3 SVDs would cost more than the rest of the fit.
    """
    src = np.broadcast_to(np.asarray(src, np.float64), np.shape(dst))
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(1, keepdims=True), dst.mean(1, keepdims=True)
    xs, xd = src - mu_s, dst - mu_d
    cov = np.einsum("tni,tnj->tij", xd, xs) / src.shape[1]
    u, d, vt = np.linalg.svd(cov)
    sign = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    d = d.copy()
    d[:, 2] *= sign
    u = u.copy()
    u[:, :, 2] *= sign[:, None]
    r = u @ vt
    var_s = (xs**2).sum(2).mean(1)
    s = d.sum(1) / np.where(var_s > 0, var_s, 1.0)
    t = mu_d[:, 0] - s[:, None] * np.einsum("tij,tj->ti", r, mu_s[:, 0])
    return s, r, t


def _unpose(lm: np.ndarray, s, r, t) -> np.ndarray:
    """Landmarks (T, P, 3) with the similarity removed: (x - t) R / s."""
    return ((lm - t[:, None]) @ r) / s[:, None, None]


def _iod(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[263] - points[33]))


def build_template(lm: np.ndarray, rigid: np.ndarray = RIGID_INDICES, iters: int = TEMPLATE_ITERS) -> np.ndarray:
    """The identity template (478, 3) in the canonical frame from valid frames ``lm`` (T, 478, 3).

    Generalised Procrustes: align every frame's rigid points to a reference
    (first the median frame), average all aligned landmarks into the new
    reference, repeat. The mean then carries the clip's average expression,
    which is what "identity" means for a per-clip template. Finally the
    template is expressed in its own face frame: (T - centre) @ face_frame(T),
    centred on its rigid centroid and scaled to TEMPLATE_IOD.
    """
    ref = np.median(lm, axis=0)
    for _ in range(iters):
        s, r, t = batch_umeyama(ref[rigid], lm[:, rigid])
        ref = _unpose(lm, s, r, t).mean(0)
    tpl = (ref - ref[rigid].mean(0)) @ face_frame(ref)
    return tpl * (TEMPLATE_IOD / _iod(tpl))


def solve_pose(template: np.ndarray, lm: np.ndarray, rigid: np.ndarray = RIGID_INDICES) -> dict:
    """Per-frame similarity from the template to ``lm`` (T, 478, 3); NaN rows stay NaN.

    Returns scale (T,), R (T,3,3), trans (T,3), aligned (T,478,3) and
    residual (T,): RMS distance of the aligned rigid points from the template's,
    in template units (inter-ocular distance = TEMPLATE_IOD).
    """
    n = len(lm)
    ok = np.isfinite(lm[:, rigid]).all(axis=(1, 2))
    out = {
        "scale": np.full(n, np.nan),
        "R": np.full((n, 3, 3), np.nan),
        "trans": np.full((n, 3), np.nan),
        "aligned": np.full(lm.shape, np.nan),
        "residual": np.full(n, np.nan),
    }
    if ok.any():
        s, r, t = batch_umeyama(template[rigid], lm[ok][:, rigid])
        aligned = _unpose(lm[ok], s, r, t)
        err = aligned[:, rigid] - template[rigid]
        out["scale"][ok], out["R"][ok], out["trans"][ok], out["aligned"][ok] = s, r, t, aligned
        out["residual"][ok] = np.sqrt((err**2).sum(2).mean(1)) / _iod(template) * TEMPLATE_IOD
    out["valid"] = ok
    return out


def _angles(R: np.ndarray, valid: np.ndarray):
    """(rotvec (T,3), yaw, pitch, roll (T,)) with NaN where not valid."""
    rotvec = np.full((len(R), 3), np.nan)
    ypr = np.full((len(R), 3), np.nan)
    if valid.any():
        rotvec[valid] = matrix_to_rotvec(R[valid])
        ypr[valid] = matrix_to_euler(R[valid])
    return rotvec, ypr[:, 0], ypr[:, 1], ypr[:, 2]


def upstream(table: Table, step: str) -> tuple[str, str]:
    """(status, reason) to record for a clip whose input table is not ok.

    A skip keeps its reason (it already names the first step that failed); a
    failure of the previous step becomes a skip here, named after that step.
    """
    if table.status == SKIPPED:
        return SKIPPED, table.reason
    return SKIPPED, f"{step}: {table.reason}"


def fit_pose(cfg: dict, landmarks, out) -> None:
    """Rigid head pose per frame and the clip's identity template -> 'pose' table."""
    from ksdiff.extract.landmarks import landmarks_array  # and cv2 with it: not for basis/coeffs, which import this

    lt = read_table(landmarks, "landmarks")
    attrs = {"clip_id": lt.attrs.get("clip_id", Path(landmarks).stem), "fps": lt.attrs.get("fps", cfg["fps"])}
    if not lt.ok:
        status, reason = upstream(lt, "landmarks")
        write_failure(out, "pose", reason, status=status, attrs=attrs)
        return
    lm = landmarks_array(lt)
    detected = lt.column("detected") & np.isfinite(lm[:, RIGID_INDICES]).all(axis=(1, 2))
    if not detected.any():
        write_failure(out, "pose", "no frame with landmarks", attrs=attrs)
        return
    template = build_template(lm[detected])
    fit = solve_pose(template, np.where(detected[:, None, None], lm, np.nan))
    valid = fit["valid"]
    rotvec, yaw, pitch, roll = _angles(fit["R"], valid)
    cols = {
        "frame": lt.column("frame"),
        "time_s": lt.column("time_s"),
        "valid": valid,
        "rotvec": rotvec,
        "yaw": yaw,
        "pitch": pitch,
        "roll": roll,
        "trans": fit["trans"],
        "scale": fit["scale"],
        "aligned": fit["aligned"].reshape(len(lm), -1),
        "residual": fit["residual"],
    }
    attrs.update(
        template=np.round(template, 6).tolist(),
        rigid_indices=RIGID_INDICES.tolist(),
        template_units=f"inter-ocular distance (landmarks 33-263) = {TEMPLATE_IOD:g}",
        width=lt.attrs.get("width"),
        height=lt.attrs.get("height"),
        median_residual=float(np.nanmedian(fit["residual"])),
    )
    write_table(out, "pose", cols, attrs=attrs)
    log.info("%s: pose of %d/%d frames, median rigid residual %.4f IOD", attrs["clip_id"], valid.sum(), len(valid), attrs["median_residual"])


def pose_displacements(pose: Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(template (478,3), displacement d = aligned - template (T, 1434), valid (T,)).

    Coordinates the template lacks (irises with refine_landmarks off) are 0
    in d, so that they neither enter nor come out of the basis.
    """
    template = np.asarray(pose.attrs["template"], np.float64)
    aligned = pose.column("aligned").astype(np.float64)
    d = aligned - template.reshape(1, -1)
    d[:, ~np.isfinite(template.reshape(-1))] = 0.0
    return template, d, pose.column("valid").astype(bool)
