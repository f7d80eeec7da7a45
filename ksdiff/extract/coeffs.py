"""Motion coefficients from landmarks: rigid head pose, expression basis, projection.

Three workflow steps and their inverse:
  fit_pose        per clip: an identity template (478x3, canonical frame) and a
                  similarity transform per frame (rotation -> yaw/pitch/roll),
                  the landmarks with the head pose removed ("aligned").
  fit_basis       training split: PCA of aligned - template (identity removed)
                  -> expression basis (.npz).
  project_coeffs  per clip: pose + expression coefficients -> 'coeffs' table.
  decode_landmarks  coefficients -> aligned and posed landmarks (renderer, LVE).

Units: the template lives in the canonical frame of ksdiff.geometry.face_frame
(frontal upright = zero yaw/pitch/roll), centred on the centroid of its rigid
points and scaled so that its outer inter-ocular distance (33-263) is
TEMPLATE_IOD = 1. Aligned landmarks, displacements, expression components and
residuals are therefore in inter-ocular units for every clip, which lets one
basis serve all speakers; scale * template gives full-frame pixels.
Frames without landmarks have valid=False and NaN values.
"""
from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ksdiff.geometry import face_frame, matrix_to_euler, matrix_to_rotvec, rotvec_to_matrix
from ksdiff.io.files import atomic_write_bytes
from ksdiff.io.parquet import SKIPPED, Table, read_status, read_table, write_failure, write_table
from ksdiff.io.schemas import N_LANDMARKS

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
BUTTER_ORDER = 4  # low-pass order for smoothing_cutoff_hz: -24 dB/octave, flat pass band
BASIS_MAX_FRAMES = 200_000  # PCA frame budget; more training frames are subsampled evenly


# --- rigid fit -------------------------------------------------------------------------


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


def _upstream(table: Table, step: str) -> tuple[str, str]:
    """(status, reason) to record for a clip whose input table is not ok.

    A skip keeps its reason (it already names the first step that failed); a
    failure of the previous step becomes a skip here, named after that step.
    """
    if table.status == SKIPPED:
        return SKIPPED, table.reason
    return SKIPPED, f"{step}: {table.reason}"


def fit_pose(cfg: dict, landmarks, out) -> None:
    """Rigid head pose per frame and the clip's identity template -> 'pose' table."""
    from ksdiff.extract.landmarks import landmarks_array

    lt = read_table(landmarks, "landmarks")
    attrs = {"clip_id": lt.attrs.get("clip_id", Path(landmarks).stem), "fps": lt.attrs.get("fps", cfg["fps"])}
    if not lt.ok:
        status, reason = _upstream(lt, "landmarks")
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


# --- expression basis ------------------------------------------------------------------


@dataclass
class Basis:
    """A PCA expression basis: d ~ mean + expr @ components (d: 1434 = 478 x 3)."""

    mean: np.ndarray  # (1434,)
    components: np.ndarray  # (K, 1434), orthonormal rows
    std: np.ndarray  # (K,), sqrt of the explained variance
    explained_variance_ratio: np.ndarray  # (K,)
    n_frames: int = 0
    clips: list = field(default_factory=list)
    path: str = ""
    sha256: str = ""

    @property
    def n_expr(self) -> int:
        return len(self.components)


