"""FLAME in numpy (ksdiff.metrics.flame) and LVE on FLAME meshes in evaluation.

A small FLAME-format model (20 vertices, FLAME's 5 joints and kinematic tree,
300 identity + 100 expression components) is written the way FLAME 2020's
generic_model.pkl is: a latin1-readable protocol-2 pickle whose arrays are
partly chumpy ``Ch`` objects with chumpy's pickled state, and a scipy sparse
J_regressor. chumpy itself never exists while loading. The expected values
below come from the model's arrays with explicit formulas, not from the code
under test.
"""
import copy
import pickle
import sys
import types
import weakref

import numpy as np
import pytest
import scipy.sparse as sp

from ksdiff import config
from ksdiff.io import parquet
from ksdiff.metrics.flame import FlameModel, LipDecoder, configured_files, lip_decoder, load_model
from ksdiff.metrics.lve import flame_lip_indices, lve

V, K = 20, 3  # vertices; the expression component that moves only the upper lip
PIVOT, UPPER, LOWER = 0, [10, 11, 12], [13, 14, 15]  # jaw-joint vertex, upper lip (no jaw weight), lower lip (jaw only)
LIPS = UPPER + LOWER
ROOT_ONLY, HALF_JAW = 16, 17
D_LIP = 0.004  # metres of upper-lip motion per unit of expression K
DIRECTION = np.array([1.0, 2.0, -2.0]) / 3.0
T = 30


def _arrays(seed=0) -> dict:
    rng = np.random.default_rng(seed)
    v = rng.normal(0, 0.05, (V, 3))
    v[PIVOT] = [0.0, -0.02, -0.05]
    v[LOWER] = v[PIVOT] + np.array([[-0.02, -0.03, 0.09], [0.0, -0.035, 0.1], [0.02, -0.03, 0.09]])
    shapedirs = rng.normal(0, 0.01, (V, 3, 400))
    shapedirs[[PIVOT] + LOWER] = 0.0  # the jaw joint and lower lip keep their place: jaw motion has a known radius
    shapedirs[:, :, 300 + K] = 0.0
    shapedirs[UPPER, :, 300 + K] = D_LIP * DIRECTION
    posedirs = rng.normal(0, 0.002, (V, 3, 36))
    posedirs[[PIVOT] + LIPS] = 0.0
    weights = np.zeros((V, 5))
    weights[[1, 2, 3, ROOT_ONLY], 0] = 1.0
    weights[4, 1] = 1.0
    weights[5, 3] = weights[6, 4] = 1.0
    weights[UPPER, 0] = weights[UPPER, 1] = 0.5
    weights[[PIVOT] + LOWER, 2] = 1.0
    weights[HALF_JAW, [0, 2]] = [0.6, 0.4]
    w = rng.uniform(0, 1, (5, 5))
    weights[[7, 8, 9, 18, 19]] = w / w.sum(1, keepdims=True)
    jreg = np.zeros((5, V))
    jreg[0, [1, 2, 3]] = 1 / 3
    jreg[1, 4] = jreg[2, PIVOT] = jreg[3, 5] = jreg[4, 6] = 1.0
    return {
        "v_template": v, "shapedirs": shapedirs, "posedirs": posedirs, "J_regressor": sp.csc_matrix(jreg),
        "weights": weights, "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
        "f": np.array([[10, 11, 13], [11, 12, 14], [0, 1, 2]], dtype=np.uint32),
        "bs_style": "lbs", "bs_type": "lrotmin", "J": jreg @ v,  # extra keys FLAME's file also has
    }


