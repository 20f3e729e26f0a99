"""Onboarding heuristics: what a sample holds, and the mapping suggested from its names and values."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from aggregator.errors import ConfigError
from aggregator.ingest import IngestReport
from aggregator.onboard import (
    Column,
    availability_for,
    discover,
    discover_csv,
    feed_config,
    field_for,
    find_records,
    load_mapping_file,
    looks_like_one_line_address,
    mapping_toml,
    quality_lines,
    share_verdict,
    split_separator,
    suggest,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"

SAMHSA = b"""name1,name2,street1,street2,city,state,zip,zip4,county,latitude,longitude
A New Beginning,,122 Helton Court,,Florence,AL,35630,1465,Lauderdale,34.832909,-87.66639
AIDS Action Coalition,DBA Thrive Alabama,600 Saint Clair Avenue,Building 9 Suite 23,Huntsville,AL,35801,,\
Madison,34.7226273,-86.5873927
Aletheia House,,912 JL Chestnut Jr Boulevard,,Selma,AL,36701,,Dallas,32.4146865,-87.0259873
"""


def suggested(fmt: str, body: bytes) -> dict:
    return suggest(fmt, discover(fmt, body)).mapping


def test_a_samhsa_like_header_gets_a_sensible_mapping() -> None:
    mapping = suggested("csv", SAMHSA)
    assert mapping["fields"] == {
        "name": "name1",
        "alternate_name": "name2",
        "address_1": "street1",
        "address_2": "street2",
        "city": "city",
        "state": "state",
        "postal_code": "zip",
        "latitude": "latitude",
        "longitude": "longitude",
    }
    # no id column: a stable id from what identifies a facility
    assert mapping["id_from"] == ["name1", "name2", "street1", "street2", "city", "zip"]
    suggestion = suggest("csv", discover("csv", SAMHSA))
    assert suggestion.not_mapped == ["zip4", "county"]


def test_columns_carry_three_sample_values_and_how_full_they_are() -> None:
    candidate = discover_csv(SAMHSA)
    assert candidate.count == 3
    name2 = next(c for c in candidate.columns if c.ref == "name2")
    assert name2.as_dict() == {"ref": "name2", "label": "name2", "samples": ["DBA Thrive Alabama"], "filled": 0.333}
    name1 = next(c for c in candidate.columns if c.ref == "name1").as_dict()
    assert name1["samples"] == ["A New Beginning", "AIDS Action Coalition", "Aletheia House"]


def test_a_services_column_of_slash_codes_is_split_on_slash() -> None:
    body = b"ID,Facility,State,ZIP,Services\n1,A,MA,02139,OTP/MD/DT\n2,B,MA,02139,RES/DT\n3,C,MA,02139,OP\n"
    fields = suggested("csv", body)["fields"]
    assert fields["levels_of_care"] == {"from": "Services", "split": "/"}
    assert fields["source_id"] == "ID"


@pytest.mark.parametrize(
    "values", [["24/7", "24/7"], ["11/27/2026", "11/28/2026"], ["Residential", "Detox"], ["DT;RES", "OP"]]
)
def test_dates_hours_and_plain_words_are_not_split(values: list[str]) -> None:
    assert split_separator(values) is None


def test_a_column_of_one_line_addresses_maps_to_address() -> None:
    body = (
        b"Program,Location,Phone\n"
        b'Harbor House,"12 Main St, Worcester, MA 01608",508-555-0100\n'
        b'Cedar Clinic,"20 Elm St Suite 4, Boston, MA 02118",617-555-0101\n'
    )
    mapping = suggested("csv", body)
    assert mapping["fields"]["address"] == "Location"
    assert "address_1" not in mapping["fields"]
    # an "Address" column holding only streets stays address_1
    streets = b"Name,Address,City,State,Zip\nA,12 Main St,Worcester,MA,01608\nB,20 Elm St,Boston,MA,02118\n"
    assert suggested("csv", streets)["fields"]["address_1"] == "Address"
    assert looks_like_one_line_address(["1 Main St Suite 2, Boston MA 02118-1234"])
    assert not looks_like_one_line_address(["12 Main St", "Boston, MA"])


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("Facility ID", "source_id"),
        ("FRID", "source_id"),
        ("id", "source_id"),
        ("Facility", "name"),
        ("Provider Name", "name"),
        ("Agency", "name"),
        ("FacilityName", "name"),
        ("DBA", "alternate_name"),
        ("name2", "alternate_name"),
        ("Alternate Name", "alternate_name"),
        ("Street", "address_1"),
        ("Address1", "address_1"),
        ("street_2", "address_2"),
        ("Address 2", "address_2"),
        ("City", "city"),
        ("ST", "state"),
        ("State", "state"),
        ("Zip Code", "postal_code"),
        ("ZIPCODE", "postal_code"),
        ("Postal", "postal_code"),
        ("Lat", "latitude"),
        ("LATITUDE", "latitude"),
        ("lng", "longitude"),
        ("Long", "longitude"),
        ("Telephone", "phone"),
        ("Intake Phone", "intake_phone"),
        ("Hotline", "hotline_phone"),
        ("Crisis Line Number", "hotline_phone"),
        ("URL", "website"),
        ("Website", "website"),
        ("Type of Care", "levels_of_care"),
        ("Levels", "levels_of_care"),
        ("Services", "levels_of_care"),
        ("Insurance Accepted", "payment"),
        ("Payment", "payment"),
        ("Ages", "populations"),
        ("Gender", "populations"),
        ("Languages", "languages"),
        ("Last Updated", "reported_at"),
        ("As of", "reported_at"),
        ("updated_at", "reported_at"),
    ],
)
def test_names_suggest_fields(name: str, field: str) -> None:
    found = field_for(name)
    assert found is not None and found[0] == field, (name, found)


@pytest.mark.parametrize("name", ["zip4", "County", "Fax", "Fax Phone", "Email", "Notes", ""])
def test_names_that_suggest_nothing(name: str) -> None:
    assert field_for(name) is None


def test_availability_columns_by_level() -> None:
    def col(label: str, *samples: str) -> Column:
        c = Column(ref=label, label=label, names=(label,))
        for s in samples:
            c.add(s)
        return c

    assert availability_for(col("Detox beds open", "3", "0")) == ("detox", "beds_available")
    assert availability_for(col("Detox beds total", "12", "8")) == ("detox", "beds_total")
    assert availability_for(col("Residential status", "Waitlist (4)", "Open")) == ("residential", "status")
    assert availability_for(col("Residential", "FULL", "N/A", "Waitlist (3)")) == ("residential", "status")
    assert availability_for(col("Withdrawal Mgmt", "2 beds", "FULL")) == ("detox", "status")
    # "offers outpatient: yes/no" is not availability
    assert availability_for(col("Outpatient", "Yes", "No")) is None
    assert availability_for(col("Services", "DT;RES")) is None


def test_json_records_key_paths_and_a_list_of_programs() -> None:
    body = (FIXTURES / "json_paginated" / "page1.json").read_bytes()
    discovery = discover("json", body)
    [candidate] = discovery.candidates
    assert candidate.records == "data.facilities"
    refs = [c.ref for c in candidate.columns]
    assert {"id", "address.zip", "phones[*].number", "services[*].code", "beds[*].open"} <= set(refs)
    mapping = suggest("json", discovery).mapping
    assert mapping["next_page"] == "links.next"
    assert mapping["fields"]["phone"] == "phones[0].number"
    assert mapping["fields"]["postal_code"] == "address.zip"
    assert mapping["fields"]["city"] == "address.city"
    assert mapping["fields"]["levels_of_care"] == "services[*].code"
    assert mapping["availability_list"] == {
        "path": "beds",
        "fields": {
            "level_of_care": "program",
            "beds_available": "open",
            "beds_total": "capacity",
            "status": "status",
            "waitlist_size": "waitlist",
            "reported_at": "as_of",
        },
    }


def test_find_records_takes_a_top_level_list_or_the_first_list_of_objects() -> None:
    assert find_records([{"a": 1}]) == ("", [{"a": 1}])
    assert find_records({"meta": {"n": 1}, "tags": ["x"], "results": [{"a": 1}]}) == ("results", [{"a": 1}])
    assert find_records({"data": {"facilities": [{"a": 1}]}}) == ("data.facilities", [{"a": 1}])
    assert find_records({"name": "one object"}) is None


def test_html_tables_are_candidates_with_their_header_cells() -> None:
    body = (FIXTURES / "html_table" / "index.html").read_bytes()
    discovery = discover("html", body)
    beds = next(c for c in discovery.candidates if c.records == "table#beds tbody tr")
    assert beds.headers[:4] == ["Facility", "Street", "City", "ZIP"]
    mapping = suggest("html", discovery).mapping
    assert mapping["records"] == "table#beds tbody tr"
    assert mapping["fields"]["name"] == "td:nth-of-type(1) a"  # the cells are links: their text
    assert mapping["fields"]["postal_code"] == "td:nth-of-type(4)"
    assert {"constants": {"level_of_care": "residential"}, "fields": {"status": "td:nth-of-type(7)"}} in mapping[
        "availability"
    ]


def test_an_html_board_with_spanning_cells_gets_rowspan_carry_and_a_program_per_row() -> None:
    mapping = suggested("html", (FIXTURES / "html_rowspan" / "index.html").read_bytes())
    assert mapping["options"] == {"rowspan": "carry"}
    assert mapping["fields"]["address_1"] == "td:nth-of-type(2)"  # "Street" under a spanning "Address"
    assert mapping["availability"] == [
        {
            "fields": {
                "level_of_care": "td:nth-of-type(5)",
                "status": "td:nth-of-type(6)",
                "reported_at": "td:nth-of-type(7)",
            }
        }
    ]


def test_html_cards_by_class_and_data_attributes() -> None:
    mapping = suggested("html", (FIXTURES / "html_cards" / "sud-providers.html").read_bytes())
    assert mapping["records"] == "div.facility"
    fields = mapping["fields"]
    assert fields["source_id"] == "@data-id"
    assert fields["latitude"] == "@data-lat"
    assert fields["website"] == "a.website@href"
    assert fields["levels_of_care"] == "ul.services li"
    assert fields["reported_at"] == "time@datetime"


def test_standard_formats_need_no_mapping() -> None:
    assert suggest("hsds", discover("hsds", b"{}")).mapping == {}


def test_the_suggestion_is_toml_the_registry_accepts(tmp_path: Path) -> None:
    mapping = suggested("csv", (FIXTURES / "csv_basic" / "export.csv").read_bytes())
    text = mapping_toml(mapping, ['Odd "column"'])
    assert tomllib.loads(text)["feed"]["mapping"] == mapping
    assert text.rstrip().endswith('# not mapped: Odd "column"')
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    feed = feed_config("csv", "http://127.0.0.1/try/export.csv", load_mapping_file(path), allow_private=True)
    assert feed.mapping.fields["name"] == "Facility"
    assert feed.mapping.availability[0].constants == {"level_of_care": "detox"}


def test_a_mapping_file_may_be_bare_a_feed_mapping_table_or_one_feed(tmp_path: Path) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text('records = "data"\n[fields]\nname = "n"\n')
    table = tmp_path / "table.toml"
    table.write_text('[feed.mapping]\nrecords = "data"\n[feed.mapping.fields]\nname = "n"\n')
    entry = tmp_path / "entry.toml"
    entry.write_text('[[feed]]\nid = "x"\n[feed.mapping]\nrecords = "data"\n[feed.mapping.fields]\nname = "n"\n')
    for path in (bare, table, entry):
        assert load_mapping_file(path) == {"records": "data", "fields": {"name": "n"}}
    broken = tmp_path / "broken.toml"
    broken.write_text("[fields\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_mapping_file(broken)


def test_registry_errors_name_the_mapping_key() -> None:
    with pytest.raises(ConfigError, match=r"^mapping\.fields: unknown field 'nam'"):
        feed_config("csv", "http://127.0.0.1/x.csv", {"fields": {"nam": "Name"}}, allow_private=True)
    with pytest.raises(ConfigError, match="not a JMESPath expression"):
        feed_config("json", "http://127.0.0.1/x.json", {"fields": {"name": "a[?"}}, allow_private=True)


def test_the_accepted_share_rule() -> None:
    feed = feed_config("csv", "http://127.0.0.1/x.csv", {"fields": {"name": "n"}}, allow_private=True)
    assert share_verdict(feed, IngestReport("try", records=10, accepted=6))[0] is False
    failing, why = share_verdict(feed, IngestReport("try", records=10, accepted=4))
    assert failing and "accepted 4 of 10 records (40%" in why
    # repeats of one id are not losses
    assert share_verdict(feed, IngestReport("try", records=10, accepted=4, repeated=6))[0] is False
    assert share_verdict(feed, IngestReport("try"))[0] is True


def test_quality_lines() -> None:
    lines = quality_lines(
        {
            "repairs": [{"what": "ZIP leading zero restored", "count": 3, "records": ["a", "b"]}],
            "unmapped": [],
            "dropped": [],
        },
        repeated=2,
        failed_documents=["http://x/2: HTTP 500"],
    )
    assert lines == [
        "  repairs made:",
        "         3  ZIP leading zero restored  (e.g. a, b)",
        "  repeated ids: 2 record(s) repeated an earlier record's id (the newest report of each id is kept)",
        "  documents that could not be fetched (1; a partial run):",
        "    http://x/2: HTTP 500",
    ]


def test_discovery_serializes_to_json() -> None:
    json.dumps(discover("html", (FIXTURES / "html_cards" / "sud-providers.html").read_bytes()).as_dict())
