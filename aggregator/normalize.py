"""Raw partner record -> canonical ``Center`` + ``Availability`` observations, with reasons. Pure.

A raw record is what a format adapter (``aggregator.feeds``) produces after applying the feed's
mapping: a flat ``dict`` with these keys (all optional except ``source_id`` and ``name``)::

    source_id, name, alternate_name, address (one line), address_1, address_2, city, state,
    postal_code, country,
    latitude, longitude, phone, intake_phone, hotline_phone, phones [{number, role}], website,
    status, levels_of_care, payment, populations, languages   (a list, or one string with ; , |)
    external_ids [{system, value}], source_url, reported_at,
    availability [{level_of_care, status, beds_available, beds_total, accepting,
                   waitlist_size, notes, reported_at}]

Every normalizer either returns a clean value or raises ``InvalidValue(field, reason)``: never
anything else, whatever the input (a hypothesis property holds them to that).

Cells holding a null word of the feed (``NA``, ``N/A``, ``-``, ``null``, ...) are read as empty. A phone
cell may hold several numbers with words between them (``(410) 955-5439 Intake: (410) 955-5578``): each
number is kept with the role its label gives (intake, hotline; fax numbers are dropped, with a word).
A one-line ``address`` is split into street, city, state and ZIP (``aggregator.address``).
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from dateutil import parser as dateparser
from pydantic import ValidationError

from aggregator import geography, vocabulary
from aggregator.address import split_one_line
from aggregator.errors import InvalidValue
from aggregator.feeds.mapping import BLANK_VALUES, DEFAULT_NULL_VALUES, null_words
from aggregator.model import (
    OPEN_STATUSES,
    Accepting,
    Address,
    Availability,
    AvailabilityStatus,
    Center,
    CenterStatus,
    ExternalId,
    GeoPrecision,
    LevelOfCare,
    Payment,
    Phone,
    PhoneRole,
    Population,
    Rejection,
    Services,
    Source,
    make_center_id,
    rejections_from,
)

# --------------------------------------------------------------------------------------------------
# Field normalizers


def phone_e164(raw: object, field: str = "phone") -> str:
    """A US phone number in any common shape to E.164 ('(617) 555-0123' -> '+16175550123')."""
    text = _text(raw)
    if not text:
        raise InvalidValue(field, "empty")
    if len(text) > 40:
        raise InvalidValue(field, "too long to be a phone number")
    try:
        number = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException as exc:
        raise InvalidValue(field, f"not a phone number ({text!r})") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidValue(field, f"impossible number {text!r}")
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(field, f"not a valid number {text!r}")
    if number.country_code != 1:
        raise InvalidValue(field, f"{text!r} is not a US or US-territory number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def state_code(raw: object, field: str = "state") -> str:
    text = _text(raw)
    if not text:
        raise InvalidValue(field, "empty")
    code = geography.state_code(text[:40])
    if code is None:
        raise InvalidValue(field, f"{text[:40]!r} is not a US state or territory")
    return code


_ZIP = re.compile(r"^(?:(\d{5})(?:[- ]?\d{4})?|(\d{3,4})(?:[- ]?\d{4})?)$")


def zip5(raw: object, state: str | None = None, field: str = "postal_code") -> str:
    """A 5-digit ZIP string. Restores leading zeros lost by spreadsheets ('8332' -> '08332').

    With ``state``, the ZIP must exist and belong to that state (a wrong ZIP would place the center
    in the wrong town)."""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = _text(raw)
    if not text:
        raise InvalidValue(field, "empty")
    m = _ZIP.match(text)
    if not m:
        raise InvalidValue(field, f"{text[:20]!r} is not a ZIP code")
    code = (m.group(1) or m.group(2)).zfill(5)
    if code == "00000":
        raise InvalidValue(field, "00000 is not a ZIP code")
    place = geography.zip_place(code)
    if state is not None:
        if place is None:
            raise InvalidValue(field, f"ZIP {code} does not exist")
        if place.state != state:
            raise InvalidValue(field, f"ZIP {code} is in {place.state}, not {state}")
    return code


_US_ZONES = {
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
    "AKST": -9,
    "AKDT": -8,
    "HST": -10,
    "AST": -4,
    "CHST": 10,
    "SST": -11,
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
}
_GENERIC_ZONES = {
    "ET": "America/New_York",
    "CT": "America/Chicago",
    "MT": "America/Denver",
    "PT": "America/Los_Angeles",
    "AKT": "America/Anchorage",
    "HT": "Pacific/Honolulu",
}
_TZINFOS = {name: hours * 3600 for name, hours in _US_ZONES.items()}
_PREFIX = re.compile(r"^\s*(?:last\s+updated|updated(?:\s+at)?|as\s+of|reported)\s*:?\s*", re.I)
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
#: how far ahead of our clock a partner's time may be and still be read (as now)
MAX_CLOCK_SKEW = timedelta(minutes=10)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidValue("timezone", f"unknown time zone {name!r}") from exc


# the patterns read on every row, compiled once
_ZONE_SUFFIX = re.compile(r"\s([A-Z]{2,3})$")
_COUNT = re.compile(r"(-?\d{1,7})(?:\.0+)?(?:\s*beds?)?", re.I)
_NOT_DIGIT = re.compile(r"\D")
_TERM_SEPARATOR = re.compile(r"\s*[;|,]\s*")

#: ISO 8601 as feeds mostly write it: read by the standard library (dateutil reads the same the same way,
#: some 50 times slower; tests/unit/test_normalize_time.py checks they agree)
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?")


#: two days to fill in what a text leaves out (naive, as the text is; leap years, so "Feb 29" reads): where the two
#: readings differ tells which part it left out
_FILL_A, _FILL_B = datetime(2004, 2, 3), datetime(2008, 3, 4)  # noqa: DTZ001


@functools.lru_cache(maxsize=4096)
def _parse_time(text: str) -> tuple[datetime | None, str]:
    """A time's text as written (aware when it says its offset), or the parser's error; and what it leaves out:
    "date" ("8:42 AM"), "year" ("Nov 27 8:42 AM") or "". Nothing is taken from the machine's clock: the parts
    left out are the caller's to settle (``timestamp``). A feed repeats a time on every figure of a row and often
    on every row: each distinct text is read once."""
    if _ISO_TIME.fullmatch(text):
        try:
            return datetime.fromisoformat(text), ""
        except ValueError:
            pass  # dateutil says what is wrong with it
    with warnings.catch_warnings():
        warnings.simplefilter("error", dateparser.UnknownTimezoneWarning)
        a: datetime | None = dateparser.parse(text, default=_FILL_A, tzinfos=_TZINFOS)
        b: datetime | None = dateparser.parse(text, default=_FILL_B, tzinfos=_TZINFOS)
    if a is None or b is None:
        return None, ""
    if (a.month, a.day) != (b.month, b.day):
        return a, "date"
    return a, "year" if a.year != b.year else ""


def _nearest_year(parsed: datetime, now: datetime) -> datetime:
    """``parsed`` in the year that puts it nearest ``now`` (naive, the same clock)."""
    candidates = []
    for year in (now.year - 1, now.year, now.year + 1):
        try:
            candidates.append(parsed.replace(year=year))
        except ValueError:  # Feb 29 of a year that has none
            continue
    if not candidates:
        return _latest_year(parsed, now)
    return min(candidates, key=lambda c: abs(c.replace(tzinfo=None) - now))


def _latest_year(parsed: datetime, until: datetime) -> datetime:
    """``parsed`` in the latest year that puts it no later than ``until`` (naive, the same clock)."""
    for year in range(until.year, until.year - 8, -1):
        try:
            candidate = parsed.replace(year=year)
        except ValueError:  # Feb 29 of a year that has none
            continue
        if candidate.replace(tzinfo=None) <= until:
            return candidate
    return parsed.replace(year=until.year - 8)


def timestamp(
    raw: object, tz: str = "UTC", field: str = "reported_at", now: datetime | None = None, *, upcoming: bool = False
) -> datetime:
    """Any partner time to an aware UTC datetime.

    Naive times are read in the feed's time zone ``tz``; 'EST'/'EDT'-style and 'ET'-style suffixes
    are honoured; epoch seconds and milliseconds are accepted. With ``now``, a time more than ten
    minutes in the future is a reason (a partner clock or a day/month swap), not a value; a time
    less far ahead is clamped to ``now`` (clock skew), so no age is ever negative."""
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, bool):
        raise InvalidValue(field, "not a time")
    elif isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise InvalidValue(field, "not a time")
        seconds = raw / 1000 if raw > 1e11 else raw
        if not 0 < seconds < 1e10:
            raise InvalidValue(field, f"epoch {raw} is out of range")
        value = datetime.fromtimestamp(seconds, UTC)
    else:
        text = _PREFIX.sub("", _text(raw))
        if not text:
            raise InvalidValue(field, "empty")
        if len(text) > 64:
            raise InvalidValue(field, "too long to be a time")
        generic = None
        m = _ZONE_SUFFIX.search(text)
        if m and m.group(1) in _GENERIC_ZONES:
            generic, text = _GENERIC_ZONES[m.group(1)], text[: m.start()]
        try:
            parsed, missing = _parse_time(text)
        except dateparser.UnknownTimezoneWarning as exc:
            raise InvalidValue(field, f"{text!r} has a time zone we do not know") from exc
        except (ValueError, OverflowError, TypeError, dateparser.ParserError) as exc:
            raise InvalidValue(field, f"{text!r} is not a time") from exc
        if parsed is None:
            raise InvalidValue(field, f"{text!r} is not a time")
        if missing == "date":  # today's or an older day's? Read as today, a stale figure could pass for live
            raise InvalidValue(
                field,
                f"{text!r} has no date: "
                + ("which day is not known" if upcoming else "the day it was reported is not known"),
            )
        if missing == "year":  # a report: the latest such day not after now (a board's "Nov 27 8:42 AM")
            if now is None:
                raise InvalidValue(field, f"{text!r} has no year")
            local_now = now.astimezone(zone(generic or tz)).replace(tzinfo=None)
            parsed = (
                _nearest_year(parsed, local_now)
                if upcoming  # an appointment: the such day nearest now (a past one stays past, never a year on)
                else _latest_year(parsed, local_now + MAX_CLOCK_SKEW)
            )
        value = parsed
        if generic and value.tzinfo is None:
            value = value.replace(tzinfo=zone(generic))
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=zone(tz))
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise InvalidValue(field, "time out of range") from exc
    if value < _EARLIEST:
        raise InvalidValue(field, f"{value:%Y-%m-%d} is before 2000")
    if now is not None and value > now and not upcoming:
        if value > now + MAX_CLOCK_SKEW:
            raise InvalidValue(field, f"{value.isoformat()} is in the future")
        value = now  # a partner clock a little ahead: never a negative age
    return value


@dataclass(frozen=True)
class Coordinates:
    latitude: float
    longitude: float
    fixed: str = ""  # what was repaired, e.g. "latitude and longitude were swapped"


def coordinates(raw_lat: object, raw_lon: object, state: str | None) -> Coordinates:
    """Check a feed's coordinates: inside the US and inside the record's state.

    Swapped latitude/longitude and a dropped minus sign on the longitude are repaired when the
    repaired point lies in the record's state; the repair is named in ``fixed``."""
    lat = _number(raw_lat, "latitude")
    lon = _number(raw_lon, "longitude")
    if lat == 0.0 and lon == 0.0:
        raise InvalidValue("latitude", "0,0 is a placeholder, not a location")

    def fits(a: float, b: float) -> bool:
        return (
            -90 <= a <= 90
            and -180 <= b <= 180
            and (geography.in_state(a, b, state) if state else geography.in_us(a, b))
        )

    if fits(lat, lon):
        return Coordinates(lat, lon)
    for a, b, why in (
        (lon, lat, "latitude and longitude were swapped"),
        (lat, -lon, "longitude sign was missing"),
        (-lon, lat, "latitude and longitude were swapped and the longitude sign was missing"),
    ):
        if fits(a, b):
            return Coordinates(a, b, why)
    if not (-90 <= lat <= 90):
        raise InvalidValue("latitude", f"{lat} is outside -90..90")
    if not (-180 <= lon <= 180):
        raise InvalidValue("longitude", f"{lon} is outside -180..180")
    if not geography.in_us(lat, lon):
        raise InvalidValue("latitude", f"({lat}, {lon}) is outside the United States")
    raise InvalidValue("latitude", f"({lat}, {lon}) is not in {state}")


