"""Accepted means applied: a push survives a transient store error, and an older push applied late never
overwrites a newer one (center fields included, not only availability)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from aggregator.errors import StoreUnavailable
from aggregator.fetch import Fetcher, new_session
from aggregator.ingest import Pipeline
from aggregator.lookup import get_center
from aggregator.store import PushRecord, Store
from config import registry
from config.registry import FeedConfig
from tests.integration.factories import NOW, FlakyStore, center

FEED: FeedConfig = registry.parse(
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
                        "phone": "phone",
                    },
                    "availability": [
                        {
                            "constants": {"level_of_care": "detox"},
                            "fields": {"beds_available": "detox_beds", "reported_at": "updated_at"},
                        }
                    ],
                },
            }
        ]
    }
).feeds[0]


def push(store: Store, ingest_id: str, received: str, **record: Any) -> None:
    body = {"id": "h-1", "state": "MA", "zip": "02139", "lat": 42.3651, "lon": -71.1040, **record}
    assert (
        store.accept_push(
            "harbor",
            f"evt-{ingest_id}",
            ingest_id,
            PushRecord(
                feed_id="harbor",
                event_id=f"evt-{ingest_id}",
                kind="json",
                body=json.dumps([body]).encode(),
                status="queued",
                received_at=received,
            ),
        )
        is None
    )


def test_a_transient_store_error_leaves_the_push_to_be_applied_again(redis_url: str, store: Store) -> None:
    flaky = FlakyStore(store.redis, store.keys.prefix)
    pipeline = Pipeline(flaky, Fetcher(new_session("tests/1.0")), clock=lambda: NOW)
    push(store, "ing_1", "2026-11-27T14:59:00Z", name="Harbor House", detox_beds=3, updated_at="2026-11-27T14:58:00Z")
    with pytest.raises(StoreUnavailable):
        pipeline.apply_push(FEED, "ing_1")
    record = store.push_record("ing_1")
    assert record is not None and record.status == "retrying"  # not "failed": the retry must apply it
    assert record.finished_at is None  # nor "done": that is written by the data's own transaction
    assert store.redis.zscore(store.keys.pending_pushes, "ing_1") is not None  # the sweeper still sees it
    assert "Timeout reading from socket" in (record.error or "")
    assert pipeline.apply_push(FEED, "ing_1")["status"] == "done"  # the task's retry
    assert store.push_record("ing_1").status == "done"  # type: ignore[union-attr]
    center = get_center(store, "harbor:h-1", now=NOW)
    assert center is not None and center["availability"][0]["beds_available"] == 3


def test_an_older_push_applied_late_never_overwrites_a_newer_one(store: Store) -> None:
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=5))
    push(
        store,
        "ing_old",
        "2026-11-27T14:50:00Z",
        name="Harbor House",
        phone="617-555-0142",
        detox_beds=1,
        updated_at="2026-11-27T14:49:00Z",
    )
    push(
        store,
        "ing_new",
        "2026-11-27T14:55:00Z",
        name="Harbor House Recovery",
        phone="617-555-0199",
        detox_beds=4,
        updated_at="2026-11-27T14:54:00Z",
    )
    # the newer push is applied first; the older one is redelivered late (a killed worker, a Redis restart)
    assert pipeline.apply_push(FEED, "ing_new")["status"] == "done"
    assert pipeline.apply_push(FEED, "ing_old")["status"] == "done"
    center = get_center(store, "harbor:h-1", audience="operator", now=NOW + timedelta(minutes=5))
    assert center is not None
    assert center["name"] == "Harbor House Recovery"
    assert [p["number"] for p in center["phones"]] == ["+16175550199"]
    [detox] = center["availability"]
    assert detox["beds_available"] == 4
    # a push accepted later still updates it
    push(
        store,
        "ing_later",
        "2026-11-27T14:58:00Z",
        name="Harbor House Recovery Center",
        detox_beds=2,
        updated_at="2026-11-27T14:57:00Z",
    )
    assert pipeline.apply_push(FEED, "ing_later")["status"] == "done"
    center = get_center(store, "harbor:h-1", now=NOW + timedelta(minutes=5))
    assert center is not None and center["name"] == "Harbor House Recovery Center"


def test_the_sweeper_queues_again_an_accepted_push_nobody_finished(store: Store) -> None:
    clock = [NOW]
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: clock[0])
    push(
        store, "ing_lost", "2026-11-27T14:59:00Z", name="Harbor House", detox_beds=2, updated_at="2026-11-27T14:58:00Z"
    )  # accepted (202); its message was lost with a Redis restart
    push(
        store, "ing_fine", "2026-11-27T14:59:30Z", name="Harbor House", detox_beds=2, updated_at="2026-11-27T14:58:30Z"
    )
    assert pipeline.apply_push(FEED, "ing_fine")["status"] == "done"
    sent: list[tuple[str, str]] = []
    clock[0] = NOW + timedelta(seconds=30)
    assert pipeline.sweep_pushes(lambda f, i: sent.append((f, i)), stale_seconds=3600 * 24 * 3650) == []
    # past the 60 s bound (a push is stamped pending with Redis's own clock when it is accepted)
    clock[0] = datetime.now(UTC) + timedelta(minutes=2)
    assert pipeline.sweep_pushes(lambda f, i: sent.append((f, i))) == ["ing_lost"]
    assert sent == [("harbor", "ing_lost")]  # the finished one is not sent again
    # sent again just now: not again on the next sweep, until it is stale once more
    assert pipeline.sweep_pushes(lambda f, i: sent.append((f, i))) == []
    assert pipeline.apply_push(FEED, "ing_lost")["status"] == "done"
    clock[0] = clock[0] + timedelta(hours=1)
    assert pipeline.sweep_pushes(lambda f, i: sent.append((f, i))) == []
    assert store.stale_pushes(clock[0]) == []


def test_of_two_pushes_stamped_the_same_second_the_one_accepted_later_wins(store: Store) -> None:
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=5))
    same = "2026-11-27T14:58:00Z"  # partners often stamp reports to the second
    push(store, "ing_first", "2026-11-27T14:58:00.100Z", name="Harbor House", detox_beds=5, updated_at=same)
    push(store, "ing_second", "2026-11-27T14:58:00.900Z", name="Harbor House", detox_beds=1, updated_at=same)
    assert pipeline.apply_push(FEED, "ing_second")["status"] == "done"
    assert pipeline.apply_push(FEED, "ing_first")["status"] == "done"  # redelivered late
    center = get_center(store, "harbor:h-1", audience="operator", now=NOW + timedelta(minutes=5))
    assert center is not None
    [detox] = center["availability"]
    assert detox["beds_available"] == 1
    assert "wo" not in detox


def test_a_push_to_a_large_feed_reads_only_the_records_it_carries(store: Store) -> None:
    """A partner pushing one change at a time to a feed of many centers: each push reads what is stored of its own
    records and the feed's size, never every member of the feed (a one-record push to a feed of 100,000 records
    took 51 ms when it did: BENCHMARKS.md, "Push -> visible")."""
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=5))
    others = [center("harbor", f"x-{i}", 42.0 + i / 1000, -71.5) for i in range(600)]
    store.replace_feed("harbor", others, [], now=NOW, source="push")
    smembers = store.redis.info("commandstats").get("cmdstat_smembers", {}).get("calls", 0)

    push(store, "ing_new", "2026-11-27T14:59:00Z", name="Harbor House", detox_beds=3, updated_at="2026-11-27T14:58:00Z")
    assert pipeline.apply_push(FEED, "ing_new")["status"] == "done"
    assert store.feed_meta("harbor")["centers"] == "601"  # a new record: the feed grew by one
    push(
        store, "ing_again", "2026-11-27T15:00:00Z", name="Harbor House", detox_beds=1, updated_at="2026-11-27T14:59:30Z"
    )
    assert pipeline.apply_push(FEED, "ing_again")["status"] == "done"
    assert store.feed_meta("harbor")["centers"] == "601"  # a record it had: the same size

    assert store.redis.info("commandstats").get("cmdstat_smembers", {}).get("calls", 0) == smembers
    assert len(store.feed_members("harbor")) == 601  # nothing else removed
    center_now = get_center(store, "harbor:h-1", now=NOW + timedelta(minutes=5))
    assert center_now is not None and center_now["availability"][0]["beds_available"] == 1
    assert get_center(store, "harbor:x-599", now=NOW + timedelta(minutes=5)) is not None


def test_a_push_is_read_and_started_in_one_round_trip_and_done_in_the_transaction_its_data_lands_in(
    store: Store,
) -> None:
    """The worker's trips to Redis for a push: one to read and start it, one pair (WATCH and the feed's look) and one
    transaction that writes the data and marks the push done together; a finished push is only read, again."""
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=5))
    push(store, "ing_1", "2026-11-27T14:59:00Z", name="Harbor House", detox_beds=3, updated_at="2026-11-27T14:58:00Z")
    store.redis.config_resetstat()
    assert pipeline.apply_push(FEED, "ing_1")["status"] == "done"
    stats = store.redis.info("commandstats")
    assert stats["cmdstat_exec"]["calls"] == 1  # data and "done" in one transaction
    assert stats["cmdstat_multi"]["calls"] == 1
    record = store.push_record("ing_1")
    assert record is not None and record.status == "done" and record.accepted == 1
    assert record.started_at == "2026-11-27T15:05:00Z" and record.applier
    assert store.redis.zscore(store.keys.pending_pushes, "ing_1") is None
    health = store.feed_state("harbor")
    assert health.last_attempt == "2026-11-27T15:05:00Z" and health.last_outcome == "applied"
    # a finished push is read, never started again: nothing of it or of its feed's health changes
    before = store.redis.hgetall(store.keys.push("ing_1")), store.redis.hgetall(store.keys.feed_state("harbor"))
    later = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=9))
    assert later.apply_push(FEED, "ing_1") == {"ingest_id": "ing_1", "status": "done"}
    after = store.redis.hgetall(store.keys.push("ing_1")), store.redis.hgetall(store.keys.feed_state("harbor"))
    assert after == before
    assert store.redis.zscore(store.keys.pending_pushes, "ing_1") is None
    # a push nobody stored writes nothing
    assert later.apply_push(FEED, "ing_missing") == {"ingest_id": "ing_missing", "status": "missing"}
    assert store.redis.exists(store.keys.push("ing_missing")) == 0


@pytest.mark.parametrize("staged", [False, True], ids=["one-transaction", "staged"])
def test_a_push_is_done_once_its_data_is_stored_small_or_staged(store: Store, staged: bool) -> None:
    if staged:
        store.stage_above = 0
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=5))
    push(store, "ing_1", "2026-11-27T14:59:00Z", name="Harbor House", detox_beds=3, updated_at="2026-11-27T14:58:00Z")
    assert pipeline.apply_push(FEED, "ing_1")["status"] == "done"
    record = store.push_record("ing_1")
    assert record is not None and record.status == "done" and record.finished_at
    assert store.redis.zscore(store.keys.pending_pushes, "ing_1") is None
    center_now = get_center(store, "harbor:h-1", now=NOW + timedelta(minutes=5))
    assert center_now is not None and center_now["availability"][0]["beds_available"] == 3


def test_a_push_whose_write_failed_inside_its_transaction_is_put_back_to_be_applied_again(store: Store) -> None:
    """Commands after an error reply in a MULTI still run, the push's "done" among them: the push is put back as
    retrying and pending, so the sweeper applies it again once the store is well."""
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=5))
    push(store, "ing_1", "2026-11-27T14:59:00Z", name="Harbor House", detox_beds=3, updated_at="2026-11-27T14:58:00Z")
    observe = store._observe_src
    store._observe_src = "return redis.error_reply('ERR refused on purpose')"
    try:
        with pytest.raises(redis.ResponseError):
            pipeline.apply_push(FEED, "ing_1")
    finally:
        store._observe_src = observe
    record = store.push_record("ing_1")
    assert record is not None and record.status == "retrying" and record.finished_at is None
    assert "refused on purpose" in (record.error or "")
    assert store.redis.zscore(store.keys.pending_pushes, "ing_1") is not None
    assert pipeline.apply_push(FEED, "ing_1")["status"] == "done"  # the sweeper's delivery
    center_now = get_center(store, "harbor:h-1", now=NOW + timedelta(minutes=5))
    assert center_now is not None and center_now["availability"][0]["beds_available"] == 3


def test_a_push_whose_write_landed_but_whose_reply_was_lost_stays_pending(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction ran (data and "done"), then the connection dropped before its reply: the push is retrying, and
    it is back among the pending pushes for the sweeper (the retry finds it done, or applies it again)."""
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=5))
    push(store, "ing_1", "2026-11-27T14:59:00Z", name="Harbor House", detox_beds=3, updated_at="2026-11-27T14:58:00Z")
    real = store.redis.pipeline
    armed = [True]

    def pipeline_losing_one_reply(*args: Any, **kwargs: Any) -> Any:
        pipe = real(*args, **kwargs)
        execute = pipe.execute

        def lose(*a: Any, **kw: Any) -> Any:
            out = execute(*a, **kw)
            if armed[0] and len(out) > 3:  # the data's transaction, not a small step's
                armed[0] = False
                raise redis.ConnectionError("connection lost after EXEC (injected)")
            return out

        pipe.execute = lose
        return pipe

    monkeypatch.setattr(store.redis, "pipeline", pipeline_losing_one_reply)
    with pytest.raises(StoreUnavailable):
        pipeline.apply_push(FEED, "ing_1")
    monkeypatch.undo()
    record = store.push_record("ing_1")
    assert record is not None and record.status == "retrying" and record.finished_at is None
    assert store.redis.zscore(store.keys.pending_pushes, "ing_1") is not None
    assert pipeline.apply_push(FEED, "ing_1")["status"] == "done"
    assert store.redis.zscore(store.keys.pending_pushes, "ing_1") is None


