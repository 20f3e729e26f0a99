"""``near()``: which centers near here can take someone right now?

The location is a latitude/longitude, a ZIP code (offline centroid) or a city and its state ("Cambridge,
MA": the mean of its ZIP centroids, offline); never a network call on this path. Filters OR within a
group and AND across groups. Results come nearest-first with the distance, the center's record and
per-level availability carrying its status, data age and a freshness flag. Past an observation's
freshness window the public sees ``unknown`` (with when it was last confirmed); operators still see
the last figures, marked stale. An empty answer says what was searched and whether a wider radius or
fewer filters would find something.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from aggregator import geography
from aggregator.errors import InvalidQuery, PlaceNotFound, UnknownZip
from aggregator.model import (
    AvailabilityStatus,
    LevelOfCare,
    Payment,
    Population,
    Source,
)
from aggregator.store import (
    _PADDING,
    GROUPS,
    MAX_EXAMINED,
    OBSERVATION_DEFAULTS,
    REPORTED_BY_SLOT,
    DocumentHits,
    RawHit,
    SearchHits,
    Store,
    _iso,
    figure_fields,
    read_doc,
    read_doc_positional,
)
from aggregator.vocabulary import age_words as age_words  # the one age formatter, where the CLI and page find it

DEFAULT_RADIUS_MI = 25.0
MAX_RADIUS_MI = 100.0
DEFAULT_LIMIT = 10
MAX_LIMIT = 50

Audience = Literal["public", "operator"]

#: values one filter may take in one query (every vocabulary fits; a query's work stays bounded)
MAX_FILTER_VALUES = 20

_VOCAB: dict[str, type[StrEnum] | None] = {
    "levels_of_care": LevelOfCare,
    "payment": Payment,
    "populations": Population,
    "languages": None,  # ISO 639-1
}


@dataclass(frozen=True)
class Origin:
    latitude: float
    longitude: float
    resolved_from: str  # "coordinates" | "zip" | "city" | "address"
    zip: str | None = None
    place: str | None = None  # "Cambridge, MA" for a ZIP; "Cambridge, MA (centroid of 6 ZIP codes)" for a city

    def as_dict(self) -> dict[str, Any]:
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "resolved_from": self.resolved_from,
            "zip": self.zip,
            "place": self.place,
        }


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    distance_mi: float
    center: dict[str, Any]
    availability: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "distance_mi": self.distance_mi, **self.center, "availability": self.availability}


@dataclass
class NearAnswer:
    origin: Origin
    radius_mi: float
    limit: int
    filters: dict[str, list[str]]
    available_only: bool
    results: list[Hit]
    hint: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin.as_dict(),
            "radius_mi": self.radius_mi,
            "limit": self.limit,
            "filters": self.filters,
            "available_only": self.available_only,
            "count": len(self.results),
            "results": [h.as_dict() for h in self.results],
            "hint": self.hint,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------------------------------


def resolve_zip(raw: str) -> Origin:
    text = raw.strip()
    m = re.fullmatch(r"(\d{5})(?:-\d{4})?", text)
    if not m:
        raise InvalidQuery("zip", f"{text[:20]!r} is not a 5-digit ZIP code")
    place = geography.zip_place(m.group(1))
    if place is None:
        raise UnknownZip(m.group(1))
    return Origin(place.latitude, place.longitude, "zip", place.zip_code, f"{place.city}, {place.state}")


def resolve_coordinates(latitude: float, longitude: float) -> Origin:
    for name, value, bound in (("lat", latitude, 90.0), ("lon", longitude, 180.0)):
        if not isinstance(value, int | float) or value != value or not -bound <= value <= bound:
            raise InvalidQuery(name, f"must be a number within -{bound:g}..{bound:g}")
    if abs(latitude) > 85.05112878:
        raise InvalidQuery("lat", "must be within -85.05..85.05 (the map's limit)")
    return Origin(float(latitude), float(longitude), "coordinates")


_COORDINATES = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*")
_CITY_STATE = re.compile(r"\s*([^\W\d][^,\d]*?)\s*,\s*([A-Za-z][A-Za-z .]*?)\s*(?:,\s*(?:US|USA))?\s*", re.IGNORECASE)


def split_city_state(text: str) -> tuple[str, str] | None:
    """'Cambridge, MA', 'Cambridge, Massachusetts', 'cambridge ma', 'New York NY' -> (city, 2-letter state);
    None for anything else (an address has digits; an unknown state is not a state)."""
    text = " ".join(text.split())
    if m := _CITY_STATE.fullmatch(text):
        state = geography.state_code(m.group(2))
        return (m.group(1), state) if state else None
    if "," in text or any(ch.isdigit() for ch in text):
        return None
    words = text.split(" ")
    for n in (1, 2, 3):  # 'Cambridge MA', 'Trenton New Jersey', 'Washington District of Columbia'
        if len(words) > n and (state := geography.state_code(" ".join(words[-n:]))):
            return " ".join(words[:-n]), state
    return None


def resolve_city(city: str, state: str) -> Origin:
    """A city and its state at the mean centroid of the city's ZIP codes (offline, the ZIP table).

    Raises PlaceNotFound naming the city and suggesting close names of that state."""
    found = geography.city_place(city, state)
    if found is None:
        alike = geography.similar_cities(city, state)
        raise _place_not_found(
            f"{city}, {state}",
            f"no city {city!r} in {geography.STATE_NAMES.get(state, state)} in the ZIP data"
            + (f" (did you mean {' or '.join(alike)}?)" if alike else "")
            + "; try a ZIP code",
        )
    n = len(found.zip_codes)
    how = f"centroid of {n} ZIP codes" if n > 1 else f"centroid of ZIP code {found.zip_codes[0]}"
    return Origin(found.latitude, found.longitude, "city", None, f"{found.city}, {found.state} ({how})")


def _place_not_found(place: str, reason: str) -> PlaceNotFound:
    exc = PlaceNotFound(place)
    exc.reason = reason
    exc.args = (f"place: {reason}",)
    return exc


def resolve_place(text: str) -> Origin:
    """A place as people type it, offline: a ZIP code, 'lat,lon', or 'City, ST' (a city and its state).

    Raises InvalidQuery naming ``place`` for anything else (a street address: the geocoder's job),
    UnknownZip for a ZIP code that does not exist, PlaceNotFound for a city the ZIP data does not know."""
    origin = _resolve_place(text, strict=True)
    assert origin is not None
    return origin


def offline_origin(text: str) -> Origin | None:
    """``resolve_place``, but None where the geocoder may know better: an address, or a 'City, ST' the
    ZIP data does not know. Still raises InvalidQuery/UnknownZip for a bad ZIP, coordinates or empty text."""
    return _resolve_place(text, strict=False)


def _resolve_place(text: str, *, strict: bool) -> Origin | None:
    text = " ".join(str(text).split())
    if not text:
        raise InvalidQuery("place", "enter a ZIP code, 'lat,lon' or 'City, ST'")
    if re.fullmatch(r"\d{5}(?:-\d{4})?", text):
        return resolve_zip(text)
    if m := _COORDINATES.fullmatch(text):
        return resolve_coordinates(float(m.group(1)), float(m.group(2)))
    if (parts := split_city_state(text)) is not None:
        try:
            return resolve_city(*parts)
        except PlaceNotFound:
            if strict:
                raise
            return None
    if strict:
        raise InvalidQuery("place", f"{text[:40]!r} is not a ZIP code, 'lat,lon' or 'City, ST'")
    return None


def _filters(filters: Mapping[str, Iterable[str]] | None) -> dict[str, list[str]]:
    clean: dict[str, list[str]] = {}
    for group, given in (filters or {}).items():
        if group not in _VOCAB:
            raise InvalidQuery(group, f"unknown filter; use one of {', '.join(_VOCAB)}")
        values = list(given)
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidQuery(
                group,
                f"at most {MAX_FILTER_VALUES} values per filter (got {len(values):,}): "
                "one query's work on the store is bounded",
            )
        vocab = _VOCAB[group]
        out = []
        for v in values:
            value = str(v).strip().lower()
            if vocab is not None and value not in vocab._value2member_map_:
                raise InvalidQuery(group, f"{value[:40]!r} is not one of {', '.join(m.value for m in vocab)}")
            if vocab is None and not re.fullmatch(r"[a-z]{2}", value):
                raise InvalidQuery(group, f"{value[:40]!r} is not an ISO 639-1 language code")
            if value not in out:
                out.append(value)
        if out:
            clean[group] = sorted(out)
    return clean


@dataclass(frozen=True)
class NearPlan:
    """A checked near-you query: where, how far, which filters, and what ``Store.search`` is asked."""

    origin: Origin
    radius: float
    limit: int
    filters: dict[str, list[str]]
    available_only: bool
    now: datetime
    notes: tuple[str, ...]

    def search(self) -> dict[str, Any]:
        """``Store.search``'s keyword arguments (the level-of-care filter searches the per-level indexes; the
        rest are index tokens)."""
        return _search_args(self.origin, self.radius, self.limit, self.filters, self.available_only, self.now)


def near(
    store: Store,
    *,
    latitude: float | None = None,
    longitude: float | None = None,
    zip: str | None = None,
    place: str | None = None,
    radius_mi: float = DEFAULT_RADIUS_MI,
    levels_of_care: Iterable[str] = (),
    payment: Iterable[str] = (),
    populations: Iterable[str] = (),
    languages: Iterable[str] = (),
    available_only: bool = False,
    limit: int = DEFAULT_LIMIT,
    audience: Audience = "public",
    now: datetime | None = None,
    origin: Origin | None = None,
    helpline: str = "",
) -> NearAnswer:
    """Centers near a place, nearest first. See the module docstring for the contract.

    ``radius_mi`` is capped at ``MAX_RADIUS_MI`` and ``limit`` at ``MAX_LIMIT`` (the answer says
    which were used). ``place``: a ZIP, 'lat,lon' or 'City, ST', resolved offline (``resolve_place``).
    Raises ``InvalidQuery`` (naming the parameter), ``UnknownZip`` or ``PlaceNotFound``.

    The same in three steps, for a caller that talks to Redis itself (the HTTP API, asynchronously):
    ``plan_near``, ``Store.search_documents(**plan.search())``, ``answer_documents`` (or ``Store.search`` and
    ``answer_near``: decoded first), and ``add_hint`` when empty."""
    plan = plan_near(
        latitude=latitude,
        longitude=longitude,
        zip=zip,
        place=place,
        radius_mi=radius_mi,
        levels_of_care=levels_of_care,
        payment=payment,
        populations=populations,
        languages=languages,
        available_only=available_only,
        limit=limit,
        now=now,
        origin=origin,
    )
    answer = answer_documents(plan, store.search_documents(**plan.search()), audience)
    if not answer.results:
        add_hint(store, plan, answer, helpline)
    return answer


def plan_near(
    *,
    latitude: float | None = None,
    longitude: float | None = None,
    zip: str | None = None,
    place: str | None = None,
    radius_mi: float = DEFAULT_RADIUS_MI,
    levels_of_care: Iterable[str] = (),
    payment: Iterable[str] = (),
    populations: Iterable[str] = (),
    languages: Iterable[str] = (),
    available_only: bool = False,
    limit: int = DEFAULT_LIMIT,
    now: datetime | None = None,
    origin: Origin | None = None,
) -> NearPlan:
    """``near``'s query checked and resolved (offline), before the store is asked."""
    if origin is None:
        if place is not None and (zip is not None or latitude is not None or longitude is not None):
            raise InvalidQuery("place", "give a place, a ZIP code or lat/lon, only one")
        if zip is not None and (latitude is not None or longitude is not None):
            raise InvalidQuery("zip", "give a ZIP code or lat/lon, not both")
        if place is not None:
            origin = resolve_place(place)
        elif zip is not None:
            origin = resolve_zip(zip)
        elif latitude is not None and longitude is not None:
            origin = resolve_coordinates(latitude, longitude)
        else:
            raise InvalidQuery("location", "give a ZIP code or both lat and lon")
    if not isinstance(radius_mi, int | float) or radius_mi != radius_mi or radius_mi <= 0:
        raise InvalidQuery("radius_mi", "must be a positive number of miles")
    if not isinstance(limit, int) or limit < 1:
        raise InvalidQuery("limit", "must be a whole number of at least 1")
    notes = []
    if radius_mi > MAX_RADIUS_MI:
        notes.append(f"radius capped at {MAX_RADIUS_MI:g} miles")
    if limit > MAX_LIMIT:
        notes.append(f"limit capped at {MAX_LIMIT}")
    filters = _filters(
        {
            "levels_of_care": levels_of_care,
            "payment": payment,
            "populations": populations,
            "languages": languages,
        }
    )
    return NearPlan(
        origin=origin,
        radius=float(min(radius_mi, MAX_RADIUS_MI)),
        limit=min(limit, MAX_LIMIT),
        filters=filters,
        available_only=available_only,
        now=now or datetime.now(UTC),
        notes=tuple(notes),
    )


