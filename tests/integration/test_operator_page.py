"""The operator page through a real uvicorn process: sign-in, search, escaping, and headless Chromium.

Data: the real SAMHSA facility list (real Cambridge, MA facilities around ZIP 02139) plus a few
centers of our own with availability (live, stale, none), one of them and one partner named with a
``<script>`` tag that must show as text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.local.sample import SAMHSA_FEED, load_samhsa
from aggregator.model import Phone, PhoneRole
from aggregator.store import FeedState, Store
from tests.chromium import start_chrome
from tests.conftest import shared_file
from tests.integration.conftest import Stack, open_stack
from tests.integration.factories import center, observation

OPERATOR_TOKEN = "page-operator-token-0123456789abcdef"
SCRIPT_PARTNER = "Nightly Beds <script>alert('x')</script>"
SCRIPT_CENTER = "<script>alert('x')</script> Recovery House"
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = Path(os.environ.get("CENTERS_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts") / "operator-page.png"

REGISTRY = """
[[feed]]
id = "nightly"
partner = "Nightly Beds <script>alert('x')</script>"
format = "csv"
url = "https://feeds.example.org/nightly-beds.csv"
schedule = "15m"
freshness = "1h"
[feed.mapping.fields]
source_id = "id"
name = "name"
state = "state"
postal_code = "zip"

[[feed]]
id = "harbor"
partner = "Harbor Health"
format = "push"
freshness = "6h"
push = { bearer_key_env = ["HARBOR_KEY"] }
[feed.mapping.fields]
source_id = "id"
name = "name"
state = "state"
postal_code = "zip"

