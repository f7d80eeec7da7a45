"""Head pose, expression basis and coefficients fitted from landmarks with known motion."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from ksdiff.config import defaults
from ksdiff.extract.basis import fit_basis, load_basis
from ksdiff.extract.coeffs import decode_landmarks, project_coeffs
from ksdiff.extract.pose import RIGID_INDICES, batch_umeyama, fit_pose
from ksdiff.geometry import euler_to_matrix, face_frame, umeyama
from ksdiff.io.parquet import read_table, write_failure, write_table

FPS = 25


@lru_cache(maxsize=1)
def frontal_face() -> np.ndarray:
    """MediaPipe's 478 landmarks of the astronaut photo, frontalised (face_frame = I), IOD = 1."""
    import mediapipe as mp
    import skimage.data

    img = skimage.data.astronaut()
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as fm:
        lm = fm.process(img).multi_face_landmarks[0].landmark
    p = np.array([[q.x, q.y, q.z] for q in lm]) * img.shape[1]
    f = (p - p.mean(0)) @ face_frame(p)
    return f / np.linalg.norm(f[263] - f[33])


def deform(face: np.ndarray, jaw: np.ndarray, wide: np.ndarray) -> np.ndarray:
    """(T, 478, 3) faces with the jaw opened by ``jaw`` (0..1) and the mouth widened by ``wide``.

    Jaw: everything below the upper lip (13) moves down, fully from the lower
    lip (14) on, by up to 0.25 inter-ocular distances. Wide: points around the
    mouth move sideways in proportion to their distance from the midline.
    """
    y = face[:, 1]
    w_jaw = np.clip((y - face[13, 1]) / (face[14, 1] - face[13, 1]), 0, 1)
    mouth = np.exp(-(((face[:, 0] / 0.45) ** 2) + ((y - face[14, 1]) / 0.2) ** 2))
    out = np.repeat(face[None], len(jaw), 0)
    out[:, :, 1] += 0.25 * jaw[:, None] * w_jaw
    out[:, :, 0] += 0.08 * wide[:, None] * mouth * face[:, 0]
    return out


def smooth_signal(rng, n: int, lo: float, hi: float) -> np.ndarray:
    """A random walk, Gaussian-smoothed (sigma 4 frames: nothing left above ~3 Hz), mapped onto [lo, hi]."""
    from scipy.ndimage import gaussian_filter1d

    x = gaussian_filter1d(np.cumsum(rng.normal(size=n)), 4.0)
    return lo + (hi - lo) * (x - x.min()) / (x.max() - x.min())


def synthetic_clip(seed: int, n: int = 120, noise_px: float = 0.2):
    """Landmark frames with known pose, scale, translation, jaw and mouth-width signals."""
    rng = np.random.default_rng(seed)
    gt = {
        "yaw": smooth_signal(rng, n, -20, 20),
        "pitch": smooth_signal(rng, n, -20, 20),
        "roll": smooth_signal(rng, n, -20, 20),
        "scale": smooth_signal(rng, n, 80, 120),  # pixels per inter-ocular distance
        "trans": np.stack([smooth_signal(rng, n, 200, 300), smooth_signal(rng, n, 180, 260), np.zeros(n)], 1),
        "jaw": smooth_signal(rng, n, 0, 1),
        "wide": smooth_signal(rng, n, -1, 1),
    }
    faces = deform(frontal_face(), gt["jaw"], gt["wide"])
    R = euler_to_matrix(gt["yaw"], gt["pitch"], gt["roll"])
    lm = gt["scale"][:, None, None] * (faces @ R.transpose(0, 2, 1)) + gt["trans"][:, None]
    lm += rng.normal(scale=noise_px, size=lm.shape)
    return lm, gt


def write_landmarks(path, lm: np.ndarray, detected: np.ndarray | None = None):
    n = len(lm)
    detected = np.ones(n, bool) if detected is None else detected
    lm = np.where(detected[:, None, None], lm, np.nan)
    write_table(
        path,
        "landmarks",
        {
            "frame": np.arange(n),
            "time_s": np.arange(n) / FPS,
            "source_frame": np.arange(n),
            "detected": detected,
            "score": np.ones(n),
            "n_faces": np.ones(n),
            "box": np.zeros((n, 4)),
            "landmarks": lm.reshape(n, -1),
            "failure": [""] * n,
        },
        attrs={"fps": FPS, "source_fps": FPS, "width": 512, "height": 512, "detector": "synthetic"},
    )