def answer_near(plan: NearPlan, hits: SearchHits, audience: Audience) -> NearAnswer:
    """The answer to ``plan`` from the store's hits: each result's levels judged for freshness (no hint)."""
    now_ms = plan.now.timestamp() * 1000
    return _answer(plan, [_hit(h, now_ms, audience) for h in hits], hits.stopped)


def answer_documents(plan: NearPlan, found: DocumentHits, audience: Audience) -> NearAnswer:
    """``answer_near`` of the hits as ``Store.search_documents`` returned them (each shaped from its stored slots,
    ``_hit_doc``)."""
    now_ms = plan.now.timestamp() * 1000
    return _answer(plan, [_hit_doc(i, d, doc, now_ms, audience) for i, d, doc in found], found.stopped)


def _answer(plan: NearPlan, results: list[Hit], stopped: bool) -> NearAnswer:
    notes = list(plan.notes)
    if stopped:
        notes.append(
            f"searched the nearest {MAX_EXAMINED:,} centers only: a place farther away may also match; "
            "narrow the radius or the filters"
        )
    if plan.available_only:  # as shown: a hit whose figures read open (near.lua judges the same, from the field u)
        levels = plan.filters.get("levels_of_care")
        results = [h for h in results if _shows_open(h, levels)]
    return NearAnswer(
        origin=plan.origin,
        radius_mi=plan.radius,
        limit=plan.limit,
        filters=plan.filters,
        available_only=plan.available_only,
        results=results,
        notes=notes,
    )


