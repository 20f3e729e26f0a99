"""The invariant checker finds each kind of damage it names, and nothing in healthy data."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner

from aggregator.invariants import check
from aggregator.store import PushRecord, Store
from tests.integration.factories import NOW, center, observation


def load(store: Store) -> None:
    cs = [
        center("beds", str(i), 42.36 + i / 100, -71.10, name=f"Harbor {i}", levels_of_care=["detox"]) for i in range(5)
    ]
    store.replace_feed("beds", cs, [observation(c, beds_available=i) for i, c in enumerate(cs)], now=NOW, source="pull")


def kinds(store: Store, **kw: object) -> set[str]:
    return {v.invariant for v in check(store, now=kw.pop("now", NOW), **kw)}  # type: ignore[arg-type]


def test_healthy_data_breaks_nothing(store: Store) -> None:
    load(store)
    assert (
        check(
            store,
            now=NOW,
            feed_sizes={"beds": 5},
            quiet=True,
            newest={"beds:3": {"name": "Harbor 3", "availability.detox.beds_available": 3}},
        )
        == []
    )


def test_each_kind_of_damage_is_named(store: Store) -> None:
    load(store)
    k, r = store.keys, store.redis
    r.geoadd(k.geo, (-71.1, 42.3, "ghost"))
    assert kinds(store) == {"geo_without_record"}
    r.zrem(k.geo, "ghost")
    r.delete(k.record("beds:2"))
    assert kinds(store) == {"geo_without_record", "snapshot_torn"}
    store.replace_feed(
        "beds", [center("beds", str(i), 42.36 + i / 100, -71.10, name=f"Harbor {i}") for i in range(5)], [], now=NOW
    )
    assert kinds(store, feed_sizes={"beds": 6}) == {"snapshot_torn"}  # the partner sent 6: one is missing
    assert kinds(store, newest={"beds:1": {"name": "Harbor One"}}) == {"older_over_newer"}
    store.accept_push("beds", "evt-1", "ing_1", PushRecord(feed_id="beds", status="queued", kind="json", body=b"[]"))
    assert kinds(store, pushes=["ing_1"]) == {"push_not_applied"}
    store.update_push("ing_1", PushRecord(status="done"))
    assert kinds(store, pushes=["ing_1"]) == set()
    assert kinds(store, quiet=True) == {"push_not_applied"}  # still in the pending index
    store.push_finished("ing_1")
    r.set(k.lock("feed:beds"), "run-1")  # no lease: a dead run's lock would stay forever
    assert kinds(store) == {"dead_lock"}
    r.pexpire(k.lock("feed:beds"), 30_000)
    assert kinds(store) == set()
    assert kinds(store, quiet=True) == {"dead_lock"}
    r.delete(k.lock("feed:beds"))
    assert kinds(store, quiet=True) == set()


def test_stale_figures_served_as_fresh_are_caught(store: Store, monkeypatch: object) -> None:
    load(store)
    later = NOW + timedelta(hours=2)  # past the 15-minute window
    assert kinds(store, now=later) == set()
    import aggregator.invariants as inv

    real = inv.get_center

    def careless(store: Store, fid: str, **kw: object) -> object:  # a lookup that forgot the window
        view = real(store, fid, audience="operator", now=kw["now"])  # type: ignore[arg-type]
        for a in view["availability"]:  # type: ignore[index]
            a["fresh"] = True
        return view

    monkeypatch.setattr(inv, "get_center", careless)  # type: ignore[attr-defined]
    assert kinds(store, now=later) == {"stale_as_fresh"}


def test_centers_check_exits_non_zero_naming_the_broken_invariant(store: Store, redis_url: str) -> None:
    from aggregator.cli import main

    load(store)
    env = {"REDIS_URL": redis_url, "CENTERS_KEY_PREFIX": store.keys.prefix}
    ok = CliRunner().invoke(main, ["check"], env=env)
    assert ok.exit_code == 0 and "All 6 invariants hold" in ok.output, ok.output
    store.redis.set(store.keys.lock("feed:beds"), "run-1")
    bad = CliRunner().invoke(main, ["check"], env=env)
    assert bad.exit_code == 1 and "dead_lock" in bad.output and "no lease" in bad.output, bad.output
