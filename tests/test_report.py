"""The leaderboard from a small fixed metrics table: right means, intervals that
contain them, one row per method, a self-contained HTML that names the protocol,
and a percentile bootstrap that behaves (degenerate for constants, covers the mean)."""
import re

import numpy as np
import pandas as pd
import pytest

from ksdiff import config
from ksdiff.cli import main
from ksdiff.metrics.registry import ACROSS_SAMPLES, GROUND_TRUTH, LVE, NO_SYNCNET
from ksdiff.io import parquet
from ksdiff.metrics.protocol import PROTOCOL
from ksdiff.report.bootstrap import bootstrap_ci, clip_means
from ksdiff.report.build import build_report
from ksdiff.report.tables import summarise

CLIPS = [f"c{i}" for i in range(6)]
# Clip-level values by construction; samples scatter symmetrically around them.
LVE_A = np.array([0.10, 0.20, 0.30, 0.40, 0.50, 0.60])
LVE_B = np.array([0.05, 0.06, 0.07, 0.08, 0.09, 0.10])
TD = {GROUND_TRUTH: 3.0, "alpha": 1.0, "beta": 2.5}


def _rows(method):
    rows = []
    for i, c in enumerate(CLIPS):
        rows.append((method, c, 0, "temporal_diversity", TD[method] + 0.1 * (i - 2.5)))
        rows.append((method, c, 0, "beat_align", 0.5))
        if method != GROUND_TRUTH:
            lve = (LVE_A if method == "alpha" else LVE_B)[i]
            rows += [(method, c, 0, LVE, lve - 0.01), (method, c, 1, LVE, lve + 0.01)]
            rows.append((method, c, ACROSS_SAMPLES, "sample_diversity", 1.0 + i))
    return rows


def _write(path, method, rows=None, status="ok"):
    attrs = {"method": method, "dataset": "fixed", "clips": CLIPS, "skipped": [{"clip_id": "c9", "reason": "prediction missing"}],
             "undefined": [], "lse": {"scored": False, "note": NO_SYNCNET}, "protocol": PROTOCOL.as_dict()}
    if status != "ok":
        parquet.write_failure(path, "metrics", "no clip could be scored (test)", attrs=attrs)
        return path
    r = list(zip(*(rows or _rows(method))))
    parquet.write_table(path, "metrics", {"method": list(r[0]), "clip_id": list(r[1]), "sample": np.array(r[2], np.int16),
                                          "metric": list(r[3]), "value": np.array(r[4], float)}, attrs=attrs)
    return path


@pytest.fixture
def report(tmp_path):
    paths = [str(_write(tmp_path / f"{m}.parquet", m)) for m in (GROUND_TRUTH, "alpha", "beta")]
    md, html = tmp_path / "board.md", tmp_path / "board.html"
    build_report(config.defaults(), paths, str(md), str(html), str(tmp_path / "plots"))
    return md.read_text(), html.read_text(), tmp_path


def _table(md, after="## Leaderboard"):
    """The first Markdown table after the heading ``after`` (the leaderboard's overview by default;
    '### Lip shape' and the like: a family's table)."""
    lines = md.split(after + "\n")[1].strip().splitlines()
    lines = lines[next(i for i, ln in enumerate(lines) if ln.startswith("|")):]
    rows = []
    for ln in lines:  # the first contiguous Markdown table after the heading
        if not ln.startswith("|"):
            break
        rows.append(ln)
    head = [c.strip() for c in rows[0].strip("|").split("|")]
    body = [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]
    return head, body


def _cell(s):
    m = re.match(r"(?:\*\*)?([-\d.]+)(?:\*\*)? \[([-\d.]+), ([-\d.]+)\]", s)  # the best in bold
    return tuple(float(x) for x in m.groups())


