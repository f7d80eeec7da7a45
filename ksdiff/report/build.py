"""`ksdiff report`: metrics tables -> leaderboard.md + self-contained leaderboard.html + PNGs.

Inputs are the per-method 'metrics' tables written by ksdiff.evaluate (long
format). Numbers: ksdiff.report.tables (bootstrap over clip means). With the
dataset's results folder (and the methods' prediction folders) the report also
shows head-pose trajectories and rendered frames of a few test clips; without
them it still has the table, bars, protocol and provenance.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ksdiff import numerics
from ksdiff.io import parquet
from ksdiff.io.files import atomic_write_bytes
from ksdiff.metrics import external_check
from ksdiff.metrics.external_qc import read_rows as read_external_qc
from ksdiff.metrics.motion import head_pose
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.registry import GROUND_TRUTH, METRIC_INFO
from ksdiff.report import plots, sanity as sane, speaker_spread
from ksdiff.report.read import read_metrics
from ksdiff.report.board import LEGEND, build_board, markdown as board_markdown
from ksdiff.report.html import (board_html, html_table, metric_definitions, render_html, software_versions,
                                syncnet_statement)
from ksdiff.report.tables import board_header, metric_header, method_order, per_clip, set_level, summarise, to_markdown
from ksdiff.report.encoders import encoder_rows
from ksdiff.report.weighted import weighted_rows
from ksdiff.study import report as study_report

log = logging.getLogger(__name__)


def parse_predictions(predictions: list[str] | None) -> dict[str, Path]:
    """method -> folder of coeffs tables, from 'name=folder' or 'folder' (name = folder name)."""
    out = {}
    for item in predictions or []:
        name, _, folder = item.partition("=") if "=" in item else (Path(item).name, "", item)
        out[name] = Path(folder)
    return out


def parameter_counts(models: Path, methods: list[str]) -> dict[str, int]:
    """method -> trained parameter count, from the 'model' row ksdiff.training writes to train_log.csv."""
    out = {}
    for m in methods:
        log_csv = models / m / "train_log.csv"
        if not log_csv.exists():
            continue  # ground truth and the non-learned baselines have no model
        t = pd.read_csv(log_csv)
        hit = t.loc[(t["phase"] == "model") & (t["metric"] == "n_params"), "value"]
        if len(hit):
            out[m] = int(hit.iloc[-1])
    return out


def external_checks(attrs: list[dict], qc_tables: list[str] | None = None) -> pd.DataFrame:
    """Every external video's check, one row per method and clip: from the external videos' QC tables
    (ksdiff.metrics.external_qc, as the workflow writes them) when given, else from the external methods'
    metrics tables, which record the checks against ground-truth clips (ksdiff.metrics.external_check)."""
    recs = ([r for p in qc_tables for r in read_external_qc(p)] if qc_tables is not None else
            [{"method": a["method"], **c} for a in attrs for c in a.get("external_check", [])])
    rows = [{"Method": c["method"], "Clip": c["clip_id"], "Status": c["status"],
             "Peak correlation": c["peak_corr"], "Lag [s]": c["lag_s"], "Lag [frames]": c["lag_frames"],
             "Frames": c["n_frames"], "Ground-truth frames": c["n_frames_gt"], "Reason": c["reason"] or "–"}
            for c in recs]
    df = pd.DataFrame(rows)
    for col in ("Peak correlation", "Lag [s]"):
        if col in df:
            df[col] = df[col].astype(float)  # not measured (no audio track): NaN, shown as '–'
    return df


def choose_clips(attrs: list[dict], k: int) -> list[str]:
    """The first k clips (by id) scored for every method; if none is common, the most covered."""
    scored = [set(a.get("clips", [])) for a in attrs]
    if not scored:
        return []
    common = set.intersection(*scored)
    if common:
        return sorted(common)[:k]
    counts = pd.Series([c for s in scored for c in s]).value_counts()
    return sorted(counts.index, key=lambda c: (-counts[c], c))[:k]


def _motion_tables(results: Path, pred_dirs: dict[str, Path], clip: str, methods: list[str]) -> dict[str, parquet.Table]:
    out = {}
    for m in methods:
        path = results / "coeffs" / f"{clip}.parquet" if m == GROUND_TRUTH else pred_dirs.get(m, Path("/nonexistent")) / f"{clip}.parquet"
        if path.exists():
            t = parquet.read_table(path, "coeffs")
            if t.ok:
                out[m] = t
    return out


def clip_figures(cfg: dict, results: Path, pred_dirs: dict[str, Path], clip: str, methods: list[str], plots_dir: Path) -> list[dict]:
    """Head-pose trajectories and a frame strip (warp renderer) of one clip."""
    from ksdiff.extract.basis import load_basis
    from ksdiff.render.video import decode_sample, reference_frame, select_sample, template_of
    from ksdiff.render.warp import FaceWarper

    fps = float(cfg["fps"])
    tables = _motion_tables(results, pred_dirs, clip, methods)
    if GROUND_TRUTH not in tables:
        tables[GROUND_TRUTH] = parquet.read_table(results / "coeffs" / f"{clip}.parquet", "coeffs")
    curves = {m: head_pose(select_sample(t, 0)) for m, t in tables.items()}
    figs = [{
        "title": f"Head pose over time, clip {clip}",
        "caption": "yaw, pitch and roll of sample 0 of each method; ground truth in black",
        "path": plots.pose_trajectories(curves, fps, clip, plots_dir / f"pose_{clip}.png"),
    }]
    basis = load_basis(results / "basis.npz")
    template = template_of(tables[GROUND_TRUTH])
    ref_rgb, ref_lm, _ = reference_frame(results, clip, fps)
    warper = FaceWarper(ref_rgb, ref_lm)
    n_show = int(cfg["eval"]["report_frames"])
    posed = {m: decode_sample(t, template, basis, 0)[1] for m, t in tables.items()}
    n = min(len(p) for p in posed.values())
    idx = np.unique(np.linspace(0, n - 1, n_show + 2).round().astype(int)[1:-1])  # skip frame 0: it is the reference
    frames = {m: [warper.render(p[i]) for i in idx] for m, p in posed.items()}
    figs.append({
        "title": f"Rendered frames, clip {clip}",
        "caption": "every row is the same reference frame warped by that method's landmarks (sample 0)",
        "path": plots.frame_strip(frames, [i / fps for i in idx], clip, plots_dir / f"frames_{clip}.png"),
    })
    return figs


def _protocol_summary() -> str:
    p = PROTOCOL
    return (f"Protocol {p.version}, every metric at {p.fps:g} fps (motion and video) and {p.sample_rate / 1000:g} kHz "
            f"audio: LVE ({' and '.join(p.lve_variants)}) over {len(p.lve_lip_indices)} MediaPipe lip landmarks "
            f"in inter-ocular units (FLAME meshes: over FLAME's 'lips' vertices in mm); "
            f"BeatAlign sigma {p.beat_sigma_frames:.4g} frames at {p.fps:g} fps ({1000 * p.beat_sigma_frames / p.fps:.0f} ms), "
            f"chance-corrected over {p.beat_chance_shifts} onset shifts of at least {p.beat_chance_min_shift_s:g} s; "
            f"LSE on {p.crop_size} px face crops, offsets ±{p.syncnet_vshift}; FDD as CodeTalker's cal_metric.py over "
            f"{len(p.fdd_landmark_indices)} MediaPipe eye and eyebrow landmarks (FLAME: {' + '.join(p.fdd_flame_regions)}); "
            f"MOD is ksdiff's definition {p.mod_version}; E-FID is set-level in ksdiff's coefficient space (not "
            "comparable with Deep3DFaceRecon-coefficient tables).")


def build_report(
    cfg: dict,
    metrics: list[str],
    out_md: str,
    out_html: str,
    plots_dir: str,
    results: str | None = None,
    predictions: list[str] | None = None,
    sanity: str | None = None,
    models: str | None = None,
    studies: list[str] | None = None,
    external_qc: list[str] | None = None,
) -> int:
    """Write the Markdown and HTML leaderboards and their PNGs from metrics tables.

    sanity: a sanity table written by `ksdiff sanity` (the workflow's); without it
    the sanity check is computed here from the ground-truth and floor rows.
    models: models/{dataset}: each trained method's parameter count (its train_log.csv)
    becomes the leaderboard's 'Parameters' column, so capacity is read beside the scores.
    studies: user-study scores tables (`ksdiff study score`); None: those under the config's study.dir
    of this dataset, so a scored study joins the leaderboard when it is rebuilt.
    external_qc: the external videos' QC tables (ksdiff.metrics.external_qc); None: the checks the external
    methods' metrics tables record.
    """
    ecfg = cfg["eval"]
    n_boot, level, seed = int(ecfg["bootstrap_samples"]), float(ecfg["ci_level"]), int(ecfg["seed"])
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    df, attrs, sources = read_metrics(list(metrics))
    summary = summarise(df, n_boot=n_boot, alpha=1.0 - level, seed=seed)
    n_clips = {a["method"]: len(a.get("clips", [])) for a in attrs}
    if sanity:
        checks, failed = sane.read_sanity(sanity)
    else:
        checks, failed = sane.sanity_table(df, attrs, n_boot=n_boot, alpha=1.0 - level, seed=seed), sane.failed_weights(attrs)
    flags = sane.flagged(checks, failed)
    sets = set_level(attrs)
    with_sets = pd.concat([summary, sets], ignore_index=True) if not sets.empty else summary
    params = parameter_counts(Path(models), method_order(with_sets["method"])) if models is not None and not with_sets.empty else None
    board = build_board(with_sets, n_clips, flags, params) if not with_sets.empty else None
    appendix = per_clip(df) if not df.empty else pd.DataFrame()
    skipped = [{"method": a["method"], **s} for a in attrs for s in a.get("skipped", [])]
    skipped += [{"method": s["method"], "clip_id": "(all)", "reason": f"metrics table {s['status']}: {s['reason']}"}
                for s in sources if s["status"] != parquet.OK]
    undefined = [{"method": a["method"], **u} for a in attrs for u in a.get("undefined", [])]
    ext_checks = external_checks(attrs, external_qc)
    lse_note, weight_rows = syncnet_statement(attrs)
    basis_rows = {(a.get("basis") or {}).get("sha256", "") for a in attrs} - {""}
    weight_rows += [{"name": "expression basis", "value": f"sha256 {b}"} for b in sorted(basis_rows)]
    modes = sorted({numerics.summary(a.get("numerics")) for a in attrs})
    weight_rows += [{"name": "numerics (scoring)" + (" — WARNING: methods scored in different modes" if len(modes) > 1 else ""),
                     "value": m} for m in modes]
    flame = {(f["model"], f["model_sha256"], f["masks"], f["masks_sha256"]) for a in attrs
             if (f := a.get("lve_flame") or {}).get("scored")}
    for model, model_sha, masks, masks_sha in sorted(flame):
        weight_rows += [{"name": "FLAME model (LVE)", "value": f"{model} (sha256 {model_sha})"},
                        {"name": "FLAME lip mask (LVE)", "value": f"{masks} (sha256 {masks_sha})"}]

    weight_rows += weighted_rows(attrs)  # FID, FVD, LPIPS, CSIM: the files' sha256, or why not scored
    weight_rows += encoder_rows(parse_predictions(predictions))  # wav2vec2 / HuBERT the methods were trained on
    figures: list[dict] = []
    if not summary.empty:
        figures.append({"title": "Metrics per method", "caption": f"mean over clips with {level:.0%} bootstrap interval",
                        "path": plots.metric_bars(summary, plots_dir / "metric_bars.png", flags)})
    figure_notes = []
    if results is not None:
        methods = method_order([a["method"] for a in attrs] + [GROUND_TRUTH])
        for clip in choose_clips(attrs, int(ecfg["report_clips"])):
            try:
                figures += clip_figures(cfg, Path(results), parse_predictions(predictions), clip, methods, plots_dir)
            except (OSError, ValueError, RuntimeError) as e:  # a figure never blocks the leaderboard
                log.warning("figures for %s not produced: %s", clip, e)
                figure_notes.append(f"figures for clip {clip} not produced: {e}")

    defs = metric_definitions()
    present = [k for k in METRIC_INFO if k in set(with_sets["metric"])] if not with_sets.empty else []
    notes = [{"header": metric_header(k), "better": f"{METRIC_INFO[k][2]} is better", "definition": defs.get(k, "")} for k in present]
    if results is not None and "temporal_diversity" in present:  # whose spread 'closer to ground truth' means
        spread = speaker_spread.context(Path(results))
        for n, k in zip(notes, present):
            if k == "temporal_diversity" and spread:
                n["definition"] = f"{n['definition']} {spread}".strip()
    checked = {
        "banner": sane.banner(checks, failed),
        "text": sane.describe(level, n_boot, seed),
        "table": sane.display(checks),
    }
    sections = _family_sections(board, notes, present, flags)
    versions = software_versions()
    title = f"ksdiff leaderboard: {', '.join(sorted({a.get('dataset', '?') for a in attrs})) or 'no data'}"

    datasets = {a.get("dataset") for a in attrs} - {None}
    study_paths = [Path(p) for p in studies] if studies is not None else study_report.find_scores(cfg["study"]["dir"], datasets)
    user_studies = [study_report.study_tables(p) for p in study_paths]

    md = _markdown(title, checked, board, sections, lse_note, figures, figure_notes, versions, weight_rows, sources, skipped,
                   undefined, appendix, Path(out_md), level, n_boot, seed, ext_checks)
    if user_studies:  # beside the objective metrics, before the figures (as in the HTML)
        md = md.replace("## Figures\n", "\n".join(study_report.markdown(user_studies)) + "\n## Figures\n", 1)
    atomic_write_bytes(out_md, md.encode())
    html = render_html({
        "title": title,
        "protocol_version": PROTOCOL.version,
        "ci_percent": f"{100 * level:g}",
        "n_boot": n_boot,
        "seed": seed,
        "sanity_banner": checked["banner"],
        "sanity_text": checked["text"],
        "sanity_html": html_table(checked["table"], class_column="verdict"),
        "overview_caption": board.overview.caption if board else "No values.",
        "overview_html": board_html(board.overview) if board else "",
        "board_legend": LEGEND,
        "families": [{k: f[k] for k in ("key", "title", "caption", "notes", "flag_notes")} | {"html": board_html(f["table"])}
                     for f in sections],
        "syncnet_statement": lse_note,
        "external_note": EXTERNAL_NOTE,
        "external_html": html_table(ext_checks) if not ext_checks.empty else "",
        "figures": [{"title": f["title"], "caption": f["caption"], "uri": plots.data_uri(f["path"])} for f in figures],
        "figure_notes": figure_notes,
        "protocol_text": PROTOCOL.describe(),
        "lse_deviations": list(PROTOCOL.lse_deviations),
        "versions": versions,
        "weights": weight_rows,
        "sources": sources,
        "skipped": skipped,
        "undefined": undefined,
        "n_clip_rows": len(appendix),
        "per_clip_html": html_table(appendix, sortable=True),
        "studies": study_report.html(user_studies),
    })
    atomic_write_bytes(out_html, html.encode())
    log.info("leaderboard: %d methods, %d metrics in %d families -> %s, %s", len(board.overview.rows) if board else 0,
             len(present), len(sections), out_md, out_html)
    return 0


EXTERNAL_NOTE = (
    "Each external video was checked against its ground-truth clip before scoring: its audio cross-correlated "
    f"with the clip's (peak normalised correlation at least {external_check.MIN_PEAK_CORR:g}, a constant lag "
    f"within ±{external_check.MAX_LAG_S:g} s removed before scoring, length within "
    f"{external_check.MAX_LENGTH_DIFF_FRAMES} frames of the clip's once the lag is removed). "
    "A video marked 'mismatch' is not scored (it is also under Skipped clips), nor is one of another split "
    "('other split'), of a test clip QC left out or whose extraction failed; one whose id is no clip of the dataset "
    "('no ground truth') is scored on its own audio without LVE, one without an audio track ('unchecked') if its "
    "length matches.")


def _family_sections(board, notes: list[dict], present: list[str], flags: dict) -> list[dict]:
    """Per family table: its caption, its metrics' definitions and sanity notes (the notes under its table)."""
    if board is None:
        return []
    by_metric = dict(zip(present, notes))
    return [{"key": t.key, "title": t.title, "caption": t.caption, "table": t,
             "notes": [by_metric[k] for k in t.metrics if k in by_metric],
             "flag_notes": [{"header": board_header(k, flags), "reason": flags[k][1]} for k in t.metrics if k in flags]}
            for t in board.tables]


def _markdown(title, checked, board, sections, lse_note, figures, figure_notes, versions, weight_rows, sources, skipped,
              undefined, appendix, out_md: Path, level, n_boot, seed, ext_checks) -> str:
    rel = lambda p: os.path.relpath(p, out_md.resolve().parent)  # noqa: E731
    lines = [f"# {title}", ""]
    if checked["banner"]:
        lines += ["> **⚠ Sanity warning.**", ">"] + [f"> - {b}" for b in checked["banner"]] + [""]
    else:
        lines += ["> Sanity: no metric fails or is undetermined against the floors; no weight file failed its check.", ""]
    lines += ["## Sanity", "", checked["text"], "", to_markdown(checked["table"]) if not checked["table"].empty else "No values.", ""]
    lines += [_protocol_summary(), "",
             f"Each cell: mean over test clips [{level:.0%} percentile-bootstrap interval over clips, "
             f"{n_boot} resamples, seed {seed}]; samples are averaged within a clip first. "
             "Ground truth is scored by the same code as every method.", "",
             "## Leaderboard", ""]
    lines += [board_markdown(board.overview), "", f"{board.overview.caption} {LEGEND}", ""] if board else ["No values.", ""]
    for f in sections:
        lines += [f"### {f['title']}", "", f["caption"], "", board_markdown(f["table"]), ""]
        lines += [f"- ⚠ **{n['header']}**: {n['reason']}" for n in f["flag_notes"]]
        lines += [f"- **{n['header']}**: {n['better']}. {n['definition']}" for n in f["notes"]]
        lines += [""]
    lines += [f"LSE (SyncNet): {lse_note}", ""]
    if not ext_checks.empty:
        lines += ["## External videos against their ground truth", "", EXTERNAL_NOTE, "", to_markdown(ext_checks), ""]
    lines += ["## Figures", ""]
    lines += [f"![{f['title']}]({rel(Path(f['path']).resolve())})" for f in figures]
    lines += [f"- {n}" for n in figure_notes]
    lines += ["", "## Protocol", "", "LSE departs from syncnet_python's pipeline in these ways:", ""]
    lines += [f"- {d}" for d in PROTOCOL.lse_deviations]
    lines += ["", "```json", PROTOCOL.describe(), "```", "", "## Software and weights", ""]
    lines += [to_markdown(pd.DataFrame([{"component": k, "version / hash": v} for k, v in versions.items()]
                                       + [{"component": w["name"], "version / hash": w["value"]} for w in weight_rows])), ""]
    src = pd.DataFrame(sources)[["path", "method", "status", "n_clips", "n_skipped", "n_undefined", "sha256"]] if sources else pd.DataFrame()
    lines += ["Metrics tables:", "", to_markdown(src) if not src.empty else "none", ""]
    lines += ["## Skipped clips", ""]
    lines += [to_markdown(pd.DataFrame(skipped)) if skipped else "No clip was skipped.", ""]
    if undefined:
        lines += [f"{len(undefined)} metric values are undefined and left out (reasons in the HTML report and the metrics tables' attrs).", ""]
    lines += ["## Appendix: per-clip values (mean over samples)", "", to_markdown(appendix) if not appendix.empty else "No values.", ""]
    return "\n".join(lines)
