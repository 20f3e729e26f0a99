"""The HTTP API through a real uvicorn process, with the session's Redis and a real Celery worker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from aggregator.api.common import rate_key
from aggregator.model import Address, Availability, Center
from aggregator.push import sign
from aggregator.store import FeedState, Store
from tests.integration.api_server import ApiServer
from tests.integration.conftest import Stack, open_stack
from tests.integration.worker import WorkerProcess, wait_for

HARBOR_SECRET = "harbor-secret-0123456789abcdef"
HARBOR_OLD_SECRET = "harbor-previous-secret-0123456"
HARBOR_KEY = "harbor-key-0123456789abcdef0123"
BEACON_SECRET = "beacon-secret-0123456789abcdef"
OPERATOR_TOKEN = "operator-token-0123456789abcdef"

REGISTRY = """
[[feed]]
id = "harbor"
partner = "Harbor Health"
format = "push"
freshness = "6h"
timezone = "America/New_York"
push = { hmac_secret_env = ["HARBOR_SECRET", "HARBOR_OLD_SECRET"], bearer_key_env = ["HARBOR_KEY"] }
[feed.mapping.fields]
source_id = "id"
name = "name"
address_1 = "street"
city = "city"
state = "state"
postal_code = "zip"
latitude = "lat"
longitude = "lon"
phone = "phone"
levels_of_care = "services"
[[feed.mapping.availability]]
constants = { level_of_care = "detox" }
fields = { beds_available = "detox_beds", reported_at = "updated_at" }

[[feed]]
id = "beacon"
partner = "Beacon Recovery"
format = "push"
freshness = "6h"
push = { hmac_secret_env = ["BEACON_SECRET"] }
[feed.mapping.fields]
source_id = "id"
name = "name"
state = "state"
postal_code = "zip"
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    with open_stack(
        redis_url,
        tmp_path_factory.mktemp("api"),
        REGISTRY,
        prefix="api:",
        worker=True,
        extra_env={
            "HARBOR_SECRET": HARBOR_SECRET,
            "HARBOR_OLD_SECRET": HARBOR_OLD_SECRET,
            "HARBOR_KEY": HARBOR_KEY,
            "BEACON_SECRET": BEACON_SECRET,
        },
        api={"CENTERS_OPERATOR_TOKENS": f"dana:{OPERATOR_TOKEN}", "CENTERS_RATE_LIMIT": "100000"},
    ) as stack:
        yield stack


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


RECORDS = [
    {
        "id": "h-1",
        "name": "Harbor House Detox",
        "street": "1 Main St",
        "city": "Cambridge",
        "state": "MA",
        "zip": "02139",
        "lat": 42.3651,
        "lon": -71.1040,
        "phone": "617-555-0142",
        "services": "DT; RES",
        "detox_beds": 3,
    },
    {
        "id": "h-2",
        "name": "Harbor North",
        "street": "9 Elm St",
        "city": "Somerville",
        "state": "MA",
        "zip": "02144",
        "lat": 42.3990,
        "lon": -71.1220,
        "phone": "617-555-0143",
        "services": "DT",
        "detox_beds": 0,
    },
    {"id": "", "name": "No Id Place", "state": "MA", "zip": "02139"},
]