def test_markdown_has_one_row_per_method_with_mean_and_interval(report):
    md, _, _ = report
    head, body = _table(md)  # the overview: every method once, then ground truth as a reference row
    assert [r[0] for r in body] == ["alpha", "beta", GROUND_TRUTH]
    assert head[:3] == ["Method", "Kind", "n clips"] and all(r[2] == "6" for r in body)
    assert [r[1] for r in body] == ["method", "method", "reference"]
    head, body = _table(md, "### Lip shape")  # ranked by LVE, lower first: beta, then alpha
    assert head[:3] == ["Rank", "Method", "n clips"] and [r[:2] for r in body] == [["1", "beta"], ["2", "alpha"],
                                                                                    ["reference", GROUND_TRUTH]]
    col = next(i for i, h in enumerate(head) if h.startswith("LVE"))
    mean, lo, hi = _cell(body[1][col])
    assert mean == pytest.approx(LVE_A.mean(), abs=1e-4)
    assert lo < mean < hi and lo >= LVE_A.min() and hi <= LVE_A.max()
    mean_b, *_ = _cell(body[0][col])
    assert mean_b == pytest.approx(LVE_B.mean(), abs=1e-4) and body[0][col].startswith("**")  # the best, in bold
    assert body[2][col] == "–"  # no LVE for ground truth
    head, body = _table(md, "### Head motion")
    rows = {r[1]: r for r in body}
    td = next(i for i, h in enumerate(head) if h.startswith("Temporal"))
    assert _cell(rows[GROUND_TRUTH][td])[0] == pytest.approx(3.0, abs=1e-4)
    ba = next(i for i, h in enumerate(head) if h.startswith("BeatAlign"))
    assert _cell(rows["alpha"][ba]) == (0.5, 0.5, 0.5)  # constant over clips: degenerate interval
    assert "prediction missing" in md  # skipped clips are listed


def test_html_is_self_contained_and_states_the_protocol(report):
    _, html, tmp = report
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", html)
    assert "data:image/png;base64," in html
    assert PROTOCOL.version in html and "lve_lip_indices" in html
    assert NO_SYNCNET in html  # never a made-up SyncNet hash
    assert "numpy" in html and "mediapipe" in html
    assert (tmp / "plots" / "metric_bars.png").stat().st_size > 1000


def test_samples_are_averaged_within_clips_before_bootstrapping():
    df = pd.DataFrame({
        "method": ["m"] * 11, "clip_id": ["a"] * 10 + ["b"], "sample": list(range(10)) + [0],
        "metric": ["x"] * 11, "value": [1.0] * 10 + [3.0],
    })
    cm = clip_means(df)
    assert cm.set_index("clip_id")["n_samples"].to_dict() == {"a": 10, "b": 1}
    s = summarise(df)
    assert s.loc[0, "mean"] == pytest.approx(2.0)  # mean of clip means, not of the 11 rows (1.18)
    assert s.loc[0, "n_clips"] == 2


def test_bootstrap_constant_is_degenerate():
    assert bootstrap_ci(np.full(20, 0.7)) == (pytest.approx(0.7), pytest.approx(0.7), pytest.approx(0.7))
    assert bootstrap_ci([4.2]) == (4.2, 4.2, 4.2)
    assert all(np.isnan(bootstrap_ci([])))


def test_bootstrap_of_a_normal_sample_covers_the_true_mean():
    rng = np.random.default_rng(1)
    mean, lo, hi = bootstrap_ci(rng.normal(3.0, 1.0, 200), seed=0)
    assert lo < 3.0 < hi
    assert hi - lo == pytest.approx(2 * 1.96 / np.sqrt(200), rel=0.2)
    # Coverage over repeated experiments is near the nominal 95% (percentile
    # bootstrap runs a little under it at n = 30).
    hits = [lo < 0.0 < hi for lo, hi in (bootstrap_ci(rng.normal(0.0, 1.0, 30), n=1000, seed=k)[1:] for k in range(200))]
    assert 0.85 <= np.mean(hits) <= 0.99


def test_failed_metrics_table_is_reported_not_fatal(tmp_path):
    paths = [str(_write(tmp_path / "alpha.parquet", "alpha")), str(_write(tmp_path / "beta.parquet", "beta", status="failed"))]
    md, html = tmp_path / "b.md", tmp_path / "b.html"
    build_report(config.defaults(), paths, str(md), str(html), str(tmp_path / "plots"))
    text = md.read_text()
    _, body = _table(text)
    assert [r[0] for r in body] == ["alpha"]
    assert "no clip could be scored (test)" in text and "no clip could be scored (test)" in html.read_text()


