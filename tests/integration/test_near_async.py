"""The HTTP API's near-you search path: the rate check and the search in one script call, awaited on an asyncio
client (``Store.count_and_search``), on a real Redis; the same answers as ``near()``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio

from aggregator import lookup
from aggregator.errors import StoreUnavailable
from aggregator.local.redis_process import free_port
from aggregator.store import Store
from tests.integration.factories import CAMBRIDGE, NOW, ago, center, observation


@pytest.fixture
def metro(store: Store) -> Store:
    lat, lon = CAMBRIDGE
    a = center("f", "detox-medicaid", lat + 0.01, lon, levels_of_care=["detox"], payment=["medicaid"])
    b = center("f", "detox-private", lat + 0.02, lon, levels_of_care=["detox"], payment=["private"])
    c = center("f", "residential", lat + 0.03, lon, levels_of_care=["residential"], payment=["medicaid"])
    obs = [
        observation(a, "detox", "available", beds_available=3, reported_at=ago(minutes=5)),
        observation(c, "residential", "waitlist", waitlist_size=4, reported_at=ago(minutes=1)),
    ]
    store.replace_feed("f", [a, b, c], obs, now=NOW, source="pull")
    return store


def plan(**query: Any) -> lookup.NearPlan:
    return lookup.plan_near(latitude=CAMBRIDGE[0], longitude=CAMBRIDGE[1], now=NOW, **query)


def answer_of(store: Store, p: lookup.NearPlan, client: str = "client-a", allowed: int = 100) -> Any:
    async def go() -> Any:
        return await store.count_and_search(client, 60_000, allowed, p.search())

    return asyncio.run(go())


@pytest.mark.parametrize(
    "query",
    [{}, {"payment": ["medicaid"]}, {"levels_of_care": ["detox"]}, {"available_only": True}, {"limit": 1}],
)
def test_the_same_answer_as_near(metro: Store, query: dict[str, Any]) -> None:
    p = plan(**query)
    retry, hits = answer_of(metro, p)
    assert retry is None
    awaited = lookup.answer_near(p, hits, "public").as_dict()
    direct = lookup.near(metro, latitude=CAMBRIDGE[0], longitude=CAMBRIDGE[1], now=NOW, **query).as_dict()
    assert awaited == direct
    assert awaited["count"] >= 1


def test_a_client_over_its_limit_costs_no_search(metro: Store) -> None:
    p = plan()
    for _ in range(3):
        retry, hits = answer_of(metro, p, "client-b", allowed=3)
        assert retry is None and len(hits) == 3
    retry, hits = answer_of(metro, p, "client-b", allowed=3)
    assert hits == [] and 0 < retry <= 60_000
    assert metro.redis.get(metro.keys.rate("client-b")) == b"4"  # counted, as count_request counts
    retry, hits = answer_of(metro, p, "client-c", allowed=3)  # another client is not held up
    assert retry is None and len(hits) == 3


def test_the_script_is_loaded_again_after_a_flush(metro: Store) -> None:
    metro.redis.script_flush()
    retry, hits = answer_of(metro, plan())
    assert retry is None and [h[0] for h in hits] == ["f:detox-medicaid", "f:detox-private", "f:residential"]


def test_each_event_loop_gets_its_own_client(metro: Store) -> None:
    # connections of asyncio belong to the loop that opened them: a second loop (a test client's, a
    # restarted server's) must not reuse the first one's
    answer_of(metro, plan())
    first = metro._async
    answer_of(metro, plan())
    assert first is not None and metro._async is not None and metro._async[1] is not first[1]


class _OwnPool(redis.ConnectionPool):
    """A client handed in (not from_url): the store has no asyncio client for it."""


def test_a_client_that_cannot_be_mirrored_runs_in_a_thread(metro: Store, redis_url: str) -> None:
    threaded = Store(redis.Redis(connection_pool=_OwnPool.from_url(redis_url)))
    assert threaded._async_connect is None
    p = plan(payment=["medicaid"])
    retry, hits = answer_of(threaded, p)
    assert retry is None
    assert (
        lookup.answer_near(p, hits, "public").as_dict()
        == lookup.near(metro, latitude=CAMBRIDGE[0], longitude=CAMBRIDGE[1], now=NOW, payment=["medicaid"]).as_dict()
    )
    threaded.redis.connection_pool.disconnect()


@pytest.mark.parametrize("mirrored", [True, False])
def test_a_redis_that_is_down_reads_as_unavailable(mirrored: bool) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    store = Store.from_url(url, timeout=0.3, retries=0)
    if not mirrored:
        store._async_connect = None
    with pytest.raises(StoreUnavailable, match="Redis unavailable while searching"):
        answer_of(store, plan())


def test_a_burst_waits_for_a_connection_instead_of_failing(metro: Store, redis_url: str) -> None:
    # a pool of two connections that refuses a third at once (as a Sentinel pool does): fifty searches at
    # the same moment all get their answer, two at a time
    small = Store(
        metro.redis,
        async_client=lambda: redis.asyncio.Redis(
            connection_pool=redis.asyncio.ConnectionPool.from_url(redis_url, max_connections=2)
        ),
        async_in_flight=2,
    )

    async def burst() -> list[Any]:
        return list(
            await asyncio.gather(
                *(small.count_and_search(f"burst-{i}", 60_000, 100, plan().search()) for i in range(50))
            )
        )

    answers = asyncio.run(burst())
    assert all(retry is None and len(hits) == 3 for retry, hits in answers)