def signed(
    body: bytes,
    secret: str = HARBOR_SECRET,
    *,
    event_id: str | None = None,
    timestamp: int | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    event_id = event_id or f"evt-{time.monotonic_ns()}"
    ts = str(timestamp if timestamp is not None else int(time.time()))
    return {
        "webhook-id": event_id,
        "webhook-timestamp": ts,
        "webhook-signature": sign(secret.encode(), event_id, ts, body),
        "content-type": content_type,
    }


def wait_done(api: httpx.Client, ingest_id: str, worker: WorkerProcess) -> dict[str, Any]:
    result: dict[str, Any] = {}

    def done() -> bool:
        nonlocal result
        result = api.get(f"/v1/ingests/{ingest_id}").json()
        return result["status"] in ("done", "failed")

    wait_for(done, 30, f"ingest {ingest_id}", worker.log)
    return result


def snapshot(store: Store) -> dict[bytes, Any]:
    r = store.redis
    return {k: r.dump(k) for k in sorted(r.keys("api:*")) if b":rate:" not in k}


# ---------------------------------------------------------------------------------------- partner


def test_a_signed_push_becomes_visible_in_near(api: httpx.Client, stack: Stack) -> None:
    body = json.dumps(RECORDS).encode()
    resp = api.post("/v1/feeds/harbor/records", content=body, headers=signed(body))
    assert resp.status_code == 202, resp.text
    accepted = resp.json()
    assert accepted["status"] == "queued" and accepted["ingest_id"].startswith("ing_")
    result = wait_done(api, accepted["ingest_id"], stack.worker)
    assert (result["status"], result["accepted"], result["rejected"]) == ("done", 2, 1)
    assert result["rejections_by_record"] == {"No Id Place": ["source_id: missing"]}
    near = api.get("/v1/centers/near", params={"zip": "02139", "level_of_care": "detox"}).json()
    by_id = {r["id"]: r for r in near["results"]}
    assert set(by_id) >= {"harbor:h-1", "harbor:h-2"}
    detox = by_id["harbor:h-1"]["availability"][0]
    assert (detox["status"], detox["beds_available"], detox["source"], detox["fresh"]) == ("available", 3, "push", True)
    assert by_id["harbor:h-1"]["phones"] == [
        {"number": "+16175550142", "role": "main", "extension": "", "source": "harbor"}
    ]


def test_a_city_and_state_is_a_place(api: httpx.Client, stack: Stack) -> None:
    body = json.dumps(RECORDS).encode()
    wait_done(
        api, api.post("/v1/feeds/harbor/records", content=body, headers=signed(body)).json()["ingest_id"], stack.worker
    )
    answer = api.get("/v1/centers/near", params={"place": "Cambridge, MA", "level_of_care": "detox"})
    assert answer.status_code == 200, answer.text
    origin = answer.json()["origin"]
    assert origin["resolved_from"] == "city" and origin["place"].startswith("Cambridge, MA (centroid of ")
    assert {"harbor:h-1", "harbor:h-2"} <= {r["id"] for r in answer.json()["results"]}
    unknown = api.get("/v1/centers/near", params={"place": "Cambrige, MA"})
    assert unknown.status_code in (404, 422) and "Cambridge" in unknown.text


def test_a_push_is_an_update_not_a_snapshot(api: httpx.Client, stack: Stack) -> None:
    body = json.dumps([RECORDS[0]]).encode()
    resp = api.post("/v1/feeds/harbor/records", content=body, headers=signed(body))
    wait_done(api, resp.json()["ingest_id"], stack.worker)
    second = dict(RECORDS[1], detox_beds=5)
    body = json.dumps([second]).encode()
    resp = api.post("/v1/feeds/harbor/records", content=body, headers=signed(body))
    wait_done(api, resp.json()["ingest_id"], stack.worker)
    assert stack.store.feed_members("harbor") >= {"harbor:h-1", "harbor:h-2"}


def test_ndjson_csv_bearer_keys_and_rotated_secrets_are_accepted(api: httpx.Client, stack: Stack) -> None:
    ndjson = "\n".join(json.dumps(r) for r in RECORDS[:2]).encode()
    resp = api.post(
        "/v1/feeds/harbor/records",
        content=ndjson,
        headers=signed(ndjson, HARBOR_OLD_SECRET, content_type="application/x-ndjson"),
    )
    assert resp.status_code == 202, resp.text
    assert wait_done(api, resp.json()["ingest_id"], stack.worker)["accepted"] == 2
    csv = (
        b"id,name,street,city,state,zip,lat,lon,phone,services,detox_beds,updated_at\n"
        b"h-3,Harbor West,5 Oak St,Cambridge,MA,02138,42.3770,-71.1300,617-555-0144,DT,2,\n"
    )
    resp = api.post(
        "/v1/feeds/harbor/records",
        content=csv,
        headers={"authorization": f"Bearer {HARBOR_KEY}", "content-type": "text/csv"},
    )
    assert resp.status_code == 202, resp.text
    assert wait_done(api, resp.json()["ingest_id"], stack.worker)["accepted"] == 1


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("bad-signature", 401, "unauthorized"),
        ("one-byte-changed", 401, "unauthorized"),
        ("old-timestamp", 401, "unauthorized"),
        ("future-timestamp", 401, "unauthorized"),
        ("no-credentials", 401, "unauthorized"),
        ("wrong-key", 401, "unauthorized"),
        ("other-partners-feed", 403, "forbidden"),
        ("oversized", 413, "too_large"),
        ("xml", 415, "unsupported_media_type"),
        ("unknown-feed", 404, "unknown_feed"),
    ],
)
def test_a_refused_push_changes_nothing(api: httpx.Client, stack: Stack, case: str, status: int, error: str) -> None:
    body = json.dumps([dict(RECORDS[0], detox_beds=99)]).encode()
    feed, headers = "harbor", signed(body)
    if case == "bad-signature":
        headers = signed(body, "not-the-secret-at-all-000000")
    elif case == "one-byte-changed":
        headers = signed(body)
        body = body.replace(b"99", b"98")
    elif case == "old-timestamp":
        headers = signed(body, timestamp=int(time.time()) - 6 * 60)
    elif case == "future-timestamp":
        headers = signed(body, timestamp=int(time.time()) + 10 * 60)
    elif case == "no-credentials":
        headers = {"content-type": "application/json"}
    elif case == "wrong-key":
        headers = {"authorization": "Bearer definitely-not-a-valid-key", "content-type": "application/json"}
    elif case == "other-partners-feed":
        headers = signed(body, BEACON_SECRET)  # Beacon's own secret, on Harbor's feed
    elif case == "oversized":
        body = b"[" + b" " * 5_000_001 + b"]"
        headers = signed(body)
    elif case == "xml":
        body = b"<records/>"
        headers = signed(body, content_type="text/xml")
    elif case == "unknown-feed":
        feed = "nope"
    before = snapshot(stack.store)
    resp = api.post(f"/v1/feeds/{feed}/records", content=body, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error
    time.sleep(0.3)
    assert snapshot(stack.store) == before


def test_a_replayed_event_id_is_refused_and_changes_nothing(api: httpx.Client, stack: Stack) -> None:
    body = json.dumps([dict(RECORDS[0], detox_beds=1)]).encode()
    headers = signed(body, event_id="evt-replay-1")
    first = api.post("/v1/feeds/harbor/records", content=body, headers=headers)
    assert first.status_code == 202
    wait_done(api, first.json()["ingest_id"], stack.worker)
    before = snapshot(stack.store)
    again = api.post("/v1/feeds/harbor/records", content=body, headers=signed(body, event_id="evt-replay-1"))
    assert again.status_code == 409
    assert again.json()["ingest_id"] == first.json()["ingest_id"]
    time.sleep(0.3)
    assert snapshot(stack.store) == before


def test_unknown_ingest_is_404(api: httpx.Client) -> None:
    assert api.get("/v1/ingests/ing_" + "0" * 32).status_code == 404


# ----------------------------------------------------------------------------------------- public


def test_public_search_by_zip_and_coordinates(api: httpx.Client, stack: Stack) -> None:
    body = json.dumps(RECORDS[:2]).encode()
    wait_done(
        api, api.post("/v1/feeds/harbor/records", content=body, headers=signed(body)).json()["ingest_id"], stack.worker
    )
    by_zip = api.get("/v1/centers/near", params={"zip": "02139", "radius_mi": 10})
    assert by_zip.status_code == 200
    assert "max-age=" in by_zip.headers["cache-control"]
    answer = by_zip.json()
    assert answer["origin"]["resolved_from"] == "zip" and answer["origin"]["zip"] == "02139"
    first = answer["results"][0]
    assert {"id", "name", "distance_mi", "address", "phones", "services", "availability"} <= set(first)
    assert {"status", "beds_available", "reported_at", "age_seconds", "fresh"} <= set(first["availability"][0])
    by_point = api.get("/v1/centers/near", params={"lat": 42.3651, "lon": -71.104, "radius_mi": 1}).json()
    assert by_point["origin"]["resolved_from"] == "coordinates"
    assert by_point["results"][0]["id"] == "harbor:h-1"
    one = api.get("/v1/centers/harbor:h-1")
    assert one.status_code == 200 and one.json()["name"] == "Harbor House Detox"


def test_an_empty_answer_carries_the_hint(api: httpx.Client) -> None:
    answer = api.get("/v1/centers/near", params={"zip": "99501", "radius_mi": 5}).json()
    assert answer["results"] == []
    assert answer["hint"]["searched"]["radius_mi"] == 5
    assert "1-800-662-4357" in answer["hint"]["message"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"zip": "1234"}, "zip"),
        ({"lat": 95, "lon": 0}, "lat"),
        ({"lat": 42}, "lon"),
        ({}, "location"),
        ({"zip": "02139", "radius_mi": -1}, "radius_mi"),
        ({"zip": "02139", "level_of_care": "spa"}, "level_of_care"),
        ({"zip": "02139", "limit": 500}, "limit"),
        ({"zip": "02139", "language": "spanish"}, "language"),
        ({"zip": "02139", "language": ["es"] * 5000}, "language"),
        ({"zip": "02139", "payment": ["medicaid", "medicare"] * 11}, "payment"),
    ],
)
def test_bad_parameters_get_422_naming_them(api: httpx.Client, params: dict[str, Any], parameter: str) -> None:
    resp = api.get("/v1/centers/near", params=params)
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "invalid_parameter"
    assert body["parameter"].split(".")[0] == parameter
    assert "Traceback" not in resp.text
    if any(isinstance(v, list) for v in params.values()):
        assert "at most 20 values per filter" in body["detail"]


