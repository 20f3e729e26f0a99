"""CSV exports as partners really send them."""

from __future__ import annotations

import pytest

from aggregator.errors import ParseError
from aggregator.feeds import Document
from aggregator.feeds import csv as csv_feed
from aggregator.feeds.mapping import AvailabilityMapping, RecordMapping

MAPPING = RecordMapping(
    fields={"source_id": "ID", "name": "Name", "state": "State", "postal_code": "Zip"},
    availability=(AvailabilityMapping(fields={"beds_available": "Detox Beds"}, constants={"level_of_care": "detox"}),),
)


def test_bom_crlf_and_quoted_newlines() -> None:
    body = (
        '\ufeffID,Name,State,Zip,Detox Beds\r\n1,"Harbor\r\nHouse",MA,02139,3\r\n2,"Smith, Jones & Co",NJ,8332,\r\n\r\n'
    ).encode()
    records = csv_feed.parse_one(body, MAPPING)
    assert records == [
        {
            "source_id": "1",
            "name": "Harbor\r\nHouse",
            "state": "MA",
            "postal_code": "02139",
            "availability": [{"level_of_care": "detox", "beds_available": "3"}],
        },
        {"source_id": "2", "name": "Smith, Jones & Co", "state": "NJ", "postal_code": "8332"},
    ]


def test_semicolon_and_tab_delimiters_are_sniffed() -> None:
    for d in (";", "\t", "|"):
        body = (
            d.join(["ID", "Name", "State", "Zip", "Detox Beds"]).encode()
            + b"\n"
            + d.join(["1", "A", "MA", "02139", "0"]).encode()
        )
        assert csv_feed.parse_one(body, MAPPING)[0]["name"] == "A"


def test_windows_1252_export_is_read() -> None:
    body = "ID,Name,State,Zip,Detox Beds\n1,Niño House,CA,90013,2\n".encode("cp1252")
    assert csv_feed.parse_one(body, MAPPING)[0]["name"] == "Niño House"


def test_a_changed_layout_names_the_missing_column() -> None:
    body = b"Identifier,Name,State,Zip,Beds\n1,A,MA,02139,0\n"
    with pytest.raises(ParseError, match=r"'Detox Beds'.*'ID'|'ID'.*'Detox Beds'"):
        csv_feed.parse_one(body, MAPPING)


@pytest.mark.parametrize("body", [b"", b"   \n", b"\x00\x01\x02binary"])
def test_empty_or_binary_bodies_are_parse_errors(body: bytes) -> None:
    with pytest.raises(ParseError):
        csv_feed.parse_one(body, MAPPING)


def test_id_from_builds_a_stable_id() -> None:
    mapping = RecordMapping(fields={"name": "Name"}, id_from=("Name", "Zip"))
    a = csv_feed.parse_one(b"Name,Zip\nHarbor House,02139\n", mapping)[0]["source_id"]
    b = csv_feed.parse_one(b"Name,Zip\n harbor  HOUSE ,02139\n", mapping)[0]["source_id"]
    assert a == b
    assert len(a) == 16


def test_rows_map_as_parse_does_and_are_known_by_their_cells_header_and_mapping() -> None:
    body = b"id,name\n1,One\n2,Two\n1,One\n"
    mapping = RecordMapping(fields={"source_id": "id", "name": "name"})
    rows = csv_feed.rows([Document(url="u", body=body)], mapping)
    assert [r.mapped() for r in rows] == [
        {"source_id": "1", "name": "One"},
        {"source_id": "2", "name": "Two"},
        {"source_id": "1", "name": "One"},
    ]
    assert rows[0].digest == rows[2].digest != rows[1].digest  # equal cells, equal digests
    other = RecordMapping(fields={"source_id": "id", "alternate_name": "name"})
    assert csv_feed.rows([Document(url="u", body=body)], other)[0].digest != rows[0].digest
    swapped = b"name,id\nOne,1\n"
    assert csv_feed.rows([Document(url="u", body=swapped)], mapping)[0].digest != rows[0].digest
    assert csv_feed.rows([Document(url="u", body=swapped)], mapping)[0].mapped() == rows[0].mapped()
