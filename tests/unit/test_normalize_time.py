"""Partner times written in ISO 8601 are read by the standard library (fast); every other form by dateutil.
Both must read an ISO time the same way, offsets included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dateutil import parser as dateparser
from hypothesis import given
from hypothesis import strategies as st

from aggregator.errors import InvalidValue
from aggregator.ingest import RowMemo
from aggregator.normalize import _ISO_TIME, YEAR_SUPPLIED, FeedContext, _parse_time, normalize_record, timestamp

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


@st.composite
def iso_texts(draw: st.DrawFn) -> str:
    # naive on purpose: the text carries its own offset, or none
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))  # noqa: DTZ001
    text = moment.strftime("%Y-%m-%d")
    if draw(st.booleans()):
        text += draw(st.sampled_from(["T", " "])) + moment.strftime("%H:%M")
        if draw(st.booleans()):
            text += moment.strftime(":%S")
            digits = draw(st.integers(0, 6))
            if digits:
                text += "." + f"{moment.microsecond:06d}"[:digits]
        zone = draw(st.sampled_from(["", "Z", "+00:00", "-05:00", "+0530", "-0800", "+14:00"]))
        text += zone
    return text


@given(iso_texts())
def test_the_standard_library_reads_iso_times_as_dateutil_does(text: str) -> None:
    assert _ISO_TIME.fullmatch(text)
    (ours, left_out), theirs = _parse_time(text), dateparser.parse(text)
    assert ours is not None and left_out == ""
    assert ours.replace(tzinfo=None) == theirs.replace(tzinfo=None)
    assert ours.utcoffset() == theirs.utcoffset()


@pytest.mark.parametrize("text", ["2026-02-30T10:00:00", "2026-13-01", "2026-12-06T24:00:00Z", "2026-12-06T10:61"])
def test_an_impossible_iso_time_is_refused_with_its_reason(text: str) -> None:
    with pytest.raises(InvalidValue, match="is not a time"):
        timestamp(text)


def test_a_repeated_time_is_read_once() -> None:
    _parse_time.cache_clear()
    for _ in range(3):
        timestamp("12/6/2026 8:42 AM", "America/New_York")
    assert _parse_time.cache_info().hits == 2


def test_a_time_without_a_date_is_a_reason_never_today() -> None:
    # "8:42 AM" on a board: today's, or a report from days ago the board still shows? Read as today, a stale
    # figure would pass for live; the machine's clock is never what fills it in
    with pytest.raises(InvalidValue, match="has no date: the day it was reported is not known"):
        timestamp("8:42 AM", "America/New_York", now=NOW)


def test_a_time_without_a_year_is_the_latest_such_day_not_after_now() -> None:
    now = datetime(2027, 1, 3, 15, 0, tzinfo=UTC)
    assert timestamp("Dec 30 8:42 AM", "America/New_York", now=now) == datetime(2026, 12, 30, 13, 42, tzinfo=UTC)
    assert timestamp("Jan 2 8:42 AM", "America/New_York", now=now) == datetime(2027, 1, 2, 13, 42, tzinfo=UTC)
    with pytest.raises(InvalidValue, match="has no year"):
        timestamp("Jan 2 8:42 AM", "America/New_York")  # no run to say which year


def test_a_row_whose_report_time_gives_no_year_is_repaired_in_the_open_and_gets_no_memo() -> None:
    ctx = FeedContext(feed_id="partner", now=datetime(2027, 1, 3, 15, 0, tzinfo=UTC), timezone="America/New_York")
    raw = {
        "source_id": "b-1",
        "name": "Harbor House",
        "address_1": "1 Main St",
        "city": "Baltimore",
        "state": "MD",
        "postal_code": "21231",
        "availability": [{"level_of_care": "detox", "beds_available": "2", "reported_at": "Dec 30 8:42 AM"}],
    }
    result = normalize_record(raw, ctx)
    assert [o.reported_at for o in result.availability] == [datetime(2026, 12, 30, 13, 42, tzinfo=UTC)]
    assert result.repairs == [YEAR_SUPPLIED]
    assert RowMemo.of(result, b"digest", ctx) is None  # next year, the same text is another day
    raw["availability"][0]["reported_at"] = "Dec 30 8:42 AM ET"  # a zone word does not hide it
    assert normalize_record(raw, ctx).repairs == [YEAR_SUPPLIED]
