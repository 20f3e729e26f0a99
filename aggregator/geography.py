"""Offline US geography: ZIP centroids, cities placed by their ZIP codes, state names, state and US
bounds, great-circle distance.

ZIP data comes from the ``zipcodes`` package (GeoNames, CC BY 4.0), embedded in its wheel: no network.
It is read once into a compact file in the user's cache folder (``$XDG_CACHE_HOME/centers/``, else
``~/.cache/centers/``; the edge names it, ``use_cache_folder``); later processes read that in milliseconds
instead of parsing ``zipcodes`` for seconds. A folder that cannot be written only costs that speed.
State boxes are derived once from the ZIP centroids of each state with a margin, which is what a
plausibility check needs (is this point roughly in Massachusetts?), not a border-exact answer.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import re
import sys
from array import array
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import orjson
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
    "AL": "Alabama",
    "AK": "Alaska",
    "AZ": "Arizona",
    "AR": "Arkansas",
    "CA": "California",
    "CO": "Colorado",
    "CT": "Connecticut",
    "DE": "Delaware",
    "DC": "District of Columbia",
    "FL": "Florida",
    "GA": "Georgia",
    "HI": "Hawaii",
    "ID": "Idaho",
    "IL": "Illinois",
    "IN": "Indiana",
    "IA": "Iowa",
    "KS": "Kansas",
    "KY": "Kentucky",
    "LA": "Louisiana",
    "ME": "Maine",
    "MD": "Maryland",
    "MA": "Massachusetts",
    "MI": "Michigan",
    "MN": "Minnesota",
    "MS": "Mississippi",
    "MO": "Missouri",
    "MT": "Montana",
    "NE": "Nebraska",
    "NV": "Nevada",
    "NH": "New Hampshire",
    "NJ": "New Jersey",
    "NM": "New Mexico",
    "NY": "New York",
    "NC": "North Carolina",
    "ND": "North Dakota",
    "OH": "Ohio",
    "OK": "Oklahoma",
    "OR": "Oregon",
    "PA": "Pennsylvania",
    "RI": "Rhode Island",
    "SC": "South Carolina",
    "SD": "South Dakota",
    "TN": "Tennessee",
    "TX": "Texas",
    "UT": "Utah",
    "VT": "Vermont",
    "VA": "Virginia",
    "WA": "Washington",
    "WV": "West Virginia",
    "WI": "Wisconsin",
    "WY": "Wyoming",
    "PR": "Puerto Rico",
    "VI": "U.S. Virgin Islands",
    "GU": "Guam",
    "MP": "Northern Mariana Islands",
    "AS": "American Samoa",
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


# --------------------------------------------------------------------------------------------------
# The ZIP table, compact: built once from ``zipcodes`` (whose first use takes seconds: it inflates its
# embedded data, and ``list_all`` makes 42,000 dicts) into a few columns, numbers as packed arrays, kept
# as one file in the user's cache folder; every later process reads it in a few milliseconds, and finds
# a ZIP code by binary search (no index to build).

#: bump when the columns change: an older file is then ignored and rebuilt
TABLE_FORMAT = 2
_ARRAYS = {"lat": "d", "lon": "d", "state": "B", "city": "I", "tz": "B", "alt": "I"}


@dataclass(frozen=True)
class _Table:
    codes: str  # every ZIP code, 5 characters each, ascending
    lat: array[float]  # 0.0 where the source has no usable coordinates
    lon: array[float]
    state: array[int]  # index into ``states``
    city: array[int]  # index into ``names``
    tz: array[int]  # index into ``timezones``
    active: str  # "1" or "0" per row
    alt: array[int]  # flat pairs (row, index into ``names``): the other names a ZIP's city goes by
    states: list[str]
    names: list[str]
    timezones: list[str]
    boxes: dict[str, list[float]]  # state -> (lat_min, lat_max, lon_min, lon_max), margin included

    def __len__(self) -> int:
        return len(self.codes) // 5

    def code(self, row: int) -> str:
        return self.codes[row * 5 : row * 5 + 5]

    def row(self, zip_code: str) -> int | None:
        codes, lo, hi = self.codes, 0, len(self.codes) // 5
        while lo < hi:
            mid = (lo + hi) // 2
            found = codes[mid * 5 : mid * 5 + 5]
            if found < zip_code:
                lo = mid + 1
            elif found > zip_code:
                hi = mid
            else:
                return mid
        return None


#: the folder of the compact ZIP table; None: ~/.cache/centers. The core reads no environment: the edge
#: (``config.settings.Settings.from_env``) sets it from $XDG_CACHE_HOME with ``use_cache_folder``.
_CACHE_FOLDER: list[Path | None] = [None]


def use_cache_folder(folder: Path | None) -> None:
    """Keep the ZIP table in ``folder`` (None: ~/.cache/centers); read again on the next ``_table()``."""
    _CACHE_FOLDER[0] = folder


def _cache_dir() -> Path:
    return _CACHE_FOLDER[0] or Path.home() / ".cache" / "centers"


def _table_path() -> Path:
    return _cache_dir() / f"zip-table-{TABLE_FORMAT}-zipcodes-{zipcodes.__version__}.json"


def _build_table() -> _Table:
    """The columns, from ``zipcodes`` (slow: seconds). Only the 50 states, DC and the territories."""
    rows = sorted((z for z in zipcodes.list_all() if z["state"] in STATE_NAMES), key=lambda z: z["zip_code"])
    states: dict[str, int] = {}
    names: dict[str, int] = {}
    timezones: dict[str, int] = {}
    lat: list[float] = []
    lon: list[float] = []
    alt: list[int] = []
    spans: dict[str, list[float]] = {}
    for row, z in enumerate(rows):
        try:
            a, b = float(z["lat"]), float(z["long"])
        except (TypeError, ValueError):
            a = b = 0.0
        if not (math.isfinite(a) and math.isfinite(b)):
            a = b = 0.0
        lat.append(a)
        lon.append(b)
        if (a, b) != (0.0, 0.0):
            s = spans.setdefault(z["state"], [90.0, -90.0, 180.0, -180.0])
            s[0], s[1], s[2], s[3] = min(s[0], a), max(s[1], a), min(s[2], b), max(s[3], b)
        for other in z.get("acceptable_cities") or ():
            if other:
                alt += [row, names.setdefault(other, len(names))]
    m = STATE_MARGIN_DEG
    return _Table(
        codes="".join(z["zip_code"] for z in rows),
        lat=array("d", lat),
        lon=array("d", lon),
        state=array("B", [states.setdefault(z["state"], len(states)) for z in rows]),
        city=array("I", [names.setdefault(z["city"] or "", len(names)) for z in rows]),
        tz=array("B", [timezones.setdefault(z.get("timezone") or "", len(timezones)) for z in rows]),
        active="".join("1" if z.get("active", True) else "0" for z in rows),
        alt=array("I", alt),
        states=list(states),
        names=list(names),
        timezones=list(timezones),
        boxes={st: [a - m, b + m, c - m, d + m] for st, (a, b, c, d) in spans.items()},
    )


def _read_table(path: Path) -> _Table | None:
    try:
        data = orjson.loads(path.read_bytes())
        if data.get("format") != TABLE_FORMAT or data.get("byteorder") != sys.byteorder:
            return None
        columns: dict[str, Any] = {f: data[f] for f in _Table.__dataclass_fields__}
        for name, kind in _ARRAYS.items():
            columns[name] = array(kind, base64.b64decode(columns[name]))
        columns["names"] = columns["names"].split("\n")
        table = _Table(**columns)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    n = len(table)
    if not n or any(len(col) != n for col in (table.lat, table.lon, table.state, table.city, table.tz, table.active)):
        return None
    return table


def _write_table(path: Path, table: _Table) -> None:
    """Atomically (a reader never sees half a file); a folder we may not write to only costs speed."""
    columns: dict[str, Any] = {f: getattr(table, f) for f in _Table.__dataclass_fields__}
    for name in _ARRAYS:
        columns[name] = base64.b64encode(columns[name].tobytes()).decode()
    columns["names"] = "\n".join(table.names)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps({"format": TABLE_FORMAT, "byteorder": sys.byteorder, **columns}))
        os.replace(tmp, path)


@cache
def _table() -> _Table:
    path = _table_path()
    table = _read_table(path)
    if table is None:
        table = _build_table()
        _write_table(path, table)
    return table


@cache
def _rows() -> dict[str, int]:
    codes = _table().codes
    return {codes[i : i + 5]: i // 5 for i in range(0, len(codes), 5)}


def _zip_table() -> dict[str, int]:
    """ZIP code -> its row: every ZIP of the 50 states, DC and the territories."""
    return _rows()


def _place(row: int) -> ZipPlace | None:
    t = _table()
    lat, lon = t.lat[row], t.lon[row]
    if lat == 0.0 and lon == 0.0:
        return None
    return ZipPlace(t.code(row), t.states[t.state[row]], t.names[t.city[row]], lat, lon, t.timezones[t.tz[row]])


@lru_cache(maxsize=65536)
def zip_place(zip_code: str) -> ZipPlace | None:
    """The centroid of a 5-digit ZIP code, or None if the ZIP does not exist (offline)."""
    if len(zip_code) != 5:
        return None
    row = _table().row(zip_code)
    return None if row is None else _place(row)


def _state_boxes() -> dict[str, list[float]]:
    return _table().boxes


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
        "virgin islands": "VI",
        "us virgin islands": "VI",
        "washington dc": "DC",
        "washington d c": "DC",
        "d c": "DC",
        "mass": "MA",
        "calif": "CA",
        "penn": "PA",
        "penna": "PA",
        "wash": "WA",
        "fla": "FL",
        "ill": "IL",
        "mich": "MI",
        "minn": "MN",
        "ariz": "AZ",
        "colo": "CO",
        "conn": "CT",
        "tenn": "TN",
        "tex": "TX",
        "wis": "WI",
        "okla": "OK",
        "ore": "OR",
        "nev": "NV",
        "neb": "NE",
        "kans": "KS",
        "ala": "AL",
        "ark": "AR",
        "miss": "MS",
    }
)


def haversine_mi(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MI * math.asin(min(1.0, math.sqrt(a)))


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return haversine_mi(lat1, lon1, lat2, lon2) * 1609.344


@cache
def _state_rows(state: str) -> tuple[int, ...]:
    """The rows of one state's ZIP codes."""
    t = _table()
    try:
        index = t.states.index(state)
    except ValueError:
        return ()
    return tuple(row for row, s in enumerate(t.state) if s == index)


