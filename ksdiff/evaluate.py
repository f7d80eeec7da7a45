"""Score one method on a dataset's test split -> the long-format 'metrics' table.

This module only loads: per clip it reads the inputs once (``load_clip`` -> ksdiff.metrics.clip.ClipInputs)
and hands them to every scorer of ksdiff.metrics.scorers.SCORERS, one module per metric family; the metric
names, labels and directions are in ksdiff.metrics.registry. What each family measures:

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
           throw away their own image synthesis. Each external video is first
           placed against the dataset by the external videos' QC
           (ksdiff.metrics.external_qc; a video of a ground-truth clip checked
           against it by its audio, ksdiff.metrics.external_check): a small
           constant lag is removed before scoring, a video that does not match
           is not scored, and every check is recorded in the table's attrs
           ('external_check') as in the QC table the workflow writes.
  FDD, MOD upper-face dynamics deviation (CodeTalker) and mouth-opening distance (ksdiff's definition),
           per sample against ground truth (ground truth itself scores 0);
  E-FID    set-level: Frechet distance of the expression-coefficient distributions over all clips scored,
           from moments kept in the table's attrs ('efid'), summed over shards by ``merge_metrics``.
  video    with ``eval.video_metrics`` only: PSNR, SSIM, CPBD, F-LMD and M-LMD of each sample's frames (drawn
           as for LSE, or an external method's own) against the clip's recorded video, frame t with frame t
           (ksdiff.metrics.video_pair: each sample's frames opened once, released when the clip is done).

A clip that cannot be scored (missing or failed table, no audio, ...) is
skipped with its reason in the table's attrs ('skipped'); a metric that is
undefined for a clip/sample (no beats, clip too short for SyncNet) is left out
with its reason in 'undefined'. Nothing is ever filled in.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ksdiff import numerics
from ksdiff.io import parquet
from ksdiff.metrics import external_qc
from ksdiff.metrics.clip import ClipInputs, Resources, Rows, read_audio
from ksdiff.metrics.external_check import ClipCheck
from ksdiff.metrics.efid import Moments, efid
from ksdiff.metrics.frames import Rendered, Video
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.registry import GROUND_TRUTH, LVE, LVE_FLAME, NO_SYNCNET
from ksdiff.metrics.scorers import SCORERS
from ksdiff.metrics.video_settings import VideoSettings
from ksdiff.metrics.test_set import shard_clips, test_clips
from ksdiff.metrics.weighted import SET_LEVEL as WEIGHTED_SETS, WeightedModels, merged_record, set_record
from ksdiff.render.video import RenderError, decodable, reference_frame, template_of

log = logging.getLogger(__name__)

__all__ = ["evaluate_method", "merge_metrics", "load_clip", "test_clips"]  # test_clips: ksdiff.data.shards reads it here


def _read_ok(path: Path, name: str) -> tuple[parquet.Table | None, str]:
    if not path.exists():
        return None, f"missing {path}"
    t = parquet.read_table(path, name)
    if not t.ok:
        return None, f"{path.parent.name}: {t.status}: {t.reason}"
    return t, ""


def _load_syncnet(path, device: str = "cpu"):
    if not path:
        return None
    from ksdiff.metrics.syncnet import load_syncnet  # torch: only when LSE is scored

    return load_syncnet(path, device=device)  # raises with a clear message when the file is missing


def load_clip(clip: str, in_test: bool, results: Path, pred_dir: Path, ext_root: Path | None, fps: float,
              run: Resources, is_gt: bool, videos: dict, check: ClipCheck | None = None) -> tuple[ClipInputs | None, str]:
    """(one clip's inputs, '') or (None, why it is skipped). An external video checked against its ground-truth
    clip (``check``, ksdiff.metrics.external_check) is loaded with the measured lag removed."""
    gt, why = (_read_ok(results / "coeffs" / f"{clip}.parquet", "coeffs") if in_test else (None, ""))
    if why:
        return None, f"ground truth {why}"
    motion, why = (gt, "") if is_gt else _read_ok(pred_dir / f"{clip}.parquet", "coeffs")
    if why:
        return None, f"prediction {why}"
    wav_path = results / "audio" / f"{clip}.wav"
    if gt is None:  # external clip without ground truth: its own identity and audio
        wav_path = ext_root / "audio" / f"{clip}.wav"
    if not wav_path.exists():
        return None, f"no audio ({wav_path})"
    wav = read_audio(wav_path)
    if check is not None and gt is not None:
        gt, motion, wav = check.align(gt, motion, wav, fps, PROTOCOL.sample_rate)
    ident = gt if gt is not None else motion
    frames = source = None
    if run.syncnet is not None or run.video.frames_needed:
        if ext_root is not None:  # an external method: its own frames, with the landmarks extracted from them
            frames = Video(videos[clip], ext_root / "landmarks" / f"{clip}.parquet", fps,
                           check.video_start if check is not None else 0)
        else:  # every motion rendered over the clip's reference frame (ground truth's too)
            from ksdiff.render.warp import FaceWarper  # cv2 and the renderer: only when LSE is scored

            ref_rgb, ref_lm, _ = reference_frame(results, clip, fps)
            frames = Rendered(FaceWarper(ref_rgb, ref_lm))
        if is_gt:
            source = Video(videos[clip], results / "landmarks" / f"{clip}.parquet", fps)
    reference = run.video.reference(clip, fps, check.gt_start if check is not None else 0) if gt is not None else None
    return ClipInputs(clip, fps, wav, motion, gt, None if decodable(ident) else template_of(ident), run,
                      is_gt=is_gt, frames=frames, source=source, reference=reference), ""


def score_clip(inputs: ClipInputs, scorers=SCORERS) -> list:
    """Every scorer's rows for one clip, in ``scorers`` order; the clip's frame buffers are released after."""
    try:
        return [r for scorer in scorers for r in scorer.score(inputs)]
    finally:
        inputs.close()


_SET_DEFS = {"fid": f"{PROTOCOL.fid_def} Frames: {PROTOCOL.fid_frames}", "fvd": PROTOCOL.fvd_def}


def _efid_attrs(acc: dict) -> dict:
    """The set-level E-FID record of a table: its moments (what merging shards sums) and its value."""
    gt, m = acc["ground_truth"], acc["method"]
    value, why = efid(gt, m)
    return {"ground_truth": gt.to_attrs(), "method": m.to_attrs(), "value": value if np.isfinite(value) else None,
            "reason": why, "definition": PROTOCOL.efid_def, "space": PROTOCOL.efid_space}


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
    checks: str | None = None,
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
    checks: with ``external``, the external QC table (ksdiff.metrics.external_qc) of the videos to score, as the
    workflow writes it per shard of the videos (``merge_metrics`` adds the clips QC left out); without it, every
    coeffs table under ``predictions`` is checked here.
    Returns the metrics as a pandas DataFrame.
    """
    import pandas as pd
    from tqdm import tqdm

    from ksdiff.extract.basis import load_basis
    from ksdiff.metrics.flame import lip_decoder

    results = Path(results)
    fps = float(cfg["fps"])
    is_gt = method == GROUND_TRUTH
    if not is_gt and predictions is None:
        raise ValueError(f"method {method!r} needs --predictions (a folder of coeffs tables)")
    pred_dir = results / "coeffs" if is_gt else Path(predictions)
    ext_root = pred_dir.parent if external else None
    model = _load_syncnet(syncnet or cfg.get("eval", {}).get("syncnet"), cfg.get("eval", {}).get("device", "cpu"))
    flame = (None, "") if is_gt else lip_decoder(cfg)  # raises now on a configured FLAME file that is missing or bad
    run = Resources(load_basis(results / "basis.npz"), model, flame, cfg["eval"].get("lse_samples"),
                    video=VideoSettings.from_cfg(cfg, results), weighted=WeightedModels.from_cfg(cfg["eval"]))

    test, skipped = test_clips(results)
    clips = list(test)
    if shards is not None:
        if external:
            raise ValueError("external videos are scored by shard of the videos (checks), not of the test clips")
        mine = shard_clips(shards, shard)
        clips, skipped = [c for c in test if c in mine], []  # QC's skips: once, by merge_metrics
    # source videos by clip id: an external method's own videos, or (for ground truth) the dataset's
    videos_root = ext_root if external else results if is_gt else None
    videos = ({} if videos_root is None or (model is None and not run.video.frames_needed) or checks else
              dict(parquet.read_table(videos_root / "manifest.parquet", "manifest").to_pandas()[["clip_id", "path"]].values))
    ext_checks: dict[str, ClipCheck] = {}  # external videos against their ground-truth clips
    if external:
        qc = (external_qc.read_rows(checks) if checks else
              external_qc.check_videos(results, ext_root, {p.stem: videos.get(p.stem, "") for p in pred_dir.glob("*.parquet")},
                                       method, fps))
        if checks:
            videos, skipped = {r["clip_id"]: r["path"] for r in qc}, []  # QC's skips: once, by merge_metrics
        left_out = {s["clip_id"] for s in test_clips(results)[1]}  # listed by QC's skips already
        clips = [r["clip_id"] for r in qc if r["scored"]]
        skipped += [{"clip_id": r["clip_id"], "reason": f"external check: {r['reason']}"} for r in qc
                    if not r["scored"] and r["clip_id"] not in left_out]
        ext_checks = {r["clip_id"]: ClipCheck.from_row(r) for r in qc if r["status"] in external_qc.CHECKED}
        ext_videos = sorted(r["clip_id"] for r in qc)  # this table's videos (merge_metrics: the test clips with none)
    rows = Rows(method)
    scored = []
    for clip in tqdm(clips, desc=f"evaluate {method}", unit="clip", disable=None):
        try:
            inputs, why = load_clip(clip, clip in test, results, pred_dir, ext_root, fps, run, is_gt, videos,
                                    ext_checks.get(clip))
            clip_rows = score_clip(inputs) if inputs is not None else []
        except (RenderError, ValueError, OSError, KeyError) as e:  # one bad clip never stops the table
            log.exception("%s: %s", clip, e)
            why = f"{type(e).__name__}: {e}"
        if why:
            skipped.append({"clip_id": clip, "reason": why})
        else:
            rows.extend(clip, clip_rows)
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
        "lse_device": model.device if model is not None else None,  # eval.device: a GPU is not bit-equal to the CPU
        "basis": {"path": run.basis.path, "sha256": run.basis.sha256},
        "numerics": numerics.describe(),  # the CPU code paths that scored it (ksdiff/numerics.py)
        "efid": _efid_attrs(run.efid),
        "weighted": run.weighted.describe(),  # FID, FVD, LPIPS, CSIM: the weights' paths and sha256, or why not
        **{n: set_record(n, run.weighted.sets[n], [run.weighted.weights[n].describe() if n in run.weighted.weights
                                                   else None], _SET_DEFS[n]) for n in WEIGHTED_SETS},
        "clips": scored,
        "skipped": skipped,
        "undefined": rows.undefined,
    }
    if external:
        attrs["external_check"] = [c.row() for c in ext_checks.values()]
        attrs["videos"] = ext_videos
        if not checks:  # every video of the method: the test clips it has none of are listed here (else when merged)
            attrs["skipped"].extend(external_qc.missing_videos(results, ext_videos))
    log.info("%s: %d clips scored, %d skipped, %d rows", method, len(scored), len(skipped), len(rows.rows))
    if out is not None:
        _write_metrics(out, rows.table() if rows.rows else None, attrs)
    return pd.DataFrame(rows.table())


