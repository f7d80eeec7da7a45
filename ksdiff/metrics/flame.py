"""FLAME meshes from DECA coefficients, in numpy: the vertices LVE needs on the DECA backend.

Why. With ``coeffs.backend: deca`` a clip's motion is FLAME parameters (50
expression values, 3 jaw axis-angle values; identity = the clip's 100-dim
shape code), which do not decode through the landmark expression basis. LVE
is defined on mesh vertices (FaceFormer / DiffSpeaker use FLAME's 'lips'
region), so scoring such tables needs the FLAME model itself. DECA's own
FLAME class (decalib/models/FLAME.py) wants torch and its landmark-embedding
files for outputs LVE does not use; this module is a numpy transcription of
its forward pass (decalib/models/lbs.py, the smplx LBS):

  betas      [shape (S <= 300), expression (E <= 100)] against
             shapedirs[..., :S] and shapedirs[..., 300:300+E] (FLAME 2020: 300 + 100)
  v_shaped   v_template + shapedirs . betas
  J          J_regressor v_shaped (expression moves the joints too, as in DECA)
  full pose  global, neck, jaw, left eye, right eye (axis-angle, DECA's order)
  posedirs   pose feature = (R_j - I) of joints 1..4, flattened row-major (36
             values); v_posed = v_shaped + posedirs . feature
  LBS        rigid transforms down the kinematic chain (kintree_table[0]),
             relative to the rest joints, blended with ``weights`` (V, 5).

It runs in float64 (DECA: float32; the difference is ~1e-7 m, far below any LVE).

Canonical frame. ``canonical_vertices`` keeps the global rotation, neck and
eye poses at zero, so only expression and jaw move the mesh: LVE measures lip
shape, not head motion (which the head-pose metrics score). FLAME is in metres.

Loading without chumpy. generic_model.pkl is a Python-2 pickle written with
chumpy, and some of its arrays are chumpy ``Ch`` objects. chumpy 0.70 does
not import with our numpy (its __init__ imports numpy aliases such as
``numpy.bool`` that numpy 1.24 removed), and it is not needed: a Ch pickles
through object's default reduce (class ``chumpy.ch.Ch``, created with
``__new__``) plus the state from ``Ch.__getstate__`` (mattloper/chumpy,
chumpy/ch.py), a copy of its ``__dict__`` without the weak-reference caches
'_parents' and '_cache'. A plain Ch keeps its value in 'x' (``compute_r``
returns ``self.x``). The unpickler below maps every chumpy class to a
stand-in that keeps that state; a plain Ch becomes ``np.asarray(state['x'])``
(what smplx's tools/clean_ch.py gets from ``np.array(ch)``). Any other chumpy
class is an expression without a stored value and is refused by name.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ksdiff.geometry import rotvec_to_matrix
from ksdiff.io.files import sha256_file
from ksdiff.metrics.lve import flame_lip_indices
from ksdiff.metrics.protocol import PROTOCOL

FLAME_BACKENDS = ("deca",)  # coefficient backends whose tables hold FLAME parameters (expr, jaw, attrs['shape'])
FLAME_SITE = "https://flame.is.tue.mpg.de"
MODEL_SOURCE = (f"the FLAME 2020 model: register at {FLAME_SITE} and download FLAME2020.zip, which holds "
                "generic_model.pkl (DECA's fetch_data.sh puts it at <deca_dir>/data/generic_model.pkl)")
MASKS_SOURCE = f"FLAME's vertex masks: register at {FLAME_SITE} and download 'FLAME Vertex Masks' (FLAME_masks.pkl)"
N_IDENTITY = 300  # shapedirs[..., :300] are identity components, the rest expression (FLAME 2020: 100)
JOINTS = ("global", "neck", "jaw", "left_eye", "right_eye")  # DECA's full_pose order
JAW = JOINTS.index("jaw")
MODEL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


class _Chumpy:
    """What a pickled chumpy object leaves: its class (``origin``) and its __getstate__ dict."""

    origin = "chumpy"
    state = None

    def __setstate__(self, state):
        self.state = state


class _Unpickler(pickle.Unpickler):
    """Python-2 (latin1) unpickler that never imports chumpy."""

    def find_class(self, module, name):
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_Chumpy,), {"origin": f"{module}.{name}"})
        return super().find_class(module, name)


def _plain(value, key: str, path: Path):
    """A chumpy stand-in -> the numpy array it stored; anything else unchanged."""
    if not isinstance(value, _Chumpy):
        return value
    st = value.state if isinstance(value.state, dict) else {}
    if value.origin != "chumpy.ch.Ch" or "x" not in st:
        raise ValueError(
            f"{path}: {key!r} is a pickled {value.origin} (a chumpy expression with no stored value), so it cannot be "
            "read without chumpy; convert the file once where chumpy imports (np.array(v) for each chumpy entry, "
            "as smplx's tools/clean_ch.py does) and point eval.flame_model at the result"
        )
    return np.asarray(_plain(st["x"], key, path), dtype=np.float64)


def _dense(value) -> np.ndarray:
    return np.asarray(value.toarray() if hasattr(value, "toarray") else value, dtype=np.float64)


@dataclass(eq=False)
class FlameModel:
    """The arrays of generic_model.pkl, checked, with the joint regressor applied to the blendshapes."""

    v_template: np.ndarray  # (V, 3) metres
    shapedirs: np.ndarray  # (V, 3, 300 + n_expr)
    posedirs: np.ndarray  # (V, 3, 9 (J - 1))
    j_regressor: np.ndarray  # (J, V) dense
    weights: np.ndarray  # (V, J)
    parents: np.ndarray  # (J,) parent joint, -1 for the root
    faces: np.ndarray  # (F, 3)
    path: str = ""
    sha256: str = ""
    j_template: np.ndarray = field(init=False)  # (J, 3) joints of v_template
    j_dirs: np.ndarray = field(init=False)  # (J, 3, K) joint motion per blendshape unit

    def __post_init__(self):
        V, J = len(self.v_template), len(self.parents)
        want = {"v_template": (V, 3), "shapedirs": (V, 3), "posedirs": (V, 3, 9 * (J - 1)),
                "J_regressor": (J, V), "weights": (V, J)}
        got = {"v_template": self.v_template.shape, "shapedirs": self.shapedirs.shape[:2],
               "posedirs": self.posedirs.shape, "J_regressor": self.j_regressor.shape, "weights": self.weights.shape}
        bad = [f"{k} {got[k]} (expected {want[k]})" for k in want if tuple(got[k]) != want[k]]
        if self.shapedirs.ndim != 3 or self.shapedirs.shape[2] <= N_IDENTITY:
            bad.append(f"shapedirs {self.shapedirs.shape} (expected {N_IDENTITY} identity + expression components)")
        if self.parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(self.parents[1:], 1)):
            bad.append(f"kintree_table parents {self.parents.tolist()} (expected a root then earlier parents)")
        if bad:
            raise ValueError(f"{self.path or 'FLAME model'} is not a FLAME model: " + "; ".join(bad))
        self.j_template = self.j_regressor @ self.v_template
        self.j_dirs = np.einsum("jv,vck->jck", self.j_regressor, self.shapedirs)

    @property
    def n_expr(self) -> int:
        return self.shapedirs.shape[2] - N_IDENTITY

    def forward(self, shape, expr, pose, idx=None, chunk: int = 256) -> np.ndarray:
        """(T, n, 3) vertices in metres of DECA's FLAME forward pass.

        shape (S,) identity code, expr (T, E), pose (T, 5, 3) axis-angle in
        ``JOINTS`` order; idx: the vertices to return (all by default: lip
        vertices are all LVE needs). Frames are processed ``chunk`` at a time.
        """
        shape = np.asarray(shape, dtype=np.float64).ravel()
        expr = np.asarray(expr, dtype=np.float64)
        J = len(self.parents)
        pose = np.asarray(pose, dtype=np.float64).reshape(len(expr), J, 3)
        if expr.ndim != 2 or len(shape) > N_IDENTITY or expr.shape[1] > self.n_expr:
            raise ValueError(f"shape must be (S <= {N_IDENTITY},) and expr (T, E <= {self.n_expr}); "
                             f"got {shape.shape} and {expr.shape}")
        S, E = len(shape), expr.shape[1]
        sel = np.arange(len(self.v_template)) if idx is None else np.asarray(idx, dtype=np.int64)
        e_dirs = self.shapedirs[sel, :, N_IDENTITY : N_IDENTITY + E]
        je_dirs = self.j_dirs[:, :, N_IDENTITY : N_IDENTITY + E]
        v_id = self.v_template[sel] + self.shapedirs[sel, :, :S] @ shape  # identity, shared by all frames
        j_id = self.j_template + self.j_dirs[:, :, :S] @ shape
        p_dirs, w = self.posedirs[sel], self.weights[sel]
        out = np.empty((len(expr), len(sel), 3))
        for a in range(0, len(expr), chunk):
            e, rot = expr[a : a + chunk], _rodrigues(pose[a : a + chunk])
            v = v_id + np.einsum("vck,tk->tvc", e_dirs, e)
            joints = j_id + np.einsum("jck,tk->tjc", je_dirs, e)
            v += np.einsum("vcp,tp->tvc", p_dirs, (rot[:, 1:] - np.eye(3)).reshape(len(e), -1))
            R, t = _rigid_transforms(rot, joints, self.parents)
            acc = np.zeros_like(v)
            for j in np.flatnonzero(w.any(0)):
                acc += w[None, :, j, None] * (v @ R[:, j].transpose(0, 2, 1) + t[:, j, None])
            out[a : a + len(e)] = acc
        return out

    def canonical_vertices(self, shape, expr, jaw, idx=None) -> np.ndarray:
        """(T, n, 3) vertices with only expression and jaw: global rotation, neck and eyes at zero."""
        jaw = np.asarray(jaw, dtype=np.float64).reshape(-1, 3)
        pose = np.zeros((len(jaw), len(self.parents), 3))
        pose[:, JAW] = jaw
        return self.forward(shape, expr, pose, idx)


def _rodrigues(rotvec: np.ndarray) -> np.ndarray:
    return rotvec_to_matrix(rotvec)


def _rigid_transforms(rot: np.ndarray, joints: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R (T, J, 3, 3), t (T, J, 3)): each joint's world transform relative to its rest position
    (DECA's batch_rigid_transform), so a vertex skinned to joint j moves to R_j v + t_j."""
    R, G = np.empty_like(rot), np.empty_like(joints)
    R[:, 0], G[:, 0] = rot[:, 0], joints[:, 0]
    for i in range(1, len(parents)):
        p = parents[i]
        R[:, i] = R[:, p] @ rot[:, i]
        G[:, i] = G[:, p] + np.einsum("tab,tb->ta", R[:, p], joints[:, i] - joints[:, p])
    return R, G - np.einsum("tjab,tjb->tja", R, joints)