def _write_chumpy_pickle(path, data: dict, wrap=("v_template", "shapedirs"), origin=("chumpy.ch", "Ch"), protocol=2):
    """Pickle ``data`` as FLAME's file is, with ``wrap`` keys as chumpy objects.

    The stand-in class is registered as chumpy's (module 'chumpy.ch', class
    'Ch') only while pickling, and pickles exactly as chumpy's Ch does: the
    class, created with __new__, plus Ch.__getstate__'s copy of __dict__
    without '_parents' and '_cache'; the value lives in 'x'.
    """
    module, name = origin

    class Ch:
        def __init__(self, x):
            self.__dict__.update(x=np.asarray(x, dtype=np.float64), _dirty_vars=set(), _itr=None,
                                 _parents=weakref.WeakKeyDictionary(), _depends_on_deps={}, _make_dense=False,
                                 _make_sparse=False, _cache={"r": None, "drs": weakref.WeakKeyDictionary()})

        def __getstate__(self):  # chumpy/ch.py Ch.__getstate__
            result = copy.copy(self.__dict__)
            del result["_parents"]
            del result["_cache"]
            return result

    Ch.__module__, Ch.__name__, Ch.__qualname__ = module, name, name
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType(module)
    setattr(mod, name, Ch)
    sys.modules["chumpy"], sys.modules[module] = pkg, mod
    try:
        out = {k: Ch(v) if k in wrap else v for k, v in data.items()}
        with open(path, "wb") as f:
            pickle.dump(out, f, protocol=protocol)  # 2: Python 2's cPickle.HIGHEST_PROTOCOL
    finally:
        del sys.modules["chumpy"], sys.modules[module]
    return path


def _write_masks(path):
    with open(path, "wb") as f:
        pickle.dump({"lips": np.array(LIPS[::-1]), "nose": np.array([1, 2])}, f, protocol=2)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("flame")
    return {"model": _write_chumpy_pickle(d / "generic_model.pkl", _arrays()), "masks": _write_masks(d / "FLAME_masks.pkl"),
            "dir": d}


@pytest.fixture(scope="module")
def model(files):
    return load_model(files["model"])


def _rot(axis, angle) -> np.ndarray:
    """Rodrigues' formula, written out here independently of the code under test."""
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _no_posedirs(m: FlameModel, j_regressor=None) -> FlameModel:
    jr = m.j_regressor if j_regressor is None else j_regressor
    return FlameModel(m.v_template, m.shapedirs, np.zeros_like(m.posedirs), jr, m.weights, m.parents, m.faces)


# --------------------------------------------------------------------------- loading


def test_the_file_needs_chumpy_but_the_loader_does_not(files, model):
    assert "chumpy" not in sys.modules
    with open(files["model"], "rb") as f, pytest.raises(ModuleNotFoundError, match="chumpy"):
        pickle.load(f, encoding="latin1")  # proof that the file really holds chumpy objects
    a = _arrays()
    np.testing.assert_array_equal(model.v_template, a["v_template"])
    np.testing.assert_array_equal(model.shapedirs, a["shapedirs"])
    np.testing.assert_array_equal(model.j_regressor, a["J_regressor"].toarray())
    assert model.parents.tolist() == [-1, 0, 1, 1, 1] and model.n_expr == 100
    assert "chumpy" not in sys.modules


def test_protocol_0_pickles_load_too(tmp_path):
    """Python 2's default protocol rebuilds objects through copy_reg._reconstructor instead of __newobj__."""
    m = load_model(_write_chumpy_pickle(tmp_path / "m.pkl", _arrays(), wrap=("shapedirs", "weights"), protocol=0))
    np.testing.assert_array_equal(m.shapedirs, _arrays()["shapedirs"])
    np.testing.assert_array_equal(m.weights, _arrays()["weights"])


def test_a_chumpy_expression_is_refused_by_name(tmp_path):
    p = _write_chumpy_pickle(tmp_path / "m.pkl", _arrays(), wrap=("posedirs",), origin=("chumpy.ch_ops", "add"))
    with pytest.raises(ValueError, match=r"'posedirs' is a pickled chumpy\.ch_ops\.add"):
        load_model(p)


def test_missing_files_name_the_file_and_where_to_get_it(tmp_path, files):
    with pytest.raises(FileNotFoundError, match=r"generic_model\.pkl.*flame\.is\.tue\.mpg\.de"):
        load_model(tmp_path / "generic_model.pkl")
    cfg = config.defaults(eval={"flame_model": str(tmp_path / "nope.pkl")})
    with pytest.raises(FileNotFoundError, match=r"eval\.flame_model .*generic_model\.pkl.*flame\.is\.tue\.mpg\.de"):
        configured_files(cfg)
    cfg = config.defaults(eval={"flame_model": str(files["model"]), "flame_masks": str(tmp_path / "m.pkl")})
    with pytest.raises(FileNotFoundError, match=r"eval\.flame_masks .*FLAME_masks\.pkl.*flame\.is\.tue\.mpg\.de"):
        configured_files(cfg)
    # nothing configured: no error, a reason naming both keys and both files
    decoder, why = lip_decoder(config.defaults())
    assert decoder is None
    assert "eval.flame_model" in why and "generic_model.pkl" in why and "eval.flame_masks" in why and "FLAME_masks.pkl" in why
    # coeffs.deca_dir without data/generic_model.pkl: still a reason, naming the path it looked at
    _, _, why = configured_files(config.defaults(coeffs={"deca_dir": str(tmp_path)}))
    assert str(tmp_path / "data" / "generic_model.pkl") in why


