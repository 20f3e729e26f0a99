"""Offline US geography: ZIP centroids, state names, state and US bounds, great-circle distance.

ZIP data comes from the ``zipcodes`` package (GeoNames, CC BY 4.0), embedded in its wheel: no network.
State boxes are derived once from the ZIP centroids of each state with a margin, which is what a
plausibility check needs (is this point roughly in Massachusetts?), not a border-exact answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import zipcodes

EARTH_RADIUS_MI = 3958.7613
METERS_PER_MILE = 1609.344

# (lat_min, lat_max, lon_min, lon_max): the 50 states, DC and the inhabited territories.
US_REGIONS: tuple[tuple[float, float, float, float], ...] = (
    (24.3, 49.6, -125.1, -66.8),  # contiguous states
    (51.0, 71.6, -180.0, -129.9),  # Alaska
    (51.0, 53.5, 172.0, 180.0),  # Alaska: western Aleutians, past the antimeridian
    (18.8, 28.5, -178.5, -154.6),  # Hawaii, with the Northwestern islands
    (17.5, 18.6, -68.0, -64.5),  # Puerto Rico, US Virgin Islands
    (13.2, 20.6, 144.6, 146.1),  # Guam, Northern Mariana Islands
    (-14.6, -11.0, -171.2, -168.1),  # American Samoa
)

STATE_NAMES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "PR": "Puerto Rico", "VI": "U.S. Virgin Islands", "GU": "Guam",
    "MP": "Northern Mariana Islands", "AS": "American Samoa",
}

#: margin around a state's ZIP centroids, degrees (~55 km): ZIP areas in the West are large
STATE_MARGIN_DEG = 0.5


@dataclass(frozen=True)
class ZipPlace:
    zip_code: str
    state: str
    city: str
    latitude: float
    longitude: float
    timezone: str


@cache
def _zip_table() -> dict[str, dict[str, Any]]:
    return {z["zip_code"]: z for z in zipcodes.list_all() if z["state"] in STATE_NAMES}


@lru_cache(maxsize=65536)
def zip_place(zip_code: str) -> ZipPlace | None:
    """The centroid of a 5-digit ZIP code, or None if the ZIP does not exist (offline)."""
    z = _zip_table().get(zip_code)
    if z is None:
        return None
    try:
        lat, lon = float(z["lat"]), float(z["long"])
    except (TypeError, ValueError):
        return None
    if lat == 0.0 and lon == 0.0:
        return None
    return ZipPlace(zip_code, z["state"], z["city"], lat, lon, z.get("timezone") or "")


@cache
def _state_boxes() -> dict[str, tuple[float, float, float, float]]:
    spans: dict[str, list[float]] = {}
    for place in filter(None, map(zip_place, _zip_table())):
        s = spans.setdefault(place.state, [90.0, -90.0, 180.0, -180.0])
        s[0] = min(s[0], place.latitude)
        s[1] = max(s[1], place.latitude)
        s[2] = min(s[2], place.longitude)
        s[3] = max(s[3], place.longitude)
    m = STATE_MARGIN_DEG
    return {st: (a - m, b + m, c - m, d + m) for st, (a, b, c, d) in spans.items()}


def in_us(lat: float, lon: float) -> bool:
    return any(a <= lat <= b and c <= lon <= d for a, b, c, d in US_REGIONS)


def in_state(lat: float, lon: float, state: str) -> bool:
    """Roughly inside ``state`` (its ZIP centroids' box plus a margin). Unknown states: US bounds."""
    if state == "AK":  # the Aleutians cross the antimeridian; Alaska's US regions are exact enough
        return lat >= 51.0 and (lon <= -129.9 or lon >= 172.0) and in_us(lat, lon)
    box = _state_boxes().get(state)
    if box is None:
        return in_us(lat, lon)
    return box[0] <= lat <= box[1] and box[2] <= lon <= box[3]


def state_code(name: str) -> str | None:
    """'Massachusetts', 'mass.', 'MA' -> 'MA'; None if not a US state or territory."""
    k = " ".join(name.replace(".", " ").split()).lower()
    if not k:
        return None
    if len(k) == 2 and k.upper() in STATE_NAMES:
        return k.upper()
    return _STATE_BY_NAME.get(k)


_STATE_BY_NAME: dict[str, str] = {v.lower(): k for k, v in STATE_NAMES.items()}
_STATE_BY_NAME.update(
    {
        "virgin islands": "VI", "us virgin islands": "VI", "washington dc": "DC",
        "washington d c": "DC", "d c": "DC", "mass": "MA", "calif": "CA", "penn": "PA",
        "penna": "PA", "wash": "WA", "fla": "FL", "ill": "IL", "mich": "MI", "minn": "MN",
        "ariz": "AZ", "colo": "CO", "conn": "CT", "tenn": "TN", "tex": "TX", "wis": "WI",
        "okla": "OK", "ore": "OR", "nev": "NV", "neb": "NE", "kans": "KS", "ala": "AL",
        "ark": "AR", "miss": "MS",
    }
)


def haversine_mi(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MI * math.asin(min(1.0, math.sqrt(a)))


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return haversine_mi(lat1, lon1, lat2, lon2) * 1609.344


def nearest_zip(lat: float, lon: float, state: str, max_mi: float = 50.0) -> str | None:
    """The ZIP code of ``state`` whose centroid is nearest a point (within ``max_mi``), or None."""
    best: tuple[float, str] | None = None
    for code, z in _zip_table().items():
        if z["state"] != state:
            continue
        place = zip_place(code)
        if place is None:
            continue
        d = haversine_mi(lat, lon, place.latitude, place.longitude)
        if best is None or d < best[0]:
            best = (d, code)
    return best[1] if best is not None and best[0] <= max_mi else None


def _city_key(city: str) -> str:
    text = re.sub(r"[^a-z0-9 ]", " ", city.lower().replace("saint ", "st ").replace("mount ", "mt "))
    return " ".join(text.split())


@cache
def _city_points() -> dict[tuple[str, str], tuple[tuple[float, float], ...]]:
    """(state, city) -> the centroids of the ZIP codes that name that city (offline, from zipcodes)."""
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for code, z in _zip_table().items():
        place = zip_place(code)
        if place is None:
            continue
        for name in [z.get("city") or "", *(z.get("acceptable_cities") or [])]:
            if name:
                points.setdefault((z["state"], _city_key(name)), []).append((place.latitude, place.longitude))
    return {k: tuple(v) for k, v in points.items()}


def km_from_city(lat: float, lon: float, city: str, state: str) -> float | None:
    """Distance (km) from a point to the nearest ZIP centroid of a city; None for a city we do not know."""
    points = _city_points().get((state, _city_key(city)))
    if not points:
        return None
    return min(haversine_mi(lat, lon, a, b) for a, b in points) * 1.609344


def same_city(a: str, b: str) -> bool:
    return bool(a) and _city_key(a) == _city_key(b)