def test_a_zip_that_does_not_exist_is_404_naming_it(api: httpx.Client) -> None:
    resp = api.get("/v1/centers/near", params={"zip": "99999"})
    assert resp.status_code == 404
    assert resp.json() == {"error": "unknown_zip", "detail": "ZIP code '99999' does not exist", "zip": "99999"}
    assert api.get("/v1/centers/harbor:nope").status_code == 404


def test_the_public_is_rate_limited_per_client(stack: Stack) -> None:
    limited = ApiServer({**stack.env, "CENTERS_RATE_LIMIT": "5", "CENTERS_TRUST_PROXY": "true"}, stack.tmp).start()
    try:
        client_ip = f"203.0.113.{int(time.time()) % 250 + 1}"  # behind our proxy: one member of the public
        with limited.client(headers={"x-forwarded-for": f"{client_ip}, 10.0.0.1"}) as client:
            codes = [client.get("/v1/centers/near", params={"zip": "02139"}).status_code for _ in range(7)]
            assert codes[:5] == [200] * 5
            assert codes[5:] == [429, 429]
            resp = client.get("/v1/centers/near", params={"zip": "02139"})
            assert 1 <= int(resp.headers["retry-after"]) <= 60
            assert resp.json()["error"] == "rate_limited"
            # a query refused after it parsed is answered 429 too, once over the limit
            assert client.get("/v1/centers/near", params={"zip": "99999"}).status_code == 429
            assert client.get("/v1/centers/near", params={"place": "Nowhereville, TX"}).status_code == 429
            assert client.get("/v1/centers/near", params={"lat": "42.3"}).status_code == 429
        with limited.client(headers={"x-forwarded-for": "198.51.100.7"}) as other:  # another client is not held up
            assert other.get("/v1/centers/near", params={"zip": "02139"}).status_code == 200
            # and such queries count: one search and four unknown ZIPs make five; the sixth request is refused
            assert [other.get("/v1/centers/near", params={"zip": "99999"}).status_code for _ in range(4)] == [404] * 4
            assert other.get("/v1/centers/near", params={"zip": "02139"}).status_code == 429
    finally:
        limited.stop()