def load_model(path: str | Path) -> FlameModel:
    """FLAME's generic_model.pkl (a Python-2 pickle with chumpy arrays), read without chumpy."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"FLAME model not found: {p}. Expected {MODEL_SOURCE}.")
    with open(p, "rb") as f:
        raw = _Unpickler(f, encoding="latin1").load()
    missing = [k for k in MODEL_KEYS if not isinstance(raw, dict) or k not in raw]
    if missing:
        raise ValueError(f"{p} is not a FLAME model file: missing {missing} (expected {MODEL_SOURCE})")
    d = {k: _plain(raw[k], k, p) for k in MODEL_KEYS}
    parents = np.asarray(d["kintree_table"])[0].astype(np.int64)
    parents[0] = -1  # stored as uint32 4294967295
    return FlameModel(_dense(d["v_template"]), _dense(d["shapedirs"]), _dense(d["posedirs"]), _dense(d["J_regressor"]),
                      _dense(d["weights"]), parents, np.asarray(d["f"], dtype=np.int64), str(p), sha256_file(p))


@dataclass(eq=False)
class LipDecoder:
    """FLAME restricted to its 'lips' vertices: what LVE on FLAME tables evaluates per frame."""

    model: FlameModel
    lips: tuple[int, ...]
    masks_path: str
    masks_sha256: str
    # FDD's upper face (PROTOCOL.fdd_flame_regions of the same FLAME_masks.pkl); () when the file lacks them
    upper_face: tuple[int, ...] = ()

    def __post_init__(self):
        if not self.lips or max(self.lips) >= len(self.model.v_template):
            raise ValueError(f"{self.masks_path}: 'lips' indices do not fit the {len(self.model.v_template)}-vertex "
                             f"model {self.model.path} (a mask file of another FLAME topology?)")

    @property
    def n_vertices(self) -> int:
        return len(self.lips)

    def __call__(self, shape, expr, jaw) -> np.ndarray:
        """(T, n_lips, 3) canonical lip vertices in metres."""
        return self.model.canonical_vertices(shape, expr, jaw, idx=self.lips)

    def describe(self) -> dict:
        return {"scored": True, "model": self.model.path, "model_sha256": self.model.sha256,
                "masks": self.masks_path, "masks_sha256": self.masks_sha256, "n_lips": len(self.lips)}

    def upper(self) -> "RegionDecoder":
        """The same model restricted to FDD's upper-face vertices."""
        return RegionDecoder(self.model, self.upper_face)


