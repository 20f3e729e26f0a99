"""Placing centers on the map: the only module that imports geopy.

The chain, per center: the feed's coordinates when plausible (inside the US, inside the record's
state, near its ZIP centroid; when they are far from the ZIP, the address's city decides: a city that
agrees with the coordinates and not with the ZIP means a ZIP typo, and the coordinates are kept; every
such decision is recorded with its reason) -> the cached answer for its normalized address -> the geocoder
(Nominatim by default; any geopy geocoder by name), through a rate limit shared by every process
-> the ZIP centroid (``geo_precision=postal_code``). An answer vaguer than a street, or in another
state, counts as not found. A geocoder outage is never recorded as "not found": the center is
placed at its ZIP centroid and queued to be geocoded again. A center that cannot be placed at all
is kept and listed for operators ("needs location").

geopy's exceptions are translated here, and only here, into ``GeocoderTransient`` (timed out,
unavailable, rate limited, service error) and ``GeocoderPermanent`` (refused query, credentials).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from geopy import exc as geopy_exc
from geopy.adapters import RequestsAdapter
from geopy.geocoders import Nominatim, get_geocoder_for_service

from aggregator import geography, lookup
from aggregator.errors import GeocoderPermanent, GeocoderTransient, InvalidQuery, PlaceNotFound
from aggregator.model import Center, GeoPrecision
from aggregator.store import Store
from config.settings import DEFAULT_USER_AGENT, Settings

log = logging.getLogger(__name__)

# Nominatim feature classes precise enough to send someone to a door
_ROOFTOP_CLASSES = frozenset(
    {
        "building",
        "amenity",
        "shop",
        "office",
        "leisure",
        "healthcare",
        "tourism",
        "craft",
        "man_made",
        "emergency",
        "social_facility",
        "club",
    }
)
_ROOFTOP_TYPES = frozenset({"house", "building", "residential", "apartments", "commercial", "yes"})
_STREET_ADDRESSTYPES = frozenset({"road", "street"})


@dataclass(frozen=True)
class GeocoderConfig:
    provider: str = "nominatim"  # "none" disables geocoding (feed coordinates and ZIP centroids only)
    domain: str = "nominatim.openstreetmap.org"
    scheme: str = "https"
    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 5.0
    min_interval: float = 1.0  # seconds between requests, across every process (Nominatim policy)
    options: Mapping[str, Any] = field(default_factory=dict)  # more keyword arguments for the geocoder
    found_ttl: int = 180 * 86400
    not_found_ttl: int = 7 * 86400
    retries: int = 2  # transient errors, within one lookup
    max_retry_wait: float = 30.0  # cap on a server's Retry-After
    max_distance_km: float = 50.0  # from the ZIP centroid
    max_per_run: int = 200  # geocoder requests one feed run may make; the rest are queued

    @property
    def enabled(self) -> bool:
        return self.provider not in ("", "none")

    @classmethod
    def from_settings(cls, settings: Settings) -> GeocoderConfig:
        return cls(
            provider=settings.geocoder,
            domain=settings.geocoder_domain,
            scheme=settings.geocoder_scheme,
            user_agent=settings.user_agent,
            timeout=settings.geocoder_timeout,
            min_interval=settings.geocoder_min_interval,
            options=settings.geocoder_options,
            max_per_run=settings.geocoder_max_per_run,
        )


@dataclass(frozen=True)
class Answer:
    found: bool
    latitude: float | None = None
    longitude: float | None = None
    precision: GeoPrecision | None = None
    label: str = ""
    reason: str = ""  # why not found

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "found": self.found,
                "latitude": self.latitude,
                "longitude": self.longitude,
                "precision": self.precision.value if self.precision else None,
                "label": self.label,
                "reason": self.reason,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Answer:
        d = orjson.loads(raw)
        return cls(
            d["found"],
            d["latitude"],
            d["longitude"],
            GeoPrecision(d["precision"]) if d["precision"] else None,
            d["label"],
            d["reason"],
        )


def build_geopy(config: GeocoderConfig) -> Any:
    """The geopy geocoder named by the configuration (domain and scheme apply to Nominatim)."""
    kwargs: dict[str, Any] = {
        "user_agent": config.user_agent,
        "timeout": config.timeout,
        "adapter_factory": _adapter,
        **config.options,
    }
    if config.provider == "nominatim":
        return Nominatim(domain=config.domain, scheme=config.scheme, **kwargs)
    try:
        cls = get_geocoder_for_service(config.provider)
    except geopy_exc.GeocoderNotFound as exc:
        raise GeocoderPermanent(f"unknown geocoder {config.provider!r}") from exc
    return cls(**kwargs)


def _adapter(proxies: Any, ssl_context: Any) -> RequestsAdapter:
    """geopy's HTTP adapter without its own retries: every request must pass our shared limiter."""
    return RequestsAdapter(proxies=proxies, ssl_context=ssl_context, max_retries=0)


