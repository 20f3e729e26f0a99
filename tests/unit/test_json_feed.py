"""JSON APIs and NDJSON files as partners really send them: paths, pagination, and the errors they earn."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.feeds import Document
from aggregator.feeds import json as json_feed
from aggregator.feeds.mapping import AvailabilityMapping, RecordMapping
from aggregator.ingest import normalize_all
from aggregator.normalize import FeedContext

BASIC = RecordMapping(records="data.items", fields={"source_id": "id", "name": "name"})


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def one(record: dict[str, Any], **fields: str) -> dict[str, Any]:
    [raw] = json_feed.parse_one(body([record]), RecordMapping(fields=fields))
    return raw


# --------------------------------------------------------------------------------------------------
# Where the records are


@pytest.mark.parametrize(
    ("records", "document"),
    [
        ("", [{"id": "1", "name": "A"}]),
        ("data.items", {"data": {"items": [{"id": "1", "name": "A"}]}}),
        ("results[0].facilities", {"results": [{"facilities": [{"id": "1", "name": "A"}]}]}),
        ("$.rows", {"rows": [{"id": "1", "name": "A"}]}),
    ],
)
def test_records_path_leads_to_the_list_of_records(records: str, document: Any) -> None:
    mapping = RecordMapping(records=records, fields={"source_id": "id", "name": "name"})
    assert json_feed.parse_one(body(document), mapping) == [{"source_id": "1", "name": "A"}]


def test_a_utf8_byte_order_mark_is_tolerated() -> None:
    raw = b"\xef\xbb\xbf" + body({"data": {"items": [{"id": "1", "name": "Niño"}]}})
    assert json_feed.parse_one(raw, BASIC) == [{"source_id": "1", "name": "Niño"}]


def test_an_empty_records_list_gives_no_records() -> None:
    assert json_feed.parse_one(body({"data": {"items": []}}), BASIC) == []


def test_a_missing_records_key_names_the_key_and_the_keys_that_exist() -> None:
    with pytest.raises(ParseError, match=r"key 'items' is missing in 'data', which has keys 'rows', 'page'"):
        json_feed.parse_one(body({"data": {"rows": [], "page": 1}}), BASIC)


def test_a_records_index_out_of_range_says_how_many_items_there_are() -> None:
    mapping = RecordMapping(records="results[1].facilities", fields={"name": "name"})
    with pytest.raises(ParseError, match=r"'results' has no item \[1\] \(it has 1 items\)"):
        json_feed.parse_one(body({"results": [{"facilities": []}]}), mapping)


def test_records_that_are_not_a_list_are_a_parse_error_with_a_hint() -> None:
    with pytest.raises(ParseError, match=r"'data.items' is an object with keys 'id'.*not a list of records"):
        json_feed.parse_one(body({"data": {"items": {"id": "1"}}}), BASIC)
    with pytest.raises(ParseError, match=r"the document is an object with keys 'data'; set mapping.records"):
        json_feed.parse_one(body({"data": []}), RecordMapping(fields={"name": "name"}))
    with pytest.raises(ParseError, match=r"'data' is a string, not an object with key 'items'"):
        json_feed.parse_one(body({"data": "maintenance"}), BASIC)


def test_a_wildcard_in_the_records_path_is_refused() -> None:
    with pytest.raises(ParseError, match=r"\[\*\] cannot be used here"):
        json_feed.parse_one(body({"r": [[]]}), RecordMapping(records="r[*]", fields={"name": "name"}))


def test_non_object_records_become_rejections_and_good_records_are_kept() -> None:
    document = {"data": {"items": [{"id": "1", "name": "A"}, "TODO: Mercy Hall", None, {"id": "2", "name": "B"}]}}
    raws = json_feed.parse_one(body(document), BASIC)
    assert raws == [
        {"source_id": "1", "name": "A"},
        {"_problem": "record [1] is a string, not a JSON object"},
        {"_problem": "record [2] is null, not a JSON object"},
        {"source_id": "2", "name": "B"},
    ]
    ctx = FeedContext(feed_id="t", now=datetime(2026, 11, 27, tzinfo=UTC), default_state="MA")
    _, _, report = normalize_all(raws, ctx)
    assert report.records == 4
    assert [(r.field, r.reason) for r in report.rejections if r.record == "(no id)"] == [
        ("record", "record [1] is a string, not a JSON object"),
        ("record", "record [2] is null, not a JSON object"),
    ]


def test_a_document_whose_records_are_all_non_objects_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match=r"none of the 2 records is a JSON object \(the first is a list\)"):
        json_feed.parse_one(body({"data": {"items": [[1], [2]]}}), BASIC)


def test_records_holding_none_of_the_mapped_fields_mean_the_layout_changed() -> None:
    document = {"data": {"items": [{"facilityId": "1", "facilityName": "A"}]}}
    with pytest.raises(ParseError, match=r"no mapped field \('id', 'name'\).*keys 'facilityId', 'facilityName'"):
        json_feed.parse_one(body(document), BASIC)


# --------------------------------------------------------------------------------------------------
# Field references


def test_references_follow_keys_and_list_indexes() -> None:
    record = {"id": 7, "address": {"zip": "02139"}, "phones": [{"number": "617-555-0100"}, {"number": "617-555-0101"}]}
    raw = one(
        record, source_id="id", postal_code="address.zip", phone="phones[0].number", intake_phone="phones[-1].number"
    )
    assert raw == {"source_id": 7, "postal_code": "02139", "phone": "617-555-0100", "intake_phone": "617-555-0101"}


def test_a_wildcard_reference_gives_the_list_of_every_items_value() -> None:
    record = {"services": [{"code": "DT"}, {"code": "RES"}, {"label": "no code"}, {"code": None}]}
    assert one(record, levels_of_care="services[*].code") == {"levels_of_care": ["DT", "RES"]}
    assert one({"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": [{"c": 3}]}]}, name="a[*].b[*].c") == {"name": [1, 2, 3]}


def test_numbers_and_booleans_stay_as_they_are() -> None:
    raw = one(
        {"lat": 42.36, "beds": 0, "zip": 2139, "ok": True}, latitude="lat", postal_code="zip", status="ok", name="beds"
    )
    assert raw == {"latitude": 42.36, "postal_code": 2139, "status": True, "name": 0}


def test_a_reference_to_a_list_of_scalars_gives_the_list_and_to_an_object_gives_nothing() -> None:
    record = {"langs": ["English", None, "Spanish"], "website": {"url": "https://x.example"}, "mixed": ["a", {"b": 1}]}
    assert one(record, languages="langs", website="website", payment="mixed") == {"languages": ["English", "Spanish"]}


@pytest.mark.parametrize(
    "ref", ["missing", "address.missing", "phones[5].number", "name.first", "name[0]", "phones.number", "address[*]"]
)
def test_references_that_lead_nowhere_give_nothing(ref: str) -> None:
    record = {"name": "A", "address": {"zip": "02139"}, "phones": [{"number": "1"}]}
    assert one(record, name="name", city=ref) == {"name": "A"}


@pytest.mark.parametrize("ref", ["a..b", "a[x]", "a[", "a]", "a[0]b", "."])
def test_a_malformed_reference_is_a_parse_error(ref: str) -> None:
    with pytest.raises(ParseError, match="is not a JMESPath expression"):
        one({"a": 1}, name=ref)


def test_availability_list_items_resolve_relative_to_each_item() -> None:
    mapping = RecordMapping(
        fields={"source_id": "id"},
        availability_list="programs",
        availability_item=AvailabilityMapping(fields={"level_of_care": "type", "beds_available": "beds.open"}),
    )
    document = [
        {
            "id": "1",
            "programs": [
                {"type": "detox", "beds": {"open": 2}},
                {"type": "residential"},
                "junk",
                {"type": "iop", "beds": {"open": 0}},
            ],
        }
    ]
    assert json_feed.parse_one(body(document), mapping) == [
        {
            "source_id": "1",
            "availability": [
                {"level_of_care": "detox", "beds_available": 2},
                {"level_of_care": "iop", "beds_available": 0},
            ],
        }
    ]


def test_an_availability_object_where_a_list_was_expected_counts_as_one_item() -> None:
    mapping = RecordMapping(
        fields={"source_id": "id"},
        availability_list="beds",
        availability_item=AvailabilityMapping(fields={"beds_available": "open"}, constants={"level_of_care": "detox"}),
    )
    [raw] = json_feed.parse_one(body([{"id": "1", "beds": {"open": 3}}]), mapping)
    assert raw["availability"] == [{"level_of_care": "detox", "beds_available": 3}]


def test_id_from_hashes_json_values_into_a_stable_id() -> None:
    mapping = RecordMapping(fields={"name": "name"}, id_from=("name", "address.zip"))
    a = json_feed.parse_one(body([{"name": "Harbor House", "address": {"zip": "02139"}}]), mapping)
    b = json_feed.parse_one(body([{"name": " harbor  HOUSE", "address": {"zip": "02139"}}]), mapping)
    assert a[0]["source_id"] == b[0]["source_id"]


# --------------------------------------------------------------------------------------------------
# NDJSON


def test_ndjson_is_recognised_when_several_lines_each_hold_a_value() -> None:
    raw = b'{"id": "1", "name": "A"}\r\n\r\n{"id": "2", "name": "B"}\r\n'
    mapping = RecordMapping(fields={"source_id": "id", "name": "name"})
    assert json_feed.parse_one(raw, mapping) == [{"source_id": "1", "name": "A"}, {"source_id": "2", "name": "B"}]


def test_the_ndjson_option_reads_a_single_line_as_one_record() -> None:
    mapping = RecordMapping(fields={"source_id": "id"}, options={"ndjson": True})
    assert json_feed.parse_one(b'{"id": "1"}', mapping) == [{"source_id": "1"}]


def test_a_bad_ndjson_line_is_named() -> None:
    with pytest.raises(ParseError, match=r"invalid NDJSON at line 3, column 9"):
        json_feed.parse_one(b'{"id": 1}\n{"id": 2}\n{"id": 3,}\n', RecordMapping(fields={"source_id": "id"}))


# --------------------------------------------------------------------------------------------------
# Bytes that are not JSON


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(ParseError, match=r"invalid JSON at line 3, column 15: unexpected character"):
        json_feed.parse_one(b'{\n  "data": {\n    "items": [}\n}', BASIC)


@pytest.mark.parametrize("raw", [b"", b" \n\t", b"\xef\xbb\xbf"])
def test_an_empty_body_is_a_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError, match="empty"):
        json_feed.parse_one(raw, BASIC)


def test_a_body_that_is_not_utf8_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match=r"not UTF-8 text \(bad byte at offset 13\)"):
        json_feed.parse_one('[{"name": "Niño"}]'.encode("cp1252"), BASIC)


def test_an_html_error_page_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match=r"invalid JSON at line 1, column 1"):
        json_feed.parse_one(b"<html><body>502 Bad Gateway</body></html>", BASIC)


def test_parse_names_the_document_whose_bytes_are_wrong() -> None:
    good = Document(url="https://api.example.org/p1", body=body({"data": {"items": [{"id": "1", "name": "A"}]}}))
    bad = Document(url="https://api.example.org/p2", body=b"{")
    with pytest.raises(ParseError, match=r"^https://api.example.org/p2: invalid JSON"):
        json_feed.parse([good, bad], BASIC)
    assert json_feed.parse([good, good], BASIC) == [{"source_id": "1", "name": "A"}] * 2


# --------------------------------------------------------------------------------------------------
# Pagination


NEXT = RecordMapping(records="data", fields={"name": "name"}, next_page="links.next")


def page(url: str, document: Any) -> Document:
    return Document(url=url, body=body(document))


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://api.example.org/v1/centers?page=2", "https://api.example.org/v1/centers?page=2"),
        ("/v1/centers?page=2", "https://api.example.org/v1/centers?page=2"),
        ("centers?cursor=abc", "https://api.example.org/v1/centers?cursor=abc"),
    ],
)
def test_follow_gives_the_next_page_as_an_absolute_url(link: str, expected: str) -> None:
    doc = page("https://api.example.org/v1/centers?page=1", {"data": [], "links": {"next": link}})
    assert json_feed.follow(doc, NEXT) == [expected]


@pytest.mark.parametrize(
    "links", [{"next": None}, {"next": ""}, {}, {"next": 2}, {"next": "https://api.example.org/v1/centers?page=1"}]
)
def test_follow_gives_nothing_on_the_last_page(links: dict[str, Any]) -> None:
    doc = page("https://api.example.org/v1/centers?page=1", {"data": [], "links": links})
    assert json_feed.follow(doc, NEXT) == []


def test_follow_without_next_page_does_not_read_the_body() -> None:
    assert json_feed.follow(Document(url="https://x.example/", body=b"\x00not json"), BASIC) == []


def test_follow_refuses_a_next_link_that_is_not_http() -> None:
    doc = page("https://api.example.org/p1", {"links": {"next": "file:///etc/passwd"}})
    with pytest.raises(ParseError, match=r"'file:///etc/passwd' .*is not an http\(s\) URL"):
        json_feed.follow(doc, NEXT)


# --------------------------------------------------------------------------------------------------
# Property: whatever the bytes, only ParseError


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["data", "items", "id", "name", "links", "next", "beds"]), inner, max_size=4)
    ),
    max_leaves=20,
)
MAPPINGS = [
    RecordMapping(records="", fields={"source_id": "id", "name": "name"}, next_page="links.next"),
    RecordMapping(
        records="data.items",
        fields={"name": "items[*].name"},
        next_page="next",
        availability_list="beds",
        availability_item=AvailabilityMapping(fields={"beds_available": "[0]"}),
    ),
    RecordMapping(records="data[0]", fields={"name": "id"}, options={"ndjson": True}),
]


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(body),
        st.lists(json_values.map(body), min_size=2, max_size=4).map(b"\n".join),
    ),
    st.sampled_from(MAPPINGS),
)
def test_any_bytes_give_records_or_a_parse_error(raw: bytes, mapping: RecordMapping) -> None:
    doc = Document(url="https://api.example.org/p1", body=raw)
    try:
        records = json_feed.parse([doc], mapping)
        urls = json_feed.follow(doc, mapping)
    except ParseError:
        return
    assert all(isinstance(r, dict) for r in records)
    assert all(u.startswith(("http://", "https://")) for u in urls)