def nearest_zip(lat: float, lon: float, state: str, max_mi: float = 50.0) -> str | None:
    """The ZIP code of ``state`` whose centroid is nearest a point (within ``max_mi``), or None."""
    t = _table()
    best: tuple[float, int] | None = None
    for row in _state_rows(state):
        a, b = t.lat[row], t.lon[row]
        if a == 0.0 and b == 0.0:
            continue
        d = haversine_mi(lat, lon, a, b)
        if best is None or d < best[0]:
            best = (d, row)
    return t.code(best[1]) if best is not None and best[0] <= max_mi else None


def _city_key(city: str) -> str:
    text = re.sub(r"[^a-z0-9 ]", " ", city.lower().replace("saint ", "st ").replace("mount ", "mt "))
    return " ".join(text.split())


@cache
def _alt_names() -> dict[int, list[int]]:
    t = _table()
    out: dict[int, list[int]] = {}
    for i in range(0, len(t.alt), 2):
        out.setdefault(t.alt[i], []).append(t.alt[i + 1])
    return out


@cache
def _city_points() -> dict[tuple[str, str], tuple[tuple[float, float], ...]]:
    """(state, city) -> the centroids of the ZIP codes that name that city (offline, from zipcodes)."""
    t = _table()
    alt = _alt_names()
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in range(len(t)):
        a, b = t.lat[row], t.lon[row]
        if a == 0.0 and b == 0.0:
            continue
        state = t.states[t.state[row]]
        for name in (t.city[row], *alt.get(row, ())):
            if t.names[name]:
                points.setdefault((state, _city_key(t.names[name])), []).append((a, b))
    return {k: tuple(v) for k, v in points.items()}


