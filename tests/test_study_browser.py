"""A generated study taken in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium):
the page loads from file:// with no network resource, its H.264/AAC videos play to their end before the
questions unlock, progress is shown, every item is rated, the ratings download as JSON, and
`ksdiff study score` reads that file back into the leaderboard's user-study section. Served over HTTP
by `ksdiff study serve`, the same site plays and sends its ratings to the server.

KSDIFF_STUDY_SCREENSHOTS=docs/images saves the two README screenshots (a study page, the scored section)."""
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from ksdiff import config
from ksdiff.cli import main
from ksdiff.io import parquet
from ksdiff.io.video import probe, write_video
from ksdiff.report.build import build_report
from ksdiff.study.serve import create_app
from tests import study_sim
from tests.render_fixtures import face_photo
from tests.test_report import _write

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (envs/requirements.txt)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="no chromium + chromedriver (apt-get install chromium chromium-driver; envs/install.sh does)")

# What the browser rater answers, by the key: they see the differences the study is about.
MOS = {"ground_truth": 5, "mismatched": 1, "ours": 4, "regression": 3, "baseline": 2}
PREFER = ["ground_truth", "ours", "regression", "baseline", "mismatched"]


def _sources(tmp_path: Path) -> list[str]:
    """`study make` arguments: a finished run (ground truth, ours, regression, mismatched: rendered) and an
    external system's folder of videos (baseline: another frame size and no audio track, as some have)."""
    res, pred = study_sim.fabricate_run(tmp_path)
    ref, _ = face_photo()
    for clip in study_sim.CLIPS:
        write_video(tmp_path / "external" / f"{clip}.mp4", [cv2.resize(ref, (120, 120))] * study_sim.T, study_sim.FPS)
    return ["--results", str(res), "--predictions", *(f"{m}={pred / m}" for m in ("ours", "regression", "mismatched")),
            "--videos", f"baseline={tmp_path / 'external'}"]


@pytest.fixture
def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio", "--window-size=1200,900"):
        opts.add_argument(a)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.downloads = downloads
    yield drv
    drv.quit()


