"""Score one method on a dataset's test split -> the long-format 'metrics' table.

Every method, ground truth included, goes through the same code:
  motion   each sample of the method's coeffs table is decoded with the
           ground-truth clip's identity template and the dataset's
           expression basis (ksdiff.extract.coeffs.decode_landmarks), so
           methods differ only in their motion, never in identity;
  LVE      pred vs GT aligned (head-pose-removed) landmarks on the frames
           valid in both, lip set / variant / units from the pinned protocol
           (not reported for ground truth: it is 0 by definition). FLAME
           tables (coeffs.backend deca) get it on FLAME's 'lips' vertices in
           millimetres instead (``lve_l2_mm``, ksdiff.metrics.flame): both
           sequences decoded with the GT clip's shape code, global rotation,
           neck and eyes at zero, when eval.flame_model and eval.flame_masks
           are available (else the rows are undefined, naming the keys);
  diversity  sample diversity over a clip's samples (row sample = -1) and
           temporal diversity of each sample's head pose;
  BeatAlign  per sample, head pose vs the onsets of the clip's 16 kHz wav;
  LSE      with SyncNet weights only: the motion is rendered by the image
           warp (ksdiff.render.warp) over the clip's reference frame, face
           crops come from the rendered (posed) landmarks, and SyncNet scores
           them against the wav. Ground truth is re-rendered the same way, so
           renderer artefacts cancel in the comparison. External methods
           (``external=True``: someone else's generated videos, extracted by
           the workflow into coeffs tables) are scored on their ORIGINAL
           frames with their extracted landmarks, since re-rendering would
           throw away their own image synthesis. Each external video of a
           ground-truth clip is first checked against it by its audio
           (ksdiff.metrics.external_check): a small constant lag is removed
           before scoring, a video that does not match is not scored, and
           every check is recorded in the table's attrs ('external_check').

A clip that cannot be scored (missing or failed table, no audio, ...) is
skipped with its reason in the table's attrs ('skipped'); a metric that is
undefined for a clip/sample (no beats, clip too short for SyncNet) is left out
with its reason in 'undefined'. Nothing is ever filled in.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ksdiff import numerics
from ksdiff.io import parquet
from ksdiff.metrics import external_check
from ksdiff.metrics.flame import FLAME_BACKENDS
from ksdiff.metrics.lve import lve_name
from ksdiff.metrics.protocol import PROTOCOL

log = logging.getLogger(__name__)

GROUND_TRUTH = "ground_truth"
ACROSS_SAMPLES = -1  # 'sample' of a metric computed over all samples of a clip (sample diversity)
LVE = lve_name(PROTOCOL.lve_variant)
LVE_FLAME = lve_name(PROTOCOL.lve_variant, units="mm")  # FLAME meshes: other units, so another metric
# The squared variant beside it (DiffSpeaker's and CodeTalker's code): PROTOCOL.lve_variants scores both.
LVE_SQ = lve_name("squared_l2")
LVE_FLAME_SQ = lve_name("squared_l2", units="mm")

# name -> (label, unit, which way is better): the report's column heads and arrows.
METRIC_INFO: dict[str, tuple[str, str, str]] = {
    LVE: (f"LVE ({PROTOCOL.lve_variant})", "inter-ocular units", "lower"),
    LVE_FLAME: (f"LVE FLAME ({PROTOCOL.lve_variant})", "mm" if PROTOCOL.lve_variant == "l2" else "mm²", "lower"),
    LVE_SQ: ("LVE (squared_l2)", "inter-ocular units²", "lower"),
    LVE_FLAME_SQ: ("LVE FLAME (squared_l2)", "mm²", "lower"),
    "sample_diversity": ("Sample diversity", "deg", "higher"),
    "temporal_diversity": ("Temporal diversity", "deg", "closer to ground truth"),
    "beat_align": ("BeatAlign", "", "higher"),
    "beat_align_corrected": ("BeatAlign (chance-corrected)", "", "higher"),
    "lse_d": ("LSE-D", "", "lower"),
    "lse_c": ("LSE-C", "", "higher"),
    "lse_offset": ("AV offset", "frames", "closer to 0"),
    # ground truth only: SyncNet on the dataset's own video frames instead of the re-rendered motion
    "lse_d_video": ("LSE-D (source video)", "", "lower"),
    "lse_c_video": ("LSE-C (source video)", "", "higher"),
}
NO_SYNCNET = "not scored: no SyncNet weights configured"


@dataclass
class ClipRef:
    """What a clip is scored against."""

    clip_id: str
    wav: np.ndarray  # 16 kHz mono
    template: np.ndarray | None  # landmark identity used to decode every sample (None: FLAME tables have none)
    gt: parquet.Table | None  # ground-truth coeffs (None: an external clip with no GT)


# --------------------------------------------------------------------------- inputs


def test_clips(results: Path) -> tuple[list[str], list[dict]]:
    """Test-split clip ids, minus clips QC marked unusable (listed with the reason)."""
    sp = parquet.read_table(results / "splits.parquet", "splits")
    if not sp.ok:
        raise RuntimeError(f"{results / 'splits.parquet'} is {sp.status}: {sp.reason}")
    df = sp.to_pandas()
    clips = sorted(df.loc[df["split"] == "test", "clip_id"])
    skipped = []
    qc_path = results / "qc.parquet"
    if qc_path.exists():
        qc = parquet.read_table(qc_path, "qc").to_pandas().set_index("clip_id")
        keep = []
        for c in clips:
            if c in qc.index and not bool(qc.loc[c, "usable"]):
                skipped.append({"clip_id": c, "reason": f"qc: {qc.loc[c, 'reason']}"})
            else:
                keep.append(c)
        clips = keep
    return clips, skipped


def head_pose(rows) -> np.ndarray:
    """(T, 3) yaw, pitch, roll in degrees; invalid frames linearly interpolated."""
    h = np.stack([rows.column(k).to_numpy(zero_copy_only=False).astype(np.float64) for k in ("yaw", "pitch", "roll")], 1)
    valid = rows.column("valid").to_numpy(zero_copy_only=False).astype(bool) & np.isfinite(h).all(1)
    if not valid.any():
        raise ValueError("no valid frame")
    if not valid.all():
        t = np.arange(len(h))
        h = np.stack([np.interp(t, t[valid], h[valid, k]) for k in range(3)], 1)
    return h


def _read_ok(path: Path, name: str) -> tuple[parquet.Table | None, str]:
    if not path.exists():
        return None, f"missing {path}"
    t = parquet.read_table(path, name)
    if not t.ok:
        return None, f"{path.parent.name}: {t.status}: {t.reason}"
    return t, ""


def _wav(path: Path) -> np.ndarray:
    from ksdiff.io.audio import read_wav

    x, sr = read_wav(path)
    if sr != PROTOCOL.sample_rate or np.ndim(x) != 1:
        raise ValueError(f"{path}: expected {PROTOCOL.sample_rate} Hz mono, got {sr} Hz shape {np.shape(x)}")
    return x


# --------------------------------------------------------------------------- video metrics


def _to_buffer(frames, n: int, tmp: Path) -> np.ndarray:
    """Stack up to ``n`` frames in a disk-backed array: a minute of 512 px video is ~1 GB."""
    buf = None
    k = 0
    for k, f in enumerate(frames):
        if k >= n:
            break
        if buf is None:
            buf = np.memmap(tmp / "frames.u8", dtype=np.uint8, mode="w+", shape=(n, *f.shape))
        buf[k] = f
    if buf is None:
        raise ValueError("no frames")
    return buf[: k + 1] if k + 1 < n else buf


def lse_rendered(model, warper, posed: np.ndarray | None, wav: np.ndarray, fps: float = PROTOCOL.fps) -> dict:
    """LSE of a motion rendered over the clip's reference frame (methods and GT alike)."""
    from ksdiff.metrics.mouth_crops import face_crops
    from ksdiff.metrics.syncnet import lse

    if posed is None:
        raise ValueError("nothing to render: the coefficients did not decode to landmarks")

    with tempfile.TemporaryDirectory(prefix="ksdiff-lse-") as tmp:
        frames = _to_buffer((warper.render(p) for p in posed), len(posed), Path(tmp))
        crops = face_crops(frames, posed)
    return lse(model, crops, wav, color="rgb", fps=fps)


