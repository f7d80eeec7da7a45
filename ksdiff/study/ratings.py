"""Raters' files -> one row per (item, criterion), every answer checked against the study's key.

A file is rejected whole, with the reason, when it is not JSON, not a ratings file, from another study
(its study id differs: a file of an earlier design must not be scored against this key), or from a rater
slot the study does not have. Inside an accepted file, an answer that does not fit its item (unknown
item, wrong kind, missing criterion, a score outside 1-5) is dropped and counted, and every other answer
is kept; so is a file that stops part way (a rater who gave up). The same item answered twice by one
rater (a file sent twice) counts once, the first time.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

FORMAT = "ksdiff-study-ratings"
COLUMNS = ["rater", "file", "item", "kind", "clip", "catch", "criterion", "left", "right", "choice", "score",
           "winner", "loser", "shown_ms", "answered_ms"]


@dataclass
class Read:
    rows: pd.DataFrame
    rejected: list[dict] = field(default_factory=list)  # {file, reason}
    files: list[dict] = field(default_factory=list)  # accepted: {file, rater, kept, dropped, notes}


def expand(paths: list[str]) -> list[Path]:
    """Files, and the *.json files of folders, in a stable order."""
    out = []
    for p in map(Path, paths):
        out += sorted(p.glob("*.json")) if p.is_dir() else [p]
    return out


def _answer_rows(rec, item: dict, criteria: list[str]) -> tuple[list[dict], str]:
    """The rows of one answered item, or ([], why it is dropped)."""
    if not isinstance(rec, dict):
        return [], "a rating that is not an object"
    if rec.get("kind") not in (None, item["kind"]):
        return [], f"item {item['id']}: kind {rec.get('kind')!r}, the key says {item['kind']!r}"
    ans = rec.get("answers")
    if not isinstance(ans, dict):
        return [], f"item {item['id']}: no answers"
    rows = []
    for c in criteria:
        v = ans.get(c)
        if item["kind"] == "ab":
            if v not in ("left", "right"):
                return [], f"item {item['id']}: {c} is {v!r}, not 'left' or 'right'"
            left, right = item["methods"]
            win, lose = (left, right) if v == "left" else (right, left)
            rows.append({"criterion": c, "left": left, "right": right, "choice": v, "score": float("nan"),
                         "winner": win, "loser": lose})
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v not in (1, 2, 3, 4, 5):
                return [], f"item {item['id']}: {c} is {v!r}, not a score 1-5"
            rows.append({"criterion": c, "left": item["methods"][0], "right": "", "choice": "", "score": float(v),
                         "winner": "", "loser": ""})
    times = {k: float(rec[k]) if isinstance(rec.get(k), (int, float)) else float("nan") for k in ("shown_ms", "answered_ms")}
    return [dict(r, item=item["id"], kind=item["kind"], clip=item["clip"], catch=bool(item["catch"]), **times)
            for r in rows], ""


def file_problem(doc, design: dict) -> str:
    """Why a parsed file cannot be scored against this study ('' when it can)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return f"not a ksdiff study ratings file (format {doc.get('format') if isinstance(doc, dict) else None!r})"
    if doc.get("study_id") != design["study_id"]:
        return (f"ratings of study {doc.get('study_id')!r}, not of this study {design['study_id']!r} "
                "(another design or an earlier build)")
    if doc.get("rater_id") not in {r["id"] for r in design["raters"]}:
        return f"rater {doc.get('rater_id')!r} is not a rater slot of this study"
    if not isinstance(doc.get("ratings"), list):
        return "no list of ratings"
    return ""


def read_ratings(paths: list[str], design: dict) -> Read:
    items = {r["id"]: {it["id"]: it for it in r["items"]} for r in design["raters"]}
    criteria = [c["name"] for c in design["criteria"]]
    rows, rejected, files, seen = [], [], [], set()
    for path in expand(paths):
        name = str(path)
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            rejected.append({"file": name, "reason": f"not a readable JSON file ({type(e).__name__}: {e})"})
            continue
        why = file_problem(doc, design)
        if why:
            rejected.append({"file": name, "reason": why})
            continue
        rater = doc["rater_id"]
        kept, notes = 0, []
        for rec in doc["ratings"]:
            item = items[rater].get(rec.get("item")) if isinstance(rec, dict) else None
            if item is None:
                notes.append(f"item {rec.get('item') if isinstance(rec, dict) else rec!r} is not one of rater {rater}'s items")
                continue
            if (rater, item["id"]) in seen:
                notes.append(f"item {item['id']} answered again (first answer kept)")
                continue
            got, why = _answer_rows(rec, item, criteria)
            if why:
                notes.append(why)
                continue
            seen.add((rater, item["id"]))
            rows += [dict(r, rater=rater, file=name) for r in got]
            kept += 1
        files.append({"file": name, "rater": rater, "kept": kept, "dropped": len(notes), "notes": notes[:10],
                      "finished": bool(doc.get("finished_at"))})
        for n in notes[:10]:
            log.warning("%s: %s", name, n)
    for r in rejected:
        log.error("rejected %s: %s", r["file"], r["reason"])
    return Read(pd.DataFrame(rows, columns=COLUMNS), rejected, files)
