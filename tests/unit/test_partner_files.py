"""Partner files as they come: split cells, phone cells, null words, one-line addresses, JMESPath
references, per-feed settings, clock skew and repeated ids, through the public functions.

The golden cases (tests/fixtures/feeds/csv_split_cells, csv_phone_cells, csv_null_words*,
json_picked_items, html_one_line_address, smart_per_state_files, csv_repeated_ids, csv_clock_skew)
show the same behaviours end to end. The tests at the end pin defects found while writing them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aggregator.address import split_one_line
from aggregator.errors import ConfigError, InvalidValue, ParseError
from aggregator.feeds import Document
from aggregator.feeds import csv as csv_feed
from aggregator.feeds.json import expression
from aggregator.feeds.mapping import RecordMapping, apply, split_cell
from aggregator.feeds.smart import follow
from aggregator.ingest import REPEATED, context_for, normalize_all
from aggregator.model import AvailabilityStatus, LevelOfCare, Payment, PhoneRole
from aggregator.normalize import FeedContext, normalize_record, timestamp
from aggregator.normalize import phone_numbers as read_phones
from config import registry

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 10:00 AM in America/New_York
BASE: dict[str, Any] = {
    "source_id": "MD-2101",
    "name": "Patapsco Harbor Recovery Center",
    "address_1": "1400 E Fayette St",
    "city": "Baltimore",
    "state": "MD",
    "postal_code": "21231",
}


def phone_numbers(text: str, *args: object) -> tuple[list[tuple[str, PhoneRole]], list[object]]:
    """(number, role) pairs of the numbers found, and the problems."""
    found, problems = read_phones(text, *args)  # type: ignore[arg-type]
    return [(p.number, p.role) for p in found], problems


def ctx(**kw: Any) -> FeedContext:
    return FeedContext(feed_id="partner", now=NOW, **kw)


def one_feed(fmt: str = "csv", mapping: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "feed": [
            {
                "id": "md-codes",
                "format": fmt,
                "url": "https://partner.example.org/export",
                "mapping": {**(mapping or {}), "fields": {"source_id": "ID", "name": "Name", **fields}},
            }
        ]
    }


# --------------------------------------------------------------------------------------------------
# Phone cells


def test_every_number_in_a_cell_keeps_the_role_its_label_gives() -> None:
    assert phone_numbers("(410)555-0139 Intake: (410)555-0178") == (
        [("+14105550139", PhoneRole.MAIN), ("+14105550178", PhoneRole.INTAKE)],
        [],
    )
    assert phone_numbers("Hotline (24/7): 1-800-555-0199") == ([("+18005550199", PhoneRole.HOTLINE)], [])
    assert phone_numbers("Crisis line 410-555-0100; office 410-555-0101") == (
        [("+14105550100", PhoneRole.HOTLINE), ("+14105550101", PhoneRole.MAIN)],
        [],
    )
    assert phone_numbers("Admissions 410-555-0101") == ([("+14105550101", PhoneRole.INTAKE)], [])


def test_an_unlabelled_number_takes_the_role_of_its_column() -> None:
    assert phone_numbers("410.555.0100", PhoneRole.INTAKE, "intake_phone") == ([("+14105550100", PhoneRole.INTAKE)], [])


def test_a_fax_is_dropped_with_a_reason() -> None:
    numbers, problems = phone_numbers("Main 410-555-0101 / Fax 410-555-0102")
    assert numbers == [("+14105550101", PhoneRole.MAIN)]
    assert [(p.field, p.reason) for p in problems] == [("phone", "fax number '410-555-0102' dropped")]


def test_an_unreadable_number_is_reported_and_the_others_kept() -> None:
    numbers, problems = phone_numbers("301-555-01 / 301-555-0123")
    assert numbers == [("+13015550123", PhoneRole.MAIN)]
    assert [p.reason for p in problems] == ["unreadable number '301-555-01'; the others are kept"]


def test_short_codes_beside_a_number_are_no_problem() -> None:
    for text in ("TTY 711; main 617-555-0142", "617-555-0142, or call 988"):
        assert phone_numbers(text) == ([("+16175550142", PhoneRole.MAIN)], []), text


def test_the_short_form_of_a_second_number_is_reported_not_lost() -> None:
    # "-5439/5440": a second line written by its last digits; not a number to dial as written, so it is a reason
    numbers, problems = phone_numbers("410-955-5439/5440")
    assert numbers == [("+14109555439", PhoneRole.MAIN)]
    assert [p.reason for p in problems] == ["unreadable number '5440'; the others are kept"]


def test_one_number_at_two_extensions_is_two_lines() -> None:
    centers, _, report = normalize_all([{**BASE, "phone": "(410) 955-5000 ext 101 or (410) 955-5000 ext 102"}], ctx())
    assert [(p.number, p.extension) for p in centers[0].phones] == [("+14109555000", "101"), ("+14109555000", "102")]
    assert not report.field_problems


def test_non_us_numbers_are_reasons_and_us_territories_are_kept() -> None:
    assert phone_numbers("+1 (787) 555-0101") == ([("+17875550101", PhoneRole.MAIN)], [])
    numbers, problems = phone_numbers("Main 410-555-0100, +44 20 7946 0958")
    assert numbers == [("+14105550100", PhoneRole.MAIN)]
    assert [p.reason for p in problems] == ["'+44 20 7946 0958' is not a US or US-territory number"]
    assert phone_numbers("+52 55 5555 0101")[0] == []


def test_a_cell_with_no_number_is_one_reason() -> None:
    numbers, problems = phone_numbers("call the front desk")
    assert numbers == []
    assert len(problems) == 1
    assert problems[0].field == "phone"


# --------------------------------------------------------------------------------------------------
# Null words


def test_default_null_words_never_become_text_a_phone_problem_or_a_count() -> None:
    raw = {
        **BASE,
        "alternate_name": "NA",
        "address_2": "-",
        "phone": "null",
        "intake_phone": "none",
        "hotline_phone": "N/A",
        "availability": [{"level_of_care": "detox", "beds_available": "TBD", "beds_total": "N/A", "status": "-"}],
    }
    result = normalize_record(raw, ctx())
    assert result.center is not None
    assert (result.center.alternate_name, result.center.address.address_2) == ("", "")
    assert result.center.phones == ()
    assert result.availability == []  # nothing was reported for detox
    assert result.problems == []


def test_null_words_are_compared_without_case_or_extra_spaces() -> None:
    result = normalize_record({**BASE, "alternate_name": " n/A ", "address_2": "NULL"}, ctx())
    assert result.center is not None
    assert (result.center.alternate_name, result.center.address.address_2) == ("", "")


def test_a_feeds_own_null_words_replace_the_default_list() -> None:
    raw = {
        **BASE,
        "alternate_name": "Not reported",
        "address_2": "-",
        "availability": [{"level_of_care": "residential", "beds_available": "Not reported", "beds_total": "24"}],
    }
    custom = normalize_record(raw, ctx(null_values=frozenset({"na", "not reported"})))
    assert custom.center is not None
    assert custom.center.alternate_name == ""
    assert custom.center.address.address_2 == "-"  # "-" is a value for this feed
    [obs] = custom.availability
    assert (obs.beds_available, obs.beds_total, obs.status) == (None, 24, AvailabilityStatus.UNKNOWN)
    assert custom.problems == []

    default = normalize_record(raw, ctx())
    assert default.center is not None
    assert default.center.alternate_name == "Not reported"
    assert default.availability == []
    assert [p.reason for p in default.problems] == ["'Not reported' is not a count"]


def test_null_values_from_the_registry_reach_normalization() -> None:
    [feed] = registry.parse(one_feed(mapping={"null_values": ["NA", "Not reported"]})).feeds
    assert feed.mapping.null_values == ("NA", "Not reported")
    result = normalize_record({**BASE, "alternate_name": "NOT REPORTED", "phone": "na"}, context_for(feed, NOW))
    assert result.center is not None
    assert result.center.alternate_name == ""
    assert result.problems == []


# --------------------------------------------------------------------------------------------------
# Split cells


def test_split_cell() -> None:
    assert split_cell("OTP/MD/DT/SF", ("/",)) == ["OTP", "MD", "DT", "SF"]
    assert split_cell("MD/SF; SS", ("/", ";")) == ["MD", "SF", "SS"]
    assert split_cell(" DT / RES //IOP ", ("/",)) == ["DT", "RES", "IOP"]
    assert split_cell(["DT/RES", "OP"], ("/",)) == ["DT", "RES", "OP"]
    assert split_cell("DT; RES", ("/",)) == ["DT; RES"]
    assert split_cell(4105550100, ("/",)) == [4105550100]


def test_split_codes_map_to_levels_and_payment() -> None:
    mapping = RecordMapping(
        fields={"levels_of_care": "Services", "payment": "Payment"},
        splits={"levels_of_care": ("/",), "payment": ("/", ";")},
    )
    row = {"Services": "OTP/DT/OP", "Payment": "MD/SF; SS"}
    raw = {**BASE, **apply(row.__getitem__, mapping)}
    result = normalize_record(raw, ctx())
    assert result.center is not None
    services = result.center.services
    assert set(services.levels_of_care) == {LevelOfCare.OTP, LevelOfCare.MAT, LevelOfCare.DETOX, LevelOfCare.OUTPATIENT}
    assert set(services.payment) == {Payment.MEDICAID, Payment.SELF_PAY, Payment.SLIDING_SCALE}
    assert result.unmapped == {}


def test_the_registry_reads_from_and_split_tables() -> None:
    [feed] = registry.parse(
        one_feed(
            levels_of_care={"from": "Services", "split": "/"},
            payment={"from": "Payment", "split": ["/", ";"]},
            phone={"from": "Phone", "split": ";"},
        )
    ).feeds
    assert feed.mapping.fields["levels_of_care"] == "Services"
    assert feed.mapping.fields["payment"] == "Payment"
    assert dict(feed.mapping.splits) == {"levels_of_care": ("/",), "payment": ("/", ";"), "phone": (";",)}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": {"from": "Name", "split": "/"}}, "feed 'md-codes'.mapping.fields.name: only list and phone fields"),
        ({"address": {"from": "Address", "split": ","}}, "feed 'md-codes'.mapping.fields.address: only list and phone"),
        ({"payment": {"from": "Payment", "split": []}}, "feed 'md-codes'.mapping.fields.payment: key 'split' must be"),
        ({"payment": {"from": "Payment"}}, "feed 'md-codes'.mapping.fields.payment: key 'split' is required"),
        ({"payment": {"split": "/"}}, "feed 'md-codes'.mapping.fields.payment: key 'from' is required"),
        (
            {"payment": {"from": "Payment", "split": "/", "sep": ";"}},
            "feed 'md-codes'.mapping.fields.payment: unknown key",
        ),
    ],
)
def test_the_registry_rejects_a_wrong_split(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        registry.parse(one_feed(**{**fields, "name": fields.get("name", "Name")}))


# --------------------------------------------------------------------------------------------------
# One-line addresses


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("12 Main St, Worcester, MA 01608", ("12 Main St", "", "Worcester", "MA", "01608")),
        ("340 Main St Suite 200, Worcester, MA 01608", ("340 Main St", "Suite 200", "Worcester", "MA", "01608")),
        ("26 Queen St Worcester, MA 01610-2416", ("26 Queen St", "", "Worcester", "MA", "01610-2416")),
        ("426 San Pedro Street,Los Angeles, CA 90013", ("426 San Pedro Street", "", "Los Angeles", "CA", "90013")),
        ("PO Box 1234, Millville, NJ 08332", ("PO Box 1234", "", "Millville", "NJ", "08332")),
        ("1200 Walnut St, Apt 3B, Philadelphia, PA 19107", ("1200 Walnut St", "Apt 3B", "Philadelphia", "PA", "19107")),
        ("2700 N. Broad Street, Philadelphia PA 19132", ("2700 N. Broad Street", "", "Philadelphia", "PA", "19132")),
        (
            "100 Front Street, 5th Floor, Worcester, MA 01608",
            ("100 Front Street", "5th Floor", "Worcester", "MA", "01608"),
        ),
        (
            "425 Shrewsbury St Worcester, Massachusetts 01604",
            ("425 Shrewsbury St", "", "Worcester", "Massachusetts", "01604"),
        ),
        # rows of the Los Angeles County bed tool: the parser takes address numbers for ZIP codes, a room for a
        # state, an office for a city, and cannot place a suite; the last state and ZIP win, nothing is dropped
        (
            "10603, 10607, 10615, 10621 Downey Avenue,Downey, CA 90241",
            ("10603, 10607, 10615, 10621 Downey Avenue", "", "Downey", "CA", "90241"),
        ),
        (
            "2180 West Valley Boulevard, Outpatient Office, Meeting Room, Ground Floor,Pomona, CA 91768",
            ("2180 West Valley Boulevard", "Outpatient Office, Meeting Room, Ground Floor", "Pomona", "CA", "91768"),
        ),
        (
            "11902 Rosecrans Boulevard, Suites A and D,Norwalk, CA 90650",
            ("11902 Rosecrans Boulevard", "Suites A and D", "Norwalk", "CA", "90650"),
        ),
        ("123 Main St, Boston, MA 02139, USA", ("123 Main St", "", "Boston", "MA", "02139")),
    ],
)
def test_split_one_line(text: str, parts: tuple[str, ...]) -> None:
    got = split_one_line(text)
    assert (got.address_1, got.address_2, got.city, got.state, got.postal_code) == parts
    assert got.problem == ""


def test_an_address_without_street_or_zip() -> None:
    no_street = split_one_line(",Los Angeles, CA 90013")  # LA County's bed tool, confidential sites
    assert (no_street.address_1, no_street.city, no_street.state, no_street.postal_code, no_street.problem) == (
        "",
        "Los Angeles",
        "CA",
        "90013",
        "",
    )
    no_zip = split_one_line("12 Main St, Worcester MA")
    assert (no_zip.address_1, no_zip.state, no_zip.postal_code) == ("12 Main St", "MA", "")
    assert no_zip.problem == "no ZIP found in '12 Main St, Worcester MA'"
    assert split_one_line("  ").problem == "empty"


def test_a_one_line_address_fills_the_center_address() -> None:
    raw = {
        "source_id": "w1",
        "name": "Quinsigamond Recovery House",
        "address": "340 Main St Suite 200, Worcester, MA 01608",
    }
    result = normalize_record(raw, ctx())
    assert result.center is not None
    address = result.center.address
    assert (address.address_1, address.address_2, address.city, address.state, address.postal_code) == (
        "340 Main St",
        "Suite 200",
        "Worcester",
        "MA",
        "01608",
    )


# --------------------------------------------------------------------------------------------------
# JSON references


RECORD: dict[str, Any] = {
    "Facility Name": "Blue Ridge Behavioral Recovery",
    "address": {"zip-code": "24016", "zip": "24011"},
    "services": [
        {"f1": "Type of Care", "f2": "TC", "f3": "Residential"},
        {"f1": "Payment/Insurance/Funding Accepted", "f2": "PAY", "f3": "Medicaid"},
        {"f1": "Type of Care", "f2": "TC", "f3": "Detoxification"},
    ],
    "contacts": [{"kind": "hotline", "number": "(540) 555-0159"}, {"kind": "main", "number": "(540) 555-0150"}],
}


@pytest.mark.parametrize(
    ("ref", "found"),
    [
        ("services[?f2=='TC'].f3", ["Residential", "Detoxification"]),
        ("services[?f2=='PAY'].f3", ["Medicaid"]),
        ("contacts[?kind=='main'] | [0].number", "(540) 555-0150"),
        ("contacts[?kind=='hotline'] | [0].number", "(540) 555-0159"),
        ("contacts[?kind=='fax'] | [0].number", None),
        ("services[*].f2", ["TC", "PAY", "TC"]),
        ("contacts[1].number", "(540) 555-0150"),
        ("address.zip", "24011"),
        ("$.address.zip", "24011"),
        ("address.zip-code", "24016"),  # an older dotted path: JMESPath would need "address"."zip-code"
        ("Facility Name", "Blue Ridge Behavioral Recovery"),
        ("missing.key", None),
    ],
)
def test_expression(ref: str, found: Any) -> None:
    assert expression(ref)(RECORD) == found


@pytest.mark.parametrize("ref", ["services[?f2=='TC'", "a..b", "contacts[?kind==] | [0]"])
def test_a_bad_expression_is_a_parse_error_naming_it(ref: str) -> None:
    with pytest.raises(ParseError, match="is not a JMESPath expression") as info:
        expression(ref)
    assert repr(ref) in str(info.value)


def test_the_registry_names_the_feed_and_key_of_a_bad_jmespath() -> None:
    feed = one_feed("json", hotline_phone="contacts[?kind=='hotline'] | [0].number", payment="services[?f2=='PAY'")
    where = re.escape("feed 'md-codes'.mapping.fields.payment: reference ")
    with pytest.raises(ConfigError, match=f"^{where}.* is not a JMESPath expression"):
        registry.parse(feed)
    good = one_feed(
        "json",
        hotline_phone="contacts[?kind=='hotline'] | [0].number",
        levels_of_care="services[?f2=='TC'].f3",
        postal_code="address.zip-code",
    )
    [config] = registry.parse(good).feeds
    assert config.mapping.fields["hotline_phone"] == "contacts[?kind=='hotline'] | [0].number"


def test_a_csv_column_name_is_not_checked_as_jmespath() -> None:
    [feed] = registry.parse(one_feed(payment="Payment [primary]")).feeds
    assert feed.mapping.fields["payment"] == "Payment [primary]"


@pytest.mark.parametrize(
    ("status", "read"),
    [
        ("3 beds available, waitlist 5", ("waitlist", None, 5)),
        ("Limited (2)", ("limited", None, None)),
        ("Full - 12 on waitlist", ("waitlist", None, None)),
    ],
)
def test_a_count_in_a_status_that_is_not_read_is_reported(
    status: str, read: tuple[str, int | None, int | None]
) -> None:
    entry = {"level_of_care": "detox", "status": status}
    _, observations, report = normalize_all([{**BASE, "availability": [entry]}], ctx())
    assert [(o.status.value, o.beds_available, o.waitlist_size) for o in observations] == [read]
    assert [(p.field, p.reason) for p in report.field_problems] == [
        ("availability.0.status", f"a number in {status!r} was not read as a count; the status is kept")
    ]


def test_a_count_read_from_a_status_or_round_the_clock_words_are_no_problem() -> None:
    for status in ("Waitlist (3)", "2 beds", "Open 24/7", "Open 24 hours"):
        _, _, report = normalize_all([{**BASE, "availability": [{"level_of_care": "detox", "status": status}]}], ctx())
        assert not report.field_problems, status


def test_a_next_appointment_without_a_year_or_date_never_costs_the_level_its_figures() -> None:
    now = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    got = []
    for when in ("Dec 3 9:00 AM", "Jan 4 9:00 AM", "9:00 AM"):
        entry = {"level_of_care": "outpatient", "status": "Available", "next_appointment_at": when}
        context = FeedContext(feed_id="partner", now=now, timezone="America/New_York")
        _, observations, report = normalize_all([{**BASE, "availability": [entry]}], context)
        got.append(
            ([(o.status, o.next_appointment_at) for o in observations], [p.reason for p in report.field_problems])
        )
    available = AvailabilityStatus.AVAILABLE
    assert got == [
        ([(available, datetime(2026, 12, 3, 14, 0, tzinfo=UTC))], []),  # the such day nearest the run: past stays past
        ([(available, datetime(2027, 1, 4, 14, 0, tzinfo=UTC))], []),
        ([(available, None)], ["'9:00 AM' has no date: which day is not known; the level's other figures are kept"]),
    ]


def test_an_entry_giving_only_the_next_appointment_is_kept() -> None:
    # the earliest open intake appointment says something: it is kept (status unknown), not dropped as blank
    entry = {"level_of_care": "outpatient", "next_appointment_at": "2026-11-28T14:30:00Z"}
    _, observations, report = normalize_all([{**BASE, "availability": [entry]}], ctx())
    assert [(o.level_of_care, o.status, o.next_appointment_at) for o in observations] == [
        (LevelOfCare.OUTPATIENT, AvailabilityStatus.UNKNOWN, datetime(2026, 11, 28, 14, 30, tzinfo=UTC))
    ]
    assert not report.field_problems


def test_a_csv_row_with_more_filled_cells_than_the_header_is_rejected_naming_its_line() -> None:
    # an unquoted comma shifts every value after it: "Residential" would sit under no column, a phone under
    # another's name; a row cut short (trailing empty cells left out) reads its missing cells as empty
    mapping = RecordMapping(
        fields={"source_id": "id", "name": "name", "address": "address", "phone": "phone", "levels_of_care": "services"}
    )
    body = (
        b"id,name,address,phone,services\n"
        b'1,Clinic A,"1 Main St, Los Angeles, CA 90013",213-626-6411,Detox,Residential\n'
        b'2,Clinic B,"2 Main St, Los Angeles, CA 90013"\n'
        b'3,Clinic C,"3 Main St, Los Angeles, CA 90013",213-626-6412,Detox,\n'
    )
    centers, _, report = normalize_all(csv_feed.rows([Document("http://127.0.0.1/a.csv", body)], mapping), ctx())
    assert [c.source_id for c in centers] == ["2", "3"]
    assert [(r.record, r.field, r.reason) for r in report.rejections] == [
        (
            "1",
            "record",
            "line 2 has 1 more filled cell than the header has columns (an unquoted comma?): its values may sit "
            "under the wrong columns; not read",
        )
    ]


def test_a_csv_whose_rows_all_run_past_the_header_has_an_unnamed_column_not_shifted_rows() -> None:
    mapping = RecordMapping(fields={"source_id": "id", "name": "name", "address": "address"})
    body = b'id,name,address\n1,A,"1 Main St, Los Angeles, CA 90013",x\n2,B,"2 Main St, Los Angeles, CA 90013",y\n'
    centers, _, report = normalize_all(csv_feed.rows([Document("http://127.0.0.1/a.csv", body)], mapping), ctx())
    assert [c.source_id for c in centers] == ["1", "2"]
    assert not report.rejections


def test_a_csv_header_repeating_a_mapped_column_is_an_error_naming_it() -> None:
    mapping = RecordMapping(fields={"source_id": "id", "name": "name", "phone": "Phone"})
    with pytest.raises(ParseError, match=r"^CSV header repeats 'Phone': which column the mapping means"):
        csv_feed.parse_one(b"id,name,Phone,Phone\n1,A,617-555-0142,617-555-0143\n", mapping)
    assert csv_feed.parse_one(b"id,name,Phone,Notes,Notes\n1,A,617-555-0142,x,y\n", mapping)  # not mapped: no matter


# --------------------------------------------------------------------------------------------------
# Times ahead of our clock


def test_a_time_a_few_minutes_ahead_is_read_as_now() -> None:
    assert timestamp("11/27/2026 10:03 AM", "America/New_York", now=NOW) == NOW
    assert timestamp("2026-11-27T15:07:00Z", now=NOW) == NOW
    assert timestamp(NOW + timedelta(minutes=10), now=NOW) == NOW  # the limit itself is still skew


def test_a_time_more_than_ten_minutes_ahead_is_a_reason() -> None:
    with pytest.raises(InvalidValue, match="is in the future"):
        timestamp(NOW + timedelta(minutes=10, seconds=1), now=NOW)
    with pytest.raises(InvalidValue, match=r"^reported_at: 2026-11-27T17:00:00\+00:00 is in the future$"):
        timestamp("11/27/2026 12:00 PM", "America/New_York", now=NOW)


def test_past_times_and_times_without_now_are_unchanged() -> None:
    assert timestamp("11/27/2026 9:40 AM", "America/New_York", now=NOW) == datetime(2026, 11, 27, 14, 40, tzinfo=UTC)
    assert timestamp("11/27/2026 12:00 PM", "America/New_York") == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


def test_an_observation_from_the_future_is_dropped_and_the_center_kept() -> None:
    raw = {
        **BASE,
        "reported_at": "11/27/2026 12:00 PM",
        "availability": [{"level_of_care": "residential", "beds_available": "3"}],
    }
    result = normalize_record(raw, ctx(timezone="America/New_York"))
    assert result.center is not None
    assert result.availability == []
    assert [(p.field, p.reason) for p in result.problems] == [
        ("availability.0.reported_at", "2026-11-27T17:00:00+00:00 is in the future")
    ]


# --------------------------------------------------------------------------------------------------
# Repeated ids, ZIP repairs


def test_the_newest_of_repeated_reports_wins_whatever_the_order() -> None:
    def row(beds: str, at: str) -> dict[str, Any]:
        return {**BASE, "availability": [{"level_of_care": "detox", "beds_available": beds, "reported_at": at}]}

    raws = [row("5", "2026-11-27T12:05:00Z"), row("1", "2026-11-27T14:20:00Z"), row("3", "2026-11-27T13:10:00Z")]
    centers, observations, report = normalize_all(raws, ctx())
    assert len(centers) == 1
    assert [(o.beds_available, o.reported_at) for o in observations] == [
        (1, datetime(2026, 11, 27, 14, 20, tzinfo=UTC))
    ]
    assert [(r.record, r.field, r.reason) for r in report.rejections] == [("MD-2101", "source_id", REPEATED)] * 2
    assert (report.records, report.accepted, report.rejected, report.repeated) == (3, 1, 2, 2)


def test_repeats_with_reports_as_new_keep_the_row_that_says_more_whatever_the_order() -> None:
    # a list view repeating a detail view, neither with a newer report: the detail is kept, in either order
    detail = {**BASE, "website": "https://patapsco.example.org", "phone": "410-555-0142"}
    for raws in ([detail, BASE], [BASE, detail]):
        centers, _, report = normalize_all(raws, ctx())
        assert [(c.website, [p.number for p in c.phones]) for c in centers] == [
            ("https://patapsco.example.org", ["+14105550142"])
        ]
        assert [(r.record, r.field, r.reason) for r in report.rejections] == [("MD-2101", "source_id", REPEATED)]
        assert (report.records, report.accepted, report.repeated) == (2, 1, 1)


def test_repeats_saying_as_much_keep_the_same_row_in_any_order() -> None:
    # the same place geocoded twice (as in the SAMHSA list): which is kept must not follow the export's order
    one = {**BASE, "latitude": "39.2904", "longitude": "-76.6122"}
    two = {**BASE, "latitude": "39.2911", "longitude": "-76.6105"}
    kept = {
        (centers[0].latitude, centers[0].longitude)
        for raws in ([one, two], [two, one])
        for centers, _, _ in [normalize_all(raws, ctx())]
    }
    assert len(kept) == 1


def test_a_zip_plus_4_that_lost_its_leading_zero_is_repaired_and_counted() -> None:
    raw = {
        "source_id": "nj-millville",
        "name": "Holly City Recovery Intake",
        "address_1": "401 N High St",
        "city": "Millville",
        "state": "NJ",
        "postal_code": "8332-3762",
    }
    centers, _, report = normalize_all([raw], ctx())
    assert centers[0].address.postal_code == "08332"
    assert report.repairs == {"ZIP leading zero restored": 1}


def manifest(*names: str) -> Document:
    base = "https://scheduling.partner.example.org/bulk/2026-11-27/"
    kinds = {"locations": "Location", "schedules": "Schedule", "slots": "Slot"}
    outputs = ",".join(f'{{"type": "{kinds[n.split("-")[0]]}", "url": "{base}{n}"}}' for n in names)
    body = f'{{"transactionTime": "2026-11-27T14:45:00Z", "output": [{outputs}]}}'
    return Document(url="http://127.0.0.1/smart/bulk-publish.json", body=body.encode())


def test_smart_per_state_files_are_judged_by_their_names_and_rebased() -> None:
    doc = manifest(
        "locations-MA.ndjson",
        "locations-NJ.ndjson",
        "schedules-MA.ndjson",
        "schedules-NJ.ndjson",
        "slots-MA.ndjson",
        "slots-NJ.ndjson",
        "slots-2026-W48.ndjson",
    )
    urls = follow(doc, RecordMapping(options={"states": ["NJ"], "rebase": True}))
    assert urls == [
        "http://127.0.0.1/smart/locations-NJ.ndjson",
        "http://127.0.0.1/smart/schedules-NJ.ndjson",
        "http://127.0.0.1/smart/slots-NJ.ndjson",
        "http://127.0.0.1/smart/slots-2026-W48.ndjson",
    ]


# --------------------------------------------------------------------------------------------------
# Defects found while writing these tests, and fixed


def test_a_frozenset_of_null_words_is_compared_without_case() -> None:
    result = normalize_record(
        {**BASE, "alternate_name": "Not reported"}, ctx(null_values=frozenset({"NA", "Not reported"}))
    )
    assert result.center is not None
    assert result.center.alternate_name == ""


def test_a_split_on_slash_still_splits_on_semicolons() -> None:
    mapping = RecordMapping(fields={"levels_of_care": "Services"}, splits={"levels_of_care": ("/",)})
    raw = {**BASE, **apply({"Services": "DT; RES"}.__getitem__, mapping)}
    result = normalize_record(raw, ctx())
    assert result.center is not None
    assert set(result.center.services.levels_of_care) == {LevelOfCare.DETOX, LevelOfCare.RESIDENTIAL}


def test_a_null_word_holding_the_separator_is_still_null() -> None:
    mapping = RecordMapping(
        fields={"phone": "Phone", "payment": "Payment"}, splits={"phone": ("/",), "payment": ("/",)}
    )
    raw = {**BASE, **apply({"Phone": "N/A", "Payment": "N/A"}.__getitem__, mapping)}
    result = normalize_record(raw, ctx())
    assert result.problems == []  # not "not a phone number ('N')", "not a phone number ('A')"
    assert result.unmapped == {}  # not {"payment": ("N", "A")}


@pytest.mark.parametrize(
    "cell",
    ["410-555-0100 (main) 410-555-0101 (fax)", "P: 410-555-0100 F: 410-555-0101", "Tel 410-555-0100 Fx 410-555-0101"],
)
def test_a_fax_labelled_after_or_abbreviated_is_dropped(cell: str) -> None:
    numbers, problems = phone_numbers(cell)
    assert numbers == [("+14105550100", PhoneRole.MAIN)]
    assert len(problems) == 1


def test_a_zip_plus_4_without_dash_or_leading_zero_is_repaired() -> None:
    raw = {**BASE, "city": "Millville", "state": "NJ", "postal_code": "83323762"}
    result = normalize_record(raw, ctx())
    assert result.center is not None
    assert result.center.address.postal_code == "08332"


def test_a_replaced_repeat_leaves_no_field_problems() -> None:
    older = {
        **BASE,
        "phone": "Main 410-555-0139 / Fax 410-555-0140",
        "availability": [{"level_of_care": "detox", "beds_available": "5", "reported_at": "2026-11-27T12:00:00Z"}],
    }
    newer = {
        **BASE,
        "phone": "410-555-0139",
        "availability": [{"level_of_care": "detox", "beds_available": "1", "reported_at": "2026-11-27T14:00:00Z"}],
    }
    _, observations, report = normalize_all([older, newer], ctx())
    assert [o.beds_available for o in observations] == [1]
    assert report.field_problems == []


def test_a_file_name_word_is_not_a_state_code() -> None:
    doc = manifest("locations-la-county.ndjson", "slots-la-county.ndjson")
    urls = follow(doc, RecordMapping(options={"states": ["CA"]}))
    assert len(urls) == 2  # not both dropped, silently, as Louisiana files


def test_a_number_joined_by_or_shares_the_role_before_it_and_a_tty_line_is_dropped() -> None:
    assert phone_numbers("Intake 410-555-0100 or 410-555-0101") == (
        [("+14105550100", PhoneRole.INTAKE), ("+14105550101", PhoneRole.INTAKE)],
        [],
    )
    numbers, problems = phone_numbers("410-555-0100 TTY 410-555-0109")
    assert numbers == [("+14105550100", PhoneRole.MAIN)]
    assert [p.reason for p in problems] == ["TTY number '410-555-0109' dropped"]  # type: ignore[attr-defined]


def test_an_extension_is_kept_with_its_number() -> None:
    [phone], problems = read_phones("Intake: 443-555-0150 ext. 12")
    assert (phone.number, phone.role, phone.extension, problems) == ("+14435550150", PhoneRole.INTAKE, "12", [])