_OPEN = frozenset({AvailabilityStatus.AVAILABLE.value, AvailabilityStatus.LIMITED.value})
_OPERATOR = Source.OPERATOR.value


def _shows_open(hit: Hit, levels: Sequence[str] | None) -> bool:
    """Does the hit show a fresh open figure (available or limited), at one of ``levels`` if given?"""
    return any(
        v["fresh"] and v["status"] in _OPEN and (not levels or v["level_of_care"] in levels) for v in hit.availability
    )


def add_hint(store: Store, plan: NearPlan, answer: NearAnswer, helpline: str = "") -> None:
    """On an empty answer: what was searched and what a wider radius or fewer filters would find."""
    answer.hint = _hint(store, plan.origin, plan.radius, plan.filters, plan.available_only, plan.now, helpline)


def _search(
    store: Store,
    origin: Origin,
    radius: float,
    limit: int,
    filters: dict[str, list[str]],
    available_only: bool,
    now: datetime,
) -> SearchHits:
    return store.search(**_search_args(origin, radius, limit, filters, available_only, now))


def _search_args(
    origin: Origin,
    radius: float,
    limit: int,
    filters: dict[str, list[str]],
    available_only: bool,
    now: datetime,
) -> dict[str, Any]:
    # the level-of-care filter is applied by searching the per-level indexes; the rest by tokens
    groups = [[f"{GROUPS[g]}:{v}" for v in values] for g, values in filters.items() if g != "levels_of_care"]
    return {
        "longitude": origin.longitude,
        "latitude": origin.latitude,
        "radius_mi": radius,
        "limit": limit,
        "groups": groups,
        "levels": filters.get("levels_of_care", ()),
        "level_filter": "levels_of_care" in filters,
        "available_only": available_only,
        "now": now,
        "first_radius_mi": min(radius, 2.0 if limit <= 10 else 5.0),
    }