def test_a_partner_is_rate_limited_per_feed(stack: Stack) -> None:
    limited = ApiServer({**stack.env, "CENTERS_PUSH_RATE_LIMIT": "2"}, stack.tmp).start()
    try:
        stack.store.redis.delete(stack.store.keys.rate(rate_key("push:harbor")))
        before = set(stack.store.redis.keys(stack.store.keys.push("ing_*")))
        with limited.client() as client:
            body = json.dumps([RECORDS[0]]).encode()
            codes = [
                client.post("/v1/feeds/harbor/records", content=body, headers=signed(body)).status_code
                for _ in range(3)
            ]
            assert codes == [202, 202, 429]
            refused = client.post("/v1/feeds/harbor/records", content=body, headers=signed(body))
            assert refused.json()["error"] == "rate_limited"
            assert int(refused.headers["retry-after"]) >= 1
            # refused pushes are not stored (counted and stored in one script call, they stop at the count)
            assert len(set(stack.store.redis.keys(stack.store.keys.push("ing_*"))) - before) == 2
            # an unauthenticated caller never spends the partner's allowance
            assert (
                client.post(
                    "/v1/feeds/beacon/records", content=body, headers={"content-type": "application/json"}
                ).status_code
                == 401
            )
    finally:
        limited.stop()
        stack.store.redis.delete(stack.store.keys.rate(rate_key("push:harbor")))


