"""What the store keeps once and composes as it reads: a facility founded by one record keeps no composed copy
(its read document carries the record, composed by the reader), observations are kept by position, the most
common link explanation is one byte. Every reader sees what the full forms gave."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from aggregator import facility
from aggregator.invariants import check
from aggregator.lookup import get_center, near
from aggregator.model import Phone
from aggregator.store import (
    COMPOSED_FROM_RECORD,
    FOUNDED_ALONE,
    SLOTS,
    STATUS_CODES,
    Store,
    composed,
    facility_members,
    founded_alone,
    stored_observation,
    unpack,
)
from tests.integration.factories import NOW, center, observation

LUA = Path(__file__).resolve().parents[2] / "aggregator" / "lua"


def full_composition(store: Store, fid: str) -> dict[str, object]:
    """``facility.compose`` of the facility's records as stored (what a full composed copy would hold)."""
    members = facility_members(fid, *store.redis.hmget(store.keys.center(fid), "j", "m"))
    assert members
    from aggregator.model import Center

    records = [
        facility.Member(Center.model_validate_json(unpack(store.redis.hget(store.keys.record(m), "j") or b"")))
        for m in sorted(members)
    ]
    return facility.compose(fid, records)


def test_a_facility_founded_by_one_record_keeps_no_composed_copy_and_reads_as_composed(store: Store) -> None:
    c = center(
        "f",
        "a",
        42.36,
        -71.1,
        levels_of_care=["detox", "residential"],
        payment=["medicaid"],
        phones=[Phone(number="+16175550100"), Phone(number="+16175550101", role="intake")],
    )
    store.replace_feed("f", [c], [observation(c, beds_available=3, beds_total=9)], now=NOW, source="pull")
    assert store.redis.hget(store.keys.center("f:a"), "j") == COMPOSED_FROM_RECORD
    want = full_composition(store, "f:a")
    found = store.get_center("f:a")
    assert found is not None and found[0] == want
    assert orjson.dumps(found[0]) == orjson.dumps(want)  # the same JSON, key for key
    hit = near(store, zip="02139", available_only=True, now=NOW).results[0]
    assert hit.id == "f:a" and {k: v for k, v in hit.center.items() if k != "sources"} == {
        k: v for k, v in want.items() if k != "sources"
    }
    assert [s["id"] for s in hit.center["sources"]] == ["f:a"]
    assert [p["source"] for p in want["phones"]] == ["f", "f"]  # type: ignore[index]


def test_a_record_that_composes_otherwise_keeps_its_composed_copy(store: Store) -> None:
    """Composing dedupes phones (one number, one role): a record listing one twice keeps the full composed copy."""
    twice = [Phone(number="+16175550100"), Phone(number="+16175550100")]
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"], phones=twice)
    store.replace_feed("f", [c], [], now=NOW, source="pull")
    kept = store.redis.hget(store.keys.center("f:a"), "j")
    assert kept is not None and kept != COMPOSED_FROM_RECORD
    found = store.get_center("f:a")
    assert found is not None and found[0] == full_composition(store, "f:a") and len(found[0]["phones"]) == 1


def test_a_facility_of_two_records_and_one_left_after_its_founder_keep_their_composed_copy(store: Store) -> None:
    first = center("samhsa", "1", 42.36, -71.1, name="Harbor Recovery Center", levels_of_care=["detox"])
    second = center("beds", "H-9", 42.36001, -71.10001, name="Harbor Recovery Center", levels_of_care=["residential"])
    store.replace_feed("samhsa", [first], [], now=NOW, source="pull")
    assert store.redis.hget(store.keys.center("samhsa:1"), "j") == COMPOSED_FROM_RECORD
    store.replace_feed("beds", [second], [], now=NOW, source="scrape")
    assert store.facility_of("beds:H-9") == "samhsa:1"
    both = store.redis.hget(store.keys.center("samhsa:1"), "j")
    assert both is not None and both != COMPOSED_FROM_RECORD
    found = store.get_center("samhsa:1")
    assert found is not None and found[0] == full_composition(store, "samhsa:1")
    assert found[0]["services"]["levels_of_care"] == ["detox", "residential"]
    store.replace_feed("samhsa", [], [], now=NOW, source="pull")  # the founder leaves: the id stays
    left = store.redis.hget(store.keys.center("samhsa:1"), "j")
    assert left is not None and left != COMPOSED_FROM_RECORD  # its one record is not its founder
    found = store.get_center("samhsa:1")
    assert found is not None and found[0] == full_composition(store, "samhsa:1")
    assert [s["id"] for s in found[0]["sources"]] == ["beds:H-9"]


