"""Normalization of partner values: each returns a clean value or names the field and the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import InvalidValue
from aggregator.model import AvailabilityStatus, GeoPrecision, LevelOfCare, Payment, PhoneRole
from aggregator.normalize import (
    FeedContext,
    coordinates,
    count,
    normalize_record,
    phone_e164,
    state_code,
    timestamp,
    zip5,
)

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ phones


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(213) 626-6411", "+12136266411"),
        ("213.626.6411", "+12136266411"),
        ("1-213-626-6411", "+12136266411"),
        ("+1 213 626 6411", "+12136266411"),
        (2136266411, "+12136266411"),
        ("(800) 662-4357", "+18006624357"),
    ],
)
def test_phone_becomes_e164(raw: object, expected: str) -> None:
    assert phone_e164(raw) == expected


@pytest.mark.parametrize("raw", ["000-000-0000", "123", "555-5555-55555-5", "call us", "", "(213) 000-1234"])
def test_impossible_phone_is_a_reason_not_a_crash(raw: str) -> None:
    with pytest.raises(InvalidValue) as err:
        phone_e164(raw, "intake_phone")
    assert err.value.field == "intake_phone"
    assert err.value.reason


# ------------------------------------------------------------------------------------ states, ZIPs


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MA", "MA"),
        ("ma", "MA"),
        ("Massachusetts", "MA"),
        ("Mass.", "MA"),
        (" new  york ", "NY"),
        ("Puerto Rico", "PR"),
        ("GU", "GU"),
        ("District of Columbia", "DC"),
    ],
)
def test_state_becomes_two_letters(raw: str, expected: str) -> None:
    assert state_code(raw) == expected


@pytest.mark.parametrize("raw", ["XX", "Atlantis", "", "M"])
def test_unknown_state_is_named(raw: str) -> None:
    with pytest.raises(InvalidValue, match="state"):
        state_code(raw)


@pytest.mark.parametrize(
    ("raw", "state", "expected"),
    [
        ("8332", "NJ", "08332"),  # a spreadsheet dropped the leading zero
        (8332, "NJ", "08332"),
        (8332.0, "NJ", "08332"),
        ("501", "NY", "00501"),
        ("02139-4307", "MA", "02139"),
        ("021394307", "MA", "02139"),
        ("90013", "CA", "90013"),
        ("00901", "PR", "00901"),
    ],
)
def test_zip_is_a_five_digit_string(raw: object, state: str, expected: str) -> None:
    assert zip5(raw, state) == expected


@pytest.mark.parametrize(
    ("raw", "state", "reason"),
    [
        ("ABCDE", "MA", "not a ZIP"),
        ("00000", None, "00000"),
        ("1234567", "MA", "ZIP 00123 does not exist"),  # read as a 3-digit ZIP with its +4
        ("99999", "MA", "does not exist"),
        ("90013", "MA", "is in CA, not MA"),
    ],
)
def test_bad_zip_is_a_reason(raw: str, state: str | None, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        zip5(raw, state)


# -------------------------------------------------------------------------------------- timestamps


def test_naive_partner_time_is_read_in_the_feeds_zone() -> None:
    # Los Angeles County's bed tool writes local time; August is PDT (UTC-7)
    t = timestamp("Last Updated: 8/13/2025 8:42:02 AM", "America/Los_Angeles")
    assert t == datetime(2025, 8, 13, 15, 42, 2, tzinfo=UTC)


def test_winter_local_time_uses_standard_offset() -> None:
    assert timestamp("1/15/2025 8:00 AM", "America/New_York") == datetime(2025, 1, 15, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected_hour"),
    [
        ("2025-08-13 08:42 EDT", 12),
        ("2025-08-13 08:42 EST", 13),
        ("2025-08-13 08:42 PDT", 15),
        ("8/13/2025 8:42 AM ET", 12),
        ("8/13/2025 8:42 AM PT", 15),
        ("2025-08-13T08:42:00-05:00", 13),
        ("2025-08-13T12:42:00Z", 12),
    ],
)
def test_zone_abbreviations_are_honoured(raw: str, expected_hour: int) -> None:
    t = timestamp(raw, "UTC")
    assert t.tzinfo is UTC
    assert (t.date().isoformat(), t.hour, t.minute) == ("2025-08-13", expected_hour, 42)


def test_epoch_seconds_and_milliseconds() -> None:
    assert timestamp(1755088922) == timestamp(1755088922000) == datetime(2025, 8, 13, 12, 42, 2, tzinfo=UTC)


def test_future_and_ancient_times_are_reasons() -> None:
    with pytest.raises(InvalidValue, match="future"):
        timestamp((NOW + timedelta(hours=2)).isoformat(), now=NOW)
    with pytest.raises(InvalidValue, match="before 2000"):
        timestamp("1/1/1970")
    with pytest.raises(InvalidValue, match="not a time"):
        timestamp("yesterday-ish")
    with pytest.raises(InvalidValue, match="time zone"):
        timestamp("2025-01-01 10:00", "Mars/Olympus")


# ------------------------------------------------------------------------------------- coordinates


def test_plausible_coordinates_pass() -> None:
    assert coordinates("42.3601", "-71.0942", "MA") == coordinates(42.3601, -71.0942, "MA")
    assert coordinates(42.3601, -71.0942, "MA").fixed == ""


def test_swapped_coordinates_are_fixed_and_named() -> None:
    c = coordinates(-71.0942, 42.3601, "MA")
    assert (c.latitude, c.longitude) == (42.3601, -71.0942)
    assert "swapped" in c.fixed


def test_missing_longitude_sign_is_fixed_and_named() -> None:
    c = coordinates(34.05, 118.24, "CA")
    assert (c.latitude, c.longitude) == (34.05, -118.24)
    assert "sign" in c.fixed


@pytest.mark.parametrize(
    ("lat", "lon", "state"),
    [
        (61.2176, -149.8631, "AK"),
        (52.9, 173.2, "AK"),
        (21.3069, -157.8583, "HI"),
        (18.4655, -66.1057, "PR"),
        (13.4443, 144.7937, "GU"),
        (-14.2756, -170.702, "AS"),
        (18.3419, -64.9307, "VI"),
        (24.5551, -81.78, "FL"),
    ],
)
def test_states_and_territories_beyond_the_contiguous_us(lat: float, lon: float, state: str) -> None:
    c = coordinates(lat, lon, state)
    assert (c.latitude, c.longitude, c.fixed) == (lat, lon, "")


@pytest.mark.parametrize(
    ("lat", "lon", "state", "reason"),
    [
        (0, 0, "MA", "placeholder"),
        (51.5, -0.12, "MA", "outside the United States"),
        (40.71, -74.0, "CA", "not in CA"),
        (95, -71, "MA", "outside -90..90"),
        ("nan", -71, "MA", "finite"),
        ("north", -71, "MA", "not a number"),
    ],
)
def test_implausible_coordinates_are_rejected_with_reason(lat: object, lon: object, state: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        coordinates(lat, lon, state)


# ------------------------------------------------------------------------------------------ counts


@pytest.mark.parametrize(
    ("raw", "expected"), [("3", 3), (3, 3), ("3.0", 3), ("2 beds", 2), ("", None), ("N/A", None), (None, None), (0, 0)]
)
def test_counts(raw: object, expected: int | None) -> None:
    assert count(raw, "beds_available") == expected


@pytest.mark.parametrize("raw", ["-5", -1, "three", 2.5, True, "1e9"])
def test_bad_counts_name_the_field(raw: object) -> None:
    with pytest.raises(InvalidValue) as err:
        count(raw, "beds_total")
    assert err.value.field == "beds_total"


# ---------------------------------------------------------------------------------------- records


def ctx(**kw: object) -> FeedContext:
    base: dict[str, object] = {
        "feed_id": "ma-beds",
        "now": NOW,
        "timezone": "America/New_York",
        "freshness_seconds": 900,
    }
    base.update(kw)
    return FeedContext(**base)  # type: ignore[arg-type]


def good_raw(**kw: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "source_id": "A-1",
        "name": "Harbor House",
        "address_1": "1 Main St",
        "city": "Boston",
        "state": "Massachusetts",
        "postal_code": "2118",
        "latitude": "42.34",
        "longitude": "-71.07",
        "phone": "(617) 555-0100",
        "intake_phone": "617-555-0199 ",
        "levels_of_care": "DT; RES",
        "payment": ["Medi-Cal", "Sliding fee"],
        "populations": "ADLT, FEM",
        "languages": "EnglishSpanish",
        "availability": [
            {
                "level_of_care": "Withdrawal Management",
                "beds_available": "3",
                "beds_total": "12",
                "reported_at": "11/27/2026 9:45 AM",
            },
            {"level_of_care": "RES", "status": "Waitlist (4)"},
        ],
    }
    raw.update(kw)
    return raw


def test_a_good_record_becomes_a_center_and_observations() -> None:
    result = normalize_record(good_raw(), ctx())
    assert result.problems == []
    c = result.center
    assert c is not None
    assert c.id == "ma-beds:A-1"
    assert (c.address.state, c.address.postal_code) == ("MA", "02118")
    assert c.geo_precision is GeoPrecision.FEED
    assert [(p.number, p.role) for p in c.phones] == [
        ("+16175550100", PhoneRole.MAIN),
        ("+16175550199", PhoneRole.INTAKE),
    ]
    assert set(c.services.levels_of_care) == {LevelOfCare.DETOX, LevelOfCare.RESIDENTIAL}
    assert set(c.services.payment) == {Payment.MEDICAID, Payment.SLIDING_SCALE}
    assert c.services.languages == ("en", "es")
    by_level = {a.level_of_care: a for a in result.availability}
    detox = by_level[LevelOfCare.DETOX]
    assert (detox.status, detox.beds_available, detox.beds_total) == (AvailabilityStatus.AVAILABLE, 3, 12)
    assert detox.reported_at == datetime(2026, 11, 27, 14, 45, tzinfo=UTC)
    assert detox.freshness_seconds == 900
    res = by_level[LevelOfCare.RESIDENTIAL]
    assert (res.status, res.waitlist_size) == (AvailabilityStatus.WAITLIST, 4)
    assert res.reported_at == NOW  # no partner time: the time we checked


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source_id": ""}, "source_id"),
        ({"name": "  "}, "name"),
        ({"state": "Atlantis"}, "state"),
        ({"postal_code": "99999", "latitude": None, "longitude": None}, "postal_code"),
        ({"postal_code": "10001", "latitude": None, "longitude": None}, "postal_code"),
    ],
)
def test_a_record_that_cannot_be_placed_or_named_is_rejected_naming_the_field(
    change: dict[str, object], field: str
) -> None:
    result = normalize_record(good_raw(**change), ctx())
    assert result.rejected
    assert [p.field for p in result.problems] == [field]


def test_bad_fields_are_dropped_with_reasons_and_the_record_kept() -> None:
    raw = good_raw(
        phone="000-000-0000",
        latitude="40.7",
        longitude="-74.0",
        availability=[
            {"level_of_care": "DT", "beds_available": "-5"},
            {"level_of_care": "DT", "beds_available": "4", "beds_total": "2"},
            {"level_of_care": "teleportation", "beds_available": "1"},
            {"level_of_care": "RES", "status": "FULL", "beds_available": "3"},
            {"level_of_care": "OP", "status": "Open", "reported_at": "2027-05-01"},
        ],
    )
    result = normalize_record(raw, ctx())
    assert result.center is not None
    assert result.center.latitude is None  # New York coordinates on a Boston record: geocode instead
    fields = {p.field: p.reason for p in result.problems}
    assert "impossible" in fields["phone"] or "valid" in fields["phone"]
    assert "not in MA" in fields["latitude"]
    assert "negative" in fields["availability.0.beds_available"]
    assert "exceeds" in fields["availability.1.beds_available"]
    assert "teleportation" in fields["availability.2.level_of_care"]
    assert "contradicts" in fields["availability.3.status"]
    assert "future" in fields["availability.4.reported_at"]
    assert result.availability == []


def test_two_reports_for_one_level_are_summed() -> None:
    raw = good_raw(
        availability=[
            {"level_of_care": "RS(3.1)", "beds_available": 2, "notes": "men"},
            {"level_of_care": "RS(3.5)", "beds_available": 0, "notes": "women"},
        ]
    )
    [obs] = normalize_record(raw, ctx()).availability
    assert (obs.level_of_care, obs.beds_available) == (LevelOfCare.RESIDENTIAL, 2)
    assert obs.status is AvailabilityStatus.LIMITED
    assert obs.notes == "men; women"


def test_zero_beds_read_as_full_and_few_as_limited() -> None:
    def status(beds: int) -> AvailabilityStatus:
        raw = good_raw(availability=[{"level_of_care": "DT", "beds_available": beds}])
        return normalize_record(raw, ctx()).availability[0].status

    assert [status(b) for b in (0, 1, 2, 3)] == [
        AvailabilityStatus.FULL,
        AvailabilityStatus.LIMITED,
        AvailabilityStatus.LIMITED,
        AvailabilityStatus.AVAILABLE,
    ]


def test_not_accepting_is_never_shown_as_open() -> None:
    raw = good_raw(availability=[{"level_of_care": "OP", "status": "Open", "accepting": "no"}])
    assert normalize_record(raw, ctx()).availability[0].status is AvailabilityStatus.FULL


def test_an_old_report_is_rejected_when_the_feed_sets_a_maximum_age() -> None:
    raw = good_raw(
        availability=[
            {"level_of_care": "DT", "beds_available": 1, "reported_at": "Last Updated: 11/20/2019 9:09:33 AM"}
        ]
    )
    result = normalize_record(raw, ctx(max_report_age_seconds=30 * 86400))
    assert result.availability == []
    assert "7.0 years" in result.problems[0].reason


def test_swapped_coordinates_are_repaired_and_reported() -> None:
    result = normalize_record(good_raw(latitude="-71.07", longitude="42.34"), ctx())
    assert result.center is not None
    assert (result.center.latitude, result.center.longitude) == (42.34, -71.07)
    assert result.repairs == ["latitude and longitude were swapped", "ZIP leading zero restored"]


def test_unmapped_terms_are_reported() -> None:
    result = normalize_record(good_raw(levels_of_care="DT; DUI", languages="English, Klingon"), ctx())
    assert result.unmapped == {"levels_of_care": ("DUI",), "languages": ("Klingon",)}


def test_feed_value_maps_override_the_built_in_ones() -> None:
    result = normalize_record(
        good_raw(levels_of_care="Program 7"), ctx(value_maps={"levels_of_care": {"program 7": ["otp"]}})
    )
    assert result.center is not None
    assert LevelOfCare.OTP in result.center.services.levels_of_care


# ------------------------------------------------------------------------- properties: never crash

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=60),
    st.from_regex(r"\(?\d{3}\)?[ .-]?\d{3}-\d{4}", fullmatch=True),
    st.from_regex(r"\d{3,10}(-\d{4})?", fullmatch=True),
)


def value_or_reason(fn: object, *args: object) -> None:
    try:
        fn(*args)  # type: ignore[operator]
    except InvalidValue as exc:
        assert exc.field
        assert exc.reason


@settings(max_examples=300, deadline=None)
@given(anything)
def test_phone_normalizer_gives_a_value_or_a_reason(raw: object) -> None:
    try:
        out = phone_e164(raw)
    except InvalidValue as exc:
        assert exc.field == "phone"
        assert exc.reason
    else:
        assert out.startswith("+")
        assert out[1:].isdigit()


@settings(max_examples=300, deadline=None)
@given(anything, st.sampled_from([None, "MA", "NJ", "CA", "PR"]))
def test_zip_normalizer_gives_a_value_or_a_reason(raw: object, state: str | None) -> None:
    try:
        out = zip5(raw, state)
    except InvalidValue as exc:
        assert exc.field == "postal_code"
        assert exc.reason
    else:
        assert len(out) == 5
        assert out.isdigit()


US_DATES = st.from_regex(r"\d{1,2}/\d{1,2}/\d{2,4}( \d{1,2}:\d\d ?[AP]M)?( [A-Z]{2,4})?", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(anything, st.datetimes(), US_DATES),
    st.sampled_from(["UTC", "America/New_York", "America/Los_Angeles", "Pacific/Honolulu"]),
)
def test_timestamp_normalizer_gives_aware_utc_or_a_reason(raw: object, tz: str) -> None:
    try:
        out = timestamp(raw, tz, now=NOW)
    except InvalidValue as exc:
        assert exc.field == "reported_at"
        assert exc.reason
    else:
        assert out.tzinfo is UTC


@settings(max_examples=300, deadline=None)
@given(anything, anything, st.sampled_from([None, "MA", "AK", "HI", "CA", "XX"]))
def test_coordinates_check_gives_a_point_in_the_us_or_a_reason(lat: object, lon: object, state: str | None) -> None:
    from aggregator.geography import in_us

    try:
        c = coordinates(lat, lon, state)
    except InvalidValue as exc:
        assert exc.field in ("latitude", "longitude")
        assert exc.reason
    else:
        assert in_us(c.latitude, c.longitude)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), anything)
def test_state_and_count_normalizers_give_a_value_or_a_reason(text: str, raw: object) -> None:
    value_or_reason(state_code, text)
    value_or_reason(count, raw, "beds_available")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "source_id",
                "name",
                "state",
                "postal_code",
                "latitude",
                "longitude",
                "phone",
                "levels_of_care",
                "payment",
                "status",
                "availability",
                "reported_at",
                "website",
            ]
        ),
        st.one_of(
            anything,
            st.lists(
                st.one_of(
                    anything,
                    st.dictionaries(
                        st.sampled_from(
                            ["level_of_care", "status", "beds_available", "beds_total", "accepting", "reported_at"]
                        ),
                        anything,
                        max_size=4,
                    ),
                ),
                max_size=3,
            ),
        ),
        max_size=13,
    )
)
def test_normalize_record_never_raises(raw: dict[str, object]) -> None:
    result = normalize_record(raw, ctx())
    assert result.center is not None or result.problems


# ------------------------------------------------------------------- nothing cut or lost without a word


def test_an_id_longer_than_64_characters_is_rejected_never_cut() -> None:
    result = normalize_record(good_raw(source_id="A" * 64 + "-south"), ctx())
    assert result.rejected
    assert [(p.field, p.reason) for p in result.problems] == [("source_id", "id is 70 characters; the limit is 64")]
    assert result.source_id == "A" * 64 + "-south"  # named in full in the report
    assert not normalize_record(good_raw(source_id="A" * 64), ctx()).rejected  # 64 is still an id


def test_a_long_name_is_kept_cut_and_the_cut_reported() -> None:
    result = normalize_record(good_raw(name="H" * 400, alternate_name="a" * 301, city="B" * 120), ctx())
    assert result.center is not None
    assert result.center.name == "H" * 300 and result.center.alternate_name == "a" * 300
    assert result.center.address.city == "B" * 100
    fields = {p.field: p.reason for p in result.problems}
    assert fields["name"] == "name was 400 characters; kept the first 300"
    assert fields["alternate_name"] == "alternate_name was 301 characters; kept the first 300"
    assert fields["city"] == "city was 120 characters; kept the first 100"


def test_a_link_or_external_id_too_long_is_dropped_with_a_reason_never_cut() -> None:
    long_url = "https://example.org/" + "p" * 600
    result = normalize_record(
        good_raw(
            website=long_url,
            external_ids=[{"system": "npi", "value": "9" * 201}, {"system": "samhsa", "value": "SAM-1"}],
        ),
        ctx(),
    )
    assert result.center is not None
    assert result.center.website == ""
    assert [(e.system, e.value) for e in result.center.external_ids] == [("samhsa", "SAM-1")]
    fields = {p.field: p.reason for p in result.problems}
    assert fields["website"] == "website is 620 characters; the limit is 500; dropped"
    assert fields["external_ids.0.value"] == "external id is 201 characters; the limit is 200; dropped"


def test_long_notes_are_cut_with_a_word() -> None:
    raw = good_raw(
        availability=[
            {"level_of_care": "DT", "beds_available": 2, "notes": "n" * 300},
            {"level_of_care": "DT", "beds_available": 1, "notes": "m" * 300},
        ]
    )
    result = normalize_record(raw, ctx())
    [obs] = result.availability
    assert len(obs.notes) == 500
    assert [(p.field, p.reason) for p in result.problems] == [
        ("availability.detox.notes", "notes was 602 characters; kept the first 500")
    ]


@pytest.mark.parametrize("beds", [-3, "1e9", True, 2.5, "lots"])
def test_a_level_whose_figures_are_rejected_is_named_for_keeping(beds: object) -> None:
    raw = good_raw(
        availability=[{"level_of_care": "DT", "beds_available": beds}, {"level_of_care": "RES", "beds_available": 4}]
    )
    result = normalize_record(raw, ctx())
    assert [o.level_of_care for o in result.availability] == [LevelOfCare.RESIDENTIAL]
    assert result.rejected_levels == {LevelOfCare.DETOX}
    assert [p.field for p in result.problems] == ["availability.0.beds_available"]


def test_a_report_older_than_the_feed_keeps_is_not_kept() -> None:
    raw = good_raw(
        availability=[
            {"level_of_care": "DT", "beds_available": 1, "reported_at": "Last Updated: 11/20/2019 9:09:33 AM"},
            {"level_of_care": "RES", "beds_available": "many"},
        ]
    )
    result = normalize_record(raw, ctx(max_report_age_seconds=30 * 86400))
    assert result.availability == []
    # the partner stopped reporting detox (its count goes); residential's figure was unreadable (kept)
    assert result.rejected_levels == {LevelOfCare.RESIDENTIAL}


_FORMATS = (
    "{a}-{e}-{n}",
    "({a}) {e}-{n}",
    "{a}.{e}.{n}",
    "+1 {a} {e} {n}",
    "1-{a}-{e}-{n}",
    "{a}{e}{n}",
    "+1{a}{e}{n}",
)


@given(
    area=st.integers(200, 999), exchange=st.integers(200, 999), line=st.integers(0, 9999), fmt=st.sampled_from(_FORMATS)
)
def test_a_plain_one_number_cell_reads_as_the_matcher_reads_it(area: int, exchange: int, line: int, fmt: str) -> None:
    """The shortcut for a cell of one plain number agrees with phonenumbers' matcher, valid or not."""
    import phonenumbers

    cell = fmt.format(a=area, e=exchange, n=f"{line:04d}")
    found = [
        phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
        for m in phonenumbers.PhoneNumberMatcher(cell, "US")
    ]
    from aggregator.normalize import phone_numbers

    phones, problems = phone_numbers(cell)
    if found:
        assert [p.number for p in phones] == found and not problems
    else:
        assert not phones and problems


