"""SMART Scheduling Links feeds: the $bulk-publish manifest, its NDJSON files, slots as intake appointments."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.feeds import Document, smart
from aggregator.feeds.mapping import RecordMapping
from aggregator.ingest import normalize_all
from aggregator.normalize import FeedContext
from tests.conftest import shared_file

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
MAPPING = RecordMapping()
HOST = "https://scheduling.example.org/smart/"
LOCAL = "http://127.0.0.1:8000/mirror/smart/$bulk-publish"
EXT = "http://fhir-registry.smarthealthit.org/StructureDefinition/"


def manifest(outputs: list[Any] | None = None, tt: str | None = "2026-11-27T14:30:00Z") -> Document:
    data: dict[str, Any] = {
        "request": HOST + "$bulk-publish",
        "output": outputs
        if outputs is not None
        else [
            {"type": "Location", "url": HOST + "locations.ndjson"},
            {"type": "Schedule", "url": HOST + "schedules.ndjson"},
            {"type": "Slot", "url": HOST + "slots.ndjson", "extension": {"state": ["MA"]}},
        ],
        "error": [],
    }
    if tt is not None:
        data["transactionTime"] = tt
    return Document(url=LOCAL, body=json.dumps(data).encode())


def ndjson(name: str, *resources: Any) -> Document:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in resources]
    return Document(url=HOST + name, body="\n".join(lines).encode())


def location(lid: str = "loc-1", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "Location",
        "id": lid,
        "name": "Beacon Street Intake Center",
        "telecom": [
            {"system": "phone", "value": "617-555-0101"},
            {"system": "url", "value": "https://intake.example.org"},
            {"system": "phone", "value": "617-555-0102"},
            {"system": "url", "value": "https://other.example.org"},
        ],
        "address": {"line": ["10 Beacon St", "Suite 5"], "city": "Boston", "state": "MA", "postalCode": "02108"},
        "position": {"latitude": 42.3577, "longitude": -71.0621},
        "identifier": [{"system": "https://intake.example.org/site", "value": "BOS-01"}],
    }
    base.update(over)
    return base


def schedule(sid: str, lid: str = "loc-1", availability: str | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"resourceType": "Schedule", "id": sid, "actor": [{"reference": f"Location/{lid}"}]}
    if availability:
        s["extension"] = [{"url": EXT + "has-availability", "valueCode": availability}]
    return s


def slot(sid: str, schedule_id: str, status: str, start: str, end: str, capacity: int | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {
        "resourceType": "Slot",
        "id": sid,
        "schedule": {"reference": f"Schedule/{schedule_id}"},
        "status": status,
        "start": start,
        "end": end,
    }
    if capacity is not None:
        s["extension"] = [{"url": EXT + "slot-capacity", "valueInteger": capacity}]
    return s


PAST = ("2026-11-27T08:00:00Z", "2026-11-27T09:00:00Z")
SOON = ("2026-11-27T16:00:00Z", "2026-11-27T16:30:00Z")
LATER = ("2026-11-28T16:00:00Z", "2026-11-28T16:30:00Z")


def entry_for(*docs: Document, mapping: RecordMapping = MAPPING, lid: str = "loc-1") -> dict[str, Any] | None:
    records = smart.parse(list(docs), mapping)
    [raw] = [r for r in records if r.get("source_id") == lid]
    entries = raw.get("availability")
    if entries is None:
        return None
    [entry] = entries
    assert isinstance(entry, dict)
    return entry


# --------------------------------------------------------------------------------------------------
# follow


def test_follow_lists_location_schedule_and_slot_files_only() -> None:
    outputs = [
        {"type": "Location", "url": HOST + "locations.ndjson"},
        {"type": "PractitionerRole", "url": HOST + "roles.ndjson"},
        {"type": "Schedule", "url": HOST + "schedules.ndjson"},
        {"type": "Slot", "url": HOST + "slots-1.ndjson"},
        {"type": "Slot", "url": HOST + "slots-1.ndjson"},
        {"type": "Slot"},
        "not an object",
    ]
    assert smart.follow(manifest(outputs), MAPPING) == [
        HOST + "locations.ndjson",
        HOST + "schedules.ndjson",
        HOST + "slots-1.ndjson",
    ]


def test_follow_keeps_only_outputs_tagged_with_a_wanted_state() -> None:
    outputs = [
        {"type": "Location", "url": HOST + "locations.ndjson"},
        {"type": "Slot", "url": HOST + "slots-ma.ndjson", "extension": {"state": ["MA", "NH"]}},
        {"type": "Slot", "url": HOST + "slots-ny.ndjson", "extension": {"state": ["NY"]}},
        {"type": "Slot", "url": HOST + "slots-ri.ndjson", "extension": {"state": "ri"}},
        {"type": "Slot", "url": HOST + "slots-untagged.ndjson"},
        {"type": "Location", "url": HOST + "locations-ny.ndjson", "extension": {"state": ["NY"]}},
    ]
    mapping = RecordMapping(options={"states": ["MA", "RI"]})
    assert smart.follow(manifest(outputs), mapping) == [
        HOST + "locations.ndjson",
        HOST + "slots-ma.ndjson",
        HOST + "slots-ri.ndjson",
        HOST + "slots-untagged.ndjson",
    ]
    assert len(smart.follow(manifest(outputs), MAPPING)) == 6


def test_rebase_serves_the_files_from_the_manifests_own_directory() -> None:
    outputs = [
        {"type": "Slot", "url": "https://raw.example.com/a/b/slots-2021-W09.ndjson?v=2"},
        {"type": "Location", "url": "https://raw.example.com/a/b/locations.ndjson"},
    ]
    mapping = RecordMapping(options={"rebase": True})
    assert smart.follow(manifest(outputs), mapping) == [
        "http://127.0.0.1:8000/mirror/smart/slots-2021-W09.ndjson?v=2",
        "http://127.0.0.1:8000/mirror/smart/locations.ndjson",
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"resourceType": "Location", "id": "1"}',
        b'{"output": 3}',
        b'{"resourceType":"Slot","id":"1"}\n{"resourceType":"Slot","id":"2"}',
    ],
)
def test_documents_other_than_a_manifest_have_nothing_to_follow(body: bytes) -> None:
    assert smart.follow(Document(url=HOST + "x.ndjson", body=body), MAPPING) == []


# --------------------------------------------------------------------------------------------------
# parse: locations


def test_a_location_becomes_a_record() -> None:
    [raw] = smart.parse([manifest(), ndjson("locations.ndjson", location())], MAPPING)
    assert raw == {
        "source_id": "loc-1",
        "name": "Beacon Street Intake Center",
        "phones": [{"number": "617-555-0101", "role": "main"}, {"number": "617-555-0102", "role": "main"}],
        "website": "https://intake.example.org",
        "address_1": "10 Beacon St",
        "address_2": "Suite 5",
        "city": "Boston",
        "state": "MA",
        "postal_code": "02108",
        "latitude": 42.3577,
        "longitude": -71.0621,
        "external_ids": [{"system": "https://intake.example.org/site", "value": "BOS-01"}],
        "source_url": HOST + "locations.ndjson",
        "reported_at": "2026-11-27T14:30:00Z",
    }
    [center], observations, report = normalize_all([raw], FeedContext(feed_id="smart", now=NOW))
    assert center.id == "smart:loc-1"
    assert [e.value for e in center.external_ids] == ["BOS-01"]
    assert observations == []
    assert report.rejections == []


def test_fhir_location_status_and_constants() -> None:
    mapping = RecordMapping(constants={"payment": ["medicaid"]})
    raws = smart.parse(
        [manifest(), ndjson("locations.ndjson", location(status="suspended"), location("loc-2", status="inactive"))],
        mapping,
    )
    assert [(r["status"], r["payment"]) for r in raws] == [
        ("temporarily closed", ["medicaid"]),
        ("inactive", ["medicaid"]),
    ]


def test_states_option_leaves_out_locations_in_other_states() -> None:
    locs = ndjson(
        "locations.ndjson",
        location("ma"),
        location("ny", address={"state": "NY", "postalCode": "12207"}),
        location("ri", address={"state": "Rhode Island", "postalCode": "02903"}),
        location("none", address={}),
    )
    raws = smart.parse([manifest(), locs], RecordMapping(options={"states": ["MA", "RI"]}))
    assert [r["source_id"] for r in raws] == ["ma", "ri", "none"]  # no state: kept, so its rejection is seen


# --------------------------------------------------------------------------------------------------
# parse: availability from schedules and slots


def test_free_current_slots_are_summed_by_capacity() -> None:
    entry = entry_for(
        manifest(),
        ndjson("locations.ndjson", location()),
        ndjson("schedules.ndjson", schedule("s-1"), schedule("s-2")),
        ndjson(
            "slots.ndjson",
            slot("1", "s-1", "free", *PAST, capacity=5),  # ended before transactionTime
            slot("2", "s-1", "free", *LATER),  # capacity 1 when absent
            slot("3", "s-2", "free", *SOON, capacity=3),  # another schedule, same location
            slot("4", "s-1", "busy", *SOON, capacity=2),
            slot("5", "s-1", "free", "2026-11-27T14:00:00Z", "2026-11-27T15:00:00Z"),
        ),  # under way
    )
    # appointments, never beds: 5 open of the 7 current (2 booked)
    assert entry == {
        "level_of_care": "outpatient",
        "status": "available",
        "appointments_available": 5,
        "next_appointment_at": "2026-11-27T14:00:00Z",
        "notes": "5 open appointments of 7 from 2026-11-27T14:00:00Z",
        "reported_at": "2026-11-27T14:30:00Z",
    }
    assert not {"beds_available", "beds_total"} & entry.keys()


def test_only_busy_or_past_slots_is_full() -> None:
    docs = [manifest(), ndjson("locations.ndjson", location()), ndjson("schedules.ndjson", schedule("s-1"))]
    busy = entry_for(*docs, ndjson("slots.ndjson", slot("1", "s-1", "busy", *SOON), slot("2", "s-1", "free", *PAST)))
    assert busy is not None
    assert (busy["status"], busy["appointments_available"], "beds_available" in busy) == ("full", 0, False)
    past = entry_for(*docs, ndjson("slots.ndjson", slot("2", "s-1", "free", *PAST)))
    assert past is not None
    assert (past["status"], past["appointments_available"], "beds_total" in past) == ("full", 0, False)
    assert past["notes"] == "no open appointments: every listed slot has ended"


def test_has_availability_unknown_means_unknown_and_its_slots_are_not_trusted() -> None:
    entry = entry_for(
        manifest(),
        ndjson("locations.ndjson", location()),
        ndjson("schedules.ndjson", schedule("s-1", availability="unknown")),
        ndjson("slots.ndjson", slot("1", "s-1", "free", *SOON, capacity=4)),
    )
    assert entry is not None
    assert entry["status"] == "unknown"
    assert "beds_available" not in entry
    assert "appointments_available" not in entry
    [center], observations, _ = normalize_all(
        smart.parse(
            [
                manifest(),
                ndjson("locations.ndjson", location()),
                ndjson("schedules.ndjson", schedule("s-1", availability="unknown")),
            ],
            MAPPING,
        ),
        FeedContext(feed_id="smart", now=NOW),
    )
    assert observations == []  # "unknown" says nothing: no observation, the level reads unknown
    assert center.services.levels_of_care == ("outpatient",)


def test_has_availability_none_and_some_without_slots() -> None:
    base = [manifest(), ndjson("locations.ndjson", location())]
    none = entry_for(*base, ndjson("schedules.ndjson", schedule("s-1", availability="none")))
    some = entry_for(*base, ndjson("schedules.ndjson", schedule("s-1", availability="some")))
    assert none is not None
    assert some is not None
    assert (none["status"], none["appointments_available"]) == ("full", 0)
    assert (some["status"], "appointments_available" in some) == ("available", False)
    assert entry_for(*base, ndjson("schedules.ndjson", schedule("s-1"))) is None


def test_absolute_references_link_and_dangling_ones_are_ignored() -> None:
    sched = {
        "resourceType": "Schedule",
        "id": "s-1",
        "actor": [{"reference": "https://fhir.example.org/r4/Location/loc-1"}],
    }
    free = slot("1", "s-1", "free", *SOON)
    free["schedule"] = {"reference": "https://fhir.example.org/r4/Schedule/s-1"}
    entry = entry_for(
        manifest(),
        ndjson("locations.ndjson", location()),
        ndjson("schedules.ndjson", sched),
        ndjson("slots.ndjson", free, slot("2", "s-nowhere", "free", *SOON, capacity=9)),
    )
    assert entry is not None
    assert entry["appointments_available"] == 1


def test_level_of_care_comes_from_the_mapping() -> None:
    mapping = RecordMapping(options={"level_of_care": "detox"})
    entry = entry_for(
        manifest(),
        ndjson("locations.ndjson", location()),
        ndjson("schedules.ndjson", schedule("s-1")),
        ndjson("slots.ndjson", slot("1", "s-1", "free", *SOON)),
        mapping=mapping,
    )
    assert entry is not None
    assert entry["level_of_care"] == "detox"


def test_without_a_manifest_every_free_slot_counts_and_no_time_is_invented() -> None:
    records = smart.parse(
        [
            ndjson("locations.ndjson", location()),
            ndjson("schedules.ndjson", schedule("s-1")),
            ndjson("slots.ndjson", slot("1", "s-1", "free", *PAST), slot("2", "s-1", "free", *SOON)),
        ],
        MAPPING,
    )
    [raw] = records
    assert "reported_at" not in raw
    assert raw["availability"][0]["appointments_available"] == 2
    assert "reported_at" not in raw["availability"][0]


def test_the_same_documents_always_give_the_same_records() -> None:
    docs = [
        manifest(),
        ndjson("locations.ndjson", location()),
        ndjson("schedules.ndjson", schedule("s-1")),
        ndjson("slots.ndjson", slot("1", "s-1", "free", *SOON)),
    ]
    assert smart.parse(docs, MAPPING) == smart.parse(docs, MAPPING)


# --------------------------------------------------------------------------------------------------
# Malformed lines: skipped, surfaced, never sinking the feed


def test_malformed_lines_are_surfaced_as_rejected_records() -> None:
    locs = ndjson(
        "locations.ndjson",
        location(),
        "{not json",
        '"a string"',
        {"resourceType": "Location"},
        {"id": "x"},
        "",
        location("loc-2"),
    )
    raws = smart.parse([manifest(), locs], MAPPING)
    assert [r.get("source_id") for r in raws] == ["loc-1", "loc-2", None, None, None, None]
    centers, _, report = normalize_all(raws, FeedContext(feed_id="smart", now=NOW))
    assert [c.source_id for c in centers] == ["loc-1", "loc-2"]
    assert [(r.field, r.reason) for r in report.rejections] == [
        ("record", "locations.ndjson line 2: not JSON"),
        ("record", "locations.ndjson line 3: not a JSON object"),
        ("record", "locations.ndjson line 4: Location without id"),
        ("record", "locations.ndjson line 5: no resourceType"),
    ]


def test_many_bad_lines_are_summarized_and_an_unreadable_file_is_one_record() -> None:
    bad = ndjson("slots.ndjson", *(["garbage"] * 25), slot("1", "s-1", "free", *SOON))
    raws = smart.parse([manifest(), ndjson("locations.ndjson", location()), bad], MAPPING)
    problems = [r["_problem"] for r in raws if "source_id" not in r]
    assert len(problems) == smart.MAX_BAD_LINES + 1
    assert problems[-1] == "slots.ndjson: 15 more unreadable lines"
    html = Document(url=HOST + "slots-2.ndjson", body=b"<html>\n<body>502 Bad Gateway</body>\n</html>")
    raws = smart.parse([manifest(), ndjson("locations.ndjson", location()), html], MAPPING)
    assert [r["_problem"] for r in raws if "source_id" not in r] == [
        "slots-2.ndjson: no readable FHIR resource in 3 lines"
    ]


@pytest.mark.parametrize(
    "docs",
    [
        [manifest()],
        [manifest([])],
        [Document(url=HOST + "locations.ndjson", body=b"{oops\n[1,2]\n")],
        [Document(url=HOST + "locations.ndjson", body=b"")],
    ],
)
def test_nothing_readable_at_all_is_a_parse_error(docs: list[Document]) -> None:
    with pytest.raises(ParseError, match="SMART Scheduling Links feed unreadable"):
        smart.parse(docs, MAPPING)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["$bulk-publish", "locations.ndjson", "slots.ndjson"]))
def test_arbitrary_bytes_raise_nothing_but_parse_error(body: bytes, name: str) -> None:
    d = Document(url=HOST + name, body=body)
    smart.follow(d, MAPPING)
    try:
        records = smart.parse([d], MAPPING)
    except ParseError:
        return
    normalize_all(records, FeedContext(feed_id="smart", now=NOW))


FHIR = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceType",
                    "id",
                    "actor",
                    "reference",
                    "schedule",
                    "status",
                    "start",
                    "end",
                    "extension",
                    "url",
                    "valueInteger",
                    "valueCode",
                    "address",
                    "line",
                    "telecom",
                    "system",
                    "value",
                    "position",
                    "identifier",
                    "output",
                    "type",
                    "transactionTime",
                ]
            ),
            inner,
            max_size=6,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(FHIR, min_size=1, max_size=5))
def test_arbitrary_fhir_shapes_raise_nothing_but_parse_error(lines: list[Any]) -> None:
    d = Document(url=HOST + "resources.ndjson", body="\n".join(json.dumps(x) for x in lines).encode())
    smart.follow(d, MAPPING)
    try:
        records = smart.parse([manifest(), d], MAPPING)
    except ParseError:
        return
    normalize_all(records, FeedContext(feed_id="smart", now=NOW))


# --------------------------------------------------------------------------------------------------
# The official SMART example feed (read in place from ../shared/data)


def shared_feed(transaction_time: str | None = None) -> list[Document]:
    folder = shared_file("smart_scheduling_links_example")
    body = (folder / "bulk-publish.json").read_bytes()
    if transaction_time is not None:
        data = json.loads(body)
        data["transactionTime"] = transaction_time
        body = json.dumps(data).encode()
    root = Document(url=LOCAL, body=body)
    urls = smart.follow(root, RecordMapping(options={"rebase": True}))
    assert all(u.startswith("http://127.0.0.1:8000/mirror/smart/") for u in urls)
    return [root] + [Document(url=u, body=(folder / u.rsplit("/", 1)[1]).read_bytes()) for u in urls]


def free_capacity_after(when: datetime) -> dict[str, int]:
    """Independently of the adapter: per location id, the capacity of free slots ending after ``when``."""
    folder = shared_file("smart_scheduling_links_example")
    schedules = {}
    for line in (folder / "schedules.ndjson").read_text().splitlines():
        s = json.loads(line)
        schedules[s["id"]] = s["actor"][0]["reference"].split("/")[1]
    out: dict[str, int] = {}
    for path in sorted(folder.glob("slots-*.ndjson")):
        for line in path.read_text().splitlines():
            s = json.loads(line)
            end = datetime.fromisoformat(s["end"])
            if s["status"] == "free" and end > when:
                cap = next((e["valueInteger"] for e in s.get("extension", []) if e["url"].endswith("slot-capacity")), 1)
                lid = schedules[s["schedule"]["reference"].split("/")[1]]
                out[lid] = out.get(lid, 0) + cap
    return out


@pytest.mark.shared_data
def test_shared_example_as_published_yields_ten_centers_all_past() -> None:
    documents = shared_feed()
    assert [d.url.rsplit("/", 1)[1] for d in documents][1:] == [
        "locations.ndjson",
        "schedules.ndjson",
        *(f"slots-2021-W{w:02d}.ndjson" for w in range(9, 14)),
    ]
    raws = smart.parse(documents, RecordMapping(options={"rebase": True}))
    assert len(raws) == 10
    slots = sum(len(d.body.decode().splitlines()) for d in documents if "slots-" in d.url)
    assert slots == 300
    centers, observations, report = normalize_all(raws, FeedContext(feed_id="smart", now=NOW))
    assert len(centers) == 10
    assert report.rejections == []
    # Every slot of the example ended weeks before its manifest's transactionTime (2021-04-22).
    assert free_capacity_after(datetime(2021, 4, 22, 14, 28, 21, tzinfo=UTC)) == {}
    assert {(o.status, o.appointments_available, o.beds_available) for o in observations} == {("full", 0, None)}
    assert len(observations) == 10
    assert all(o.reported_at == datetime(2021, 4, 22, 14, 28, 21, 582000, tzinfo=UTC) for o in observations)


@pytest.mark.shared_data
def test_shared_example_counts_free_slots_after_transaction_time() -> None:
    when = "2021-03-15T00:00:00Z"
    expected = free_capacity_after(datetime(2021, 3, 15, tzinfo=UTC))
    assert len(expected) == 10
    assert all(v > 0 for v in expected.values())
    raws = smart.parse(shared_feed(when), MAPPING)
    got = {r["source_id"]: r["availability"][0]["appointments_available"] for r in raws}
    assert got == expected
    centers, observations, _ = normalize_all(raws, FeedContext(feed_id="smart", now=NOW))
    assert len(centers) == 10
    assert {o.center_id.split(":")[1]: o.appointments_available for o in observations} == expected
    assert {o.beds_available for o in observations} == {None}  # slots are never beds
    assert {o.status for o in observations} == {"available"}