def load_basis(path) -> Basis:
    """Read a basis written by fit_basis (with its path and sha256, for provenance)."""
    raw = Path(path).read_bytes()
    z = np.load(io.BytesIO(raw), allow_pickle=False)
    return Basis(
        mean=z["mean"].astype(np.float64),
        components=z["components"].astype(np.float64),
        std=z["std"].astype(np.float64),
        explained_variance_ratio=z["explained_variance_ratio"].astype(np.float64),
        n_frames=int(z["n_frames"]),
        clips=[str(c) for c in z["clips"]],
        path=str(path),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def fit_basis(cfg: dict, splits, pose: list, out, pose_dir: str | None = None) -> None:
    """PCA expression basis over the training split's pose tables -> ``out`` (.npz).

    ``pose``: pose tables, or with ``pose_dir`` the pose step's shard summaries
    (ksdiff.data.shards), whose clips' tables lie in ``pose_dir``, in shard order.

    The covariance is accumulated clip by clip in float64 and diagonalised
    (numpy eigh): the same components as an SVD of the stacked frames, but
    memory stays at one clip plus a 1434x1434 matrix whatever the dataset size.
    Beyond BASIS_MAX_FRAMES training frames every k-th frame is used.
    """
    k_req = int(cfg["coeffs"]["n_expr"])
    usable = _training_pose_tables(splits, pose, pose_dir)
    if not usable:
        n_pose = len(pose) if isinstance(pose, (list, tuple)) else 1
        raise ValueError(f"no usable training clip among the pose tables of {n_pose} "
                         f"{'shard summaries' if pose_dir else 'clips'}")
    stride = _basis_stride(usable)
    dim = N_LANDMARKS * 3
    n, acc, xtx, clips = 0, np.zeros(dim), np.zeros((dim, dim)), []
    for p in usable:
        _, d, valid = pose_displacements(read_table(p, "pose"))
        d = d[valid][::stride]
        if len(d) == 0:
            continue
        n += len(d)
        acc += d.sum(0)
        xtx += d.T @ d
        clips.append(p.stem)
    if n < 2:
        raise ValueError(f"{n} valid training frames: at least 2 are needed for an expression basis")
    mean = acc / n
    _write_basis(out, k_req, n, mean, (xtx - n * np.outer(mean, mean)) / (n - 1), stride, clips)


def _training_pose_tables(splits, pose, pose_dir: str | None) -> list[Path]:
    """The ok pose tables of training clips among ``pose`` (tables, or shard summaries with ``pose_dir``)."""
    st = read_table(splits, "splits").table
    train = {c for c, s in zip(st.column("clip_id").to_pylist(), st.column("split").to_pylist()) if s == "train"}
    paths = [Path(p) for p in (pose if isinstance(pose, (list, tuple)) else [pose])]
    if pose_dir is not None:
        paths = [Path(pose_dir) / f"{c}.parquet" for p in paths
                 for c in read_table(p, "shard").table.column("clip_id").to_pylist()]
    return [p for p in paths if p.stem in train and read_status(p)[0] == "ok"]


def _basis_stride(tables: list[Path]) -> int:
    """Every k-th frame so that at most BASIS_MAX_FRAMES of ``tables``' frames enter (Parquet footers only)."""
    total = sum(pq.read_metadata(p).num_rows for p in tables)
    return max(1, int(np.ceil(total / BASIS_MAX_FRAMES)))


def _write_basis(out, k_req: int, n: int, mean: np.ndarray, cov: np.ndarray, stride: int, clips: list[str]) -> None:
    """Diagonalise the displacement covariance of ``n`` frames and write the basis (.npz)."""
    dim = N_LANDMARKS * 3
    k = min(k_req, n - 1, dim)
    if k < k_req:
        log.warning("only %d training frames: expression basis has %d components instead of n_expr=%d", n, k, k_req)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0, None), evecs[:, order]
    comps = evecs[:, :k].T
    # Fix each component's sign (largest entry positive) so reruns agree.
    comps *= np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])[:, None]
    buf = io.BytesIO()
    np.savez(
        buf,
        mean=mean.astype(np.float32),
        components=comps.astype(np.float32),
        std=np.sqrt(evals[:k]).astype(np.float32),
        explained_variance_ratio=(evals[:k] / max(evals.sum(), 1e-30)).astype(np.float32),
        n_frames=np.int64(n),
        n_expr=np.int64(k),
        n_expr_requested=np.int64(k_req),
        frame_stride=np.int64(stride),
        clips=np.array(clips),
        template_iod=np.float64(TEMPLATE_IOD),
    )
    atomic_write_bytes(out, buf.getvalue())
    log.info("expression basis: %d components from %d frames of %d clips (%.1f%% variance)", k, n, len(clips), 100 * evals[:k].sum() / max(evals.sum(), 1e-30))


# The basis as map-reduce: one job per shard accumulates its training clips' displacement
# moments (count, mean, centred scatter, float64, Chan et al.'s update), one small job merges
# them and diagonalises. Each shard subsamples its own frames to BASIS_MAX_FRAMES (the
# single job's budget was for the whole dataset, to bound one serial job; a shard job is
# bounded by its shard), so the result equals ``fit_basis``'s whenever the training frames
# fit that budget (the demo's 7k frames) and uses more frames, not fewer, beyond it.


def basis_part(cfg: dict, splits: str, pose: str, out: str, pose_dir: str | None = None) -> int:
    """`ksdiff basis-part`: displacement moments of one shard's training clips -> ``out`` (.npz)."""
    usable = _training_pose_tables(splits, [pose], pose_dir)
    stride = _basis_stride(usable) if usable else 1
    dim = N_LANDMARKS * 3
    n, mean, m2, clips = 0, np.zeros(dim), np.zeros((dim, dim)), []
    for p in usable:
        _, d, valid = pose_displacements(read_table(p, "pose"))
        d = d[valid][::stride]
        if len(d) == 0:
            continue
        n, mean, m2 = _merge_scatter(n, mean, m2, len(d), d.mean(0), (d - d.mean(0)).T @ (d - d.mean(0)))
        clips.append(p.stem)
    buf = io.BytesIO()
    np.savez(buf, n=np.int64(n), mean=mean, m2=m2, frame_stride=np.int64(stride), clips=np.array(clips, dtype=str))
    atomic_write_bytes(out, buf.getvalue())
    log.info("basis part %s: %d frames of %d training clips (stride %d)", Path(out).stem, n, len(clips), stride)
    return 0


def _merge_scatter(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Chan et al.'s update of (count, mean, centred scatter matrix)."""
    if n_a == 0:
        return n_b, mean_b, m2_b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + np.outer(delta, delta) * n_a * n_b / n


def merge_basis(cfg: dict, parts: list[str], out: str) -> int:
    """`ksdiff merge-basis`: the expression basis from the shards' parts (``fit_basis``'s values)."""
    dim = N_LANDMARKS * 3
    n, mean, m2, clips, stride = 0, np.zeros(dim), np.zeros((dim, dim)), [], 1
    for p in parts:
        with np.load(p, allow_pickle=False) as z:
            if int(z["n"]):
                n, mean, m2 = _merge_scatter(n, mean, m2, int(z["n"]), z["mean"], z["m2"])
                clips += [str(c) for c in z["clips"]]
                stride = max(stride, int(z["frame_stride"]))
    if n < 2:
        raise ValueError(f"{n} valid training frames in {len(parts)} shard(s): at least 2 are needed for an expression basis")
    _write_basis(out, int(cfg["coeffs"]["n_expr"]), n, mean, m2 / (n - 1), stride, clips)
    return 0


# --- coefficients ----------------------------------------------------------------------


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
        status, reason = _upstream(pt, "pose")
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
