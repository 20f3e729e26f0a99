"""The Redis store on a real redis-server: atomic, idempotent snapshots; no ghosts; newest wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis

from aggregator import lookup
from aggregator import store as store_module
from aggregator.store import OBSERVATION_DEFAULTS, Store, observation_json, stored_observation
from tests.integration.factories import NOW, ago, center, observation


def dump(store: Store) -> dict[bytes, object]:
    """Every key and its value (for comparing whole states)."""
    r = store.redis
    out: dict[bytes, object] = {}
    for key in sorted(r.keys("*")):
        kind = r.type(key)
        if kind == b"hash":
            value = dict(r.hgetall(key))
            out[key] = {k: v for k, v in value.items()} if b"meta" not in key else sorted(value)
        elif kind == b"set":
            out[key] = sorted(r.smembers(key))
        elif kind == b"zset":
            out[key] = r.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = r.get(key)
    return out


def test_replacing_a_snapshot_is_idempotent(store: Store) -> None:
    centers = [
        center("f", str(i), 42.36 + i / 1000, -71.1, levels_of_care=["detox"], payment=["medicaid"]) for i in range(20)
    ]
    obs = [observation(c, beds_available=2) for c in centers]
    first = store.replace_feed("f", centers, obs, now=NOW, source="pull")
    assert (first.added, first.observations_written) == (20, 20)
    before = dump(store)
    again = store.replace_feed("f", centers, obs, now=NOW, source="pull")
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 20, 0)
    assert dump(store) == before


def test_a_center_that_left_its_feed_leaves_every_index(store: Store) -> None:
    a = center("f", "a", 42.36, -71.1, levels_of_care=["detox"], languages=["es"])
    b = center("f", "b", 42.37, -71.1, levels_of_care=["detox"])
    store.replace_feed("f", [a, b], [observation(a), observation(b)], now=NOW, source="pull")
    result = store.replace_feed("f", [b], [observation(b)], now=NOW, source="pull")
    assert result.removed == 1
    r, k = store.redis, store.keys
    assert r.zscore(k.geo, "f:a") is None
    assert r.zscore(k.geo_level("detox"), "f:a") is None and r.zscore(k.geo_level("detox"), "f:b") is not None
    assert not r.exists(k.index("lang:es"))
    assert not r.exists(k.center("f:a"), k.availability("f:a"))
    assert store.feed_members("f") == {"f:b"}


def test_no_geo_member_is_ever_without_its_record(store: Store) -> None:
    levels = ["detox", "residential", "otp"]
    for n in (50, 10, 30, 0, 5):
        cs = [center("f", str(i), 42.3 + i / 500, -71.1, levels_of_care=[levels[(i + n) % 3]]) for i in range(n)]
        store.replace_feed("f", cs, [], now=NOW)
        members = {m.decode() for m in store.redis.zrange(store.keys.geo, 0, -1)}
        records = {k.decode().split("c:", 1)[1] for k in store.redis.keys(store.keys.center("*"))}
        assert members == records == {c.id for c in cs}
        for level in levels:  # each level's own index holds exactly the centers offering it
            in_level = {m.decode() for m in store.redis.zrange(store.keys.geo_level(level), 0, -1)}
            assert in_level == {c.id for c in cs if level in c.services.levels_of_care}


def test_a_center_that_stops_offering_a_level_leaves_that_level_s_index(store: Store) -> None:
    store.replace_feed("f", [center("f", "a", 42.36, -71.1, levels_of_care=["detox", "residential"])], [], now=NOW)
    store.replace_feed("f", [center("f", "a", 42.36, -71.1, levels_of_care=["residential"])], [], now=NOW)
    assert store.redis.zscore(store.keys.geo_level("detox"), "f:a") is None
    assert store.redis.zscore(store.keys.geo_level("residential"), "f:a") is not None
    store.replace_feed("f", [center("f", "a", levels_of_care=["residential"])], [], now=NOW)  # lost its place
    assert store.redis.zscore(store.keys.geo_level("residential"), "f:a") is None
    assert store.redis.zscore(store.keys.geo, "f:a") is None


def test_changed_services_move_between_filter_indexes(store: Store) -> None:
    a = center("f", "a", 42.36, -71.1, payment=["medicaid"])
    store.replace_feed("f", [a], [], now=NOW)
    a2 = center("f", "a", 42.36, -71.1, payment=["private"])
    assert store.replace_feed("f", [a2], [], now=NOW).updated == 1
    k = store.keys
    assert not store.redis.sismember(k.index("pay:medicaid"), "f:a")
    assert store.redis.sismember(k.index("pay:private"), "f:a")


def test_feeds_do_not_touch_each_other(store: Store) -> None:
    store.replace_feed("one", [center("one", "a", 42.36, -71.1)], [], now=NOW)
    store.replace_feed("two", [center("two", "a", 42.36, -71.1)], [], now=NOW)
    store.replace_feed("one", [], [], now=NOW)
    assert store.feed_ids() == {"two"}
    assert store.count_located() == 1


def test_an_older_observation_never_overwrites_a_newer_one(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1)
    store.replace_feed("f", [c], [], now=NOW)
    newer = observation(c, status="full", beds_available=0, reported_at=ago(minutes=1), source="push")
    older = observation(c, status="available", beds_available=4, reported_at=ago(minutes=10), source="push")
    assert store.record_observations([newer]) == (1, 0)
    assert store.record_observations([older]) == (0, 1)
    _, stored = store.get_center("f:a") or ({}, [])
    assert stored[0]["status"] == "full"


def test_changed_at_moves_only_when_the_figures_change(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1)
    store.replace_feed("f", [c], [], now=NOW)

    def changed_at() -> str:
        _, stored = store.get_center("f:a") or ({}, [])
        return str(stored[0]["changed_at"])

    store.record_observations([observation(c, beds_available=3, reported_at=ago(minutes=30))])
    first = changed_at()
    store.record_observations([observation(c, beds_available=3, reported_at=ago(minutes=20))])
    assert changed_at() == first
    store.record_observations([observation(c, beds_available=1, status="limited", reported_at=ago(minutes=10))])
    assert changed_at() != first


def test_a_feed_drops_its_own_observations_for_levels_it_no_longer_reports(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1)
    store.replace_feed("f", [c], [observation(c, "detox"), observation(c, "residential")], now=NOW, source="pull")
    store.record_observations([observation(c, "outpatient", source="operator")])
    result = store.replace_feed("f", [c], [observation(c, "detox")], now=NOW, source="pull")
    assert result.observations_pruned == 1
    fields = {f.decode() for f in store.redis.hkeys(store.keys.availability("f:a"))}
    assert fields == {"detox|pull", "outpatient|operator"}


def test_a_snapshot_with_no_figures_counts_the_figures_it_drops(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1)
    store.replace_feed("f", [c], [observation(c, "detox"), observation(c, "residential")], now=NOW, source="pull")
    result = store.replace_feed("f", [c], [], now=NOW, source="pull")
    assert result.observations_pruned == 2 and store.redis.hkeys(store.keys.availability("f:a")) == []


def test_unplaced_centers_are_kept_and_listed(store: Store) -> None:
    a = center("f", "a")  # no coordinates
    result = store.replace_feed("f", [a], [], now=NOW)
    assert result.needs_location == ["f:a"]
    assert store.needs_location() == ["f:a"]
    assert store.get_center("f:a") is not None
    store.replace_feed("f", [center("f", "a", 42.36, -71.1)], [], now=NOW)
    assert store.needs_location() == []


def test_inactive_centers_are_kept_but_not_searchable(store: Store) -> None:
    store.replace_feed("f", [center("f", "a", 42.36, -71.1, status="inactive", levels_of_care=["detox"])], [], now=NOW)
    assert store.get_center("f:a") is not None
    assert store.count_located() == 0
    assert store.redis.zscore(store.keys.geo_level("detox"), "f:a") is None


def test_observations_of_unknown_centers_are_not_written(store: Store) -> None:
    assert store.record_observations([observation("f:nobody")]) == (0, 0)
    assert not store.redis.exists(store.keys.availability("f:nobody"))


def test_an_observation_is_stored_without_its_defaults_and_read_with_them(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox", "residential"])
    full = observation(c, "detox", "limited", beds_available=0, beds_total=12, notes="call first")
    bare = observation(c, "residential", "waitlist")
    store.replace_feed("f", [c], [full, bare], now=NOW, source="pull")
    stored = {k.decode(): stored_observation(v) for k, v in store.redis.hgetall(store.keys.availability("f:a")).items()}
    # a zero is a figure, not a default; an empty note and a missing count are left out (their short names)
    assert stored["detox|pull"]["ba"] == 0 and stored["detox|pull"]["no"] == "call first"
    assert not {"ba", "bt", "ac", "wl", "ap", "na", "no", "rb"} & set(stored["residential|pull"])
    found = store.get_center("f:a")
    assert found is not None
    by_level = {o["level_of_care"]: o for o in found[1]}
    assert by_level["residential"]["beds_available"] is None and by_level["residential"]["notes"] == ""
    assert {k: by_level["residential"][k] for k in OBSERVATION_DEFAULTS} == OBSERVATION_DEFAULTS
    assert by_level["detox"]["beds_total"] == 12 and by_level["detox"]["reported_by"] == ""
    hits = store.search(longitude=-71.1, latitude=42.36, radius_mi=1, limit=1, now=NOW)
    assert sorted(hits[0][3], key=lambda o: o["level_of_care"]) == sorted(found[1], key=lambda o: o["level_of_care"])


def test_an_observation_reads_back_as_every_field_it_was_stored_with(store: Store) -> None:
    """The compact stored form (short names, epoch times, level, source and record from where it is kept)
    loses nothing: every figure, and every time to the microsecond, reads back as the model writes it."""
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox", "outpatient"])
    reported = datetime(2026, 11, 27, 14, 50, 39, 649603, tzinfo=UTC)
    full = observation(
        c,
        "outpatient",
        "limited",
        source="push",
        reported_at=reported,
        checked_at=reported + timedelta(seconds=3, microseconds=1),
        beds_available=1,
        beds_total=4,
        accepting="existing_only",
        waitlist_size=0,
        appointments_available=2,
        next_appointment_at=datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
        notes='call "intake" first / ask for Ana',
        reported_by="partner desk",
    )
    whole = observation(c, "detox", "full", source="push", reported_at=datetime(2026, 11, 27, 14, 0, tzinfo=UTC))
    store.replace_feed("f", [c], [full, whole], now=NOW, source="push")
    found = store.get_center("f:a")
    assert found is not None
    by_level = {o["level_of_care"]: o for o in found[1]}
    for obs in (full, whole):
        want = obs.model_dump(mode="json", exclude={"center_id", "changed_at"})
        got = by_level[obs.level_of_care.value]
        assert {k: got[k] for k in want} == want
        assert got["record"] == "f:a" and got["changed_at"] == want["reported_at"]


def test_changed_at_stays_while_the_figures_do_and_moves_when_they_change(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"])
    first = datetime(2026, 11, 27, 13, 0, 0, 123456, tzinfo=UTC)
    store.replace_feed("f", [c], [], now=NOW, source="pull")
    for minutes in (0, 10, 20):
        store.record_observations([observation(c, beds_available=3, reported_at=first + timedelta(minutes=minutes))])
    found = store.get_center("f:a")
    assert found is not None
    assert found[1][0]["changed_at"] == "2026-11-27T13:00:00.123456Z"
    assert found[1][0]["reported_at"] == "2026-11-27T13:20:00.123456Z"
    store.record_observations([observation(c, beds_available=2, reported_at=first + timedelta(minutes=30))])
    found = store.get_center("f:a")
    assert found is not None
    assert found[1][0]["changed_at"] == found[1][0]["reported_at"] == "2026-11-27T13:30:00.123456Z"


def test_observations_stored_before_the_compact_form_are_read_and_carried(store: Store) -> None:
    """A store written by the release before: its observations (long names, ISO times) still read whole and
    count as open, and a report with the same figures keeps the changed_at they carried."""
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"])
    store.replace_feed("f", [c], [], now=NOW, source="pull")
    reported = NOW - timedelta(minutes=5)
    stamp = reported.isoformat().replace("+00:00", "Z")
    old = {
        "source": "pull",
        "level_of_care": "detox",
        "status": "available",
        "beds_available": 4,
        "reported_at": stamp,
        "checked_at": stamp,
        "changed_at": "2026-01-01T00:00:00Z",
        "freshness_seconds": 900,
        "record": "f:a",
        "rt": int(reported.timestamp() * 1000),
        "sig": "5b0c2fd3c6e1a7d4",  # a digest of its figures, as that release kept (no longer compared)
        "wo": 1,
    }
    store.redis.hset(store.keys.availability("f:a"), "detox|pull", orjson.dumps(old))
    store.redis.hdel(store.keys.center("f:a"), "s")  # judged from the observations themselves
    found = store.get_center("f:a")
    assert found is not None
    assert found[1][0]["beds_available"] == 4 and found[1][0]["notes"] == ""
    assert found[1][0]["changed_at"] == "2026-01-01T00:00:00Z"
    open_now = store.search(longitude=-71.1, latitude=42.36, radius_mi=1, limit=1, now=NOW, available_only=True)
    assert [h[0] for h in open_now] == ["f:a"]
    store.record_observations([observation(c, beds_available=4, reported_at=NOW)])
    found = store.get_center("f:a")
    assert found is not None
    assert found[1][0]["changed_at"] == "2026-01-01T00:00:00Z"
    assert found[1][0]["reported_at"] == "2026-11-27T15:00:00Z"


def test_a_mask_kept_before_records_were_packed_reads_as_it_was(store: Store) -> None:
    """A staged write of the release before kept a facility's read document in its old form ([record,
    [observation...]]); while that generation still writes, readers see it whole, and available_only judges it."""
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"])
    store.replace_feed("f", [c], [observation(c, beds_available=9)], now=NOW, source="pull")
    record = c.model_dump(mode="json") | {"name": "As it was", "sources": [{"id": "f:a", "feed_id": "f"}]}
    stamp = (NOW - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    old = {
        "source": "pull",
        "level_of_care": "detox",
        "status": "available",
        "beds_available": 2,
        "reported_at": stamp,
        "checked_at": stamp,
        "changed_at": stamp,
        "freshness_seconds": 900,
        "record": "f:a",
        "rt": int((NOW - timedelta(minutes=1)).timestamp() * 1000),
        "sig": "0",
        "wo": 1,
    }
    store.redis.hset(store.keys.staging, "g1", "w")
    doc = orjson.dumps([record, [old]])
    store.redis.hset(store.keys.masks, "f:a", b"g1\nloc:detox\n" + doc)
    found = store.get_center("f:a")
    assert found is not None
    assert found[0]["name"] == "As it was" and found[1][0]["beds_available"] == 2
    hits = store.search(longitude=-71.1, latitude=42.36, radius_mi=1, limit=1, now=NOW, available_only=True)
    assert [(h[0], h[2]["name"]) for h in hits] == [("f:a", "As it was")]
    later = NOW + timedelta(hours=1)  # its figure is stale by then: not open
    assert store.search(longitude=-71.1, latitude=42.36, radius_mi=1, limit=1, now=later, available_only=True) == []


def test_levels_of_care_are_indexed_by_their_geo_sets_only(store: Store) -> None:
    """A level filter searches geo:loc:{level}; no ix:loc set is kept beside it (nothing read it); a facility
    that drops a level leaves such a set an earlier release wrote."""
    r, k = store.redis, store.keys
    a = center("f", "a", 42.36, -71.1, levels_of_care=["detox"], payment=["medicaid"])
    store.replace_feed("f", [a], [observation(a)], now=NOW, source="pull")
    assert r.zscore(k.geo_level("detox"), "f:a") is not None
    assert r.sismember(k.index("pay:medicaid"), "f:a")
    assert not r.exists(k.index("loc:detox"))
    r.sadd(k.index("loc:detox"), "f:a")  # as the release before wrote it
    moved = center("f", "a", 42.36, -71.1, levels_of_care=["residential"], payment=["medicaid"])
    store.replace_feed("f", [moved], [observation(moved, "residential")], now=NOW, source="pull")
    assert not r.exists(k.index("loc:detox"), k.index("loc:residential"))
    assert r.zscore(k.geo_level("detox"), "f:a") is None
    found = lookup.near(store, latitude=42.36, longitude=-71.1, levels_of_care=["residential"], now=NOW)
    assert [h.id for h in found.results] == ["f:a"]
    assert not lookup.near(store, latitude=42.36, longitude=-71.1, levels_of_care=["detox"], now=NOW).results


def test_a_checked_time_equal_to_the_write_order_is_stored_once(store: Store) -> None:
    """A figure checked as the run wrote it (most are: a run stamps them with its start) keeps its checked time
    as the write order (wo) alone; another checked time is kept; both read back whole."""
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox", "residential"])
    earlier = NOW - timedelta(seconds=7, microseconds=250)
    same = observation(c, "detox", reported_at=ago(minutes=5), checked_at=NOW)
    other = observation(c, "residential", reported_at=ago(minutes=5), checked_at=earlier)
    store.replace_feed("f", [c], [same, other], now=NOW, source="pull")
    stored = {k.decode(): stored_observation(v) for k, v in store.redis.hgetall(store.keys.availability("f:a")).items()}
    assert "ct" not in stored["detox|pull"] and stored["detox|pull"]["wo"] == int(NOW.timestamp() * 1000)
    assert stored["residential|pull"]["ct"] == int(earlier.timestamp() * 1000)
    found = store.get_center("f:a")
    assert found is not None
    by_level = {o["level_of_care"]: o for o in found[1]}
    assert by_level["detox"]["checked_at"] == "2026-11-27T15:00:00Z"
    assert by_level["residential"]["checked_at"] == "2026-11-27T14:59:52.999750Z"
    hits = store.search(longitude=-71.1, latitude=42.36, radius_mi=1, limit=1, now=NOW)
    assert {o["level_of_care"]: o["checked_at"] for o in hits[0][3]} == {
        "detox": "2026-11-27T15:00:00Z",
        "residential": "2026-11-27T14:59:52.999750Z",
    }


def test_an_observation_of_the_compact_form_before_keeps_its_changed_time_while_its_figures_do(store: Store) -> None:
    """The release before stored a digest of the figures (sig) and compared digests; figures are now compared
    one by one, in either form: the same figures keep their changed time, other figures move it."""
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"])
    store.replace_feed("f", [c], [], now=NOW, source="pull")
    reported = int((NOW - timedelta(minutes=30)).timestamp() * 1000)
    kept = {"st": "limited", "fs": 900, "ba": 2, "bt": 12, "rt": reported, "ct": reported, "ch": reported - 3_600_000}
    kept |= {"sig": "0f1e2d3c4b5a6978", "wo": reported}
    store.redis.hset(store.keys.availability("f:a"), "detox|pull", orjson.dumps(kept))
    assert b"sig" not in observation_json(observation(c, "detox", "limited", beds_available=2, beds_total=12))

    def changed_after(**figures: Any) -> str:
        at = ago(minutes=20 - len(figures))
        store.record_observations([observation(c, "detox", reported_at=at, checked_at=at, **figures)])
        found = store.get_center("f:a")
        assert found is not None
        return str(found[1][0]["changed_at"])

    assert changed_after(status="limited", beds_available=2, beds_total=12) == "2026-11-27T13:30:00Z"
    assert changed_after(status="limited", beds_available=2, beds_total=12, notes="") == "2026-11-27T13:30:00Z"
    moved = changed_after(status="limited", beds_available=1, beds_total=12, notes="x")
    assert moved == "2026-11-27T14:44:00Z"


def test_a_level_given_as_an_index_token_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="levels="):
        store.search(longitude=-71.1, latitude=42.36, radius_mi=1, limit=1, now=NOW, groups=[["loc:detox"]])


FIGURE_CHANGES = {
    "status": {"status": "full"},
    "beds_available": {"beds_available": 1},
    "beds_total": {"beds_total": 13},
    "accepting": {"accepting": "existing_only"},
    "waitlist_size": {"waitlist_size": 4},
    "notes": {"notes": "call first"},
    "appointments_available": {"appointments_available": 3},
    "next_appointment_at": {"next_appointment_at": datetime(2026, 11, 28, 9, 0, tzinfo=UTC)},
}


@pytest.mark.parametrize("changed", sorted(FIGURE_CHANGES))
def test_each_figure_moves_the_changed_time_and_reported_by_does_not(store: Store, changed: str) -> None:
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"])
    store.replace_feed("f", [c], [], now=NOW, source="pull")
    base = {"status": "limited", "beds_available": 2, "beds_total": 12}

    def changed_at(minutes: int, **figures: Any) -> str:
        store.record_observations([observation(c, "detox", reported_at=ago(minutes=minutes), **figures)])
        found = store.get_center("f:a")
        assert found is not None
        return str(found[1][0]["changed_at"])

    first = changed_at(30, **base)
    assert changed_at(25, **base, reported_by="desk") == first  # who reported it is not a figure
    assert changed_at(20, **base | FIGURE_CHANGES[changed]) == "2026-11-27T14:40:00Z"


def test_a_long_form_observation_with_its_defaults_written_out_keeps_or_moves_its_changed_time(store: Store) -> None:
    """The long form kept before the compact one wrote every default (null figures, an empty note)."""
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"])
    store.replace_feed("f", [c], [], now=NOW, source="pull")
    reported = NOW - timedelta(minutes=30)
    stamp = reported.isoformat().replace("+00:00", "Z")
    old = {**OBSERVATION_DEFAULTS, "level_of_care": "detox", "source": "pull", "status": "limited"}
    old |= {"beds_available": 2, "reported_at": stamp, "checked_at": stamp, "changed_at": "2026-01-01T00:00:00Z"}
    old |= {"freshness_seconds": 900, "record": "f:a", "rt": int(reported.timestamp() * 1000), "wo": 1}
    assert old["notes"] == "" and old["beds_total"] is None
    key = store.keys.availability("f:a")
    store.redis.hset(key, "detox|pull", orjson.dumps(old))
    store.record_observations([observation(c, "detox", "limited", beds_available=2, reported_at=ago(minutes=20))])
    found = store.get_center("f:a")
    assert found is not None and found[1][0]["changed_at"] == "2026-01-01T00:00:00Z"
    store.redis.hset(key, "detox|pull", orjson.dumps(old))
    store.record_observations([observation(c, "detox", "limited", beds_available=1, reported_at=ago(minutes=20))])
    found = store.get_center("f:a")
    assert found is not None and found[1][0]["changed_at"] == "2026-11-27T14:40:00Z"


def test_a_checked_time_with_microseconds_on_the_write_order_reads_back_whole(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"])
    checked = NOW + timedelta(microseconds=417)
    store.replace_feed("f", [c], [observation(c, checked_at=checked)], now=NOW, source="pull")
    stored = stored_observation(store.redis.hget(store.keys.availability("f:a"), "detox|pull") or b"{}")
    assert "ct" not in stored and stored["cu"] == 417
    found = store.get_center("f:a")
    assert found is not None and found[1][0]["checked_at"] == "2026-11-27T15:00:00.000417Z"


def test_reads_in_one_round_trip_survive_a_dropped_connection_and_never_reuse_a_half_read_one(store: Store) -> None:
    """``_read_many``: replies in order; an idle connection the server dropped is no error (the pool replaces it);
    an error reply raises, and the connection it was read on (replies left unread behind it) is not handed on."""
    store.redis.hset("cx:test:h", mapping={"a": "1", "b": "2"})
    assert store._read_many([("HGET", "cx:test:h", "a"), ("HMGET", "cx:test:h", "b", "z"), ("SMEMBERS", "cx:no")]) == [
        b"1",
        [b"2", None],
        [],
    ]
    admin = redis.Redis(connection_pool=redis.ConnectionPool(**store.redis.connection_pool.connection_kwargs))
    for client in admin.client_list():  # the store's idle connection dies under it
        if int(client["id"]) != admin.client_id():
            admin.client_kill_filter(_id=client["id"])
    admin.close()
    assert store._read_many([("HGET", "cx:test:h", "b")]) == [b"2"]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        store._read_many([("SMEMBERS", "cx:test:h"), ("HGET", "cx:test:h", "a")])
    assert store._read_many([("HGET", "cx:test:h", "a")] * 3) == [b"1"] * 3  # no stray reply read as an answer


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"checked_at": NOW},  # checked at the write's order: no ct, readers take wo
        {"checked_at": NOW + timedelta(microseconds=1500)},
        {"beds_available": 2, "beds_total": 9, "notes": "men / women", "accepting": "new"},
        {"next_appointment_at": NOW + timedelta(days=2), "waitlist_size": 4, "reported_by": "intake desk"},
    ],
)
def test_a_first_figure_stored_as_it_comes_is_what_reading_and_writing_it_again_stores(
    store: Store, kw: dict[str, Any]
) -> None:
    """observe.lua stores a level's first figure as the store sent it (with the write's order as wo) instead of
    decoding and encoding it again; the same figure sent without the order takes the long way: both store the
    same fields."""
    from aggregator.store import observation_field

    order = int(NOW.timestamp() * 1000)
    obs = observation("f:a", "detox", "limited", reported_at=NOW - timedelta(minutes=5), **kw)
    fast, slow = store.keys.availability("f:fast"), store.keys.availability("f:slow")
    field = observation_field(obs)
    store.redis.eval(store._observe_src, 1, fast, store.keys.prefix, order, "", field, observation_json(obs, order))
    store.redis.eval(store._observe_src, 1, slow, store.keys.prefix, order, "", field, observation_json(obs))
    stored_fast, stored_slow = store.redis.hget(fast, field), store.redis.hget(slow, field)
    assert stored_fast == observation_json(obs, order)  # as it came
    assert stored_observation(stored_fast) == stored_observation(stored_slow)
    assert stored_observation(stored_fast)["wo"] == order


@pytest.mark.parametrize("look_max", [5000, 1], ids=["its records", "members read whole"])
def test_a_partial_write_counts_what_it_keeps_and_the_feeds_size(
    store: Store, look_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partial write (a push, or a run some of whose files failed) keeps the records it names as kept that are
    the feed's, counts them unchanged, and leaves the feed's size right, whatever else the feed holds (a small one
    naming many records reads the feed's members whole: ``LOOK_KEPT_MAX``; test_staged_writes runs it staged)."""
    monkeypatch.setattr(store_module, "LOOK_KEPT_MAX", look_max)
    centers = [center("f", str(i), 42.36 + i / 1000, -71.1) for i in range(5)]
    store.replace_feed("f", centers, [], now=NOW, source="pull")
    kept = ["f:1", "f:2", "f:9"]  # f:9 is no record of the feed
    again = store.replace_feed("f", [centers[0]], [], now=NOW, partial=True, kept=kept)
    assert (again.unchanged, again.added, again.removed) == (3, 0, 0)
    grown = store.replace_feed("f", [center("f", "7", 42.5, -71.1)], [], now=NOW, partial=True, kept=kept)
    assert (grown.unchanged, grown.added, grown.removed) == (2, 1, 0)
    assert store.feed_meta("f")["centers"] == "6"
    assert store.feed_members("f") == {f"f:{i}" for i in (0, 1, 2, 3, 4, 7)}