# --------------------------------------------------------------------------------------------------
# Results


def _hit(raw: RawHit, now_ms: float, audience: Audience) -> Hit:
    center_id, distance, center, observations = raw
    _date_sources(center, observations)
    return Hit(center_id, round(distance, 2), center, _levels(center, observations, now_ms, audience))


def _hit_doc(center_id: str, distance: float, doc: bytes, now_ms: float, audience: Audience) -> Hit:
    """``_hit`` of a read document as Redis returned it, shaped straight from its stored slots: only the figure
    shown for each level is spelled out (``_hit`` of ``read_doc``'s observations gives the same, and reads the
    older stored forms this leaves to it)."""
    found = read_doc_positional(doc)
    if found is None:
        return _hit_decoded(center_id, distance, doc, now_ms, audience)
    center, groups = found
    best: dict[str, tuple[bool, int, str, str, str, list[Any]]] = {}
    newest: dict[str, list[Any]] = {}  # each record's newest report of its own (an operator's is the facility's)
    top: list[Any] | None = None  # the newest of them all
    for g in groups:
        if type(g) is not list:
            return _hit_decoded(center_id, distance, doc, now_ms, audience)
        record = g[0]
        for i in range(1, len(g), 2):
            o = g[i + 1]
            if type(o) is not list:
                return _hit_decoded(center_id, distance, doc, now_ms, audience)
            rt = o[2]
            fresh = rt + o[1] * 1000 > now_ms
            level, _, source = g[i].partition("|")
            cur = best.get(level)
            if cur is None or (fresh, rt) > (cur[0], cur[1]):
                best[level] = (fresh, rt, level, source, record, o)
            if source != _OPERATOR:
                if top is None or rt > top[2]:
                    top = o
                mine = newest.get(record)
                if mine is None or rt > mine[2]:
                    newest[record] = o
    sources = center.get("sources")
    if sources:
        if len(sources) == 1:
            sources[0]["reported_at"] = _reported(top) if top is not None else None
        else:
            for src in sources:
                mine = newest.get(src["id"])
                src["reported_at"] = _reported(mine) if mine is not None else None
    return Hit(center_id, round(distance, 2), center, _in_service_order(center, best, _view_slots, now_ms, audience))


