"""The public find page in headless Chromium, at a phone's (390x844) and a laptop's (1366x768) width.

A ZIP search shows the demo centers with their live and stale figures worded right; the Spanish page; a
search made with the keyboard alone; axe-core (the npm package, injected into the page) finds no WCAG 2.1 A/AA
violation on any state of the page at either width; text at 200% (and a 200% zoomed laptop) scrolls no
sideways; with JavaScript off the page still searches; "Use my location" sends the browser's position only
when pressed; the page loads nothing from elsewhere and sets no cookie; the embeddable button on a partner's
page (another origin) opens the page.

Screenshots land in ``$CENTERS_TEST_ARTIFACTS`` or ``test-artifacts/``: ``find-results-390x844.png``,
``find-results-1366x768.png``, ``find-es-390x844.png``, ``find-empty-390x844.png``, ``find-nojs-390x844.png``.

axe-core comes from npm (``.ci/run`` installs it into ``tests/browser/node_modules``). Without it the axe test
fails under CI (``CI=true``) and skips elsewhere, saying how to install it.
"""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.store import Store
from tests.chromium import start_chrome
from tests.integration import find_fixtures
from tests.integration.find_fixtures import PREFIX, RIVERSIDE
from tests.integration.test_operator_layout import REPO_ROOT, artifacts_dir, viewport

AXE = REPO_ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
PHONE, LAPTOP = (390, 844), (1366, 768)


@pytest.fixture(scope="module")
def base(redis_url: str) -> Iterator[str]:
    store = Store.from_url(redis_url, PREFIX + "browser:")
    find_fixtures.load(store, find_fixtures.now_utc())
    with find_fixtures.serving(store) as url:
        yield url
    find_fixtures.clear(store, PREFIX + "browser:")
    store.redis.connection_pool.disconnect()


def _driver(tmp: Path, *, javascript: bool = True) -> Any:
    return start_chrome(tmp, javascript=javascript, hide_scrollbars=True, script_timeout=30)


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("find-chrome")
    driver = _driver(folder)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(folder, ignore_errors=True)


def by(css: str) -> tuple[str, str]:
    return ("css selector", css)


def search(driver: Any, base: str, place: str, path: str = "/find") -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base + path)
    field = driver.find_element(*by("#place"))
    field.clear()
    field.send_keys(place)
    driver.find_element(*by("button[type=submit]")).click()
    WebDriverWait(driver, 15).until(expected_conditions.presence_of_element_located(by("#results, .msg")))


def shot(driver: Any, name: str) -> None:
    path = artifacts_dir() / name
    path.unlink(missing_ok=True)
    assert driver.save_screenshot(str(path))
    assert path.read_bytes().startswith(b"\x89PNG")


def no_sideways_scroll(driver: Any) -> bool:
    return bool(driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"))


def card_text(driver: Any, name: str) -> str:
    for card in driver.find_elements(*by("li.center")):
        if card.find_element(*by("h3")).text == name:
            return str(card.text)
    raise AssertionError(f"no card for {name}")


@pytest.mark.parametrize("size", [PHONE, LAPTOP], ids=["390x844", "1366x768"])
def test_a_zip_search_shows_live_and_stale_figures(chrome: Any, base: str, size: tuple[int, int]) -> None:
    width, height = size
    viewport(chrome, width, height, mobile=width < 600)
    search(chrome, base, "02139")
    assert "place=02139" in chrome.current_url
    names = [h.text for h in chrome.find_elements(*by("li.center h3"))]
    assert names[0] == RIVERSIDE and len(names) == 10
    card = card_text(chrome, RIVERSIDE)
    assert (
        "Open\n3 beds open\nconfirmed 20 minutes ago" in card
        or "Open 3 beds open confirmed 20 minutes ago" in card.replace("\n", " ").replace("✓ ", "")
    ), card
    flat = card.replace("\n", " ")
    assert "Call to check last confirmed 9 hours ago" in flat, flat
    assert "Call to check No recent report" in flat, flat
    assert "1 bed open" not in flat
    assert "confirmed 7 minutes ago" in chrome.find_element(*by("ol.results")).text  # the sample's live figures
    # the first result shows without scrolling (the form to change the search comes after the results)
    top = chrome.execute_script("return document.querySelector('li.center').getBoundingClientRect().top")
    assert 0 < top < height * 0.6, top
    assert no_sideways_scroll(chrome)
    shot(chrome, f"find-results-{width}x{height}.png")
    # the helpline stays in view wherever the reader is on the page
    chrome.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    rect = chrome.execute_script("return document.querySelector('.help-call').getBoundingClientRect().toJSON()")
    assert rect["top"] >= 0 and rect["bottom"] <= height, rect
    call = chrome.find_element(*by(".help-call"))
    assert call.get_attribute("href") == "tel:+18006624357" and call.is_displayed()
    # nothing was loaded from elsewhere, and no cookie exists
    resources = chrome.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(base + "/") for r in resources), resources
    assert chrome.execute_script("return document.cookie") == ""
    assert chrome.get_cookies() == []


