"""Feed runs against partner servers on 127.0.0.1: fetch, skip unchanged, hold, health, faults."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from aggregator.errors import TransientError
from aggregator.fetch import Fetcher, new_session
from aggregator.health import feed_health
from aggregator.ingest import Pipeline
from aggregator.invariants import check
from aggregator.lookup import near
from aggregator.store import FeedState, Store
from config import registry
from config.registry import FeedConfig
from tests.faults.matrix import row as matrix_row
from tests.integration.factories import NOW
from tests.servers import LoopbackServer, Response

HEADER = "ID,Name,State,ZIP,Lat,Lon,Services,Detox beds,Updated\n"


def rows(n: int, start: int = 0, beds: int = 3) -> bytes:
    lines = [
        f"C{i},Center {i},MA,02139,{42.36 + i / 10000:.5f},-71.10,DT,{beds},11/27/2026 9:45 AM"
        for i in range(start, start + n)
    ]
    return (HEADER + "\n".join(lines) + "\n").encode()


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
                "state": "State",
                "postal_code": "ZIP",
                "latitude": "Lat",
                "longitude": "Lon",
                "levels_of_care": "Services",
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


@pytest.fixture
def pipeline(store: Store) -> Pipeline:
    clock = iter(NOW + timedelta(minutes=i) for i in range(10_000))
    return Pipeline(store, Fetcher(new_session("center-availability-tests/1.0")), clock=lambda: next(clock))


def csv(body: bytes, **headers: str) -> Response:
    return Response(200, body, {"Content-Type": "text/csv", **headers})


def test_a_run_stores_the_feed_and_records_health(store: Store, partner: LoopbackServer, pipeline: Pipeline) -> None:
    partner.route("/beds.csv", csv(rows(5)))
    outcome = pipeline.run(csv_feed(partner.url("/beds.csv")))
    assert outcome.status == "applied"
    assert len(near(store, zip="02139", now=NOW).results) == 5
    health = store.feed_state("beds")
    assert health.last_outcome == "applied" and health.accepted == 5 and health.rejected == 0
    assert health.newest_data_at == "2026-11-27T14:45:00Z"
    assert partner.requests()[0].headers["user-agent"] == "center-availability-tests/1.0"


def test_an_unchanged_body_writes_nothing(store: Store, partner: LoopbackServer, pipeline: Pipeline) -> None:
    partner.route("/beds.csv", csv(rows(5)))
    feed = csv_feed(partner.url("/beds.csv"))
    pipeline.run(feed)
    before = store.redis.dbsize(), store.redis.hgetall(store.keys.center("beds:C0"))
    store.redis.config_resetstat()
    assert pipeline.run(feed).status == "unchanged"
    writes = {
        k: v
        for k, v in store.redis.info("commandstats").items()
        if any(w in k for w in ("hset", "geoadd", "sadd", "eval", "del", "srem", "zrem"))
    }
    assert set(writes) <= {"cmdstat_hset"}  # feed health only
    assert writes.get("cmdstat_hset", {}).get("calls", 0) <= 2
    assert (store.redis.dbsize(), store.redis.hgetall(store.keys.center("beds:C0"))) == before


def test_a_304_is_not_parsed(store: Store, partner: LoopbackServer, pipeline: Pipeline) -> None:
    def conditional(req: object) -> Response:
        if getattr(req, "headers", {}).get("if-none-match") == '"v1"':
            return Response(304)
        return csv(rows(3), ETag='"v1"', **{"Last-Modified": "Fri, 27 Nov 2026 14:00:00 GMT"})

    partner.route("/beds.csv", conditional)
    feed = csv_feed(partner.url("/beds.csv"))
    assert pipeline.run(feed).status == "applied"
    assert pipeline.run(feed).status == "not_modified"
    second = partner.requests()[1]
    assert second.headers["if-none-match"] == '"v1"'
    assert second.headers["if-modified-since"] == "Fri, 27 Nov 2026 14:00:00 GMT"
    assert store.feed_state("beds").last_outcome == "not_modified"


def test_cache_control_max_age_is_honoured(store: Store, partner: LoopbackServer, pipeline: Pipeline) -> None:
    partner.route("/beds.csv", csv(rows(2), **{"Cache-Control": "public, max-age=3600"}))
    feed = csv_feed(partner.url("/beds.csv"))
    pipeline.run(feed)
    assert pipeline.run(feed).status == "waiting"  # a minute later: the partner said an hour
    assert len(partner.requests()) == 1
    assert pipeline.run(feed, force=True).status == "applied"  # an operator's "run now" still runs


def test_a_run_that_would_empty_or_gut_the_feed_is_held_for_an_operator(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    partner.route("/beds.csv", csv(rows(10)))
    feed = csv_feed(partner.url("/beds.csv"), quarantine_share=0.3)
    pipeline.run(feed)
    partner.route("/beds.csv", csv(rows(4)))  # 6 of 10 gone
    outcome = pipeline.run(feed)
    assert outcome.status == "held"
    assert len(store.feed_members("beds")) == 10  # nothing applied
    health = store.feed_state("beds")
    assert "remove 6 of 10 centers (60%" in (health.held_reason or "")
    released = pipeline.release(feed, by="operator-7")
    assert released.status == "applied"
    assert len(store.feed_members("beds")) == 4
    assert store.feed_state("beds").held_reason is None
    assert store.held_snapshot("beds") is None


def test_a_held_run_is_discarded_once_a_newer_run_is_applied(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    partner.route("/beds.csv", csv(rows(10)))
    feed = csv_feed(partner.url("/beds.csv"), quarantine_share=0.3)
    pipeline.run(feed)
    partner.route("/beds.csv", csv(rows(1)))  # the feed drops to 10%: held
    assert pipeline.run(feed).status == "held"
    partner.route("/beds.csv", csv(rows(10, beds=5)))  # it recovers
    assert pipeline.run(feed).status == "applied"
    assert store.held_snapshot("beds") is None
    [health] = feed_health([feed], store, NOW + timedelta(minutes=10))
    assert health["status"] == "ok" and health["held"] is None
    assert "was discarded: a newer run was applied" in health["hold_discarded"]
    released = pipeline.release(feed, by="operator-7")  # an operator who still had the old page open
    assert released.status == "failed" and released.error_kind == "not_held"
    assert len(store.feed_members("beds")) == 10  # never cut to the held run's one center


def test_releasing_a_hold_older_than_the_applied_run_is_refused(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    partner.route("/beds.csv", csv(rows(10)))
    feed = csv_feed(partner.url("/beds.csv"), quarantine_share=0.3)
    pipeline.run(feed)
    partner.route("/beds.csv", csv(rows(1)))
    assert pipeline.run(feed).status == "held"
    held = store.held_snapshot("beds")
    partner.route("/beds.csv", csv(rows(10, beds=5)))
    assert pipeline.run(feed).status == "applied"
    assert held is not None
    store.hold_snapshot("beds", held)  # a hold that raced the newer run's apply
    released = pipeline.release(feed, by="operator-7")
    assert released.status == "failed" and released.error_kind == "obsolete_hold"
    assert "older data over newer" in (released.error or "")
    assert len(store.feed_members("beds")) == 10
    assert store.held_snapshot("beds") is None


def test_a_small_change_is_applied(store: Store, partner: LoopbackServer, pipeline: Pipeline) -> None:
    partner.route("/beds.csv", csv(rows(10)))
    feed = csv_feed(partner.url("/beds.csv"), quarantine_share=0.3)
    pipeline.run(feed)
    partner.route("/beds.csv", csv(rows(9, start=1)))
    assert pipeline.run(feed).status == "applied"


BIG = 200_000


@pytest.mark.parametrize(
    ("response", "kind", "message"),
    [
        (Response(500, b"oops"), "fetch_transient", "HTTP 500"),
        (Response(503, b"busy", {"Retry-After": "120"}), "fetch_transient", "HTTP 503"),
        (Response(404, b"gone"), "fetch_permanent", "HTTP 404"),
        (Response(200, b"late", {"Content-Type": "text/csv"}, delay=3), "fetch_transient", "timed out"),
        (
            Response(
                200,
                HEADER.encode() + b"C1,A,MA,02139",
                {"Content-Type": "text/csv", "Content-Length": "500"},
                truncate_to=40,
            ),
            "fetch_transient",
            "cut short",
        ),
        (
            Response(200, b"<html><body>Please log in</body></html>", {"Content-Type": "text/html"}),
            "fetch_permanent",
            "content type 'text/html' cannot be a csv feed",
        ),
        (Response(200, b"x" * BIG, {"Content-Type": "text/csv"}), "fetch_permanent", "cap"),
        (
            Response(200, gzip.compress(b"y" * (BIG * 20)), {"Content-Type": "text/csv", "Content-Encoding": "gzip"}),
            "fetch_permanent",
            "decompressed",
        ),
        (Response(200, b"Identifier,Title\n1,A\n", {"Content-Type": "text/csv"}), "parse", "columns missing"),
        (Response(200, b"", {"Content-Type": "text/csv"}), "parse", "empty"),
        (Response(200, b"\x00\x01\x02\x03", {"Content-Type": "text/csv"}), "parse", "NUL"),
        (
            Response(200, b"x", {"Content-Type": "text/csv"}, chunks=[b"ID,", b"Na"], delay=1.2),
            "fetch_transient",
            "total time limit",
        ),
    ],
    ids=[
        "500",
        "503",
        "404",
        "timeout",
        "truncated",
        "login-page",
        "over-cap",
        "gzip-bomb",
        "layout-change",
        "empty",
        "binary",
        "slowloris",
    ],
)
def test_a_faulty_source_keeps_the_last_good_data_and_says_why(
    store: Store, partner: LoopbackServer, pipeline: Pipeline, response: Response, kind: str, message: str
) -> None:
    partner.route("/beds.csv", csv(rows(5)))
    feed = csv_feed(partner.url("/beds.csv"), max_bytes=BIG // 2)
    pipeline.run(feed)
    partner.route("/beds.csv", response)
    try:
        outcome = pipeline.run(feed, force=True)
    except TransientError:
        outcome = None
    health = store.feed_state("beds")
    assert health.last_error_kind == kind
    assert message in (health.last_error or "")
    assert health.consecutive_failures == 1
    assert health.last_success  # the earlier success is still on record
    assert (outcome is None) == (kind == "fetch_transient")
    assert len(near(store, zip="02139", now=NOW).results) == 5  # the previous snapshot stands
    if "Retry-After" in response.headers:
        assert (health.next_fetch_after or 0) >= NOW.timestamp() + 120
    # the fault matrix (RELIABILITY.md): the last good snapshot is whole and nothing breaks an invariant
    violations = [
        str(v)
        for v in check(
            store,
            now=NOW,
            feed_sizes={"beds": 5},
            quiet=True,
            newest={f"beds:C{i}": {"name": f"Center {i}"} for i in range(5)},
        )
    ]
    matrix_row(
        "Hostile or broken partner feeds",
        "12 kinds: 500, 503 + Retry-After, 404, timeout, truncated body, "
        "login page, over the size cap, gzip bomb, layout change, empty, binary, slowloris",
    ).add(records=5, violations=violations)
    assert violations == []


def test_stale_data_after_failures_ages_into_unknown(store: Store, partner: LoopbackServer, pipeline: Pipeline) -> None:
    partner.route("/beds.csv", csv(rows(1)))
    feed = csv_feed(partner.url("/beds.csv"), freshness="1h")
    pipeline.run(feed)
    partner.route("/beds.csv", Response(500))
    with pytest.raises(TransientError):
        pipeline.run(feed, force=True)
    [hit] = near(store, zip="02139", now=NOW + timedelta(hours=3)).results
    assert hit.availability[0]["status"] == "unknown"  # never "0 beds", never the old "3 beds" as live


def test_private_destinations_are_refused_unless_allow_listed(store: Store, partner: LoopbackServer) -> None:
    partner.route("/beds.csv", csv(rows(1)))
    fetcher = Fetcher(new_session("t"))
    pipeline = Pipeline(store, fetcher, clock=lambda: NOW)
    feed = csv_feed(partner.url("/beds.csv"))
    unlisted = FeedConfig(**{**feed.__dict__, "allow_private": False})
    outcome = pipeline.run(unlisted, force=True)
    assert outcome.status == "failed"
    assert "refused destination 127.0.0.1" in outcome.error
    assert partner.requests() == []


def test_redirects_are_checked_on_every_hop(store: Store, partner: LoopbackServer) -> None:
    # a public-looking host that redirects into the private network
    partner.route("/start", Response(302, b"", {"Location": "http://10.0.0.5/secret"}))
    fetcher = Fetcher(
        new_session("t"), resolver=lambda host, port: ["93.184.216.34"] if host == "partner.example" else ["10.0.0.5"]
    )
    session = fetcher.session

    def via_loopback(url: str, **kw: object) -> object:
        return session.__class__.get(session, url.replace("http://partner.example", partner.url("")), **kw)

    session.get = via_loopback  # type: ignore[method-assign]
    from aggregator.errors import FetchPermanent

    with pytest.raises(FetchPermanent, match=r"refused destination 10\.0\.0\.5"):
        fetcher.get("http://partner.example/start", fmt="csv", max_bytes=1000, timeout=2)


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/admin",
        "http://[fe80::1]/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_allow_private_true_never_reaches_metadata_link_local_or_cgnat(
    store: Store, partner: LoopbackServer, target: str
) -> None:
    partner.route("/beds.csv", Response(302, b"", {"Location": target}))
    feed = csv_feed(partner.url("/beds.csv"))  # allow_private = true: the partner is on 127.0.0.1
    assert "127.0.0.0/8" in feed.allow_private and "169.254.0.0/16" not in feed.allow_private
    outcome = Pipeline(store, Fetcher(new_session("t")), clock=lambda: NOW).run(feed, force=True)
    assert outcome.status == "failed"
    assert "refused destination" in (outcome.error or "") and "never allowed" in (outcome.error or "")
    assert [r.path for r in partner.requests()] == ["/beds.csv"]  # the redirect was not followed


MAPPING = {"mapping": {"fields": {"source_id": "ID", "name": "Name", "state": "State", "postal_code": "ZIP"}}}


def test_allow_private_lists_exactly_what_it_allows() -> None:
    from aggregator.errors import ConfigError
    from aggregator.fetch import may_reach

    [listed] = registry.parse(
        {
            "feed": [
                {
                    "id": "lan",
                    "format": "csv",
                    "url": "http://10.1.2.3/beds.csv",
                    "allow_private": ["10.1.2.0/24", "100.64.0.0/10"],
                    **MAPPING,
                }
            ]
        }
    ).feeds
    assert listed.allow_private == ("10.1.2.0/24", "100.64.0.0/10")
    assert may_reach("10.1.2.9", listed.allow_private) and may_reach("100.64.3.4", listed.allow_private)
    assert not may_reach("10.1.3.9", listed.allow_private) and not may_reach("127.0.0.1", listed.allow_private)
    assert not may_reach("169.254.169.254", True) and may_reach("192.168.1.1", True)
    assert may_reach("93.184.216.34", False)
    with pytest.raises(ConfigError, match="allow_private"):
        registry.parse(
            {
                "feed": [
                    {
                        "id": "lan",
                        "format": "csv",
                        "url": "http://10.1.2.3/b.csv",
                        "allow_private": ["10.1.2.0/24", "not-a-net"],
                        **MAPPING,
                    }
                ]
            }
        )
    with pytest.raises(ConfigError, match="allow_private does not list"):
        registry.parse(
            {
                "feed": [
                    {
                        "id": "lan",
                        "format": "csv",
                        "url": "http://10.9.9.9/b.csv",
                        "allow_private": ["10.1.2.0/24"],
                        **MAPPING,
                    }
                ]
            }
        )


def test_credentials_come_from_the_environment_and_stay_on_the_host(store: Store, partner: LoopbackServer) -> None:
    partner.route("/beds.csv", csv(rows(1)))
    feed = csv_feed(
        partner.url("/beds.csv"), credentials={"header": "Authorization", "env": "BEDS_TOKEN", "scheme": "Bearer"}
    )
    pipeline = Pipeline(store, Fetcher(new_session("t")), environ={"BEDS_TOKEN": "s3cret"}, clock=lambda: NOW)
    assert pipeline.run(feed).status == "applied"
    assert partner.requests()[0].headers["authorization"] == "Bearer s3cret"
    missing = Pipeline(store, Fetcher(new_session("t")), environ={}, clock=lambda: NOW).run(feed, force=True)
    assert missing.status == "failed"
    assert "BEDS_TOKEN is not set" in missing.error
    assert "s3cret" not in json.dumps(store.feed_state("beds").to_hash())


def test_a_feed_never_runs_twice_at_once(store: Store, partner: LoopbackServer, pipeline: Pipeline) -> None:
    partner.route("/beds.csv", csv(rows(1)))
    feed = csv_feed(partner.url("/beds.csv"))
    token = store.acquire_lock("feed:beds", 60)
    assert token is not None
    assert pipeline.run_locked(feed).status == "busy"
    store.release_lock("feed:beds", token)
    assert pipeline.run_locked(feed).status == "applied"
    # a job whose earlier attempt died holding the lock takes it back; another job still waits
    assert store.acquire_lock("feed:beds", 60, owner="job-1") == "job-1"
    assert pipeline.run_locked(feed, owner="job-2").status == "busy"
    assert pipeline.run_locked(feed, owner="job-1", force=True).status == "applied"
    # every refusal shows in feed health
    health = store.feed_state("beds")
    assert health.busy_refusals == 2 and health.last_busy_at


def test_a_feed_lock_is_a_lease_renewed_while_the_run_lives_and_gone_soon_after_it_dies(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    import threading

    feed = csv_feed(partner.url("/slow.csv"), timeout=10)
    partner.route("/slow.csv", Response(200, rows(1), {"Content-Type": "text/csv"}, delay=2.5))
    outcome: list[str] = []
    run = threading.Thread(target=lambda: outcome.append(pipeline.run_locked(feed, lock_seconds=1.0).status))
    run.start()
    time.sleep(1.8)  # past the first lease: only renewal keeps the lock
    assert pipeline.run_locked(feed, lock_seconds=1.0).status == "busy"
    run.join(timeout=10)
    assert outcome == ["applied"]
    # a run that died holding its lease (no release): the feed is free again once the lease runs out
    assert store.acquire_lock("feed:beds", 1.0, owner="dead-run") == "dead-run"
    assert pipeline.run_locked(feed, force=True).status == "busy"
    time.sleep(1.2)
    assert pipeline.run_locked(feed, force=True).status == "applied"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6379/",
        "http://[::1]/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://[::ffff:10.0.0.1]/",
        "http://10.0.0.5/",
        "http://100.64.0.1/",
        "file:///etc/passwd",
        "gopher://partner.example/",
        "https://user:pw@partner.example/",
    ],
)
def test_dangerous_destinations_are_refused_before_any_connection(url: str) -> None:
    from aggregator.errors import FetchPermanent

    def resolver(host: str, port: int) -> list[str]:  # what the system resolver answers for each
        import socket

        try:
            return [socket.getaddrinfo(host, port)[0][4][0]]
        except OSError:
            return ["93.184.216.34"]

    fetcher = Fetcher(new_session("t"), resolver=resolver)
    with pytest.raises(FetchPermanent, match=r"refused destination|only http|user names"):
        fetcher.get(url, fmt="csv", max_bytes=1000, timeout=2)


def test_feed_health_lists_held_and_failing_feeds_first(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:

    partner.route("/a.csv", csv(rows(10)))
    partner.route("/b.csv", csv(rows(3)))
    held = FeedConfig(**{**csv_feed(partner.url("/a.csv")).__dict__, "id": "a-held"})
    failing = FeedConfig(**{**csv_feed(partner.url("/b.csv")).__dict__, "id": "b-failing"})
    fine = FeedConfig(**{**csv_feed(partner.url("/b.csv")).__dict__, "id": "c-fine"})
    never = FeedConfig(**{**csv_feed(partner.url("/b.csv")).__dict__, "id": "d-never"})
    for f in (held, failing, fine):
        pipeline.run(f)
    partner.route("/a.csv", csv(b"ID,Name,State,ZIP,Lat,Lon,Services,Detox beds,Updated\n"))
    pipeline.run(held, force=True)  # empty export: held, not applied
    partner.route("/b.csv", Response(404))
    pipeline.run(failing, force=True)
    health = feed_health([fine, never, failing, held], store, NOW + timedelta(minutes=30))
    assert [(h["id"], h["status"]) for h in health] == [
        ("a-held", "held"),
        ("b-failing", "failing"),
        ("d-never", "never_run"),
        ("c-fine", "ok"),
    ]
    assert "remove all 10 centers" in health[0]["held"]["reason"]
    assert health[1]["last_error"].endswith("HTTP 404")
    assert health[3]["data_age_seconds"] == 45 * 60  # reported 9:45 local, asked at 10:30 local
    assert health[3]["accepted"] == 3


def test_a_due_run_that_did_not_complete_is_queued_again(store: Store, partner: LoopbackServer) -> None:
    partner.route("/beds.csv", csv(rows(2)))
    feed = csv_feed(partner.url("/beds.csv"), schedule="15m")
    clock = [NOW]
    pipeline = Pipeline(store, Fetcher(new_session("center-availability-tests/1.0")), clock=lambda: clock[0])
    sent: list[str] = []
    assert pipeline.run(feed).status == "applied"
    clock[0] = NOW + timedelta(minutes=10)
    assert pipeline.sweep_feeds([feed], sent.append) == []  # finished, and not yet due again
    # a run starts and its worker dies (no completion, no lock left after its lease)
    store.set_feed_state("beds", FeedState(last_attempt=(NOW + timedelta(minutes=15)).isoformat()))
    clock[0] = NOW + timedelta(minutes=15, seconds=20)
    assert pipeline.sweep_feeds([feed], sent.append) == []  # it may be taking its lock just now
    clock[0] = NOW + timedelta(minutes=22)
    token = store.acquire_lock("feed:beds", 60)
    assert pipeline.sweep_feeds([feed], sent.append) == []  # its lock is held: something still runs it
    assert token is not None and store.release_lock("feed:beds", token)
    assert pipeline.sweep_feeds([feed], sent.append) == ["beds"]
    assert store.feed_state("beds").last_swept_why == "run died"
    assert pipeline.sweep_feeds([feed], sent.append) == []  # this dead attempt is queued already
    # the queued run starts and dies too: it is queued again, without waiting a period
    store.set_feed_state("beds", FeedState(last_attempt=(NOW + timedelta(minutes=22, seconds=5)).isoformat()))
    clock[0] = NOW + timedelta(minutes=23)
    assert pipeline.sweep_feeds([feed], sent.append) == ["beds"]
    assert pipeline.sweep_feeds([feed], sent.append) == []
    # beat lost: nothing tried for two periods
    assert pipeline.run(feed, force=True).status in ("applied", "unchanged")
    clock[0] = clock[0] + timedelta(minutes=45)
    assert pipeline.sweep_feeds([feed], sent.append) == ["beds"]
    assert store.feed_state("beds").last_swept_why == "overdue"
    assert sent == ["beds", "beds", "beds"]


@pytest.mark.parametrize("staged", [False, True], ids=["one-transaction", "staged"])
def test_a_corrected_time_zone_replaces_the_figures_the_wrong_one_stamped_later(
    store: Store, partner: LoopbackServer, pipeline: Pipeline, staged: bool
) -> None:
    """A partner writes its times in UTC, and the feed was set up as New York's: 9:45 was stored as 14:45 UTC. Once
    the time zone is corrected the same rows report 9:45 UTC, earlier than what is stored; newest-wins would refuse
    them and keep the wrongly stamped figures live until their window ended. The feed's own figures are replaced."""
    if staged:
        store.stage_above = 0
    partner.route("/beds.csv", csv(rows(5)))
    feed = csv_feed(partner.url("/beds.csv"))
    pipeline.run(feed)
    [hit, *_] = near(store, zip="02139", now=NOW).results
    assert hit.availability[0]["reported_at"] == "2026-11-27T14:45:00Z"
    partner.route("/beds.csv", csv(rows(5, beds=1)))
    corrected = csv_feed(partner.url("/beds.csv"), timezone="UTC")
    out = pipeline.run(corrected)
    assert out.status == "applied" and out.report is not None and out.report.stored is not None
    assert (out.report.stored.observations_written, out.report.stored.observations_stale) == (5, 0)
    for hit in near(store, zip="02139", now=NOW).results:
        [level] = hit.availability
        assert (level["reported_at"], level["beds_available"]) == ("2026-11-27T09:45:00Z", 1)
    # from then on newest-wins again: an older export of the same feed is refused
    partner.route("/beds.csv", csv(rows(5, beds=7).replace(b"9:45 AM", b"8:45 AM")))
    older = pipeline.run(corrected)
    assert older.report is not None and older.report.stored is not None
    assert older.report.stored.observations_stale == 5
    assert {h.availability[0]["beds_available"] for h in near(store, zip="02139", now=NOW).results} == {1}
    assert not check(store, now=NOW)


