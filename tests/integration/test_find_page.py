"""The public find page over real HTTP: the app under uvicorn (a thread) on the session's Redis, with the
bundled sample and a partner whose figures are live, stale and never reported (tests/integration/find_fixtures.py).

What a person in crisis on a phone gets in the first HTML response, in English and Spanish; the privacy
headers (no cookie, no referrer, a CSP that loads nothing from elsewhere); the weight of the whole page; the
embeddable button; and the API's log file, written by the API process as `centers serve` starts it, keeping
neither a full ZIP code nor coordinates nor a client address.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from aggregator.local.redis_process import free_port
from aggregator.local.serve import api_command
from aggregator.store import Store
from tests.integration import find_fixtures
from tests.integration.find_fixtures import HELPLINE, PREFIX, RIVERSIDE

MAX_PAGE_BYTES = 50_000


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[Store]:
    s = Store.from_url(redis_url, PREFIX)
    find_fixtures.load(s, find_fixtures.now_utc())
    yield s
    find_fixtures.clear(s)
    s.redis.connection_pool.disconnect()


@pytest.fixture(scope="module")
def base(store: Store) -> Iterator[str]:
    with find_fixtures.serving(store) as url:
        yield url


@pytest.fixture(scope="module")
def client(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=10) as c:
        yield c


def results_of(html: str) -> list[str]:
    """The center names of a results page, in order."""
    return re.findall(r"<h3>(.*?)</h3>", html)


def item_of(html: str, name: str) -> str:
    """One center's card."""
    start = html.index(f"<h3>{name}</h3>")
    return html[
        start : html.index('</li>\n    <li class="center">', start)
        if '<li class="center">' in html[start:]
        else html.index("</ol>", start)
    ]


def test_a_zip_search_answers_in_the_first_html_response(client: httpx.Client) -> None:
    resp = client.get("/find", params={"place": "02139"})
    assert resp.status_code == 200
    html = resp.text
    names = results_of(html)
    assert names[0] == RIVERSIDE  # nearest first
    assert len(names) == 10
    card = item_of(html, RIVERSIDE)
    # live: the status in words, the figure, and its age in plain words
    assert re.search(
        r"Detox \(withdrawal management\)</span> <span class=\"st\"><span aria-hidden=\"true\">✓</span> "
        r"Open</span> <span class=\"detail\">3 beds open</span> <span class=\"age\">confirmed 20 minutes "
        r"ago</span>",
        card,
    ), card
    # stale (9 hours old, one-hour window): never its old figure, "call to check" with when it was confirmed
    assert re.search(
        r"Residential treatment</span> <span class=\"st\">.*?Call to check</span> "
        r"<span class=\"age\">last confirmed 9 hours ago</span>",
        card,
    ), card
    assert "1 bed open" not in card
    # never reported
    assert re.search(
        r"Outpatient</span> <span class=\"st\">.*?Call to check</span> <span class=\"age\">No recent "
        r"report</span>",
        card,
    ), card
    # tap to call (intake first), directions, and the helpline in the header
    assert '<a class="btn call" href="tel:+16175550143">Call intake (617) 555-0143</a>' in card
    assert '<a class="btn call" href="tel:+16175550142">Call (617) 555-0142</a>' in card
    assert 'href="https://www.google.com/maps/dir/?api=1&amp;destination=42.365000,-71.103500"' in card
    header = html[html.index('<header class="help">') : html.index("</header>")]
    assert f'href="tel:+18006624357">Call the helpline {HELPLINE}</a>' in header
    # the sample's live figures are worded as such too (reported 7 minutes ago)
    assert "confirmed 7 minutes ago" in html
    assert "0 beds" not in html


def test_filters_and_can_take_someone_now(client: httpx.Client) -> None:
    html = client.get(
        "/find", params={"place": "02139", "level_of_care": "detox", "payment": "medicaid", "available_only": "on"}
    ).text
    names = results_of(html)
    assert names and names[0] == RIVERSIDE
    assert '<option value="detox" selected>' in html and '<option value="medicaid" selected>' in html
    assert 'name="available_only" type="checkbox" checked' in html
    card = item_of(html, RIVERSIDE)
    assert card.index("Detox (withdrawal management)") < card.index("Outpatient")  # the level searched, first
    for name in names:  # every one can take someone now: a live open detox
        assert re.search(
            r"Detox \(withdrawal management\)</span> <span class=\"st\"><span aria-hidden=\"true\">✓"
            r"</span> (Open|Limited space)</span>",
            item_of(html, name),
        ), name


def test_a_city_and_state_and_coordinates(client: httpx.Client) -> None:
    html = client.get("/find", params={"place": "cambridge ma"}).text
    assert "Centers near Cambridge, MA</h2>" in html and results_of(html)[0] in (
        RIVERSIDE,
        "Riverbend Recovery Residence",
    )
    html = client.get("/find", params={"lat": "42.365", "lon": "-71.104"}).text
    assert "Centers near your location</h2>" in html and results_of(html)[0] == RIVERSIDE