def test_cors_when_configured(stack: Stack) -> None:
    server = ApiServer({**stack.env, "CENTERS_CORS_ORIGINS": "https://helpline.example.org"}, stack.tmp).start()
    try:
        with server.client() as client:
            resp = client.get(
                "/v1/centers/near", params={"zip": "02139"}, headers={"origin": "https://helpline.example.org"}
            )
            assert resp.headers["access-control-allow-origin"] == "https://helpline.example.org"
            other = client.get("/v1/centers/near", params={"zip": "02139"}, headers={"origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
    finally:
        server.stop()


# -------------------------------------------------------------------------------------- operators


OP = {"authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer wrong-token-0000000000000"}, {"authorization": "Basic ZGFuYTp4"}]
)
def test_operator_routes_refuse_a_wrong_or_missing_token(api: httpx.Client, headers: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/v1/feeds"),
        ("POST", "/v1/feeds/harbor/release"),
        ("POST", "/v1/centers/harbor:h-1/reports"),
        ("GET", "/v1/operator/centers/near?place=02139"),
    ):
        resp = api.request(method, path, headers=headers, json={})
        assert resp.status_code == 401, (method, path)
        assert resp.json() == {"error": "unauthorized", "detail": "an operator token is required"}


def test_operators_see_feed_health(api: httpx.Client, stack: Stack) -> None:
    body = json.dumps(RECORDS[:1]).encode()
    wait_done(
        api, api.post("/v1/feeds/harbor/records", content=body, headers=signed(body)).json()["ingest_id"], stack.worker
    )
    feeds = api.get("/v1/feeds", headers=OP).json()["feeds"]
    by_id = {f["id"]: f for f in feeds}
    assert by_id["harbor"]["last_success"] and by_id["harbor"]["format"] == "push"
    assert by_id["beacon"]["status"] == "never_run"


def test_a_phone_report_is_its_own_source_with_an_expiry(api: httpx.Client, stack: Stack) -> None:
    body = json.dumps(RECORDS[:1]).encode()
    wait_done(
        api, api.post("/v1/feeds/harbor/records", content=body, headers=signed(body)).json()["ingest_id"], stack.worker
    )
    resp = api.post(
        "/v1/centers/harbor:h-1/reports",
        headers=OP,
        json={
            "level_of_care": "residential",
            "status": "available",
            "beds_available": 2,
            "notes": "spoke with the intake nurse",
            "expires_in_minutes": 120,
        },
    )
    assert resp.status_code == 201, resp.text
    report = resp.json()["report"]
    assert (report["source"], report["reported_by"], report["freshness_seconds"]) == ("operator", "dana", 7200)
    public = api.get("/v1/centers/harbor:h-1").json()
    residential = next(a for a in public["availability"] if a["level_of_care"] == "residential")
    assert (residential["status"], residential["source"], residential["fresh"]) == ("available", "operator", True)
    assert residential["age_seconds"] < 60
    assert "reported_by" not in residential  # the public does not see who took the call
    bad = api.post("/v1/centers/harbor:h-1/reports", headers=OP, json={"level_of_care": "spa", "status": "available"})
    assert bad.status_code == 422
    assert (
        api.post(
            "/v1/centers/harbor:nope/reports", headers=OP, json={"level_of_care": "detox", "status": "full"}
        ).status_code
        == 404
    )