def test_a_changed_founding_record_reads_changed_and_changes_the_facility_fingerprint(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"])
    store.replace_feed("f", [c], [], now=NOW, source="pull")
    before = store._fingerprints(["f:a"])
    renamed = c.model_copy(update={"name": "Renamed Center"})
    store.replace_feed("f", [renamed], [], now=NOW, source="pull")
    assert store.redis.hget(store.keys.center("f:a"), "j") == COMPOSED_FROM_RECORD
    assert store._fingerprints(["f:a"]) != before  # a plan made before the change is made again
    found = get_center(store, "f:a", now=NOW)
    assert found is not None and found["name"] == "Renamed Center"


def test_a_missing_founding_record_is_named_not_read_as_an_empty_facility() -> None:
    with pytest.raises(ValueError, match="founding record, which is missing"):
        composed(COMPOSED_FROM_RECORD)


def test_a_pending_match_shows_a_facility_composed_from_its_record(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"])
    store.replace_feed("f", [c], [], now=NOW, source="pull")
    store.redis.hset(store.keys.matches, "g:b|f:a", orjson.dumps({"record": "g:b", "facility": "f:a"}))
    [pending] = store.pending_matches()
    assert pending["facility_center"] == full_composition(store, "f:a")
    assert pending["record_center"] is None


def test_the_most_common_link_explanation_is_kept_as_one_byte(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox"])
    store.replace_feed("f", [c], [], now=NOW, source="pull")
    assert store.redis.hget(store.keys.record("f:a"), "why") == FOUNDED_ALONE
    assert store.link_explanation("f:a") == founded_alone("f:a")
    assert founded_alone("f:a") == {"facility": "f:a", "decision": "new", "rule": "no candidate nearby", "scores": {}}


def test_observation_slots_and_status_codes_are_the_same_in_python_and_in_the_scripts() -> None:
    text = (LUA / "readdoc.lua").read_text()
    lua = re.search(r"local SLOTS = \{(.*?)\}", text, re.S)
    assert lua is not None
    assert tuple(re.findall(r"'(\w+)'", lua.group(1))) == SLOTS
    statuses = re.search(r"local STATUSES = \{(.*?)\}", text, re.S)
    assert statuses is not None
    assert tuple(re.findall(r"'(\w+)'", statuses.group(1))) == STATUS_CODES


def test_an_observation_is_kept_by_position_and_reads_back_whole(store: Store) -> None:
    c = center("f", "a", 42.36, -71.1, levels_of_care=["detox", "outpatient"])
    whole_ms = datetime(2026, 11, 27, 14, 50, 39, 649000, tzinfo=UTC)  # no microseconds over the millisecond
    obs = observation(
        c, "detox", "limited", reported_at=whole_ms, checked_at=whole_ms + timedelta(microseconds=7), beds_total=4
    )
    store.replace_feed("f", [c], [obs], now=NOW, source="pull")
    raw = store.redis.hget(store.keys.availability("f:a"), "detox|pull")
    assert raw is not None and raw.startswith(b"[1,900,")  # the status by its code: limited
    kept = orjson.loads(raw)
    assert kept[SLOTS.index("ru")] == 0 and kept[SLOTS.index("ba")] is None  # none, not a figure of zero
    named = stored_observation(raw)
    assert "ru" not in named and "ba" not in named and named["bt"] == 4 and named["cu"] == 7
    found = store.get_center("f:a")
    assert found is not None
    [got] = [o for o in found[1] if o["level_of_care"] == "detox"]
    assert got["reported_at"] == "2026-11-27T14:50:39.649000Z"
    assert got["checked_at"] == "2026-11-27T14:50:39.649007Z"
    assert got["beds_available"] is None and got["beds_total"] == 4


def test_an_available_only_search_reads_the_positional_and_the_object_form_alike(store: Store) -> None:
    """A facility composed before its 'until' field was kept is judged from its observations: the positional form
    and the compact object form of the release before read alike (the long form: test_store)."""
    rt = int(NOW.timestamp() * 1000) - 60_000
    forms = {"a": None, "b": {"st": "available", "fs": 900, "rt": rt, "ct": rt, "wo": rt}}
    cs = [center("f", sid, 42.36 + i / 1000, -71.1, levels_of_care=["detox"]) for i, sid in enumerate(forms)]
    at = NOW - timedelta(minutes=1)
    store.replace_feed("f", cs, [observation(c, reported_at=at) for c in cs], now=NOW, source="pull")
    for sid, form in forms.items():
        if form is not None:
            store.redis.hset(store.keys.availability(f"f:{sid}"), "detox|pull", orjson.dumps(form))
        store.redis.hdel(store.keys.center(f"f:{sid}"), "s")  # composed before 's' was kept
    found = near(store, zip="02139", available_only=True, now=NOW)
    assert sorted(h.id for h in found.results) == ["f:a", "f:b"]
    assert {h.availability[0]["status"] for h in found.results} == {"available"}
    later = near(store, zip="02139", available_only=True, now=NOW + timedelta(minutes=15))
    assert later.results == []


def test_a_facility_whose_founding_record_is_missing_reads_as_absent(store: Store) -> None:
    """A damaged store (the record deleted by hand): the facility is skipped, as a GEO member without its record
    is, and the invariant check names it; no reader fails."""
    cs = [center("f", sid, 42.36 + i / 1000, -71.1, levels_of_care=["detox"]) for i, sid in enumerate("ab")]
    store.replace_feed("f", cs, [observation(c) for c in cs], now=NOW, source="pull")
    store.redis.delete(store.keys.record("f:a"))
    assert store.get_center("f:a") is None
    assert [h.id for h in near(store, zip="02139", now=NOW).results] == ["f:b"]
    assert [h.id for h in near(store, zip="02139", available_only=True, now=NOW).results] == ["f:b"]
    found = {v.invariant for v in check(store, now=NOW)}
    assert "geo_without_record" in found  # named by the check (the feed's member list names it too: torn)
