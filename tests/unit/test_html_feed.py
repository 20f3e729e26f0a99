"""Scraped HTML pages as partners really publish them: bed-board tables, cards, charsets, layout changes."""

from __future__ import annotations

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
        {"name": "Harbor House", "postal_code": "02139", "source_url": "https://beds.example.org/f/1",
         "availability": [{"level_of_care": "detox", "status": "2 beds"}]},
        {"name": "Cedar Clinic", "postal_code": "02118", "source_url": "https://beds.example.org/board/f/2",
         "availability": [{"level_of_care": "detox", "status": "FULL"}]},
    ]


def test_an_attribute_suffix_reads_the_attribute_of_the_matched_element() -> None:
    page = card('<a class="website" href="https://harbor.example.org" title=" Harbor  site ">w</a>')
    assert one(page, website="a.website@href", name="a.website@title") == {
        "website": "https://harbor.example.org", "name": "Harbor site"}


def test_a_bare_attribute_reference_reads_the_record_elements_own_attribute() -> None:
    page = card("<h3>Harbor House</h3>", 'data-id="ma-17" data-lat="42.36"')
    assert one(page, source_id="@data-id", latitude="@data-lat", status="@class", name="h3") == {
        "source_id": "ma-17", "latitude": "42.36", "status": "facility", "name": "Harbor House"}


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
    assert one(page, "https://dir.example.org/a/list.html", source_url="a.d@href", website="img@src",
               name="a.d@data-path") == {
        "source_url": "https://dir.example.org/centers/17", "website": "https://dir.example.org/logo.png",
        "name": "../x"}


def test_references_finding_nothing_leave_the_field_out() -> None:
    assert one(card("<h3>Harbor</h3>"), name="h3", city=".city", website="a@href", phone="h3@data-phone") == {
        "name": "Harbor"}


# --------------------------------------------------------------------------------------------------
# Text


def test_whitespace_and_non_breaking_spaces_are_collapsed() -> None:
    assert one(card("<h3>\n  Harbor&nbsp;&nbsp;House \t</h3>"), name="h3") == {"name": "Harbor House"}


def test_br_and_block_elements_separate_words_and_inline_elements_do_not() -> None:
    page = card("<p class='a'>1 Main St<br>Suite 4</p><p class='n'>Ni<b>ñ</b>o <span>House</span></p>"
                "<div class='c'><div>Boston</div><div>MA</div></div>")
    assert one(page, address_1="p.a", name="p.n", city="div.c") == {
        "address_1": "1 Main St Suite 4", "name": "Niño House", "city": "Boston MA"}


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


@pytest.mark.parametrize(("page", "reason"), [
    (b"", "empty"),
    (b" \r\n ", "empty"),
    (b'{"data": []}', "looks like JSON"),
    (b'\xef\xbb\xbf\n [{"a": 1}]', "looks like JSON"),
    (b"<html>\x00\x01\x02</html>", "NUL bytes"),
])
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


@pytest.mark.parametrize(("mapping", "match"), [
    (RecordMapping(records="table#beds tr:nth-of-type(", fields={"name": "td"}), r"records selector .* not valid CSS"),
    (RecordMapping(records="tr", fields={"name": "td >> a"}), r"field selector 'td >> a' is not valid CSS"),
    (RecordMapping(records="  ", fields={"name": "td"}), r"mapping.records must be a CSS selector"),
])
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


@pytest.mark.parametrize(("cell", "expected"), [
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
])
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
# Property: whatever the bytes, only ParseError


markup = st.lists(st.sampled_from([
    "<table id='beds'>", "<tbody>", "<tr>", "<td>", "</td>", "<th>", "<a href='x/1'>", "</a>", "<br>", "&nbsp;",
    "<!--", "-->", "<script>", "</script>", "FULL", "Waitlist (3)", "2 beds", "N/A", "Niño", "\x00", "{", "<?xml ?>",
    "<meta charset='utf-16'>", "<meta charset='bogus'>", "\ufeff", "</tr>", "</table>",
]), max_size=30).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))
HTML_MAPPINGS = [ROWS, RecordMapping(records="tr", fields={"name": ".", "website": "a@href"},
                                     options={"encoding": "windows-1252"})]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=300), markup), st.sampled_from(HTML_MAPPINGS))
def test_any_bytes_give_records_or_a_parse_error(page: bytes, mapping: RecordMapping) -> None:
    try:
        records = html_feed.parse([Document(url="https://beds.example.org/", body=page)], mapping)
    except ParseError:
        return
    assert records
    assert all(isinstance(r, dict) for r in records)