@dataclass(eq=False)
class RegionDecoder:
    """FLAME restricted to one vertex region (FDD's upper face)."""

    model: FlameModel
    idx: tuple[int, ...]

    @property
    def n_vertices(self) -> int:
        return len(self.idx)

    def __call__(self, shape, expr, jaw) -> np.ndarray:
        """(T, n, 3) canonical vertices of the region in metres (expression and jaw only)."""
        return self.model.canonical_vertices(shape, expr, jaw, idx=self.idx)


def region_indices(masks_path: str | Path, regions: tuple[str, ...]) -> tuple[int, ...]:
    """Sorted vertex indices of the union of ``regions`` of FLAME_masks.pkl; () when one is absent."""
    with open(masks_path, "rb") as f:
        masks = pickle.load(f, encoding="latin1")
    if any(r not in masks for r in regions):
        return ()
    return tuple(int(i) for i in np.unique(np.concatenate([np.asarray(masks[r]).ravel() for r in regions])))


def configured_files(cfg: dict) -> tuple[Path | None, Path | None, str]:
    """(generic_model.pkl, FLAME_masks.pkl, why LVE on FLAME meshes is off: '' when both are there).

    A path set explicitly (eval.flame_model, eval.flame_masks) must exist: a
    wrong one raises here, at the start of an evaluation, instead of silently
    dropping a metric. eval.flame_model null falls back to DECA's copy,
    {coeffs.deca_dir}/data/generic_model.pkl, when that file exists.
    """
    ecfg, deca_dir = cfg.get("eval", {}), cfg.get("coeffs", {}).get("deca_dir")
    paths, why = {}, []
    for key, name, source in (("flame_model", "generic_model.pkl", MODEL_SOURCE),
                              ("flame_masks", "FLAME_masks.pkl", MASKS_SOURCE)):
        p = ecfg.get(key)
        if p:
            p = Path(p).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"eval.{key} = {p} does not exist; expected {name}, {source}")
            paths[key] = p
            continue
        default = Path(deca_dir).expanduser() / "data" / name if deca_dir and key == "flame_model" else None
        if default is not None and default.is_file():
            paths[key] = default
        else:
            fallback = f" (and {default} does not exist)" if default is not None else ""
            why.append(f"eval.{key} is not set{fallback}: set it to {name}, {source}")
            paths[key] = None
    return paths["flame_model"], paths["flame_masks"], "; ".join(why)


def lip_decoder(cfg: dict) -> tuple[LipDecoder | None, str]:
    """The configured FLAME lip decoder, or None and why not (raises on a configured file that is missing or bad)."""
    model_path, masks_path, why = configured_files(cfg)
    if why:
        return None, why
    return LipDecoder(load_model(model_path), flame_lip_indices(masks_path), str(masks_path), sha256_file(masks_path),
                      region_indices(masks_path, PROTOCOL.fdd_flame_regions)), ""
