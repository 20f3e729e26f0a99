"""Open Referral HSDS 3.x feeds: JSON objects, lists, API pages and the tabular CSV package."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.feeds import Document, hsds
from aggregator.feeds.mapping import RecordMapping
from aggregator.ingest import normalize_all
from aggregator.normalize import FeedContext
from tests.conftest import shared_file

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
MAPPING = RecordMapping()
BASE = "https://hsds.example.org/api/"


def doc(data: Any, name: str = "services.json") -> Document:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return Document(url=BASE + name, body=body)


def parse(*docs: Document, mapping: RecordMapping = MAPPING) -> list[dict[str, Any]]:
    return hsds.parse(list(docs), mapping)


def ctx(**kw: Any) -> FeedContext:
    return FeedContext(feed_id="hsds", now=NOW, **kw)


WORCESTER = {
    "id": "loc-1",
    "location_type": "physical",
    "name": "Harbor Light Worcester",
    "latitude": 42.2746,
    "longitude": -71.8063,
    "addresses": [
        {
            "id": "a-post",
            "address_1": "PO Box 9",
            "city": "Worcester",
            "state_province": "MA",
            "postal_code": "01613",
            "country": "US",
            "address_type": "postal",
        },
        {
            "id": "a-phys",
            "address_1": "25 Pleasant St",
            "address_2": "Floor 2",
            "city": "Worcester",
            "state_province": "MA",
            "postal_code": "01609",
            "country": "US",
            "address_type": "physical",
        },
    ],
    "phones": [{"id": "p-loc", "number": "508-555-0143", "type": "voice"}],
    "languages": [{"id": "l-2", "name": "Portuguese"}],
    "external_identifier": "MA-LIC-7",
    "external_identifier_type": "state_license",
}
ONLINE = {"id": "loc-online", "location_type": "virtual", "url": "https://harbor.example.org/tele"}
ORG = {"id": "org-1", "name": "Harbor Light Recovery Inc.", "website": "https://harbor.example.org"}


def service(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "svc-1",
        "name": "Medically Monitored Detox",
        "status": "active",
        "description": "Withdrawal management for adults.",
        "organization": ORG,
        "phones": [
            {"id": "p-1", "number": "(508) 555-0142", "type": "voice", "description": "Intake line"},
            {"id": "p-fax", "number": "508-555-0144", "type": "fax"},
        ],
        "languages": [{"id": "l-1", "name": "Spanish", "code": "es"}],
        "fees_description": "Sliding fee scale",
        "cost_options": [{"id": "c-1", "option": "MassHealth accepted"}],
        "attributes": [{"id": "at-1", "taxonomy_term": {"id": "t-1", "code": "DT", "name": "Detoxification"}}],
        "capacities": [
            {
                "id": "cap-1",
                "unit": {"id": "u-1", "name": "Beds"},
                "available": 3,
                "maximum": 16,
                "updated": "2026-11-27T09:30:00-05:00",
                "description": "Detox beds",
            }
        ],
        "service_at_locations": [
            {"id": "sal-1", "location": WORCESTER, "phones": [{"id": "p-sal", "number": "508-555-0145"}]},
            {"id": "sal-2", "location": ONLINE},
        ],
    }
    base.update(over)
    return base


# --------------------------------------------------------------------------------------------------
# JSON shapes


def test_a_full_service_is_one_record_per_physical_location_named_after_the_location() -> None:
    [raw] = parse(doc(service()))
    assert raw == {
        "source_id": "loc-1",
        "name": "Harbor Light Worcester",
        "alternate_name": "Harbor Light Recovery Inc.",
        "address_1": "25 Pleasant St",
        "address_2": "Floor 2",
        "city": "Worcester",
        "state": "MA",
        "postal_code": "01609",
        "latitude": 42.2746,
        "longitude": -71.8063,
        "external_ids": [{"system": "state_license", "value": "MA-LIC-7"}],
        "phones": [
            {"number": "508-555-0145", "role": "main"},
            {"number": "(508) 555-0142", "role": "intake"},
            {"number": "508-555-0143", "role": "main"},
        ],
        "website": "https://harbor.example.org",
        "status": "active",
        "languages": ["es", "Portuguese"],
        "levels_of_care": ["Medically Monitored Detox", "Withdrawal management for adults.", "DT", "Detoxification"],
        "payment": ["Sliding fee scale", "MassHealth accepted"],
        "source_url": BASE + "services.json",
        "availability": [
            {
                "level_of_care": "Medically Monitored Detox; Withdrawal management for adults.; DT; Detoxification",
                "beds_available": 3,
                "beds_total": 16,
                "reported_at": "2026-11-27T09:30:00-05:00",
                "notes": "Medically Monitored Detox: Detox beds",
            }
        ],
    }


def test_the_record_normalizes_to_a_center_with_beds() -> None:
    centers, observations, report = normalize_all(parse(doc(service())), ctx())
    [center] = centers
    assert center.id == "hsds:loc-1"
    assert (center.name, center.alternate_name) == ("Harbor Light Worcester", "Harbor Light Recovery Inc.")
    assert center.services.levels_of_care == ("detox",)
    assert set(center.services.payment) == {"sliding_scale", "medicaid"}
    assert center.services.languages == ("es", "pt")
    assert [(p.number, p.role) for p in center.phones] == [
        ("+15085550145", "main"),
        ("+15085550142", "intake"),
        ("+15085550143", "main"),
    ]
    [obs] = observations
    assert (obs.level_of_care, obs.status, obs.beds_available, obs.beds_total) == ("detox", "available", 3, 16)
    assert obs.reported_at == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    assert report.rejections == []


def test_service_at_location_organization_and_list_shapes_give_the_same_record() -> None:
    svc = service()
    sal = {
        "id": "sal-1",
        "service": {k: v for k, v in svc.items() if k != "service_at_locations"},
        "location": WORCESTER,
        "phones": [{"id": "p-sal", "number": "508-555-0145"}],
    }
    org = {
        **ORG,
        "locations": [WORCESTER],
        "services": [
            {
                **svc,
                "organization": None,
                "service_at_locations": [
                    {"id": "sal-1", "location_id": "loc-1", "phones": [{"id": "p-sal", "number": "508-555-0145"}]}
                ],
            }
        ],
    }
    expected = parse(doc(svc))
    assert parse(doc(sal, "sal.json"))[0] == {**expected[0], "source_url": BASE + "sal.json"}
    assert parse(doc(org, "org.json"))[0] == {**expected[0], "source_url": BASE + "org.json"}
    assert parse(doc([svc, sal], "list.json"))[0] == {**expected[0], "source_url": BASE + "list.json"}
    assert len(parse(doc([svc, sal], "list.json"))) == 1  # the same pair seen twice is one record


def test_links_by_id_resolve_across_documents() -> None:
    svc = service(service_at_locations=[{"id": "sal-9", "service_id": "svc-1", "location_id": "loc-1"}])
    [raw] = parse(doc(svc), doc(WORCESTER, "location.json"))
    assert (raw["source_id"], raw["name"], raw["city"], raw["postal_code"]) == (
        "loc-1",
        "Harbor Light Worcester",
        "Worcester",
        "01609",
    )


def test_the_location_id_names_the_record_and_a_long_one_is_hashed_down() -> None:
    svc = service(service_at_locations=[{"location": WORCESTER}])
    assert parse(doc(svc))[0]["source_id"] == "loc-1"
    long_loc = "3a19ff88-4620-4d17-9830-ac1d859eb5d5.ac148810-d857-441c-9679-408f346de14b"
    svc = service(service_at_locations=[{"id": "sal-1", "location": {**WORCESTER, "id": long_loc}}])
    first, again = parse(doc(svc))[0]["source_id"], parse(doc(svc))[0]["source_id"]
    assert first == again
    assert len(first) <= 64
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", first)
    assert first.startswith(long_loc[:40])
    other = service(service_at_locations=[{"location": {**WORCESTER, "id": long_loc[:-1] + "c"}}])
    assert parse(doc(other))[0]["source_id"] != first


def test_a_location_without_an_id_takes_its_service_at_location_id() -> None:
    anonymous = {k: v for k, v in WORCESTER.items() if k != "id"}
    assert parse(doc(service(service_at_locations=[{"id": "sal-1", "location": anonymous}])))[0]["source_id"] == "sal-1"
    [raw] = parse(doc(service(service_at_locations=[{"location": anonymous}])))
    assert raw["source_id"] == ""
    _, _, report = normalize_all([raw], ctx())
    assert [(r.field, r.reason) for r in report.rejections] == [("source_id", "missing")]


def test_a_service_with_no_physical_location_is_surfaced_not_lost() -> None:
    svc = service(service_at_locations=[{"id": "sal-2", "location": ONLINE}], capacities=[])
    [raw] = parse(doc(svc))
    assert raw["source_id"] == "svc-1"
    assert (raw["name"], raw["levels_of_care"][0]) == ("Harbor Light Recovery Inc.", "Medically Monitored Detox")
    assert "state" not in raw
    centers, _, report = normalize_all([raw], ctx())
    assert centers == []
    assert [(r.record, r.field) for r in report.rejections] == [("svc-1", "state")]


def test_a_postal_only_address_places_the_site_but_is_not_its_street() -> None:
    loc = {**WORCESTER, "addresses": [WORCESTER["addresses"][0]]}  # type: ignore[index]
    [raw] = parse(doc(service(service_at_locations=[{"id": "sal-1", "location": loc}])))
    assert (raw["city"], raw["state"], raw["postal_code"]) == ("Worcester", "MA", "01613")
    assert "address_1" not in raw


def test_status_and_mapping_constants() -> None:
    mapping = RecordMapping(constants={"populations": ["adults"]})
    [raw] = parse(doc(service(status="temporarily closed")), mapping=mapping)
    assert raw["populations"] == ["adults"]
    [center], _, _ = normalize_all([raw], ctx())
    assert center.status == "temporarily_closed"


# --------------------------------------------------------------------------------------------------
# One location, several services: one record, named after the place


def residential(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "svc-2",
        "name": "Adult Residential Treatment",
        "status": "active",
        "url": "https://harbor.example.org/residential",
        "organization": ORG,
        "phones": [
            {"id": "p-2", "number": "508-555-0146", "description": "Admissions"},
            {"id": "p-1b", "number": "(508) 555-0142"},
        ],
        "languages": [{"id": "l-3", "name": "Haitian Creole", "code": "ht"}],
        "cost_options": [{"id": "c-2", "option": "Private insurance"}],
        "capacities": [
            {
                "id": "cap-2",
                "unit": {"id": "u-1", "name": "Beds"},
                "available": 5,
                "maximum": 24,
                "updated": "2026-11-27T10:00:00-05:00",
                "description": "Men's unit",
            }
        ],
        "service_at_locations": [{"id": "sal-3", "location_id": "loc-1"}],
    }
    base.update(over)
    return base


def test_a_location_with_two_services_is_one_record_named_after_the_location() -> None:
    raws = parse(doc([service(), residential()]))
    assert len(raws) == 1
    [raw] = raws
    assert (raw["source_id"], raw["name"], raw["alternate_name"]) == (
        "loc-1",
        "Harbor Light Worcester",
        "Harbor Light Recovery Inc.",
    )
    assert raw["levels_of_care"] == [
        "Medically Monitored Detox",
        "Withdrawal management for adults.",
        "DT",
        "Detoxification",
        "Adult Residential Treatment",
    ]
    assert raw["payment"] == ["Sliding fee scale", "MassHealth accepted", "Private insurance"]
    assert raw["languages"] == ["es", "ht", "Portuguese"]
    # the union of both services' phones and the site's, each number once (the first role it had)
    assert raw["phones"] == [
        {"number": "508-555-0145", "role": "main"},
        {"number": "(508) 555-0142", "role": "intake"},
        {"number": "508-555-0146", "role": "intake"},
        {"number": "508-555-0143", "role": "main"},
    ]
    assert raw["website"] == "https://harbor.example.org/residential"  # the first service url
    assert [(e["level_of_care"], e["beds_available"], e["notes"]) for e in raw["availability"]] == [
        (
            "Medically Monitored Detox; Withdrawal management for adults.; DT; Detoxification",
            3,
            "Medically Monitored Detox: Detox beds",
        ),
        ("Adult Residential Treatment", 5, "Adult Residential Treatment: Men's unit"),
    ]
    [center], observations, report = normalize_all(raws, ctx())
    assert (center.id, center.name) == ("hsds:loc-1", "Harbor Light Worcester")
    assert set(center.services.levels_of_care) == {"detox", "residential"}
    assert {(o.level_of_care, o.beds_available, o.beds_total, o.notes) for o in observations} == {
        ("detox", 3, 16, "Medically Monitored Detox: Detox beds"),
        ("residential", 5, 24, "Adult Residential Treatment: Men's unit"),
    }
    assert report.rejections == []


def test_the_same_location_in_every_json_shape_is_still_one_record() -> None:
    org = {
        **ORG,
        "locations": [WORCESTER],
        "services": [
            {**service(), "organization": None, "service_at_locations": [{"id": "sal-1", "location_id": "loc-1"}]},
            {**residential(), "organization": None},
        ],
    }
    [raw] = parse(doc(org, "org.json"))
    assert (raw["source_id"], raw["name"]) == ("loc-1", "Harbor Light Worcester")
    assert len(raw["availability"]) == 2
    sals = [
        {"id": "sal-1", "service": service(service_at_locations=[]), "location": WORCESTER},
        {"id": "sal-3", "service": residential(service_at_locations=[]), "location_id": "loc-1"},
    ]
    assert [r["source_id"] for r in parse(doc(sals, "sal.json"))] == ["loc-1"]


def test_the_organization_names_a_location_without_a_name_and_the_service_is_the_last_resort() -> None:
    unnamed = {k: v for k, v in WORCESTER.items() if k != "name"}
    [raw] = parse(doc(service(service_at_locations=[{"id": "sal-1", "location": unnamed}])))
    assert raw["name"] == "Harbor Light Recovery Inc."
    assert "alternate_name" not in raw  # the organization is already the name
    [raw] = parse(doc(service(organization=None, service_at_locations=[{"id": "sal-1", "location": unnamed}])))
    assert raw["name"] == "Medically Monitored Detox"
    assert "alternate_name" not in raw
    # the location's own organization comes before its services' organization
    sites_org = {
        "id": "org-2",
        "name": "Worcester County Recovery Collaborative",
        "website": "https://wcrc.example.org",
    }
    located = {**unnamed, "organization_id": "org-2"}
    [raw] = parse(doc([sites_org, service(service_at_locations=[{"id": "sal-1", "location": located}])]))
    assert raw["name"] == "Worcester County Recovery Collaborative"


def test_the_service_name_starts_each_availability_note() -> None:
    caps = [
        {"id": "c-1", "unit": {"name": "Beds"}, "available": 4, "maximum": 8, "description": "4 adult beds"},
        {"id": "c-2", "unit": {"name": "Beds"}, "available": 1, "maximum": 2},
    ]
    [raw] = parse(doc(service(name="Detox program", capacities=caps)))
    assert [e["notes"] for e in raw["availability"]] == ["Detox program: 4 adult beds", "Detox program"]
    [raw] = parse(doc(service(name=None, capacities=caps[:1])))
    assert raw["availability"][0]["notes"] == "4 adult beds"


def test_a_service_without_capacity_still_names_its_level() -> None:
    counseling = residential(
        id="svc-3",
        name="Outpatient counseling",
        capacities=[],
        service_at_locations=[{"id": "sal-4", "location_id": "loc-1"}],
    )
    [raw] = parse(doc([service(), counseling]))
    assert "Outpatient counseling" in raw["levels_of_care"]
    assert len(raw["availability"]) == 1
    [center], _, _ = normalize_all([raw], ctx())
    assert set(center.services.levels_of_care) == {"detox", "outpatient"}


def test_two_capacities_for_one_level_at_one_location_are_both_kept() -> None:
    second = residential(
        name="Women's Detox",
        description="",
        attributes=[],
        capacities=[
            {
                "id": "cap-w",
                "unit": {"name": "Beds"},
                "available": 2,
                "maximum": 6,
                "updated": "2026-11-27T10:00:00-05:00",
                "description": "Women's unit",
            }
        ],
    )
    [raw] = parse(doc([service(), second]))
    assert [(e["beds_available"], e["notes"]) for e in raw["availability"]] == [
        (3, "Medically Monitored Detox: Detox beds"),
        (2, "Women's Detox: Women's unit"),
    ]
    _, [obs], report = normalize_all([raw], ctx())  # normalization sums one level's reports
    assert (obs.level_of_care, obs.beds_available, obs.beds_total) == ("detox", 5, 22)
    assert obs.notes == "Medically Monitored Detox: Detox beds; Women's Detox: Women's unit"
    assert report.field_problems == []


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (("inactive", "active"), "active"),
        (("temporarily closed", "inactive"), "temporarily closed"),
        (("inactive", None), None),  # a service with no status is not read as closed
    ],
)
def test_a_location_is_active_when_any_of_its_services_is(
    statuses: tuple[str | None, str | None], expected: str | None
) -> None:
    [raw] = parse(doc([service(status=statuses[0]), residential(status=statuses[1])]))
    assert raw.get("status") == expected


def test_the_organization_website_when_no_service_has_a_url() -> None:
    [raw] = parse(doc([service(), residential(url="")]))
    assert raw["website"] == "https://harbor.example.org"


# --------------------------------------------------------------------------------------------------
# Capacity


@pytest.mark.parametrize(
    "unit", ["Bed", "Beds", "beds", "Place", "Places", "Slot", "Slots", "Space", "Detox beds", "Adult male beds"]
)
def test_units_that_count_places_are_beds(unit: str) -> None:
    cap = {"id": "c", "unit": {"id": "u", "name": unit}, "available": 2, "maximum": 5, "updated": "2026-11-27"}
    [entry] = parse(doc(service(capacities=[cap])))[0]["availability"]
    assert (entry["beds_available"], entry["beds_total"]) == (2, 5)


@pytest.mark.parametrize(
    ("unit", "shown"),
    [
        ("Kilogram", "'12 Kilogram'"),
        ("Hours", "'12 Hours'"),
        ("Bed nights", "'12 Bed nights'"),
        ("", "'12 (no unit)'"),
    ],
)
def test_other_units_are_never_beds_and_the_reason_names_the_unit(unit: str, shown: str) -> None:
    cap = {"id": "c", "unit": {"id": "u", "name": unit}, "available": 12, "maximum": 10, "updated": "2026-11-27"}
    [raw] = parse(doc(service(capacities=[cap])))
    centers, observations, report = normalize_all([raw], ctx())
    assert len(centers) == 1
    assert observations == []
    [problem] = report.field_problems
    assert problem.field == "availability.0.beds_available"
    assert problem.reason == f"{shown} is not a count"


def test_capacity_of_a_service_at_several_sites_is_not_counted_at_each() -> None:
    other = {
        **WORCESTER,
        "id": "loc-2",
        "addresses": [
            {"address_1": "140 Main St", "city": "Springfield", "state_province": "MA", "postal_code": "01103"}
        ],
        "latitude": 42.1015,
        "longitude": -72.5898,
    }
    svc = service(service_at_locations=[{"id": "sal-1", "location": WORCESTER}, {"id": "sal-3", "location": other}])
    raws = parse(doc(svc))
    assert [r["source_id"] for r in raws] == ["loc-1", "loc-2"]
    centers, observations, report = normalize_all(raws, ctx())
    assert len(centers) == 2
    assert observations == []
    assert {p.reason for p in report.field_problems} == {"'3 shared by 2 sites' is not a count"}


def test_more_available_than_maximum_is_rejected_by_normalization() -> None:
    cap = {"id": "c", "unit": {"name": "Bed"}, "available": 12, "maximum": 10, "updated": "2026-11-27T08:00:00Z"}
    _, observations, report = normalize_all(parse(doc(service(capacities=[cap]))), ctx())
    assert observations == []
    assert [p.reason for p in report.field_problems] == ["12 available exceeds 10 total"]


# --------------------------------------------------------------------------------------------------
# follow: pages and packages


def test_a_page_follows_to_the_next_page_and_stops_at_the_last() -> None:
    page = {"total_pages": 3, "page_number": 2, "contents": [service()]}
    d = Document(
        url="https://hsds.example.org/api/services?per_page=50&page=2&full=true", body=json.dumps(page).encode()
    )
    assert hsds.follow(d, MAPPING) == ["https://hsds.example.org/api/services?per_page=50&full=true&page=3"]
    first = Document(url="https://hsds.example.org/api/services", body=json.dumps({**page, "page_number": 1}).encode())
    assert hsds.follow(first, MAPPING) == ["https://hsds.example.org/api/services?page=2"]
    last: dict[str, Any]
    for last in ({**page, "page_number": 3}, {**page, "page_number": "1", "last_page": True}, {"contents": []}):
        assert hsds.follow(Document(url=d.url, body=json.dumps(last).encode()), MAPPING) == []
    assert [r["source_id"] for r in hsds.parse([d], MAPPING)] == ["loc-1"]


def test_an_empty_page_is_read_as_no_records() -> None:
    assert parse(doc({"total_pages": 0, "page_number": 1, "contents": []})) == []


def test_a_data_package_lists_the_tables_we_read() -> None:
    package = {
        "resources": [
            {"name": "service", "path": "services.csv"},
            {"name": "location", "path": "data/locations.csv"},
            {"name": "accessibility", "path": "accessibility.csv"},
            {"path": "service_at_location.csv"},
            {"name": "phone", "path": "https://cdn.example.org/phones.csv"},
            {"name": "unit", "path": "file:///etc/units.csv"},
        ]
    }
    d = Document(url="https://hsds.example.org/pkg/datapackage.json", body=json.dumps(package).encode())
    assert hsds.follow(d, MAPPING) == [
        "https://hsds.example.org/pkg/services.csv",
        "https://hsds.example.org/pkg/data/locations.csv",
        "https://hsds.example.org/pkg/service_at_location.csv",
        "https://cdn.example.org/phones.csv",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"../../datapackage.json", "not a JSON Data Package"),
        (b'{"name": "x"}', "no 'resources' list"),
        (b'{"resources": [{"name": "organization", "path": "organizations.csv"}]}', "lists no services table"),
    ],
)
def test_a_package_we_cannot_use_is_a_parse_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        hsds.follow(Document(url="https://hsds.example.org/datapackage.json", body=body), MAPPING)


def test_other_documents_have_nothing_to_follow() -> None:
    assert hsds.follow(doc(service()), MAPPING) == []
    assert hsds.follow(Document(url=BASE + "services.csv", body=b"id,name\n1,A\n"), MAPPING) == []


# --------------------------------------------------------------------------------------------------
# Tabular package


TABLES = {
    "services.csv": "id,organization_id,name,description,status,fees_description\n"
    "svc-1,org-1,Opioid Treatment Program,Methadone dosing,active,Medicaid accepted\n",
    "organizations.csv": "id,name,website\norg-1,Riverbend Health,riverbend.example.org\n",
    "locations.csv": "id,location_type,name,latitude,longitude\nloc-1,physical,Riverbend Providence,41.8236,-71.4222\n",
    "service_at_location.csv": "id,service_id,location_id\nsal-1,svc-1,loc-1\nsal-x,svc-gone,loc-1\n",
    "addresses.csv": "id,location_id,address_1,city,state_province,postal_code,address_type\n"
    "a-1,loc-1,100 Westminster St,Providence,RI,02903,physical\n",
    "phones.csv": "id,location_id,service_id,service_at_location_id,number,type,description\n"
    "p-1,,,sal-1,401-555-0110,voice,Intake\np-2,loc-1,,,401-555-0111,fax,\n",
    "service_capacity.csv": "id,service_id,unit_id,available,maximum,updated\n"
    "c-1,svc-1,u-1,4,40,2026-11-27T08:00:00Z\nc-2,svc-gone,u-1,9,9,2026-11-27T08:00:00Z\n",
    "units.csv": "id,name\nu-1,Slot\n",
}


def table_docs(tables: dict[str, str], base: str = "https://hsds.example.org/pkg/") -> list[Document]:
    return [Document(url=base + name, body=text.encode()) for name, text in tables.items()]


def test_tables_recognized_by_file_name_join_into_records() -> None:
    [raw] = hsds.parse(table_docs(TABLES), MAPPING)
    assert raw["source_id"] == "loc-1"
    assert (raw["name"], raw["alternate_name"], raw["website"]) == (
        "Riverbend Providence",
        "Riverbend Health",
        "riverbend.example.org",
    )
    assert (raw["address_1"], raw["state"], raw["postal_code"]) == ("100 Westminster St", "RI", "02903")
    assert raw["phones"] == [{"number": "401-555-0110", "role": "intake"}]
    assert raw["availability"] == [
        {
            "level_of_care": "Opioid Treatment Program; Methadone dosing",
            "beds_available": "4",
            "beds_total": "40",
            "reported_at": "2026-11-27T08:00:00Z",
            "notes": "Opioid Treatment Program",
        }
    ]
    _, [obs], _ = normalize_all([raw], ctx())
    assert (obs.level_of_care, obs.beds_available) == ("otp", 4)


def test_a_package_descriptor_names_tables_whatever_their_file_names() -> None:
    renamed = {f"t{i}.csv": text for i, text in enumerate(TABLES.values())}
    package = {"resources": [{"name": name.removesuffix(".csv"), "path": f"t{i}.csv"} for i, name in enumerate(TABLES)]}
    descriptor = Document(url="https://hsds.example.org/pkg/datapackage.json", body=json.dumps(package).encode())
    assert len(hsds.follow(descriptor, MAPPING)) == len(TABLES)
    [raw] = hsds.parse([descriptor, *table_docs(renamed)], MAPPING)
    assert raw["source_id"] == "loc-1"
    with pytest.raises(ParseError, match="none of its services tables"):
        hsds.parse([descriptor], MAPPING)


def test_a_table_without_its_key_column_names_it() -> None:
    tables = {**TABLES, "service_at_location.csv": "id,service,location\nsal-1,svc-1,loc-1\n"}
    with pytest.raises(ParseError, match=r"service_at_location\.csv: column 'service_id' missing"):
        hsds.parse(table_docs(tables), MAPPING)


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("feed.txt", b"id,name\n1,A\n", "neither HSDS JSON nor a known HSDS table"),
        ("services.json", b'{"foo": 1}', "no HSDS service"),
        ("services.json", b"[1, 2, 3]", "no HSDS service"),
        ("services.json", b'{"contents": [', "not valid JSON"),
        ("services.csv", b'id,name\n1,"unterminated\n', "CSV malformed"),
    ],
)
def test_documents_that_are_not_hsds_are_parse_errors(name: str, body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        hsds.parse([Document(url=BASE + name, body=body)], MAPPING)


# --------------------------------------------------------------------------------------------------
# Properties: whatever the bytes, a list of records or a ParseError


def check_only_parse_errors(body: bytes, name: str) -> None:
    d = Document(url=BASE + name, body=body)
    try:
        records = hsds.parse([d], MAPPING)
    except ParseError:
        pass
    else:
        assert isinstance(records, list)
        normalize_all(records, ctx())
    with contextlib.suppress(ParseError):
        hsds.follow(d, MAPPING)


NAMES = st.sampled_from(["services.json", "services.csv", "datapackage.json", "feed", "locations.csv"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), NAMES)
def test_arbitrary_bytes_raise_nothing_but_parse_error(body: bytes, name: str) -> None:
    check_only_parse_errors(body, name)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "name",
                    "status",
                    "service",
                    "location",
                    "service_at_locations",
                    "location_type",
                    "addresses",
                    "capacities",
                    "unit",
                    "available",
                    "contents",
                    "services",
                    "phones",
                    "resources",
                    "path",
                    "organization",
                    "attributes",
                    "taxonomy_term",
                    "page_number",
                ]
            ),
            inner,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON, NAMES)
def test_arbitrary_json_shapes_raise_nothing_but_parse_error(data: Any, name: str) -> None:
    check_only_parse_errors(json.dumps(data).encode(), name)


# --------------------------------------------------------------------------------------------------
# The real Open Referral examples (read in place from ../shared/data)


def shared_doc(path: Path) -> Document:
    return Document(url=f"https://openreferral.example.org/{path.name}", body=path.read_bytes())


@pytest.mark.shared_data
def test_every_shared_json_example_parses() -> None:
    folder = shared_file("hsds_3.1_examples")
    files = sorted(folder.glob("*.json"))
    assert len(files) >= 6
    for path in files:
        records = hsds.parse([shared_doc(path)], MAPPING)
        assert records, path.name
        # every example names one location (MyCity Civic Center), except the service list, which has none
        expected = {"service_list.json": "ac148810-d857-441c-9679-408f346de14b"}.get(
            path.name, "3a19ff88-4620-4d17-9830-ac1d859eb5d5"
        )
        assert [r["source_id"] for r in records] == [expected], path.name
        normalize_all(records, ctx())  # the example's 'MyState' / 'ABC 1234' address is rejected, never raised


@pytest.mark.shared_data
def test_shared_list_pages_follow_to_page_two() -> None:
    path = shared_file("hsds_3.1_examples/service_list.json")
    d = Document(url="https://openreferral.example.org/services?per_page=1", body=path.read_bytes())
    assert hsds.follow(d, MAPPING) == ["https://openreferral.example.org/services?per_page=1&page=2"]


@pytest.mark.shared_data
def test_shared_kilogram_capacity_is_never_beds() -> None:
    path = shared_file("hsds_3.1_examples/service_full.json")
    [raw] = hsds.parse([shared_doc(path)], MAPPING)
    [entry] = raw["availability"]
    assert entry["beds_available"] == "12 Kilogram"
    assert "beds_total" not in entry
    # As published: the whole record is rejected for its placeholder address, with a reason.
    centers, observations, report = normalize_all([raw], ctx())
    assert (centers, observations) == ([], [])
    assert [(r.field, r.reason) for r in report.rejections] == [("state", "'MyState' is not a US state or territory")]
    # At a real US address, with the service's name mapped to a level, the capacity itself is rejected
    # and the reason names the unit; no observation is stored.
    placed = {**raw, "state": "MA", "postal_code": "02139", "latitude": 42.3736, "longitude": -71.1097}
    value_maps = {"levels_of_care": {"Community Counselling": ("outpatient",)}}
    centers, observations, report = normalize_all([placed], ctx(value_maps=value_maps))
    assert len(centers) == 1
    assert observations == []
    assert [(p.field, p.reason) for p in report.field_problems if p.field.startswith("availability")] == [
        ("availability.0.beds_available", "'12 Kilogram' is not a count")
    ]


def shared_package() -> tuple[Path, list[Document]]:
    """The shared CSV package, fetched through follow(); its own datapackage.json is a symlink stub."""
    folder = shared_file("hsds_3.1_examples/csv")
    base = "https://openreferral.example.org/csv/"
    package = {"resources": [{"name": p.stem, "path": p.name} for p in sorted(folder.glob("*.csv"))]}
    descriptor = Document(url=base + "datapackage.json", body=json.dumps(package).encode())
    urls = hsds.follow(descriptor, MAPPING)
    return folder, [descriptor] + [Document(url=u, body=(folder / u.rsplit("/", 1)[1]).read_bytes()) for u in urls]


@pytest.mark.shared_data
def test_shared_csv_package_parses_through_follow() -> None:
    folder = shared_file("hsds_3.1_examples/csv")
    stub = Document(
        url="https://openreferral.example.org/csv/datapackage.json", body=(folder / "datapackage.json").read_bytes()
    )
    with pytest.raises(ParseError, match="not a JSON Data Package"):
        hsds.follow(stub, MAPPING)
    _, documents = shared_package()
    names = {d.url.rsplit("/", 1)[1] for d in documents}
    assert {
        "services.csv",
        "locations.csv",
        "service_at_location.csv",
        "service_capacity.csv",
        "units.csv",
        "phones.csv",
    } <= names
    assert "accessibility.csv" not in names
    [raw] = hsds.parse(documents, MAPPING)
    assert raw["source_id"] == "3a19ff88-4620-4d17-9830-ac1d859eb5d5"
    # the location's organization_id names no organization in the package: the service's is used
    assert (raw["name"], raw["alternate_name"]) == ("MyCity Civic Center", "Example Organization Inc.")
    assert raw["languages"] == ["ur"]
    # service_capacity.csv names a service (f75b808e-...) and a unit that the package does not hold:
    # there is nothing to attach it to, and it is never attached to another service.
    assert "availability" not in raw


@pytest.mark.shared_data
def test_shared_csv_capacity_linked_to_its_service_is_rejected_naming_the_unit() -> None:
    _, documents = shared_package()
    fixed = []
    for d in documents:
        if d.url.endswith("/service_capacity.csv"):
            text = d.body.decode()
            text = text.replace("f75b808e-7bdb-11ef-afaa-ab00a77dc5c4", "ac148810-d857-441c-9679-408f346de14b")
            text = text.replace("187a37a2-7b40-11ef-9790-dbf7623d4407", "8896b788-7b3e-11ef-8db9-7f3d040352b3")
            d = Document(url=d.url, body=text.encode())
        fixed.append(d)
    [raw] = hsds.parse(fixed, MAPPING)
    assert raw["availability"][0]["beds_available"] == "12 Kilogram"
    placed = {
        **raw,
        "state": "MA",
        "postal_code": "02139",
        "latitude": 42.3736,
        "longitude": -71.1097,
        "levels_of_care": ["outpatient"],
    }
    placed["availability"] = [{**raw["availability"][0], "level_of_care": "outpatient"}]
    _, observations, report = normalize_all([placed], ctx())
    assert observations == []
    assert [p.reason for p in report.field_problems if p.field.startswith("availability")] == [
        "'12 Kilogram' is not a count"
    ]