def test_the_spanish_page(chrome: Any, base: str) -> None:
    viewport(chrome, *PHONE, mobile=True)
    search(chrome, base, "02139", "/es/find")
    assert chrome.find_element(*by("html")).get_attribute("lang") == "es"
    assert chrome.find_element(*by("h1")).text == "Consulte la disponibilidad en un centro cerca de usted"
    card = card_text(chrome, RIVERSIDE).replace("\n", " ")
    assert "3 camas libres confirmado hace 20 minutos" in card, card
    assert "Llame para confirmar confirmado por última vez hace 9 horas" in card, card
    assert "Llamar a admisiones (617) 555-0143" in card
    assert chrome.find_element(*by(".help-call")).text == "Llame a la línea de ayuda 1-800-662-4357"
    shot(chrome, "find-es-390x844.png")
    # the language link keeps the search
    chrome.find_element(*by("a.lang")).click()
    assert chrome.find_element(*by("html")).get_attribute("lang") == "en"
    assert chrome.find_elements(*by("li.center h3"))[0].text == RIVERSIDE


def test_a_search_with_the_keyboard_alone(chrome: Any, base: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    viewport(chrome, *PHONE, mobile=True)
    chrome.get(base + "/find")
    focused: list[str] = []
    for _ in range(12):
        ActionChains(chrome).send_keys(Keys.TAB).perform()
        state = chrome.execute_script(
            "const e = document.activeElement, s = getComputedStyle(e);"
            "return [e.id || e.className || e.tagName, s.outlineStyle, s.outlineWidth];"
        )
        focused.append(state[0])
        assert state[1] != "none" and state[2] != "0px", f"no visible focus on {state[0]}"
        if state[0] == "place":
            break
    assert focused[0] == "skip" and "call help-call" in focused and focused[-1] == "place", focused
    ActionChains(chrome).send_keys("02139").perform()
    ActionChains(chrome).send_keys(Keys.TAB).perform()  # "Use my location" (the script shows it)
    assert chrome.execute_script("return document.activeElement.id") == "locate"
    ActionChains(chrome).send_keys(Keys.TAB).perform()
    assert chrome.execute_script("return document.activeElement.id") == "level_of_care"
    ActionChains(chrome).send_keys("d").perform()  # a select picks by its first letter: Detox
    ActionChains(chrome).send_keys(Keys.TAB, Keys.TAB, Keys.TAB, Keys.SPACE).perform()  # can take someone now
    assert chrome.execute_script("return document.activeElement.id") == "available_only"
    ActionChains(chrome).send_keys(Keys.TAB).perform()
    assert chrome.execute_script("return document.activeElement.type") == "submit"
    ActionChains(chrome).send_keys(Keys.ENTER).perform()
    WebDriverWait(chrome, 15).until(expected_conditions.presence_of_element_located(by("#results")))
    assert "level_of_care=detox" in chrome.current_url and "available_only=on" in chrome.current_url
    # the first stop is "skip to results"; it takes the reader to the first center's call button
    ActionChains(chrome).send_keys(Keys.TAB).perform()
    assert chrome.execute_script("return document.activeElement.className") == "skip"
    ActionChains(chrome).send_keys(Keys.ENTER, Keys.TAB).perform()
    active = chrome.execute_script(
        "return [document.activeElement.href, "
        "document.activeElement.closest('li.center').querySelector('h3').textContent]"
    )
    assert active == ["tel:+16175550143", RIVERSIDE], active


def _axe(driver: Any) -> list[dict[str, Any]]:
    if not AXE.exists():
        message = (
            f"axe-core is not installed ({AXE} is absent): npm install --no-save --prefix tests/browser "
            "axe-core@4 (.ci/run does)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',"
        " 'best-practice']}, resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))))"
        ".catch(e => done([{id: 'axe-error', help: String(e)}]));"
    )
    assert isinstance(result, list)
    return result


@pytest.mark.parametrize("size", [PHONE, LAPTOP], ids=["390x844", "1366x768"])
def test_axe_finds_no_violation(chrome: Any, base: str, size: tuple[int, int]) -> None:
    width, height = size
    viewport(chrome, width, height, mobile=width < 600)
    pages = {
        "form": "/find",
        "results": "/find?place=02139",
        "filtered": "/find?place=02139&level_of_care=detox&payment=medicaid&available_only=on",
        "empty": "/find?place=02139&level_of_care=telehealth&radius_mi=10",
        "error": "/find?place=Cambrige%2C+MA",
        "spanish": "/es/find?place=02139",
    }
    found = {}
    for name, path in pages.items():
        chrome.get(base + path)
        violations = _axe(chrome)
        if violations:
            found[name] = violations
        if name == "empty" and width < 600:
            shot(chrome, "find-empty-390x844.png")
    assert found == {}, found


@pytest.mark.parametrize("size", [(390, 844), (320, 640), (683, 384)], ids=["phone", "320px", "laptop-zoomed-200"])
def test_text_at_200_percent_needs_no_sideways_scrolling(chrome: Any, base: str, size: tuple[int, int]) -> None:
    """(683x384 is a 1366x768 laptop at 200% zoom.) And on top, the text itself doubled."""
    viewport(chrome, *size, mobile=size[0] < 600)
    chrome.get(base + "/find?place=02139")
    assert no_sideways_scroll(chrome)
    chrome.execute_script("document.documentElement.style.fontSize = '200%'")
    assert chrome.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)") == 32
    assert no_sideways_scroll(chrome), chrome.execute_script(
        "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
        "window.innerWidth + 1).slice(0, 5).map(e => e.outerHTML.slice(0, 120))"
    )


