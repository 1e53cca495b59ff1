"""``demmi report``: the static site, tested in a real headless Chromium (selenium + Debian's chromium and
chromedriver): every page loads from file:// without console errors, a column sorts, every comparison image
loads, keyboard navigation and zoom work; screenshots are saved (into $DEMMI_REPORT_SCREENSHOTS when set, which
is how docs/img/report-*.png were made). Plus the checks that need no browser."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from demmi_rf.errors import DemmiError
from demmi_rf.publish.report import MARKER, ReportError, write_report
from demmi_rf.publish.report_data import load_results, severity_curves
from demmi_rf.publish.svg import bar_chart, nice_ticks

from ._publish_data import METHODS, built_dataset, fused_and_results
from .conftest import REPO, run_cli

PUBLISHED = sorted((REPO / "manifests" / "baselines").glob("*/*.json"))
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--window-size=1400,1000")


def _find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or the reason none can be used."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'demmi-rf[publish]')"
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        return ("no Chromium/ChromeDriver on PATH (Debian: apt-get install -y chromium chromium-driver); the "
                "browser tests of the web report cannot run here")
    return browser, driver


@pytest.fixture(scope="module")
def browser():
    found = _find_browser()
    if isinstance(found, str):
        pytest.skip(found)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="demmi-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = found[0]
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(found[1]), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get("DEMMI_REPORT_SCREENSHOTS")
    return Path(target) if target else tmp_path_factory.mktemp("screenshots")


def _load(driver, page: Path) -> list[dict]:
    """Load a page from file:// and return the console messages of level SEVERE (errors)."""
    driver.get_log("browser")  # drain
    driver.get(page.as_uri())
    driver.execute_script("return document.readyState")
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _column_values(driver, table_id: str, col: int) -> list[float]:
    return driver.execute_script(
        "return Array.from(document.getElementById(arguments[0]).tBodies[0].rows).map("
        "r => parseFloat(r.cells[arguments[1]].getAttribute('data-value')));", table_id, col)


def _methods(driver, table_id: str) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.getElementById(arguments[0]).tBodies[0].rows).map(r => r.cells[0].textContent);",
        table_id)


@pytest.fixture(scope="module")
def published_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "published"
    run_cli(["report", "--results", *map(str, PUBLISHED), "--out", str(out), "--no-progress"])
    return out


def test_published_baselines_site_in_a_browser(browser, published_site, shots):
    from selenium.webdriver.common.by import By

    for page in ("index.html", "plots.html"):
        errors = _load(browser, published_site / page)
        assert errors == [], errors
        assert browser.find_element(By.CSS_SELECTOR, "header.site nav a[aria-current=page]")
        browser.save_screenshot(str(shots / f"report-published-{page[:-5]}.png"))
    _load(browser, published_site / "index.html")
    table = "lb-tang-clean-test-mean"
    tang = json.loads((REPO / "manifests/baselines/tang/average.json").read_text())
    col = 1 + tang["metrics"].index("MSE")  # lower is better
    header = browser.find_elements(By.CSS_SELECTOR, f"#{table} thead th")[col]
    header.find_element(By.TAG_NAME, "button").click()
    values = _column_values(browser, table, col)
    assert values == sorted(values) and header.get_attribute("aria-sort") == "ascending"  # best (lowest) first
    expected = sorted(PUBLISHED_MEANS("tang", "MSE").items(), key=lambda kv: kv[1])
    assert _methods(browser, table) == [m for m, _ in expected]
    header.find_element(By.TAG_NAME, "button").click()
    assert _column_values(browser, table, col) == sorted(values, reverse=True)
    col = 1 + tang["metrics"].index("SSIM")  # higher is better: first click puts the highest first
    browser.find_elements(By.CSS_SELECTOR, f"#{table} thead th button")[col].click()
    values = _column_values(browser, table, col)
    assert values == sorted(values, reverse=True)
    browser.find_elements(By.CSS_SELECTOR, f"#{table} thead th button")[0].click()  # by method name
    names = _methods(browser, table)
    assert names == sorted(names, reverse=True) or names == sorted(names)
    assert _load(browser, published_site / "index.html") == []