# --------------------------------------------------------------------------- forward pass


def test_zero_parameters_give_template_plus_shape_blendshape(model):
    a = _arrays()
    shape = np.random.default_rng(1).normal(size=100)
    v = model.canonical_vertices(shape, np.zeros((2, 50)), np.zeros((2, 3)))
    expected = a["v_template"] + a["shapedirs"][:, :, :100] @ shape
    np.testing.assert_allclose(v, np.broadcast_to(expected, v.shape), rtol=0, atol=1e-14)
    np.testing.assert_allclose(model.canonical_vertices(np.zeros(100), np.zeros((1, 50)), np.zeros((1, 3)))[0],
                               a["v_template"], rtol=0, atol=1e-15)


def test_an_expression_value_moves_vertices_by_its_blendshape(model):
    a = _arrays()
    rng = np.random.default_rng(2)
    shape, base = rng.normal(size=100), rng.normal(size=50)
    e = np.array([-1.5, 0.0, 0.3, 2.0])
    expr = np.tile(base, (len(e), 1))
    k = 7
    expr[:, k] = e
    ref = expr.copy()
    ref[:, k] = 0.0
    moved = model.canonical_vertices(shape, expr, np.zeros((len(e), 3))) - model.canonical_vertices(shape, ref, np.zeros((len(e), 3)))
    np.testing.assert_allclose(moved, e[:, None, None] * a["shapedirs"][None, :, :, 300 + k], rtol=0, atol=1e-14)


def test_jaw_rotates_jaw_weighted_vertices_about_the_jaw_joint(model):
    a = _arrays()
    jr = a["J_regressor"].toarray()
    jr[2, [PIVOT, 7]] = 0.5  # a jaw joint that identity and expression move (as in FLAME)
    m = _no_posedirs(model, jr)
    rng = np.random.default_rng(3)
    shape, expr = rng.normal(size=100), rng.normal(size=(1, 50))
    axis, angle = np.array([1.0, 0.2, -0.1]), 0.3
    v = m.canonical_vertices(shape, expr, (axis / np.linalg.norm(axis) * angle)[None])[0]
    shaped = a["v_template"] + a["shapedirs"] @ np.r_[shape, np.zeros(200), expr[0], np.zeros(50)]
    j2 = jr[2] @ shaped
    r = _rot(axis, angle)
    for i in LOWER:  # weight 1 on the jaw: a rigid rotation about the jaw joint
        np.testing.assert_allclose(v[i], r @ (shaped[i] - j2) + j2, atol=1e-14)
        assert np.linalg.norm(v[i] - j2) == pytest.approx(np.linalg.norm(shaped[i] - j2), rel=1e-12)
    np.testing.assert_allclose(v[HALF_JAW], shaped[HALF_JAW] + 0.4 * (r - np.eye(3)) @ (shaped[HALF_JAW] - j2), atol=1e-14)
    np.testing.assert_allclose(v[UPPER + [ROOT_ONLY]], shaped[UPPER + [ROOT_ONLY]], atol=1e-14)  # no jaw weight: unmoved


def test_pose_correctives_follow_decas_feature_layout(model):
    """pose feature = (R_j - I) of joints 1..4 flattened row-major: the jaw's values are features 9..17."""
    a = _arrays()
    jaw = np.array([[0.25, -0.1, 0.05]])
    v = model.canonical_vertices(np.zeros(100), np.zeros((1, 50)), jaw)[0]
    feature = np.zeros(36)
    feature[9:18] = (_rot(jaw[0], np.linalg.norm(jaw[0])) - np.eye(3)).ravel()
    np.testing.assert_allclose(v[ROOT_ONLY], a["v_template"][ROOT_ONLY] + a["posedirs"][ROOT_ONLY] @ feature, atol=1e-14)


