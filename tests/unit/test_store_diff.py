"""The pure part of a snapshot write (``store.diff_records``, ``store.diff_facilities``): no Redis."""

from __future__ import annotations

from typing import Any

from aggregator import facility
from aggregator.model import Address, Center
from aggregator.store import Keys, LinkPlan, StoredRecord, diff_facilities, diff_records, record_digest

KEYS = Keys("t:")


def center(sid: str, lat: float | None = 42.3647, lon: float | None = -71.1042, **kw: Any) -> Center:
    data: dict[str, Any] = {
        "id": f"beds:{sid}",
        "feed_id": "beds",
        "source_id": sid,
        "name": kw.pop("name", sid),
        "address": Address(state="MA", postal_code="02139"),
    }
    if lat is not None:
        data.update(latitude=lat, longitude=lon, geo_precision="feed")
    return Center(**data, **kw)


def stored(c: Center, facility_id: str = "", written: int | None = None) -> StoredRecord:
    return StoredRecord(record_digest(c.model_dump_json().encode()), facility_id or c.id, written)


def test_records_are_added_updated_unchanged_superseded_removed_or_kept() -> None:
    same, moved, late, fresh = center("same"), center("moved"), center("late"), center("fresh", lat=None)
    before = {
        same.id: stored(same),
        moved.id: stored(center("moved", name="old name")),
        late.id: stored(center("late", name="newer"), written=2_000),
        "beds:gone": stored(center("gone")),
    }
    diff = diff_records(
        {c.id: c for c in (same, moved, late, fresh)}, before, kept=frozenset({"beds:kept"}), order=1_000
    )
    r = diff.result
    assert (r.added, r.updated, r.unchanged, r.superseded, r.removed) == (1, 1, 2, 1, 1)  # unchanged: same + kept
    assert set(diff.changed) == {moved.id, fresh.id}
    assert diff.removed == ["beds:gone"]
    assert r.needs_location == [fresh.id]
    assert set(r.digests) == {same.id, moved.id, late.id, fresh.id}  # every record carried; kept ones not
    assert diff.old[same.id] == (before[same.id].digest, same.id)
    record, digest = diff.changed[moved.id]
    assert record == moved.model_dump_json().encode() and digest == record_digest(record)


def test_a_forced_write_rewrites_unchanged_records_and_an_unlinked_one_is_written_again() -> None:
    same = center("same")
    assert set(diff_records({same.id: same}, {same.id: stored(same)}, force=True).changed) == {same.id}
    unlinked = StoredRecord(stored(same).digest, "")
    diff = diff_records({same.id: same}, {same.id: unlinked})
    assert set(diff.changed) == {same.id} and diff.result.updated == 1


def test_a_record_written_by_an_earlier_write_is_not_superseded() -> None:
    c = center("c")
    diff = diff_records({c.id: c}, {c.id: stored(center("c", name="before"), written=500)}, order=1_000)
    assert diff.result.updated == 1 and diff.result.superseded == 0


def plan_of(members: dict[str, list[Center]], previous: dict[str, tuple[set[str], set[tuple[str, str]]]]) -> LinkPlan:
    plan = LinkPlan()
    for fid, cs in members.items():
        plan.members[fid] = {c.id for c in cs}
        plan.centers[fid] = [facility.Member(c) for c in cs]
    plan.previous.update(previous)
    return plan


def test_facility_index_and_geo_changes_follow_the_tokens_as_read() -> None:
    detox = center(
        "a",
        services={"levels_of_care": ["detox"], "payment": ["medicaid"]},
        external_ids=[{"system": "NPI", "value": "1"}],
    )
    plan = plan_of(
        {detox.id: [detox], "beds:left": []},
        {detox.id: ({"loc:residential"}, {("npi", "2")}), "beds:left": ({"loc:detox"}, {("npi", "9")})},
    )
    diff = diff_facilities(KEYS, plan)
    written = {c.facility: c for c in diff.facilities}
    assert written[detox.id].fields is not None and written[detox.id].fields["t"] == "a l"  # loc:detox pay:medicaid
    assert "m" not in written[detox.id].fields  # its founding record alone: no member list kept
    assert written[detox.id].cleared == []
    assert written[detox.id].identifiers_added == [("npi", "1")]
    assert written[detox.id].identifiers_removed == [("npi", "2")]
    assert written["beds:left"].fields is None and written["beds:left"].identifiers_removed == [("npi", "9")]
    # a level of care is indexed by its GEO set alone; removals still reach the ix:loc sets earlier releases kept
    assert diff.index_add == {"pay:medicaid": [detox.id]}
    assert diff.index_rem == {"loc:residential": [detox.id], "loc:detox": ["beds:left"]}
    assert diff.geo_add == {
        KEYS.geo: [detox.longitude, detox.latitude, detox.id],
        KEYS.geo_level("detox"): [detox.longitude, detox.latitude, detox.id],
    }
    assert diff.geo_rem == {
        KEYS.geo_level("residential"): [detox.id],
        KEYS.geo: ["beds:left"],
        KEYS.geo_level("detox"): ["beds:left"],
    }


def test_an_unplaced_or_inactive_facility_leaves_the_geo_indexes() -> None:
    unplaced = center("u", lat=None, services={"levels_of_care": ["detox"]})
    closed = center("c", status="inactive", services={"levels_of_care": ["detox"]})
    plan = plan_of(
        {unplaced.id: [unplaced], closed.id: [closed]},
        {unplaced.id: ({"loc:detox"}, set()), closed.id: ({"loc:detox"}, set())},
    )
    diff = diff_facilities(KEYS, plan)
    assert diff.geo_add == {}
    assert sorted(diff.geo_rem[KEYS.geo]) == sorted([unplaced.id, closed.id])
    assert diff.index_rem == {"loc:detox": [closed.id]}  # inactive: out of every filter index
    assert diff.index_add == {}