@pytest.mark.parametrize("error", [StoreUnavailable("writer lock held too long (injected)"), RuntimeError("a defect")])
def test_a_delivery_that_fails_after_another_applied_the_push_leaves_it_done(
    store: Store, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """Two deliveries of one push (a redelivery after a lost worker, the sweeper's): the one that fails after the other
    applied it neither turns "done" back nor records a failure in the feed's health."""
    a = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=5))
    b = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=5))
    push(store, "ing_1", "2026-11-27T14:59:00Z", name="Harbor House", detox_beds=3, updated_at="2026-11-27T14:58:00Z")

    def b_apply(*args: Any, **kwargs: Any) -> None:  # B began; A applies the same push meanwhile, then B fails
        assert a.apply_push(FEED, "ing_1")["status"] == "done"
        raise error

    monkeypatch.setattr(b, "_apply", b_apply)
    if isinstance(error, StoreUnavailable):
        assert b.apply_push(FEED, "ing_1")["status"] == "done"
    else:
        with pytest.raises(RuntimeError):
            b.apply_push(FEED, "ing_1")
    record = store.push_record("ing_1")
    assert record is not None and record.status == "done" and record.finished_at and record.accepted == 1
    assert store.redis.zscore(store.keys.pending_pushes, "ing_1") is None
    health = store.feed_state("harbor")
    assert health.last_error is None and not health.consecutive_failures


def test_a_push_failing_for_an_unexpected_reason_says_why_in_the_feeds_health(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline(store, Fetcher(new_session("tests/1.0")), clock=lambda: NOW + timedelta(minutes=5))
    push(store, "ing_1", "2026-11-27T14:59:00Z", name="Harbor House", detox_beds=3, updated_at="2026-11-27T14:58:00Z")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a defect")

    monkeypatch.setattr(pipeline, "_apply", broken)
    with pytest.raises(RuntimeError):
        pipeline.apply_push(FEED, "ing_1")
    record = store.push_record("ing_1")
    assert record is not None and record.status == "retrying" and record.error_kind == "unexpected"
    assert store.redis.zscore(store.keys.pending_pushes, "ing_1") is not None
    health = store.feed_state("harbor")
    assert health.last_error_kind == "unexpected" and "a defect" in (health.last_error or "")
