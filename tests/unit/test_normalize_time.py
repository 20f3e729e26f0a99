"""Partner times written in ISO 8601 are read by the standard library (fast); every other form by dateutil.
Both must read an ISO time the same way, offsets included."""

from __future__ import annotations

from datetime import datetime

import pytest
from dateutil import parser as dateparser
from hypothesis import given
from hypothesis import strategies as st

from aggregator.errors import InvalidValue
from aggregator.normalize import _ISO_TIME, _parse_time, timestamp


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
    ours, theirs = _parse_time(text), dateparser.parse(text)
    assert ours is not None
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
