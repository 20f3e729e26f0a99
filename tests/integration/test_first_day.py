"""Issue 13, the rough edges a first day finds: what operators and callers read must be true.

* The operator form offers an address only when the page can search one (a geocoder is configured).
* ``/docs`` works on a closed network: every asset it names is served by this process.
* Before the store has loaded any feed, a search answers 503 ``loading`` (never "no centers, and none
  would with a wider radius"), and ``/readyz`` says it is not ready and why.
* Feed health tells "last checked" (any successful run, a 304 or an unchanged export too) from "last
  changed" (the last run that changed data).
* Every availability figure carries its feed's freshness window (``freshness_seconds``).

The app runs in process (FastAPI's TestClient) against the session's real Redis; feed runs fetch from
a loopback partner server. The operator page's layout in headless Chromium is in
``test_operator_layout.py``.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator.api import create_app
from aggregator.fetch import Fetcher, new_session
from aggregator.geocode import Geocoder, GeocoderConfig
from aggregator.health import feed_health, loading_reason
from aggregator.ingest import Pipeline
from aggregator.store import FeedState, PushRecord, Store, connect
from config.registry import FeedConfig, Registry, parse
from config.settings import Settings
from tests.integration.factories import center, observation
from tests.servers import LoopbackServer, Response

TOKEN = "first-day-operator-token-0123456789"
OP = {"authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)

PULLED = """
[[feed]]
id = "beds"
partner = "Bay State Beds"
format = "csv"
url = "{url}"
allow_private = true
schedule = "15m"
freshness = "2h"
timeout = 2
timezone = "America/New_York"
[feed.mapping.fields]
source_id = "ID"
name = "Name"
state = "State"
postal_code = "ZIP"
latitude = "Lat"
longitude = "Lon"
levels_of_care = "Services"
reported_at = "Updated"
[[feed.mapping.availability]]
constants = {{ level_of_care = "detox" }}
fields = {{ beds_available = "Detox beds" }}