def _shot(drv, path: Path):
    drv.save_screenshot(str(path))
    if os.environ.get("KSDIFF_STUDY_SCREENSHOTS"):
        out = Path(os.environ["KSDIFF_STUDY_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.name)


def _answer(kind, methods):
    if kind == "mos":
        return [str(MOS[methods[0]])] * 3
    return ["left" if PREFER.index(methods[0]) < PREFER.index(methods[1]) else "right"] * 3


def test_a_rater_takes_the_study_in_chromium_and_study_score_reads_the_file(tmp_path, browser):
    study = tmp_path / "studies" / "demo"
    cfg = config.defaults(study={"kind": "both", "clips_per_rater": 2, "raters": 12, "catch_trials": 1,
                                 "reference": "ours", "height": 240, "bootstrap_samples": 300})
    assert main(["study", "make", *_sources(tmp_path), "--out", str(study), "--opts", json.dumps(cfg)]) == 0
    design = json.loads((study / "design.json").read_text())
    site = study / "site"
    page = (site / "index.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from the network
    assert not any(m in page for m in MOS)  # blind: the page never names a method
    for v in (site / "videos").glob("*.mp4"):
        info = probe(v)
        assert (info.width, info.height) == (240, 240) and info.has_audio  # one size (study.height); baseline got the clip's audio
        with av.open(str(v)) as c:
            assert c.streams.video[0].codec_context.name == "h264" and c.streams.audio[0].codec_context.name == "aac"

    drv = browser
    t0 = time.time()
    drv.get((site / "index.html").as_uri() + "?rater=r01")
    drv.find_element(By.ID, "begin").click()
    key = {it["id"]: it for it in design["raters"][0]["items"]}
    order = [it["id"] for it in design["raters"][0]["items"]]
    shot_taken = False
    for n, item_id in enumerate(order, 1):
        it = key[item_id]
        assert drv.find_element(By.ID, "progress-text").text == f"Item {n} of {len(order)}"
        radios = drv.find_elements(By.CSS_SELECTOR, "#questions input")
        assert radios and all(not r.is_enabled() for r in radios)  # no rating before watching
        assert not drv.find_element(By.ID, "next").is_enabled()
        for i, btn in enumerate(drv.find_elements(By.CSS_SELECTOR, "#videos button.play")):
            btn.click()
            WebDriverWait(drv, 15).until(lambda d, i=i: d.find_elements(By.CSS_SELECTOR, "#videos .state")[i].text == "watched")
            played = drv.execute_script(
                "const v = document.querySelectorAll('#videos video')[arguments[0]];"
                "return [v.videoWidth, v.duration, v.currentTime, v.ended, v.error && v.error.code];", i)
            assert played[0] == 240 and played[1] > 0.7 and played[3] and played[4] is None, played
        for crit, value in zip([c["name"] for c in design["criteria"]], _answer(it["kind"], it["methods"])):
            drv.find_element(By.CSS_SELECTOR, f"#questions input[name='{crit}'][value='{value}']").click()
        if it["kind"] == "ab" and not it["catch"] and not shot_taken:
            _shot(drv, tmp_path / "study_page.png")
            shot_taken = True
        drv.find_element(By.ID, "next").click()
        if n == 2:  # a rater who closes the page and comes back resumes where they were
            drv.refresh()
            drv.find_element(By.ID, "begin").click()
            assert drv.find_element(By.ID, "progress-text").text == f"Item 3 of {len(order)}"
    assert drv.find_element(By.ID, "done").is_displayed()
    drv.find_element(By.ID, "download").click()
    name = f"ratings_{design['study_id']}_r01.json"
    WebDriverWait(drv, 10).until(lambda d: (d.downloads / name).exists())
    took = time.time() - t0

    doc = json.loads((drv.downloads / name).read_text())
    assert doc["study_id"] == design["study_id"] and doc["rater_id"] == "r01" and doc["finished_at"]
    assert [r["item"] for r in doc["ratings"]] == order
    for r in doc["ratings"]:
        assert r["answered_ms"] >= max(r["ended_ms"]) >= r["shown_ms"] >= 0 and min(r["plays"]) == 1
        expect = _answer(key[r["item"]]["kind"], key[r["item"]]["methods"])
        assert [str(v) for v in r["answers"].values()] == expect  # every answer as clicked
    assert took < 60

    ratings = study / "ratings"
    shutil.copy(drv.downloads / name, ratings / name)
    rng = np.random.default_rng(0)
    for r in design["raters"][1:]:  # the other slots: simulated raters, one of them careless
        study_sim.write(ratings, study_sim.answer(
            design, r["id"], lambda a, b: 0.75 if PREFER.index(a) < PREFER.index(b) else 0.25,
            lambda m: MOS[m] - 0.3, rng, careless=r["id"] == "r07"))
    assert main(["study", "score", "--study", str(study), "--opts", json.dumps(cfg)]) == 0
    t = parquet.read_table(study / "scores.parquet", "study_scores")
    raters = {r["rater"]: r for r in t.attrs["raters"]}
    assert raters["r01"]["catch_passed"] == 2 and not raters["r01"]["excluded"] and raters["r07"]["excluded"]
    df = t.to_pandas()
    bt = df[(df["statistic"] == "bt_strength") & (df["criterion"] == "lip_sync")].set_index("method")["value"]
    assert bt.idxmax() == "ours"

    # the same folder served over HTTP by the lab's collection server (`ksdiff study serve`): videos play,
    # and the page sends the ratings it has to the server, which stores them beside the downloaded ones
    server = make_server("127.0.0.1", 0, create_app(study), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        drv.get(f"http://127.0.0.1:{server.server_port}/index.html?rater=r02")
        drv.find_element(By.ID, "begin").click()
        first = design["raters"][1]["items"][0]
        for i, btn in enumerate(drv.find_elements(By.CSS_SELECTOR, "#videos button.play")):
            btn.click()
            WebDriverWait(drv, 15).until(lambda d, i=i: d.find_elements(By.CSS_SELECTOR, "#videos .state")[i].text == "watched")
        for crit, value in zip([c["name"] for c in design["criteria"]], _answer(first["kind"], first["methods"])):
            drv.find_element(By.CSS_SELECTOR, f"#questions input[name='{crit}'][value='{value}']").click()
        drv.find_element(By.ID, "next").click()
        drv.execute_script("send()")  # the done page's Send button calls this; r02 stops after one item
        status = lambda d: d.find_element(By.ID, "send-status").get_attribute("textContent")  # noqa: E731  (on a hidden screen)
        WebDriverWait(drv, 10).until(lambda d: status(d).startswith(("sent", "not sent")))
        assert status(drv) == "sent, thank you"
    finally:
        server.shutdown()
    sent = [json.loads(p.read_text()) for p in (study / "ratings").glob("*_r02_*.json")]
    assert len(sent) == 1 and [r["item"] for r in sent[0]["ratings"]] == [first["id"]]

    # the scored section of the leaderboard, in the same browser
    metrics = [str(_write(tmp_path / f"{m}.parquet", m)) for m in ("ground_truth", "alpha")]
    html = tmp_path / "leaderboard.html"
    build_report(config.defaults(), metrics, str(tmp_path / "leaderboard.md"), str(html), str(tmp_path / "plots"),
                 studies=[str(study / "scores.parquet")])
    drv.set_window_size(1200, 1500)
    drv.get(html.as_uri())
    drv.execute_script("document.getElementById('study-demo').scrollIntoView()")
    assert "Excluded r07" in drv.find_element(By.TAG_NAME, "body").text
    _shot(drv, tmp_path / "study_scores.png")