def lse_original(model, video: str, landmarks: np.ndarray, fps: float, wav: np.ndarray, start: int = 0) -> dict:
    """LSE of an external method's own video frames with its extracted landmarks, from frame ``start`` on
    (a video whose lag against the ground truth was corrected: ``wav`` starts at that frame)."""
    from ksdiff.io.video import iter_frames
    from ksdiff.metrics.mouth_crops import face_crops
    from ksdiff.metrics.syncnet import lse

    landmarks = landmarks[start:]
    with tempfile.TemporaryDirectory(prefix="ksdiff-lse-") as tmp:
        frames = _to_buffer((rgb for k, _, _, rgb in iter_frames(video, fps) if k >= start), len(landmarks), Path(tmp))
        crops = face_crops(frames, landmarks[: len(frames)])
    return lse(model, crops, wav, color="rgb", fps=fps)


def _landmarks_px(path: Path) -> np.ndarray:
    """(T, 478, 3) landmarks of a landmarks table, NaN where no face was found."""
    t = parquet.read_table(path, "landmarks")
    if not t.ok:
        raise ValueError(f"landmarks {t.status}: {t.reason}")
    lm = t.column("landmarks").reshape(len(t.table), -1, 3).astype(np.float64)
    lm[~t.column("detected").astype(bool)] = np.nan
    return lm