[[feed]]
id = "samhsa"
partner = "SAMHSA facility list"
format = "csv"
url = "https://findtreatment.gov/locator/export.csv"
schedule = "1d"
freshness = "30d"
[feed.mapping.fields]
source_id = "id"
name = "name1"
state = "state"
postal_code = "zip"
"""


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def load_own_centers(store: Store, now: datetime) -> None:
    """Three centers of the 'nightly' feed right by the 02139 centroid, and a Harbor one."""
    riverside = center(
        "nightly",
        "n-1",
        42.3655,
        -71.1030,
        name="Riverside Detox Center",
        alternate_name="Riverside Recovery Services",
        address={"address_1": "12 River St", "city": "Cambridge", "state": "MA", "postal_code": "02139"},
        phones=(Phone(number="+16175550142"), Phone(number="+16175550143", role=PhoneRole.INTAKE)),
        levels_of_care=["detox", "residential", "outpatient"],
        payment=["medicaid", "sliding_scale"],
    )
    scripted = center(
        "nightly",
        "n-2",
        42.3640,
        -71.1050,
        name=SCRIPT_CENTER,
        address={"address_1": "3 <b>Bold</b> Ave", "city": "Cambridge", "state": "MA", "postal_code": "02139"},
        phones=(Phone(number="+16175550150"),),
        levels_of_care=["residential"],
    )
    store.replace_feed(
        "nightly",
        [riverside, scripted],
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
                "available",
                beds_available=2,
                beds_total=20,
                reported_at=now - timedelta(hours=9),
                freshness=3600,
            ),
            observation(
                scripted,
                "residential",
                "waitlist",
                beds_available=0,
                waitlist_size=4,
                reported_at=now - timedelta(minutes=30),
                freshness=3600,
                notes="<img src=x onerror=alert('notes')>",
            ),
        ],
        now=now,
        source="pull",
    )
    harbor = center(
        "harbor",
        "h-1",
        42.3700,
        -71.1100,
        name="Harbor House Detox",
        address={"address_1": "1 Main St", "city": "Cambridge", "state": "MA", "postal_code": "02139"},
        phones=(Phone(number="+16175550160"),),
        levels_of_care=["detox"],
    )
    store.replace_feed("harbor", [harbor], [], now=now, source="push", partial=True)
    store.record_observations(
        [
            observation(
                harbor,
                "detox",
                "full",
                beds_available=0,
                source="operator",
                reported_at=now - timedelta(minutes=5),
                freshness=4 * 3600,
                reported_by="dana",
            )
        ]
    )
    store.set_feed_state(
        "nightly",
        FeedState(
            last_attempt=_iso(now - timedelta(minutes=12)),
            last_success=_iso(now - timedelta(minutes=12)),
            accepted=2,
            rejected=1,
            records=3,
            newest_data_at=_iso(now - timedelta(minutes=12)),
            last_outcome="applied",
            repeated=1,
            quality=json.dumps(
                {
                    "repairs": [{"what": "latitude and longitude were swapped", "count": 2, "records": ["n-1", "n-2"]}],
                    "unmapped": [{"what": "levels_of_care: <b>Program 9</b>", "count": 1, "records": ["n-2"]}],
                    "dropped": [{"what": "phone: fax number … dropped", "count": 1, "records": ["n-1"]}],
                }
            ),
        ),
    )
    store.set_feed_state(
        "harbor",
        FeedState(
            last_attempt=_iso(now - timedelta(minutes=3)),
            last_success=_iso(now - timedelta(hours=2)),
            accepted=1,
            rejected=0,
            newest_data_at=_iso(now - timedelta(hours=2)),
            last_error="partner answered HTTP 503 <html>Service Unavailable</html>",
            last_error_kind="fetch_transient",
            last_error_at=_iso(now - timedelta(minutes=3)),
            consecutive_failures=2,
        ),
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    samhsa_csv = shared_file("samhsa_sud_facilities_geocoded.csv")

    def load(store: Store) -> None:
        now = datetime.now(UTC)
        report = load_samhsa(store, samhsa_csv, now)
        store.set_feed_state(
            SAMHSA_FEED,
            FeedState(
                last_attempt=_iso(now),
                last_success=_iso(now),
                records=report.records,
                accepted=report.accepted,
                rejected=report.rejected,
                newest_data_at=_iso(now),
            ),
        )
        load_own_centers(store, datetime.now(UTC))  # their ages ("12 minutes ago") count from now, after the load

    # the page reads the store only: no Celery worker is started
    with open_stack(
        redis_url,
        tmp_path_factory.mktemp("operator-page"),
        REGISTRY,
        prefix="page:",
        extra_env={"HARBOR_KEY": "harbor-key-0123456789abcdef0123"},
        load=load,
        api={"CENTERS_OPERATOR_TOKENS": f"dana:{OPERATOR_TOKEN}", "CENTERS_RATE_LIMIT": "100000"},
    ) as stack:
        yield stack


@pytest.fixture
def anonymous(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def form_token(html: str) -> str:
    """The hidden CSRF field the page puts in every form that posts."""
    found = re.search(r'<input type="hidden" name="csrf" value="([^"]+)">', html)
    assert found, html[:2000]
    return found.group(1)


def sign_in(client: httpx.Client, token: str) -> httpx.Response:
    """Open the sign-in form (it sets the form's cookie), then post it as a browser on this page would."""
    page = client.get("/operator")
    return client.post(
        "/operator/login",
        data={"token": token, "csrf": form_token(page.text)},
        headers={"origin": str(client.base_url).rstrip("/")},
    )


@pytest.fixture
def operator(stack: Stack) -> Iterator[httpx.Client]:
    """A client signed in through the form (the cookie jar keeps the operator_session cookie)."""
    with stack.client() as client:
        resp = sign_in(client, OPERATOR_TOKEN)
        assert resp.status_code == 303, resp.text
        yield client


def search(client: httpx.Client, **params: Any) -> httpx.Response:
    return client.get("/operator", params=params)


# ------------------------------------------------------------------------------------------ sign-in


@pytest.mark.parametrize("how", ["none", "wrong-cookie", "token-as-cookie", "wrong-bearer", "with-a-search"])
def test_without_a_valid_token_only_the_sign_in_form(anonymous: httpx.Client, how: str) -> None:
    params: dict[str, str] = {}
    if how == "wrong-cookie":
        anonymous.cookies.set("operator_session", "not-a-valid-session-0000000000")
    elif how == "token-as-cookie":  # the raw token in a cookie (either name) opens nothing: only sessions do
        anonymous.cookies.set("operator_token", OPERATOR_TOKEN)
        anonymous.cookies.set("operator_session", OPERATOR_TOKEN)
    elif how == "wrong-bearer":
        anonymous.headers["authorization"] = "Bearer not-a-valid-token-0000000000"
    elif how == "with-a-search":
        params = {"place": "02139"}
    resp = anonymous.get("/operator", params=params)
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["cache-control"] == "no-store"
    body = resp.text
    assert '<form class="panel login" method="post" action="/operator/login">' in body
    assert 'name="token"' in body and 'type="password"' in body
    assert body.count("<form") == 1
    for data in (
        "Institute for Health and Recovery",
        "Riverside",
        "Recovery House",
        "Harbor",
        "Nightly",
        "Feed health",
        "<table",
        "02139",
    ):
        assert data not in body, data


def test_a_wrong_token_gets_401_and_the_form_again(anonymous: httpx.Client) -> None:
    resp = sign_in(anonymous, "not-a-valid-token-0000000000")
    assert resp.status_code == 401
    assert "That token was not accepted." in resp.text and 'name="token"' in resp.text
    assert not any(c.startswith("operator_session=") for c in resp.headers.get_list("set-cookie"))
    assert sign_in(anonymous, "").status_code == 401


def test_signing_in_sets_a_strict_httponly_session_cookie_and_redirects(anonymous: httpx.Client) -> None:
    resp = sign_in(anonymous, OPERATOR_TOKEN)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/operator"
    [cookie] = [c for c in resp.headers.get_list("set-cookie") if c.startswith("operator_session=")]
    assert OPERATOR_TOKEN not in cookie  # a session id, never the token
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain http here; https requests get Secure
    page = anonymous.get("/operator")
    assert page.status_code == 200
    assert "Signed in as <strong>dana</strong>" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all


def test_signing_out_clears_the_cookie(operator: httpx.Client) -> None:
    page = operator.get("/operator")
    assert page.status_code == 200
    resp = operator.post(
        "/operator/logout", data={"csrf": form_token(page.text)}, headers={"origin": str(operator.base_url).rstrip("/")}
    )
    assert resp.status_code == 303
    assert resp.headers["set-cookie"].startswith('operator_session="";')
    assert "max-age=0" in resp.headers["set-cookie"].lower()
    assert operator.get("/operator").status_code == 401


def test_a_bearer_token_opens_the_page_too(anonymous: httpx.Client) -> None:
    resp = anonymous.get("/operator", headers={"authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert resp.status_code == 200 and "Feed health" in resp.text


# ------------------------------------------------------------------------------------------- search


def test_a_zip_search_shows_real_facilities_badges_phones_and_feed_health(operator: httpx.Client) -> None:
    started = time.monotonic()
    resp = search(operator, place="02139", radius_mi="5", limit="50")
    assert time.monotonic() - started < 5
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.text
    assert "Centers near Cambridge, MA" in body
    assert "Institute for Health and Recovery Inc" in body  # real SAMHSA facility, 349 Broadway
    assert "349 Broadway" in body
    assert "Riverside Detox Center" in body and "Riverside Recovery Services" in body
    # freshness: live, stale (operators keep the last figures, marked), and never reported
    assert "live · 12 minutes ago" in body
    assert "STALE · last confirmed 9 hours ago" in body
    assert "no report" in body
    assert "3 of 12 beds open" in body and "waitlist 4" in body
    assert "via operator (dana)" in body
    assert '<a href="tel:+16175550142">(617) 555-0142</a>' in body
    assert 'href="tel:+16175550143"' in body and "intake" in body
    # feed health: failing first (as feed_health sorts), then the rest
    assert '<table id="feeds">' in body
    feeds = body[body.index('<table id="feeds">') :]
    assert feeds.index("Harbor Health") < feeds.index("SAMHSA facility list")
    assert "partner answered HTTP 503 &lt;html&gt;Service Unavailable&lt;/html&gt;" in feeds
    assert "2 failed runs in a row" in feeds
    # nothing lost without a word: repairs, unmapped terms and dropped values, escaped, with examples
    assert "Repaired: 2" in feeds and "2 × latitude and longitude were swapped" in feeds
    assert "Unmapped terms: 1" in feeds and "levels_of_care: &lt;b&gt;Program 9&lt;/b&gt;" in feeds
    assert "Dropped values: 1" in feeds and "(e.g. n-1)" in feeds
    assert "1 repeated id: the newest report kept" in feeds
    # the nearest first: our centers sit by the ZIP's centre, the SAMHSA facility 0.4 miles off
    results = body[body.index('<table id="results">') : body.index('<table id="feeds">')]
    assert results.index("Riverside Detox Center") < results.index("Institute for Health and Recovery Inc")


def test_partner_data_is_escaped_never_markup(operator: httpx.Client) -> None:
    body = search(operator, place="02139", radius_mi="2").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Recovery House" in body  # the center's name
    assert "Nightly Beds &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in body  # the partner, twice
    assert "3 &lt;b&gt;Bold&lt;/b&gt; Ave" in body
    assert "&lt;img src=x onerror=alert(&#39;notes&#39;)&gt;" in body
    assert "<script" not in body.lower()  # the page has no script element at all
    assert "<img" not in body and "<b>" not in body


def test_filters_and_available_only(operator: httpx.Client) -> None:
    body = search(operator, place="42.3647,-71.1042", radius_mi="10", level_of_care="detox", available_only="on").text
    results = body[body.index('<table id="results">') : body.index('<table id="feeds">')]
    assert "Riverside Detox Center" in results
    assert "Harbor House Detox" not in results  # full
    assert "Institute for Health and Recovery" not in results  # no availability reported
    assert 'name="available_only" type="checkbox" checked' in body
    assert 'value="detox" checked' in body


def test_an_empty_answer_shows_the_hint(operator: httpx.Client) -> None:
    resp = search(operator, place="99501", radius_mi="5", level_of_care="detox")
    assert resp.status_code == 200
    assert '<p class="message info" role="status" id="hint">No centers matched within 5 miles of Anchorage, AK' in (
        resp.text
    )
    assert "Call 1-800-662-4357" in resp.text


def test_a_city_and_state_is_searched_without_a_geocoder(operator: httpx.Client) -> None:
    resp = search(operator, place="Cambridge, MA")
    assert resp.status_code == 200
    assert "Cambridge, MA (centroid of" in resp.text and "Riverside" in resp.text


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"place": "Cambrige, MA"}, 404, "did you mean Cambridge?"),
        ({"place": "99999"}, 404, "ZIP code &#39;99999&#39; does not exist"),
        ({"place": "1 Main St, Springfield"}, 422, "address search is off"),
        ({"place": ""}, 422, "Place: enter a ZIP code"),
        ({"place": "02139", "radius_mi": "far"}, 422, "Radius: must be a number of miles"),
        ({"place": "02139", "radius_mi": "500"}, 422, "Radius: must be more than 0 and at most 100 miles"),
        ({"place": "02139", "limit": "0"}, 422, "Max results: must be from 1 to 50"),
        ({"place": "02139", "level_of_care": "spa"}, 422, "Level of care: &#39;spa&#39; is not one of"),
        ({"place": "02139", "language": "spanish"}, 422, "Language: &#39;spanish&#39; is not an ISO 639-1"),
        ({"place": "95,0"}, 422, "Latitude: must be a number within -90..90"),
    ],
)
def test_a_bad_search_shows_a_message_on_the_page(
    operator: httpx.Client, params: dict[str, str], status: int, words: str
) -> None:
    resp = search(operator, **params)
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("text/html")
    assert '<p class="message error" role="alert">' in resp.text
    assert words in resp.text
    assert "Feed health" in resp.text and 'id="place"' in resp.text  # still the page, form and all
    assert "Traceback" not in resp.text


