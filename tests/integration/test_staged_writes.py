"""Large writes run as staged generations (aggregator/staging.py) on a real redis-server.

Every test of the store, the lookup and facility matching runs again here with every write staged
(``stage_above=0``): a staged write must leave exactly what one transaction leaves. Then: readers see
a feed whole-old or whole-new at every step of a staged write; a writer that dies before its flip
leaves readers the old snapshot, and the feed's next write takes its generation over; one that dies
after its flip is cleaned up; small writes wait while a staged one runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from aggregator import invariants
from aggregator.lookup import get_center, near
from aggregator.store import WRITER_LOCK, Store
from tests.integration.factories import CAMBRIDGE, NOW, center, observation
from tests.integration.test_facilities import *  # noqa: F403  (run again, every write staged)
from tests.integration.test_lookup import *  # noqa: F403
from tests.integration.test_store import *  # noqa: F403


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    """Every write staged, however small."""
    s = Store(Store.from_url(redis_url).redis, stage_above=0)
    s.stage_budget = 10  # many small transactions: every step is seen
    s.redis.flushdb()
    yield s
    s.redis.connection_pool.disconnect()


def feed(version: int, n: int = 40, *, located: bool = True) -> tuple[list, list]:  # type: ignore[type-arg]
    """A feed of n centers around Cambridge; every name and figure says which version it is."""
    lat, lon = CAMBRIDGE
    cs = [
        center(
            "big",
            str(i),
            lat + i / 2000 if located else None,
            lon if located else None,
            name=f"Center {i} v{version}",
            levels_of_care=["detox"] if version == 1 else ["residential"],
            payment=["medicaid"],
        )
        for i in range(n)
    ]
    obs = [observation(c, "detox" if version == 1 else "residential", beds_available=version) for c in cs]
    return cs, obs


def versions(store: Store) -> set[str]:
    """The versions a public search sees of the feed (from names and figures)."""
    seen: set[str] = set()
    for level in ("detox", "residential"):
        answer = near(
            store,
            latitude=CAMBRIDGE[0],
            longitude=CAMBRIDGE[1],
            radius_mi=25,
            limit=50,
            now=NOW,
            levels_of_care=[level],
        )
        for hit in answer.results:
            seen.add(hit.center["name"].rsplit(" ", 1)[1])
    return seen


def test_readers_see_the_old_snapshot_or_the_new_one_at_every_step(store: Store) -> None:
    store.replace_feed("big", *feed(1), now=NOW, source="pull")
    assert versions(store) == {"v1"}
    seen: list[tuple[str, set[str], int]] = []

    def look(step: str) -> None:
        answer = near(store, latitude=CAMBRIDGE[0], longitude=CAMBRIDGE[1], radius_mi=25, limit=50, now=NOW)
        seen.append((step, versions(store), len(answer.results)))

    store.on_stage_step = look
    store.replace_feed("big", *feed(2), now=NOW, source="pull")
    steps = [s for s, _, _ in seen]
    assert steps.count("chunk") > 3, "the write was not cut into several transactions"
    flip = steps.index("flipped")
    assert all(v == {"v1"} and n == 40 for _, v, n in seen[:flip]), seen
    assert all(v == {"v2"} and n == 40 for _, v, n in seen[flip:]), seen
    assert not store.redis.exists(store.keys.staging, store.keys.masks)
    assert invariants.check(store, now=NOW, quiet=True) == []


def test_a_feed_that_leaves_stays_whole_until_the_flip(store: Store) -> None:
    store.replace_feed("big", *feed(1), now=NOW, source="pull")
    counts: list[tuple[str, int, bool]] = []

    def look(step: str) -> None:
        answer = near(store, latitude=CAMBRIDGE[0], longitude=CAMBRIDGE[1], radius_mi=25, limit=50, now=NOW)
        counts.append((step, len(answer.results), get_center(store, "big:3", now=NOW) is not None))

    store.on_stage_step = look
    store.replace_feed("big", [], [], now=NOW, source="pull")
    flip = [s for s, _, _ in counts].index("flipped")
    assert all(n == 40 and found for _, n, found in counts[:flip]), counts
    assert all(n == 0 and not found for _, n, found in counts[flip:]), counts
    assert store.redis.zcard(store.keys.geo) == 0
    assert invariants.check(store, now=NOW, quiet=True) == []


class Died(Exception):
    pass


def die_at(store: Store, step: str, after: int = 1) -> None:
    calls = {"n": 0}

    def hook(name: str) -> None:
        if name == step:
            calls["n"] += 1
            if calls["n"] >= after:
                raise Died(name)

    store.on_stage_step = hook


def test_a_writer_that_dies_before_its_flip_leaves_the_old_snapshot_and_is_taken_over(store: Store) -> None:
    store.replace_feed("big", *feed(1), now=NOW, source="pull")
    die_at(store, "chunk", after=3)
    with pytest.raises(Died):
        store.replace_feed("big", *feed(2), now=NOW, source="pull")
    store.on_stage_step = lambda step: None
    assert versions(store) == {"v1"}  # half of v2 is written, none of it visible
    assert (
        len(near(store, latitude=CAMBRIDGE[0], longitude=CAMBRIDGE[1], radius_mi=25, limit=50, now=NOW).results) == 40
    )
    quiet = invariants.check(store, now=NOW, quiet=True)
    assert [v.invariant for v in quiet] == ["dead_lock"] and "before its flip" in quiet[0].detail
    # another feed's small write goes on meanwhile
    other = center("other", "x", CAMBRIDGE[0], CAMBRIDGE[1] + 0.3)
    Store(store.redis, stage_above=10_000).replace_feed("other", [other], [], now=NOW)
    # the feed's next write takes the dead generation over; a different snapshot from the one that died
    cs, obs = feed(3, n=25)
    store.replace_feed("big", cs, obs, now=NOW, source="pull")
    assert versions(store) == {"v3"}
    assert store.feed_members("big") == {c.id for c in cs}
    assert not store.redis.exists(store.keys.staging, store.keys.masks)
    assert invariants.check(store, now=NOW, quiet=True, feed_sizes={"big": 25, "other": 1}) == []


def test_a_writer_that_dies_after_its_flip_is_cleaned_up(store: Store) -> None:
    store.replace_feed("big", *feed(1), now=NOW, source="pull")
    die_at(store, "flipped")
    with pytest.raises(Died):
        store.replace_feed("big", *feed(2, n=30), now=NOW, source="pull")
    store.on_stage_step = lambda step: None
    assert versions(store) == {"v2"}  # flipped: the new snapshot is what readers see
    assert (
        len(near(store, latitude=CAMBRIDGE[0], longitude=CAMBRIDGE[1], radius_mi=25, limit=50, now=NOW).results) == 30
    )
    assert store.finish_staged() == 1
    assert not store.redis.exists(store.keys.staging, store.keys.masks)
    assert store.redis.zcard(store.keys.geo_level("detox")) == 0  # deferred removals done
    assert store.feed_members("big") != {f"big:{i}" for i in range(30)}  # the members that left: next run
    store.replace_feed("big", *feed(2, n=30), now=NOW, source="pull")
    assert invariants.check(store, now=NOW, quiet=True, feed_sizes={"big": 30}) == []


def test_a_staged_write_whose_connection_drops_half_way_finishes_on_a_new_one(store: Store) -> None:
    """Its transactions go out one ahead of their answers; those not answered when the connection dies are sent
    again on a new one (each is a replay of the same writes), and the write ends as if nothing had happened."""
    store.replace_feed("big", *feed(1), now=NOW, source="pull")
    chunks = {"n": 0}

    def cut(step: str) -> None:
        if step == "chunk":
            chunks["n"] += 1
            if chunks["n"] == 3:  # the writer's connection (and every other) is closed by the server
                assert store.redis.client_kill_filter(_type="normal", skipme=True) >= 1

    store.on_stage_step = cut
    result = store.replace_feed("big", *feed(2), now=NOW, source="pull")
    store.on_stage_step = lambda step: None
    assert chunks["n"] > 3
    assert versions(store) == {"v2"}
    assert (result.observations_written, result.observations_stale) == (40, 0)  # each answer counted once
    assert not store.redis.exists(store.keys.staging, store.keys.masks)
    assert invariants.check(store, now=NOW, quiet=True) == []


def test_a_staged_write_rides_out_more_dropped_connections_than_one_transaction_is_retried(store: Store) -> None:
    """The connection's retry budget holds for each transaction, as when each was a pipeline of its own: a long
    write (a national feed's first load) outlives as many short outages as it has transactions, one at a time."""
    retries = store.redis.connection_pool.connection_kwargs["retry"].get_retries()
    store.replace_feed("big", *feed(1, 200), now=NOW, source="pull")
    drops = {3 * (k + 1) for k in range(retries + 2)}  # more than the budget, each at another transaction
    chunks = {"n": 0}

    def cut(step: str) -> None:
        if step == "chunk":
            chunks["n"] += 1
            if chunks["n"] in drops:
                assert store.redis.client_kill_filter(_type="normal", skipme=True) >= 1

    store.on_stage_step = cut
    result = store.replace_feed("big", *feed(2, 200), now=NOW, source="pull")
    store.on_stage_step = lambda step: None
    assert chunks["n"] > max(drops)
    assert versions(store) == {"v2"}
    assert (result.observations_written, result.observations_stale) == (200, 0)  # each answer counted once
    assert not store.redis.exists(store.keys.staging, store.keys.masks)
    assert invariants.check(store, now=NOW, quiet=True) == []


def test_a_refused_transaction_stops_a_staged_write_before_its_flip(store: Store) -> None:
    """An error reply half-way through is raised as it came, nothing of the write becomes visible, the client is
    left fit for use, and the feed's next write takes the generation over."""
    store.replace_feed("big", *feed(1), now=NOW, source="pull")
    observe = store._observe_src
    store._observe_src = "return redis.error_reply('ERR refused on purpose')"
    with pytest.raises(redis.ResponseError, match="refused on purpose"):
        store.replace_feed("big", *feed(2), now=NOW, source="pull")
    store._observe_src = observe
    assert store.redis.ping()
    assert versions(store) == {"v1"}
    store.replace_feed("big", *feed(2), now=NOW, source="pull")
    assert versions(store) == {"v2"}
    assert not store.redis.exists(store.keys.staging, store.keys.masks)
    assert invariants.check(store, now=NOW, quiet=True) == []


@pytest.mark.parametrize("partial", [False, True], ids=["snapshot", "push"])
def test_small_writes_wait_while_a_staged_write_runs(store: Store, partial: bool) -> None:
    store.replace_feed("big", *feed(1), now=NOW, source="pull")
    small = Store(store.redis, stage_above=10_000)
    events: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def hook(step: str) -> None:
        if step == "masked":
            started.set()
            release.wait(10)
        events.append(step)

    def push() -> None:
        started.wait(10)
        assert store.redis.exists(store.keys.lock(WRITER_LOCK))
        threading.Timer(0.3, release.set).start()
        small.replace_feed("small", [center("small", "a", CAMBRIDGE[0], CAMBRIDGE[1])], [], now=NOW, partial=partial)
        events.append("small write")

    store.on_stage_step = hook
    t = threading.Thread(target=push)
    t.start()
    store.replace_feed("big", *feed(2), now=NOW, source="pull")
    t.join(20)
    assert events.index("small write") > events.index("cleaned")
    assert invariants.check(store, now=NOW, quiet=True) == []


def test_a_write_that_lands_while_a_staged_one_is_planned_is_kept(store: Store) -> None:
    """Planning runs without the lock; a facility changed meanwhile makes the write plan again under it."""
    store.replace_feed("big", *feed(1), now=NOW, source="pull")
    small = Store(store.redis, stage_above=10_000)
    plan = store._plan_staged
    calls: list[int] = []

    def plan_then_interfere(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = plan(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # another partner's record of the same place joins big:5's facility
            twin = center(
                "other",
                "5",
                CAMBRIDGE[0] + 5 / 2000,
                CAMBRIDGE[1],
                name="Center 5 v2",
                levels_of_care=["residential"],
                payment=["medicaid"],
            )
            small.replace_feed("other", [twin], [], now=NOW)
            small.decide_match("other:5", "big:5", "same", by="test", now=NOW)  # an operator links them
        return out

    store._plan_staged = plan_then_interfere  # type: ignore[method-assign]
    store.replace_feed("big", *feed(2), now=NOW, source="pull")
    assert store.facility_of("other:5") == "big:5"
    record = get_center(store, "big:5", now=NOW)
    assert record is not None and {m["id"] for m in record["sources"]} == {"big:5", "other:5"}
    assert invariants.check(store, now=NOW, quiet=True) == []
    assert len(calls) == 2, "the write was not planned again"
