"""The operator page's layout in headless Chromium: on a 1366x768 laptop the results show without
scrolling (the search is one bar; the other filters fold under "More filters"), and on a phone
(390x844) the results are cards that fit the width. And /docs renders from this server alone.

Screenshots land in ``$CENTERS_TEST_ARTIFACTS`` if set, else in ``test-artifacts/`` at the
repository root (git-ignored): ``operator-results-1366x768.png``, ``operator-results-390x844.png`` and
``docs-1366x768.png``.

The app runs in this process under uvicorn (a thread), on the session's real Redis, with the bundled
fictional sample (centers with availability in eight metros) and a center whose long details make a
tall row.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from aggregator.api import create_app
from aggregator.local.redis_process import free_port
from aggregator.local.sample import load_bundled_sample
from aggregator.model import Phone, PhoneRole
from aggregator.store import Store
from config.registry import parse
from config.settings import Settings
from tests.chromium import start_chrome
from tests.integration.factories import center, observation

TOKEN = "layout-operator-token-0123456789abcdef"
REPO_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "layout:"


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("CENTERS_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def base_url(redis_url: str) -> Iterator[str]:
    store = Store.from_url(redis_url, PREFIX)
    for key in store.redis.scan_iter(match=f"{PREFIX}*"):
        store.redis.delete(key)
    now = datetime.now(UTC)
    load_bundled_sample(store, now - timedelta(minutes=7))
    riverside = center(
        "nightly",
        "n-1",
        42.3650,
        -71.1035,
        name="Riverside Detox and Recovery Center",
        alternate_name="Riverside Recovery Services of Greater Cambridge",
        address={
            "address_1": "12 River St",
            "address_2": "Building 4, 2nd floor",
            "city": "Cambridge",
            "state": "MA",
            "postal_code": "02139",
        },
        phones=(Phone(number="+16175550142"), Phone(number="+16175550143", role=PhoneRole.INTAKE)),
        levels_of_care=["detox", "residential", "outpatient"],
        payment=["medicaid"],
    )
    store.replace_feed(
        "nightly",
        [riverside],
        [
            observation(
                riverside,
                "detox",
                "available",
                beds_available=3,
                beds_total=12,
                reported_at=now - timedelta(minutes=12),
                freshness=3600,
            ),
            observation(
                riverside,
                "residential",
                "limited",
                beds_available=1,
                beds_total=20,
                reported_at=now - timedelta(hours=9),
                freshness=3600,
                notes="call intake before noon",
            ),
        ],
        now=now,
        source="pull",
    )
    settings = Settings.from_env(
        {"CENTERS_OPERATOR_TOKENS": f"dana:{TOKEN}", "CENTERS_RATE_LIMIT": "100000", "CENTERS_GEOCODER": "none"}
    )
    registry = parse(
        {
            "feed": [
                {
                    "id": "nightly",
                    "partner": "Nightly Beds",
                    "format": "csv",
                    "url": "https://feeds.example.org/nightly.csv",
                    "schedule": "15m",
                    "freshness": "1h",
                    "mapping": {"fields": {"source_id": "id", "name": "name", "state": "state", "postal_code": "zip"}},
                }
            ]
        }
    )
    app = create_app(settings, store, registry=registry, enqueue=lambda _n, _a: None, environ={})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, name="layout-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)
    for key in store.redis.scan_iter(match=f"{PREFIX}*"):
        store.redis.delete(key)
    store.redis.connection_pool.disconnect()


@pytest.fixture
def chrome(tmp_path: Path) -> Iterator[Any]:
    driver = start_chrome(
        tmp_path / "chrome-profile", window=(1366, 768), hide_scrollbars=True, log=tmp_path / "chromedriver.log"
    )
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chrome-profile", ignore_errors=True)


def viewport(driver: Any, width: int, height: int, *, mobile: bool = False) -> None:
    """Exactly this viewport (CSS pixels), as the device would have it."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile},
    )