# --- fast paths: each answers exactly as the full computation it skips


_CELL_TEXT = st.text(
    alphabet=st.sampled_from([*"aAnN/ -x1", " ", "\xa0", "\t", "\n", "\u2003", "\u200b", "\x1f", "İ", "ß"]), max_size=12
)


@given(_CELL_TEXT | st.sampled_from(["N/A", " n/a ", "NONE", "Not  Applicable", "n\xa0a", "-", "", "TBD "]))
@settings(max_examples=400)
def test_text_and_null_fast_paths_agree_with_folding(value: str) -> None:
    from aggregator.feeds.mapping import DEFAULT_NULL_VALUES
    from aggregator.normalize import _is_null, _null_set, _text, without_nulls

    assert _text(value) == " ".join(value.replace("\xa0", " ").split())
    for words in (DEFAULT_NULL_VALUES, ("n a", "x"), ("unknown", "not applicable")):
        nulls = _null_set(words)
        assert _is_null(value, nulls) == (" ".join(value.lower().split()) in nulls), (value, words)
        kept = without_nulls({"cell": value, "list": [value, "x"], "entries": [{"cell": value}]}, nulls)
        assert ("cell" in kept) == (value in kept["list"]) == ("cell" in kept["entries"][0]) != _is_null(value, nulls)