def test_report_cli(tmp_path):
    paths = [str(_write(tmp_path / f"{m}.parquet", m)) for m in (GROUND_TRUTH, "alpha")]
    md, html = tmp_path / "cli.md", tmp_path / "cli.html"
    rc = main(["report", "--metrics", *paths, "--out-md", str(md), "--out-html", str(html), "--plots-dir", str(tmp_path / "p")])
    assert rc == 0 and md.exists() and html.exists()


def test_report_states_what_the_syncnet_check_found():
    from ksdiff.report.html import syncnet_statement

    check = {"n_clips": 4, "shift_frames": 6, "sync_offset_within_1": 0.25, "shift_recovered_within_1": 0.0,
             "lse_c_sync_beats_mismatched": 0.5, "lse_c_sync_median": 0.12, "lse_c_mismatched_median": 0.13,
             "detects_sync": False}
    lse = {"scored": True, "weights": "/m/expert.pt", "sha256": "ab" * 32, "check": check}
    note, rows = syncnet_statement([{"lse": lse}, {"lse": lse}])
    assert "does NOT reliably detect lip sync" in note and "4 held-out clips" in note
    assert {"name": "SyncNet check", "value": rows[-1]["value"]} in rows and "0.12 vs mismatched audio 0.13" in rows[-1]["value"]
    note, _ = syncnet_statement([{"lse": {**lse, "check": {**check, "detects_sync": True}}}])
    assert "detects lip sync on 4" in note and "NOT" not in note
    note, rows = syncnet_statement([{"lse": {**lse, "check": None}}])  # official weights: no check stored
    assert "check" not in note and len(rows) == 1


# --------------------------------------------------------------------------- sanity in the report

SANE_CLIPS = [f"s{i}" for i in range(8)]
SPREAD = np.linspace(-0.04, 0.04, len(SANE_CLIPS))
# per method: (LSE-C, BeatAlign) clip levels; BeatAlign cannot tell ground truth from mismatched motion
SANE = {GROUND_TRUTH: (0.9, 0.3), "mismatched": (0.2, 0.3), "static": (0.1, 0.1), "alpha": (0.6, 0.35)}
CHECK_FAILED = {"n_clips": 8, "shift_frames": 6, "sync_offset_within_1": 0.25, "shift_recovered_within_1": 0.125,
                "lse_c_sync_beats_mismatched": 0.5, "lse_c_sync_median": 0.12, "lse_c_mismatched_median": 0.13,
                "detects_sync": False}


def _sane_tables(tmp_path, check=None):
    paths = []
    for m, (c, b) in SANE.items():
        rows = [(m, clip, 0, k, v + d) for clip, d in zip(SANE_CLIPS, SPREAD) for k, v in (("lse_c", c), ("beat_align", b))]
        if m != GROUND_TRUTH:
            rows += [(m, clip, 0, LVE, 0.2 + d) for clip, d in zip(SANE_CLIPS, SPREAD)]
        r = list(zip(*rows))
        lse = {"scored": True, "weights": "/m/expert.pt", "sha256": "cd" * 32, "check": check}
        parquet.write_table(tmp_path / f"{m}.parquet", "metrics", {
            "method": list(r[0]), "clip_id": list(r[1]), "sample": np.array(r[2], np.int16), "metric": list(r[3]),
            "value": np.array(r[4], float)}, attrs={"method": m, "dataset": "fixed", "clips": SANE_CLIPS, "lse": lse})
        paths.append(str(tmp_path / f"{m}.parquet"))
    return paths


def _sane_report(tmp_path, check=None, sanity=None):
    md, html = tmp_path / "s.md", tmp_path / "s.html"
    build_report(config.defaults(), _sane_tables(tmp_path, check), str(md), str(html), str(tmp_path / "plots"), sanity=sanity)
    return md.read_text(), html.read_text()