def test_the_spanish_page(client: httpx.Client) -> None:
    resp = client.get("/es/find", params={"place": "02139"})
    html = resp.text
    assert resp.status_code == 200 and resp.headers["content-language"] == "es"
    assert '<html lang="es">' in html
    assert "Consulte la disponibilidad en un centro cerca de usted</h1>" in html
    assert "Centros cerca de Cambridge, MA, código postal 02139</h2>" in html
    card = item_of(html, RIVERSIDE)
    assert (
        'Con plazas</span> <span class="detail">3 camas libres</span> <span class="age">confirmado hace 20 '
        "minutos</span>" in card
    )
    assert 'Llame para confirmar</span> <span class="age">confirmado por última vez hace 9 horas</span>' in card
    assert "Llamar a admisiones (617) 555-0143" in card and "Cómo llegar" in card
    assert "Llame a la línea de ayuda 1-800-662-4357" in html
    assert 'action="/es/find"' in html
    assert '<a class="lang" href="/find?place=02139&amp;radius_mi=25" lang="en" hreflang="en">English</a>' in html
    for english in ("Call to check", "confirmed", "Search</button>", "Level of care"):
        assert english not in html


def test_an_empty_answer_offers_the_hint_as_links(client: httpx.Client) -> None:
    # no center offers telehealth: the hint says what a change would find, and each suggestion is a working link
    html = client.get("/find", params={"place": "02139", "level_of_care": "telehealth", "radius_mi": "10"}).text
    assert results_of(html) == []
    assert "No center matched your search within 10 miles." in html
    assert "Without the level of care filter, the nearest is 0.1 miles away." in html
    link = re.search(r'<a href="(/find\?[^"]+)">Search without it</a>', html)
    assert link, html
    again = client.get(link.group(1).replace("&amp;", "&")).text
    assert results_of(again)[0] == RIVERSIDE
    assert "Someone at the helpline can help you find a place." in html and 'href="tel:+18006624357"' in html

    html = client.get("/find", params={"place": "01002", "level_of_care": "detox", "radius_mi": "10"}).text
    assert results_of(html) == []
    wider = re.search(
        r"Within 100 miles, the nearest center is ([\d.]+) miles away. <a href=\"([^\"]+)\">Search "
        r"within 100 miles</a>",
        html,
    )
    assert wider, html
    assert results_of(client.get(wider.group(2).replace("&amp;", "&")).text)


def test_errors_are_pages_that_offer_the_helpline(client: httpx.Client) -> None:
    for params, status, words in (
        ({"place": "99999"}, 404, "We do not know the ZIP code 99999."),
        ({"place": "1 Main St"}, 422, "Enter a 5-digit ZIP code, or a city and state"),
        ({"place": ""}, 422, "Enter a ZIP code or a city and state to search."),
        ({"lat": "north", "lon": "-71"}, 422, "We could not use that location."),
        ({"place": "Cambrige, MA"}, 404, "We could not find Cambrige, MA."),
    ):
        resp = client.get("/find", params=params)
        assert resp.status_code == status, (params, resp.status_code)
        assert words in resp.text
        alert = resp.text[resp.text.index('<div class="msg" role="alert">') :]
        assert 'href="tel:+18006624357"' in alert[: alert.index("</div>")]
    html = client.get("/find", params={"place": "Cambrige, MA"}).text
    assert '<a href="/find?place=Cambridge%2C+MA&amp;radius_mi=25">Cambridge, MA</a>' in html  # did you mean


def test_while_the_store_loads_the_page_says_so(redis_url: str) -> None:
    empty = Store.from_url(redis_url, "find-empty:")
    find_fixtures.clear(empty, "find-empty:")
    with find_fixtures.serving(empty) as url:
        resp = httpx.get(url + "/find", params={"place": "02139"}, timeout=10)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "30"
    assert "Availability is still loading." in resp.text and "No center matched" not in resp.text
    empty.redis.connection_pool.disconnect()


def test_privacy_headers_and_no_cookies(client: httpx.Client) -> None:
    for path in ("/find", "/find?place=02139", "/es/find?place=02139", "/find?place=99999"):
        resp = client.get(path)
        assert "set-cookie" not in resp.headers, path
        assert resp.headers["referrer-policy"] == "no-referrer"
        assert resp.headers["cache-control"] == "no-store"
        csp = dict(part.strip().split(" ", 1) for part in resp.headers["content-security-policy"].split(";"))
        assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
        assert csp["form-action"] == "'self'" and "connect-src" not in csp
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert '<meta name="referrer" content="no-referrer">' in resp.text