def count(raw: object, field: str) -> int | None:
    """A bed or waitlist count: int >= 0, or None when the partner gave nothing ('', 'N/A')."""
    if raw is None or isinstance(raw, bool):
        if isinstance(raw, bool):
            raise InvalidValue(field, "a yes/no is not a count")
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw) or not raw.is_integer():
            raise InvalidValue(field, f"{raw} is not a whole number")
        value = int(raw)
    else:
        text = _text(raw)
        if text.lower() in BLANK_VALUES:
            return None
        m = _COUNT.fullmatch(text)
        if not m:
            raise InvalidValue(field, f"{text[:30]!r} is not a count")
        value = int(m.group(1))
    if value < 0:
        raise InvalidValue(field, f"{value} is negative")
    if value > 100_000:
        raise InvalidValue(field, f"{value} is implausibly large")
    return value


# --------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class FeedContext:
    """What normalization needs to know about the feed and the moment; passed in, never read."""

    feed_id: str
    now: datetime
    source: Source = Source.PULL
    timezone: str = "UTC"
    freshness_seconds: int = 86400
    #: a report older than this is rejected rather than stored (None: keep and let it show stale)
    max_report_age_seconds: int | None = None
    #: beds at or below this (and above 0) read as ``limited`` rather than ``available``
    limited_threshold: int = 2
    value_maps: Mapping[str, Mapping[str, Iterable[str]]] = field(default_factory=dict)
    default_state: str | None = None
    #: cell texts meaning "no value" (compared case-insensitively)
    null_values: Iterable[str] = DEFAULT_NULL_VALUES
    #: the feed's rank where records of several feeds compose one place: not read by normalizing, but what a
    #: row's record is written with, so its memos hold for one authority (``ingest.memo_fingerprint``)
    authority: int = 0
    #: what this feed's cells were found to mean, by cell (a row's service cells, a level's name): a run reads the
    #: same few texts on most rows, and with the same value maps they mean the same (``_remembered``)
    memo: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)


