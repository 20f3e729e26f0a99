"""A reader looping over near() while a 5,000-center feed is replaced sees whole snapshots only."""

from __future__ import annotations

import threading

from aggregator.lookup import near
from aggregator.store import Store
from tests.integration.factories import CAMBRIDGE, NOW, center, observation


def snapshot(generation: str, offset: int) -> tuple[list, list]:
    lat0, lon0 = CAMBRIDGE
    centers, obs = [], []
    for i in range(5000):
        sid = f"c{i + offset}"
        # a 100 x 50 grid around Cambridge; generations overlap by half their ids
        lat = lat0 + ((i + offset) % 100) * 0.002 - 0.1
        lon = lon0 + ((i + offset) // 100 % 50) * 0.002 - 0.05
        c = center("big", sid, lat, lon, name=f"{generation} {sid}", levels_of_care=["detox"])
        centers.append(c)
        obs.append(observation(c, "detox", "available", beds_available=3, notes=generation))
    return centers, obs


def expected_ids(store: Store) -> list[str]:
    return [h.id for h in near(store, zip="02139", limit=50, radius_mi=30, now=NOW).results]


def test_readers_see_only_whole_old_or_whole_new_snapshots(store: Store) -> None:
    old, new = snapshot("old", 0), snapshot("new", 2500)
    store.replace_feed("big", *new, now=NOW, source="pull")
    new_ids = expected_ids(store)
    store.replace_feed("big", *old, now=NOW, source="pull")
    old_ids = expected_ids(store)
    assert old_ids != new_ids

    seen: dict[str, int] = {"old": 0, "new": 0}
    problems: list[str] = []
    stop = threading.Event()
    reader_store = Store.from_url(
        store.redis.connection_pool.connection_kwargs
        and f"redis://127.0.0.1:{store.redis.connection_pool.connection_kwargs['port']}/0"
    )

    def reader() -> None:
        while not stop.is_set():
            answer = near(reader_store, zip="02139", limit=50, radius_mi=30, now=NOW)
            generations = {h.center["name"].split()[0] for h in answer.results}
            notes = {a["notes"] for h in answer.results for a in h.availability}
            got = [h.id for h in answer.results]
            if len(generations) != 1 or notes != generations:
                problems.append(f"mixed snapshot: {generations} {notes}")
            elif got != (old_ids if "old" in generations else new_ids):
                problems.append(f"partial snapshot of {generations}")
            else:
                seen[generations.pop()] += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(6):
        store.replace_feed("big", *(new if i % 2 == 0 else old), now=NOW, source="pull")
    stop.set()
    for t in threads:
        t.join()
    assert problems == []
    assert seen["old"] > 0
    assert seen["new"] > 0
    assert len(store.feed_members("big")) == 5000