def test_the_whole_page_is_light_and_its_assets_cacheable(client: httpx.Client, base: str) -> None:
    resp = client.get("/find", params={"place": "02139"})
    html = resp.text
    assets = re.findall(r'<(?:link rel="stylesheet"|script) (?:href|src)="([^"]+)"', html)
    assert len(assets) == 2 and all(re.fullmatch(r"/static/find\.[0-9a-f]{12}\.(css|js)", a) for a in assets)
    total = len(resp.content)
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "set-cookie" not in got.headers
        assert client.get(asset, headers={"if-none-match": got.headers["etag"]}).status_code == 304
        total += len(got.content)
    print(f"page weight: {len(resp.content)} B HTML + assets = {total} B")
    assert total < MAX_PAGE_BYTES, total
    # nothing on the page is loaded from elsewhere: every src and stylesheet is this server's
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        absolute = urljoin(base + "/find", url.replace("&amp;", "&"))
        if url.startswith(("tel:", "https://www.google.com/maps/dir/", "data:")):
            continue  # links the reader may follow (calls, directions), never loaded by the page
        assert absolute.startswith(base + "/"), url
    assert client.get("/static/find.000000000000.css").status_code == 404


def test_the_embeddable_button(client: httpx.Client) -> None:
    resp = client.get("/embed/button.js")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/javascript")
    assert "set-cookie" not in resp.headers
    js = resp.text
    assert '"en": "Check Availability at a Center Near You"' in js
    assert '"es": "Consulte la disponibilidad en un centro cerca de usted"' in js
    for tracker in (
        "cookie",
        "fetch(",
        "XMLHttpRequest",
        "sendBeacon",
        "localStorage",
        "Image(",
        "http://",
        "https://",
    ):
        assert tracker not in js.split("*/", 1)[1], tracker  # below its comment: no tracking, nothing loaded


# ------------------------------------------------------------------------------ the API's access log


@pytest.fixture(scope="module")
def api_process(redis_url: str, store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The API as `centers serve` starts it (its command line), writing to a log file as serve's api.log."""
    folder = tmp_path_factory.mktemp("find-api")
    registry = folder / "feeds.toml"
    registry.write_text(
        '[[feed]]\nid = "nightly"\npartner = "Nightly Beds"\nformat = "csv"\n'
        'url = "https://feeds.example.org/nightly.csv"\nschedule = "15m"\nfreshness = "1h"\n'
        '[feed.mapping.fields]\nsource_id = "id"\nname = "name"\nstate = "state"\n'
        'postal_code = "zip"\n'
    )
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CENTERS_KEY_PREFIX": PREFIX,
        "CENTERS_FEEDS_FILE": str(registry),
        "CENTERS_GEOCODER": "none",
        "CENTERS_RATE_LIMIT": "100000",
        "CENTERS_DATA_DIR": str(folder),
    }
    port = free_port()
    log_path = folder / "api.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            api_command("127.0.0.1", port), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, log_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def test_the_access_log_keeps_neither_the_zip_nor_coordinates(api_process: tuple[str, Path]) -> None:
    url, log_path = api_process
    assert "--no-access-log" in api_command("127.0.0.1", 1)  # uvicorn's own log would write raw queries
    with httpx.Client(base_url=url, timeout=10, headers={"X-Forwarded-For": "203.0.113.77"}) as c:
        assert c.get("/find", params={"place": "02139", "level_of_care": "detox"}).status_code == 200
        assert c.get("/es/find", params={"lat": "42.3651", "lon": "-71.1043"}).status_code == 200
        assert c.get("/find", params={"place": "Cambridge, MA"}).status_code == 200
        assert c.get("/find", params={"place": "42.3652, -71.1044"}).status_code == 200
        assert c.get("/v1/centers/near", params={"zip": "02139"}).status_code == 200
        assert (
            c.get("/v1/centers/near", params={"lat": "42.3653", "lon": "-71.1045", "radius_mi": "10"}).status_code
            == 200
        )
        assert c.get("/v1/centers/near", params={"place": "02139-1234"}).status_code == 200
    deadline = time.monotonic() + 5
    while log_path.read_text().count(" GET ") < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    log = log_path.read_text()
    lines = [line for line in log.splitlines() if " GET " in line]
    assert len(lines) == 7, log
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ GET /find\?place=021xx&level_of_care=detox 200 \d+ms", lines[0]
    ), lines[0]
    assert re.fullmatch(r"\S+ GET /es/find 200 \d+ms", lines[1]), lines[1]
    assert "place=(city),MA" in lines[2]
    assert "/v1/centers/near?zip=021xx" in lines[4] and "/v1/centers/near?radius_mi=10 200" in lines[5]
    assert "place=021xx" in lines[6]
    assert "02139" not in log and "Cambridge" not in log
    for fragment in ("42.36", "-71.10", "lat=", "lon=", "203.0.113.77", "127.0.0.1"):
        assert fragment not in log, fragment