_T = TypeVar("_T")

#: cells remembered a context at most (a feed of unique texts stops remembering them, and maps each as it comes)
MEMO_LIMIT = 50_000


def _remembered(ctx: FeedContext, kind: str, cells: tuple[Any, ...], compute: Callable[[], _T]) -> _T:
    """``compute()``, remembered in ``ctx.memo`` under ``kind`` and ``cells`` when every cell is a text or absent
    (a list, a number or a boolean, as JSON feeds send, is mapped each time: 1, 1.0 and True are one dict key).
    ``ctx.memo`` is the context's own (``dataclasses.replace`` gives a new context a new one)."""
    if not all(type(c) is str or c is None for c in cells):
        return compute()
    key = (kind, *cells)
    try:
        return cast(_T, ctx.memo[key])
    except KeyError:
        pass
    value = compute()
    if len(ctx.memo) < MEMO_LIMIT:
        ctx.memo[key] = value
    return value


@dataclass
class NormalizedRecord:
    source_id: str
    center: Center | None
    availability: list[Availability] = field(default_factory=list)
    #: problems: the record's own (when ``center`` is None) or of fields and observations dropped
    problems: list[Rejection] = field(default_factory=list)
    #: partner terms with no canonical meaning, by field (informational)
    unmapped: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: repairs made, e.g. swapped coordinates
    repairs: list[str] = field(default_factory=list)
    #: levels of care whose figures the record carried but were rejected (a bad count, an impossible
    #: time): the feed's previous figures for them are kept, never pruned as "no longer reported"
    rejected_levels: set[LevelOfCare] = field(default_factory=set)
    #: the record gave no time at all (no report time, no appointment time): every figure is as of the run,
    #: reported at its clock (``ingest.RowMemo``: an unchanged such row is reported again without normalizing)
    run_timed: bool = False

    @property
    def rejected(self) -> bool:
        return self.center is None


# Availability observations of one record for the same level are combined; this is the order in
# which a code meaning several levels ("R-WM": detox in a residential setting) picks its level.
LEVEL_PRIORITY = (
    LevelOfCare.DETOX,
    LevelOfCare.CRISIS,
    LevelOfCare.INPATIENT,
    LevelOfCare.PHP,
    LevelOfCare.RESIDENTIAL,
    LevelOfCare.IOP,
    LevelOfCare.OTP,
    LevelOfCare.RECOVERY_HOUSING,
    LevelOfCare.OUTPATIENT,
    LevelOfCare.MAT,
    LevelOfCare.TELEHEALTH,
)

_CENTER_STATUS = {
    "active": CenterStatus.ACTIVE,
    "open": CenterStatus.ACTIVE,
    "": CenterStatus.ACTIVE,
    "temporarily closed": CenterStatus.TEMPORARILY_CLOSED,
    "temporarily_closed": CenterStatus.TEMPORARILY_CLOSED,
    "inactive": CenterStatus.INACTIVE,
    "defunct": CenterStatus.INACTIVE,
    "closed": CenterStatus.INACTIVE,
    "permanently closed": CenterStatus.INACTIVE,
}


#: the longest partner id kept; a longer one is rejected, never cut (two ids sharing their first 64
#: characters would become one center)
MAX_ID_LENGTH = 64


def _clipped(value: str, limit: int, fld: str, clips: list[tuple[str, str]], what: str = "") -> str:
    """``value`` cut to ``limit`` characters; a cut is noted in ``clips`` (field, reason), never silent."""
    if len(value) <= limit:
        return value
    clips.append((fld, f"{what or fld} was {len(value)} characters; kept the first {limit}"))
    return value[:limit]


