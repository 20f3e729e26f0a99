"""Real partner runs on 127.0.0.1 where a file is messy: what is kept, what fails, and what feed health says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.fetch import Fetcher, new_session
from aggregator.health import feed_health
from aggregator.ingest import Pipeline
from aggregator.lookup import near
from aggregator.store import Store
from config import registry
from config.registry import FeedConfig
from tests.integration.factories import NOW
from tests.servers import LoopbackServer, Response

HEADER = "ID,Name,Street,City,State,ZIP,Lat,Lon,Services,Phone,Detox beds,Updated\n"


def row(
    i: int,
    *,
    zip_code: str = "02139",
    lat: str = "42.3647",
    lon: str = "-71.1042",
    services: str = "DT/MD",
    phone: str = "(617) 555-0100",
    beds: str = "3",
    updated: str = "11/27/2026 9:45 AM",
    city: str = "Cambridge",
) -> str:
    return f"C{i},Center {i},{i} Main St,{city},MA,{zip_code},{lat},{lon},{services},{phone},{beds},{updated}"


def body(*rows: str) -> bytes:
    return (HEADER + "\n".join(rows) + "\n").encode()


def csv_feed(url: str, **extra: object) -> FeedConfig:
    table = {
        "id": "beds",
        "format": "csv",
        "url": url,
        "allow_private": True,
        "timezone": "America/New_York",
        "freshness": "24h",
        "timeout": 2,
        "mapping": {
            "fields": {
                "source_id": "ID",
                "name": "Name",
                "address_1": "Street",
                "city": "City",
                "state": "State",
                "postal_code": "ZIP",
                "latitude": "Lat",
                "longitude": "Lon",
                "levels_of_care": {"from": "Services", "split": "/"},
                "payment": {"from": "Services", "split": "/"},
                "phone": "Phone",
                "reported_at": "Updated",
            },
            "availability": [{"constants": {"level_of_care": "detox"}, "fields": {"beds_available": "Detox beds"}}],
        },
        **extra,
    }
    [feed] = registry.parse({"feed": [table]}).feeds
    return feed


@pytest.fixture
def partner() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    yield server
    server.stop()


def pipeline_at(store: Store, start: datetime = NOW) -> Pipeline:
    clock = iter(start + timedelta(minutes=i) for i in range(10_000))
    return Pipeline(store, Fetcher(new_session("center-availability-tests/1.0")), clock=lambda: next(clock))


def csv(data: bytes) -> Response:
    return Response(200, data, {"Content-Type": "text/csv"})


def test_a_run_that_accepts_nothing_fails_with_its_reasons_and_the_last_good_data_stays(
    store: Store, partner: LoopbackServer
) -> None:
    pipeline = pipeline_at(store)
    feed = csv_feed(partner.url("/beds.csv"))
    partner.route("/beds.csv", csv(body(*(row(i) for i in range(12)))))
    assert pipeline.run(feed).status == "applied"
    # the partner's next export: every ZIP is a placeholder and no row has coordinates
    partner.route("/beds.csv", csv(body(*(row(i, zip_code="99999", lat="", lon="") for i in range(12)))))
    outcome = pipeline.run(feed, force=True)
    assert outcome.status == "failed"
    assert outcome.error_kind == "rejected"
    assert outcome.error.startswith("accepted 0 of 12 records (none; this feed needs 50%)")
    assert "postal_code: ZIP N does not exist (12)" in outcome.error
    assert outcome.report is not None and outcome.report.rejected == 12
    [health] = feed_health([feed], store, NOW + timedelta(minutes=5))
    assert health["status"] == "failing"  # not merely "stale" like a healthy feed with old data
    assert health["last_error_kind"] == "rejected"
    assert health["last_run"] == {"records": 12, "accepted": 0, "rejected": 12}
    assert health["problems_by_reason"] == {"postal_code: ZIP N does not exist": 12}
    assert health["rejections"][0] == {"record": "C0", "field": "postal_code", "reason": "ZIP 99999 does not exist"}
    # the last good snapshot is still what people see
    assert len(store.feed_members("beds")) == 12
    assert len(near(store, zip="02139", now=NOW + timedelta(minutes=5)).results) == 10


def test_a_run_below_the_feeds_accepted_share_fails_and_a_lower_share_lets_it_through(
    store: Store, partner: LoopbackServer
) -> None:
    rows = [row(i) for i in range(4)] + [row(i, zip_code="99999", lat="", lon="") for i in range(4, 10)]
    partner.route("/beds.csv", csv(body(*rows)))
    outcome = pipeline_at(store).run(csv_feed(partner.url("/beds.csv")))
    assert (outcome.status, outcome.error_kind) == ("failed", "rejected")
    assert "accepted 4 of 10 records (40%; this feed needs 50%)" in outcome.error
    assert store.feed_members("beds") == set()
    lenient = csv_feed(partner.url("/beds.csv"), min_accepted_share=0.3)
    outcome = pipeline_at(store).run(lenient, force=True)
    assert outcome.status == "applied"
    assert len(store.feed_members("beds")) == 4
    [health] = feed_health([lenient], store, NOW + timedelta(minutes=5))
    assert health["status"] == "ok"
    assert health["problems_by_reason"] == {"postal_code: ZIP N does not exist": 6}


def test_feed_health_shows_repairs_unmapped_terms_and_dropped_values_with_examples(
    store: Store, partner: LoopbackServer
) -> None:
    rows = [
        row(1, lat="-71.1042", lon="42.3647"),  # swapped coordinates: repaired
        row(2, services="DT/MD/ZZTOP"),  # an unmapped term
        row(3, phone="(617) 555-0100 Fax: (617) 555-0101"),  # the fax is dropped, with a word
        row(4, zip_code="2139"),  # a lost leading zero: repaired
        row(5, beds="NA"),  # a null word: no figure, no problem
    ]
    partner.route("/beds.csv", csv(body(*rows)))
    feed = csv_feed(partner.url("/beds.csv"))
    outcome = pipeline_at(store).run(feed)
    assert outcome.status == "applied" and outcome.report is not None
    quality = outcome.report.quality()
    assert {q["what"]: (q["count"], q["records"]) for q in quality["repairs"]} == {
        "latitude and longitude were swapped": (1, ["C1"]),
        "ZIP leading zero restored": (1, ["C4"]),
    }
    assert {q["what"]: q["count"] for q in quality["unmapped"]} == {"levels_of_care: ZZTOP": 1, "payment: ZZTOP": 1}
    assert [(q["what"], q["records"]) for q in quality["dropped"]] == [("phone: fax number … dropped", ["C3"])]
    [health] = feed_health([feed], store, NOW + timedelta(minutes=5))
    assert health["quality"] == json.loads(json.dumps(quality))
    by_id = {h.id: h for h in near(store, zip="02139", now=NOW).results}
    assert [p["number"] for p in by_id["beds:C3"].center["phones"]] == ["+16175550100"]
    detox = next(a for a in by_id["beds:C5"].availability if a["level_of_care"] == "detox")
    assert detox["beds_available"] is None


def test_a_report_a_little_ahead_of_our_clock_never_gives_a_negative_age(store: Store, partner: LoopbackServer) -> None:
    # 9:48 AM New York is three minutes after the run's clock (14:45 UTC): a partner clock running fast
    now = datetime(2026, 11, 27, 14, 45, tzinfo=UTC)
    partner.route("/beds.csv", csv(body(row(1, updated="11/27/2026 9:48 AM"))))
    feed = csv_feed(partner.url("/beds.csv"))
    assert pipeline_at(store, now).run(feed).status == "applied"
    [health] = feed_health([feed], store, now)
    assert health["data_age_seconds"] == 0
    [hit] = near(store, zip="02139", now=now, audience="operator").results
    detox = next(a for a in hit.availability if a["level_of_care"] == "detox")
    assert detox["age_seconds"] == 0 and detox["fresh"]
    assert detox["reported_at"] == "2026-11-27T14:45:00Z"


# ------------------------------------------------------------------------------------ SMART, per-state files

TT = "2026-11-27T14:30:00Z"


def _location(lid: str, state: str, zip_code: str, city: str, lat: float, lon: float) -> dict[str, object]:
    return {
        "resourceType": "Location",
        "id": lid,
        "name": f"Intake {city}",
        "telecom": [{"system": "phone", "value": "617-555-0142"}],
        "address": {"line": ["1 Main St"], "city": city, "state": state, "postalCode": zip_code},
        "position": {"latitude": lat, "longitude": lon},
    }


def _ndjson(*items: dict[str, object]) -> Response:
    return Response(
        200, "\n".join(json.dumps(i) for i in items).encode() + b"\n", {"Content-Type": "application/fhir+ndjson"}
    )


def _smart_partner(partner: LoopbackServer, ri_status: int = 200) -> None:
    outputs = [
        {"type": kind, "url": partner.url(f"/smart/{kind.lower()}s-{st}.ndjson")}
        for st in ("MA", "RI", "NJ")
        for kind in ("Location", "Schedule", "Slot")
    ]
    partner.route(
        "/smart/bulk-publish.json",
        Response(
            200,
            json.dumps({"transactionTime": TT, "request": "x", "output": outputs}).encode(),
            {"Content-Type": "application/json"},
        ),
    )
    places = {
        "MA": ("02139", "Cambridge", 42.3647, -71.1042),
        "RI": ("02903", "Providence", 41.8200, -71.4120),
        "NJ": ("8332-3762", "Millville", 39.4021, -75.0393),
    }
    for st, (zip_code, city, lat, lon) in places.items():
        partner.route(f"/smart/locations-{st}.ndjson", _ndjson(_location(f"loc-{st}", st, zip_code, city, lat, lon)))
        partner.route(
            f"/smart/schedules-{st}.ndjson",
            _ndjson({"resourceType": "Schedule", "id": f"s-{st}", "actor": [{"reference": f"Location/loc-{st}"}]}),
        )
        partner.route(
            f"/smart/slots-{st}.ndjson",
            _ndjson(
                *(
                    {
                        "resourceType": "Slot",
                        "id": f"{st}-{n}",
                        "schedule": {"reference": f"Schedule/s-{st}"},
                        "status": "free",
                        "start": f"2026-11-28T1{n}:00:00Z",
                        "end": f"2026-11-28T1{n}:30:00Z",
                    }
                    for n in range(3)
                )
            ),
        )
    if ri_status != 200:
        partner.route("/smart/slots-RI.ndjson", Response(ri_status, b"not found"))


def smart_feed(url: str) -> FeedConfig:
    [feed] = registry.parse(
        {
            "feed": [
                {
                    "id": "intake",
                    "format": "smart",
                    "url": url,
                    "allow_private": True,
                    "freshness": "2h",
                    "timeout": 2,
                    "mapping": {"options": {"states": ["MA", "RI"]}},
                }
            ]
        }
    ).feeds
    return feed


def test_smart_states_filter_every_per_state_file_and_a_missing_one_makes_a_partial_run(
    store: Store, partner: LoopbackServer
) -> None:
    _smart_partner(partner)
    feed = smart_feed(partner.url("/smart/bulk-publish.json"))
    now = datetime(2026, 11, 27, 14, 40, tzinfo=UTC)
    outcome = pipeline_at(store, now).run(feed)
    assert outcome.status == "applied"
    asked = {r.path for r in partner.requests()}
    assert not [p for p in asked if "-NJ" in p]  # NJ files are never fetched
    assert store.feed_members("intake") == {"intake:loc-MA", "intake:loc-RI"}
    [hit] = near(store, zip="02903", radius_mi=5, now=now, audience="operator").results
    [obs] = hit.availability
    # open appointments, never beds
    assert (obs["status"], obs["appointments_available"], obs["beds_available"]) == ("available", 3, None)
    assert obs["next_appointment_at"] == "2026-11-28T10:00:00Z"

    # the RI slots file is gone (404): the rest is applied, RI keeps its last report, health says partial
    _smart_partner(partner, ri_status=404)
    later = now + timedelta(minutes=30)
    outcome = pipeline_at(store, later).run(feed, force=True)
    assert outcome.status == "partial"
    assert outcome.report is not None
    [failed] = outcome.report.failed_documents
    assert "slots-RI.ndjson" in failed and "404" in failed
    assert store.feed_members("intake") == {"intake:loc-MA", "intake:loc-RI"}
    [hit] = near(store, zip="02903", radius_mi=5, now=later, audience="operator").results
    assert hit.availability[0]["reported_at"] == TT  # the last good report, ageing by its own clock
    [health] = feed_health([feed], store, later)
    assert health["status"] == "partial"
    assert health["failed_documents"] == outcome.report.failed_documents


def test_a_zip_plus_four_that_lost_its_leading_zero_is_repaired_by_the_state(
    store: Store, partner: LoopbackServer
) -> None:
    _smart_partner(partner)
    [feed] = registry.parse(
        {
            "feed": [
                {
                    "id": "intake",
                    "format": "smart",
                    "url": partner.url("/smart/bulk-publish.json"),
                    "allow_private": True,
                    "freshness": "2h",
                    "timeout": 2,
                    "mapping": {"options": {"states": ["NJ"]}},
                }
            ]
        }
    ).feeds
    outcome = pipeline_at(store, datetime(2026, 11, 27, 14, 40, tzinfo=UTC)).run(feed)
    assert outcome.status == "applied" and outcome.report is not None
    assert store.feed_members("intake") == {"intake:loc-NJ"}
    assert dict(outcome.report.repairs) == {"ZIP leading zero restored": 1}
    found = store.get_center("intake:loc-NJ")
    assert found is not None and found[0]["address"]["postal_code"] == "08332"