# --------------------------------------------------------------------------- scoring


class _Rows:
    """Collects metric rows and the reasons for the ones that are undefined."""

    def __init__(self, method: str):
        self.method = method
        self.rows: list[tuple] = []
        self.undefined: list[dict] = []

    def add(self, clip: str, sample: int, metric: str, value: float, reason: str = ""):
        if reason or value is None or not np.isfinite(value):
            self.undefined.append({"clip_id": clip, "sample": int(sample), "metric": metric, "reason": reason or "not finite"})
        else:
            self.rows.append((self.method, clip, int(sample), metric, float(value)))

    def table(self) -> dict:
        cols = list(zip(*self.rows)) if self.rows else [[]] * 5
        names = ("method", "clip_id", "sample", "metric", "value")
        out = {k: list(v) for k, v in zip(names, cols)}
        out["sample"] = np.asarray(out["sample"], dtype=np.int16)
        out["value"] = np.asarray(out["value"], dtype=np.float64)
        return out


def is_flame(table: parquet.Table | None) -> bool:
    """Whether a coeffs table holds FLAME parameters (expr, jaw, attrs['shape'])."""
    return table is not None and table.attrs.get("backend") in FLAME_BACKENDS


def flame_lips(decoder, table: parquet.Table, sample: int, shape) -> np.ndarray:
    """(T, n_lips, 3) canonical FLAME lip vertices (metres) of one sample; invalid frames are NaN."""
    from ksdiff.render.video import select_sample

    rows = select_sample(table, sample)
    expr = np.stack(parquet.column_to_numpy(rows.column("expr"))).astype(np.float64)
    jaw = parquet.column_to_numpy(rows.column("jaw")).astype(np.float64).reshape(len(expr), 3)
    valid = rows.column("valid").to_numpy(zero_copy_only=False).astype(bool)
    valid &= np.isfinite(expr).all(1) & np.isfinite(jaw).all(1)
    out = np.full((len(expr), len(decoder.lips), 3), np.nan)
    if valid.any():
        out[valid] = decoder(shape, expr[valid], jaw[valid])
    return out


@dataclass
class _LvePlan:
    """How one clip's LVE is measured: the metric, why it is undefined ('' if not), the ground-truth
    vertices, the lip vertices and scale, and the FLAME shape code for decoding each sample."""

    metric: str
    why: str = ""
    gt: np.ndarray | None = None
    lip_idx: tuple | np.ndarray = ()
    scale: float = 1.0
    shape: np.ndarray | None = None

    def pred(self, decoder, motion: parquet.Table, sample: int, aligned: np.ndarray | None) -> np.ndarray:
        """The sample's vertices to compare with ``gt``: FLAME lips, or the aligned landmarks."""
        return flame_lips(decoder, motion, sample, self.shape) if self.metric == LVE_FLAME else aligned