[[feed]]
id = "harbor"
partner = "Harbor Health"
format = "push"
freshness = "6h"
push = {{ bearer_key_env = ["HARBOR_KEY"] }}
[feed.mapping.fields]
source_id = "id"
name = "name"
state = "state"
postal_code = "zip"
"""

PUSH_ONLY = PULLED[PULLED.index('[[feed]]\nid = "harbor"') :].replace("{{", "{").replace("}}", "}")

CSV = (
    b"ID,Name,State,ZIP,Lat,Lon,Services,Detox beds,Updated\n"
    b"C1,Riverside Detox,MA,02139,42.3655,-71.1030,DT; RES,3,11/27/2026 9:45 AM\n"
    b"C2,Harbor North,MA,02144,42.3990,-71.1220,DT,0,11/27/2026 9:30 AM\n"
)


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def registry_for(url: str = "http://127.0.0.1:9/beds.csv") -> Registry:
    return parse(tomllib.loads(PULLED.format(url=url)))


def build(store: Store, registry: Registry, clock: Clock, *, geocoder: Geocoder | None = None) -> FastAPI:
    settings = Settings.from_env(
        {"CENTERS_OPERATOR_TOKENS": f"dana:{TOKEN}", "CENTERS_RATE_LIMIT": "100000", "CENTERS_GEOCODER": "none"}
    )
    return create_app(
        settings,
        store,
        registry=registry,
        enqueue=lambda _name, _args: None,
        environ={},
        clock=clock,
        geocoder=geocoder,
    )


def feed(registry: Registry, feed_id: str) -> FeedConfig:
    return next(f for f in registry.feeds if f.id == feed_id)


# ------------------------------------------------------------------------- 3c: the form's promise


def place_label(html: str) -> str:
    found = re.search(r'<label for="place">(.*?)</label>', html, re.S)
    assert found, html[:2000]
    return re.sub(r"<[^>]+>", "", found.group(1))


def test_without_a_geocoder_the_form_does_not_offer_an_address(store: Store) -> None:
    with TestClient(build(store, registry_for(), Clock())) as client:
        page = client.get("/operator", headers=OP)
        assert page.status_code == 200
        label = place_label(page.text)
        assert "address" not in label.replace("address search is off", ""), label
        assert "address search is off" in label
        # and what the label says is what the search does
        refused = client.get("/operator", params={"place": "1 Main St, Springfield"}, headers=OP)
        assert refused.status_code == 422 and "address search is off" in refused.text
        empty = client.get("/operator", params={"place": ""}, headers=OP)
        assert "enter a ZIP code, &#39;City, ST&#39; or &#39;lat,lon&#39;" in empty.text
        assert "or an address" not in empty.text
        assert "City, ST" in label  # and a city is searched offline (the ZIP data)
        city = client.get("/operator", params={"place": "Cambridge, MA"}, headers=OP)
        assert city.status_code == 503 and "loading" in city.text  # the place is accepted; this store is empty


def test_with_a_geocoder_the_form_offers_an_address(store: Store) -> None:
    geocoder = Geocoder(store, GeocoderConfig(domain="127.0.0.1:9", scheme="http", min_interval=0))
    assert geocoder.enabled
    with TestClient(build(store, registry_for(), Clock(), geocoder=geocoder)) as client:
        label = place_label(client.get("/operator", headers=OP).text)
        assert "or an address" in label and "off" not in label, label


def test_the_folded_filters_open_when_one_of_them_is_wrong(store: Store) -> None:
    store.replace_feed(
        "beds", [center("beds", "C1", 42.3655, -71.1030, levels_of_care=["detox"])], [], now=NOW, source="pull"
    )
    with TestClient(build(store, registry_for(), Clock())) as client:
        fine = client.get("/operator", params={"place": "02139", "level_of_care": "detox"}, headers=OP).text
        assert '<details class="filters" id="more-filters">' in fine  # folded, and says what is on
        assert '<span class="chosen">Detox</span>' in fine
        wrong = client.get("/operator", params={"place": "02139", "language": "spanish"}, headers=OP)
        assert wrong.status_code == 422
        assert '<details class="filters" id="more-filters" open>' in wrong.text


# ---------------------------------------------------------------------------------- 4: /docs offline


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline.append(data)


def test_docs_name_only_assets_this_server_serves(store: Store) -> None:
    with TestClient(build(store, registry_for(), Clock())) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        parser = _Assets()
        parser.feed(page.text)
        assert parser.urls, page.text
        for url in parser.urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc and url.startswith("/"), f"{url} is not same-origin"
        # nothing else is fetched from elsewhere: no absolute URL anywhere on the page (the inline script
        # included: no CDN, no online validator), and the browser is told to load from this origin only
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", page.text, re.I), page.text
        assert "validatorUrl" in "".join(parser.inline)
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "http" not in csp
        kinds = {}
        for url in parser.urls:
            asset = client.get(url)
            assert asset.status_code == 200, url
            kinds[url.rsplit(".", 1)[-1]] = asset.headers["content-type"]
            assert len(asset.content) > 100, url
        assert kinds["js"].startswith(("text/javascript", "application/javascript")), kinds
        assert kinds["css"].startswith("text/css"), kinds
        # the page reads the API's own document, which Swagger UI 5 renders (OpenAPI 3.1)
        assert "url: '/openapi.json'" in page.text
        assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
        bundle = client.get("/docs/assets/swagger-ui-bundle.js").text
        assert "OAS31" in bundle or "isOAS31" in bundle  # Swagger UI 4 refuses a 3.1 document: blank docs
        # ReDoc would come from a CDN: it is not offered
        assert client.get("/redoc").status_code == 404
        assert "/docs" not in client.get("/openapi.json").json()["paths"]


# ----------------------------------------------------------------------------- 5: the first load


def test_before_the_first_load_searches_answer_loading_never_none_near(store: Store, partner: LoopbackServer) -> None:
    partner.route("/beds.csv", Response(200, CSV, {"Content-Type": "text/csv"}))
    registry = registry_for(partner.url("/beds.csv"))
    clock = Clock()
    with TestClient(build(store, registry, clock)) as client:
        near = client.get("/v1/centers/near", params={"zip": "02139"})
        assert near.status_code == 503, near.text
        assert near.json()["error"] == "loading"
        assert "no feed has been applied yet" in near.json()["detail"]
        assert int(near.headers["retry-after"]) > 0
        assert "none would" not in near.text and "No centers" not in near.text
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"] == "loading", ready.text
        assert ready.json()["status"] == "loading" and "no feed has been applied yet" in ready.json()["detail"]
        assert int(ready.headers["retry-after"]) > 0
        assert client.get("/v1/centers/beds:C1").json()["error"] == "loading"  # not "no center"
        ops = client.get("/v1/operator/centers/near", params={"place": "02139"}, headers=OP)
        assert ops.status_code == 503 and ops.json()["error"] == "loading"
        page = client.get("/operator", params={"place": "02139"}, headers=OP)
        assert page.status_code == 503 and "the store is loading" in page.text
        assert "No centers matched" not in page.text and "none would" not in page.text
        assert client.get("/healthz").status_code == 200  # the process is up all the same

        # a first run that fails leaves the store loading, and the reason names the feed
        partner.route("/beds.csv", Response(500, b"down"))
        pipeline = Pipeline(store, Fetcher(new_session("center-availability-tests/1.0")), clock=clock)
        with pytest.raises(Exception, match="500"):
            pipeline.run(feed(registry, "beds"))
        assert "first run failed for beds" in client.get("/readyz").json()["detail"]

        # the first run applies: searches answer, an empty one with its honest hint
        partner.route("/beds.csv", Response(200, CSV, {"Content-Type": "text/csv"}))
        clock.now += timedelta(minutes=1)
        assert pipeline.run(feed(registry, "beds"), force=True).status == "applied"
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
        assert client.get("/v1/centers/near", params={"zip": "02139"}).json()["count"] == 2
        far = client.get("/v1/centers/near", params={"zip": "99501", "radius_mi": 5})
        assert far.status_code == 200 and far.json()["count"] == 0 and far.json()["hint"]
        assert client.get("/v1/centers/beds:nope").status_code == 404


def test_a_large_first_load_stays_loading_until_its_flip(redis_url: str) -> None:
    """A staged (large) snapshot writes in many steps behind masks: the store is loaded at the flip."""
    store = Store(connect(redis_url), "firstday:", stage_above=1)
    store.redis.flushdb()
    registry = registry_for()
    seen: dict[str, bool] = {}
    store.on_stage_step = lambda step: seen.setdefault(step, bool(loading_reason(registry.feeds, store)))
    try:
        centers = [center("beds", f"C{i}", 42.36 + i / 1000, -71.10, levels_of_care=["detox"]) for i in range(5)]
        store.replace_feed("beds", centers, [], now=NOW, source="pull")
        assert seen.get("masked") is True and seen.get("chunk") is True, seen  # written, not yet visible
        assert seen.get("flipped") is False, seen
        assert loading_reason(registry.feeds, store) == ""
    finally:
        store.redis.flushdb()
        store.redis.connection_pool.disconnect()


def test_a_push_only_registry_is_never_loading(store: Store) -> None:
    """Its data comes by push, through this API: a readiness that waited for it would never be ready."""
    registry = parse(tomllib.loads(PUSH_ONLY))
    with TestClient(build(store, registry, Clock())) as client:
        assert client.get("/readyz").status_code == 200
        near = client.get("/v1/centers/near", params={"zip": "02139"})
        assert near.status_code == 200 and near.json()["count"] == 0


# --------------------------------------------------------------- 7: last checked and last changed


def test_feed_health_tells_last_checked_from_last_changed(store: Store, partner: LoopbackServer) -> None:
    registry = registry_for(partner.url("/beds.csv"))
    beds = feed(registry, "beds")
    partner.route("/beds.csv", Response(200, CSV, {"Content-Type": "text/csv", "ETag": '"v1"'}))
    clock = Clock()
    pipeline = Pipeline(store, Fetcher(new_session("center-availability-tests/1.0")), clock=clock)
    assert pipeline.run(beds).status == "applied"
    applied = clock.now

    def health() -> dict[str, Any]:
        return next(h for h in feed_health(registry.feeds, store, clock.now) if h["id"] == "beds")

    assert health()["last_checked"] == health()["last_changed"] == "2026-11-27T15:00:00Z"

    # the partner answers 304: checked now, data unchanged since the first run
    partner.route(
        "/beds.csv",
        lambda req: (
            Response(304)
            if req.headers.get("if-none-match") == '"v1"'
            else Response(200, CSV, {"Content-Type": "text/csv", "ETag": '"v1"'})
        ),
    )
    clock.now = applied + timedelta(minutes=30)
    assert pipeline.run(beds).status == "not_modified"
    assert (health()["last_checked"], health()["last_changed"]) == ("2026-11-27T15:30:00Z", "2026-11-27T15:00:00Z")

    # the same export again (no validators): unchanged, checked again
    partner.route("/beds.csv", Response(200, CSV, {"Content-Type": "text/csv"}))
    clock.now = applied + timedelta(hours=1)
    assert pipeline.run(beds).status == "unchanged"
    assert (health()["last_checked"], health()["last_changed"]) == ("2026-11-27T16:00:00Z", "2026-11-27T15:00:00Z")

    # the JSON API and the operator page show both
    with TestClient(build(store, registry, clock)) as client:
        feeds = client.get("/v1/feeds", headers=OP).json()["feeds"]
        row = next(f for f in feeds if f["id"] == "beds")
        assert (row["last_checked"], row["last_changed"]) == ("2026-11-27T16:00:00Z", "2026-11-27T15:00:00Z")
        page = client.get("/operator", headers=OP).text
        table = page[page.index('<table id="feeds"') :]
        assert "Last checked</th>" in table and "Last changed</th>" in table and "Last success" not in table
        table = table[table.index("beds · csv") :]
        cells = re.search(
            r'<td data-label="Last checked" class="last-checked">(.*?)</td>\s*'
            r'<td data-label="Last changed" class="last-changed">(.*?)</td>',
            table,
            re.S,
        )
        assert cells, table[:3000]
        assert "a few seconds ago" in cells.group(1) and "2026-11-27 16:00 UTC" in cells.group(1)
        assert "60 minutes ago" in cells.group(2) and "2026-11-27 15:00 UTC" in cells.group(2)


def test_a_push_is_a_check_and_a_change(store: Store) -> None:
    registry = registry_for()
    harbor = feed(registry, "harbor")
    clock = Clock()
    pipeline = Pipeline(store, Fetcher(new_session("center-availability-tests/1.0")), clock=clock)
    store.accept_push(
        "harbor",
        "evt-1",
        "ing_1",
        PushRecord(
            feed_id="harbor",
            kind="json",
            status="queued",
            body=b'[{"id": "h-1", "name": "Harbor House", "state": "MA", "zip": "02139"}]',
            received_at="2026-11-27T15:00:00Z",
        ),
    )
    assert pipeline.apply_push(harbor, "ing_1")["status"] == "done"
    assert store.feed_state("harbor").last_checked == "2026-11-27T15:00:00Z"  # recorded, not inferred
    [row] = [h for h in feed_health(registry.feeds, store, clock.now) if h["id"] == "harbor"]
    assert row["last_checked"] == row["last_changed"] == "2026-11-27T15:00:00Z"


def test_older_feed_state_without_last_checked_reads_its_last_success(store: Store) -> None:
    registry = registry_for()
    store.set_feed_state("beds", FeedState(last_success="2026-11-27T14:00:00Z", last_checked="2026-11-27T13:00:00Z"))
    [row] = [h for h in feed_health(registry.feeds, store, NOW) if h["id"] == "beds"]
    assert (row["last_checked"], row["last_changed"]) == ("2026-11-27T14:00:00Z", "2026-11-27T14:00:00Z")


# ------------------------------------------------------------------ 9: each figure's freshness window


def test_every_figure_carries_its_freshness_window(store: Store) -> None:
    live = center("beds", "C1", 42.3655, -71.1030, name="Riverside Detox", levels_of_care=["detox", "residential"])
    store.replace_feed(
        "beds",
        [live],
        [
            observation(
                live, "detox", "available", beds_available=3, reported_at=NOW - timedelta(minutes=10), freshness=7200
            ),
        ],
        now=NOW,
        source="pull",
    )
    with TestClient(build(store, registry_for(), Clock())) as client:
        report = client.post(
            "/v1/centers/beds:C1/reports",
            headers=OP,
            json={"level_of_care": "residential", "status": "limited", "beds_available": 1, "expires_in_minutes": 90},
        )
        assert report.status_code == 201, report.text
        public = client.get("/v1/centers/near", params={"zip": "02139"}).json()
        [result] = public["results"]
        by_level = {a["level_of_care"]: a for a in result["availability"]}
        assert by_level["detox"]["freshness_seconds"] == 7200 and by_level["detox"]["fresh"] is True
        assert by_level["residential"]["freshness_seconds"] == 90 * 60  # an operator's report: its expiry
        by_id = {a["level_of_care"]: a for a in client.get("/v1/centers/beds:C1").json()["availability"]}
        assert by_id["detox"]["freshness_seconds"] == 7200
        ops = client.get("/v1/operator/centers/near", params={"place": "02139"}, headers=OP).json()
        assert {a["level_of_care"]: a["freshness_seconds"] for a in ops["results"][0]["availability"]} == {
            "detox": 7200,
            "residential": 5400,
        }
        # the response model documents it
        spec = client.get("/openapi.json").json()
        assert "freshness_seconds" in spec["components"]["schemas"]["Availability"]["properties"]


def test_a_level_nobody_reported_has_no_window(store: Store) -> None:
    bare = center("beds", "C9", 42.3655, -71.1030, levels_of_care=["detox"])
    store.replace_feed("beds", [bare], [], now=NOW, source="pull")
    with TestClient(build(store, registry_for(), Clock())) as client:
        [entry] = client.get("/v1/centers/beds:C9").json()["availability"]
        assert entry["status"] == "unknown" and entry["freshness_seconds"] is None and entry["age_seconds"] is None