def _within(value: str, limit: int, fld: str, clips: list[tuple[str, str]], what: str = "") -> str:
    """``value``, or "" (with a reason in ``clips``) when it is longer than ``limit``: a link or an id cut
    short would point somewhere else."""
    if len(value) <= limit:
        return value
    clips.append((fld, f"{what or fld} is {len(value)} characters; the limit is {limit}; dropped"))
    return ""


def normalize_record(raw: Mapping[str, Any], ctx: FeedContext) -> NormalizedRecord:
    """One raw record to a Center and its observations; never raises on bad data."""
    raw = without_nulls(raw, _null_set(ctx.null_values))
    source_id = _text(raw.get("source_id"))
    out = NormalizedRecord(source_id=source_id, center=None)
    label = source_id or _text(raw.get("name"))[:60] or "(no id)"

    def problem(fld: str, reason: str) -> None:
        out.problems.append(Rejection(record=label, field=fld, reason=reason))

    if raw.get("_problem"):  # the adapter could not read this record and says why
        problem("record", _text(raw.get("_problem"))[:300])
        return out
    if not source_id:
        problem("source_id", "missing")
        return out
    if len(source_id) > MAX_ID_LENGTH:
        problem("source_id", f"id is {len(source_id)} characters; the limit is {MAX_ID_LENGTH}")
        return out
    name = _text(raw.get("name"))
    if not name:
        problem("name", "missing")
        return out

    address_problem = ""
    if _present(raw.get("address")):
        raw, address_problem = _with_address_parts(raw)

    # Address: state and ZIP are required (filters and the ZIP-centroid fallback need them).
    try:
        state_raw = raw.get("state") or ctx.default_state
        if address_problem and not _present(state_raw):
            raise InvalidValue("address", address_problem)
        state = state_code(state_raw)
    except InvalidValue as exc:
        problem(exc.field, exc.reason)
        return out

    # Coordinates: dropped (to be geocoded) when implausible, repaired when the repair is certain.
    lat = lon = None
    if _present(raw.get("latitude")) or _present(raw.get("longitude")):
        try:
            c = coordinates(raw.get("latitude"), raw.get("longitude"), state)
            lat, lon = c.latitude, c.longitude
            if c.fixed:
                out.repairs.append(c.fixed)
        except InvalidValue as exc:
            problem(exc.field, exc.reason + "; the address will be geocoded instead")

    try:
        if address_problem and not _present(raw.get("postal_code")):
            raise InvalidValue("address", address_problem)
        postal = zip5(raw.get("postal_code"), state)
        if len(_digits(raw.get("postal_code"))) in (3, 4, 7, 8):
            out.repairs.append("ZIP leading zero restored")
    except InvalidValue as exc:
        nearest = geography.nearest_zip(lat, lon, state) if lat is not None and lon is not None else None
        if nearest is None:
            problem(exc.field, exc.reason)
            return out
        # the feed's coordinates are good and in the state: keep the center, with the nearest ZIP
        postal = nearest
        problem(exc.field, f"{exc.reason}; ZIP {nearest}, nearest the feed's coordinates, is used instead")

    phones = _phones(raw, problem)
    entries = _entries(raw, ctx)
    services = _services(raw, ctx, out, entries)
    status_text = _text(raw.get("status")).lower()
    center_status = _CENTER_STATUS.get(status_text)
    if center_status is None:
        problem("status", f"unrecognized center status {status_text[:40]!r}; assumed active")
        center_status = CenterStatus.ACTIVE

    clips: list[tuple[str, str]] = []  # values cut or dropped for length: reported once the center is kept
    external_ids = []
    for i, item in enumerate(raw.get("external_ids") or ()):
        if isinstance(item, Mapping) and _text(item.get("value")):
            value = _within(_text(item.get("value")), 200, f"external_ids.{i}.value", clips, "external id")
            if value:
                system = _clipped(
                    _text(item.get("system")), 100, f"external_ids.{i}.system", clips, "external id system"
                )
                external_ids.append(ExternalId(system=system or "partner", value=value))

    try:
        center = Center(
            id=make_center_id(ctx.feed_id, source_id),
            feed_id=ctx.feed_id,
            source_id=source_id,
            name=_clipped(name, 300, "name", clips),
            alternate_name=_clipped(_text(raw.get("alternate_name")), 300, "alternate_name", clips),
            external_ids=tuple(external_ids),
            address=Address(
                address_1=_clipped(_text(raw.get("address_1")), 200, "address_1", clips),
                address_2=_clipped(_text(raw.get("address_2")), 200, "address_2", clips),
                city=_clipped(_text(raw.get("city")), 100, "city", clips),
                state=state,
                postal_code=postal,
                country="US",
            ),
            latitude=lat,
            longitude=lon,
            geo_precision=GeoPrecision.FEED if lat is not None else None,
            geo_source=ctx.feed_id if lat is not None else "",
            phones=tuple(phones),
            website=_within(_text(raw.get("website")), 500, "website", clips),
            status=center_status,
            services=services,
            source_url=_within(_text(raw.get("source_url")), 1000, "source_url", clips),
        )
    except ValidationError as exc:
        out.problems.extend(rejections_from(exc, label))
        return out
    out.center = center
    for fld, reason in clips:
        problem(fld, reason)
    out.availability, out.rejected_levels = _observations(raw, center, ctx, problem, entries)
    if out.availability:
        objects = [e for _i, e, _informative, _level in entries if isinstance(e, Mapping)]
        times = [raw.get("reported_at"), *(e.get(k) for e in objects for k in ("reported_at", "next_appointment_at"))]
        if any(_year_left_out(t) for t in times):
            out.repairs.append(YEAR_SUPPLIED)
        out.run_timed = not any(_present(t) for t in times)
    return out


#: the repair named when a time gave no year (``timestamp``: a report the latest such day not after the run, an
#: appointment the such day nearest it); the year then follows the clock, so such a row gets no memo
#: (``ingest.RowMemo.of``)
YEAR_SUPPLIED = "time without a year: its year taken from the run's date"