def _lve_plan(ref: ClipRef, motion: parquet.Table, basis, flame) -> _LvePlan:
    """FLAME prediction and FLAME ground truth: FLAME lip vertices in mm (when the files are
    configured); both decodable: aligned landmarks in inter-ocular units; anything else has no
    common mesh."""
    from ksdiff.metrics.lve import inter_ocular_distance
    from ksdiff.render.video import decodable, decode_sample

    decoder, flame_why = flame
    if is_flame(motion) and is_flame(ref.gt):
        shape = np.asarray(ref.gt.attrs.get("shape") or [], dtype=np.float64)
        if decoder is None:
            return _LvePlan(LVE_FLAME, f"LVE on FLAME meshes: {flame_why}")
        if shape.size == 0 or not np.isfinite(shape).all():
            return _LvePlan(LVE_FLAME, "LVE on FLAME meshes: the ground-truth table has no FLAME shape code (attrs['shape'])")
        # the decoded vertices are the lip vertices only, in metres
        gt = flame_lips(decoder, ref.gt, 0, shape)
        return _LvePlan(LVE_FLAME, gt=gt, lip_idx=np.arange(gt.shape[1]), scale=PROTOCOL.lve_flame_scale, shape=shape)
    why = decodable(motion) or decodable(ref.gt)
    if why:
        return _LvePlan(LVE, f"LVE: {why}")
    return _LvePlan(LVE, gt=decode_sample(ref.gt, ref.template, basis, 0)[0], lip_idx=PROTOCOL.lve_lip_indices,
                    scale=inter_ocular_distance(ref.template))


def _lve_names(metric: str) -> list[str]:
    """The names of every PROTOCOL.lve_variants variant in ``metric``'s units (landmark or FLAME LVE)."""
    units = "mm" if metric == LVE_FLAME else "iod"
    return [lve_name(v, units) for v in PROTOCOL.lve_variants]


def _add_lve(rows: _Rows, clip: str, s: int, metric: str, pred: np.ndarray, gt: np.ndarray, lip_idx, scale: float):
    """LVE of one sample on the frames valid in both (the first min(T) frames when lengths differ),
    in every variant of PROTOCOL.lve_variants, each under its own name (``metric``'s units)."""
    from ksdiff.metrics.lve import lve

    n = min(len(pred), len(gt))
    if len(pred) != len(gt):
        log.warning("%s sample %d: %d frames vs %d in ground truth; LVE on the first %d", clip, s, len(pred), len(gt), n)
    m = np.isfinite(gt[:n]).all((1, 2)) & np.isfinite(pred[:n]).all((1, 2))
    for variant, name in zip(PROTOCOL.lve_variants, _lve_names(metric)):
        if m.any():
            rows.add(clip, s, name, lve(pred[:n][m], gt[:n][m], lip_idx, variant, scale))
        else:
            rows.add(clip, s, name, float("nan"), "no frame valid in both prediction and ground truth")


