"""`ksdiff study make`: method videos -> a self-contained study folder.

studies/{name}/
  site/          the folder to upload (or open from disk): index.html + videos/*.mp4
  design.json    the key: every rater slot's items with their methods and sides (kept from raters)
  videos.json    where each page video came from (source file, audio, size)
  links.txt      one link per rater slot (index.html?rater=r01, ...)
  ratings/       put the raters' downloaded files here for `ksdiff study score`
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ksdiff.io.files import atomic_write_bytes
from ksdiff.study import design as study_design
from ksdiff.study.design import GROUND_TRUTH, MISMATCHED, DesignError
from ksdiff.study.media import Sources, encode, frame_size, parse_folders, parse_predictions
from ksdiff.study.page import write_page

log = logging.getLogger(__name__)


def choose(sources: Sources, scfg: dict) -> tuple[list[str], list[str]]:
    """(methods, clips) of the study: the configured ones (checked), else every method and shared clip."""
    have = sources.methods()
    methods = list(scfg["methods"]) or sorted(have - {GROUND_TRUTH, MISMATCHED})
    needed = list(dict.fromkeys(methods + [GROUND_TRUTH] + ([MISMATCHED] if scfg["catch_trials"] else [])))
    missing = [m for m in needed if m not in have]
    if missing:
        raise DesignError(f"no videos of {missing} (found methods {sorted(have)}); ground truth is always needed, "
                          f"and the mismatched floor when catch_trials > 0")
    shared = set.intersection(*(sources.clips(m) for m in needed))
    if scfg["clips"]:
        absent = [c for c in scfg["clips"] if c not in shared]
        if absent:
            raise DesignError(f"clips {absent} lack a video of at least one of {needed}")
        return methods, list(scfg["clips"])
    return methods, sorted(shared)


def make_study(cfg: dict, out: str | None = None, videos: list[str] | None = None, results: str | None = None,
               predictions: list[str] | None = None) -> int:
    scfg = cfg["study"]
    root = Path(out) if out else Path(scfg["dir"]) / scfg["name"]
    scfg = dict(scfg, name=root.name) if out else scfg  # the folder names the study
    sources = Sources(cfg, parse_folders(videos), Path(results) if results else None, parse_predictions(predictions),
                      root / "rendered")
    methods, clips = choose(sources, scfg)
    design = study_design.build_design(methods, clips, scfg)
    site = root / "site"
    vdir = site / "videos"
    vdir.mkdir(parents=True, exist_ok=True)
    (root / "ratings").mkdir(exist_ok=True)
    needed = study_design.needed_videos(design)
    size = frame_size(sources.path(GROUND_TRUTH, clips[0]), scfg["height"])
    for stale in set(p.name for p in vdir.glob("*.mp4")) - set(needed):  # another design's videos
        (vdir / stale).unlink()
    provenance = {}
    for i, (name, (method, clip)) in enumerate(sorted(needed.items(), key=lambda kv: kv[1])):
        src = sources.path(method, clip)
        gt = sources.path(GROUND_TRUTH, clip)
        if (vdir / name).exists():
            provenance[name] = {"method": method, "clip": clip, "source": str(src), "kept": True}
            continue
        log.info("[%d/%d] %s %s -> %s", i + 1, len(needed), method, clip, name)
        provenance[name] = {"method": method, "clip": clip, **encode(src, vdir / name, size, int(scfg["crf"]), gt)}
    design["video_size"] = list(size)
    atomic_write_bytes(root / "design.json", json.dumps(design, indent=1).encode())
    atomic_write_bytes(root / "videos.json", json.dumps(provenance, indent=1).encode())
    write_page(design, site)
    links = "".join(f"index.html?rater={r['id']}\n" for r in design["raters"])
    atomic_write_bytes(root / "links.txt", links.encode())
    log.info("study %s: %d methods, %d clips, %d rater slots, %d videos at %dx%d -> %s (upload %s)",
             design["study_id"], len(methods), len(clips), len(design["raters"]), len(needed), *size, root, site)
    return 0
