"""The leaderboard's HTML in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium): it
loads from file:// with no network resource, shows one table per metric family ranked by the family's primary
metric with ground truth and the floors below the methods, and a click on a column head sorts the methods by
that column, best first, a second click worst first, while the reference rows stay where they are.

KSDIFF_REPORT_SCREENSHOTS=<folder> saves a screenshot of the leaderboard section it sorted."""
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ksdiff import config
from ksdiff.metrics.registry import GROUND_TRUTH, LVE, MOD
from ksdiff.report.build import build_report
from tests.test_report import CLIPS, _write

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (envs/requirements.txt)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="no chromium + chromedriver (apt-get install chromium chromium-driver; envs/install.sh does)")

# Clip-level values per method: LVE ranks alpha < beta < gamma, MOD the other way round, so sorting the lip
# shape table by MOD visibly reorders it; ground truth and the floors are better or worse than every method.
LEVELS = {  # method: (LVE, MOD, temporal diversity)
    GROUND_TRUTH: (None, 0.0, 3.0),
    "mismatched": (0.09, 0.08, 2.9),
    "static": (0.08, 0.07, 0.0),
    "gamma": (0.05, 0.01, 2.0),
    "alpha": (0.02, 0.03, 2.5),
    "beta": (0.03, 0.02, 3.4),
}
SPREAD = np.linspace(-0.004, 0.004, len(CLIPS))


def _rows(method):
    lve, mod, td = LEVELS[method]
    rows = [(method, c, 0, "temporal_diversity", td + 10 * d) for c, d in zip(CLIPS, SPREAD)]
    rows += [(method, c, 0, MOD, mod + (d if method != GROUND_TRUTH else 0.0)) for c, d in zip(CLIPS, SPREAD)]
    if lve is not None:
        rows += [(method, c, 0, LVE, lve + d) for c, d in zip(CLIPS, SPREAD)]
    return rows


@pytest.fixture
def page(tmp_path):
    paths = [str(_write(tmp_path / f"{m}.parquet", m, _rows(m))) for m in LEVELS]
    html = tmp_path / "leaderboard.html"
    build_report(config.defaults(), paths, str(tmp_path / "leaderboard.md"), str(html), str(tmp_path / "plots"))
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1600"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.get(html.as_uri())
    yield drv, html
    drv.quit()


def _methods(drv, table_id):
    """(methods tbody's method names, reference tbody's method names) as the page shows them now."""
    table = drv.find_element(By.ID, table_id)
    col = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")].index("Method") + 1
    names = lambda body: [td.text for td in table.find_elements(By.CSS_SELECTOR, f"tbody.{body} tr:not(.sep) td:nth-child({col})")]  # noqa: E731
    return names("methods"), names("refs")


def _head(drv, table_id, starts):
    return next(th for th in drv.find_elements(By.CSS_SELECTOR, f"#{table_id} thead th") if th.text.startswith(starts))


def test_a_click_on_a_column_head_sorts_the_methods_and_leaves_the_reference_rows(page, tmp_path):
    drv, html = page
    refs = [GROUND_TRUTH, "mismatched", "static"]
    # offline: nothing on the page points at the network, and nothing was fetched from it
    text = html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    fetched = drv.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith(("data:", "file:")) for u in fetched), fetched
    # one table per family with a scored metric, the overview first
    tables = [t.get_attribute("id") for t in drv.find_elements(By.CSS_SELECTOR, "table.board")]
    assert tables == ["board-overview", "board-lip-shape", "board-head-motion"]
    # lip shape is ranked by LVE, lower first; the references follow under their own separator row
    assert _methods(drv, "board-lip-shape") == (["alpha", "beta", "gamma"], refs)
    assert "Reference rows" in drv.find_element(By.CSS_SELECTOR, "#board-lip-shape tbody.refs tr.sep").text
    lve = _head(drv, "board-lip-shape", "LVE (l2)")
    assert lve.get_attribute("aria-sort") == "ascending"  # the ranking column starts sorted
    best = drv.find_elements(By.CSS_SELECTOR, "#board-lip-shape td.best")
    assert len(best) == 2 and all(int(b.value_of_css_property("font-weight")) >= 700 for b in best)  # LVE, MOD

    mod = _head(drv, "board-lip-shape", "MOD")
    mod.click()  # best (lowest MOD) first
    assert _methods(drv, "board-lip-shape") == (["gamma", "beta", "alpha"], refs)
    assert mod.get_attribute("aria-sort") == "ascending" and lve.get_attribute("aria-sort") is None
    if os.environ.get("KSDIFF_REPORT_SCREENSHOTS"):
        out = Path(os.environ["KSDIFF_REPORT_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        drv.find_element(By.ID, "leaderboard-section").screenshot(str(out / "leaderboard_sorted.png"))
    mod.click()  # again: worst first
    assert _methods(drv, "board-lip-shape") == (["alpha", "beta", "gamma"], refs)
    assert mod.get_attribute("aria-sort") == "descending"
    # head motion is ranked by temporal diversity, closer to ground truth's 3.0: beta (0.4 away), alpha (0.5),
    # gamma (1.0); it starts sorted by it, so the first click on it shows the worst first
    assert _methods(drv, "board-head-motion")[0] == ["beta", "alpha", "gamma"]
    _head(drv, "board-head-motion", "Temporal diversity").click()
    assert _methods(drv, "board-head-motion")[0] == ["gamma", "alpha", "beta"]
    # the overview lists the methods by name until sorted: by its head motion column, then by name, reversed
    assert _methods(drv, "board-overview") == (["alpha", "beta", "gamma"], refs)
    _head(drv, "board-overview", "Head motion").click()
    assert _methods(drv, "board-overview") == (["beta", "alpha", "gamma"], refs)
    _head(drv, "board-overview", "Method").click()
    _head(drv, "board-overview", "Method").click()
    assert _methods(drv, "board-overview") == (["gamma", "beta", "alpha"], refs)
    # the per-clip appendix sorts too: by LVE, lowest first, ground truth (no LVE) last
    drv.find_element(By.CSS_SELECTOR, "#per-clip ~ details summary").click()
    appendix = drv.find_element(By.CSS_SELECTOR, "#per-clip ~ details table.sortable")
    heads = appendix.find_elements(By.CSS_SELECTOR, "thead th")
    col = [h.text for h in heads].index(LVE)
    heads[col].click()
    values = [r.find_elements(By.TAG_NAME, "td")[col].text for r in appendix.find_elements(By.CSS_SELECTOR, "tbody tr")]
    numbers = [float(v) for v in values if v != "–"]
    assert numbers == sorted(numbers) and values[len(numbers):] == ["–"] * len(CLIPS) and len(numbers) == 5 * len(CLIPS)
    errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