def score_clip(
    rows: _Rows,
    ref: ClipRef,
    motion: parquet.Table,
    basis,
    fps: float,
    with_lve: bool,
    lse_fn=None,
    lse_samples: int | None = None,
    flame=(None, "no FLAME model configured"),
) -> None:
    """Append every metric of one clip (all samples of ``motion``) to ``rows``.

    lse_fn(sample, posed) -> syncnet result dict, or None when LSE is not scored.
    lse_samples: score LSE on the first N samples only (SyncNet is the costly
    metric on a CPU); None scores every sample.
    flame: (ksdiff.metrics.flame.LipDecoder or None, why not) for FLAME tables.
    """
    from ksdiff.metrics.beat_align import audio_beats, beat_align_with_reason, motion_beats
    from ksdiff.metrics.beat_chance import beat_align_corrected
    from ksdiff.metrics.diversity import sample_diversity, temporal_diversity
    from ksdiff.render.video import decodable, decode_sample, samples_of, select_sample

    clip = ref.clip_id
    # Coefficients that do not decode to landmarks (DECA's FLAME) still get the head-pose metrics.
    undecodable = decodable(motion) or (decodable(ref.gt) if ref.gt is not None else "")
    plan = _lve_plan(ref, motion, basis, flame) if with_lve else None
    heads = []
    for s in samples_of(motion):
        sel = select_sample(motion, s)
        head = head_pose(sel)
        heads.append(head)
        aligned, posed = (None, None) if undecodable else decode_sample(motion, ref.template, basis, s)
        if plan is not None and plan.why:
            for name in _lve_names(plan.metric):
                rows.add(clip, s, name, float("nan"), plan.why)
        elif plan is not None:
            _add_lve(rows, clip, s, plan.metric, plan.pred(flame[0], motion, s, aligned), plan.gt, plan.lip_idx, plan.scale)
        rows.add(clip, s, "temporal_diversity", temporal_diversity(head))
        a_beats = audio_beats(ref.wav, PROTOCOL.sample_rate, fps, n_frames=len(head))
        m_beats = motion_beats(head, fps)
        score, why = beat_align_with_reason(m_beats, a_beats, fps=fps)
        rows.add(clip, s, "beat_align", score, why)
        rows.add(clip, s, "beat_align_corrected", *beat_align_corrected(m_beats, a_beats, len(head), fps))
        if lse_fn is not None and (lse_samples is None or s < lse_samples):
            try:
                r = lse_fn(s, posed)
            except ValueError as e:  # e.g. clip too short for SyncNet's windows
                for k in ("lse_d", "lse_c", "lse_offset"):
                    rows.add(clip, s, k, float("nan"), f"LSE: {e}")
            else:
                rows.add(clip, s, "lse_d", r["lse_d"])
                rows.add(clip, s, "lse_c", r["lse_c"])
                rows.add(clip, s, "lse_offset", float(r["offset"]))
    if len(heads) >= 2:
        n = min(len(h) for h in heads)
        rows.add(clip, ACROSS_SAMPLES, "sample_diversity", sample_diversity(np.stack([h[:n] for h in heads])))


def _load_syncnet(path):
    if not path:
        return None
    from ksdiff.metrics.syncnet import load_syncnet

    return load_syncnet(path)  # raises with a clear message when the file is missing