def test_use_my_location_only_when_pressed(chrome: Any, base: str) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    viewport(chrome, *PHONE, mobile=True)
    chrome.execute_cdp_cmd("Browser.grantPermissions", {"origin": base, "permissions": ["geolocation"]})
    chrome.execute_cdp_cmd(
        "Emulation.setGeolocationOverride", {"latitude": 42.365123, "longitude": -71.103987, "accuracy": 20}
    )
    chrome.get(base + "/find")
    assert "lat=" not in chrome.current_url
    button = chrome.find_element(*by("#locate"))
    assert button.is_displayed() and button.text == "Use my location"
    button.click()
    WebDriverWait(chrome, 15).until(expected_conditions.presence_of_element_located(by("#results")))
    assert "lat=42.365&lon=-71.104" in chrome.current_url  # rounded: about 100 m
    assert chrome.find_element(*by("#results-title")).text == "Centers near your location"
    assert chrome.find_elements(*by("li.center h3"))[0].text == RIVERSIDE
    chrome.execute_cdp_cmd("Emulation.clearGeolocationOverride", {})


def test_with_javascript_off_the_page_still_searches(base: str, tmp_path: Path) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _driver(tmp_path / "profile", javascript=False)
    try:
        viewport(driver, *PHONE, mobile=True)
        driver.get(base + "/find")
        assert not driver.find_element(*by("#locate")).is_displayed()  # no script: no "use my location"
        driver.find_element(*by("#place")).send_keys("Cambridge, MA")
        driver.find_element(*by("#level_of_care option[value=detox]")).click()
        driver.find_element(*by("button[type=submit]")).click()
        WebDriverWait(driver, 15).until(expected_conditions.presence_of_element_located(by("#results")))
        assert "place=Cambridge%2C+MA" in driver.current_url and "level_of_care=detox" in driver.current_url
        assert driver.find_element(*by("#results-title")).text == "Centers near Cambridge, MA"
        names = [h.text for h in driver.find_elements(*by("li.center h3"))]
        assert RIVERSIDE in names
        shot(driver, "find-nojs-390x844.png")
    finally:
        driver.quit()


def test_the_button_on_a_partner_page_opens_the_find_page(chrome: Any, base: str) -> None:
    """A partner page on another origin pastes the snippet: the button shows, and opens /es/find."""
    page = (
        f'<!doctype html><html lang="en"><head><title>Partner article</title></head><body><main>'
        f"<h1>Article</h1><p>Ready to talk to someone?</p>"
        f'<script src="{base}/embed/button.js" data-lang="es" async></script></main></body></html>'
    ).encode()

    class Partner(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", f"default-src 'none'; script-src {base}")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Partner)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        viewport(chrome, *PHONE, mobile=True)
        chrome.get(f"http://127.0.0.1:{server.server_address[1]}/")
        link = WebDriverWait(chrome, 10).until(
            expected_conditions.presence_of_element_located(by("a.center-availability-button"))
        )
        assert link.text == "Consulte la disponibilidad en un centro cerca de usted"
        assert link.get_attribute("href") == base + "/es/find"
        assert link.value_of_css_property("background-color") == "rgba(29, 79, 145, 1)"  # styled despite the CSP
        assert chrome.get_cookies() == []
        link.click()
        WebDriverWait(chrome, 10).until(expected_conditions.url_to_be(base + "/es/find"))
        assert chrome.find_element(*by("h1")).text == "Consulte la disponibilidad en un centro cerca de usted"
        assert chrome.execute_script("return document.referrer") == ""  # the partner's page is not told
    finally:
        server.shutdown()
        server.server_close()
