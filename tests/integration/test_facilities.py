"""One facility, many sources: feed records linked to facilities, and answers made of facilities."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aggregator.lookup import get_center, near
from aggregator.model import ExternalId, Phone, PhoneRole
from aggregator.store import Store
from tests.integration.factories import NOW, center, observation

HARBOR = (42.36470, -71.10420)
NEAR_HARBOR = (42.36490, -71.10400)  # ~27 m away: the same building as another feed places it


def harbor(feed: str, sid: str, lat_lon: tuple[float, float] = HARBOR, **kw: object) -> object:
    return center(
        feed,
        sid,
        *lat_lon,
        name=kw.pop("name", "Harbor House Recovery Center"),
        external_ids=kw.pop("external_ids", (ExternalId(system="samhsa", value="frid-1"),)),
        **kw,
    )


def test_two_feeds_about_one_place_answer_as_one_facility_with_every_part(store: Store) -> None:
    # the directory has the phone; the bed board has the beds
    directory = harbor(
        "samhsa", "1", phones=(Phone(number="+16175550142"),), levels_of_care=["detox"], payment=["medicaid"]
    )
    board = harbor("beds", "H-9", NEAR_HARBOR, name="Harbor House Recovery Ctr, Inc.", levels_of_care=["detox"])
    store.replace_feed("samhsa", [directory], [], now=NOW, source="pull", authority=10)
    store.replace_feed(
        "beds",
        [board],
        [observation(board, "detox", "available", beds_available=3, reported_at=NOW - timedelta(minutes=5))],
        now=NOW,
        source="scrape",
    )
    answer = near(store, zip="02139", now=NOW, audience="operator")
    assert [h.id for h in answer.results] == ["samhsa:1"]  # one row per place
    [hit] = answer.results
    assert hit.center["name"] == "Harbor House Recovery Center"  # the most authoritative feed names it
    assert [(p["number"], p["source"]) for p in hit.center["phones"]] == [("+16175550142", "samhsa")]
    [detox] = hit.availability
    assert (detox["status"], detox["beds_available"], detox["record"]) == ("available", 3, "beds:H-9")
    assert [(s["id"], s["reported_at"]) for s in hit.center["sources"]] == [
        ("samhsa:1", None),
        ("beds:H-9", "2026-11-27T14:55:00Z"),
    ]
    # a filter needing one feed's level and the other's payment finds the facility
    both = near(store, zip="02139", levels_of_care=["detox"], payment=["medicaid"], available_only=True, now=NOW)
    assert [h.id for h in both.results] == ["samhsa:1"]
    # the bed board's own id answers for the facility
    aliased = get_center(store, "beds:H-9", now=NOW)
    assert aliased is not None and aliased["id"] == "samhsa:1"
    why = store.link_explanation("beds:H-9")
    assert why is not None and why["facility"] == "samhsa:1" and why["decision"] == "same" and why["rule"]


def test_a_facility_keeps_its_id_through_reruns_and_when_its_founder_leaves(store: Store) -> None:
    first = harbor("samhsa", "1")
    second = harbor("beds", "H-9", NEAR_HARBOR)
    store.replace_feed("samhsa", [first], [], now=NOW, source="pull")
    store.replace_feed("beds", [second], [], now=NOW, source="scrape")
    store.replace_feed("beds", [second], [], now=NOW, source="scrape")  # an unchanged re-run
    assert store.facility_of("beds:H-9") == "samhsa:1"
    store.replace_feed("samhsa", [], [], now=NOW, source="pull")  # the founder's feed drops it
    assert store.facility_of("beds:H-9") == "samhsa:1"
    [hit] = near(store, zip="02139", now=NOW).results
    assert hit.id == "samhsa:1"
    assert [s["id"] for s in hit.center["sources"]] == ["beds:H-9"]
    store.replace_feed("beds", [], [], now=NOW, source="scrape")  # the last source leaves: the place goes
    assert near(store, zip="02139", now=NOW).results == []
    assert store.get_center("samhsa:1") is None
    assert not store.redis.keys(store.keys.prefix + "c:*")


def test_rows_of_one_place_within_a_feed_merge_into_one_facility(store: Store) -> None:
    # one row per medication at the same address, as some partner exports do
    rows = [harbor("otp", f"row-{i}", levels_of_care=[level]) for i, level in enumerate(["otp", "mat", "outpatient"])]
    store.replace_feed("otp", rows, [], now=NOW, source="pull")
    [hit] = near(store, zip="02139", now=NOW).results
    assert hit.id == "otp:row-0"
    assert hit.center["services"]["levels_of_care"] == ["mat", "otp", "outpatient"]
    assert len(hit.center["sources"]) == 3


def test_different_places_stay_apart(store: Store) -> None:
    a = center("f", "a", *HARBOR, name="Harbor House Recovery Center")
    b = center(
        "f",
        "b",
        *NEAR_HARBOR,
        name="Riverside Family Counseling",
        phones=(Phone(number="+16175550150", role=PhoneRole.INTAKE),),
    )
    store.replace_feed("f", [a, b], [], now=NOW, source="pull")
    assert sorted(h.id for h in near(store, zip="02139", now=NOW).results) == ["f:a", "f:b"]


def test_an_operator_report_on_a_record_id_lands_on_its_facility(store: Store) -> None:
    store.replace_feed("samhsa", [harbor("samhsa", "1")], [], now=NOW, source="pull")
    store.replace_feed("beds", [harbor("beds", "H-9", NEAR_HARBOR)], [], now=NOW, source="scrape")
    written, _ = store.record_observations(
        [observation("beds:H-9", "detox", "full", source="operator", reported_at=NOW - timedelta(minutes=1))]
    )
    assert written == 1
    found = get_center(store, "samhsa:1", audience="operator", now=NOW)
    assert found is not None
    [detox] = [a for a in found["availability"] if a["level_of_care"] == "detox"]
    assert (detox["status"], detox["source"]) == ("full", "operator")


def test_an_operator_decision_wins_over_the_matcher_and_survives_reruns(store: Store) -> None:
    # two records the matcher keeps apart (other names): an operator says they are one place
    a = center("samhsa", "1", *HARBOR, name="Harbor House Recovery Center")
    b = center("beds", "B-2", *NEAR_HARBOR, name="Riverside Family Counseling")
    store.replace_feed("samhsa", [a], [], now=NOW, source="pull")
    store.replace_feed("beds", [b], [], now=NOW, source="scrape")
    assert store.facility_of("beds:B-2") == "beds:B-2"
    assert store.decide_match("beds:B-2", "samhsa:1", "same", by="dana", now=NOW) == "samhsa:1"
    assert [h.id for h in near(store, zip="02139", now=NOW).results] == ["samhsa:1"]
    assert store.get_center("beds:B-2") is not None  # the record's id answers for its facility
    # the bed board drops the record and sends it again: the decision still holds
    store.replace_feed("beds", [], [], now=NOW, source="scrape")
    store.replace_feed("beds", [b], [], now=NOW, source="scrape")
    assert store.facility_of("beds:B-2") == "samhsa:1"
    why = store.link_explanation("beds:B-2")
    assert why is not None and why["rule"] == "operator confirmed"
    # and a split keeps them apart, also across runs
    assert store.decide_match("beds:B-2", "samhsa:1", "different", by="dana", now=NOW) == "beds:B-2"
    assert sorted(h.id for h in near(store, zip="02139", now=NOW).results) == ["beds:B-2", "samhsa:1"]
    store.replace_feed("beds", [], [], now=NOW, source="scrape")
    store.replace_feed(
        "beds", [center("beds", "B-2", *NEAR_HARBOR, name="Harbor House Recovery Center")], [], now=NOW, source="scrape"
    )
    assert store.facility_of("beds:B-2") == "beds:B-2"


def test_only_new_records_are_matched_and_an_unchanged_rerun_does_no_matching(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator import match

    calls: list[str] = []
    real = match.best_match

    def counting(record: match.Identity, candidates: list[match.Identity]) -> object:
        calls.append(record.record_id)
        return real(record, candidates)

    monkeypatch.setattr(match, "best_match", counting)
    store.replace_feed("samhsa", [harbor("samhsa", "1")], [], now=NOW, source="pull")
    board = [harbor("beds", "H-9", NEAR_HARBOR), center("beds", "far", 42.40, -71.20, name="Lexington Detox")]
    store.replace_feed("beds", board, [], now=NOW, source="scrape")
    assert calls == ["beds:H-9"]  # compared with what is near it; the far one had nobody to compare with
    calls.clear()
    store.replace_feed("beds", board, [observation(board[0], "detox", "full")], now=NOW, source="scrape")
    moved = board[0].model_copy(update={"phones": (Phone(number="+16175550199"),)})  # a changed record
    store.replace_feed("beds", [moved, board[1]], [], now=NOW, source="scrape")
    assert calls == []  # unchanged and changed records keep their links: no matching work
    assert store.facility_of("beds:H-9") == "samhsa:1"


def test_a_facility_is_composed_from_a_superseded_record_as_stored_not_from_the_late_snapshot(store: Store) -> None:
    """A pull run that started before a push was accepted, applied after it, does not overwrite the pushed record
    (superseded); when the run changes the facility otherwise (a member leaves), the facility is composed from
    the record as stored, the push's, not from the run's older copy."""
    t = int(NOW.timestamp() * 1000)
    first, second = harbor("beds", "A"), harbor("beds", "B", NEAR_HARBOR)
    store.replace_feed("beds", [first, second], [], now=NOW, source="pull", order=t)
    assert store.facility_of("beds:B") == "beds:A"
    pushed = harbor("beds", "A", website="https://harbor.example.org/")
    store.replace_feed("beds", [pushed], [], now=NOW, source="push", partial=True, order=t + 2000)
    late = store.replace_feed("beds", [first], [], now=NOW, source="pull", order=t + 1000)  # B left the file
    assert late.superseded == 1 and late.removed == 1
    found = get_center(store, "beds:A", now=NOW)
    assert found is not None and found["website"] == "https://harbor.example.org/"
    assert [s["id"] for s in found["sources"]] == ["beds:A"]


def test_a_founding_record_moved_elsewhere_takes_its_figures_along_and_leaves_the_facilitys_own(store: Store) -> None:
    # samhsa:1 founded the Harbor facility, which the bed board's H-9 joined; an operator then says samhsa:1 is
    # the Riverside place (la:7) instead. Its figures go with it; the Harbor facility keeps its id, H-9's
    # figures and the operator's calls about the Harbor facility, which never show at Riverside.
    riverside = center("la", "7", 42.30, -71.10, name="Riverside Family Counseling", levels_of_care=["detox"])
    directory = harbor("samhsa", "1", levels_of_care=["detox"])
    board = harbor("beds", "H-9", NEAR_HARBOR, name="Harbor House Recovery Ctr, Inc.", levels_of_care=["detox"])
    store.replace_feed("la", [riverside], [], now=NOW, source="pull")
    store.replace_feed(
        "samhsa",
        [directory],
        [observation(directory, "detox", "available", beds_available=5, reported_at=NOW - timedelta(minutes=9))],
        now=NOW,
        source="pull",
    )
    store.replace_feed("beds", [board], [], now=NOW, source="scrape")
    assert store.facility_of("beds:H-9") == "samhsa:1"
    assert store.decide_match("samhsa:1", "la:7", "same", by="dana", now=NOW) == "la:7"

    def available_now() -> list[str]:
        hits = near(store, latitude=HARBOR[0], longitude=HARBOR[1], radius_mi=25, available_only=True, now=NOW)
        return sorted(h.id for h in hits.results)

    call = {"source": "operator", "freshness": 4 * 3600}
    store.record_observations(
        [
            observation(
                "samhsa:1", "detox", "available", beds_available=2, reported_at=NOW - timedelta(minutes=2), **call
            )
        ]
    )
    assert available_now() == ["la:7", "samhsa:1"]  # the call about the Harbor facility composes the Harbor facility
    store.record_observations(
        [observation("samhsa:1", "detox", "full", beds_available=0, reported_at=NOW - timedelta(minutes=1), **call)]
    )

    def figures(facility: str) -> list[tuple[str, int | None, str]]:
        found = get_center(store, facility, audience="operator", now=NOW)
        assert found is not None
        return [(a["status"], a["beds_available"], a["source"]) for a in found["availability"]]

    assert figures("la:7") == [("available", 5, "pull")]  # samhsa:1's own report, where samhsa:1 now is
    assert figures("samhsa:1") == [("full", 0, "operator")]  # the call about the Harbor facility, only there
    # "available now" finds the place samhsa:1's beds are at, not the Harbor facility its operator called full
    assert available_now() == ["la:7"]
    assert sorted(h.id for h in near(store, latitude=HARBOR[0], longitude=HARBOR[1], now=NOW).results) == [
        "la:7",
        "samhsa:1",
    ]


def test_an_operators_call_about_a_place_merged_into_another_stays_with_the_place(store: Store) -> None:
    # beds:A stood alone and an operator called it (2 beds); an operator then says it is the Riverside place
    # (la:7): beds:A's facility is gone, and the call is about the place now answered as la:7
    riverside = center("la", "7", *HARBOR, name="Riverside Family Counseling", levels_of_care=["detox"])
    board = center("beds", "A", 42.30, -71.10, name="Riverside Family Counseling Annex", levels_of_care=["detox"])
    store.replace_feed("la", [riverside], [], now=NOW, source="pull")
    store.replace_feed("beds", [board], [], now=NOW, source="scrape")
    call = observation("beds:A", "detox", "available", beds_available=2, source="operator", freshness=4 * 3600)
    store.record_observations([call])
    assert store.decide_match("beds:A", "la:7", "same", by="dana", now=NOW) == "la:7"
    found = get_center(store, "la:7", audience="operator", now=NOW)
    assert found is not None
    assert [(a["status"], a["beds_available"], a["source"]) for a in found["availability"]] == [
        ("available", 2, "operator")
    ]
    hits = near(store, latitude=HARBOR[0], longitude=HARBOR[1], available_only=True, now=NOW)
    assert [h.id for h in hits.results] == ["la:7"]


def test_one_number_at_two_extensions_stays_two_lines_in_the_facility(store: Store) -> None:
    """Normalize keeps "ext. 101" and "ext. 205" of one number as two phones: so does the composed facility, alone
    and merged with another feed's record of the place that repeats one of them."""
    lines = (Phone(number="+16175550142", extension="101"), Phone(number="+16175550142", extension="205"))
    directory = harbor("samhsa", "1", phones=lines, levels_of_care=["detox"])
    store.replace_feed("samhsa", [directory], [], now=NOW, source="pull", authority=10)
    alone = get_center(store, "samhsa:1", now=NOW)
    assert alone is not None
    number = "+16175550142"
    assert [(p["number"], p["extension"]) for p in alone["phones"]] == [(number, "101"), (number, "205")]
    board = harbor("beds", "H-9", NEAR_HARBOR, phones=(lines[1],), levels_of_care=["detox"])
    store.replace_feed("beds", [board], [], now=NOW, source="scrape")
    merged = get_center(store, "samhsa:1", now=NOW)
    assert merged is not None and [s["id"] for s in merged["sources"]] == ["samhsa:1", "beds:H-9"]
    assert [(p["extension"], p["source"]) for p in merged["phones"]] == [("101", "samhsa"), ("205", "samhsa")]