def evaluate_method(
    cfg: dict,
    results: str,
    predictions: str | None = None,
    method: str = GROUND_TRUTH,
    out: str | None = None,
    syncnet: str | None = None,
    external: bool = False,
    shards: str | None = None,
    shard: int | None = None,
):
    """Score ``method`` on the test clips of ``results`` (results/{dataset}); write ``out``.

    predictions: folder of {clip}.parquet coeffs tables (any origin); ignored
    for method 'ground_truth', which scores results/{dataset}/coeffs.
    external: predictions come from extracting another system's videos; the
    folder above ``predictions`` is then results-like (manifest.parquet,
    landmarks/, audio/) and LSE is scored on those original frames. External
    clips whose id is a ground-truth test clip get LVE and the GT audio; ids
    unknown to the dataset are scored without LVE on their own audio.
    syncnet: SyncNet weights (default cfg['eval']['syncnet']); none: no LSE.
    shards, shard: score only that shard of the usable test clips (the test_shards
    table, ksdiff.data.shards); ``merge_metrics`` joins the shards' tables and adds
    the clips QC left out. Not with ``external``.
    Returns the metrics as a pandas DataFrame.
    """
    from tqdm import tqdm

    from ksdiff.extract.coeffs import load_basis
    from ksdiff.metrics.flame import lip_decoder
    from ksdiff.render.video import RenderError

    results = Path(results)
    fps = float(cfg["fps"])
    is_gt = method == GROUND_TRUTH
    if not is_gt and predictions is None:
        raise ValueError(f"method {method!r} needs --predictions (a folder of coeffs tables)")
    pred_dir = results / "coeffs" if is_gt else Path(predictions)
    ext_root = pred_dir.parent if external else None
    basis = load_basis(results / "basis.npz")
    model = _load_syncnet(syncnet or cfg.get("eval", {}).get("syncnet"))
    flame = (None, "") if is_gt else lip_decoder(cfg)  # raises now on a configured FLAME file that is missing or bad

    test, skipped = test_clips(results)
    clips = list(test)
    if shards is not None:
        if external:
            raise ValueError("external predictions are scored in one job (their clips are not the test shards)")
        from ksdiff.data.shards import shard_rows

        mine = {r["clip_id"] for r in shard_rows(shards, shard)}
        clips, skipped = [c for c in test if c in mine], []  # QC's skips: once, by merge_metrics
    if external:
        splits = parquet.read_table(results / "splits.parquet", "splits").to_pandas()
        known = set(splits["clip_id"])
        ext_clips = sorted(p.stem for p in pred_dir.glob("*.parquet"))
        skipped += [{"clip_id": c, "reason": "external clip of a non-test split"} for c in ext_clips if c in known and c not in test]
        clips = [c for c in ext_clips if c in test or c not in known]

    # source videos by clip id: an external method's own videos, or (for ground truth) the dataset's
    videos_root = ext_root if external else results if is_gt else None
    videos = ({} if videos_root is None or model is None else
              dict(parquet.read_table(videos_root / "manifest.parquet", "manifest").to_pandas()[["clip_id", "path"]].values))
    rows = _Rows(method)
    scored = []
    checks: list[dict] = []  # external videos against their ground-truth clips (ksdiff.metrics.external_check)
    for clip in tqdm(clips, desc=f"evaluate {method}", unit="clip", disable=None):
        try:
            why = _score_one(rows, clip, clip in test, results, pred_dir, ext_root, basis, fps, model, is_gt,
                             cfg["eval"].get("lse_samples"), videos, flame, checks)
        except (RenderError, ValueError, OSError, KeyError) as e:  # one bad clip never stops the table
            log.exception("%s: %s", clip, e)
            why = f"{type(e).__name__}: {e}"
        if why:
            skipped.append({"clip_id": clip, "reason": why})
        else:
            scored.append(clip)

    attrs = {
        "method": method,
        "dataset": results.name,
        "external": bool(external),
        "protocol_version": PROTOCOL.version,
        "protocol": PROTOCOL.as_dict(),
        "lve_metric": LVE,
        "lve_flame": (flame[0].describe() if flame[0] is not None else
                      {"scored": False, "metric": LVE_FLAME, "note": flame[1] or "ground truth: no LVE"}),
        "lse": (
            {"scored": True, "weights": model.weights_path, "sha256": model.weights_sha256,
             "check": getattr(model, "sync_check", None),
             "frames": "original video frames + extracted landmarks" if external else
             "ksdiff.render.warp of the clip's reference frame (first frame with a face)"}
            if model is not None else {"scored": False, "note": NO_SYNCNET}
        ),
        "basis": {"path": basis.path, "sha256": basis.sha256},
        "numerics": numerics.describe(),  # the CPU code paths that scored it (ksdiff/numerics.py)
        "clips": scored,
        "skipped": skipped,
        "undefined": rows.undefined,
    }
    if external:
        attrs["external_check"] = checks
    log.info("%s: %d clips scored, %d skipped, %d rows", method, len(scored), len(skipped), len(rows.rows))
    if out is not None:
        _write_metrics(out, rows.table() if rows.rows else None, attrs)
    import pandas as pd

    return pd.DataFrame(rows.table())


def _write_metrics(out, table, attrs: dict) -> None:
    if table is not None:
        parquet.write_table(out, "metrics", table, attrs=attrs)
    else:
        reasons = "; ".join(f"{s['clip_id']}: {s['reason']}" for s in attrs["skipped"][:5]) or "no test clips"
        parquet.write_failure(out, "metrics", f"no clip could be scored ({reasons})", attrs=attrs)


def merge_metrics(cfg: dict, results: str, parts: list, method: str, out: str) -> int:
    """`ksdiff merge-metrics`: one method's metrics table from its test shards' tables (in
    shard order: the rows and attrs a single job over all test clips writes), with the
    test clips QC left out listed first as skipped."""
    import pyarrow as pa

    tabs = [parquet.read_table(p, "metrics") for p in parts]
    _, qc_skipped = test_clips(Path(results))
    if not tabs:  # no usable test clip, so no shard: the table one job over no clip writes
        evaluate_method(cfg, results, predictions=str(Path(results) / "coeffs"), method=method, out=out)
        return 0
    attrs = dict(tabs[0].attrs)
    attrs["clips"] = [c for t in tabs for c in t.attrs.get("clips", [])]
    attrs["skipped"] = qc_skipped + [s for t in tabs for s in t.attrs.get("skipped", [])]
    attrs["undefined"] = [u for t in tabs for u in t.attrs.get("undefined", [])]
    ok = [t.table.replace_schema_metadata(None) for t in tabs if t.ok and t.table.num_rows]
    _write_metrics(out, pa.concat_tables(ok).combine_chunks() if ok else None, attrs)
    log.info("%s: %d shard(s), %d clips scored", method, len(tabs), len(attrs["clips"]))
    return 0