def PUBLISHED_MEANS(profile: str, metric: str) -> dict[str, float]:  # noqa: N802 - reads like a constant table
    out = {}
    for path in PUBLISHED:
        data = json.loads(path.read_text())
        if data["profile"] == profile:
            mean = next(r for r in data["table"] if r["setting"] == "mean")
            out[data["method"]] = mean["values"][metric]
    return out


@pytest.fixture(scope="module")
def full_site(tmp_path_factory) -> tuple[Path, Path]:
    ds = built_dataset(tmp_path_factory)
    fused, results = fused_and_results(tmp_path_factory)
    out = tmp_path_factory.mktemp("site") / "full"
    args = ["report", "--results", *map(str, results), "--dataset", str(ds), "--out", str(out), "--no-progress"]
    for name, folder in fused.items():
        args += ["--fused", f"{name}={folder}"]
    result = run_cli(args)
    assert "report:" in result.output
    return out, ds


def test_full_site_in_a_browser(browser, full_site, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    site, _ = full_site
    for page in ("index.html", "plots.html", "compare.html", "dataset.html"):
        assert _load(browser, site / page) == [], page
    browser.save_screenshot(str(shots / "report-dataset.png"))
    sheet = browser.execute_script(
        "const i = document.querySelector('.sheet img'); return i.complete && i.naturalWidth")
    assert sheet and sheet > 0

    assert _load(browser, site / "compare.html") == []
    browser.execute_script("return document.fonts ? document.fonts.ready.then(() => 1) : 1")
    n_images = browser.execute_script(
        "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
    all_images = browser.execute_script("return document.images.length")
    panels = browser.find_elements(By.CSS_SELECTOR, "section.sample")
    assert len(panels) == 4  # one sample per setting
    assert all_images == len(panels) * (4 + len(METHODS)) and n_images == all_images  # every image loaded
    assert panels[0].is_displayed() and not panels[1].is_displayed()
    browser.save_screenshot(str(shots / "report-compare.png"))

    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_RIGHT)
    assert panels[1].is_displayed() and not panels[0].is_displayed()
    assert browser.find_element(By.ID, "sample-status").text == "2 / 4"
    body.send_keys("j")
    assert panels[2].is_displayed()
    body.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT, Keys.ARROW_LEFT)  # wraps around to the last
    assert panels[3].is_displayed()
    assert browser.execute_script("return window.location.hash") == "#s-3"

    # zoom: every image of the panel switches to its full-size file at the same zoom and still loads
    body.send_keys("+")
    assert browser.find_element(By.ID, "zoom").get_attribute("value") == "2"
    browser.implicitly_wait(0)
    state = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const imgs = Array.from(document.querySelectorAll('section.sample:not([hidden]) img'));"
        "Promise.all(imgs.map(i => i.complete ? 1 : new Promise(r => { i.onload = r; i.onerror = r; })))"
        ".then(() => done(imgs.map(i => [i.getAttribute('src'), i.naturalWidth, i.style.width])));")
    assert state and all(src.endswith(".jpg") and not src.endswith(".t.jpg") and w > 0 and style == "200%"
                         for src, w, style in state), state
    view = browser.find_element(By.CSS_SELECTOR, "section.sample:not([hidden]) figure .view")
    view.click()  # zoom on a point of one image moves all of them
    scrolls = browser.execute_script(
        "return Array.from(document.querySelectorAll('section.sample:not([hidden]) figure .view'))"
        ".map(v => [v.scrollLeft, v.scrollTop]);")
    assert len({tuple(s) for s in scrolls}) == 1 and scrolls[0][0] > 0
    browser.save_screenshot(str(shots / "report-compare-zoom.png"))
    body.send_keys("0")
    assert browser.find_element(By.ID, "zoom").get_attribute("value") == "1"
    assert [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"] == []


def test_full_site_content_and_size(full_site):
    site, ds = full_site
    index = (site / "index.html").read_text(encoding="utf-8")
    from demmi_rf.store import open_dataset

    with open_dataset(ds) as d:
        assert d.content_hash in index
    compare = (site / "compare.html").read_text(encoding="utf-8")
    assert compare.count('data-full="img/') == 4 * (4 + len(METHODS))
    assert "http://" not in compare and "https://" not in compare  # nothing fetched at view time
    total = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    assert total < 8 * 2**20  # 4 samples x 6 images: thumbnails and JPEG full sizes stay small


def test_report_refuses_other_dataset_and_bad_options(tmp_path_factory, tmp_path):
    ds = built_dataset(tmp_path_factory)
    with pytest.raises(ReportError, match="content"):  # published results are of the full 16-setting build
        write_report(tmp_path / "a", PUBLISHED, dataset=ds)
    assert not (tmp_path / "a").exists()
    with pytest.raises(ReportError, match="needs --dataset"):
        write_report(tmp_path / "b", PUBLISHED, fused=[("avg", tmp_path)])
    with pytest.raises(ReportError, match="--fused name"):
        write_report(tmp_path / "c", PUBLISHED, dataset=ds, fused=[("<b>", tmp_path)])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ReportError, match="not a previous report"):
        write_report(foreign, PUBLISHED)
    assert (foreign / "notes.txt").read_text() == "mine"
    result = run_cli(["report", "--results", str(PUBLISHED[0]), "--out", str(foreign)], ok=False)
    assert result.exit_code == 1 and "not a previous report" in result.output
    # a previous report is replaced whole
    site = tmp_path / "site"
    write_report(site, PUBLISHED[:1])
    (site / "stale.html").write_text("old")
    write_report(site, PUBLISHED[:2])
    assert (site / MARKER).is_file() and not (site / "stale.html").exists()