def angle_error(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + 180) % 360 - 180)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Two synthetic clips -> pose -> basis (train split) -> coeffs."""
    d = tmp_path_factory.mktemp("coeffs")
    cfg = defaults()
    clips = {}
    for i, name in enumerate(["a", "b"]):
        lm, gt = synthetic_clip(seed=i)
        detected = np.ones(len(lm), bool)
        if name == "b":
            detected[[5, 6, 50]] = False  # frames without a face
        write_landmarks(d / f"{name}.landmarks.parquet", lm, detected)
        fit_pose(cfg, d / f"{name}.landmarks.parquet", d / f"{name}.parquet")
        clips[name] = (lm, gt, detected)
    write_table(d / "splits.parquet", "splits", {"clip_id": ["a", "b"], "speaker_id": ["s1", "s2"], "split": ["train", "train"]})
    fit_basis(cfg, d / "splits.parquet", [str(d / "a.parquet"), str(d / "b.parquet")], d / "basis.npz")
    for name in clips:
        project_coeffs(cfg, d / f"{name}.parquet", d / "basis.npz", d / f"{name}.coeffs.parquet")
    return d, clips, cfg


def test_batch_umeyama_matches_geometry_umeyama():
    rng = np.random.default_rng(1)
    src, dst = rng.normal(size=(4, 30, 3)), rng.normal(size=(4, 30, 3))
    s, r, t = batch_umeyama(src, dst)
    for i in range(4):
        s0, r0, t0 = umeyama(src[i], dst[i])
        np.testing.assert_allclose([s[i]], [s0], atol=1e-12)
        np.testing.assert_allclose(r[i], r0, atol=1e-12)
        np.testing.assert_allclose(t[i], t0, atol=1e-12)


def test_rigid_points_exclude_mouth_jaw_eyelids_and_outline():
    from ksdiff.extract.pose import FACE_OVAL

    mobile = {13, 14, 17, 61, 291, 0, 152, 148, 377, 159, 145, 386, 374}
    assert not (mobile | set(FACE_OVAL)) & set(RIGID_INDICES.tolist())
    face = frontal_face()
    assert (face[RIGID_INDICES, 1] < face[13, 1] - 0.2).all()  # all well above the mouth


def test_pose_recovers_known_angles(fitted):
    d, clips, _ = fitted
    for name, (lm, gt, detected) in clips.items():
        p = read_table(d / f"{name}.parquet", "pose")
        assert p.ok
        valid = p.column("valid")
        np.testing.assert_array_equal(valid, detected)
        for k in ("yaw", "pitch", "roll"):
            err = angle_error(p.column(k)[valid], gt[k][valid])
            assert err.max() < 0.5, (name, k, err.max())
        assert np.isnan(p.column("yaw")[~valid]).all()
        # Scale and translation: the template's IOD is 1, so scale is pixels per IOD;
        # the template origin is its rigid centroid.
        np.testing.assert_allclose(p.column("scale")[valid], gt["scale"][valid], rtol=0.01)
        tpl = np.asarray(p.attrs["template"])
        np.testing.assert_allclose(np.linalg.norm(tpl[263] - tpl[33]), 1.0, rtol=1e-5)
        np.testing.assert_allclose(face_frame(tpl), np.eye(3), atol=1e-5)
        assert np.nanmedian(p.column("residual")) < 0.01


def test_first_expression_component_follows_the_jaw(fitted):
    d, clips, cfg = fitted
    basis = load_basis(d / "basis.npz")
    assert basis.n_expr == cfg["coeffs"]["n_expr"]
    np.testing.assert_allclose(basis.components @ basis.components.T, np.eye(basis.n_expr), atol=1e-4)
    assert (np.diff(basis.std) <= 1e-6).all()
    assert basis.explained_variance_ratio[0] > 0.5
    for name, (lm, gt, detected) in clips.items():
        c = read_table(d / f"{name}.coeffs.parquet", "coeffs")
        assert c.ok and c.attrs["backend"] == "landmarks" and c.attrs["basis"]["sha256"] == basis.sha256
        valid = c.column("valid")
        expr = np.stack(c.column("expr"))
        assert expr.shape == (len(lm), cfg["coeffs"]["n_expr"])
        r = np.corrcoef(expr[valid, 0], gt["jaw"][valid])[0, 1]
        assert abs(r) >= 0.95, r
        # The mouth-width signal is there too, in the second component.
        r2 = np.corrcoef(expr[valid, 1], gt["wide"][valid])[0, 1]
        assert abs(r2) >= 0.8, r2
        np.testing.assert_array_equal(np.stack(c.column("jaw")), 0)


def test_decode_reproduces_the_landmarks(fitted):
    d, clips, _ = fitted
    basis = load_basis(d / "basis.npz")
    for name, (lm, gt, detected) in clips.items():
        c = read_table(d / f"{name}.coeffs.parquet", "coeffs")
        aligned, posed = decode_landmarks(c, c.attrs["template"], basis)
        valid = c.column("valid")
        err = np.linalg.norm(posed[valid] - lm[valid], axis=2)  # pixels; IOD ~ 100 px
        assert np.median(err) < 0.5 and err.mean(1).max() < 1.0
        # The coeffs residual (template units) agrees with the pixel error / scale.
        assert np.nanmedian(c.column("residual")) < 0.01
        assert np.isnan(posed[~valid]).all()


def test_basis_shrinks_to_the_available_frames(tmp_path):
    cfg = defaults()
    lm, _ = synthetic_clip(seed=3, n=8)
    write_landmarks(tmp_path / "c.landmarks.parquet", lm)
    fit_pose(cfg, tmp_path / "c.landmarks.parquet", tmp_path / "c.parquet")
    write_table(tmp_path / "splits.parquet", "splits", {"clip_id": ["c", "x"], "speaker_id": ["s", "t"], "split": ["train", "test"]})
    fit_basis(cfg, tmp_path / "splits.parquet", [str(tmp_path / "c.parquet")], tmp_path / "basis.npz")
    z = np.load(tmp_path / "basis.npz")
    assert int(z["n_expr"]) == 7 and z["components"].shape == (7, 1434) and int(z["n_frames"]) == 8
    project_coeffs(cfg, tmp_path / "c.parquet", tmp_path / "basis.npz", tmp_path / "c.coeffs.parquet")
    c = read_table(tmp_path / "c.coeffs.parquet", "coeffs")
    expr = np.stack(c.column("expr"))
    assert expr.shape == (8, 50) and (expr[:, 7:] == 0).all()  # zero-padded to n_expr


def test_basis_without_training_clips_is_an_error(tmp_path, fitted):
    d, _, cfg = fitted
    write_table(tmp_path / "splits.parquet", "splits", {"clip_id": ["a", "b"], "speaker_id": ["s1", "s2"], "split": ["test", "val"]})
    with pytest.raises(ValueError, match="no usable training clip"):
        fit_basis(cfg, tmp_path / "splits.parquet", [str(d / "a.parquet"), str(d / "b.parquet")], tmp_path / "basis.npz")


def test_failed_landmarks_propagate_as_skips(tmp_path, fitted):
    d, _, cfg = fitted
    write_failure(tmp_path / "x.landmarks.parquet", "landmarks", "too short: 10 frames (0.40 s) < 1 s")
    fit_pose(cfg, tmp_path / "x.landmarks.parquet", tmp_path / "x.parquet")
    p = read_table(tmp_path / "x.parquet", "pose")
    assert p.status == "skipped" and p.reason == "landmarks: too short: 10 frames (0.40 s) < 1 s"
    project_coeffs(cfg, tmp_path / "x.parquet", d / "basis.npz", tmp_path / "x.coeffs.parquet")
    c = read_table(tmp_path / "x.coeffs.parquet", "coeffs")
    assert c.status == "skipped" and c.reason == p.reason


def test_smoothing_removes_jitter_but_keeps_motion(fitted, tmp_path):
    d, clips, cfg = fitted
    lm, gt = synthetic_clip(seed=0, n=120, noise_px=1.5)
    write_landmarks(tmp_path / "n.landmarks.parquet", lm)
    fit_pose(cfg, tmp_path / "n.landmarks.parquet", tmp_path / "n.parquet")
    errs = {}
    for cutoff in (None, 4.0):
        c2 = dict(cfg, coeffs=dict(cfg["coeffs"], smoothing_cutoff_hz=cutoff))
        project_coeffs(c2, tmp_path / "n.parquet", d / "basis.npz", tmp_path / f"n{cutoff}.parquet")
        c = read_table(tmp_path / f"n{cutoff}.parquet", "coeffs")
        # The frame-to-frame part of the error (a constant template bias is no jitter).
        errs[cutoff] = np.std(c.column("yaw") - gt["yaw"])
        assert c.attrs["smoothing_cutoff_hz"] == cutoff
    assert errs[4.0] < 0.7 * errs[None], errs
    with pytest.raises(ValueError, match="smoothing_cutoff_hz"):
        project_coeffs(dict(cfg, coeffs=dict(cfg["coeffs"], smoothing_cutoff_hz=20.0)), tmp_path / "n.parquet", d / "basis.npz", tmp_path / "bad.parquet")


def test_deca_backend_explains_what_is_missing(tmp_path):
    from ksdiff.extract.deca import check_deca_dir

    with pytest.raises(ValueError, match="coeffs.deca_dir"):
        check_deca_dir(None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_deca_dir(tmp_path / "nowhere")
    (tmp_path / "data").mkdir()
    with pytest.raises(FileNotFoundError, match="deca_model.tar"):
        check_deca_dir(tmp_path)
    (tmp_path / "data" / "deca_model.tar").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="generic_model.pkl"):
        check_deca_dir(tmp_path)
    cfg = defaults()
    cfg["coeffs"]["backend"] = "deca"
    with pytest.raises(ValueError, match="deca"):
        project_coeffs(cfg, tmp_path / "x.parquet", tmp_path / "b.npz", tmp_path / "y.parquet")


STAND_IN_ENCODER = '''
import torch


class ResnetEncoder(torch.nn.Module):
    """Stand-in with DECA's interface: image (B, 3, 224, 224) -> parameter vector."""

    def __init__(self, outsize, last_op=None):
        super().__init__()
        self.layers = torch.nn.Linear(3, outsize)

    def forward(self, x):
        return self.layers(x.mean(dim=(2, 3)))
