"""The dashboard in a real headless browser (Debian's chromium, driven by Selenium through chromedriver): it
follows `/v1/stream`, its chart and ticker take live changes, a diff link points at the wiki, and the SYNTHETIC
banner shows for synthetic changes only; `/docs` renders the API's document. The API runs with in-memory ports,
served by a real HTTP server; the test saves a screenshot (`WIKITIDE_ARTIFACTS`, else pytest's temporary folder)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from api import create_app
from api.limits import RateLimits
from tests.unit.fake_feed import FakeFeedLog
from tests.unit.test_api_routes import FakeEdits, FakeStats

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 60  # a bound on the browser's own progress (a first chromium start on a busy machine), not a pace


def change(n: int, *, synthetic: bool = False) -> dict[str, Any]:
    return {"key": f"enwiki#rev#{1000 + n}", "wiki": "enwiki", "type": "edit", "title": f"Page {n}", "namespace": 0,
            "dt": "2026-12-02T07:00:00Z", "user": "Someone", "editor": "user", "bot": False, "byte_delta": 12,
            "rev_old": 900 + n, "rev_new": 1000 + n, "page_url": f"https://en.wikipedia.org/wiki/Page_{n}",
            "synthetic": synthetic}


@pytest.fixture
def served() -> Iterator[tuple[str, FakeFeedLog]]:
    feed = FakeFeedLog()
    app = create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={}, feed=feed,
                     rate_limits=RateLimits(queries="off", stream="off"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", feed
    finally:
        server.shutdown()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    assert not missing, f"{missing} not installed: `make install` installs Debian's chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_dashboard_follows_the_live_stream(served: tuple[str, FakeFeedLog], browser: webdriver.Chrome,
                                               tmp_path: Path) -> None:
    url, feed = served
    wait = WebDriverWait(browser, WAIT_SECONDS)
    browser.get(url + "/")
    wait.until(lambda b: b.find_element(By.ID, "live-status").text == "live")
    for n in range(5):
        feed.append(change(n))
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#recent tbody tr")) == 5)
    rows = browser.find_elements(By.CSS_SELECTOR, "#recent tbody tr")
    assert "Page 4" in rows[0].text  # newest first
    diff = rows[0].find_element(By.LINK_TEXT, "diff")
    assert diff.get_attribute("href") == "https://en.wikipedia.org/w/index.php?diff=1004&oldid=904"
    wait.until(lambda b: int(b.find_element(By.ID, "rate-chart").get_attribute("data-points") or 0) > 0)
    assert "enwiki" in browser.find_element(By.ID, "rate-legend").text
    assert "user 100%" in browser.find_element(By.ID, "editor-share").text
    assert not browser.find_element(By.ID, "synthetic-banner").is_displayed()

    feed.append(change(5, synthetic=True))
    wait.until(lambda b: b.find_element(By.ID, "synthetic-banner").is_displayed())
    artifacts = Path(os.environ.get("WIKITIDE_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_the_docs_page_shows_every_operation_from_this_server(served: tuple[str, FakeFeedLog],
                                                               browser: webdriver.Chrome) -> None:
    """`/docs` under the API's content policy (scripts and styles from this server only): Swagger UI renders the
    generated document, one block per operation."""
    url, _ = served
    paths = set(httpx.get(url + "/openapi.json").json()["paths"])
    browser.get(url + "/docs")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    shown = {element.get_attribute("data-path") for element in
             browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert shown == paths
    assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith("wikitide API")
