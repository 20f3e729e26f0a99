"""A real Celery worker with beat runs the registry's feeds on their schedules; faults never kill it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.lookup import near
from aggregator.store import Store
from config.settings import Settings
from tests.integration.conftest import Stack, open_stack
from tests.integration.worker import WorkerProcess, wait_for
from tests.servers import LoopbackServer, Response
from workers.celery_app import load_registry

CSV = (
    b"ID,Name,State,ZIP,Lat,Lon,Services,Detox beds\n"
    b"A1,Cambridge Detox,MA,02139,42.3650,-71.1040,DT,4\n"
    b"A2,Somerville Detox,MA,02144,42.3990,-71.1220,DT,0\n"
)
JSON = {
    "data": {
        "facilities": [
            {
                "id": "J1",
                "name": "Back Bay Residential",
                "address": {"state": "MA", "zip": "02116"},
                "location": {"lat": 42.3496, "lon": -71.0746},
                "services": ["RES"],
                "open_beds": 2,
            },
        ]
    }
}
HTML = b"""<html><body><table id="beds"><tbody>
<tr><th>Name</th><th>ZIP</th><th>Lat</th><th>Lon</th><th>Status</th></tr>
<tr><td>Fenway Outpatient</td><td>02215</td><td>42.3467</td><td>-71.0972</td><td>Waitlist (3)</td></tr>
</tbody></table></body></html>"""

REGISTRY = """
[[feed]]
id = "csv-partner"
format = "csv"
url = "{base}/beds.csv"
allow_private = true
schedule = "2s"
freshness = "1h"
[feed.mapping.fields]
source_id = "ID"
name = "Name"
state = "State"
postal_code = "ZIP"
latitude = "Lat"
longitude = "Lon"
levels_of_care = "Services"
[[feed.mapping.availability]]
constants = {{ level_of_care = "detox" }}
fields = {{ beds_available = "Detox beds" }}

[[feed]]
id = "json-partner"
format = "json"
url = "{base}/api/facilities"
allow_private = true
schedule = "2s"
freshness = "1h"
[feed.mapping]
records = "data.facilities"
[feed.mapping.fields]
source_id = "id"
name = "name"
state = "address.state"
postal_code = "address.zip"
latitude = "location.lat"
longitude = "location.lon"
levels_of_care = "services"
[[feed.mapping.availability]]
constants = {{ level_of_care = "residential" }}
fields = {{ beds_available = "open_beds" }}

