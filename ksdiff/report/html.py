"""The self-contained HTML leaderboard (Jinja2 template ksdiff/report/template.html).

Self-contained: figures are embedded as data: URIs and the style is inline,
so the file can be mailed or attached to a paper's supplement and still show
everything. Besides the table it states exactly what produced the numbers:
the pinned metric protocol, software versions, the SyncNet weights' sha256
(or that LSE was not scored: a number is never invented for missing weights),
and the metrics tables it was built from with their hashes.
"""
from __future__ import annotations

import sys
from html import escape
from importlib import metadata
from pathlib import Path

from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.metrics.registry import (CPBD, CSIM, F_LMD, FDD, FDD_FLAME, FID, FVD, GROUND_TRUTH, LPIPS, LVE, LVE_FLAME,
                                     LVE_FLAME_SQ, LVE_SQ, M_LMD, MOD, NO_SYNCNET, PSNR, SSIM)
from ksdiff.report.tables import fmt

TEMPLATE = "template.html"
VERSIONED = ("ksdiff", "torch", "numpy", "mediapipe", "opencv-contrib-python", "scipy", "librosa", "syncnet-python", "pandas", "pyarrow")


def software_versions() -> dict[str, str]:
    """Python and the packages that change numbers or figures, as installed now."""
    out = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# Which published LVE numbers compare with which column (the two differ by more than a constant).
LVE_PUBLISHED = ("Published tables: FaceFormer defines LVE as the L2 variant (per frame the largest L2 distance over "
                 "the lip vertices, averaged over frames; in mm on VOCASET and BIWI), so FaceFormer-style numbers "
                 "compare with the l2 column; the evaluation code of DiffSpeaker and CodeTalker squares that distance "
                 "(no square root), so their tables compare with the squared_l2 column. Either comparison also needs "
                 "the same lip vertices and units: the landmark LVE here is in inter-ocular units on MediaPipe's lip "
                 "landmarks, not mm on a registered mesh.")


