"""`ksdiff coeffs`: one clip's motion coefficients (head pose + expression), and their inverse.

The last of the three motion-coefficient steps (ksdiff.extract.pose -> ksdiff.extract.basis ->
ksdiff.extract.coeffs):
  project_coeffs    per clip: pose + expression coefficients -> 'coeffs' table.
  decode_landmarks  coefficients -> aligned and posed landmarks (renderer, LVE).

Units are the pose step's: template units, inter-ocular distance = 1 (ksdiff.extract.pose).
Frames without landmarks have valid=False and NaN values.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ksdiff.extract.basis import Basis, load_basis
from ksdiff.extract.pose import pose_displacements, upstream
from ksdiff.geometry import matrix_to_euler, rotvec_to_matrix
from ksdiff.io.parquet import Table, read_table, write_failure, write_table
from ksdiff.io.schemas import N_LANDMARKS

log = logging.getLogger(__name__)

BUTTER_ORDER = 4  # low-pass order for smoothing_cutoff_hz: -24 dB/octave, flat pass band


def _lowpass(x: np.ndarray, valid: np.ndarray, cutoff_hz: float, fps: float) -> np.ndarray:
    """Zero-phase Butterworth low-pass along time, run by run of valid frames.

    filtfilt (forward + backward) doubles the order and cancels the phase, so
    smoothing shifts no motion in time. Runs too short for filtfilt's padding
    are left as they are.
    """
    from scipy.signal import butter, filtfilt

    if not 0 < cutoff_hz < fps / 2:
        raise ValueError(f"coeffs.smoothing_cutoff_hz must be in (0, {fps / 2:g}) at {fps:g} fps, got {cutoff_hz}")
    b, a = butter(BUTTER_ORDER, cutoff_hz / (fps / 2))
    pad = 3 * max(len(a), len(b))
    y = x.copy()
    edges = np.flatnonzero(np.diff(np.r_[0, valid.astype(np.int8), 0]))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start > pad:
            y[start:stop] = filtfilt(b, a, x[start:stop], axis=0)
    return y


def project_coeffs(cfg: dict, pose, basis, out) -> None:
    """Pose + expression coefficients of one clip -> 'coeffs' table.

    expr = components @ (d - mean), zero-padded to cfg n_expr when the basis
    has fewer components. residual: RMS over all 478 points of aligned minus
    its reconstruction from the written coefficients (template + mean +
    expr @ components), in template units (inter-ocular distance = 1).
    With coeffs.smoothing_cutoff_hz set, rotvec, trans, scale and expr are
    low-passed (see _lowpass) and yaw/pitch/roll recomputed from rotvec.
    """
    ccfg = cfg["coeffs"]
    if ccfg.get("backend", "landmarks") != "landmarks":
        raise ValueError(
            f"coeffs.backend={ccfg['backend']!r}: DECA coefficients come from the video frames, "
            "not from the landmark pose; run ksdiff.extract.deca.fit_deca instead"
        )
    pt = read_table(pose, "pose")
    fps = float(pt.attrs.get("fps", cfg["fps"]))
    attrs = {"clip_id": pt.attrs.get("clip_id", Path(pose).stem), "backend": "landmarks", "fps": fps}
    if not pt.ok:
        status, reason = upstream(pt, "pose")
        write_failure(out, "coeffs", reason, status=status, attrs=attrs)
        return
    b = basis if isinstance(basis, Basis) else load_basis(basis)
    n_expr = int(ccfg["n_expr"])
    template, d, valid = pose_displacements(pt)
    T = len(d)
    expr = (d - b.mean) @ b.components.T
    rotvec, trans, scale = pt.column("rotvec").astype(np.float64), pt.column("trans").astype(np.float64), pt.column("scale").astype(np.float64)
    cutoff = ccfg.get("smoothing_cutoff_hz")
    if cutoff:
        rotvec = _lowpass(rotvec, valid, float(cutoff), fps)
        trans = _lowpass(trans, valid, float(cutoff), fps)
        scale = _lowpass(scale, valid, float(cutoff), fps)
        expr = _lowpass(expr, valid, float(cutoff), fps)
    recon = b.mean + expr @ b.components
    residual = np.sqrt(((d - recon).reshape(T, N_LANDMARKS, 3) ** 2).sum(2).mean(1))
    if b.n_expr != n_expr:
        log.info("basis has %d components, coeffs.n_expr=%d: expr is %s", b.n_expr, n_expr, "zero-padded" if b.n_expr < n_expr else "truncated")
    e = np.zeros((T, n_expr))
    e[:, : min(n_expr, b.n_expr)] = expr[:, :n_expr]
    e[~valid] = np.nan
    ypr = np.full((T, 3), np.nan)
    if valid.any():
        ypr[valid] = matrix_to_euler(rotvec_to_matrix(rotvec[valid]))
    cols = {
        "sample": np.zeros(T, np.int16),
        "frame": pt.column("frame"),
        "time_s": pt.column("time_s"),
        "valid": valid,
        "rotvec": rotvec,
        "yaw": ypr[:, 0],
        "pitch": ypr[:, 1],
        "roll": ypr[:, 2],
        "trans": trans,
        "scale": scale,
        "jaw": np.zeros((T, 3)),
        "expr": list(e.astype(np.float32)),
        "residual": np.where(valid, residual, np.nan),
    }
    attrs.update(
        n_expr=n_expr,
        basis_components=b.n_expr,
        template=pt.attrs["template"],
        basis={"path": str(Path(b.path).resolve()) if b.path else "", "sha256": b.sha256},
        smoothing_cutoff_hz=cutoff,
        template_units=pt.attrs.get("template_units", ""),
    )
    write_table(out, "coeffs", cols, attrs=attrs)


def decode_landmarks(coeffs, template, basis) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks from coefficients: (aligned (T,478,3) template units, posed (T,478,3) pixels).

    ``coeffs``: a 'coeffs' Table or a dict with expr (T, n), rotvec (T, 3),
    trans (T, 3), scale (T,). ``template``: (478, 3), e.g. the table's
    attrs['template']. ``basis``: a Basis or its path. aligned = template +
    mean + expr @ components; posed = scale * aligned @ R.T + trans.
    """
    if isinstance(coeffs, Table):
        c = {k: coeffs.column(k) for k in ("expr", "rotvec", "trans", "scale")}
    else:
        c = coeffs
    b = basis if isinstance(basis, Basis) else load_basis(basis)
    expr = np.asarray(np.stack(c["expr"]) if isinstance(c["expr"], list) else c["expr"], np.float64)
    k = min(expr.shape[1], b.n_expr)
    template = np.asarray(template, np.float64)
    aligned = template + (b.mean + expr[:, :k] @ b.components[:k]).reshape(len(expr), N_LANDMARKS, 3)
    R = rotvec_to_matrix(np.asarray(c["rotvec"], np.float64))
    s = np.asarray(c["scale"], np.float64)
    t = np.asarray(c["trans"], np.float64)
    posed = s[:, None, None] * (aligned @ R.transpose(0, 2, 1)) + t[:, None]
    return aligned, posed