def _translate(exc: Exception) -> Exception:
    """geopy's errors -> ours. Rate limits carry the server's Retry-After."""
    if isinstance(exc, geopy_exc.GeocoderRateLimited):
        return GeocoderTransient(f"geocoder rate limited us: {exc}", retry_after=exc.retry_after)
    if isinstance(exc, geopy_exc.GeocoderTimedOut | geopy_exc.GeocoderUnavailable):
        return GeocoderTransient(f"geocoder unavailable: {exc}")
    if isinstance(exc, geopy_exc.GeocoderQueryError):
        return GeocoderPermanent(f"geocoder refused the query: {exc}")
    if isinstance(
        exc,
        geopy_exc.GeocoderAuthenticationFailure
        | geopy_exc.GeocoderInsufficientPrivileges
        | geopy_exc.GeocoderQuotaExceeded
        | geopy_exc.ConfigurationError,
    ):
        return GeocoderPermanent(f"geocoder refused our credentials or quota: {exc}")
    if isinstance(exc, geopy_exc.GeopyError):  # service errors, unparseable answers (e.g. an HTML page)
        return GeocoderTransient(f"geocoder error: {exc}")
    return exc


def address_query(center: Center) -> dict[str, str] | None:
    """The structured query for a center's street address, or None when it has no street."""
    a = center.address
    if not a.address_1.strip():
        return None
    return {"street": a.address_1, "city": a.city, "state": a.state, "postalcode": a.postal_code, "country": "us"}


def digest(provider: str, query: Mapping[str, str] | str) -> str:
    text = query if isinstance(query, str) else orjson.dumps(dict(sorted(query.items()))).decode()
    norm = " ".join(text.lower().replace(".", " ").replace(",", " ").split())
    return hashlib.sha256(f"{provider}|{norm}".encode()).hexdigest()[:40]


