"""evaluate_method on fabricated ground truth and predictions whose metric values are
known by construction: identical motion gives LVE 0, a known lip offset gives the
expected LVE, skipped clips are recorded with their reasons, and the table is long."""
import numpy as np
import pytest

from ksdiff import config
from ksdiff.evaluate import evaluate_method
from ksdiff.metrics.registry import ACROSS_SAMPLES, CSIM, FDD, FID, FVD, GROUND_TRUTH, LPIPS, LVE, LVE_SQ, MOD
from ksdiff.geometry import euler_to_matrix
from ksdiff.io import parquet
from ksdiff.io.audio import write_wav
from ksdiff.metrics.protocol import PROTOCOL
from tests.render_fixtures import canonical, coeffs_cols, concat_cols, face_photo, head_motion, write_basis

T = 40  # frames per clip (1.6 s): long enough for SyncNet's 5-frame windows and some beats
LIPS = np.asarray(PROTOCOL.lve_lip_indices)
SIZE = 160


def _basis_components():
    """comp 0 moves every lip landmark right by 1/sqrt(40) per unit; comp 1 moves the chin."""
    c = np.zeros((2, 478 * 3))
    c[0, LIPS * 3] = 1.0 / np.sqrt(len(LIPS))
    c[1, 152 * 3 + 1] = 1.0
    return c


def _manifest(path, clips, video):
    n = len(clips)
    parquet.write_table(path, "manifest", {
        "clip_id": clips, "speaker_id": [c.split("_")[0] for c in clips], "dataset": ["fab"] * n,
        "layout": ["folder"] * n, "path": [str(video)] * n, "duration_s": np.full(n, T / 25), "fps": np.full(n, 25.0),
        "n_frames": np.full(n, T), "width": np.full(n, SIZE), "height": np.full(n, SIZE), "has_audio": np.ones(n, bool),
        "audio_sample_rate": np.full(n, 16000), "audio_channels": np.ones(n), "variable_fps": np.zeros(n, bool),
        "size_bytes": np.zeros(n), "sha256": [""] * n, "probe_error": [""] * n,
    })


def _landmarks(path, lm):
    parquet.write_table(path, "landmarks", {
        "frame": np.arange(T), "time_s": np.arange(T) / 25, "source_frame": np.arange(T), "detected": np.ones(T, bool),
        "score": np.ones(T), "n_faces": np.ones(T), "box": np.tile([0, 0, SIZE, SIZE], (T, 1)),
        "landmarks": np.tile(lm.reshape(1, -1), (T, 1)), "failure": [""] * T,
    }, attrs={"fps": 25})


