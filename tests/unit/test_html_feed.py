"""Scraped HTML pages as partners really publish them: bed-board tables, cards, charsets, layout changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from bs4 import BeautifulSoup
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.feeds import Document
from aggregator.feeds import html as html_feed
from aggregator.feeds.mapping import AvailabilityMapping, RecordMapping
from aggregator.normalize import FeedContext, normalize_record

TABLE = b"""<html><body><table id="beds"><tbody>
<tr><th>Facility</th><th>ZIP</th><th>Detox</th></tr>
<tr><td><a href="/f/1">Harbor House</a></td><td>02139</td><td>2 beds</td></tr>
<tr><td><a href="f/2">Cedar Clinic</a></td><td>02118</td><td>FULL</td></tr>
</tbody></table></body></html>"""

ROWS = RecordMapping(
    records="table#beds tbody tr",
    fields={"name": "td:nth-of-type(1)", "postal_code": "td:nth-of-type(2)", "source_url": "td a@href"},
    availability=(AvailabilityMapping(fields={"status": "td:nth-of-type(3)"}, constants={"level_of_care": "detox"}),),
)


def card(inner: str, attrs: str = "") -> bytes:
    return f'<html><body><div class="facility" {attrs}>{inner}</div></body></html>'.encode()


def one(page: bytes, url: str = "", **fields: str) -> dict[str, Any]:
    [raw] = html_feed.parse_one(page, RecordMapping(records="div.facility", fields=fields), url)
    return raw


# --------------------------------------------------------------------------------------------------
# Records and references


def test_table_rows_map_cells_and_header_rows_are_skipped() -> None:
    assert html_feed.parse_one(TABLE, ROWS, "https://beds.example.org/board/") == [
        {
            "name": "Harbor House",
            "postal_code": "02139",
            "source_url": "https://beds.example.org/f/1",
            "availability": [{"level_of_care": "detox", "status": "2 beds"}],
        },
        {
            "name": "Cedar Clinic",
            "postal_code": "02118",
            "source_url": "https://beds.example.org/board/f/2",
            "availability": [{"level_of_care": "detox", "status": "FULL"}],
        },
    ]


def test_an_attribute_suffix_reads_the_attribute_of_the_matched_element() -> None:
    page = card('<a class="website" href="https://harbor.example.org" title=" Harbor  site ">w</a>')
    assert one(page, website="a.website@href", name="a.website@title") == {
        "website": "https://harbor.example.org",
        "name": "Harbor site",
    }


def test_a_bare_attribute_reference_reads_the_record_elements_own_attribute() -> None:
    page = card("<h3>Harbor House</h3>", 'data-id="ma-17" data-lat="42.36"')
    assert one(page, source_id="@data-id", latitude="@data-lat", status="@class", name="h3") == {
        "source_id": "ma-17",
        "latitude": "42.36",
        "status": "facility",
        "name": "Harbor House",
    }


def test_a_multi_valued_attribute_is_read_as_its_space_separated_text() -> None:
    assert one(card('<a rel="noopener  nofollow" href="x">w</a>'), name="a@rel") == {"name": "noopener nofollow"}


@pytest.mark.parametrize("ref", ["@text", ".", ".@text"])
def test_text_and_dot_mean_the_record_elements_own_text(ref: str) -> None:
    assert one(card("Harbor <b>House</b>"), name=ref) == {"name": "Harbor House"}


def test_a_selector_matching_several_elements_gives_the_list_of_their_texts() -> None:
    page = card('<ul class="services"><li>Detox</li><li> </li><li>Residential\n(3.5)</li></ul>')
    assert one(page, levels_of_care="ul.services li") == {"levels_of_care": ["Detox", "Residential (3.5)"]}


def test_href_and_src_are_made_absolute_against_the_page_url_and_other_attributes_are_not() -> None:
    page = card('<a class="d" href="../centers/17" data-path="../x">Details</a><img src="/logo.png">')
    assert one(
        page, "https://dir.example.org/a/list.html", source_url="a.d@href", website="img@src", name="a.d@data-path"
    ) == {
        "source_url": "https://dir.example.org/centers/17",
        "website": "https://dir.example.org/logo.png",
        "name": "../x",
    }


def test_references_finding_nothing_leave_the_field_out() -> None:
    assert one(card("<h3>Harbor</h3>"), name="h3", city=".city", website="a@href", phone="h3@data-phone") == {
        "name": "Harbor"
    }


# --------------------------------------------------------------------------------------------------
# Text


def test_whitespace_and_non_breaking_spaces_are_collapsed() -> None:
    assert one(card("<h3>\n  Harbor&nbsp;&nbsp;House \t</h3>"), name="h3") == {"name": "Harbor House"}


def test_br_and_block_elements_separate_words_and_inline_elements_do_not() -> None:
    page = card(
        "<p class='a'>1 Main St<br>Suite 4</p><p class='n'>Ni<b>ñ</b>o <span>House</span></p>"
        "<div class='c'><div>Boston</div><div>MA</div></div>"
    )
    assert one(page, address_1="p.a", name="p.n", city="div.c") == {
        "address_1": "1 Main St Suite 4",
        "name": "Niño House",
        "city": "Boston MA",
    }


def test_comments_scripts_and_styles_are_not_text() -> None:
    page = card("<h3>Harbor<!-- old name: Dock --><script>var x = 1;</script><style>h3{}</style> House</h3>")
    assert one(page, name="h3") == {"name": "Harbor House"}


# --------------------------------------------------------------------------------------------------
# Charsets: the bytes go to BeautifulSoup undecoded


def test_the_charset_is_read_from_the_meta_tag() -> None:
    page = '<html><head><meta charset="windows-1252"></head><body><div class="facility"><h3>Niño’s</h3>'
    assert one(page.encode("cp1252"), name="h3") == {"name": "Niño’s"}


def test_utf8_with_a_byte_order_mark_and_utf16_with_one_are_read() -> None:
    page = '<div class="facility"><h3>Niño</h3></div>'
    assert one(b"\xef\xbb\xbf" + page.encode(), name="h3") == {"name": "Niño"}
    assert one(page.encode("utf-16"), name="h3") == {"name": "Niño"}


def test_the_encoding_option_overrides_a_wrong_meta_tag() -> None:
    page = '<html><head><meta charset="utf-8"></head><body><div class="facility"><h3>Niño</h3>'.encode("cp1252")
    mapping = RecordMapping(records="div.facility", fields={"name": "h3"}, options={"encoding": "windows-1252"})
    assert html_feed.parse_one(page, mapping) == [{"name": "Niño"}]


# --------------------------------------------------------------------------------------------------
# Pages that do not fit


@pytest.mark.parametrize(
    ("page", "reason"),
    [
        (b"", "empty"),
        (b" \r\n ", "empty"),
        (b'{"data": []}', "looks like JSON"),
        (b'\xef\xbb\xbf\n [{"a": 1}]', "looks like JSON"),
        (b"<html>\x00\x01\x02</html>", "NUL bytes"),
    ],
)
def test_a_body_that_is_not_html_is_a_parse_error(page: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        html_feed.parse_one(page, ROWS)


def test_a_records_selector_matching_nothing_says_the_layout_may_have_changed() -> None:
    login = b"<html><body><form action='/login'><input name='user'></form></body></html>"
    with pytest.raises(ParseError, match=r"'table#beds tbody tr' matched nothing: the page layout may have changed"):
        html_feed.parse_one(login, ROWS)


def test_records_without_any_mapped_data_mean_the_layout_changed() -> None:
    page = b"<table id='beds'><tbody><tr><th>Harbor</th><th>02139</th></tr></tbody></table>"
    with pytest.raises(ParseError, match=r"matched 1 elements but no mapped field found anything"):
        html_feed.parse_one(page, ROWS)


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        (
            RecordMapping(records="table#beds tr:nth-of-type(", fields={"name": "td"}),
            r"records selector .* not valid CSS",
        ),
        (RecordMapping(records="tr", fields={"name": "td >> a"}), r"field selector 'td >> a' is not valid CSS"),
        (RecordMapping(records="  ", fields={"name": "td"}), r"mapping.records must be a CSS selector"),
    ],
)
def test_invalid_selectors_are_parse_errors(mapping: RecordMapping, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        html_feed.parse_one(TABLE, mapping)


def test_skip_rows_skips_leading_matches() -> None:
    page = b"<table><tr><td>Facility</td><td>ZIP</td></tr><tr><td>Harbor</td><td>02139</td></tr></table>"
    mapping = RecordMapping(records="tr", fields={"name": "td:nth-of-type(1)"}, options={"skip_rows": 1})
    assert html_feed.parse_one(page, mapping) == [{"name": "Harbor"}]
    with pytest.raises(ParseError, match="skip_rows must be a whole number"):
        html_feed.parse_one(page, RecordMapping(records="tr", fields={"name": "td"}, options={"skip_rows": "1"}))


def test_parse_names_the_page_and_concatenates_pages() -> None:
    good = Document(url="https://beds.example.org/p1", body=TABLE)
    bad = Document(url="https://beds.example.org/p2", body=b"<html><body>Down for maintenance</body></html>")
    assert len(html_feed.parse([good, good], ROWS)) == 4
    with pytest.raises(ParseError, match=r"^https://beds.example.org/p2: records selector"):
        html_feed.parse([good, bad], ROWS)


def test_the_soup_is_decomposed_after_success_and_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = BeautifulSoup.decompose

    def counting(self: BeautifulSoup) -> None:
        calls.append(1)
        original(self)

    monkeypatch.setattr(BeautifulSoup, "decompose", counting)
    html_feed.parse_one(TABLE, ROWS)
    with pytest.raises(ParseError):
        html_feed.parse_one(b"<p>nothing here</p>", ROWS)
    assert len(calls) == 2


# --------------------------------------------------------------------------------------------------
# Bed-board cells are passed through; aggregator.normalize reads them


CTX = FeedContext(feed_id="t", now=datetime(2026, 11, 27, 15, tzinfo=UTC))


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("FULL", ("full", None, None)),
        ("Waitlist (3)", ("waitlist", None, 3)),
        ("2&nbsp;beds", ("limited", 2, None)),
        ("12 beds", ("available", 12, None)),
        ("0 beds", ("full", 0, None)),
        ("Open", ("available", None, None)),
        ("5", ("available", 5, None)),
        ("3 open", ("available", 3, None)),
        ("Open (4)", ("available", 4, None)),
        ("Wait list - 12", ("waitlist", None, 12)),
        ("Unavailable", ("full", None, None)),
        ("Not accepting", ("full", None, None)),
        ("No vacancy", ("full", None, None)),
    ],
)
def test_bed_board_cells_are_read_as_their_status(cell: str, expected: tuple[Any, ...]) -> None:
    page = f"<table id='beds'><tbody><tr><td>Harbor</td><td>02139</td><td>{cell}</td></tr></tbody></table>"
    [raw] = html_feed.parse_one(page.encode(), ROWS)
    result = normalize_record({**raw, "source_id": "1", "state": "MA"}, CTX)
    [obs] = result.availability
    assert (obs.status.value, obs.beds_available, obs.waitlist_size) == expected


@pytest.mark.parametrize("cell", ["N/A", "—", "Call for availability", ""])
def test_cells_that_say_nothing_make_no_observation(cell: str) -> None:
    page = f"<table id='beds'><tbody><tr><td>Harbor</td><td>02139</td><td>{cell}</td></tr></tbody></table>"
    [raw] = html_feed.parse_one(page.encode(), ROWS)
    result = normalize_record({**raw, "source_id": "1", "state": "MA"}, CTX)
    assert result.availability == []
    assert result.problems == []


# --------------------------------------------------------------------------------------------------
# options.rowspan = "carry": a facility's first row spans its programs' rows

BOARD = b"""<html><body><table id="beds"><tbody>
<tr><th>Facility</th><th>Address</th><th>Phone</th><th>Program</th><th>Beds</th></tr>
<tr><td rowspan="3">Harbor House</td><td rowspan="3">12 Main St</td><td rowspan="3">617-555-0101</td>
    <td>Detox</td><td>2 beds</td></tr>