def _n_frames(table: parquet.Table) -> int:
    """Frames of a coeffs table's first sample."""
    s = table.column("sample")
    return int(np.sum(s == s.min())) if len(s) else 0


def _score_one(rows, clip, in_test, results, pred_dir, ext_root, basis, fps, model, is_gt, lse_samples=None,
               videos=None, flame=(None, ""), checks=None) -> str:
    """Score one clip; '' when scored, else why it was skipped. ``videos``: clip id -> source video path.
    An external video of a ground-truth clip is first checked against it (its record appended to ``checks``)
    and scored with its lag removed, or not at all."""
    from ksdiff.render.video import decodable, reference_frame, template_of
    from ksdiff.render.warp import FaceWarper

    gt, why = (_read_ok(results / "coeffs" / f"{clip}.parquet", "coeffs") if in_test else (None, ""))
    if why:
        return f"ground truth {why}"
    motion, why = (gt, "") if is_gt else _read_ok(pred_dir / f"{clip}.parquet", "coeffs")
    if why:
        return f"prediction {why}"
    wav_path = results / "audio" / f"{clip}.wav"
    if gt is None:  # external clip without ground truth: its own identity and audio
        wav_path = ext_root / "audio" / f"{clip}.wav"
    if not wav_path.exists():
        return f"no audio ({wav_path})"
    wav = _wav(wav_path)
    check = None
    if ext_root is not None and gt is not None:
        video_wav = ext_root / "audio" / f"{clip}.wav"
        check = external_check.check_clip(clip, _wav(video_wav) if video_wav.exists() else None, wav,
                                          _n_frames(motion), _n_frames(gt), fps, PROTOCOL.sample_rate)
        checks.append(check.row())
        if not check.scored:
            return f"external check: {check.reason}"
        gt, motion, wav = check.align(gt, motion, wav, fps, PROTOCOL.sample_rate)
    ident = gt if gt is not None else motion
    ref = ClipRef(clip, wav, None if decodable(ident) else template_of(ident), gt)

    lse_fn = None
    if model is not None:
        if ext_root is not None:
            lm = _landmarks_px(ext_root / "landmarks" / f"{clip}.parquet")
            video, start = videos[clip], check.video_start if check is not None else 0
            lse_fn = lambda s, posed: lse_original(model, video, lm, fps, ref.wav, start)  # noqa: E731
        else:
            ref_rgb, ref_lm, _ = reference_frame(results, clip, fps)
            warper = FaceWarper(ref_rgb, ref_lm)
            lse_fn = lambda s, posed: lse_rendered(model, warper, posed, ref.wav, fps)  # noqa: E731
    score_clip(rows, ref, motion, basis, fps, with_lve=(gt is not None and not is_gt), lse_fn=lse_fn,
               lse_samples=lse_samples, flame=flame)
    if is_gt and model is not None:
        # The recorded video itself, as papers score "GT": next to the re-rendered row it shows what
        # landmark extraction + rendering lose (methods only ever exist rendered).
        try:
            r = lse_original(model, videos[clip], _landmarks_px(results / "landmarks" / f"{clip}.parquet"), fps, ref.wav)
        except ValueError as e:
            rows.add(clip, 0, "lse_d_video", float("nan"), f"LSE on the source video: {e}")
            rows.add(clip, 0, "lse_c_video", float("nan"), f"LSE on the source video: {e}")
        else:
            rows.add(clip, 0, "lse_d_video", r["lse_d"])
            rows.add(clip, 0, "lse_c_video", r["lse_c"])
    return ""
