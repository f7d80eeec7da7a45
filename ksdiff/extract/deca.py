"""DECA backend: FLAME coefficients per frame from a user's DECA checkout.

The paper extracts its motion with DECA (Feng et al. 2021): FLAME with 100
shape, 50 expression, 6 pose (3 global rotation + 3 jaw, axis-angle) and 3
orthographic camera values (scale, tx, ty). DECA's code and weights are not
redistributable and not pip-installable, so users point coeffs.deca_dir at a
checkout of https://github.com/yfeng95/DECA with its data/ folder filled as its
README says (fetch_data.sh: deca_model.tar, and generic_model.pkl from the
FLAME website after registering). Nothing is downloaded here.

Only DECA's coarse encoder (E_flame, a ResNet-50 regressor) is built: the
decalib.deca.DECA class also sets up its renderer, which needs pytorch3d or a
CUDA build of DECA's rasteriser; the coefficients do not. Face crops follow
DECA's own test-time recipe (decalib/datasets/datasets.py, 'kpt68' boxes):
the box of the 68 facial keypoints, side * 1.1 * 1.25, warped to 224x224 —
here the keypoints are their MediaPipe face-mesh equivalents from our
landmarks table.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from ksdiff.io.parquet import SKIPPED, read_table, write_failure, write_table

log = logging.getLogger(__name__)

IMAGE_SIZE = 224  # DECA's input resolution
CROP_SCALE = 1.25  # DECA TestData(scale=1.25)
KPT_SIZE_FACTOR = 1.1  # DECA bbox2point(type='kpt68')
BATCH = 32  # frames per encoder call: bounded memory, good CPU/GPU use
N_SHAPE, N_TEX, N_EXP, N_POSE, N_CAM, N_LIGHT = 100, 50, 50, 6, 3, 27  # DECA cfg.model, param_list order

# MediaPipe face-mesh indices standing in for the 68 iBUG keypoints (jaw line,
# brows, nose, eyes, lips), used only for the crop box.
MESH_68 = [
    127, 234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 454,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
]

# FLAME's axes are y up, z towards the viewer; ksdiff's (ksdiff.geometry) are
# y down, z away. A FLAME rotation R reads as F R F in ksdiff's frame.
_FLIP = np.diag([1.0, -1.0, -1.0])


def check_deca_dir(deca_dir) -> Path:
    """The DECA checkout, or an error saying exactly what is missing and where to get it."""
    if not deca_dir:
        raise ValueError(
            "coeffs.backend is 'deca' but coeffs.deca_dir is not set: clone https://github.com/yfeng95/DECA, "
            "run its fetch_data.sh (FLAME needs a registration at https://flame.is.tue.mpg.de) and set coeffs.deca_dir"
        )
    root = Path(deca_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"coeffs.deca_dir {root} does not exist (expected a DECA checkout)")
    wanted = {
        "data/deca_model.tar": "DECA's trained model, from DECA's fetch_data.sh (Google Drive link in its README)",
        "data/generic_model.pkl": "the FLAME 2020 model, from https://flame.is.tue.mpg.de after registering (DECA's fetch_data.sh)",
    }
    for rel, how in wanted.items():
        if not (root / rel).is_file():
            raise FileNotFoundError(f"{root / rel} is missing: {how}")
    if not (root / "decalib").is_dir():
        raise FileNotFoundError(f"{root / 'decalib'} is missing: coeffs.deca_dir must be the root of a DECA checkout")
    return root


def load_encoder(deca_dir, device: str = "cpu"):
    """DECA's coarse encoder (E_flame) with its trained weights, in eval mode."""
    import torch

    root = check_deca_dir(deca_dir)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from decalib.models.encoders import ResnetEncoder
    except ImportError as e:
        raise ImportError(f"cannot import DECA's decalib from {root} ({e}); install DECA's requirements (requirements.txt in the checkout)") from e
    n_param = N_SHAPE + N_TEX + N_EXP + N_POSE + N_CAM + N_LIGHT
    enc = ResnetEncoder(outsize=n_param)
    ckpt = torch.load(root / "data" / "deca_model.tar", map_location="cpu", weights_only=True)
    if "E_flame" not in ckpt:
        raise ValueError(f"{root / 'data' / 'deca_model.tar'} has no 'E_flame' weights: not a DECA model file")
    enc.load_state_dict(ckpt["E_flame"])
    return enc.to(device).eval()


def crop_transform(points: np.ndarray) -> np.ndarray:
    """2x3 affine from full-frame pixels to DECA's 224x224 crop, from 68 keypoints."""
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    size = (x1 - x0 + y1 - y0) / 2 * KPT_SIZE_FACTOR * CROP_SCALE
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    k = IMAGE_SIZE / size
    return np.array([[k, 0, IMAGE_SIZE / 2 - k * cx], [0, k, IMAGE_SIZE / 2 - k * cy]])


