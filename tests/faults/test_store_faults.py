"""Fault-matrix scenarios that need no running service: injected store errors, redelivery out of order, two
beats at once, the geocoder down for a whole ingest. Each runs RUNS times against the test session's real
Redis, and the invariants are checked after every run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from aggregator.errors import StoreUnavailable
from aggregator.fetch import Fetcher, new_session
from aggregator.geocode import Geocoder, GeocoderConfig
from aggregator.ingest import Pipeline
from aggregator.invariants import check
from aggregator.store import PushRecord, Store
from config import registry
from config.registry import FeedConfig
from tests.faults.matrix import row as matrix_row
from tests.integration.factories import NOW, FlakyStore
from tests.servers import LoopbackServer, Response

RUNS = 5

PUSHED: FeedConfig = registry.parse(
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
                            "fields": {"beds_available": "beds", "reported_at": "updated_at"},
                        }
                    ],
                },
            }
        ]
    }
).feeds[0]


def pulled(url: str, **extra: Any) -> FeedConfig:
    return registry.parse(
        {
            "feed": [
                {
                    "id": "county",
                    "format": "csv",
                    "url": url,
                    "allow_private": True,
                    "freshness": "6h",
                    "timeout": 5,
                    "mapping": {
                        "fields": {
                            "source_id": "ID",
                            "name": "Name",
                            "address_1": "Street",
                            "city": "City",
                            "state": "State",
                            "postal_code": "ZIP",
                        },
                        "availability": [
                            {"constants": {"level_of_care": "detox"}, "fields": {"beds_available": "Beds"}}
                        ],
                    },
                    **extra,
                }
            ]
        }
    ).feeds[0]


def county_csv(n: int, generation: int) -> bytes:
    lines = ["ID,Name,Street,City,State,ZIP,Beds"]
    lines += [
        f"c{i},County Site {i} g{generation},{100 + i} Main St,Cambridge,MA,02139,{(i + generation) % 5}"
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def partner() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    yield server
    server.stop()


def push(store: Store, ingest_id: str, received: str, sites: range, n: int, updated_at: str) -> dict[str, Any]:
    body = [
        {
            "id": f"h-{s}",
            "name": f"Harbor Site {s} v{n}",
            "state": "MA",
            "zip": "01103",
            "lat": 42.1015 + s * 0.01,
            "lon": -72.5898,
            "beds": (n + s) % 7,
            "updated_at": updated_at,
        }
        for s in sites
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
    return {f"harbor:{b['id']}": {"name": b["name"], "availability.detox.beds_available": b["beds"]} for b in body}


def test_a_transient_store_error_inside_apply_push(store: Store) -> None:
    row = matrix_row(
        "Transient store error inside `apply_push`",
        "the snapshot write raises a Redis timeout 1-3 times; the task retries",
    )
    flaky = FlakyStore(store.redis, store.keys.prefix)
    pipeline = Pipeline(flaky, Fetcher(new_session("tests/1.0")), clock=lambda: NOW)
    for run in range(RUNS):
        ingest_id = f"ing_t{run}"
        newest = push(store, ingest_id, f"2026-11-27T14:5{run}:00Z", range(5), run, f"2026-11-27T14:5{run}:00Z")
        flaky.failures = 1 + run % 3
        attempts = 0
        while True:  # the task's retries
            attempts += 1
            try:
                assert pipeline.apply_push(PUSHED, ingest_id)["status"] == "done"
                break
            except StoreUnavailable:
                assert store.push_record(ingest_id).status == "retrying"  # type: ignore[union-attr]
        assert attempts == 2 + run % 3
        violations = [str(v) for v in check(store, now=NOW, pushes=[ingest_id], newest=newest, quiet=True)]
        row.add(pushes=1, records=5, violations=violations)
    row.assert_held()


def test_an_older_push_redelivered_after_a_newer_one(store: Store) -> None:
    row = matrix_row(
        "Older push redelivered after a newer one",
        "pushes applied newest first (a redelivery after a lost worker); half stamped the same second",
    )
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW)
    for run in range(RUNS):
        ids, newest = [], {}
        for n in range(4):
            ingest_id = f"ing_o{run}{n}"
            # reports newer every run; in odd runs all four stamped the same second
            stamp = f"2026-11-27T14:5{run}:00Z" if run % 2 else f"2026-11-27T14:5{run}:{10 * n:02d}Z"
            newest.update(push(store, ingest_id, f"2026-11-27T14:59:{run}{n}.000Z", range(5), 10 * run + n, stamp))
            ids.append(ingest_id)
        for ingest_id in reversed(ids):  # newest first, oldest redelivered last
            assert pipeline.apply_push(PUSHED, ingest_id)["status"] == "done"
        violations = [str(v) for v in check(store, now=NOW, pushes=ids, newest=newest, quiet=True)]
        row.add(pushes=len(ids), records=5 * len(ids), violations=violations)
    row.assert_held()


def test_two_beats_at_once(store: Store, partner: LoopbackServer, redis_url: str) -> None:
    row = matrix_row(
        "Two beats at once", "two schedulers send the same feed's run at the same moment; two workers take them"
    )
    feed = pulled(partner.url("/county.csv"))
    stores = [Store.from_url(redis_url, store.keys.prefix) for _ in range(2)]
    pipelines = [Pipeline(s, Fetcher(new_session("tests/1.0")), clock=lambda: NOW) for s in stores]
    for run in range(RUNS):
        partner.route("/county.csv", Response(200, county_csv(200, run), {"Content-Type": "text/csv"}, delay=0.3))
        runs_before = store.feed_state("county").runs or 0
        outcomes: list[str] = []
        start = threading.Barrier(2)

        def beat(p: Pipeline, start: threading.Barrier, outcomes: list[str]) -> None:
            start.wait()
            outcomes.append(p.run_locked(feed, force=True, lock_seconds=5).status)

        threads = [threading.Thread(target=beat, args=(p, start, outcomes)) for p in pipelines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["applied", "busy"], outcomes
        assert store.feed_state("county").runs == runs_before + 1  # one effect per slot
        newest = {f"county:c{i}": {"name": f"County Site {i} g{run}"} for i in range(200)}
        violations = [str(v) for v in check(store, now=NOW, newest=newest, feed_sizes={"county": 200}, quiet=True)]
        row.add(records=200, violations=violations)
    for s in stores:
        s.redis.connection_pool.disconnect()
    row.assert_held()


def test_the_geocoder_down_for_a_whole_ingest(store: Store, partner: LoopbackServer) -> None:
    row = matrix_row(
        "Geocoder down for a whole ingest", "every geocoder request answered 503 (a second run: connection refused)"
    )
    feed = pulled(partner.url("/county.csv"))
    geocoder_server = LoopbackServer().start()
    geocoder_server.route("/search", Response(503, b"down"))
    down_port = geocoder_server.port
    try:
        for run in range(RUNS):
            if run == RUNS - 1:
                geocoder_server.stop()  # nothing listens any more
            config = GeocoderConfig(
                provider="nominatim",
                domain=f"127.0.0.1:{down_port}",
                scheme="http",
                user_agent="center-availability-tests/1.0",
                timeout=2.0,
                min_interval=0.0,
                max_per_run=50,
                retries=1,
            )
            pipeline = Pipeline(
                store,
                Fetcher(new_session("tests/1.0")),
                geocoder=Geocoder(store, config),
                clock=lambda r=run: NOW + timedelta(minutes=r),
            )  # type: ignore[misc]
            partner.route("/county.csv", Response(200, county_csv(40, run), {"Content-Type": "text/csv"}))
            outcome = pipeline.run(feed, force=True)
            assert outcome.status == "applied", outcome
            assert outcome.report is not None and outcome.report.placement is not None
            assert outcome.report.placement.zip_centroid + outcome.report.placement.cached == 40
            assert len(store.pending_geocode_retries()) == 40  # each waits for the geocoder's return
            newest = {
                f"county:c{i}": {"name": f"County Site {i} g{run}", "geo_precision": "postal_code"} for i in range(40)
            }
            violations = [
                str(v)
                for v in check(
                    store, now=NOW + timedelta(minutes=run), newest=newest, feed_sizes={"county": 40}, quiet=True
                )
            ]
            row.add(records=40, violations=violations)
    finally:
        geocoder_server.stop()
    row.assert_held()