def _year_left_out(value: object) -> bool:
    if not isinstance(value, str):
        return False
    text = _PREFIX.sub("", _text(value))
    if not text or len(text) > 64:
        return False
    m = _ZONE_SUFFIX.search(text)
    if m and m.group(1) in _GENERIC_ZONES:  # "Nov 27 8:42 AM ET": read without its zone, as timestamp does
        text = text[: m.start()]
    try:
        return _parse_time(text)[1] == "year"
    except (ValueError, OverflowError, TypeError, dateparser.ParserError, dateparser.UnknownTimezoneWarning):
        return False


#: words that give a number its role; None: not a number to call (fax, TTY), dropped with a word
_ROLE_WORDS: tuple[tuple[re.Pattern[str], PhoneRole | None, str], ...] = (
    (re.compile(r"\bfax\b|\bfacsimile\b|\bfx\b|\bf\s*:", re.I), None, "fax"),
    (re.compile(r"\btty\b|\btdd\b|\btext\s*telephone\b", re.I), None, "TTY"),
    (
        re.compile(r"hot\s*-?\s*line|crisis|24\s*/\s*7|24[- ]?(?:hour|hr)|emergency|after[- ]hours", re.I),
        PhoneRole.HOTLINE,
        "",
    ),
    (re.compile(r"intake|admission|admit|referral|appointment|scheduling|screening", re.I), PhoneRole.INTAKE, ""),
    (re.compile(r"\bmain\b|\boffice\b|\bphone\b|\btel\b|\bvoice\b|\b[pt]\s*:", re.I), PhoneRole.MAIN, ""),
)
#: a label written right after a number: "410-555-0100 (fax)"; after the last number also "... fax"
_SUFFIX = re.compile(r"^\s*[-–:]?\s*[(\[]\s*([^()\[\]]{1,20}?)\s*[)\]]", re.I)
_LAST_SUFFIX = re.compile(r"^\s*[-–]?\s*(fax|tty|tdd|intake|hotline|main)\b[\s.;,]*$", re.I)
#: what between two numbers says "the same kind": "or", "/", ",", "and"
_CONNECTIVE = re.compile(r"^[\s,/&;|]*(?:or|and)?[\s,/&;|]*$", re.I)
#: digits left beside the numbers found (four or more are reported: part of a number that was not read)
_LEFT_DIGITS = re.compile(r"\+?\(?\d[\d\s().\-]*\d")
#: a cell holding one US number written the common ways and nothing else: "617-555-0142", "(617) 555-0142",
#: "+1 617.555.0142" (``phone_numbers`` checks it with phonenumbers and falls back to the matcher)
_ONE_NUMBER = re.compile(r"(?:\+?1[\s.\-]?)?\(?([2-9]\d\d)\)?[\s.\-]?([2-9]\d\d)[\s.\-]?(\d{4})", re.ASCII)

Label = tuple[PhoneRole | None, str] | None  # (role or None for dropped, what it is), None: no role word


def _label(text: str) -> Label:
    """The role the last role word in ``text`` gives, or None when it holds none."""
    found: tuple[int, PhoneRole | None, str] | None = None
    for pattern, role, what in _ROLE_WORDS:
        for m in pattern.finditer(text):
            if found is None or m.start() > found[0]:
                found = (m.start(), role, what)
    return None if found is None else (found[1], found[2])


def phone_numbers(
    raw: object, role: PhoneRole = PhoneRole.MAIN, field: str = "phone"
) -> tuple[list[Phone], list[InvalidValue]]:
    """Every US number in a cell, in E.164, with its role and extension, and the reasons for what was not kept.

    ``phonenumbers.PhoneNumberMatcher`` finds the numbers. A label right after a number
    ("(fax)", "(intake)") or the last role word before it ("Intake: ...", "F: ...") gives its role; a
    number joined to the one before by "or", "/" or "," shares its role; else ``role``. Fax and TTY
    numbers, non-US numbers and digits that cannot be read are reasons, never a number to call."""
    text = _text(raw)
    if not text:
        return [], [InvalidValue(field, "empty")]
    if len(text) > 400:
        return [], [InvalidValue(field, "too long to be phone numbers")]
    plain = _ONE_NUMBER.fullmatch(text)
    if plain is not None:  # the usual cell, one number and nothing else: no need to search it
        number = phonenumbers.PhoneNumber(country_code=1, national_number=int("".join(plain.groups())))
        # valid for the US is valid (the US is the first region of +1 is_valid_number tries), at half its cost;
        # else the territories (787, 671 ...) are tried too
        if phonenumbers.is_valid_number_for_region(number, "US") or phonenumbers.is_valid_number(number):
            return [Phone(number=f"+1{number.national_number}", role=role)], []
    matches = list(phonenumbers.PhoneNumberMatcher(text, "US"))
    found: list[Phone] = []
    problems: list[InvalidValue] = []
    leftover: list[str] = []
    cursor = 0  # where the text not yet read as a label or a number starts
    previous: Label = None
    for i, match in enumerate(matches):
        before = text[cursor : match.start]
        leftover.append(before)
        nxt = matches[i + 1].start if i + 1 < len(matches) else len(text)
        after = text[match.end : nxt]
        suffix = _SUFFIX.match(after) or (_LAST_SUFFIX.match(after) if i + 1 == len(matches) else None)
        label = _label(suffix.group(1)) if suffix else None
        cursor = match.end + (suffix.end() if label is not None and suffix else 0)
        if label is None:
            label = _label(before)
        if label is None and previous is not None and i and _CONNECTIVE.match(before):
            label = previous
        previous = label
        number = match.number
        if number.country_code != 1:
            problems.append(InvalidValue(field, f"{match.raw_string!r} is not a US or US-territory number"))
            continue
        if label is not None and label[0] is None:
            problems.append(InvalidValue(field, f"{label[1]} number {match.raw_string!r} dropped"))
            continue
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        extension = number.extension or ""
        if not extension.isdigit() or len(extension) > 10:
            if extension:
                problems.append(InvalidValue(field, f"extension {extension[:20]!r} of {match.raw_string!r} not kept"))
            extension = ""
        found.append(
            Phone(
                number=e164, role=label[0] if label is not None and label[0] is not None else role, extension=extension
            )
        )
    leftover.append(text[cursor:])
    if not matches:
        try:
            return [Phone(number=phone_e164(text, field), role=role)], []
        except InvalidValue as exc:
            return [], [exc]
    for rest in leftover:  # digits left between and around the numbers: a number's last four ("-5439/5440") too
        for m in _LEFT_DIGITS.finditer(rest):
            if len(_NOT_DIGIT.sub("", m.group())) >= 4:  # not "TTY 711", "988", "Rm 101"
                problems.append(InvalidValue(field, f"unreadable number {m.group()!r}; the others are kept"))
    return found, problems