def _write_metrics(out, table, attrs: dict) -> None:
    if table is not None:
        parquet.write_table(out, "metrics", table, attrs=attrs)
    else:
        reasons = "; ".join(f"{s['clip_id']}: {s['reason']}" for s in attrs["skipped"][:5]) or "no test clips"
        parquet.write_failure(out, "metrics", f"no clip could be scored ({reasons})", attrs=attrs)


def _external_videos(attrs: dict) -> list[str]:
    """The ids of the external videos a metrics table saw; for a table written before it recorded them, the
    ids it scored or skipped (every video of its shard is one or the other)."""
    if "videos" in attrs:
        return list(attrs["videos"])
    return list(attrs.get("clips", [])) + [s["clip_id"] for s in attrs.get("skipped", [])]


def merge_metrics(cfg: dict, results: str, parts: list, method: str, out: str, external: bool = False) -> int:
    """`ksdiff merge-metrics`: one method's metrics table from its test shards' tables (in
    shard order: the rows and attrs a single job over all test clips writes), with the
    test clips QC left out listed first as skipped, and E-FID from the shards' summed moments.
    external: the parts score shards of an external method's videos (their checks are joined too)."""
    import pyarrow as pa

    tabs = [parquet.read_table(p, "metrics") for p in parts]
    _, qc_skipped = test_clips(Path(results))
    if not tabs and external:  # an empty folder of videos: nothing was extracted, checked or scored
        parquet.write_failure(out, "metrics", "no external video to score: the method's folder holds none",
                              attrs={"method": method, "dataset": Path(results).name, "external": True,
                                     "protocol_version": PROTOCOL.version, "clips": [], "videos": [],
                                     "skipped": qc_skipped + external_qc.missing_videos(results, []),
                                     "undefined": [], "external_check": []})
        return 0
    if not tabs:  # no usable test clip, so no shard: the table one job over no clip writes
        evaluate_method(cfg, results, predictions=str(Path(results) / "coeffs"), method=method, out=out)
        return 0
    attrs = dict(tabs[0].attrs)
    attrs["clips"] = [c for t in tabs for c in t.attrs.get("clips", [])]
    attrs["skipped"] = qc_skipped + [s for t in tabs for s in t.attrs.get("skipped", [])]
    attrs["undefined"] = [u for t in tabs for u in t.attrs.get("undefined", [])]
    if "external_check" in attrs:
        attrs["external_check"] = [c for t in tabs for c in t.attrs.get("external_check", [])]
    if external:  # the usable test clips none of the shards has a video of
        attrs["videos"] = sorted(v for t in tabs for v in _external_videos(t.attrs))
        attrs["skipped"] += external_qc.missing_videos(results, attrs["videos"])
    acc = {side: Moments() for side in ("ground_truth", "method")}
    for t in tabs:
        for side in acc:
            acc[side] = acc[side].merge(Moments.from_attrs((t.attrs.get("efid") or {}).get(side)))
    attrs["efid"] = _efid_attrs(acc)
    for n in WEIGHTED_SETS:  # FID, FVD: the shards' summed moments
        attrs[n] = merged_record(n, [t.attrs.get(n) or {} for t in tabs], _SET_DEFS[n])
    ok = [t.table.replace_schema_metadata(None) for t in tabs if t.ok and t.table.num_rows]
    _write_metrics(out, pa.concat_tables(ok).combine_chunks() if ok else None, attrs)
    log.info("%s: %d shard(s), %d clips scored", method, len(tabs), len(attrs["clips"]))
    return 0