def _hit_decoded(center_id: str, distance: float, doc: bytes, now_ms: float, audience: Audience) -> Hit:
    """``_hit`` of a document holding a figure of an older stored form: every observation decoded first."""
    return _hit((center_id, distance, *read_doc(doc)), now_ms, audience)


_SLOTS = len(_PADDING)


def _reported(o: list[Any]) -> str:
    """A stored figure's report time (slots ``rt`` and ``ru``) as the API writes a time."""
    return _iso(o[2] * 1000 + ((o[4] or 0) if len(o) > 4 else 0))


def _view_slots(entry: tuple[bool, int, str, str, str, list[Any]], now_ms: float, public: bool) -> dict[str, Any]:
    """``_view`` of the figure ``entry`` holds in its stored slots (``store._positional_observation`` reads the
    same slots into an observation)."""
    fresh, rt, level, source, record, o = entry
    if len(o) != _SLOTS:  # trailing slots left out (padded in place: the list was decoded for this answer alone)
        if len(o) < _SLOTS:
            o += _PADDING[len(o) :]
        else:  # slots a later release added: not read here
            o = o[:_SLOTS]
    view = figure_fields(level, source, o)
    if not public:
        rb = o[REPORTED_BY_SLOT]
        view["reported_by"] = "" if rb is None else rb
    view["record"] = record
    view["age_seconds"] = int(now_ms - rt) // 1000 if now_ms > rt else 0
    view["fresh"] = fresh
    if public and not fresh:
        view.update(_HIDDEN_WHEN_STALE)
    return view