def metric_definitions() -> dict[str, str]:
    """One sentence per metric, built from the protocol so the text cannot drift from the code."""
    p = PROTOCOL
    return {
        LVE: (f"Per frame the largest {p.lve_variant} distance over the {len(p.lve_lip_indices)} lip landmarks "
              f"({p.lve_lip_set}) between prediction and ground truth, averaged over frames; units: {p.lve_units}."),
        LVE_SQ: (f"The same per-frame maximum over the lip landmarks of the squared distance (no square root), "
                 f"averaged over frames; units: squared {p.lve_units}. {LVE_PUBLISHED}"),
        LVE_FLAME: (f"The same LVE ({p.lve_variant}) on FLAME meshes (coefficient backend deca), over the "
                    f"{p.lve_flame_lip_set}; units: {p.lve_flame_units}. Not comparable with the landmark LVE."),
        LVE_FLAME_SQ: (f"The squared LVE on the same FLAME lip vertices, in mm². {LVE_PUBLISHED}"),
        "sample_diversity": f"{p.sample_diversity_def}, on {p.diversity_signal}; methods with several samples only.",
        "temporal_diversity": f"{p.temporal_diversity_def}, on {p.diversity_signal}.",
        "beat_align": (f"Mean over speech onsets of exp(-d^2 / 2 sigma^2), d = frames to the nearest head-motion beat "
                       f"(local minimum of the smoothed head speed), sigma = {p.beat_sigma_frames:.4g} frames at {p.fps:g} fps."),
        "beat_align_corrected": (f"BeatAlign minus its mean over the same motion against the clip's onsets circularly "
                                 f"shifted by {p.beat_chance_shifts} seeded offsets of at least {p.beat_chance_min_shift_s:g} s: "
                                 "about 0 for head motion unrelated to the speech."),
        "lse_d": "SyncNet: minimum over offsets -15..15 of the mean audio-video embedding distance.",
        "lse_c": f"SyncNet confidence: {p.syncnet_lse_c}.",
        "lse_offset": f"SyncNet offset at the minimum distance; {p.syncnet_offset_sign}.",
        "lse_d_video": ("Ground truth only: LSE-D of the dataset's own video (face crops from its extracted landmarks), "
                        "as papers report GT; the LSE-D column re-renders the extracted motion like every method's."),
        "lse_c_video": ("Ground truth only: LSE-C of the dataset's own video; the gap to the LSE-C column is what "
                        "landmark extraction and re-rendering lose, so compare methods with the re-rendered row."),
        FDD: (f"Upper-face dynamics deviation as CodeTalker's cal_metric.py computes it: {p.fdd_def}; upper face: "
              f"{p.fdd_landmark_region} ({len(p.fdd_landmark_indices)} landmarks), neutral template: the clip's "
              "identity template, units: squared inter-ocular distances. Positive: the method's upper face moves "
              "less than ground truth's."),
        FDD_FLAME: (f"The same FDD on FLAME meshes over FLAME_masks.pkl's {' + '.join(p.fdd_flame_regions)} regions, "
                    "neutral = the ground-truth shape code with zero expression and jaw, in mm²."),
        "efid": (f"E-FID, set-level (one value per method over every scored test clip, no interval): {p.efid_def}. "
                 f"Space: {p.efid_space}."),
        MOD: (f"Mouth opening distance, ksdiff's definition {p.mod_version} (DiffPoseTalk published no MOD code, so "
              f"its numbers are not reproducible and do not compare): {p.mod_def}."),
        FID: f"FID, set-level (one value per method over its scored test clips, no interval): {p.fid_def} Frames: {p.fid_frames}.",
        FVD: f"FVD, set-level (no interval): {p.fvd_def}",
        LPIPS: f"LPIPS: {p.lpips_def}.",
        CSIM: f"CSIM (identity): {p.csim_def}.",
        PSNR: f"PSNR against the clip's recorded video: {p.psnr_def}. Frames: {p.video_reference}.",
        SSIM: f"SSIM against the clip's recorded video: {p.ssim_def}.",
        CPBD: f"CPBD sharpness, no reference: {p.cpbd_def}.",
        F_LMD: f"F-LMD, all 478 landmarks: {p.lmd_def}.",
        M_LMD: f"M-LMD, the 40 lip landmarks (pixels; the lips move with the head, no alignment): {p.lmd_def}.",
    }


def syncnet_statement(attrs_list: list[dict]) -> tuple[str, list[dict]]:
    """(sentence for the report, [{name, value}] rows for the weights table) from metrics attrs."""
    from ksdiff.metrics.syncnet_train import describe_check

    scored, checks = {}, {}
    for a in attrs_list:
        lse = a.get("lse") or {}
        if lse.get("scored"):
            scored[lse.get("sha256", "")] = lse.get("weights", "")
            checks[lse.get("sha256", "")] = lse.get("check")
    if not scored:
        return NO_SYNCNET + ".", [{"name": "SyncNet weights", "value": NO_SYNCNET}]
    rows = [{"name": "SyncNet weights", "value": f"{path} (sha256 {sha})"} for sha, path in scored.items()]
    note = "scored with the SyncNet weights listed under Software and weights"
    if len(scored) > 1:
        note += "; WARNING: methods were scored with different weights, LSE values are not comparable"
    for sha, check in checks.items():
        if check:  # our own expert: what its held-out check found (official weights carry none)
            note += f"; held-out check of these weights: {describe_check(check)}"
            rows.append({"name": "SyncNet check", "value": describe_check(check)})
    return note + ".", rows