def test_global_rotation_acts_through_the_kinematic_chain(model):
    m = _no_posedirs(model)
    a = _arrays()
    g, jaw = np.array([0.1, 0.4, -0.2]), np.array([0.3, 0.0, 0.0])
    pose = np.zeros((1, 5, 3))
    pose[0, 0], pose[0, 2] = g, jaw
    v = m.forward(np.zeros(100), np.zeros((1, 50)), pose)[0]
    t, jr = a["v_template"], a["J_regressor"].toarray()
    j0, j2 = jr[0] @ t, jr[2] @ t
    rg, rj = _rot(g, np.linalg.norm(g)), _rot(jaw, 0.3)
    np.testing.assert_allclose(v[LOWER], (rg @ ((rj @ (t[LOWER] - j2).T).T + j2 - j0).T).T + j0, atol=1e-14)
    np.testing.assert_allclose(v[ROOT_ONLY], rg @ (t[ROOT_ONLY] - j0) + j0, atol=1e-14)


def test_lip_subset_and_frame_chunks_decode_like_the_full_mesh(model):
    rng = np.random.default_rng(4)
    shape, expr, jaw = rng.normal(size=100), rng.normal(size=(7, 50)), rng.normal(0, 0.2, (7, 3))
    full = model.canonical_vertices(shape, expr, jaw)
    pose = np.zeros((7, 5, 3))
    pose[:, 2] = jaw
    np.testing.assert_allclose(model.forward(shape, expr, pose, idx=LIPS, chunk=2), full[:, LIPS], rtol=0, atol=1e-15)


def test_lve_of_a_known_lip_offset_is_that_offset_in_mm(model, files):
    lips = flame_lip_indices(files["masks"])
    assert lips == tuple(LIPS)
    rng = np.random.default_rng(5)
    shape, expr, jaw = rng.normal(size=100), rng.normal(size=(T, 50)), np.c_[rng.uniform(0, 0.3, T), np.zeros((T, 2))]
    pred_expr = expr.copy()
    pred_expr[:, K] += 0.5  # moves the upper lip by 0.5 * 4 mm = 2 mm, nothing else
    gt, pred = model.canonical_vertices(shape, expr, jaw), model.canonical_vertices(shape, pred_expr, jaw)
    assert lve(pred, gt, lip_idx=lips, scale=1e-3) == pytest.approx(0.5 * D_LIP * 1e3, rel=1e-12)
    decoder = LipDecoder(model, lips, str(files["masks"]), "")
    np.testing.assert_allclose(decoder(shape, expr, jaw), gt[:, LIPS], rtol=0, atol=1e-15)


# --------------------------------------------------------------------------- evaluation


def _deca_cols(expr, jaw, rotvec, sample=0, valid=None):
    from ksdiff.geometry import matrix_to_euler, rotvec_to_matrix

    n = len(expr)
    ypr = matrix_to_euler(rotvec_to_matrix(rotvec))  # DECA writes both (FLAME axes aside: irrelevant here)
    return {
        "sample": np.full(n, sample, np.int16), "frame": np.arange(n, dtype=np.int32), "time_s": np.arange(n) / 25,
        "valid": np.ones(n, bool) if valid is None else valid, "rotvec": rotvec, "yaw": ypr[:, 0], "pitch": ypr[:, 1],
        "roll": ypr[:, 2], "trans": np.zeros((n, 3)), "scale": np.ones(n), "jaw": jaw,
        "expr": list(np.asarray(expr, np.float32)), "residual": np.full(n, np.nan),
    }