def _phones(raw: Mapping[str, Any], problem: Any) -> list[Phone]:
    candidates: list[tuple[object, PhoneRole, str]] = []
    for key, role in (
        ("phone", PhoneRole.MAIN),
        ("intake_phone", PhoneRole.INTAKE),
        ("hotline_phone", PhoneRole.HOTLINE),
    ):
        value = raw.get(key)
        for item in value if isinstance(value, list) else [value]:
            candidates.append((item, role, key))
    for i, item in enumerate(raw.get("phones") or ()):
        if isinstance(item, Mapping):
            role_text = _text(item.get("role")).lower()
            role = PhoneRole(role_text) if role_text in PhoneRole._value2member_map_ else PhoneRole.MAIN
            candidates.append((item.get("number"), role, f"phones.{i}"))
        else:
            candidates.append((item, PhoneRole.MAIN, f"phones.{i}"))
    phones: list[Phone] = []
    seen: set[tuple[str, PhoneRole, str]] = set()
    for value, role, fld in candidates:
        if not _present(value):
            continue
        numbers, problems = phone_numbers(value, role, fld)
        for exc in problems:
            problem(exc.field, exc.reason)
        for phone in numbers:  # one number at two extensions is two lines to call
            if (phone.number, phone.role, phone.extension) not in seen:
                seen.add((phone.number, phone.role, phone.extension))
                phones.append(phone)
    return phones


#: a record's availability entries, each judged once: (index, entry, informative, level) where the entry is an
#: object; level is None when it says nothing or names no level we know
_Entry = tuple[int, Any, bool, frozenset[LevelOfCare] | None]


def _entries(raw: Mapping[str, Any], ctx: FeedContext) -> list[_Entry]:
    out: list[_Entry] = []
    for i, entry in enumerate(raw.get("availability") or ()):
        if not isinstance(entry, Mapping):
            out.append((i, entry, False, None))
            continue
        informative = _informative(entry)
        out.append((i, entry, informative, _observation_level(entry, ctx) if informative else None))
    return out


_SERVICE_FIELDS = ("levels_of_care", "payment", "populations", "languages")

#: a row's service cells as mapped: levels, payment, populations, languages, and the terms no group maps by field
_MappedServices = tuple[
    frozenset[LevelOfCare],
    frozenset[Payment],
    frozenset[Population],
    frozenset[str],
    tuple[tuple[str, tuple[str, ...]], ...],
]


def _services(raw: Mapping[str, Any], ctx: FeedContext, out: NormalizedRecord, entries: Sequence[_Entry]) -> Services:
    cells = tuple(raw.get(fld) for fld in _SERVICE_FIELDS)
    levels, payment, populations, languages, lost = _remembered(ctx, "services", cells, lambda: _map_services(raw, ctx))
    for fld, terms in lost:
        out.unmapped[fld] = terms
    # a level with availability is a level the center offers
    extra_levels: set[LevelOfCare] = set()
    for _i, _entry, informative, level in entries:
        if informative and level:
            extra_levels |= level
    return Services(
        levels_of_care=tuple(levels | extra_levels),
        payment=tuple(payment),
        populations=tuple(populations),
        languages=tuple(languages),
    )


def _map_services(raw: Mapping[str, Any], ctx: FeedContext) -> _MappedServices:
    vm = ctx.value_maps
    terms = {fld: _terms(raw.get(fld)) for fld in _SERVICE_FIELDS}
    levels = vocabulary.map_levels_of_care(terms["levels_of_care"], vm.get("levels_of_care"))
    payment = vocabulary.map_payment(terms["payment"], vm.get("payment"))
    populations = vocabulary.map_populations(terms["populations"], vm.get("populations"))
    languages, lang_unmapped = vocabulary.map_languages(terms["languages"])
    unmapped_by_field = {
        "levels_of_care": levels.unmapped,
        "payment": payment.unmapped,
        "populations": populations.unmapped,
        "languages": lang_unmapped,
    }
    # one column of mixed codes ("OTP/MD/DT/SF") feeds several groups: a term another group maps is not lost
    mapped_somewhere = {t.lower() for fld, ts in terms.items() for t in ts if t not in unmapped_by_field[fld]}
    lost_by_field = []
    for fld, unmapped in unmapped_by_field.items():
        lost = tuple(t for t in unmapped if t.lower() not in mapped_somewhere)
        if lost:
            lost_by_field.append((fld, lost))
    return levels.values, payment.values, populations.values, frozenset(languages), tuple(lost_by_field)


def _observation_level(entry: Mapping[str, Any], ctx: FeedContext) -> frozenset[LevelOfCare] | None:
    cell = entry.get("level_of_care")
    return _remembered(ctx, "level", (cell,), lambda: _level_of(cell, ctx))


def _level_of(cell: object, ctx: FeedContext) -> frozenset[LevelOfCare] | None:
    mapped = vocabulary.map_levels_of_care(_terms(cell), ctx.value_maps.get("levels_of_care"))
    if not mapped.values:
        return None
    return frozenset((next(lv for lv in LEVEL_PRIORITY if lv in mapped.values),))


_WAITLIST_N = re.compile(r"wait\s*-?\s*list\w*\s*[(:\-–]?\s*(\d{1,5})", re.I)
_COUNT_WORDS = r"(?:beds?|slots?|openings?|spots?|places?)"
_BEDS_N = (  # a count inside a status cell: "5", "2 beds", "3 open", "12 available beds", "Beds: 4", "Open (4)"
    re.compile(
        rf"^(\d{{1,5}})(?:\s+(?:open|available|vacant|free))?(?:\s+{_COUNT_WORDS})?"
        rf"(?:\s+(?:open|available|left|free))?$",
        re.I,
    ),
    re.compile(rf"^(?:{_COUNT_WORDS}|open|available|vacant)\s*(?:open|available)?\s*[:(]\s*(\d{{1,5}})\s*\)?$", re.I),
)