def _date_sources(center: dict[str, Any], observations: Sequence[Mapping[str, Any]]) -> None:
    """Each linked record's newest report, on the facility's ``sources`` (before observations are reshaped). An
    operator's phone report is the facility's own, never a source's (it is kept under the facility's id, which is
    its founding record's)."""
    sources = center.get("sources")
    if not sources:
        return
    if len(sources) == 1:  # the common case: one record, its newest report
        newest_o = max((o for o in observations if o.get("source") != _OPERATOR), key=lambda o: o["rt"], default=None)
        sources[0]["reported_at"] = newest_o["reported_at"] if newest_o is not None else None
        return
    newest: dict[str, tuple[int, str]] = {}
    for o in observations:
        record = o.get("record")
        if record is not None and o.get("source") != _OPERATOR and o["rt"] > newest.get(record, (-1, ""))[0]:
            newest[record] = (o["rt"], o["reported_at"])
    for src in sources:
        found = newest.get(src["id"])
        src["reported_at"] = found[1] if found else None


def availability_view(
    center: Mapping[str, Any],
    observations: Sequence[dict[str, Any]],
    now: datetime,
    audience: Audience,
) -> list[dict[str, Any]]:
    """One entry per level of care: the freshest observation among sources, judged for freshness.

    Levels the center offers but nobody has reported on read ``unknown`` with no age. The stored
    observations are reshaped in place (they are parsed anew for every answer)."""
    return _levels(center, observations, now.timestamp() * 1000, audience)


def _levels(
    center: Mapping[str, Any], observations: Sequence[dict[str, Any]], now_ms: float, audience: Audience
) -> list[dict[str, Any]]:
    best: dict[str, tuple[bool, int, dict[str, Any]]] = {}
    for o in observations:
        rt = o["rt"]
        fresh = rt + o["freshness_seconds"] * 1000 > now_ms
        level = o["level_of_care"]
        cur = best.get(level)
        if cur is None or (fresh, rt) > cur[:2]:
            best[level] = (fresh, rt, o)
    return _in_service_order(center, best, _view, now_ms, audience)


def _in_service_order(
    center: Mapping[str, Any],
    best: dict[str, Any],
    view: Callable[[Any, float, bool], dict[str, Any]],
    now_ms: float,
    audience: Audience,
) -> list[dict[str, Any]]:
    """The figure shown for each level (``best``: level -> the entry ``view`` spells out), in the order of the
    center's services, a level nobody reported on as such; then observed levels its services do not list."""
    public = audience == "public"
    out = []
    for level in center["services"]["levels_of_care"]:
        entry = best.pop(level, None)
        out.append(view(entry, now_ms, public) if entry else _no_report(level))
    for entry in best.values():
        out.append(view(entry, now_ms, public))
    return out


def _view(entry: tuple[bool, int, dict[str, Any]], now_ms: float, public: bool) -> dict[str, Any]:
    fresh, rt, view = entry
    del view["rt"]  # freshness_seconds stays: the window this figure is judged by
    view.pop("wo", None)
    view.pop("sig", None)  # observations stored before 2026-12-07 carry a digest of their figures
    view["age_seconds"] = int(now_ms - rt) // 1000 if now_ms > rt else 0
    view["fresh"] = fresh
    if public:
        del view["reported_by"]
        if not fresh:
            view.update(_HIDDEN_WHEN_STALE)
    return view


