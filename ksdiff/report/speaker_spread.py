"""How much ground truth's own head moves, per split and speaker: the context of 'Temporal diversity'.

Temporal diversity is ranked by closeness to ground truth's value on the test
clips. That value is a property of the test speakers: on the demo corpus the
held-out speaker moves its head less than any training speaker (2.32 deg
against 2.99-5.28), and the methods trained here are given no speaker style, so
a method that reproduces the training speakers' spread ranks worse than one
that happens to move less. ``context`` measures this per run from the
extracted ground truth, for the leaderboard's note under the column.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ksdiff.metrics.motion import head_pose
from ksdiff.io import parquet
from ksdiff.metrics.diversity import temporal_diversity
from ksdiff.render.video import samples_of, select_sample

log = logging.getLogger(__name__)

MAX_CLIPS = 200  # per split: a report on VoxCeleb2 reads a few hundred tables, not a million


def clip_temporal_diversity(table: parquet.Table) -> float:
    """Temporal diversity of one coefficient table as the leaderboard takes it: the mean over its samples
    (ground truth has one). Raises ValueError when a sample has no valid frame."""
    return float(np.mean([temporal_diversity(head_pose(select_sample(table, s))) for s in samples_of(table)]))


def ground_truth_spread(results: Path, max_clips: int = MAX_CLIPS) -> pd.DataFrame:
    """Per split and speaker: clips read (n_clips) and their mean temporal diversity (td, deg) of the extracted pose.

    At most ``max_clips`` clips per split, evenly spaced over the sorted clip ids
    (deterministic); clips QC marked unusable and clips whose coefficients are
    missing or failed are left out.
    """
    sp = parquet.read_table(Path(results) / "splits.parquet", "splits")
    if not sp.ok:
        raise ValueError(f"splits.parquet is {sp.status}: {sp.reason}")
    clips = sp.to_pandas().sort_values("clip_id")
    qc_path = Path(results) / "qc.parquet"
    if qc_path.exists():  # as the leaderboard's ground-truth row: clips QC marked unusable are not scored
        qc = parquet.read_table(qc_path, "qc").to_pandas()
        clips = clips[~clips.clip_id.isin(qc.loc[~qc.usable.astype(bool), "clip_id"])]
    rows = []
    for split, g in clips.groupby("split"):
        before = len(rows)
        pick = g.iloc[np.unique(np.linspace(0, len(g) - 1, min(len(g), max_clips)).round().astype(int))]
        for clip, speaker in zip(pick.clip_id, pick.speaker_id):
            path = Path(results) / "coeffs" / f"{clip}.parquet"
            t = parquet.read_table(path, "coeffs") if path.exists() else None
            if t is None or not t.ok:
                continue
            try:
                rows.append({"split": split, "speaker_id": speaker, "td": clip_temporal_diversity(t)})
            except ValueError as e:  # no valid frame
                log.debug("%s: %s", clip, e)
        if len(rows) == before:
            log.info("no ground-truth pose read for split %s", split)
    df = pd.DataFrame(rows, columns=["split", "speaker_id", "td"])
    return df.groupby(["split", "speaker_id"], as_index=False).agg(n_clips=("td", "size"), td=("td", "mean"))


def context(results: Path, max_clips: int = MAX_CLIPS) -> str:
    """A sentence comparing ground truth's temporal diversity on the test and training speakers ('' without both)."""
    try:
        per = ground_truth_spread(results, max_clips)
    except (OSError, ValueError) as e:
        log.warning("temporal diversity context not measured: %s", e)
        return ""
    test, train = per[per.split == "test"], per[per.split == "train"]
    if test.empty or train.empty:
        return ""

    def mean(d):  # over clips, as the leaderboard's ground-truth row
        return float((d.td * d.n_clips).sum() / d.n_clips.sum())

    if len(test) == 1:
        who = f"the test speaker {test.speaker_id.iloc[0]}"
    else:
        who = f"the {len(test)} test speakers ({test.td.min():.2f} to {test.td.max():.2f} per speaker)"
    val = per[per.split == "val"]
    text = (f"Ground truth's own temporal diversity depends on the speaker: {mean(test):.2f} deg on {who}, "
            f"{mean(train):.2f} on the {len(train)} training speakers ({train.td.min():.2f} to {train.td.max():.2f} "
            f"per speaker; {int(train.n_clips.sum())} clips read)"
            + (f", {mean(val):.2f} on the validation speaker{'s' if len(val) > 1 else ''}." if not val.empty else "."))
    if len(test) < 5:
        text += (" The methods trained here are given no speaker style (speech, transcript and the clip's reference "
                 "frame only), so with this few test speakers 'closer to ground truth' also measures whether a "
                 "method's spread happens to suit them.")
    return text