# --------------------------------------------------------------------------------- headless Chromium


@pytest.fixture
def chrome(tmp_path: Path) -> Iterator[Any]:
    driver = start_chrome(tmp_path / "chrome-profile", window=(1400, 2200), log=tmp_path / "chromedriver.log")
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chrome-profile", ignore_errors=True)


def test_the_page_in_headless_chromium(chrome: Any, stack: Stack) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    base = stack.api.url
    wait = WebDriverWait(chrome, 15)
    chrome.get(base + "/operator")
    assert chrome.title.startswith("Sign in")
    assert not chrome.find_elements(By.ID, "results") and "Feed health" not in chrome.page_source
    chrome.find_element(By.ID, "token").send_keys(OPERATOR_TOKEN)
    chrome.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()  # a plain form post
    wait.until(expected_conditions.presence_of_element_located((By.ID, "place")))
    cookie = chrome.get_cookie("operator_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert OPERATOR_TOKEN not in cookie["value"]  # a session id, never the token

    place = chrome.find_element(By.ID, "place")
    place.clear()
    place.send_keys("02139")
    radius = chrome.find_element(By.ID, "radius_mi")
    radius.clear()
    radius.send_keys("3")
    limit = chrome.find_element(By.ID, "limit")
    limit.clear()
    limit.send_keys("12")
    chrome.find_element(By.CSS_SELECTOR, "form[role=search] button[type=submit]").click()
    table = wait.until(expected_conditions.presence_of_element_located((By.ID, "results")))
    assert "place=02139" in chrome.current_url

    names = [e.text for e in table.find_elements(By.CSS_SELECTOR, "tbody th .name")]
    assert "Riverside Detox Center" in names
    assert SCRIPT_CENTER in names  # shown as text, the tag and all
    assert any("Institute for Health and Recovery Inc" in n for n in names)
    feeds = chrome.find_element(By.ID, "feeds").text
    assert SCRIPT_PARTNER in feeds
    assert "live · 12 minutes ago" in table.text and "STALE · last confirmed 9 hours ago" in table.text
    phone = table.find_element(By.CSS_SELECTOR, "a[href='tel:+16175550142']")
    assert phone.text == "(617) 555-0142"
    with pytest.raises(NoAlertPresentException):
        chrome.switch_to.alert.text  # noqa: B018  (reading it is what raises when no alert fired)
    assert chrome.execute_script("return document.scripts.length") == 0

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    assert chrome.save_screenshot(str(SCREENSHOT))
    data = SCREENSHOT.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000

    # signing out is a form post too (with the page's CSRF token): the session ends, the form is back
    session = cookie["value"]
    chrome.find_element(By.CSS_SELECTOR, "header.top form button[type=submit]").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "token")))
    assert chrome.title.startswith("Sign in")
    assert chrome.get_cookie("operator_session") is None
    with httpx.Client(base_url=base, cookies={"operator_session": session}) as replay:
        assert replay.get("/operator").status_code == 401  # the old cookie no longer opens the page