def test_results_of_two_datasets_are_refused(tmp_path):
    data = json.loads(PUBLISHED[0].read_text())
    data["dataset"]["content_hash"] = "f" * 64
    data["method"] = "other"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    with pytest.raises(DemmiError, match="different datasets"):
        load_results([PUBLISHED[0], other])


def test_crafted_results_are_escaped_or_refused(tmp_path):
    data = json.loads(PUBLISHED[0].read_text())
    evil_name = "<img src=x onerror=alert(1)>"
    old = data["metrics"][0]
    data["metrics"][0] = evil_name  # metric names are free text in a results file: they must be escaped
    data["higher_is_better"][evil_name] = data["higher_is_better"].pop(old)
    for row in data["table"]:
        row["values"][evil_name] = row["values"].pop(old)
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps(data))
    site = tmp_path / "site"
    write_report(site, [evil])
    for page in ("index.html", "plots.html"):
        text = (site / page).read_text(encoding="utf-8")
        assert "<img src=x" not in text and "&lt;img src=x" in text
    data["table"][0]["values"][evil_name] = "not a number"
    evil.write_text(json.dumps(data))
    with pytest.raises(DemmiError, match="evil.json"):
        load_results([evil])


def test_severity_curves_and_ticks():
    settings = ["clean", "noise15", "noise25", "noise50", "haze", "noise15+haze", "noise50+haze", "stripe",
                "noise50+haze+stripe"]
    curves = {(c.family, c.base): c for c in severity_curves(settings)}
    assert set(curves) == {("noise", "clean"), ("noise", "haze")}
    assert curves["noise", "clean"].levels == (0.0, 15.0, 25.0, 50.0)
    assert curves["noise", "haze"].settings == ("haze", "noise15+haze", "noise50+haze")
    ticks = nice_ticks(0.013, 0.92)
    assert ticks[0] <= 0.013 and ticks[-1] >= 0.92 and len(ticks) <= 8
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and steps.pop() in (0.1, 0.2, 0.25, 0.5)
    svg = bar_chart("M", ["a", "b"], ["m1", "m2"], [[1.0, math.nan], [2.0, 3.0]])
    assert svg.count("<rect") == 3  # the NaN bar is not drawn