#: "24/7", "24 hours": words of a status, not a count
_ROUND_THE_CLOCK = re.compile(r"24\s*/\s*7|24[\s-]*(?:hours?|hrs?)\b", re.I)


_FIGURE_FIELDS = (
    "beds_available",
    "beds_total",
    "waitlist_size",
    "accepting",
    "appointments_available",
    "next_appointment_at",
)


def _informative(entry: Mapping[str, Any]) -> bool:
    """Does a partner's availability entry say anything? ("N/A" in every cell does not.)"""
    for k in _FIGURE_FIELDS:
        value = entry.get(k)
        if value is not None and _present(value):
            return True
    status = _text(entry.get("status"))
    return bool(status) and vocabulary.map_status(status) is not AvailabilityStatus.UNKNOWN


class _TooOld(InvalidValue):
    """A report older than the feed keeps: the partner stopped reporting the level (its figures go)."""


def _observations(
    raw: Mapping[str, Any], center: Center, ctx: FeedContext, problem: Any, entries: Sequence[_Entry]
) -> tuple[list[Availability], set[LevelOfCare]]:
    """The record's observations, one per level, and the levels whose figures were given but rejected
    (their previous figures stay: a bad value never removes good data)."""
    combined: dict[LevelOfCare, dict[str, Any]] = {}
    rejected: set[LevelOfCare] = set()
    for i, entry, informative, level_set in entries:
        fld = f"availability.{i}"
        if not isinstance(entry, Mapping):
            problem(fld, "not an object")
            continue
        if not informative:
            continue  # "N/A", blank: nothing reported for this level
        if level_set is None:
            level_text = "; ".join(_terms(entry.get("level_of_care")))
            problem(f"{fld}.level_of_care", f"unrecognized level of care {level_text[:40]!r}")
            continue
        level = next(iter(level_set))
        try:
            obs = _observation_fields(entry, raw, ctx, fld, problem)
        except _TooOld as exc:
            problem(exc.field, exc.reason)
            continue
        except InvalidValue as exc:
            problem(exc.field, exc.reason)
            rejected.add(level)
            continue
        prev = combined.get(level)
        combined[level] = obs if prev is None else _combine(prev, obs)

    result = []
    for level, obs in combined.items():
        clips: list[tuple[str, str]] = []
        obs["notes"] = _clipped(obs["notes"], 500, f"availability.{level.value}.notes", clips, "notes")
        try:
            result.append(
                Availability(
                    center_id=center.id,
                    level_of_care=level,
                    source=ctx.source,
                    checked_at=ctx.now,
                    freshness_seconds=ctx.freshness_seconds,
                    **obs,
                )
            )
        except ValidationError as exc:
            for r in rejections_from(exc, center.source_id):
                problem(f"availability.{level.value}.{r.field}", r.reason)
            rejected.add(level)
            continue
        for fld, reason in clips:
            problem(fld, reason)
    return result, rejected - {o.level_of_care for o in result}


def _observation_fields(
    entry: Mapping[str, Any], raw: Mapping[str, Any], ctx: FeedContext, fld: str, problem: Any = None
) -> dict[str, Any]:
    status_text = _text(entry.get("status"))
    beds = count(entry.get("beds_available"), f"{fld}.beds_available")
    total = count(entry.get("beds_total"), f"{fld}.beds_total")
    waitlist = count(entry.get("waitlist_size"), f"{fld}.waitlist_size")
    if beds is not None and total is not None and beds > total:
        raise InvalidValue(f"{fld}.beds_available", f"{beds} available exceeds {total} total")
    if status_text:
        unread = status_text  # what of the status's words no count was read from
        if waitlist is None and (m := _WAITLIST_N.search(status_text)):
            waitlist = int(m.group(1))
            unread = status_text[: m.start(1)] + status_text[m.end(1) :]
        if beds is None:
            for pattern in _BEDS_N:
                if m := pattern.match(status_text):
                    beds = int(m.group(1))
                    unread = ""
                    break
        if problem is not None and any(ch.isdigit() for ch in _ROUND_THE_CLOCK.sub("", unread)):
            # "3 beds available, waitlist 5", "Limited (2)": the status is read, a count in its words is not
            problem(f"{fld}.status", f"a number in {status_text[:60]!r} was not read as a count; the status is kept")
    status = vocabulary.map_status(status_text) if status_text else None
    if status_text and status is None and beds is None:
        raise InvalidValue(f"{fld}.status", f"unrecognized status {status_text[:40]!r}")
    appointments = count(entry.get("appointments_available"), f"{fld}.appointments_available")
    next_raw = entry.get("next_appointment_at")
    next_appointment = None
    if _present(next_raw):
        try:
            next_appointment = timestamp(next_raw, ctx.timezone, f"{fld}.next_appointment_at", ctx.now, upcoming=True)
        except InvalidValue as exc:
            if problem is None:
                raise
            problem(exc.field, f"{exc.reason}; the level's other figures are kept")  # a time is not the figure
    if beds is None and appointments is not None and (status is None or status in OPEN_STATUSES):
        status = AvailabilityStatus.AVAILABLE if appointments else AvailabilityStatus.FULL
    if beds is not None:
        by_count = (
            AvailabilityStatus.FULL
            if beds == 0
            else AvailabilityStatus.LIMITED
            if beds <= ctx.limited_threshold
            else AvailabilityStatus.AVAILABLE
        )
        if status is None or status in OPEN_STATUSES:
            status = by_count
        elif status is AvailabilityStatus.FULL and beds > 0:
            raise InvalidValue(f"{fld}.status", f"'full' contradicts {beds} beds available")
    if status is None:
        status = AvailabilityStatus.WAITLIST if waitlist else AvailabilityStatus.UNKNOWN
    accepting_text = _text(entry.get("accepting"))
    accepting = vocabulary.map_accepting(accepting_text) if accepting_text else None
    if accepting_text and accepting is None:
        raise InvalidValue(f"{fld}.accepting", f"unrecognized value {accepting_text[:40]!r}")
    if accepting is Accepting.NO and status in OPEN_STATUSES:
        status = AvailabilityStatus.FULL if not beds else AvailabilityStatus.WAITLIST
    reported_raw = entry.get("reported_at") or raw.get("reported_at")
    reported_at = (
        timestamp(reported_raw, ctx.timezone, f"{fld}.reported_at", ctx.now) if _present(reported_raw) else ctx.now
    )
    if ctx.max_report_age_seconds is not None:
        age = (ctx.now - reported_at).total_seconds()
        if age > ctx.max_report_age_seconds:
            raise _TooOld(
                f"{fld}.reported_at",
                f"reported {vocabulary.age_words(age)} ago ({reported_at:%Y-%m-%d}); older than this feed keeps",
            )
    return {
        "status": status,
        "beds_available": beds,
        "beds_total": total,
        "accepting": accepting,
        "waitlist_size": waitlist,
        "appointments_available": appointments,
        "next_appointment_at": next_appointment,
        "notes": _text(entry.get("notes")),  # cut (with a word) once the level's reports are combined
        "reported_at": reported_at,
    }