<tr><td>Residential</td><td>FULL</td></tr>
<tr><td>Outpatient</td><td>Waitlist (3)</td></tr>
<tr><td>Cedar Clinic</td><td>4 Elm St</td><td>413-555-0102</td><td>Detox</td><td>FULL</td></tr>
</tbody></table></body></html>"""

PROGRAMS = RecordMapping(
    records="table#beds tbody tr",
    fields={"name": "td:nth-of-type(1)", "address_1": "td:nth-of-type(2)", "phone": "td:nth-of-type(3)"},
    availability=(AvailabilityMapping(fields={"level_of_care": "td:nth-of-type(4)", "status": "td:nth-of-type(5)"}),),
)
CARRY = replace(PROGRAMS, options={"rowspan": "carry"})


def test_rowspan_carry_gives_one_record_per_facility_with_every_program() -> None:
    assert html_feed.parse_one(BOARD, CARRY) == [
        {
            "name": "Harbor House",
            "address_1": "12 Main St",
            "phone": "617-555-0101",
            "availability": [
                {"level_of_care": "Detox", "status": "2 beds"},
                {"level_of_care": "Residential", "status": "FULL"},
                {"level_of_care": "Outpatient", "status": "Waitlist (3)"},
            ],
        },
        {
            "name": "Cedar Clinic",
            "address_1": "4 Elm St",
            "phone": "413-555-0102",
            "availability": [{"level_of_care": "Detox", "status": "FULL"}],
        },
    ]


def test_without_rowspan_carry_continuation_rows_are_records_named_after_a_program() -> None:
    """Today's reading of the markup as it is: a continuation row's first cell is a program."""
    records = html_feed.parse_one(BOARD, PROGRAMS)
    assert [r["name"] for r in records] == ["Harbor House", "Residential", "Outpatient", "Cedar Clinic"]
    assert records[1] == {"name": "Residential", "address_1": "FULL"}
    assert records[0]["availability"] == [{"level_of_care": "Detox", "status": "2 beds"}]


def test_carried_cells_are_marked_copies_at_their_column_position_colspan_included() -> None:
    page = b"""<table id="beds"><tbody>
    <tr><td rowspan="2">Harbor House</td><td>Detox</td><td rowspan="2" colspan="2">12 Main St</td><td>2 beds</td>
        <td rowspan="2">617-555-0101</td></tr>
    <tr><td>Residential</td><td>FULL</td></tr>
    </tbody></table>"""
    mapping = RecordMapping(
        records="table#beds tbody tr",
        fields={"name": "td:nth-of-type(1)", "address_1": "td:nth-of-type(3)", "phone": "td:nth-of-type(5)"},
        availability=(
            AvailabilityMapping(fields={"level_of_care": "td:nth-of-type(2)", "status": "td:nth-of-type(4)"}),
            AvailabilityMapping(fields={"notes": "td[data-rowspan-copy]"}, constants={"level_of_care": "copies"}),
        ),
        options={"rowspan": "carry"},
    )
    [raw] = html_feed.parse_one(page, mapping)
    assert raw == {
        "name": "Harbor House",
        "address_1": "12 Main St",
        "phone": "617-555-0101",
        "availability": [
            {"level_of_care": "Detox", "status": "2 beds"},
            {"level_of_care": "Residential", "status": "FULL"},
            {"level_of_care": "copies", "notes": ["Harbor House", "12 Main St", "617-555-0101"]},
        ],
    }


def test_a_carried_cell_past_a_short_rows_end_keeps_its_column() -> None:
    page = b"""<table id="beds">
    <tr><td rowspan="2">Harbor House</td><td>Detox</td><td>2 beds</td><td rowspan="2">617-555-0101</td></tr>
    <tr><td>Residential</td></tr>
    </table>"""
    mapping = RecordMapping(
        records="table#beds tr",
        fields={"name": "td:nth-of-type(1)"},
        availability=(
            AvailabilityMapping(
                fields={
                    "level_of_care": "td:nth-of-type(2)",
                    "status": "td:nth-of-type(3)",
                    "notes": "td:nth-of-type(4)",
                }
            ),
        ),
        options={"rowspan": "carry"},
    )
    assert html_feed.parse_one(page, mapping) == [
        {
            "name": "Harbor House",
            "availability": [
                {"level_of_care": "Detox", "status": "2 beds", "notes": "617-555-0101"},
                {"level_of_care": "Residential", "notes": "617-555-0101"},
            ],
        }
    ]


@pytest.mark.parametrize("rowspan", ["9", "0", "99999999999999", "3 rows", " 5"])
def test_a_rowspan_running_past_the_tables_last_row_stops_there(rowspan: str) -> None:
    page = f"""<table id="beds"><tbody>
    <tr><td rowspan="{rowspan}">Harbor House</td><td>12 Main St</td><td>617-555-0101</td><td>Detox</td>
        <td>2 beds</td></tr>
    <tr><td>4 Elm St</td><td>413-555-0102</td><td>Residential</td><td>FULL</td></tr>
    </tbody></table>""".encode()
    [raw] = html_feed.parse_one(page, CARRY)
    assert raw["name"] == "Harbor House"
    assert raw["address_1"] == "12 Main St"
    assert raw["availability"] == [
        {"level_of_care": "Detox", "status": "2 beds"},
        {"level_of_care": "Residential", "status": "FULL"},
    ]


def test_a_rowspan_does_not_run_into_the_next_row_group() -> None:
    page = BOARD.replace(b"<tr><td>Outpatient", b"</tbody><tbody><tr><td>Outpatient")
    records = html_feed.parse_one(page, CARRY)
    assert [r["name"] for r in records] == ["Harbor House", "Outpatient", "Cedar Clinic"]
    assert len(records[0]["availability"]) == 2


@pytest.mark.parametrize("group", ["", "</thead><tbody>"])
def test_a_colspan_in_the_header_does_not_shift_columns(group: str) -> None:
    page = f"""<table id="beds">{"<thead>" if group else ""}
    <tr><th rowspan="2">Facility</th><th colspan="2">Contact</th><th rowspan="2">Program</th>
        <th rowspan="2">Beds</th></tr>
    <tr><th>Address</th><th>Phone</th></tr>{group}
    <tr><td rowspan="2">Harbor House</td><td rowspan="2">12 Main St</td><td rowspan="2">617-555-0101</td>
        <td>Detox</td><td>2 beds</td></tr>
    <tr><td>Residential</td><td>FULL</td></tr>
    <tr><td colspan="3">Cedar Clinic, 4 Elm St</td><td>Detox</td><td>FULL</td></tr>
    {"</tbody>" if group else ""}</table>""".encode()
    mapping = replace(CARRY, records="table#beds tr")
    assert html_feed.parse_one(page, mapping) == [
        {
            "name": "Harbor House",
            "address_1": "12 Main St",
            "phone": "617-555-0101",
            "availability": [
                {"level_of_care": "Detox", "status": "2 beds"},
                {"level_of_care": "Residential", "status": "FULL"},
            ],
        },
        {"name": "Cedar Clinic, 4 Elm St", "address_1": "Detox", "phone": "FULL"},
    ]


def test_merged_rows_union_list_fields_and_fill_only_missing_scalars() -> None:
    page = b"""<table id="beds"><tbody>
    <tr><td rowspan="3">Harbor House</td><td>Detox</td><td>Medicaid</td><td></td></tr>
    <tr><td>Residential</td><td>Medicaid</td><td>https://harbor.example.org</td></tr>
    <tr><td>Detox</td><td>Private insurance</td><td>https://other.example.org</td></tr>
    </tbody></table>"""
    payment_constant = ["Self-pay"]
    mapping = RecordMapping(
        records="table#beds tbody tr",
        fields={
            "name": "td:nth-of-type(1)",
            "levels_of_care": "td:nth-of-type(2)",
            "languages": "td:nth-of-type(3)",
            "website": "td:nth-of-type(4)",
        },
        constants={"payment": payment_constant, "status": "active"},
        options={"rowspan": "carry"},
    )
    assert html_feed.parse_one(page, mapping) == [
        {
            "name": "Harbor House",
            "status": "active",
            "payment": ["Self-pay"],
            "levels_of_care": ["Detox", "Residential"],
            "languages": ["Medicaid", "Private insurance"],
            "website": "https://harbor.example.org",
        }
    ]
    assert payment_constant == ["Self-pay"]


def test_a_records_selector_can_match_continuation_rows_by_their_carried_cells() -> None:
    page = BOARD.replace(b'<td rowspan="3">Harbor', b'<td rowspan="3" class="name">Harbor').replace(
        b"<td>Cedar", b'<td class="name">Cedar'
    )
    records = html_feed.parse_one(page, replace(CARRY, records="table#beds tr:has(td.name)"))
    assert [len(r["availability"]) for r in records] == [3, 1]


def test_the_carried_rows_of_a_skipped_first_row_are_records_of_their_own() -> None:
    records = html_feed.parse_one(BOARD, replace(CARRY, options={"rowspan": "carry", "skip_rows": 2}))
    assert [(r["name"], r["availability"][0]["level_of_care"]) for r in records] == [
        ("Harbor House", "Residential"),
        ("Harbor House", "Outpatient"),
        ("Cedar Clinic", "Detox"),
    ]


def test_cards_inside_a_layout_table_are_left_alone() -> None:
    page = b"""<table><tr><td rowspan="2"><div class="facility"><h3>Harbor</h3></div></td><td>ad</td></tr>
    <tr><td><div class="facility"><h3>Cedar</h3></div></td></tr></table>"""
    mapping = RecordMapping(records="div.facility", fields={"name": "h3"}, options={"rowspan": "carry"})
    assert html_feed.parse_one(page, mapping) == [{"name": "Harbor"}, {"name": "Cedar"}]


@pytest.mark.parametrize("value", ["merge", True, ""])
def test_rowspan_takes_only_carry(value: Any) -> None:
    with pytest.raises(ParseError, match=r"options.rowspan must be 'carry'"):
        html_feed.parse_one(BOARD, replace(PROGRAMS, options={"rowspan": value}))


# --------------------------------------------------------------------------------------------------
# Property: whatever the bytes, only ParseError


markup = st.lists(
    st.sampled_from(
        [
            "<table id='beds'>",
            "<tbody>",
            "<tr>",
            "<td>",
            "</td>",
            "<th>",
            "<a href='x/1'>",
            "</a>",
            "<br>",
            "&nbsp;",
            "<!--",
            "-->",
            "<script>",
            "</script>",
            "FULL",
            "Waitlist (3)",
            "2 beds",
            "N/A",
            "Niño",
            "\x00",
            "{",
            "<?xml ?>",
            "<meta charset='utf-16'>",
            "<meta charset='bogus'>",
            "\ufeff",
            "</tr>",
            "</table>",
            "<td rowspan='3'>",
            "<td rowspan='0' colspan='2'>",
            "<th colspan='9'>",
            "<tbody>",
            "</tbody>",
            "<thead>",
        ]
    ),
    max_size=30,
).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))
HTML_MAPPINGS = [
    ROWS,
    RecordMapping(records="tr", fields={"name": ".", "website": "a@href"}, options={"encoding": "windows-1252"}),
    CARRY,
    RecordMapping(records="tr, td", fields={"name": "td:nth-of-type(2)"}, options={"rowspan": "carry"}),
]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=300), markup), st.sampled_from(HTML_MAPPINGS))
def test_any_bytes_give_records_or_a_parse_error(page: bytes, mapping: RecordMapping) -> None:
    try:
        records = html_feed.parse([Document(url="https://beds.example.org/", body=page)], mapping)
    except ParseError:
        return
    assert records
    assert all(isinstance(r, dict) for r in records)
