"""The compact stored form of an observation keeps every time exactly, as the API writes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from aggregator.model import Availability
from aggregator.store import _iso, _us, observation_json, stored_observation


class _Stamp(BaseModel):
    t: datetime


# hypothesis takes naive bounds and attaches the zone itself
_ANY_YEAR = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))  # noqa: DTZ001
_THIS_CENTURY = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))  # noqa: DTZ001


@given(_ANY_YEAR)
def test_a_time_reads_back_as_pydantic_writes_it(t: datetime) -> None:
    assert _iso(_us(t)) == _Stamp(t=t).model_dump(mode="json")["t"]


@given(_THIS_CENTURY, st.integers(0, 10**9))
def test_stored_times_are_whole_milliseconds_and_a_remainder_under_one(t: datetime, later_us: int) -> None:
    obs = Availability(
        center_id="f:a",
        level_of_care="detox",
        source="pull",
        status="available",
        reported_at=t,
        checked_at=t + timedelta(microseconds=later_us),
        freshness_seconds=900,
    )
    stored = stored_observation(observation_json(obs))
    for ms, rest, when in (("rt", "ru", obs.reported_at), ("ct", "cu", obs.checked_at)):
        assert 0 < stored.get(rest, 1) < 1000
        assert stored[ms] * 1000 + stored.get(rest, 0) == _us(when)