def test_a_held_run_under_a_corrected_time_zone_replaces_the_figures_when_released(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    partner.route("/beds.csv", csv(rows(10)))
    pipeline.run(csv_feed(partner.url("/beds.csv"), quarantine_share=0.3))
    partner.route("/beds.csv", csv(rows(4, beds=1)))  # six of ten gone: held
    corrected = csv_feed(partner.url("/beds.csv"), quarantine_share=0.3, timezone="UTC")
    assert pipeline.run(corrected).status == "held"
    assert pipeline.release(corrected, by="operator-7").status == "applied"
    for hit in near(store, zip="02139", now=NOW).results:
        assert (hit.availability[0]["reported_at"], hit.availability[0]["beds_available"]) == (
            "2026-11-27T09:45:00Z",
            1,
        )


def _one_document_fails(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's runs miss a second document of their feed (a page answering 404): partial runs."""
    fetch_all = pipeline._fetch_all

    def one_document_failed(*args: Any) -> Any:
        documents, first, failed = fetch_all(*args)
        return documents, first, [*failed, "page 2: 404"]

    monkeypatch.setattr(pipeline, "_fetch_all", one_document_failed)


def test_a_partial_run_keeps_no_validators_and_leaves_a_settings_change_pending(
    store: Store, partner: LoopbackServer, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run missing one of its documents keeps no validators (the next run reads every document, not a 304 on the
    first one) and does not record the new settings as those its figures were read under (the next run replaces
    the figures of the document it could not read)."""
    partner.route("/beds.csv", csv(rows(5), ETag='"v1"'))
    pipeline.run(csv_feed(partner.url("/beds.csv")))
    before = store.feed_state("beds").figures_settings
    assert before and store.feed_state("beds").etag == '"v1"'
    corrected = csv_feed(partner.url("/beds.csv"), timezone="UTC")
    _one_document_fails(pipeline, monkeypatch)
    assert pipeline.run(corrected).status == "partial"
    monkeypatch.undo()
    state = store.feed_state("beds")
    assert (state.etag, state.digest, state.settings, state.figures_settings) == (None, None, None, before)
    again = pipeline.run(corrected)  # the same bytes: read whole, not "unchanged" nor a 304
    assert again.status == "applied" and again.report is not None and again.report.stored is not None
    assert again.report.stored.observations_stale == 0
    assert store.feed_state("beds").figures_settings not in (None, before)
    assert _shown(store) == {("2026-11-27T09:45:00Z", 3)}


def _shown(store: Store) -> set[tuple[str, int]]:
    return {
        (h.availability[0]["reported_at"], h.availability[0]["beds_available"])
        for h in near(store, zip="02139", now=NOW).results
    }


def test_a_corrected_run_whose_staged_write_failed_leaves_its_retry_to_replace_the_figures(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    """A staged write drops the validators (their settings among them) before its first step; the settings the
    figures were read under are kept apart, so the retry after a failed write still replaces them."""
    store.stage_above = 0
    partner.route("/beds.csv", csv(rows(5)))
    pipeline.run(csv_feed(partner.url("/beds.csv")))
    partner.route("/beds.csv", csv(rows(5, beds=1)))
    corrected = csv_feed(partner.url("/beds.csv"), timezone="UTC")

    def fail(step: str) -> None:
        if step == "masked":
            raise TransientError("Redis went away (injected)")

    store.on_stage_step = fail
    with pytest.raises(TransientError):
        pipeline.run(corrected)
    store.on_stage_step = lambda _step: None
    assert store.feed_state("beds").settings is None  # the validators went as the write began
    assert pipeline.run(corrected).status == "applied"
    assert _shown(store) == {("2026-11-27T09:45:00Z", 1)}


def test_a_release_of_a_run_held_under_the_old_settings_leaves_the_correction_to_the_next_run(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    partner.route("/beds.csv", csv(rows(10)))
    old = csv_feed(partner.url("/beds.csv"), quarantine_share=0.3)
    pipeline.run(old)
    partner.route("/beds.csv", csv(rows(4, beds=1)))
    assert pipeline.run(old).status == "held"  # read under the old time zone
    corrected = csv_feed(partner.url("/beds.csv"), quarantine_share=0.3, timezone="UTC")
    assert pipeline.release(corrected, by="operator-7").status == "applied"
    assert _shown(store) == {("2026-11-27T14:45:00Z", 1)}  # as the held run read them
    assert pipeline.run(corrected).status == "applied"
    assert _shown(store) == {("2026-11-27T09:45:00Z", 1)}


def test_a_new_version_of_the_code_keeps_newest_wins(store: Store, partner: LoopbackServer, pipeline: Pipeline) -> None:
    """The validators' settings carry the normalizing code's version; the figures' settings do not: after an upgrade
    the export is read whole, and an older export is still refused."""
    partner.route("/beds.csv", csv(rows(5)))
    feed = csv_feed(partner.url("/beds.csv"))
    pipeline.run(feed)
    store.set_feed_state("beds", FeedState(settings="written-by-another-version"))
    partner.route("/beds.csv", csv(rows(5, beds=7).replace(b"9:45 AM", b"8:45 AM")))  # an older copy of the export
    out = pipeline.run(feed)
    assert out.status == "applied" and out.report is not None and out.report.stored is not None
    assert out.report.stored.observations_stale == 5
    assert _shown(store) == {("2026-11-27T14:45:00Z", 3)}


def test_an_unchanged_figure_replaced_in_own_mode_keeps_no_changed_time_from_the_wrong_clock(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    partner.route("/beds.csv", csv(rows(1).replace(b"9:45 AM", b"8:45 AM")))
    pipeline.run(csv_feed(partner.url("/beds.csv")))
    partner.route("/beds.csv", csv(rows(1)))  # the same beds, reported again an hour later
    pipeline.run(csv_feed(partner.url("/beds.csv")))
    [level] = get_levels(store)
    assert (level["reported_at"], level["changed_at"]) == ("2026-11-27T14:45:00Z", "2026-11-27T13:45:00Z")
    pipeline.run(csv_feed(partner.url("/beds.csv"), timezone="UTC"))  # the same beds, read under the right zone
    [level] = get_levels(store)
    # 13:45 (the wrong clock's first report) is after 9:45 UTC: the figures changed as of this report
    assert (level["reported_at"], level["changed_at"]) == ("2026-11-27T09:45:00Z", "2026-11-27T09:45:00Z")


def get_levels(store: Store) -> list[dict[str, object]]:
    [hit] = near(store, zip="02139", now=NOW, audience="operator").results
    return hit.availability


def test_an_unchanged_figure_replaced_in_own_mode_keeps_a_changed_time_from_before_the_new_report(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    partner.route("/beds.csv", csv(rows(1).replace(b"9:45 AM", b"3:00 AM")))
    pipeline.run(csv_feed(partner.url("/beds.csv")))
    partner.route("/beds.csv", csv(rows(1)))  # the same beds, reported again
    pipeline.run(csv_feed(partner.url("/beds.csv")))
    pipeline.run(csv_feed(partner.url("/beds.csv"), timezone="UTC"))  # the same beds, read under the right zone
    [level] = get_levels(store)
    # the beds have been the same since at least 8:00 (3:00 read as New York's): before this report, so kept
    assert (level["reported_at"], level["changed_at"]) == ("2026-11-27T09:45:00Z", "2026-11-27T08:00:00Z")


def test_a_level_rejected_in_a_corrected_run_drops_the_figure_the_wrong_clock_stamped(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    """A level whose cell is unreadable keeps its last figure, except in a run under changed settings: that figure
    was stamped by the settings replaced (14:45 for a report made at 9:45) and would show as fresher than it is."""
    partner.route("/beds.csv", csv(rows(2)))
    pipeline.run(csv_feed(partner.url("/beds.csv")))
    corrected = csv_feed(partner.url("/beds.csv"), timezone="UTC")
    unreadable = rows(2, beds=1).replace(b"-71.10,DT,1,11/27/2026 9:45 AM\n", b"-71.10,DT,lots,11/27/2026 9:45 AM\n", 1)
    partner.route("/beds.csv", csv(unreadable))
    out = pipeline.run(corrected)
    assert out.report is not None and out.report.rejected_levels == {"beds:C0": {"detox"}}
    assert out.report.stored is not None and out.report.stored.observations_pruned == 1
    assert _shown_by_id(store) == {"beds:C0": None, "beds:C1": ("2026-11-27T09:45:00Z", 1)}
    # under settings unchanged, a rejected level keeps its last figure, as before
    partner.route("/beds.csv", csv(rows(2, beds=1)))
    pipeline.run(corrected)
    partner.route("/beds.csv", csv(unreadable.replace(b"9:45 AM", b"10:45 AM")))
    pipeline.run(corrected)
    assert _shown_by_id(store)["beds:C0"] == ("2026-11-27T09:45:00Z", 1)


def _shown_by_id(store: Store) -> dict[str, tuple[str, int] | None]:
    return {
        h.id: (h.availability[0]["reported_at"], h.availability[0]["beds_available"])
        if h.availability and h.availability[0].get("reported_at")
        else None
        for h in near(store, zip="02139", now=NOW).results
    }


def test_the_first_partial_run_of_a_feed_records_the_settings_its_figures_were_read_under(
    store: Store, partner: LoopbackServer, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner.route("/beds.csv", csv(rows(3)))
    _one_document_fails(pipeline, monkeypatch)
    assert pipeline.run(csv_feed(partner.url("/beds.csv"))).status == "partial"
    monkeypatch.undo()
    assert store.feed_state("beds").figures_settings  # a later correction is a change, not an unknown
    partner.route("/beds.csv", csv(rows(3, beds=1)))
    assert pipeline.run(csv_feed(partner.url("/beds.csv"), timezone="UTC")).status == "applied"
    assert _shown(store) == {("2026-11-27T09:45:00Z", 1)}