#: what the public sees of a figure past its freshness window: its status unknown, no figures
_HIDDEN_WHEN_STALE = {
    "status": AvailabilityStatus.UNKNOWN.value,
    **{k: v for k, v in OBSERVATION_DEFAULTS.items() if k != "reported_by"},
}

#: a level of care the center offers that no source has reported on
_NO_REPORT = {
    "level_of_care": "",
    **_HIDDEN_WHEN_STALE,
    "source": None,
    "reported_at": None,
    "checked_at": None,
    "changed_at": None,
    "age_seconds": None,
    "fresh": False,
    "freshness_seconds": None,
}


def _no_report(level: str) -> dict[str, Any]:
    return {**_NO_REPORT, "level_of_care": level}


# --------------------------------------------------------------------------------------------------
# The empty answer


def _hint(
    store: Store,
    origin: Origin,
    radius: float,
    filters: dict[str, list[str]],
    available_only: bool,
    now: datetime,
    helpline: str,
) -> dict[str, Any]:
    """What was searched, and what a wider radius or fewer filters would find (nearest distance)."""

    def nearest(r: float, f: dict[str, list[str]], avail: bool) -> float | None:
        hits = _search(store, origin, r, 1, f, avail, now)
        return round(hits[0][1], 1) if hits else None

    suggestions: list[dict[str, Any]] = []
    if radius < MAX_RADIUS_MI and (d := nearest(MAX_RADIUS_MI, filters, available_only)) is not None:
        suggestions.append({"change": "wider_radius", "radius_mi": MAX_RADIUS_MI, "nearest_mi": d})
    if available_only and (d := nearest(radius, filters, False)) is not None:
        suggestions.append({"change": "include_unconfirmed_availability", "nearest_mi": d})
    for group in filters:
        fewer = {g: v for g, v in filters.items() if g != group}
        if (d := nearest(radius, fewer, available_only)) is not None:
            suggestions.append({"change": "drop_filter", "filter": group, "nearest_mi": d})
    if len(filters) > 1 and (d := nearest(radius, {}, available_only)) is not None:
        suggestions.append({"change": "drop_all_filters", "nearest_mi": d})

    where = origin.place or f"{origin.latitude:.4f}, {origin.longitude:.4f}"
    if suggestions:
        message = (
            f"No centers matched within {radius:g} miles of {where}; "
            + "; ".join(_suggestion_words(s) for s in suggestions)
            + "."
        )
    else:
        message = (
            f"No centers matched within {radius:g} miles of {where}, and none would with a "
            f"wider radius or fewer filters."
        )
    if helpline:
        message += f" Call {helpline} and we will help you find a place."
    return {
        "searched": {
            "origin": origin.as_dict(),
            "radius_mi": radius,
            "filters": filters,
            "available_only": available_only,
        },
        "suggestions": suggestions,
        "message": message,
        "helpline": helpline or None,
    }


def _suggestion_words(s: Mapping[str, Any]) -> str:
    if s["change"] == "wider_radius":
        return f"within {s['radius_mi']:g} miles the nearest is {s['nearest_mi']:g} miles away"
    if s["change"] == "include_unconfirmed_availability":
        return f"without 'available now' the nearest is {s['nearest_mi']:g} miles away"
    if s["change"] == "drop_filter":
        return f"without the {s['filter'].replace('_', ' ')} filter the nearest is {s['nearest_mi']:g} miles away"
    return f"without any filter the nearest is {s['nearest_mi']:g} miles away"


def get_center(
    store: Store, center_id: str, *, audience: Audience = "public", now: datetime | None = None
) -> dict[str, Any] | None:
    """One center by id with its availability view, or None."""
    found = store.get_center(center_id)
    if found is None:
        return None
    center, observations = found
    now = now or datetime.now(UTC)
    _date_sources(center, observations)
    center["availability"] = availability_view(center, observations, now, audience)
    return center
