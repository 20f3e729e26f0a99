"""Geocoding through geopy's real Nominatim class against a Nominatim-compatible server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import GeocoderPermanent, GeocoderTransient
from aggregator.geocode import Geocoder, GeocoderConfig, locate_text, place_all, retry_pending
from aggregator.ingest import apply_snapshot
from aggregator.lookup import near
from aggregator.model import GeoPrecision
from aggregator.normalize import FeedContext
from aggregator.store import Store
from tests.conftest import SHARED_DATA
from tests.integration.factories import NOW, center
from tests.servers import LoopbackServer, Request, Response

NOMINATIM_SAMPLES = SHARED_DATA / "nominatim_responses"


def sample(name: str, fallback: bytes) -> bytes:
    """A real Nominatim answer from ../shared/data where present, else a small one of the same shape."""
    path = NOMINATIM_SAMPLES / name
    return path.read_bytes() if path.exists() else fallback


MSG_HIT = sample(
    "madison_square_garden.json",
    json.dumps(
        [
            {
                "place_id": "30632629",
                "osm_type": "way",
                "lat": "40.7504928941818",
                "lon": "-73.993466492276",
                "display_name": "Madison Square Garden, West 31st Street, New York, 10001, United States of America",
                "class": "leisure",
                "type": "stadium",
                "address": {
                    "road": "West 31st Street",
                    "city": "New York City",
                    "state": "New York",
                    "postcode": "10001",
                    "country_code": "us",
                },
            }
        ]
    ).encode(),
)
NO_RESULTS = sample("no_results.json", b"[ ]")
OVER_LIMIT = sample("over_limit.html", b"<html><head><title>Bandwidth limit exceeded</title></head></html>")


def hit(
    lat: float, lon: float, state: str, cls: str = "building", kind: str = "yes", addresstype: str = "building"
) -> bytes:
    return json.dumps(
        [
            {
                "lat": str(lat),
                "lon": str(lon),
                "class": cls,
                "type": kind,
                "addresstype": addresstype,
                "display_name": f"somewhere, {state}",
                "address": {"house_number": "1", "road": "Main Street", "state": state, "country_code": "us"}
                if cls != "place"
                else {"city": "Cambridge", "state": state, "country_code": "us"},
            }
        ]
    ).encode()


class FakeNominatim:
    """Answers /search by the street (structured query) or q (free text) it is asked about."""

    def __init__(self) -> None:
        self.answers: dict[str, Response] = {}
        self.default = Response(200, NO_RESULTS, {"Content-Type": "application/json"})
        self.server = LoopbackServer()
        self.server.route("/search", self.handle)

    def handle(self, req: Request) -> Response:
        key = (req.query.get("street") or req.query.get("q") or [""])[0].lower()
        return self.answers.get(key, self.default)

    def answer(self, key: str, response: Response | bytes) -> None:
        self.answers[key.lower()] = (
            response
            if isinstance(response, Response)
            else Response(200, response, {"Content-Type": "application/json"})
        )

    def requests(self) -> list[Request]:
        return self.server.requests("/search")


@pytest.fixture
def nominatim() -> Iterator[FakeNominatim]:
    fake = FakeNominatim()
    fake.server.start()
    yield fake
    fake.server.stop()


def config(fake: FakeNominatim, **kw: Any) -> GeocoderConfig:
    base: dict[str, Any] = {
        "domain": f"127.0.0.1:{fake.server.port}",
        "scheme": "http",
        "timeout": 1.0,
        "min_interval": 0.05,
        "user_agent": "center-availability-tests/1.0",
        "retries": 1,
        "max_retry_wait": 0.2,
    }
    base.update(kw)
    return GeocoderConfig(**base)


def geocoder(store: Store, fake: FakeNominatim, **kw: Any) -> Geocoder:
    return Geocoder(store, config(fake, **kw))


def nyc(sid: str = "msg", street: str = "4 Pennsylvania Plaza") -> Any:
    return center(
        "f",
        sid,
        state="NY",
        postal_code="10001",
        address={"address_1": street, "city": "New York", "state": "NY", "postal_code": "10001"},
    )


# ---------------------------------------------------------------------------------------- answers


def test_a_street_level_answer_places_the_center(store: Store, nominatim: FakeNominatim) -> None:
    nominatim.answer("4 Pennsylvania Plaza", MSG_HIT)
    [placed], report = place_all([nyc()], geocoder(store, nominatim), NOW)
    assert (placed.latitude, placed.longitude) == pytest.approx((40.7504928941818, -73.993466492276))
    assert placed.geo_precision is GeoPrecision.ROOFTOP
    assert placed.geo_source == "nominatim"
    assert report.geocoded == 1
    [req] = nominatim.requests()
    assert req.query["street"] == ["4 Pennsylvania Plaza"] and req.query["postalcode"] == ["10001"]
    assert req.headers["user-agent"] == "center-availability-tests/1.0"


def test_feed_coordinates_are_used_when_plausible(store: Store, nominatim: FakeNominatim) -> None:
    c = nyc().model_copy(update={"latitude": 40.7505, "longitude": -73.9934, "geo_precision": GeoPrecision.FEED})
    [placed], report = place_all([c], geocoder(store, nominatim), NOW)
    assert placed.geo_precision is GeoPrecision.FEED and report.feed == 1
    assert nominatim.requests() == []


def test_feed_coordinates_far_from_the_zip_are_replaced(store: Store, nominatim: FakeNominatim) -> None:
    nominatim.answer("4 Pennsylvania Plaza", MSG_HIT)
    c = nyc().model_copy(update={"latitude": 42.65, "longitude": -73.75, "geo_precision": GeoPrecision.FEED})  # Albany
    [placed], report = place_all([c], geocoder(store, nominatim), NOW)
    assert placed.geo_precision is GeoPrecision.ROOFTOP
    assert "km from ZIP 10001" in report.dropped_feed_coordinates[0]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (NO_RESULTS, "no match"),
        (hit(42.3736, -71.1097, "Massachusetts", cls="place", kind="city", addresstype="city"), "too vague"),
        (hit(40.7357, -74.1724, "New Jersey"), "not NY"),
    ],
)
def test_vague_or_wrong_state_answers_count_as_not_found(
    store: Store, nominatim: FakeNominatim, body: bytes, why: str
) -> None:
    nominatim.answer("4 Pennsylvania Plaza", body)
    g = geocoder(store, nominatim)
    answer = g.lookup(
        {"street": "4 Pennsylvania Plaza", "city": "New York", "state": "NY", "postalcode": "10001", "country": "us"},
        "NY",
        "10001",
    )
    assert not answer.found
    assert why in answer.reason
    [placed], _ = place_all([nyc()], g, NOW)
    assert placed.geo_precision is GeoPrecision.POSTAL_CODE  # ZIP centroid, marked as such
    assert placed.geo_source == "zipcodes"


def test_every_answer_is_cached_including_not_found(store: Store, nominatim: FakeNominatim) -> None:
    nominatim.answer("4 Pennsylvania Plaza", MSG_HIT)
    centers = [nyc(), nyc("nowhere", "999 Imaginary Road")]
    place_all(centers, geocoder(store, nominatim), NOW)
    assert len(nominatim.requests()) == 2
    _placed, report = place_all(centers, geocoder(store, nominatim), NOW)
    assert len(nominatim.requests()) == 2  # both answers came from the cache
    assert report.cached == 2
    ttls = sorted(store.redis.ttl(k) for k in store.redis.keys(store.keys.geocode_answer("*")))
    assert ttls[0] <= 7 * 86400 < ttls[1]  # "not found" lives shorter


# ------------------------------------------------------------------------------------------ faults


@pytest.mark.parametrize(
    "response",
    [
        Response(503, b"busy"),
        Response(200, MSG_HIT, {"Content-Type": "application/json"}, delay=1.5),
        Response(509, OVER_LIMIT, {"Content-Type": "text/html"}),
        Response(200, OVER_LIMIT, {"Content-Type": "text/html"}),
        Response(429, b"slow down", {"Retry-After": "1"}),
    ],
    ids=["503", "timeout", "over-limit-509", "over-limit-page-200", "429"],
)
def test_an_outage_is_transient_never_not_found(store: Store, nominatim: FakeNominatim, response: Response) -> None:
    nominatim.answer("4 Pennsylvania Plaza", response)
    g = geocoder(store, nominatim)
    with pytest.raises(GeocoderTransient):
        g.lookup({"street": "4 Pennsylvania Plaza", "state": "NY"}, "NY", "10001")
    assert len(nominatim.requests()) == 2  # one retry, then it gives up
    assert store.redis.keys(store.keys.geocode_answer("*")) == []  # nothing cached


def test_a_refused_query_is_permanent(store: Store, nominatim: FakeNominatim) -> None:
    nominatim.answer("4 Pennsylvania Plaza", Response(403, b"forbidden"))
    with pytest.raises(GeocoderPermanent):
        geocoder(store, nominatim).lookup({"street": "4 Pennsylvania Plaza"}, "NY", "10001")
    assert len(nominatim.requests()) == 1  # no retry


def test_an_outage_during_ingest_places_by_zip_and_queues_a_retry(store: Store, nominatim: FakeNominatim) -> None:
    nominatim.default = Response(503, b"down")
    raw = {
        "source_id": "msg",
        "name": "Garden Recovery",
        "address_1": "4 Pennsylvania Plaza",
        "city": "New York",
        "state": "NY",
        "postal_code": "10001",
        "levels_of_care": "DT",
    }
    ctx = FeedContext(feed_id="f", now=NOW)
    report = apply_snapshot(store, [raw], ctx, geocoder(store, nominatim))
    assert report.placement is not None and report.placement.queued == 1
    stored = near(store, zip="10001", radius_mi=2, now=NOW).results
    assert [h.id for h in stored] == ["f:msg"]
    assert stored[0].center["geo_precision"] == "postal_code"
    assert store.pending_geocode_retries() == ["f:msg"]
    assert store.redis.keys(store.keys.geocode_answer("*")) == []  # the outage is not "not found"

    # the geocoder comes back: the queued center is placed at its street address
    nominatim.default = Response(200, NO_RESULTS, {"Content-Type": "application/json"})
    nominatim.answer("4 Pennsylvania Plaza", MSG_HIT)
    done = retry_pending(store, geocoder(store, nominatim), NOW.replace(hour=NOW.hour + 1))
    assert done["located"] == 1
    assert store.pending_geocode_retries() == []
    [hit_] = near(store, zip="10001", radius_mi=2, now=NOW).results
    assert hit_.center["geo_precision"] == "rooftop"
    assert hit_.center["latitude"] == pytest.approx(40.7505, abs=1e-3)


def test_a_second_ingest_of_the_same_feed_makes_no_geocoder_requests(store: Store, nominatim: FakeNominatim) -> None:
    nominatim.answer("4 Pennsylvania Plaza", MSG_HIT)
    raws = [
        {
            "source_id": str(i),
            "name": f"Center {i}",
            "address_1": street,
            "city": "New York",
            "state": "NY",
            "postal_code": "10001",
        }
        for i, street in enumerate(["4 Pennsylvania Plaza", "1 Nowhere Lane", ""])
    ]
    ctx = FeedContext(feed_id="f", now=NOW)
    first = apply_snapshot(store, raws, ctx, geocoder(store, nominatim))
    assert len(nominatim.requests()) == 2  # the record without a street goes straight to its ZIP centroid
    assert first.placement is not None and first.placement.geocoded == 1
    second = apply_snapshot(store, raws, ctx, geocoder(store, nominatim))
    assert len(nominatim.requests()) == 2
    assert second.placement is not None and second.placement.cached == 2


def test_a_center_that_cannot_be_placed_is_kept_for_operators(store: Store, nominatim: FakeNominatim) -> None:
    c = center("f", "ghost-zip", postal_code="02139")
    unplaceable = c.model_copy(update={"address": c.address.model_copy(update={"postal_code": "00001"})})
    placed, report = place_all([unplaceable], geocoder(store, nominatim), NOW)
    assert report.unplaced == ["f:ghost-zip"]
    store.replace_feed("f", placed, [], now=NOW)
    assert store.needs_location() == ["f:ghost-zip"]


def test_operator_free_text_places_go_through_the_same_cache(store: Store, nominatim: FakeNominatim) -> None:
    nominatim.answer(
        "cambridge, ma", hit(42.3736, -71.1097, "Massachusetts", cls="place", kind="city", addresstype="city")
    )
    g = geocoder(store, nominatim)
    assert locate_text(g, "Cambridge, MA").found
    assert locate_text(g, "  cambridge,   MA ").found
    assert len(nominatim.requests()) == 1


def test_public_zip_and_coordinate_searches_never_call_the_geocoder(store: Store, nominatim: FakeNominatim) -> None:
    store.replace_feed("f", [center("f", "a", 40.75, -73.99, state="NY", postal_code="10001")], [], now=NOW)
    near(store, zip="10001", now=NOW)
    near(store, latitude=40.75, longitude=-73.99, now=NOW)
    assert nominatim.requests() == []


# ------------------------------------------------------------------------------- the shared limit


def _geocode_many(redis_url: str, port: int, streets: list[str], interval: float) -> None:
    store = Store.from_url(redis_url)
    g = Geocoder(
        store,
        GeocoderConfig(
            domain=f"127.0.0.1:{port}", scheme="http", min_interval=interval, user_agent="center-availability-tests/1.0"
        ),
    )
    for street in streets:
        g.lookup({"street": street, "city": "New York", "state": "NY"}, "NY", "10001")


def test_two_worker_processes_together_stay_within_the_rate(
    store: Store, redis_url: str, nominatim: FakeNominatim
) -> None:
    interval = 0.2  # 5 requests per second for the test; 1 per second by default
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(
            target=_geocode_many,
            args=(redis_url, nominatim.server.port, [f"{w}{i} Test Street" for i in range(8)], interval),
        )
        for w in ("A", "B")
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    times = sorted(r.at for r in nominatim.requests())
    assert len(times) == 16
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # both processes' requests interleave, never closer than the interval (less loopback jitter)
    assert min(gaps) >= interval * 0.75, gaps
    assert (len(times) - 1) / (times[-1] - times[0]) <= (1 / interval) * 1.05


def test_a_rate_limited_answer_slows_every_process(store: Store, nominatim: FakeNominatim) -> None:
    calls = {"n": 0}

    def once_then_ok(req: Request) -> Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return Response(429, b"slow down", {"Retry-After": "1"})
        return Response(200, MSG_HIT, {"Content-Type": "application/json"})

    nominatim.server.route("/search", once_then_ok)
    g = geocoder(store, nominatim, max_retry_wait=1.0)
    started = time.monotonic()
    assert g.lookup({"street": "4 Pennsylvania Plaza", "state": "NY"}, "NY", "10001").found
    assert time.monotonic() - started >= 0.9
    first, second = nominatim.requests()
    assert second.at - first.at >= 0.9


def test_the_default_rate_is_one_per_second() -> None:
    assert GeocoderConfig().min_interval == 1.0


def test_attribution_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "GeoNames" in readme and "CC BY" in readme and "OpenStreetMap" in readme