_STATUS_RANK = {
    s: i
    for i, s in enumerate(
        (
            AvailabilityStatus.AVAILABLE,
            AvailabilityStatus.LIMITED,
            AvailabilityStatus.ASSESSMENT_REQUIRED,
            AvailabilityStatus.WAITLIST,
            AvailabilityStatus.FULL,
            AvailabilityStatus.CLOSED,
            AvailabilityStatus.UNKNOWN,
        )
    )
}


def _combine(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two reports for one level (e.g. men's and women's residential beds): sum what is counted."""

    def add(x: int | None, y: int | None) -> int | None:
        return None if x is None and y is None else (x or 0) + (y or 0)

    out = dict(a)
    out["beds_available"] = add(a["beds_available"], b["beds_available"])
    out["beds_total"] = (
        add(a["beds_total"], b["beds_total"]) if a["beds_total"] is not None and b["beds_total"] is not None else None
    )
    out["waitlist_size"] = add(a["waitlist_size"], b["waitlist_size"])
    out["appointments_available"] = add(a["appointments_available"], b["appointments_available"])
    nexts = [t for t in (a["next_appointment_at"], b["next_appointment_at"]) if t is not None]
    out["next_appointment_at"] = min(nexts, default=None)
    out["status"] = min(a["status"], b["status"], key=lambda s: _STATUS_RANK[s])
    out["notes"] = "; ".join(n for n in (a["notes"], b["notes"]) if n)
    out["reported_at"] = max(a["reported_at"], b["reported_at"])
    if a["accepting"] != b["accepting"]:
        out["accepting"] = a["accepting"] or b["accepting"]
    return out


# --------------------------------------------------------------------------------------------------


def _null_set(values: Iterable[str]) -> frozenset[str]:
    return null_words(values if isinstance(values, frozenset | tuple) else tuple(values))


@functools.lru_cache(maxsize=64)
def _longest(nulls: frozenset[str]) -> int:
    return max(map(len, nulls), default=0)


def _plain(text: str) -> bool:
    """Is ``text`` as ``_text`` leaves it (no whitespace but single spaces between words)? Every character
    ``str.split`` splits on but the space is unprintable, so a printable text with no double, leading or trailing
    space is."""
    return text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " "


def _is_null(value: object, nulls: frozenset[str]) -> bool:
    if not isinstance(value, str):
        return False
    if len(value) > _longest(nulls) and _plain(value):  # folding spaces leaves it as long (lower() never shortens)
        return False
    return " ".join(value.lower().split()) in nulls


def without_nulls(raw: Mapping[str, Any], nulls: frozenset[str]) -> dict[str, Any]:
    """The record with null words ('NA', '-', 'null' ...) removed: from fields, list items and entries."""
    if not nulls:
        return dict(raw)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if _is_null(value, nulls):
            continue
        if isinstance(value, list):
            value = [without_nulls(v, nulls) if isinstance(v, Mapping) else v for v in value if not _is_null(v, nulls)]
        out[key] = value
    return out


def _with_address_parts(raw: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Fill street, city, state and ZIP from a one-line ``address`` where the record lacks them."""
    parts = split_one_line(_text(raw.get("address")))
    out = dict(raw)
    for key in ("address_1", "address_2", "city", "state", "postal_code"):
        value = getattr(parts, key)
        if value and not _present(out.get(key)):
            out[key] = value
    return out, parts.problem


def _digits(raw: object) -> str:
    return _NOT_DIGIT.sub("", _text(raw))


def _text(raw: object) -> str:
    if type(raw) is str and _plain(raw):  # the usual cell: as it is
        return raw
    if raw is None:
        return ""
    if isinstance(raw, float) and math.isnan(raw):
        return ""
    return " ".join(str(raw).replace("\xa0", " ").split())


def _present(raw: object) -> bool:
    return _text(raw).lower() not in BLANK_VALUES


def _number(raw: object, field: str) -> float:
    if isinstance(raw, bool):
        raise InvalidValue(field, "not a number")
    try:
        value = float(raw) if isinstance(raw, int | float) else float(_text(raw))
    except (TypeError, ValueError) as exc:
        raise InvalidValue(field, f"{_text(raw)[:30]!r} is not a number") from exc
    if not math.isfinite(value):
        raise InvalidValue(field, "not a finite number")
    return value


def _terms(raw: object) -> list[str]:
    """A list field's terms: a cell split on ; | , (each list item too: "DT; RES" in one item is two)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [t for t in _TERM_SEPARATOR.split(raw) if t.strip()]
    if isinstance(raw, Iterable) and not isinstance(raw, Mapping | bytes):
        return [t for item in raw if _text(item) for t in _terms(_text(item))]
    return [_text(raw)]
