"""The compact stored form of an observation keeps every time exactly, as the API writes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from aggregator.model import Accepting, Availability, AvailabilityStatus
from aggregator.store import SLOTS, STATUS_CODES, _iso, _observations, _us, observation_json, stored_observation

_STATUS = {name: i for i, name in enumerate(STATUS_CODES)}


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


_MAYBE_COUNT = st.none() | st.integers(0, 500)


@given(
    _THIS_CENTURY,
    st.integers(0, 10**9),
    st.sampled_from([s.value for s in AvailabilityStatus]),
    _MAYBE_COUNT,
    _MAYBE_COUNT,
    st.none() | st.sampled_from([a.value for a in Accepting]),
    _MAYBE_COUNT,
    st.text(max_size=30),
    st.none() | st.integers(0, 10**9),
    st.booleans(),
    _MAYBE_COUNT,
    st.none() | _THIS_CENTURY,
)
def test_the_positional_form_reads_as_the_named_form_of_the_same_figures(
    t: datetime,
    later_us: int,
    status: str,
    beds: int | None,
    total: int | None,
    accepting: str | None,
    waitlist: int | None,
    notes: str,
    changed_before_us: int | None,
    checked_apart: bool,
    appointments: int | None,
    next_appointment: datetime | None,
) -> None:
    """The positional form and the compact object form of the release before (put in place as it is read): the
    same figures, stored either way (with the write order, changed and checked times observe.lua adds), read
    alike."""
    obs = Availability(
        center_id="f:a",
        level_of_care="detox",
        source="push",
        status=status,
        reported_at=t,
        checked_at=t + timedelta(microseconds=later_us),
        freshness_seconds=900,
        beds_available=beds,
        beds_total=None if total is None or beds is None else beds + total,
        accepting=accepting,
        waitlist_size=waitlist,
        notes=notes,
        reported_by="desk" if beds else "",
        appointments_available=appointments,
        next_appointment_at=next_appointment,
    )
    named = stored_observation(observation_json(obs))
    named["wo"] = named["rt"] + 5
    if not checked_apart:  # checked as written: readers take the write order
        named.pop("ct", None)
        named.pop("cu", None)
    if changed_before_us is not None:
        named["ch"], named["chu"] = divmod(_us(t) - changed_before_us, 1000)
    absent = {"ru": 0, "cu": 0, "chu": 0}  # as the writers keep none: 0 microseconds
    positional = [_STATUS[named["st"]] if n == "st" else named.get(n, absent.get(n)) for n in SLOTS]
    by_name = _observations([["f:a", "detox|push", named]])
    by_place = _observations([["f:a", "detox|push", positional]])
    assert by_place == by_name
    assert by_place[0]["status"] == status and by_place[0]["beds_available"] == beds


@given(
    _THIS_CENTURY,
    st.integers(0, 10**9),
    st.sampled_from([s.value for s in AvailabilityStatus]),
    _MAYBE_COUNT,
    _MAYBE_COUNT,
    st.none() | st.sampled_from([a.value for a in Accepting]),
    _MAYBE_COUNT,
    _MAYBE_COUNT,
    st.none() | _THIS_CENTURY,
    st.text(max_size=30),
    st.text(max_size=20),
)
def test_the_stored_form_is_built_as_the_named_fields_give_it(
    t: datetime,
    later_us: int,
    status: str,
    beds: int | None,
    total: int | None,
    accepting: str | None,
    waitlist: int | None,
    appointments: int | None,
    next_appointment: datetime | None,
    notes: str,
    reported_by: str,
) -> None:
    """``observation_json`` writes its slots directly; the definition is each optional figure by its short name,
    put in ``SLOTS`` order: byte for byte the same (and every optional figure of the model is among them)."""
    from aggregator.store import OBSERVATION_DEFAULTS

    assert set(OBSERVATION_DEFAULTS) == {
        "beds_available",
        "beds_total",
        "accepting",
        "waitlist_size",
        "appointments_available",
        "next_appointment_at",
        "notes",
        "reported_by",
    }, "a new optional figure: give observation_json its slot"
    obs = Availability(
        center_id="f:a",
        level_of_care="detox",
        source="pull",
        status=status,
        beds_available=beds if beds is None or total is None else min(beds, total),
        beds_total=total,
        accepting=accepting,
        waitlist_size=waitlist,
        appointments_available=appointments,
        next_appointment_at=next_appointment,
        notes=notes.strip(),
        reported_by=reported_by.strip(),
        reported_at=t,
        checked_at=t + timedelta(microseconds=later_us),
        freshness_seconds=900,
    )
    assert observation_json(obs) == _named_observation_json(obs)
    order = _us(t) // 1000 + 7
    with_order = stored_observation(observation_json(obs, order))
    expected = {**stored_observation(observation_json(obs)), "wo": order}
    if expected["ct"] == order:  # checked at the write's order: readers take wo
        del expected["ct"]
    assert with_order == expected


def _named_observation_json(obs: Availability) -> bytes:
    """The stored form by its definition: each optional figure at its short name when not at its default, times as
    epoch ms and the microseconds left over (0 left out), put in ``SLOTS`` order (``store._positional``)."""
    from aggregator.store import _SHORT, _STATUS_CODE, OBSERVATION_DEFAULTS, _positional

    data: dict[str, object] = {"st": _STATUS_CODE[obs.status.value], "fs": obs.freshness_seconds}
    for name, short in _SHORT.items():
        value = getattr(obs, name)
        if value != OBSERVATION_DEFAULTS[name]:
            data[short] = _iso(_us(value)) if isinstance(value, datetime) else value
    for ms_name, us_name, when in (("rt", "ru", obs.reported_at), ("ct", "cu", obs.checked_at)):
        ms, rest = divmod(_us(when), 1000)
        data[ms_name] = ms
        if rest:
            data[us_name] = rest
    return orjson.dumps(_positional(data))


def test_values_kept_until_a_write_sends_them_take_their_own_size() -> None:
    """A large write holds three observations a record (and a row memo a row) until it sends them: each must take
    about its own size, not the buffer orjson wrote it in (4 KiB: a 100,000-record first load peaked at 2.9 GB of
    resident memory, 1.7 GB with copies of their size)."""
    import tracemalloc

    t = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    obs = [
        Availability(
            center_id="f:a",
            level_of_care="detox",
            source="pull",
            status="available",
            reported_at=t,
            checked_at=t,
            freshness_seconds=3600,
            beds_available=i % 40,
        )
        for i in range(1000)
    ]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [observation_json(o, order=_us(t) // 1000) for o in obs]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept) == 1000 and used < 1000 * 200, f"{used / 1000:.0f} bytes an observation"