def _wav(path, seed):
    """Tone bursts every ~0.3 s: clear onsets for BeatAlign."""
    sr = 16000
    t = np.arange(int(T / 25 * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 300 * t) * ((t % (0.3 + 0.02 * seed)) < 0.12)
    write_wav(path, x.astype(np.float32), sr)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """results/, predictions/{same,offset}/ and ext/ for a tiny fabricated test split."""
    from ksdiff.io.video import write_video

    root = tmp_path_factory.mktemp("eval")
    res = root / "results" / "fab"
    ref, lm = face_photo(SIZE)
    template, s, r, c = canonical(lm)
    res.mkdir(parents=True)
    write_basis(res / "basis.npz", _basis_components())
    video = root / "ref.mp4"
    write_video(video, [ref] * T, 25)
    test = ["spkA_0", "spkA_1", "spkB_0", "spkB_1", "spkC_0"]
    clips = test + ["spkD_0"]
    _manifest(res / "manifest.parquet", clips, video)
    parquet.write_table(res / "splits.parquet", "splits", {
        "clip_id": clips, "speaker_id": [x.split("_")[0] for x in clips], "split": ["test"] * 5 + ["train"]})
    n = len(clips)
    parquet.write_table(res / "qc.parquet", "qc", {
        "clip_id": clips, "speaker_id": [x.split("_")[0] for x in clips], "dataset": ["fab"] * n,
        "usable": [x != "spkC_0" for x in clips], "reason": ["landmarks: face too small" if x == "spkC_0" else "" for x in clips],
        "n_frames": np.full(n, T), "duration_s": np.full(n, 1.6), "audio_duration_s": np.full(n, 1.6),
        "av_mismatch_s": np.zeros(n), "detection_rate": np.ones(n), "landmark_jitter": np.zeros(n),
        "fit_residual": np.zeros(n), "n_words": np.ones(n)})
    truth = {}
    for i, clip in enumerate(clips):
        head = head_motion(T, seed=i)
        rot = euler_to_matrix(head[:, 0], head[:, 1], head[:, 2]) @ r
        expr = np.stack([np.zeros(T), 0.05 * np.sin(np.arange(T) / (2 + i))], 1)
        truth[clip] = (expr, rot, head)
        attrs = {"template": template.tolist(), "fps": 25, "clip_id": clip}
        parquet.write_table(res / "coeffs" / f"{clip}.parquet", "coeffs",
                            coeffs_cols(expr, rot, np.tile(c, (T, 1)), np.full(T, s)), attrs=attrs)
        _wav(res / "audio" / f"{clip}.wav", i)
        _landmarks(res / "landmarks" / f"{clip}.parquet", lm)

    pred = root / "predictions" / "fab"
    for clip in ["spkA_0", "spkA_1"]:
        expr, rot, head = truth[clip]
        tc = lambda e, rr, k: coeffs_cols(e, rr, np.tile(c, (T, 1)), np.full(T, s), sample=k)  # noqa: E731
        parquet.write_table(pred / "same" / f"{clip}.parquet", "coeffs", concat_cols(tc(expr, rot, 0), tc(expr, rot, 1)))
        e1, e2 = expr.copy(), expr.copy()
        e1[:, 0] += 0.1
        e2[:, 0] += 0.2
        rot2 = euler_to_matrix(head[:, 0] + 2.0, head[:, 1], head[:, 2]) @ r  # sample 1 turned 2 degrees further
        parquet.write_table(pred / "offset" / f"{clip}.parquet", "coeffs", concat_cols(tc(e1, rot, 0), tc(e2, rot2, 1)))
    for m in ("same", "offset"):  # spkB_0: the model failed; spkB_1: no prediction at all
        parquet.write_failure(pred / m / "spkB_0.parquet", "coeffs", "sampling diverged (NaN)")

    # An external system's videos, extracted into a results-like folder: one clip
    # matches a GT test clip, one is unknown to the dataset.
    ext = root / "results" / "fab__ext_other"
    _manifest(ext / "manifest.parquet", ["spkA_0", "zz_extra"], video)
    for clip, src in [("spkA_0", "spkA_0"), ("zz_extra", "spkA_1")]:
        expr, rot, _ = truth[src]
        parquet.write_table(ext / "coeffs" / f"{clip}.parquet", "coeffs",
                            coeffs_cols(expr, rot, np.tile(c, (T, 1)), np.full(T, s)),
                            attrs={"template": template.tolist(), "fps": 25})
        _landmarks(ext / "landmarks" / f"{clip}.parquet", lm)
        _wav(ext / "audio" / f"{clip}.wav", 0)
    return {"root": root, "res": res, "pred": pred, "ext": ext, "truth": truth}


def _cfg():
    return config.defaults()


def test_identical_predictions_give_zero_lve_and_zero_sample_diversity(world, tmp_path):
    df = evaluate_method(_cfg(), str(world["res"]), str(world["pred"] / "same"), "same", str(tmp_path / "m.parquet"))
    lve = df[df.metric == LVE]
    assert len(lve) == 4 and np.allclose(lve.value, 0.0, atol=1e-6)  # 2 clips x 2 samples
    sd = df[df.metric == "sample_diversity"]
    assert set(sd["sample"]) == {ACROSS_SAMPLES} and np.allclose(sd.value, 0.0, atol=1e-4)


def test_known_lip_offset_gives_the_expected_lve(world, tmp_path):
    df = evaluate_method(_cfg(), str(world["res"]), str(world["pred"] / "offset"), "offset", str(tmp_path / "m.parquet"))
    lve = df[df.metric == LVE].set_index(["clip_id", "sample"])["value"]
    # expr 0 moves each of the 40 lip points by a / sqrt(40) in x; the template's
    # inter-ocular distance is 1, so LVE (max over lips, l2) = a / sqrt(40).
    for clip in ("spkA_0", "spkA_1"):
        assert lve[(clip, 0)] == pytest.approx(0.1 / np.sqrt(40), rel=1e-4)
        assert lve[(clip, 1)] == pytest.approx(0.2 / np.sqrt(40), rel=1e-4)
    # the squared variant beside it: every frame has the same error here, so it is that error squared
    sq = df[df.metric == LVE_SQ].set_index(["clip_id", "sample"])["value"]
    for clip in ("spkA_0", "spkA_1"):
        assert sq[(clip, 0)] == pytest.approx(0.1**2 / 40, rel=1e-3)
        assert sq[(clip, 1)] == pytest.approx(0.2**2 / 40, rel=1e-3)
    sd = df[df.metric == "sample_diversity"].set_index("clip_id")["value"]
    assert sd["spkA_0"] == pytest.approx(2.0, abs=0.02)  # samples differ by 2 degrees of yaw


def test_metrics_table_is_long_with_one_row_per_clip_sample_metric(world, tmp_path):
    out = tmp_path / "offset.parquet"
    evaluate_method(_cfg(), str(world["res"]), str(world["pred"] / "offset"), "offset", str(out))
    t = parquet.read_table(out, "metrics")
    df = t.to_pandas()
    assert list(df.columns) == ["method", "clip_id", "sample", "metric", "value"]
    assert not df.duplicated(["clip_id", "sample", "metric"]).any()
    assert set(df.method) == {"offset"} and set(df.clip_id) == {"spkA_0", "spkA_1"}
    per_sample = {LVE, LVE_SQ, "temporal_diversity", "beat_align", "beat_align_corrected", FDD, MOD}
    for clip in ("spkA_0", "spkA_1"):
        d = df[df.clip_id == clip]
        got = set(zip(d["sample"], d.metric))
        defined = {(u["sample"], u["metric"]) for u in t.attrs["undefined"] if u["clip_id"] == clip}
        # the metrics from weights the user supplies, none configured: one row per clip saying why
        unweighted = {(ACROSS_SAMPLES, m) for m in (FID, FVD, LPIPS, CSIM)}
        assert got | defined == ({(s, m) for s in (0, 1) for m in per_sample} | {(ACROSS_SAMPLES, "sample_diversity")}
                                 | unweighted)
    assert t.attrs["protocol"]["lve_variant"] == PROTOCOL.lve_variant
    assert t.attrs["lse"] == {"scored": False, "note": "not scored: no SyncNet weights configured"}


def test_skipped_clips_are_recorded_with_reasons(world, tmp_path):
    out = tmp_path / "same.parquet"
    evaluate_method(_cfg(), str(world["res"]), str(world["pred"] / "same"), "same", str(out))
    attrs = parquet.read_table(out, "metrics").attrs
    why = {s["clip_id"]: s["reason"] for s in attrs["skipped"]}
    assert set(why) == {"spkB_0", "spkB_1", "spkC_0"}
    assert "sampling diverged" in why["spkB_0"]
    assert "missing" in why["spkB_1"]
    assert why["spkC_0"].startswith("qc: landmarks: face too small")
    assert attrs["clips"] == ["spkA_0", "spkA_1"]


def test_shards_of_the_test_clips_merge_into_the_single_job_table(world, tmp_path):
    from ksdiff.infer_shards import test_shards
    from ksdiff.evaluate import merge_metrics

    cfg = config.defaults(shard_size=2)  # usable test clips spkA_0 spkA_1 | spkB_0 spkB_1
    test_shards(cfg, str(world["res"]), str(tmp_path / "ts.parquet"))
    assert parquet.read_table(tmp_path / "ts.parquet", "test_shards").attrs["n_shards"] == 2
    parts = []
    for i in range(2):
        parts.append(str(tmp_path / f"part{i}.parquet"))
        evaluate_method(cfg, str(world["res"]), str(world["pred"] / "offset"), "offset", parts[-1],
                        shards=str(tmp_path / "ts.parquet"), shard=i)
    assert parquet.read_table(parts[1], "metrics").status == parquet.FAILED  # spkB: nothing to score
    merge_metrics(cfg, str(world["res"]), parts, "offset", str(tmp_path / "merged.parquet"))
    evaluate_method(cfg, str(world["res"]), str(world["pred"] / "offset"), "offset", str(tmp_path / "one.parquet"))
    merged, one = parquet.read_table(tmp_path / "merged.parquet", "metrics"), parquet.read_table(tmp_path / "one.parquet", "metrics")
    assert merged.table.equals(one.table) and merged.attrs == one.attrs and merged.status == one.status


def test_ground_truth_is_scored_without_lve(world, tmp_path):
    df = evaluate_method(_cfg(), str(world["res"]), None, GROUND_TRUTH, str(tmp_path / "gt.parquet"))
    assert set(df.metric) <= {"temporal_diversity", "beat_align", FDD, MOD} and "temporal_diversity" in set(df.metric)
    # FDD and MOD are differences to ground truth, scored for it too (the sanity table pairs it with the floors)
    assert (df[df.metric.isin([FDD, MOD])].value == 0.0).all() and len(df[df.metric == FDD]) == 4
    assert set(df.clip_id) == {"spkA_0", "spkA_1", "spkB_0", "spkB_1"}  # spkC_0 fails QC, spkD_0 is train
    td = df[df.metric == "temporal_diversity"].set_index("clip_id")["value"]
    gt = parquet.read_table(world["res"] / "coeffs" / "spkB_1.parquet", "coeffs")
    head = np.stack([gt.column(k) for k in ("yaw", "pitch", "roll")], 1).astype(float)
    assert td["spkB_1"] == pytest.approx(head.std(0).mean(), rel=1e-4)  # degrees, population std


def test_report_from_evaluated_methods_has_pose_and_frame_figures(world, tmp_path):
    from ksdiff.report.build import build_report

    cfg = _cfg()
    paths = []
    for method, pred in ((GROUND_TRUTH, None), ("same", world["pred"] / "same"), ("offset", world["pred"] / "offset")):
        paths.append(str(tmp_path / f"{method}.parquet"))
        evaluate_method(cfg, str(world["res"]), pred and str(pred), method, paths[-1])
    md, html = tmp_path / "board.md", tmp_path / "board.html"
    build_report(cfg, paths, str(md), str(html), str(tmp_path / "plots"), results=str(world["res"]),
                 predictions=[str(world["pred"] / "same"), f"offset={world['pred'] / 'offset'}"])
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["frames_spkA_0.png", "frames_spkA_1.png", "metric_bars.png", "pose_spkA_0.png", "pose_spkA_1.png"]
    text = html.read_text()
    assert text.count("data:image/png;base64,") == 5 and "figures for clip" not in text
    assert "](plots/pose_spkA_0.png)" in md.read_text()
    # under temporal diversity: whose spread ground truth's is (2 test speakers, 1 training speaker here)
    for t in (md.read_text(), text):
        assert "on the 2 test speakers" in t and "on the 1 training speakers" in t


def _random_syncnet(path):
    import torch

    from ksdiff.metrics.syncnet import build_syncnet

    torch.manual_seed(0)
    torch.save(build_syncnet().state_dict(), path)
    return path


@pytest.mark.slow
def test_lse_scored_for_methods_and_ground_truth_with_weights_hash(world, tmp_path):
    """LSE plumbing (render -> crops -> SyncNet) with random weights: the values mean
    nothing, but every clip/sample gets them and the report can name the weights."""
    from ksdiff.metrics.syncnet import file_sha256

    weights = _random_syncnet(tmp_path / "syncnet_random.model")
    for method, pred in ((GROUND_TRUTH, None), ("offset", str(world["pred"] / "offset"))):
        out = tmp_path / f"{method}.parquet"
        df = evaluate_method(_cfg(), str(world["res"]), pred, method, str(out), syncnet=str(weights))
        attrs = parquet.read_table(out, "metrics").attrs
        assert attrs["lse"]["scored"] and attrs["lse"]["sha256"] == file_sha256(weights)
        lse = df[df.metric == "lse_d"]
        n_samples = 1 if method == GROUND_TRUTH else 2
        assert len(lse) == n_samples * len(attrs["clips"]) and np.isfinite(lse.value).all()
        off = df[df.metric == "lse_offset"].value
        assert (off.abs() <= PROTOCOL.syncnet_vshift).all()
        # ground truth is also scored on its own video (one value per clip), methods never are
        video = df[df.metric.isin(["lse_d_video", "lse_c_video"])]
        assert len(video) == (2 * len(attrs["clips"]) if method == GROUND_TRUTH else 0)
        assert np.isfinite(video.value).all()


@pytest.mark.slow
def test_external_videos_scored_on_their_own_frames(world, tmp_path):
    weights = _random_syncnet(tmp_path / "syncnet_random.model")
    out = tmp_path / "ext.parquet"
    df = evaluate_method(_cfg(), str(world["res"]), str(world["ext"] / "coeffs"), "other", str(out),
                         syncnet=str(weights), external=True)
    attrs = parquet.read_table(out, "metrics").attrs
    assert attrs["external"] and "original video frames" in attrs["lse"]["frames"]
    assert set(df.clip_id) == {"spkA_0", "zz_extra"}
    assert set(df[df.metric == LVE].clip_id) == {"spkA_0"}  # LVE only where GT exists
    assert np.allclose(df[df.metric == LVE].value, 0.0, atol=1e-6)  # same motion as GT
    assert set(df[df.metric == "lse_c"].clip_id) == {"spkA_0", "zz_extra"}


def test_cli_evaluate_and_render(world, tmp_path):
    from ksdiff.cli import main
    from ksdiff.io.video import probe

    out = tmp_path / "offset.parquet"
    assert main(["evaluate", "--results", str(world["res"]), "--predictions", str(world["pred"] / "offset"),
                 "--method", "offset", "--out", str(out)]) == 0
    assert parquet.read_table(out, "metrics").attrs["clips"] == ["spkA_0", "spkA_1"]
    mp4 = tmp_path / "spkA_0.mp4"
    assert main(["render", "--coeffs", str(world["pred"] / "offset" / "spkA_0.parquet"), "--results", str(world["res"]),
                 "--clip", "spkA_0", "--out", str(mp4), "--sample", "1", "--mode", "mesh"]) == 0
    info = probe(mp4)
    assert info.n_frames == T and info.has_audio and (info.width, info.height) == (SIZE, SIZE)


def test_flame_predictions_get_head_metrics_and_reasons_for_the_lip_metrics(world, tmp_path):
    """DECA/FLAME coefficients do not decode through the landmark basis: no made-up LVE or LSE, a reason
    for each, and the head-pose metrics still computed."""
    deca = tmp_path / "deca"
    for clip in ("spkA_0", "spkA_1"):
        t = parquet.read_table(world["pred"] / "offset" / f"{clip}.parquet", "coeffs")
        parquet.write_table(deca / f"{clip}.parquet", "coeffs", {k: t.table.column(k).to_pylist() if k == "expr"
                            else t.column(k) for k in t.table.column_names}, attrs={**t.attrs, "backend": "deca"})
    weights = _random_syncnet(tmp_path / "syncnet_random.model")
    out = tmp_path / "deca.parquet"
    df = evaluate_method(_cfg(), str(world["res"]), str(deca), "deca", str(out), syncnet=str(weights))
    assert {LVE, "lse_c", "lse_d"}.isdisjoint(df.metric) and {"temporal_diversity", "beat_align"} <= set(df.metric)
    undefined = parquet.read_table(out, "metrics").attrs["undefined"]
    lve_why = [u["reason"] for u in undefined if u["metric"] == LVE]
    assert len(lve_why) == 4 and all("'deca' backend" in w for w in lve_why)
    assert any(u["metric"] == "lse_c" and "did not decode" in u["reason"] for u in undefined)


def test_external_videos_are_checked_against_their_clip_before_scoring(world, tmp_path):
    """An external system's videos of three test clips: one carries the clip's own audio, one another recording
    (its frames cannot be trusted to follow the clip's speech), one is the clip padded by 0.2 s at its start. The
    second is not scored and the report says why, with what was measured; the third is scored with its lag
    removed, so its motion (the ground truth's) scores an LVE of 0."""
    from ksdiff.io.audio import read_wav
    from ksdiff.metrics import external_check
    from ksdiff.report.build import build_report

    res, truth = world["res"], world["truth"]
    _, lm = face_photo(SIZE)
    template, s, _, c = canonical(lm)
    ext = tmp_path / "results" / "fab-ext-other"
    pad = 5  # frames: 0.2 s at 25 fps
    for clip in ("spkA_0", "spkA_1", "spkB_1"):
        expr, rot, _ = truth[clip]
        wav, sr = read_wav(res / "audio" / f"{clip}.wav")
        if clip == "spkA_1":  # another recording of the same length
            wav = (0.1 * np.random.default_rng(1).standard_normal(len(wav))).astype(np.float32)
        if clip == "spkB_1":  # the video starts 0.2 s before the clip: first frame held, silence
            expr, rot = np.concatenate([expr[:1].repeat(pad, 0), expr]), np.concatenate([rot[:1].repeat(pad, 0), rot])
            wav = np.concatenate([np.zeros(pad * sr // 25, np.float32), wav])
        n = len(expr)
        parquet.write_table(ext / "coeffs" / f"{clip}.parquet", "coeffs",
                            coeffs_cols(expr, rot, np.tile(c, (n, 1)), np.full(n, s)),
                            attrs={"template": template.tolist(), "fps": 25})
        write_wav(ext / "audio" / f"{clip}.wav", wav, sr)
    out = tmp_path / "ext-other.parquet"
    df = evaluate_method(_cfg(), str(res), str(ext / "coeffs"), "other", str(out), external=True)
    attrs = parquet.read_table(out, "metrics").attrs
    checks = {r["clip_id"]: r for r in attrs["external_check"]}
    assert checks["spkA_0"]["status"] == external_check.OK and checks["spkA_0"]["peak_corr"] == pytest.approx(1.0)
    assert checks["spkA_1"]["status"] == external_check.MISMATCH
    assert checks["spkA_1"]["peak_corr"] < external_check.MIN_PEAK_CORR
    assert checks["spkB_1"]["status"] == external_check.LAG_CORRECTED and checks["spkB_1"]["lag_frames"] == pad
    assert checks["spkB_1"]["lag_s"] == pytest.approx(0.2, abs=1e-3)
    assert attrs["clips"] == ["spkA_0", "spkB_1"]
    why = {x["clip_id"]: x["reason"] for x in attrs["skipped"]}
    assert why["spkA_1"].startswith("external check: audio does not match the clip's: peak normalised correlation")
    lve = df[df.metric == LVE].set_index("clip_id")["value"]
    assert set(lve.index) == {"spkA_0", "spkB_1"} and np.allclose(lve, 0.0, atol=1e-6)  # aligned: the same motion

    gt = tmp_path / "ground_truth.parquet"
    evaluate_method(_cfg(), str(res), None, GROUND_TRUTH, str(gt))
    md, html = tmp_path / "board.md", tmp_path / "board.html"
    build_report(_cfg(), [str(gt), str(out)], str(md), str(html), str(tmp_path / "plots"))
    for text in (md.read_text(), html.read_text()):
        assert "External videos against their ground truth" in text
        assert "mismatch" in text and "lag corrected" in text and "scored shifted by +5 frames" in text
        assert f"{checks['spkA_1']['peak_corr']:.2f} &lt; 0.5" in text or f"{checks['spkA_1']['peak_corr']:.2f} < 0.5" in text


def test_efid_is_set_level_in_the_attrs(world, tmp_path):
    """E-FID over the scored clips: identical samples score ~0; every frame's first coefficient moved by 0.1 or
    0.2 moves the method's mean by 0.15 on it (E-FID >= 0.15^2), and the moments are kept for merging shards."""
    from ksdiff.metrics.efid import Moments

    same = evaluate_method(_cfg(), str(world["res"]), str(world["pred"] / "same"), "same", str(tmp_path / "s.parquet"))
    assert len(same)
    a = parquet.read_table(tmp_path / "s.parquet", "metrics").attrs["efid"]
    # 0 up to scipy.linalg.sqrtm's rounding on this singular covariance (one coefficient never moves)
    assert a["value"] == pytest.approx(0.0, abs=1e-6) and a["reason"] == "" and "Deep3DFaceRecon" in a["space"]
    evaluate_method(_cfg(), str(world["res"]), str(world["pred"] / "offset"), "offset", str(tmp_path / "o.parquet"))
    o = parquet.read_table(tmp_path / "o.parquet", "metrics").attrs["efid"]
    assert o["value"] > 0.15**2
    gt, m = Moments.from_attrs(o["ground_truth"]), Moments.from_attrs(o["method"])
    assert gt.n == 2 * T and m.n == 4 * T  # 2 clips; the method's 2 samples each
    assert m.gaussian()[0][0] == pytest.approx(0.15)


def test_report_shows_the_new_motion_metrics_with_their_definitions(world, tmp_path):
    from ksdiff.report.build import build_report

    paths = []
    for method, pred in ((GROUND_TRUTH, None), ("offset", world["pred"] / "offset")):
        paths.append(str(tmp_path / f"{method}.parquet"))
        evaluate_method(_cfg(), str(world["res"]), pred and str(pred), method, paths[-1])
    md, html = tmp_path / "board.md", tmp_path / "board.html"
    build_report(_cfg(), paths, str(md), str(html), str(tmp_path / "plots"))
    for text in (md.read_text(), html.read_text()):
        assert "E-FID ↓" in text and "(set-level)" in text and "Deep3DFaceRecon" in text
        assert "FDD [inter-ocular units²]" in text and "cal_metric.py" in text
        assert "MOD [inter-ocular units] ↓" in text and "ksdiff-mod-1" in text and PROTOCOL.version in text