@dataclass(frozen=True)
class CityPlace:
    """A city of a state placed by its ZIP codes: the mean of their centroids."""

    city: str  # as the ZIP data spells it
    state: str
    latitude: float
    longitude: float
    zip_codes: tuple[str, ...]
    #: "city": ZIP codes whose city this is; "alias": ZIP codes that also go by this name (e.g. a
    #: neighbourhood, "North Cambridge"), used only when no ZIP code has it as its city
    matched: str


@cache
def _state_cities(state: str) -> dict[str, tuple[list[int], list[int]]]:
    """City key -> (active rows with that city, rows that also go by that name), for one state."""
    t = _table()
    alt = _alt_names()
    out: dict[str, tuple[list[int], list[int]]] = {}
    for row in _state_rows(state):
        if t.lat[row] == 0.0 and t.lon[row] == 0.0:
            continue
        if t.active[row] == "1":
            out.setdefault(_city_key(t.names[t.city[row]]), ([], []))[0].append(row)
        for name in alt.get(row, ()):
            out.setdefault(_city_key(t.names[name]), ([], []))[1].append(row)
    return out


def city_place(city: str, state: str) -> CityPlace | None:
    """A city of a state ('Cambridge', 'MA') at the mean centroid of its ZIP codes; None if unknown (offline)."""
    found = _state_cities(state).get(_city_key(city))
    if not found:
        return None
    rows, matched = (found[0], "city") if found[0] else (sorted(set(found[1])), "alias")
    if not rows:
        return None
    t = _table()
    key = _city_key(city)
    name = (
        t.names[t.city[rows[0]]]
        if matched == "city"
        else next((t.names[i] for i in _alt_names().get(rows[0], ()) if _city_key(t.names[i]) == key), city)
    )
    return CityPlace(
        name,
        state,
        round(sum(t.lat[r] for r in rows) / len(rows), 5),
        round(sum(t.lon[r] for r in rows) / len(rows), 5),
        tuple(t.code(r) for r in rows),
        matched,
    )


def similar_cities(city: str, state: str, n: int = 3) -> list[str]:
    """The cities of a state whose names are closest to ``city`` (for "did you mean ...?")."""
    import difflib

    t = _table()
    names: dict[str, str] = {}
    for row in _state_rows(state):
        names.setdefault(_city_key(t.names[t.city[row]]), t.names[t.city[row]])
    return [names[k] for k in difflib.get_close_matches(_city_key(city), list(names), n=n, cutoff=0.75)]


def km_from_city(lat: float, lon: float, city: str, state: str) -> float | None:
    """Distance (km) from a point to the nearest ZIP centroid of a city; None for a city we do not know."""
    points = _city_points().get((state, _city_key(city)))
    if not points:
        return None
    return min(haversine_mi(lat, lon, a, b) for a, b in points) * 1.609344


def same_city(a: str, b: str) -> bool:
    return bool(a) and _city_key(a) == _city_key(b)