def test_report_opens_with_the_sanity_table_and_marks_the_undetermined_column(tmp_path):
    md, html = _sane_report(tmp_path)
    headings = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert headings[0] == "## Sanity" and headings[1] == "## Leaderboard"
    banner = md.split("## Sanity")[0]
    assert "BeatAlign ↑ is UNDETERMINED" in banner and "LSE-C" not in banner  # LSE-C passes: not named
    sanity = md.split("## Sanity")[1].split("## Leaderboard")[0]
    assert "| LSE-C ↑ | mismatched | 8 | 0.9 | 0.2 | 0.7 [0.7, 0.7] | pass |" in sanity
    assert "| BeatAlign ↑ | mismatched | 8 |" in sanity and "| undetermined |" in sanity
    assert "not applicable | ground truth is LVE's reference" in sanity
    head, _ = _table(md, "### Head motion")
    assert "BeatAlign ↑ ⚠ sanity: undetermined" in head and "LSE-C ↑" in _table(md, "### Lip sync")[0]  # LSE-C unmarked
    assert "Head motion: BeatAlign ↑ ⚠ sanity: undetermined" in _table(md)[0]
    assert "- ⚠ **BeatAlign ↑ ⚠ sanity: undetermined**: vs mismatched: the 95% interval of the paired difference contains 0" in md
    # HTML: the marked column's head and every one of its cells carry the grey class, no other column does
    assert html.index('id="sanity-banner"') < html.index('id="sanity"') < html.index('id="leaderboard"')
    board = html.split('id="board-head-motion"')[1].split("</table>")[0]
    assert re.search(r'<th class="flagged[^"]*"[^>]*>BeatAlign ↑ ⚠ sanity: undetermined</th>', board)
    assert len(re.findall(r'<td class="[^"]*flagged', board)) == len(SANE)
    assert len(re.findall(r'class="[^"]*flagged', board)) == len(SANE) + 1
    assert not re.search(r'class="[^"]*flagged', html.split('id="board-lip-sync"')[1].split("</table>")[0])
    assert '<td class="v-undetermined">undetermined</td>' in html and '<td class="v-pass">pass</td>' in html


def test_lse_with_weights_that_failed_their_check_is_marked_fail_and_named_in_the_banner(tmp_path):
    md, html = _sane_report(tmp_path, check=CHECK_FAILED)
    banner = md.split("## Sanity")[0]
    assert "LSE-C ↑ FAILS its sanity check" in banner
    assert "SyncNet weights /m/expert.pt (sha256 cdcdcdcdcdcd) FAILED their held-out check" in banner
    head, _ = _table(md, "### Lip sync")
    assert "LSE-C ↑ ⚠ sanity: fail" in head
    assert "- ⚠ **LSE-C ↑ ⚠ sanity: fail**: scored with SyncNet weights /m/expert.pt" in md
    assert re.search(r'<th class="flagged[^"]*"[^>]*>LSE-C ↑ ⚠ sanity: fail</th>', html) and "FAILED their held-out check" in html


def test_report_reads_the_sanity_table_it_is_given(tmp_path):
    from ksdiff.report.sanity import read_sanity, write_sanity

    paths = _sane_tables(tmp_path, check=CHECK_FAILED)
    out = tmp_path / "sanity.parquet"
    write_sanity(config.defaults(), paths[:3], str(out))  # ground truth, mismatched, static
    table, failed = read_sanity(out)
    assert set(table.loc[table.metric == "lse_c", "verdict"]) == {"fail"} and failed[0]["weights"] == "/m/expert.pt"
    # the tables now pass their check, but the given sanity table (the workflow's) decides
    md, _ = _sane_report(tmp_path, check={**CHECK_FAILED, "detects_sync": True}, sanity=str(out))
    assert "LSE-C ↑ ⚠ sanity: fail" in _table(md, "### Lip sync")[0]
    md, _ = _sane_report(tmp_path, check={**CHECK_FAILED, "detects_sync": True})
    assert "LSE-C ↑ ⚠ sanity" not in md and "LSE-C ↑ FAILS" not in md