def fit_deca(cfg: dict, manifest, clip: str, landmarks, out) -> None:
    """FLAME coefficients of ``clip`` with DECA -> 'coeffs' table (backend 'deca').

    Columns: rotvec = FLAME global pose (FLAME axes, as DECA gives it, so a
    FLAME renderer can use it as is), yaw/pitch/roll = the same rotation in
    ksdiff's convention, jaw = FLAME jaw pose, expr = the 50 FLAME expression
    values, scale and trans = DECA's orthographic camera (s; tx, ty, 0) in
    the crop's normalised coordinates (per-frame crop transforms in
    attrs['crops']), residual NaN (DECA reports none). attrs['shape'] is the
    median FLAME shape code over the clip (the identity).
    """
    import cv2
    import torch

    from ksdiff.data.manifest import clip_row
    from ksdiff.extract.landmarks import landmarks_array
    from ksdiff.geometry import matrix_to_euler, rotvec_to_matrix
    from ksdiff.io.video import VideoError, iter_frames

    lt = read_table(landmarks, "landmarks")
    fps = float(cfg["fps"])
    attrs = {"clip_id": clip, "backend": "deca", "fps": fps, "n_expr": N_EXP}
    if not lt.ok:
        reason = lt.reason if lt.status == SKIPPED else f"landmarks: {lt.reason}"
        write_failure(out, "coeffs", reason, status=SKIPPED, attrs=attrs)
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    enc = load_encoder(cfg["coeffs"].get("deca_dir"), device)
    lm = landmarks_array(lt)[:, MESH_68, :2]
    detected = lt.column("detected") & np.isfinite(lm).all(axis=(1, 2))
    T = len(lm)
    params = np.full((T, N_SHAPE + N_TEX + N_EXP + N_POSE + N_CAM + N_LIGHT), np.nan)
    crops = np.full((T, 2, 3), np.nan)
    batch, idx = [], []

    def flush():
        with torch.no_grad():
            x = torch.from_numpy(np.stack(batch)).to(device)
            params[idx] = enc(x).cpu().numpy()
        batch.clear()
        idx.clear()

    row = clip_row(manifest, clip)
    try:
        for k, _, _, rgb in iter_frames(row["path"], fps):
            if k >= T:
                break
            if not detected[k]:
                continue
            crops[k] = crop_transform(lm[k])
            img = cv2.warpAffine(rgb, crops[k], (IMAGE_SIZE, IMAGE_SIZE), flags=cv2.INTER_LINEAR)
            batch.append(img.transpose(2, 0, 1).astype(np.float32) / 255.0)
            idx.append(k)
            if len(batch) == BATCH:
                flush()
        if batch:
            flush()
    except VideoError as e:
        write_failure(out, "coeffs", f"unreadable video: {e}", attrs=attrs)
        return
    valid = np.isfinite(params).all(1)
    o = np.cumsum([0, N_SHAPE, N_TEX, N_EXP, N_POSE, N_CAM])
    shape, exp, pose, cam = params[:, o[0] : o[1]], params[:, o[2] : o[3]], params[:, o[3] : o[4]], params[:, o[4] : o[5]]
    ypr = np.full((T, 3), np.nan)
    if valid.any():
        ypr[valid] = matrix_to_euler(_FLIP @ rotvec_to_matrix(pose[valid, :3]) @ _FLIP)
    cols = {
        "sample": np.zeros(T, np.int16),
        "frame": lt.column("frame"),
        "time_s": lt.column("time_s"),
        "valid": valid,
        "rotvec": pose[:, :3],
        "yaw": ypr[:, 0],
        "pitch": ypr[:, 1],
        "roll": ypr[:, 2],
        "trans": np.c_[cam[:, 1:3], np.where(valid, 0.0, np.nan)],
        "scale": cam[:, 0],
        "jaw": pose[:, 3:6],
        "expr": list(exp.astype(np.float32)),
        "residual": np.full(T, np.nan),
    }
    attrs.update(
        shape=np.nanmedian(shape[valid], 0).tolist() if valid.any() else [],
        crops=np.round(crops, 5).tolist(),
        model=str(Path(cfg["coeffs"]["deca_dir"]) / "data" / "deca_model.tar"),
        rotvec_axes="FLAME (y up, z towards the viewer)",
    )
    write_table(out, "coeffs", cols, attrs=attrs)
    log.info("%s: DECA coefficients for %d/%d frames", clip, valid.sum(), T)