[[feed]]
id = "html-partner"
format = "html"
url = "{base}/board.html"
allow_private = true
schedule = "2s"
freshness = "1h"
default_state = "MA"
[feed.mapping]
records = "table#beds tbody tr"
id_from = ["td:nth-of-type(1)"]
[feed.mapping.fields]
name = "td:nth-of-type(1)"
postal_code = "td:nth-of-type(2)"
latitude = "td:nth-of-type(3)"
longitude = "td:nth-of-type(4)"
[[feed.mapping.availability]]
constants = {{ level_of_care = "outpatient" }}
fields = {{ status = "td:nth-of-type(5)" }}
"""


@pytest.fixture
def partner(partner: LoopbackServer) -> LoopbackServer:
    partner.route("/beds.csv", Response(200, CSV, {"Content-Type": "text/csv"}))
    partner.route("/api/facilities", Response(200, json.dumps(JSON).encode(), {"Content-Type": "application/json"}))
    partner.route("/board.html", Response(200, HTML, {"Content-Type": "text/html; charset=utf-8"}))
    return partner


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, partner: LoopbackServer) -> Iterator[Stack]:
    with open_stack(
        redis_url, tmp_path, REGISTRY.format(base=partner.url("").rstrip("/")), beat=True, worker=True
    ) as stack:
        yield stack


@pytest.fixture
def worker(stack: Stack) -> WorkerProcess:
    return stack.worker


@pytest.fixture
def worker_store(stack: Stack) -> Store:
    return stack.store


def test_scheduled_runs_of_several_formats_end_in_near(
    worker: WorkerProcess, worker_store: Store, partner: LoopbackServer
) -> None:
    wait_for(
        lambda: worker_store.feed_ids() >= {"csv-partner", "json-partner", "html-partner"},
        60,
        "every feed's first scheduled run",
        worker.log,
    )
    now = datetime.now(UTC)
    answer = near(worker_store, zip="02139", radius_mi=10, now=now)
    names = [h.center["name"] for h in answer.results]
    assert names[0] == "Cambridge Detox"
    assert set(names) == {"Cambridge Detox", "Somerville Detox", "Back Bay Residential", "Fenway Outpatient"}
    by_name = {h.center["name"]: h for h in answer.results}
    assert by_name["Cambridge Detox"].availability[0]["beds_available"] == 4
    assert by_name["Back Bay Residential"].availability[0]["status"] == "limited"
    fenway = by_name["Fenway Outpatient"].availability[0]
    assert (fenway["status"], fenway["waitlist_size"]) == ("waitlist", 3)
    open_now = near(worker_store, zip="02139", radius_mi=10, available_only=True, now=now)
    assert {h.center["name"] for h in open_now.results} == {"Cambridge Detox", "Back Bay Residential"}
    # the schedule keeps running: an unchanged feed is checked again, and writes nothing
    wait_for(
        lambda: worker_store.feed_state("csv-partner").last_outcome == "unchanged",
        30,
        "a second, unchanged run",
        worker.log,
    )
    assert len(partner.requests("/beds.csv")) >= 2
    # the worker says it is alive (/readyz, `centers feeds` and compose's health check read this)
    wait_for(lambda: bool(worker_store.live_workers()), 20, "the worker's heartbeat", worker.log)
    assert all(name.startswith(f"test-{os.getpid()}@") for name in worker_store.live_workers())  # its -n name


def test_faulty_sources_leave_errors_in_health_and_the_worker_running(
    worker: WorkerProcess, worker_store: Store, partner: LoopbackServer
) -> None:
    wait_for(
        lambda: worker_store.feed_ids() >= {"csv-partner", "json-partner", "html-partner"},
        60,
        "every feed's first scheduled run",
        worker.log,
    )
    partner.route("/beds.csv", Response(500, b"internal error"))
    partner.route("/api/facilities", Response(200, b'{"data": {"facilities": [', {"Content-Type": "application/json"}))
    partner.route(
        "/board.html", Response(200, b"<html><body><p>We moved!</p></body></html>", {"Content-Type": "text/html"})
    )
    wait_for(
        lambda: all(
            worker_store.feed_state(f).last_outcome == "failed" for f in ("csv-partner", "json-partner", "html-partner")
        ),
        60,
        "every feed to fail",
        worker.log,
    )
    health = {f: worker_store.feed_state(f) for f in ("csv-partner", "json-partner", "html-partner")}
    assert health["csv-partner"].last_error_kind == "fetch_transient"
    assert "HTTP 500" in (health["csv-partner"].last_error or "")
    assert health["json-partner"].last_error_kind == "parse"
    assert health["html-partner"].last_error_kind == "parse"
    assert worker.alive
    assert len(near(worker_store, zip="02139", radius_mi=10, now=datetime.now(UTC)).results) == 4
    # the partner recovers; the next scheduled run picks it up
    partner.route("/beds.csv", Response(200, CSV.replace(b",4\n", b",7\n"), {"Content-Type": "text/csv"}))

    def recovered() -> bool:  # the run that applied it may already be followed by an unchanged one
        hits = near(worker_store, zip="02139", radius_mi=1, now=datetime.now(UTC)).results
        state = worker_store.feed_state("csv-partner")
        return (
            bool(hits)
            and hits[0].availability[0]["beds_available"] == 7
            and state.consecutive_failures == 0
            and state.last_outcome in ("applied", "unchanged")
        )

    wait_for(recovered, 60, "recovery", worker.log)
    assert worker.alive


SLOW_REGISTRY = """
[[feed]]
id = "slow"
format = "csv"
url = "{base}/slow.csv"
allow_private = true
schedule = "1h"
[feed.mapping.fields]
source_id = "ID"
name = "Name"
state = "State"
postal_code = "ZIP"
latitude = "Lat"
longitude = "Lon"
"""


def test_a_run_killed_with_its_worker_child_is_redelivered_and_completes(tmp_path: Path, redis_url: str) -> None:
    import os
    import signal

    import psutil

    from workers.celery_app import create_app

    partner = LoopbackServer().start()
    partner.route("/slow.csv", Response(200, CSV, {"Content-Type": "text/csv"}, delay=30))
    try:
        with open_stack(
            redis_url, tmp_path, SLOW_REGISTRY.format(base=partner.url("").rstrip("/")), worker=True
        ) as stack:
            w, store = stack.worker, stack.store
            app = create_app(Settings.from_env(w.env), load_registry(Settings.from_env(w.env)))
            app.send_task("feeds.run", args=["slow", True], queue="feeds")
            app.close()
            wait_for(lambda: len(partner.requests("/slow.csv")) == 1, 30, "the run to start fetching", w.log)
            assert w.process is not None
            children = psutil.Process(w.process.pid).children(recursive=True)
            busy = [
                c
                for c in children
                if any(conn.raddr and conn.raddr.port == partner.port for conn in c.net_connections("tcp"))
            ]
            assert len(busy) == 1, children
            os.kill(busy[0].pid, signal.SIGKILL)  # the pool child dies mid-fetch
            partner.route("/slow.csv", Response(200, CSV, {"Content-Type": "text/csv"}))
            wait_for(
                lambda: store.feed_state("slow").last_outcome == "applied", 60, "the redelivered run to complete", w.log
            )
            assert len(partner.requests("/slow.csv")) >= 2
            assert store.feed_members("slow") == {"slow:A1", "slow:A2"}
            assert w.alive
    finally:
        partner.stop()


def test_a_job_that_keeps_coming_back_is_set_aside(tmp_path: Path, redis_url: str) -> None:
    from workers.celery_app import create_app
    from workers.tasks import MAX_DELIVERIES

    def delivered_often(store: Store) -> None:
        store.redis.set(store.keys.deliveries("poison-1"), MAX_DELIVERIES)  # it has been started this often

    with open_stack(
        redis_url, tmp_path, SLOW_REGISTRY.format(base="http://127.0.0.1:9"), worker=True, load=delivered_often
    ) as stack:
        w, store = stack.worker, stack.store
        app = create_app(Settings.from_env(w.env), load_registry(Settings.from_env(w.env)))
        app.send_task("feeds.run", args=["slow", True], queue="feeds", task_id="poison-1")
        app.close()
        wait_for(lambda: store.feed_state("slow").last_error_kind == "poisoned", 30, "the job to be set aside", w.log)
        assert "set aside after" in (store.feed_state("slow").last_error or "")
        assert w.alive