def sign_in_and_search(driver: Any, base: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 15)
    driver.get(base + "/operator")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "place")))
    place = driver.find_element(By.ID, "place")
    place.send_keys("02139")
    radius = driver.find_element(By.ID, "radius_mi")
    radius.clear()
    radius.send_keys("25")
    driver.find_element(By.CSS_SELECTOR, "form[role=search] button[type=submit]").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "results")))


FIRST_ROW = (
    "const r = document.querySelector('#results tbody tr').getBoundingClientRect(); "
    "return {top: r.top, bottom: r.bottom, scrollY: window.scrollY};"
)


def test_on_a_laptop_the_first_result_shows_without_scrolling(chrome: Any, base_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    viewport(chrome, 1366, 768)
    sign_in_and_search(chrome, base_url)
    assert chrome.execute_script("return [window.innerWidth, window.innerHeight]") == [1366, 768]
    row = chrome.execute_script(FIRST_ROW)
    shot = artifacts_dir() / "operator-results-1366x768.png"
    shot.unlink(missing_ok=True)
    assert chrome.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert row["scrollY"] == 0
    assert 0 < row["top"] < 768, row
    # the whole first row (name, phones, availability), within what a laptop's browser shows of its 768 px
    # screen (about 650 px under the tabs and the address bar); the filters used to push it to 684-840 px
    assert row["bottom"] <= 650, row
    first = chrome.find_element(By.CSS_SELECTOR, "#results tbody tr")
    assert "Riverside Detox and Recovery Center" in first.text

    # the filters are folded, one click away, and keep what was chosen
    more = chrome.find_element(By.ID, "more-filters")
    assert more.get_attribute("open") is None
    detox = chrome.find_element(By.CSS_SELECTOR, "input[name=level_of_care][value=detox]")
    assert not detox.is_displayed()
    more.find_element(By.TAG_NAME, "summary").click()
    assert detox.is_displayed()
    detox.click()
    assert detox.is_selected()
    chrome.find_element(By.CSS_SELECTOR, "form[role=search] button[type=submit]").click()
    WebDriverWait(chrome, 15).until(expected_conditions.url_contains("level_of_care=detox"))
    WebDriverWait(chrome, 15).until(expected_conditions.presence_of_element_located((By.ID, "results")))
    summary = chrome.find_element(By.CSS_SELECTOR, "#more-filters summary").text
    assert "Detox" in summary  # the folded bar says which filters are on
    assert chrome.execute_script(FIRST_ROW)["top"] < 768


def test_on_a_phone_the_results_are_cards_that_fit(chrome: Any, base_url: str) -> None:
    viewport(chrome, 390, 844, mobile=True)
    sign_in_and_search(chrome, base_url)
    assert chrome.execute_script("return [window.innerWidth, window.innerHeight]") == [390, 844]
    shot = artifacts_dir() / "operator-results-390x844.png"
    shot.unlink(missing_ok=True)
    assert chrome.save_screenshot(str(shot))
    row = chrome.execute_script(FIRST_ROW)
    assert 0 < row["top"] < 844, row
    # no sideways scrolling: every result fits the phone's width
    assert chrome.execute_script("return document.documentElement.scrollWidth") <= 390
    label = chrome.execute_script(
        "return getComputedStyle(document.querySelector('#results td[data-label=Phone]'), '::before').content"
    )
    assert label == '"Phone"'  # each cell names its column


def test_the_docs_render_from_this_server_alone(chrome: Any, base_url: str) -> None:
    """Swagger UI renders the API's OpenAPI 3.1 document with nothing but this server's files (its
    Content-Security-Policy lets the browser load nothing from elsewhere): the docs work offline."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    viewport(chrome, 1366, 768)
    chrome.get(base_url + "/docs")
    WebDriverWait(chrome, 15).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    text = chrome.find_element(By.ID, "swagger-ui").text
    assert "Unable to render this definition" not in text
    assert "/v1/centers/near" in text and "Centers near a place, nearest first" in text
    resources = chrome.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(base_url + "/") for r in resources), resources
    shot = artifacts_dir() / "docs-1366x768.png"
    shot.unlink(missing_ok=True)
    assert chrome.save_screenshot(str(shot))
