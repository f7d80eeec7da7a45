"""The lab's collection server: serves the site (videos with byte ranges, as players ask), stores a valid
ratings file under a new name, refuses another study's or a malformed one with the reason."""
import json

import numpy as np

from ksdiff import config
from ksdiff.study.design import build_design
from ksdiff.study.page import write_page
from ksdiff.study.serve import create_app
from tests import study_sim


def test_collection_server_serves_the_site_and_keeps_valid_ratings_only(tmp_path):
    cfg = config.defaults(study={"raters": 2, "kind": "mos", "catch_trials": 0})
    design = build_design(["ours", "regression"], ["c0"], dict(cfg["study"], name="lab"))
    root = tmp_path / "lab"
    (root / "site" / "videos").mkdir(parents=True)
    (root / "design.json").write_text(json.dumps(design))
    write_page(design, root / "site")
    (root / "site" / "videos" / "v1.mp4").write_bytes(bytes(range(256)) * 4)
    client = create_app(root).test_client()

    page = client.get("/")
    assert page.status_code == 200 and design["study_id"].encode() in page.data
    part = client.get("/videos/v1.mp4", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.data == bytes(range(10, 20))
    assert client.get("/../design.json").status_code == 404  # the key is not served

    doc = study_sim.answer(design, "r01", None, {"ours": 4, "regression": 2}.get, np.random.default_rng(0))
    ok = client.post("/ratings", json=doc)
    assert ok.status_code == 200 and ok.json["ok"]
    assert client.post("/ratings", json=doc).status_code == 200  # sent twice: both kept, scoring counts once
    stored = sorted((root / "ratings").glob("*.json"))
    assert len(stored) == 2 and json.loads(stored[0].read_text()) == doc

    other = client.post("/ratings", json=dict(doc, study_id="lab-0000000000"))
    assert other.status_code == 400 and "not of this study" in other.json["reason"]
    junk = client.post("/ratings", data="{not json", content_type="application/json")
    assert junk.status_code == 400 and "not JSON" in junk.json["reason"]
    assert client.post("/ratings", json=dict(doc, rater_id="r99")).json["reason"].startswith("rater 'r99'")
    assert len(list((root / "ratings").glob("*.json"))) == 2