@pytest.fixture(scope="module")
def deca_world(tmp_path_factory):
    """A results folder of DECA ground truth (2 test clips) and a prediction folder:
    sample 0 = GT expression + 0.5 on the upper-lip component (2 mm) with another head
    pose; sample 1 = GT with the jaw opened 0.1 rad further. Clip b's GT has an invalid
    frame and its prediction is 5 frames short."""
    from ksdiff.io.audio import write_wav
    from tests.render_fixtures import concat_cols, head_motion, write_basis

    root = tmp_path_factory.mktemp("deca_eval")
    res, pred = root / "results" / "fab", root / "pred"
    res.mkdir(parents=True)
    write_basis(res / "basis.npz", np.eye(2, 478 * 3))
    clips = ["spkA_0", "spkB_0"]
    parquet.write_table(res / "splits.parquet", "splits", {"clip_id": clips, "speaker_id": ["spkA", "spkB"], "split": ["test"] * 2})
    rng = np.random.default_rng(6)
    t = np.arange(T) / 25
    for i, clip in enumerate(clips):
        expr = rng.normal(0, 0.5, (T, 50))
        jaw = np.c_[0.15 + 0.1 * np.sin(2 * np.pi * 2 * t + i), np.zeros((T, 2))]  # about x, as the jaw opens
        rot = np.radians(head_motion(T, seed=i)) * 0.5
        valid = np.ones(T, bool)
        if i == 1:
            valid[3] = False
            expr[3] = np.nan
        parquet.write_table(res / "coeffs" / f"{clip}.parquet", "coeffs", _deca_cols(expr, jaw, rot, valid=valid),
                            attrs={"backend": "deca", "fps": 25, "clip_id": clip, "n_expr": 50,
                                   "shape": rng.normal(0, 0.5, 100).tolist()})
        sr = 16000
        ts = np.arange(int(T / 25 * sr)) / sr
        write_wav(res / "audio" / f"{clip}.wav", (0.3 * np.sin(2 * np.pi * 300 * ts) * ((ts % 0.3) < 0.12)).astype(np.float32), sr)
        e0 = expr.copy()
        e0[:, K] += 0.5
        j1 = jaw.copy()
        j1[:, 0] += 0.1
        n = T - 5 * i
        cols = concat_cols(_deca_cols(e0[:n], jaw[:n], -rot[:n]),
                           _deca_cols(expr[:n], j1[:n], rot[:n], sample=1))
        parquet.write_table(pred / f"{clip}.parquet", "coeffs", cols, attrs={"backend": "deca", "fps": 25, "n_expr": 50})
    return {"res": res, "pred": pred}


def test_flame_lve_in_mm_for_deca_tables(deca_world, files, tmp_path):
    from ksdiff.evaluate import evaluate_method
    from ksdiff.metrics.registry import LVE, LVE_FLAME

    deca_dir = tmp_path / "deca"
    (deca_dir / "data").mkdir(parents=True)
    (deca_dir / "data" / "generic_model.pkl").write_bytes(files["model"].read_bytes())  # the default model path
    cfg = config.defaults(coeffs={"deca_dir": str(deca_dir)}, eval={"flame_masks": str(files["masks"])})
    out = tmp_path / "m.parquet"
    df = evaluate_method(cfg, str(deca_world["res"]), str(deca_world["pred"]), "m", str(out))
    got = df[df.metric == LVE_FLAME].set_index(["clip_id", "sample"])["value"]
    assert LVE_FLAME == "lve_l2_mm" and LVE not in set(df.metric)
    a = _arrays()
    radius = np.linalg.norm((a["v_template"][LOWER] - a["v_template"][PIVOT])[:, 1:], axis=1).max()  # from the x axis
    for clip in ("spkA_0", "spkB_0"):
        assert got[(clip, 0)] == pytest.approx(0.5 * D_LIP * 1e3, rel=1e-5)  # 2 mm; the head pose does not count
        assert got[(clip, 1)] == pytest.approx(2 * np.sin(0.1 / 2) * radius * 1e3, rel=1e-5)
    attrs = parquet.read_table(out, "metrics").attrs
    assert attrs["lve_flame"]["scored"] and attrs["lve_flame"]["model"].endswith("data/generic_model.pkl")
    assert attrs["protocol"]["lve_flame_scale"] == 1e-3 and not [u for u in attrs["undefined"] if u["metric"] == LVE_FLAME]

    from ksdiff.report.build import build_report

    md = tmp_path / "board.md"
    build_report(cfg, [str(out)], str(md), str(tmp_path / "board.html"), str(tmp_path / "plots"))
    text = md.read_text()
    assert "LVE FLAME (l2) [mm]" in text and "FLAME model (LVE)" in text and attrs["lve_flame"]["model_sha256"] in text