'''


def test_deca_backend_maps_encoder_outputs_to_coeffs(tmp_path, monkeypatch):
    """fit_deca's plumbing (crops, batching, parameter layout, table) with a stand-in encoder.

    DECA itself cannot run here (no weights); a stand-in decalib whose encoder
    returns a known parameter vector checks that each part of DECA's code
    (shape, tex, exp, pose, cam, light) lands in the right column.
    """
    import sys

    import skimage.data
    import torch

    from ksdiff.extract import deca
    from ksdiff.extract.landmarks import extract_landmarks
    from ksdiff.io.video import write_video

    monkeypatch.setattr(sys, "path", list(sys.path))  # load_encoder adds the DECA checkout
    sys.path.insert(0, str(Path(__file__).parent))
    from test_landmarks import write_manifest

    root = tmp_path / "DECA"
    (root / "decalib" / "models").mkdir(parents=True)
    (root / "decalib" / "__init__.py").write_text("")
    (root / "decalib" / "models" / "__init__.py").write_text("")
    (root / "decalib" / "models" / "encoders.py").write_text(STAND_IN_ENCODER)
    (root / "data").mkdir()
    (root / "data" / "generic_model.pkl").write_bytes(b"")
    n_param = 236
    known = torch.arange(n_param, dtype=torch.float32) / 100
    state = {"layers.weight": torch.zeros(n_param, 3), "layers.bias": known}
    torch.save({"E_flame": state}, root / "data" / "deca_model.tar")
    for m in [m for m in sys.modules if m.startswith("decalib")]:
        monkeypatch.delitem(sys.modules, m)

    write_video(tmp_path / "a.mp4", [skimage.data.astronaut()] * 30, FPS)
    manifest = write_manifest(tmp_path / "manifest.parquet", {"a": tmp_path / "a.mp4"})
    cfg = defaults()
    extract_landmarks(cfg, manifest, "a", tmp_path / "a.landmarks.parquet")
    cfg["coeffs"].update(backend="deca", deca_dir=str(root))
    deca.fit_deca(cfg, manifest, "a", tmp_path / "a.landmarks.parquet", tmp_path / "a.coeffs.parquet")
    c = read_table(tmp_path / "a.coeffs.parquet", "coeffs")
    assert c.ok and c.attrs["backend"] == "deca" and c.attrs["n_expr"] == 50
    k = known.numpy().astype(np.float64)
    exp, pose, cam = k[150:200], k[200:206], k[206:209]
    assert c.column("valid").all() and c.table.num_rows == 30
    np.testing.assert_allclose(np.stack(c.column("expr"))[0], exp, atol=1e-6)
    np.testing.assert_allclose(c.column("rotvec")[0], pose[:3], atol=1e-6)
    np.testing.assert_allclose(c.column("jaw")[0], pose[3:], atol=1e-6)
    np.testing.assert_allclose(c.column("scale")[0], cam[0], atol=1e-6)
    np.testing.assert_allclose(c.column("trans")[0], [cam[1], cam[2], 0], atol=1e-6)
    np.testing.assert_allclose(c.attrs["shape"], k[:100], atol=1e-6)
    # The crop is DECA's 224 px face box: the astronaut's face (~95 px) fills about half of it.
    crop = np.asarray(c.attrs["crops"][0])
    assert 1.5 < crop[0, 0] < 3.5