def test_operators_release_a_held_run(api: httpx.Client, stack: Stack) -> None:
    store: Store = stack.store
    now = datetime.now(UTC)
    held = Center(
        id="beacon:b-1",
        feed_id="beacon",
        source_id="b-1",
        name="Beacon House",
        address=Address(state="MA", postal_code="02139"),
    )
    obs = Availability(
        center_id="beacon:b-1",
        level_of_care="detox",
        source="push",
        status="full",
        reported_at=now,
        checked_at=now,
        freshness_seconds=3600,
    )
    store.hold_snapshot(
        "beacon",
        json.dumps(
            {
                "held_at": now.isoformat(),
                "reason": "test",
                "centers": [held.model_dump(mode="json")],
                "availability": [obs.model_dump(mode="json")],
                "report": {"records": 1, "rejected": 0},
            }
        ).encode(),
    )
    store.set_feed_state("beacon", FeedState(held_reason="the run would remove all 3 centers of this feed"))
    assert api.get("/v1/feeds", headers=OP).json()["feeds"][0]["id"] == "beacon"  # held comes first
    resp = api.post("/v1/feeds/beacon/release", headers=OP)
    assert resp.status_code == 202
    wait_for(lambda: store.held_snapshot("beacon") is None, 30, "the release", stack.worker.log)
    assert "beacon:b-1" in store.feed_members("beacon")
    assert store.feed_state("beacon").released_by == "dana"
    assert api.post("/v1/feeds/beacon/release", headers=OP).status_code == 409
    # a hold older than the last applied run is refused, not released over newer data
    store.hold_snapshot(
        "beacon",
        json.dumps(
            {
                "held_at": now.isoformat(),
                "reason": "test",
                "centers": [held.model_dump(mode="json")],
                "availability": [obs.model_dump(mode="json")],
                "report": {"records": 1, "rejected": 0},
            }
        ).encode(),
    )
    store.set_feed_state(
        "beacon",
        FeedState(held_reason="test", held_at=now.isoformat(), last_success=(now + timedelta(minutes=1)).isoformat()),
    )
    refused = api.post("/v1/feeds/beacon/release", headers=OP)
    assert refused.status_code == 409 and refused.json()["error"] == "obsolete_hold", refused.text


def test_operator_search_keeps_stale_figures_marked(api: httpx.Client, stack: Stack) -> None:
    store: Store = stack.store
    old = datetime.now(UTC) - timedelta(hours=9)
    store.record_observations(
        [
            Availability(
                center_id="harbor:h-1",
                level_of_care="detox",
                source="push",
                status="available",
                beds_available=4,
                reported_at=old,
                checked_at=old,
                freshness_seconds=3600,
            )
        ]
    )
    store.record_observations(
        [
            Availability(
                center_id="harbor:h-1",
                level_of_care="detox",
                source="pull",
                status="available",
                beds_available=4,
                reported_at=old,
                checked_at=old,
                freshness_seconds=3600,
            )
        ]
    )
    ops = api.get("/v1/operator/centers/near", params={"place": "42.3651,-71.104", "radius_mi": 1}, headers=OP)
    assert ops.status_code == 200
    [h1] = [r for r in ops.json()["results"] if r["id"] == "harbor:h-1"]
    assert h1["availability"][0]["source"] in ("push", "pull")


# ------------------------------------------------------------------------------------- operations