def test_deca_tables_without_flame_files_record_why(deca_world, tmp_path):
    from ksdiff.evaluate import evaluate_method
    from ksdiff.metrics.registry import LVE_FLAME

    out = tmp_path / "m.parquet"
    df = evaluate_method(config.defaults(), str(deca_world["res"]), str(deca_world["pred"]), "m", str(out))
    assert not df.metric.str.startswith("lve").any() and {"temporal_diversity", "beat_align"} <= set(df.metric)
    why = [u["reason"] for u in parquet.read_table(out, "metrics").attrs["undefined"] if u["metric"] == LVE_FLAME]
    assert len(why) == 4 and all("eval.flame_model" in w and "eval.flame_masks" in w for w in why)
    with pytest.raises(FileNotFoundError, match="eval.flame_masks"):  # a configured file that is missing stops the run at once
        evaluate_method(config.defaults(eval={"flame_masks": str(tmp_path / "FLAME_masks.pkl")}), str(deca_world["res"]),
                        str(deca_world["pred"]), "m", str(tmp_path / "x.parquet"))


def test_flame_fdd_over_the_forehead_and_eye_region(deca_world, files, tmp_path, model):
    """FDD on FLAME meshes: the upper face is FLAME_masks.pkl's forehead + eye_region, the neutral template the
    GT shape code with zero expression and jaw, in mm²; each sample's value is fdd() of the decoded vertices.
    A mask file without those regions records why, per sample."""
    from ksdiff.evaluate import evaluate_method
    from ksdiff.metrics.fdd import fdd
    from ksdiff.metrics.registry import FDD_FLAME

    upper = np.array([7, 8, 9, 18, 19])  # vertices the fabricated expression blendshapes move
    masks = tmp_path / "FLAME_masks.pkl"
    with open(masks, "wb") as f:
        pickle.dump({"lips": np.array(LIPS), "forehead": upper[:2], "eye_region": upper[2:]}, f, protocol=2)
    cfg = config.defaults(eval={"flame_model": str(files["model"]), "flame_masks": str(masks)})
    df = evaluate_method(cfg, str(deca_world["res"]), str(deca_world["pred"]), "m", str(tmp_path / "m.parquet"))
    got = df[df.metric == FDD_FLAME].set_index(["clip_id", "sample"])["value"]
    assert len(got) == 4

    def verts(table, s):
        rows = table.to_pandas()
        rows = rows[rows["sample"] == s].sort_values("frame")
        return np.stack(rows["expr"].map(np.asarray)), np.stack(rows["jaw"].map(np.asarray)), rows["valid"].to_numpy()

    gt_t = parquet.read_table(deca_world["res"] / "coeffs" / "spkA_0.parquet", "coeffs")
    pr_t = parquet.read_table(deca_world["pred"] / "spkA_0.parquet", "coeffs")
    shape = np.asarray(gt_t.attrs["shape"])
    ge, gj, _ = verts(gt_t, 0)
    neutral = model.canonical_vertices(shape, np.zeros((1, 1)), np.zeros((1, 3)), idx=upper)[0]
    gt = model.canonical_vertices(shape, ge, gj, idx=upper)
    for s in (0, 1):
        pe, pj, _ = verts(pr_t, s)
        want = fdd(model.canonical_vertices(shape, pe, pj, idx=upper), gt, neutral, np.arange(len(upper)), 1e-3)
        assert got[("spkA_0", s)] == pytest.approx(want, rel=1e-9)
    # sample 0 only adds the upper-lip component, which moves no upper-face vertex: exactly GT's dynamics; sample 1
    # opens the jaw further, and these vertices are partly skinned to the jaw joint
    assert got[("spkA_0", 0)] == 0.0 and got[("spkA_0", 1)] != 0.0

    # the shipped fixture's mask file has no forehead or eye region: every sample says so
    cfg = config.defaults(eval={"flame_model": str(files["model"]), "flame_masks": str(files["masks"])})
    evaluate_method(cfg, str(deca_world["res"]), str(deca_world["pred"]), "m", str(tmp_path / "n.parquet"))
    why = [u["reason"] for u in parquet.read_table(tmp_path / "n.parquet", "metrics").attrs["undefined"]
           if u["metric"] == FDD_FLAME]
    assert len(why) == 4 and all("forehead + eye_region" in w for w in why)