class Geocoder:
    """Cached, rate-limited geocoding. Every process shares the cache and the limit (in Redis)."""

    def __init__(
        self, store: Store, config: GeocoderConfig, *, geocoder: Any = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.store = store
        self.config = config
        self._geopy = geocoder if geocoder is not None else (build_geopy(config) if config.enabled else None)
        self._sleep = sleep
        self.requests = 0  # requests made to the geocoder by this object

    @property
    def enabled(self) -> bool:
        return self._geopy is not None

    def cached(self, queries: Sequence[Mapping[str, str] | str]) -> list[Answer | None]:
        raw = self.store.cached_answers([digest(self.config.provider, q) for q in queries])
        return [Answer.from_json(r) if r is not None else None for r in raw]

    def lookup(
        self,
        query: Mapping[str, str] | str,
        expected_state: str | None = None,
        zip_code: str | None = None,
        *,
        use_cache: bool = True,
        require_street: bool = True,
    ) -> Answer:
        """One address: the cache, else the geocoder. Raises GeocoderTransient/GeocoderPermanent."""
        key = digest(self.config.provider, query)
        if use_cache:
            [hit] = self.store.cached_answers([key])
            if hit is not None:
                return Answer.from_json(hit)
        if self._geopy is None:
            raise GeocoderPermanent("geocoding is disabled")
        location = self._call(query)
        answer = self._judge(location, expected_state, zip_code, require_street)
        ttl = self.config.found_ttl if answer.found else self.config.not_found_ttl
        self.store.cache_answer(key, answer.to_json(), ttl)
        return answer

    def _call(self, query: Mapping[str, str] | str) -> Any:
        assert self._geopy is not None
        interval_ms = int(self.config.min_interval * 1000)
        attempt = 0
        while True:
            wait = self.store.reserve_slot("geocoder", interval_ms)
            if wait > 0:
                self._sleep(wait / 1000)
            self.requests += 1
            try:
                kwargs: dict[str, Any] = {"exactly_one": True, "timeout": self.config.timeout}
                if isinstance(self._geopy, Nominatim):
                    kwargs.update(addressdetails=True, country_codes="us")
                return self._geopy.geocode(query, **kwargs)
            except Exception as exc:  # every geopy error is translated below
                err = _translate(exc)
                if not isinstance(err, GeocoderTransient) or attempt >= self.config.retries:
                    raise err from exc
                attempt += 1
                pause = min(err.retry_after or 2.0**attempt, self.config.max_retry_wait)
                if err.retry_after:
                    # every process backs off, not just this one
                    self.store.reserve_slot("geocoder", interval_ms, defer_ms=int(pause * 1000))
                else:
                    self._sleep(pause)
                log.info("geocoder transient error (attempt %d): %s", attempt, err)

    def _judge(self, location: Any, expected_state: str | None, zip_code: str | None, require_street: bool) -> Answer:
        if location is None:
            return Answer(False, reason="no match")
        lat, lon = float(location.latitude), float(location.longitude)
        raw = location.raw if isinstance(location.raw, Mapping) else {}
        precision = _precision(raw)
        if precision is None and not require_street:
            precision = GeoPrecision.POSTAL_CODE  # a town or a ZIP: good enough as a search origin
        if precision is None:
            kind = raw.get("addresstype") or raw.get("type") or "area"
            return Answer(False, reason=f"too vague ({kind}), not a street address")
        if not geography.in_us(lat, lon):
            return Answer(False, reason="outside the United States")
        found_state = _state_of(raw)
        if expected_state and (
            (found_state and found_state != expected_state) or not geography.in_state(lat, lon, expected_state)
        ):
            return Answer(False, reason=f"in {found_state or 'another state'}, not {expected_state}")
        if zip_code and (km := _km_from_zip(lat, lon, zip_code)) is not None and km > self.config.max_distance_km:
            return Answer(False, reason=f"{km:.0f} km from ZIP {zip_code}")
        return Answer(True, lat, lon, precision, str(getattr(location, "address", ""))[:200])


def _precision(raw: Mapping[str, Any]) -> GeoPrecision | None:
    """Rooftop or street from a Nominatim answer; None for anything vaguer (city, ZIP, county)."""
    if not raw or "class" not in raw:  # another provider: trust a match as street level
        return GeoPrecision.STREET if raw is not None else None
    cls, kind = raw.get("class"), raw.get("type")
    address = raw.get("address") or {}
    if cls in _ROOFTOP_CLASSES or kind in _ROOFTOP_TYPES or "house_number" in address:
        return GeoPrecision.ROOFTOP
    if cls == "highway" or raw.get("addresstype") in _STREET_ADDRESSTYPES:
        return GeoPrecision.STREET
    return None


def _state_of(raw: Mapping[str, Any]) -> str | None:
    address = raw.get("address") or {}
    iso = address.get("ISO3166-2-lvl4") or ""
    if iso.startswith("US-"):
        return iso[3:]
    name = address.get("state")
    return geography.state_code(name) if isinstance(name, str) else None


def _km_from_zip(lat: float, lon: float, zip_code: str) -> float | None:
    place = geography.zip_place(zip_code)
    if place is None:
        return None
    return geography.haversine_mi(lat, lon, place.latitude, place.longitude) * 1.609344


# --------------------------------------------------------------------------------------------------
# Placing a feed's centers


@dataclass
class PlacementReport:
    feed: int = 0  # kept the feed's coordinates
    geocoded: int = 0
    cached: int = 0  # of geocoded: answered from the cache
    zip_centroid: int = 0
    queued: int = 0  # placed by ZIP centroid after an outage or over the run's budget; to retry
    unplaced: list[str] = field(default_factory=list)
    dropped_feed_coordinates: list[str] = field(default_factory=list)
    #: feed coordinates kept although far from the ZIP, because the address's city agrees with them
    feed_over_zip: int = 0
    #: why each disagreement between the feed's coordinates and its ZIP was decided as it was
    decisions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _with_location(
    center: Center, lat: float | None, lon: float | None, precision: GeoPrecision | None, source: str
) -> Center:
    return center.model_copy(
        update={"latitude": lat, "longitude": lon, "geo_precision": precision, "geo_source": source}
    )


#: a point within this of one of a city's ZIP centroids is "in" that city
CITY_KM = 25.0
DECISIONS_KEPT = 50


def _decide(report: PlacementReport, text: str) -> None:
    if len(report.decisions) < DECISIONS_KEPT:
        report.decisions.append(text)


def _disagreement(center: Center, lat: float, lon: float, km: float) -> tuple[str, str]:
    """The feed's coordinates are ``km`` from its ZIP: which to believe, by the address's city.

    ("feed", why) when the city agrees with the coordinates and not with the ZIP (a ZIP typo);
    ("zip", why) when it agrees with the ZIP and not with the coordinates (bad coordinates);
    ("", why) when the city cannot tell (none given, unknown, or agreeing with both or neither)."""
    zip_code, city, state = center.address.postal_code, center.address.city, center.address.state
    place = geography.zip_place(zip_code)
    if not city:
        return "", f"coordinates {km:.0f} km from ZIP {zip_code} and no city to judge by"
    city_to_point = geography.km_from_city(lat, lon, city, state)
    if city_to_point is None:
        return "", f"coordinates {km:.0f} km from ZIP {zip_code}; the city {city!r} is not known in {state}"
    city_to_zip = geography.km_from_city(place.latitude, place.longitude, city, state) if place else None
    point_agrees = city_to_point <= CITY_KM
    zip_agrees = city_to_zip is not None and city_to_zip <= CITY_KM
    zip_city = f"{place.city}, " if place else ""
    if point_agrees and not zip_agrees:
        return "feed", (
            f"the city {city} agrees with them ({city_to_point:.0f} km), while ZIP {zip_code} "
            f"({zip_city}{km:.0f} km away) does not: a ZIP typo"
        )
    if zip_agrees and not point_agrees:
        return "zip", (
            f"the city {city} agrees with ZIP {zip_code}, while the coordinates are {km:.0f} km "
            f"from it and {city_to_point:.0f} km from {city}"
        )
    return "", (
        f"coordinates {km:.0f} km from ZIP {zip_code}; the city {city} agrees with "
        + ("both" if point_agrees else "neither")
    )


def zip_centroid(center: Center) -> Center:
    place = geography.zip_place(center.address.postal_code)
    if place is None:
        return _with_location(center, None, None, None, "")
    return _with_location(center, place.latitude, place.longitude, GeoPrecision.POSTAL_CODE, "zipcodes")


def place_all(
    centers: Sequence[Center], geocoder: Geocoder | None, now: datetime, max_distance_km: float = 50.0
) -> tuple[list[Center], PlacementReport]:
    """Place every center (see the module docstring). Never raises for a geocoder problem."""
    report = PlacementReport()
    out: list[Center | None] = [None] * len(centers)
    to_geocode: list[tuple[int, dict[str, str]]] = []
    for i, c in enumerate(centers):
        if c.latitude is not None and c.longitude is not None:
            km = _km_from_zip(c.latitude, c.longitude, c.address.postal_code)
            if km is None or km <= max_distance_km:
                out[i] = c
                report.feed += 1
                continue
            winner, why = _disagreement(c, c.latitude, c.longitude, km)
            geocodable = address_query(c) is not None and geocoder is not None and geocoder.enabled
            if winner == "feed":
                out[i] = c
                report.feed += 1
                report.feed_over_zip += 1
                _decide(report, f"{c.id}: kept the feed's coordinates: {why}")
                continue
            if winner == "zip":
                _decide(report, f"{c.id}: dropped the feed's coordinates: {why}")
            else:
                _decide(
                    report,
                    f"{c.id}: {why}; "
                    + ("the geocoder decides" if geocodable else "no geocoder: the ZIP centroid is used"),
                )
            report.dropped_feed_coordinates.append(f"{c.id}: {km:.0f} km from ZIP {c.address.postal_code}")
        query = address_query(c)
        if query is not None and geocoder is not None and geocoder.enabled:
            to_geocode.append((i, query))
        else:
            out[i] = zip_centroid(c)

    retry: list[str] = []
    if to_geocode:
        assert geocoder is not None
        cached = geocoder.cached([q for _, q in to_geocode])
        budget = geocoder.config.max_per_run
        outage = False
        for (i, query), hit in zip(to_geocode, cached, strict=True):
            c = centers[i]
            answer = hit
            if answer is not None:
                report.cached += 1
            elif outage or budget <= 0:
                retry.append(c.id)
            else:
                budget -= 1
                try:
                    answer = geocoder.lookup(query, c.address.state, c.address.postal_code, use_cache=False)
                except GeocoderTransient as exc:
                    outage = True  # stop asking for this run; the queue takes the rest
                    report.errors.append(str(exc))
                    retry.append(c.id)
                except GeocoderPermanent as exc:
                    report.errors.append(str(exc))
                    outage = True
                    retry.append(c.id)
            if answer is not None and answer.found:
                out[i] = _with_location(
                    c, answer.latitude, answer.longitude, answer.precision, geocoder.config.provider
                )
                report.geocoded += 1
            else:
                out[i] = zip_centroid(c)
    report.queued = len(retry)
    placed: list[Center] = []
    for maybe in out:
        assert maybe is not None
        if maybe.latitude is None:
            report.unplaced.append(maybe.id)
        elif maybe.geo_precision is GeoPrecision.POSTAL_CODE:
            report.zip_centroid += 1
        placed.append(maybe)
    if retry and geocoder is not None:
        geocoder.store.queue_geocode_retry(retry, now + timedelta(minutes=5))
    return placed, report


def retry_pending(store: Store, geocoder: Geocoder, now: datetime, limit: int = 50) -> dict[str, int]:
    """Geocode again the centers an outage left at their ZIP centroid; reschedule on a new outage."""
    done = {"located": 0, "not_found": 0, "rescheduled": 0, "gone": 0}
    due = store.due_geocode_retries(now, limit)
    records = store.stored_records(due)
    finished: list[str] = []
    for cid in due:
        raw = records.get(cid)
        if raw is None:
            finished.append(cid)
            done["gone"] += 1
            continue
        center = Center.model_validate_json(raw)
        query = address_query(center)
        if query is None:
            finished.append(cid)
            continue
        try:
            answer = geocoder.lookup(query, center.address.state, center.address.postal_code)
        except (GeocoderTransient, GeocoderPermanent):
            store.queue_geocode_retry(due[due.index(cid) :], now + timedelta(minutes=15))
            done["rescheduled"] += len(due) - due.index(cid)
            break
        finished.append(cid)
        if answer.found:
            store.update_location(
                _with_location(center, answer.latitude, answer.longitude, answer.precision, geocoder.config.provider)
            )
            done["located"] += 1
        else:
            done["not_found"] += 1
    store.drop_geocode_retries(finished)
    return done


def locate_text(geocoder: Geocoder, text: str) -> Answer:
    """An operator's free-text place ("1 Main St, Springfield, MA"): same cache and limiter."""
    query = " ".join(text.split())[:200]
    if not query:
        raise GeocoderPermanent("empty place")
    return geocoder.lookup(query, require_street=False)


def origin_for_place(place: str, geocoder: Geocoder | None) -> lookup.Origin:
    """An operator's place: a ZIP, 'lat,lon', or an address through the cached, rate-limited geocoder.

    Raises InvalidQuery, UnknownZip, PlaceNotFound, or GeocoderTransient (address search is down)."""
    text = " ".join(place.split())
    if not text:
        raise InvalidQuery("place", "enter a ZIP code, 'lat,lon' or an address")
    if (offline := lookup.offline_origin(text)) is not None:  # a ZIP, 'lat,lon' or a 'City, ST' the ZIP data knows
        return offline
    if geocoder is None or not geocoder.enabled:
        if lookup.split_city_state(text) is not None:
            return lookup.resolve_place(text)  # a city the ZIP data lacks: PlaceNotFound, with close names
        raise InvalidQuery("place", "enter a ZIP code or 'lat,lon' (address search is off)")
    try:
        answer = locate_text(geocoder, text)
    except GeocoderPermanent as exc:
        raise InvalidQuery("place", str(exc)) from exc
    if not answer.found or answer.latitude is None or answer.longitude is None:
        raise PlaceNotFound(text)
    return lookup.Origin(answer.latitude, answer.longitude, "address", None, answer.label or text)
