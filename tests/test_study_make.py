"""`ksdiff study make` from a finished run: each method's predictions and ground truth rendered with the
clip's reference face and audio, re-encoded to one size; a rebuild keeps what is current; clear refusals."""
import json

import numpy as np
import pytest

from ksdiff import config
from ksdiff.cli import main
from ksdiff.io.video import probe, read_frames
from ksdiff.study.design import DesignError
from ksdiff.study.make import make_study
from tests.conftest import make_clip
from tests.study_sim import CLIPS, T, fabricate_run


@pytest.fixture
def run(tmp_path):
    return fabricate_run(tmp_path)


def test_a_study_from_a_finished_run_renders_every_method_with_the_clips_face_and_audio(tmp_path, run):
    res, pred = run
    cfg = config.defaults(study={"clips_per_rater": 2, "raters": 2, "catch_trials": 1})
    out = tmp_path / "studies" / "run"
    preds = [f"{m}={pred / m}" for m in ("ours", "regression", "mismatched")]
    assert main(["study", "make", "--results", str(res), "--predictions", *preds, "--out", str(out),
                 "--opts", json.dumps(cfg)]) == 0
    design = json.loads((out / "design.json").read_text())
    assert design["methods"] == ["ours", "regression"] and design["clips"] == CLIPS
    provenance = json.loads((out / "videos.json").read_text())
    assert {(p["method"], p["clip"]) for p in provenance.values()} == {
        (m, c) for m in ("ours", "regression", "ground_truth", "mismatched") for c in CLIPS}
    frames = {}
    for name, p in provenance.items():
        info = probe(out / "site" / "videos" / name)
        assert (info.width, info.height) == (160, 160) and info.has_audio and info.n_frames == T
        assert p["audio"] == "own"  # rendered with the clip's audio
        frames[(p["method"], p["clip"])] = read_frames(out / "site" / "videos" / name).astype(float)
    # the methods' motion differs, so their videos do; each is the reference face, not a blank
    assert np.abs(frames[("ours", "c0")] - frames[("ground_truth", "c0")]).mean() > 0.5
    assert np.abs(frames[("regression", "c0")] - frames[("ours", "c0")]).mean() > 0.5
    assert frames[("ground_truth", "c0")].std() > 20

    # a rebuild keeps current videos; a new design drops the videos it no longer shows
    stamp = {p.name: p.stat().st_mtime_ns for p in (out / "site" / "videos").glob("*.mp4")}
    make_study(config.defaults(study={"clips_per_rater": 2, "raters": 2, "catch_trials": 1}), str(out),
               results=str(res), predictions=preds)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "site" / "videos").glob("*.mp4")} == stamp
    make_study(config.defaults(study={"clips_per_rater": 2, "raters": 2, "catch_trials": 1, "methods": ["ours", "regression"],
                                      "clips": ["c1"]}), str(out), results=str(res), predictions=preds)
    assert len(list((out / "site" / "videos").glob("*.mp4"))) == 4


def test_refusals_name_what_is_missing(tmp_path):
    videos = tmp_path / "videos"
    for m in ("ground_truth", "ours", "regression"):
        make_clip(videos / m / "c0.mp4", seconds=0.3)
    cfg = config.defaults(study={"raters": 2})
    with pytest.raises(DesignError, match=r"no videos of \['mismatched'\]"):
        make_study(cfg, str(tmp_path / "s"), videos=[str(videos)])
    make_clip(videos / "mismatched" / "c0.mp4", seconds=0.3)
    with pytest.raises(DesignError, match=r"clips \['c9'\] lack a video"):
        make_study(config.defaults(study={"raters": 2, "clips": ["c9"]}), str(tmp_path / "s"), videos=[str(videos)])
    make_clip(videos / "ours" / "c1.mp4", seconds=0.3)  # a clip not every method has is left out
    assert make_study(cfg, str(tmp_path / "s"), videos=[str(videos)]) == 0
    assert json.loads((tmp_path / "s" / "design.json").read_text())["clips"] == ["c0"]