def test_plain_us_number_fast_path_agrees_with_phonenumbers() -> None:
    """A lone number is checked for the US first, then every region of +1 (the territories): the same verdict and
    E.164 form as phonenumbers' own is_valid_number and format_number."""
    import phonenumbers

    from aggregator.normalize import phone_numbers

    for text in ("617-555-0100", "(787) 555-0199", "671 555 0100", "212-555-0100", "800-662-4357", "311-555-0100"):
        found, problems = phone_numbers(text)
        number = phonenumbers.PhoneNumber(country_code=1, national_number=int("".join(filter(str.isdigit, text))))
        if phonenumbers.is_valid_number(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            assert ([p.number for p in found], problems) == ([e164], []), text
        else:
            assert (found, bool(problems)) == ([], True), text


def test_rows_of_one_feed_with_the_same_service_cells_map_alike_and_each_reports_what_it_lost() -> None:
    """A run remembers what a row's service cells and a level's name mapped to (``FeedContext.memo``): every row
    carrying them gets the same services and its own report of the terms nothing maps; another feed's value maps
    (another context) are not taken from it; a list in a cell (JSON feeds) is mapped each time."""
    feed = ctx(value_maps={"payment": {"zumba": ["free"]}})
    cells = {"levels_of_care": "DT; RES", "payment": "Medicaid; Zumba; Barter", "languages": "EnglishSpanish"}
    first, second = (normalize_record(good_raw(source_id=s, **cells), feed) for s in ("A-1", "A-2"))
    assert first.center is not None and second.center is not None
    assert first.center.services == second.center.services
    assert set(first.center.services.payment) == {Payment.MEDICAID, Payment.FREE}
    assert first.unmapped == second.unmapped == {"payment": ("Barter",)}
    assert first.unmapped is not second.unmapped
    other = normalize_record(good_raw(**cells), ctx())  # no value map: Zumba means nothing there
    assert other.center is not None and Payment.FREE not in other.center.services.payment
    assert other.unmapped == {"payment": ("Zumba", "Barter")}
    listed = normalize_record(good_raw(source_id="A-3", payment=["Medicaid", "Zumba"]), feed)
    assert listed.center is not None and set(listed.center.services.payment) == {Payment.MEDICAID, Payment.FREE}


def test_what_a_run_remembers_is_texts_only_and_a_context_of_its_own() -> None:
    """1, 1.0 and True are one dict key: a cell that is not a text is mapped each time, so a JSON feed's number and
    boolean in one column do not take each other's meaning. A context made from another (dataclasses.replace, new
    value maps) remembers nothing of the first."""
    import dataclasses

    feed = ctx(value_maps={"levels_of_care": {"1": ["detox"]}})
    number = normalize_record(good_raw(source_id="A-1", levels_of_care=1, availability=[]), feed)
    boolean = normalize_record(good_raw(source_id="A-2", levels_of_care=True, availability=[]), feed)
    assert number.center is not None and boolean.center is not None
    assert number.center.services.levels_of_care == (LevelOfCare.DETOX,)
    assert LevelOfCare.DETOX not in boolean.center.services.levels_of_care
    assert boolean.unmapped.get("levels_of_care") == ("True",)
    normalize_record(good_raw(levels_of_care="1", payment="Medicaid", availability=[]), feed)
    other = dataclasses.replace(feed, value_maps={})
    assert other.memo == {} and feed.memo
    plain = normalize_record(good_raw(levels_of_care="1", payment="Medicaid", availability=[]), other)
    assert plain.center is not None and LevelOfCare.DETOX not in plain.center.services.levels_of_care