def test_health_readiness_metrics_and_docs(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert (ready["status"], ready["note"]) == ("ready", "") and ready["workers"] >= 1  # the stack's worker beats
    api.get("/v1/centers/near", params={"zip": "02139"})
    metrics = api.get("/metrics").text
    assert 'centers_http_request_duration_seconds_count{method="GET",route="/v1/centers/near",status="200"}' in metrics
    assert "centers_lookups_total" in metrics and "centers_pushes_total" in metrics

    def lookups(result: str) -> float:
        line = f'centers_lookups_total{{audience="public",result="{result}"}} '
        found = [row for row in api.get("/metrics").text.splitlines() if row.startswith(line)]
        return float(found[0][len(line) :]) if found else 0.0

    before = lookups("found"), lookups("empty")
    assert api.get("/v1/centers/near", params={"zip": "02139"}).json()["count"] >= 1
    assert api.get("/v1/centers/near", params={"zip": "99950", "radius_mi": 1}).json()["count"] == 0
    assert (lookups("found"), lookups("empty")) == (before[0] + 1, before[1] + 1)
    assert 'centers_feed_runs_total{feed="harbor"}' in metrics
    spec = api.get("/openapi.json").json()
    assert {"/v1/centers/near", "/v1/centers/{center_id}", "/v1/feeds/{feed_id}/records"} <= set(spec["paths"])
    assert api.get("/docs").status_code == 200


def test_nothing_returns_a_stack_trace(api: httpx.Client) -> None:
    for path in ("/v1/centers/%00", "/v1/centers/near?zip=%FF", "/nope", "/v1/ingests/../../etc"):
        resp = api.get(path)
        assert resp.status_code < 500, path
        assert "Traceback" not in resp.text
        assert resp.headers["content-type"].startswith("application/json")


def test_operators_see_and_decide_pairs_the_matcher_could_not(api: httpx.Client, stack: Stack) -> None:
    from aggregator.model import Address, Center, GeoPrecision

    store: Store = stack.store
    store.redis.delete(store.keys.matches)
    place = {
        "address": Address(address_1="77 Broadway", city="Cambridge", state="MA", postal_code="02142"),
        "latitude": 42.3629,
        "longitude": -71.0850,
        "geo_precision": GeoPrecision.FEED,
    }
    first = Center(id="harbor:m-1", feed_id="harbor", source_id="m-1", name="Broadway Recovery Services", **place)
    store.replace_feed("harbor", [first], [], now=datetime.now(UTC), partial=True)
    # what the matcher left undecided, as a run would have queued it
    store.redis.hset(
        store.keys.matches,
        "beacon:b-7|harbor:m-1",
        b'{"record": "beacon:b-7", "facility": "harbor:m-1", "rule": "name", "scores": {"name": 70}}',
    )
    assert api.get("/v1/matches").status_code == 401
    pending = api.get("/v1/matches", headers=OP).json()["matches"]
    assert [(m["record"], m["facility"], m["facility_center"]["name"]) for m in pending] == [
        ("beacon:b-7", "harbor:m-1", "Broadway Recovery Services")
    ]
    resp = api.post(
        "/v1/matches/decisions",
        headers=OP,
        json={"record_id": "beacon:b-7", "facility_id": "harbor:m-1", "decision": "same"},
    )
    assert resp.status_code == 404  # that record is not stored
    bad = api.post(
        "/v1/matches/decisions",
        headers=OP,
        json={"record_id": "harbor:m-1", "facility_id": "harbor:m-1", "decision": "maybe"},
    )
    assert bad.status_code == 422
    second = Center(
        id="harbor:m-2",
        feed_id="harbor",
        source_id="m-2",
        name="Kendall Square Counseling",
        **{**place, "latitude": 42.3650},
    )  # 230 m north, another name: kept apart by the matcher
    store.replace_feed("harbor", [second], [], now=datetime.now(UTC), partial=True)
    assert store.facility_of("harbor:m-2") == "harbor:m-2"
    store.redis.hset(
        store.keys.matches,
        "harbor:m-2|harbor:m-1",
        b'{"record": "harbor:m-2", "facility": "harbor:m-1", "rule": "name", "scores": {"name": 40}}',
    )
    resp = api.post(
        "/v1/matches/decisions",
        headers=OP,
        json={"record_id": "harbor:m-2", "facility_id": "harbor:m-1", "decision": "same"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"record_id": "harbor:m-2", "facility_id": "harbor:m-1", "decision": "same"}
    assert api.get("/v1/centers/harbor:m-2").json()["id"] == "harbor:m-1"  # the record's id is an alias
    seen = api.get("/v1/operator/centers/harbor:m-1", headers=OP).json()
    links = {s["id"]: s["link"] for s in seen["sources"]}
    assert links["harbor:m-2"]["rule"] == "operator dana decided: same"
    assert links["harbor:m-1"]["decision"] == "new" and seen["sources"][0]["partner"] == "Harbor Health"
    assert [m["record"] for m in api.get("/v1/matches", headers=OP).json()["matches"]] == ["beacon:b-7"]