def html_table(df, grey_columns=(), class_column: str | None = None, sortable: bool = False) -> str:
    """A plain HTML table of a display frame: floats to 4 significant digits, missing as '–'.

    The ground-truth row gets class 'gt'; cells of ``grey_columns`` class 'flagged'
    (metrics that failed the sanity check); with ``class_column``, that column's
    cells get class 'v-<value>' (the sanity verdicts). sortable: the page's script sorts it by
    any column (numbers by value, ascending first; missing values last).
    """
    import numpy as np
    import pandas as pd

    if df.empty:
        return "<p class='note'>No values.</p>"

    def text(v):
        if v is None or (isinstance(v, (float, np.floating)) and pd.isna(v)):
            return "–"
        return fmt(v) if isinstance(v, (float, np.floating)) else str(v)

    def cls(col, v):
        c = ["flagged"] if col in grey_columns else []
        if col == class_column:
            c.append("v-" + str(v).replace(" ", "-"))
        return f' class="{" ".join(c)}"' if c else ""

    def key(v):
        if not sortable or text(v) == "–":
            return ""
        return f' data-k="{escape(repr(float(v)) if isinstance(v, (int, float, np.number)) else str(v))}"'

    cols = list(df.columns)
    kinds = {c: "num" if pd.api.types.is_numeric_dtype(df[c]) else "text" for c in cols}
    head = "".join(f"<th{cls(c, '') if c in grey_columns else ''}{f' data-type={kinds[c]!r}' if sortable else ''}>"
                   f"{escape(str(c))}</th>" for c in cols)
    body = []
    for row in df.itertuples(index=False):
        tr = ' class="gt"' if str(row[0]) == GROUND_TRUTH else ""
        body.append(f"<tr{tr}>" + "".join(f"<td{cls(c, v)}{key(v)}>{escape(text(v))}</td>" for c, v in zip(cols, row)) + "</tr>")
    table = '<table class="sortable">' if sortable else "<table>"
    return table + "\n<thead><tr>" + head + "</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def board_html(t) -> str:
    """A leaderboard table (ksdiff.report.board.BoardTable) that the page's inline script sorts by any column.

    The methods are the first tbody (the only rows sorting moves), the reference rows a second one under a
    separating row. Every cell's data-k is its sort key, ascending = best first (ksdiff.report.board.ranking_key);
    a cell without one (no value) always sorts last. The column the table is ranked by starts as sorted.
    """
    cols = t.columns()
    lead = len(cols) - len(t.metrics)
    metric_of = dict(zip(range(lead, len(cols)), t.metrics))

    def attrs(classes, **kw):
        c = f' class="{" ".join(classes)}"' if classes else ""
        return c + "".join(f' {k.replace("_", "-")}="{escape(str(v))}"' for k, v in kw.items() if v is not None)

    head = []
    for i, (h, kind) in enumerate(cols):
        m = metric_of.get(i)
        cls = (["flagged"] if m in t.flags else []) + (["primary"] if m is not None and m == t.primary else []) \
            + (["txt"] if kind == "text" else [])
        head.append(f"<th{attrs(cls, data_type=kind, aria_sort='ascending' if 'primary' in cls else None)}"
                    f' title="sort the methods by this column, best first; again, worst first">{escape(h)}</th>')

    def tr(row):
        cells = []
        for (_, kind), s in zip(cols, t.shown(row)):
            cls = (["best"] if s.best else []) + (["flagged"] if s.flagged else []) + (["txt"] if kind == "text" else [])
            ci = f'<span class="ci">{escape(s.interval)}</span>' if s.interval else ""
            cells.append(f"<td{attrs(cls, data_k=s.key)}>{escape(s.value)}{ci}</td>")
        kind = {"reference": ' class="gt"', "floor": ' class="floor"'}.get(row.role, "")
        return f"<tr{kind}>" + "".join(cells) + "</tr>"

    methods = [tr(r) for r in t.rows if r.role == "method"]
    refs = [tr(r) for r in t.rows if r.role != "method"]
    sep = (f'<tr class="sep"><td colspan="{len(cols)}">Reference rows, not ranked: ground truth and the floors</td></tr>'
           if refs else "")
    return (f'<table class="sortable board" id="board-{escape(t.key)}">\n<thead><tr>' + "".join(head) + "</tr></thead>\n"
            + '<tbody class="methods">\n' + "\n".join(methods) + "\n</tbody>\n"
            + '<tbody class="refs">\n' + "\n".join([sep, *refs]) + "\n</tbody>\n</table>")


def render_html(context: dict) -> str:
    """Fill the package's Jinja2 template (autoescaped; tables pass as |safe HTML)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,  # a missing field is a bug, not an empty cell
    )
    return env.get_template(TEMPLATE).render(**context)
