"""A bad value never removes good data (issue 12, item 4): a figure rejected with a reason leaves the
center's previous figure in place, in pushes and pulled runs alike; an id too long is rejected, never cut
into another record's id; a name cut to fit is reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from aggregator.fetch import Fetcher, new_session
from aggregator.ingest import Pipeline
from aggregator.lookup import get_center
from aggregator.store import PushRecord, Store
from config import registry
from config.registry import FeedConfig
from tests.integration.factories import NOW
from tests.servers import LoopbackServer, Response

LATER = NOW + timedelta(minutes=5)

PUSH_FEED: FeedConfig = registry.parse(
    {
        "feed": [
            {
                "id": "harbor",
                "format": "push",
                "freshness": "6h",
                "push": {"bearer_key_env": ["HARBOR_KEY"]},
                "mapping": {
                    "fields": {
                        "source_id": "id",
                        "name": "name",
                        "state": "state",
                        "postal_code": "zip",
                        "latitude": "lat",
                        "longitude": "lon",
                    },
                    "availability": [
                        {
                            "constants": {"level_of_care": "detox"},
                            "fields": {
                                "beds_available": "detox_beds",
                                "beds_total": "detox_total",
                                "reported_at": "updated_at",
                            },
                        },
                        {
                            "constants": {"level_of_care": "residential"},
                            "fields": {"beds_available": "res_beds", "reported_at": "updated_at"},
                        },
                    ],
                },
            }
        ]
    }
).feeds[0]

# (what the partner sent in the second report, the reason it is rejected with)
BAD_PUSHED: dict[str, tuple[dict[str, Any], str]] = {
    "negative": ({"detox_beds": -3}, "-3 is negative"),
    "above-capacity": ({"detox_beds": 12, "detox_total": 10}, "12 available exceeds 10 total"),
    "year-9999": ({"detox_beds": 5, "updated_at": "9999-01-01T00:00:00Z"}, "is in the future"),
    "year-1970": ({"detox_beds": 5, "updated_at": "1970-01-01T00:00:00Z"}, "1970-01-01 is before 2000"),
    "1e9": ({"detox_beds": "1e9"}, "'1e9' is not a count"),
    "true": ({"detox_beds": True}, "a yes/no is not a count"),
    "2.5": ({"detox_beds": 2.5}, "2.5 is not a whole number"),
    "lots": ({"detox_beds": "lots"}, "'lots' is not a count"),
}


def push(store: Store, ingest_id: str, received: str, *records: dict[str, Any]) -> None:
    body = [
        {"id": "h-1", "name": "Harbor House", "state": "MA", "zip": "02139", "lat": 42.3651, "lon": -71.1040, **r}
        for r in records
    ]
    assert (
        store.accept_push(
            "harbor",
            f"evt-{ingest_id}",
            ingest_id,
            PushRecord(
                feed_id="harbor",
                event_id=f"evt-{ingest_id}",
                kind="json",
                body=json.dumps(body).encode(),
                status="queued",
                received_at=received,
            ),
        )
        is None
    )


def push_rejections(store: Store, ingest_id: str) -> list[dict[str, str]]:
    record = store.push_record(ingest_id)
    assert record is not None and record.status == "done"
    return list(json.loads(record.rejections or ""))


def figures(store: Store, center_id: str, now: Any = LATER) -> dict[str, int | None]:
    center = get_center(store, center_id, audience="operator", now=now)
    assert center is not None
    return {a["level_of_care"]: a["beds_available"] for a in center["availability"]}


@pytest.mark.parametrize("bad", list(BAD_PUSHED), ids=list(BAD_PUSHED))
def test_a_rejected_pushed_figure_leaves_the_previous_one(store: Store, bad: str) -> None:
    change, reason = BAD_PUSHED[bad]
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: LATER)
    push(store, "ing_1", "2026-11-27T14:51:00Z", {"detox_beds": 3, "updated_at": "2026-11-27T14:50:00Z"})
    assert pipeline.apply_push(PUSH_FEED, "ing_1")["status"] == "done"
    assert figures(store, "harbor:h-1") == {"detox": 3}

    push(store, "ing_2", "2026-11-27T14:56:00Z", {"updated_at": "2026-11-27T14:55:00Z", **change})
    assert pipeline.apply_push(PUSH_FEED, "ing_2") == {
        "ingest_id": "ing_2",
        "status": "done",
        "accepted": 1,
        "rejected": 0,
    }
    assert figures(store, "harbor:h-1") == {"detox": 3}  # the good figure stays
    [problem] = push_rejections(store, "ing_2")
    assert problem["record"] == "h-1" and problem["field"].startswith("availability.0.")
    assert reason in problem["reason"]


def test_only_a_level_no_longer_reported_is_pruned(store: Store) -> None:
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: LATER)
    push(store, "ing_1", "2026-11-27T14:51:00Z", {"detox_beds": 3, "res_beds": 5, "updated_at": "2026-11-27T14:50:00Z"})
    pipeline.apply_push(PUSH_FEED, "ing_1")
    assert figures(store, "harbor:h-1") == {"detox": 3, "residential": 5}
    # detox's figure is unreadable (kept); residential is no longer reported (dropped)
    push(store, "ing_2", "2026-11-27T14:56:00Z", {"detox_beds": "lots", "updated_at": "2026-11-27T14:55:00Z"})
    pipeline.apply_push(PUSH_FEED, "ing_2")
    assert figures(store, "harbor:h-1") == {"detox": 3}


def test_an_id_over_64_characters_is_rejected_and_never_overwrites_another(store: Store) -> None:
    base = "site-" + "0" * 59  # 64 characters: an id
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: LATER)
    push(
        store,
        "ing_1",
        "2026-11-27T14:56:00Z",
        {"id": base, "name": "North Harbor", "detox_beds": 3, "updated_at": "2026-11-27T14:50:00Z"},
        {"id": base + "-south", "name": "South Harbor", "detox_beds": 7, "updated_at": "2026-11-27T14:55:00Z"},
    )
    assert pipeline.apply_push(PUSH_FEED, "ing_1") == {
        "ingest_id": "ing_1",
        "status": "done",
        "accepted": 1,
        "rejected": 1,
    }
    center = get_center(store, f"harbor:{base}", audience="operator", now=LATER)
    assert center is not None and center["name"] == "North Harbor"
    assert figures(store, f"harbor:{base}") == {"detox": 3}
    assert store.feed_members("harbor") == {f"harbor:{base}"}
    assert push_rejections(store, "ing_1") == [
        {"record": base + "-south", "field": "source_id", "reason": "id is 70 characters; the limit is 64"}
    ]
    health = store.feed_state("harbor")
    assert json.loads(health.problems_by_reason or "") == {"source_id: id is N characters; the limit is N": 1}


def test_a_400_character_name_is_kept_cut_and_reported(store: Store) -> None:
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: LATER)
    name = "Harbor House " + "R" * 387
    push(store, "ing_1", "2026-11-27T14:56:00Z", {"name": name, "detox_beds": 3, "updated_at": "2026-11-27T14:55:00Z"})
    assert pipeline.apply_push(PUSH_FEED, "ing_1")["accepted"] == 1
    center = get_center(store, "harbor:h-1", audience="operator", now=LATER)
    assert center is not None and center["name"] == name[:300]
    assert push_rejections(store, "ing_1") == [
        {"record": "h-1", "field": "name", "reason": "name was 400 characters; kept the first 300"}
    ]
    quality = json.loads(store.feed_state("harbor").quality or "")
    assert quality["dropped"] == [
        {"what": "name: name was N characters; kept the first N", "count": 1, "records": ["h-1"]}
    ]


# -------------------------------------------------------------------------------------- pulled runs

HEADER = "ID,Name,State,ZIP,Lat,Lon,Services,Detox beds,Detox total,Updated\n"
GOOD_TIME = "11/27/2026 9:45 AM"

# (Detox beds, Detox total, Updated) of the second run, the reason the figure is rejected with
BAD_PULLED: dict[str, tuple[str, str, str, str]] = {
    "negative": ("-3", "", GOOD_TIME, "-3 is negative"),
    "above-capacity": ("12", "10", GOOD_TIME, "12 available exceeds 10 total"),
    "year-9999": ("5", "", "1/1/9999 9:45 AM", "is in the future"),
    "year-1970": ("5", "", "1/1/1970 9:45 AM", "1970-01-01 is before 2000"),
    "1e9": ("1e9", "", GOOD_TIME, "'1e9' is not a count"),
    "true": ("true", "", GOOD_TIME, "'true' is not a count"),
    "2.5": ("2.5", "", GOOD_TIME, "'2.5' is not a count"),
    "lots": ("lots", "", GOOD_TIME, "'lots' is not a count"),
}


def csv_body(beds: str, total: str = "", updated: str = GOOD_TIME) -> Response:
    row = f"C1,Center 1,MA,02139,42.36,-71.10,DT,{beds},{total},{updated}\n"
    return Response(200, (HEADER + row).encode(), {"Content-Type": "text/csv"})


def csv_feed(url: str) -> FeedConfig:
    [feed] = registry.parse(
        {
            "feed": [
                {
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
                            "state": "State",
                            "postal_code": "ZIP",
                            "latitude": "Lat",
                            "longitude": "Lon",
                            "levels_of_care": "Services",
                            "reported_at": "Updated",
                        },
                        "availability": [
                            {
                                "constants": {"level_of_care": "detox"},
                                "fields": {"beds_available": "Detox beds", "beds_total": "Detox total"},
                            }
                        ],
                    },
                }
            ]
        }
    ).feeds
    return feed


@pytest.fixture
def partner() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize("bad", list(BAD_PULLED), ids=list(BAD_PULLED))
def test_a_rejected_pulled_figure_leaves_the_previous_one(store: Store, partner: LoopbackServer, bad: str) -> None:
    beds, total, updated, reason = BAD_PULLED[bad]
    clock = iter(NOW + timedelta(minutes=i) for i in range(1000))
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: next(clock))
    feed = csv_feed(partner.url("/beds.csv"))
    partner.route("/beds.csv", csv_body("3"))
    assert pipeline.run(feed).status == "applied"
    assert figures(store, "beds:C1") == {"detox": 3}

    partner.route("/beds.csv", csv_body(beds, total, updated))
    outcome = pipeline.run(feed)
    assert outcome.status == "applied" and outcome.report is not None
    assert outcome.report.stored is not None and outcome.report.stored.observations_pruned == 0
    assert figures(store, "beds:C1") == {"detox": 3}  # the good figure stays
    [problem] = outcome.report.field_problems
    assert problem.record == "C1" and problem.field.startswith("availability.0.")
    assert reason in problem.reason
    health = json.loads(store.feed_state("beds").rejections or "")
    assert [p["reason"] for p in health] == [problem.reason]  # shown in feed health

    partner.route(
        "/beds.csv",
        Response(200, HEADER.encode() + b"C1,Center 1,MA,02139,42.36,-71.10,DT,,,\n", {"Content-Type": "text/csv"}),
    )
    assert pipeline.run(feed).status == "applied"
    # no figure at all: no longer reported, pruned as before (the level it offers shows as unknown)
    assert figures(store, "beds:C1") == {"detox": None}
    assert store.redis.hkeys(store.keys.availability("beds:C1")) == []