def test_report_lists_the_lse_deviations_and_which_published_lve_is_which(tmp_path):
    from ksdiff.metrics.registry import LVE_SQ

    md, html = _sane_report(tmp_path)
    protocol = md.split("## Protocol")[1]
    for d in PROTOCOL.lse_deviations:
        assert f"- {d}" in protocol
    assert len(PROTOCOL.lse_deviations) == 5
    text = " ".join(PROTOCOL.lse_deviations)
    for words in ("S3FD", "crop_box_scale", f"{PROTOCOL.crop_box_scale:g}", "min_track", "min_face_size", "XVID",
                  f"{PROTOCOL.crop_median_frames}-frame kernel", "6 frames: 5; 7-8: 7; 9-10: 9; 11-12: 11", "speaking face"):
        assert words in text, words
    assert 'id="lse-deviations"' in html and "XVID" in html
    # the squared LVE's note says which published tables use which variant
    rows = [(m, c, 0, k, 0.1) for m in ("alpha",) for c in CLIPS for k in (LVE, LVE_SQ)]
    p = _write(tmp_path / "alpha.parquet", "alpha", rows)
    build_report(config.defaults(), [str(p)], str(tmp_path / "l.md"), str(tmp_path / "l.html"), str(tmp_path / "plots"))
    notes = (tmp_path / "l.md").read_text()
    assert "LVE (squared_l2) [inter-ocular units²] ↓" in notes
    assert "FaceFormer defines LVE as the L2 variant" in notes and "DiffSpeaker and CodeTalker squares" in notes


def test_leaderboard_shows_each_trained_methods_parameter_count(tmp_path):
    """The capacity column comes from the 'model' row ksdiff.training writes to train_log.csv."""
    from ksdiff.training.logs import CsvLog

    paths = [str(_write(tmp_path / f"{m}.parquet", m)) for m in (GROUND_TRUTH, "alpha", "beta")]
    models = tmp_path / "models"
    (models / "alpha").mkdir(parents=True)
    log = CsvLog(models / "alpha" / "train_log.csv", resume_step=0)
    log.write(0, "model", {"n_params": 1972338})
    log.write(0, "val", {"loss": 1.0})
    md = tmp_path / "board.md"
    build_report(config.defaults(), paths, str(md), str(tmp_path / "b.html"), str(tmp_path / "plots"), models=str(models))
    head, body = _table(md.read_text())
    col = head.index("Parameters")
    got = {row[0]: row[col] for row in body}
    assert got == {GROUND_TRUTH: "–", "alpha": "1,972,338", "beta": "–"}


def test_a_flagged_metric_is_named_and_faded_in_the_metric_bars(tmp_path):
    from PIL import Image

    from ksdiff.report.plots import metric_bars, panel_title

    summary = pd.DataFrame({
        "method": ["ground_truth", "m", "ground_truth", "m"], "metric": ["lse_c", "lse_c", "beat_align", "beat_align"],
        "mean": [1.0, 0.8, 0.3, 0.3], "lo": [0.9, 0.7, 0.2, 0.2], "hi": [1.1, 0.9, 0.4, 0.4],
    })
    flags = {"beat_align": ("undetermined", "the interval contains 0")}
    assert "sanity: undetermined" in panel_title("beat_align", flags)
    assert "sanity" not in panel_title("lse_c", flags) and "sanity" not in panel_title("beat_align", None)
    plain = np.asarray(Image.open(metric_bars(summary, tmp_path / "plain.png")).convert("RGB"), float)
    marked = np.asarray(Image.open(metric_bars(summary, tmp_path / "marked.png", flags)).convert("RGB"), float)
    assert plain.shape == marked.shape and np.abs(plain - marked).mean() > 0.1  # the flagged panel looks different


def test_report_states_which_numerics_scored_it_and_warns_when_they_differ(tmp_path):
    pinned = {"mode": "pinned", "aten_capability": "AVX2", "onednn": False, "MKL_CBWR": "AVX2,STRICT",
              "OPENBLAS_CORETYPE": "Haswell"}
    paths = []
    for m, info in ((GROUND_TRUTH, pinned), ("alpha", pinned), ("beta", {"mode": "fast", "aten_capability": "AVX512"})):
        p = _write(tmp_path / f"{m}.parquet", m)
        t = parquet.read_table(p, "metrics")
        parquet.write_table(p, "metrics", t.table.replace_schema_metadata(None), attrs={**t.attrs, "numerics": info})
        paths.append(str(p))
    md = tmp_path / "b.md"
    build_report(config.defaults(), paths, str(md), str(tmp_path / "b.html"), str(tmp_path / "plots"))
    text = md.read_text()
    assert "numerics pinned (ATen AVX2, oneDNN off" in text and "numerics fast (ATen AVX512)" in text
    assert "WARNING: methods scored in different modes" in text
