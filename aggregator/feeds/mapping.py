"""A feed's field mapping: how one partner record becomes a raw record (see ``aggregator.normalize``).

The same shape serves every format; only what a *reference* means differs: a JMESPath expression
relative to the record (``address.zip``, ``phones[0].number``, ``contacts[?kind=='hotline'] | [0].number``),
a CSV column name, a CSS selector (with ``@attr`` for an attribute) inside an HTML card or row. Pure.

A field may split its cell before value mapping (``splits``: ``"OTP/MD/DT"`` with ``/`` gives
``["OTP", "MD", "DT"]``). ``address`` takes a one-line US address that normalization splits into
street, city, state and ZIP. ``null_values`` are the cell texts that mean "nothing" (``NA``, ``-``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

#: raw-record keys a mapping may fill (see aggregator.normalize)
RECORD_FIELDS = frozenset(
    {
        "source_id",
        "name",
        "alternate_name",
        "address",
        "address_1",
        "address_2",
        "city",
        "state",
        "postal_code",
        "latitude",
        "longitude",
        "phone",
        "intake_phone",
        "hotline_phone",
        "website",
        "status",
        "levels_of_care",
        "payment",
        "populations",
        "languages",
        "source_url",
        "reported_at",
    }
)
LIST_FIELDS = frozenset({"levels_of_care", "payment", "populations", "languages"})
PHONE_FIELDS = frozenset({"phone", "intake_phone", "hotline_phone"})
#: fields whose cell may be split into several values (``{ from = "...", split = "/" }``)
SPLIT_FIELDS = LIST_FIELDS | PHONE_FIELDS
#: cell texts that mean "no value" unless a feed says otherwise (compared without case)
DEFAULT_NULL_VALUES = ("NA", "N/A", "n.a.", "null", "nil", "none", "-", "--", "---", "?", "unknown", "TBD", "#N/A")
AVAILABILITY_FIELDS = frozenset(
    {
        "level_of_care",
        "status",
        "beds_available",
        "beds_total",
        "accepting",
        "waitlist_size",
        "appointments_available",
        "next_appointment_at",
        "notes",
        "reported_at",
    }
)


@dataclass(frozen=True)
class AvailabilityMapping:
    """One availability observation per record: fields are references; ``constants`` literals.

    E.g. a CSV with a ``detox_beds`` column: ``constants={"level_of_care": "detox"},
    fields={"beds_available": "detox_beds"}``."""

    fields: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordMapping:
    #: where the records are: a JSON path to the list, a CSS selector for each card/row
    records: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)
    #: when the partner has no id: hash these references' values into a stable source_id
    id_from: tuple[str, ...] = ()
    availability: tuple[AvailabilityMapping, ...] = ()
    #: a list inside each record (JSON path) whose items map through ``availability_item``
    availability_list: str = ""
    availability_item: AvailabilityMapping | None = None
    value_maps: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    #: canonical field -> separators its cell is split on before value mapping
    splits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: identifier system (samhsa, npi, license-ma ...) -> the reference that carries it
    identifiers: Mapping[str, str] = field(default_factory=dict)
    #: cell texts meaning "no value" (compared case-insensitively, after trimming)
    null_values: tuple[str, ...] = DEFAULT_NULL_VALUES
    #: JSON: the next page's URL (pagination by next link)
    next_page: str = ""
    #: HTML: within a card, how many header rows to skip; CSV: the delimiter
    options: Mapping[str, Any] = field(default_factory=dict)


Getter = Callable[[str], Any]
ListGetter = Callable[[str], list[Getter]]


def apply(get: Getter, mapping: RecordMapping, list_get: ListGetter | None = None) -> dict[str, Any]:
    """Build one raw record from a format's reference getter."""
    raw: dict[str, Any] = dict(mapping.constants)
    for name, ref in mapping.fields.items():
        value = get(ref)
        if value not in (None, "", []):
            separators = mapping.splits.get(name)
            if separators:  # a null word is no value, not pieces to split ("N/A" on "/")
                if isinstance(value, str) and " ".join(value.lower().split()) in null_words(mapping.null_values):
                    continue
                value = split_cell(value, separators)
            raw[name] = value
    ids = [
        {"system": system, "value": str(value)}
        for system, ref in mapping.identifiers.items()
        for value in _values(get(ref))
    ]
    if ids:
        raw["external_ids"] = [*raw.get("external_ids", ()), *ids]
    if mapping.id_from and not raw.get("source_id"):
        raw["source_id"] = stable_id(get(ref) for ref in mapping.id_from)
    observations = [_observation(get, m) for m in mapping.availability]
    if mapping.availability_list and mapping.availability_item and list_get is not None:
        observations += [_observation(g, mapping.availability_item) for g in list_get(mapping.availability_list)]
    observations = [o for o in observations if _has_data(o)]
    if observations:
        raw["availability"] = observations
    return raw


def _observation(get: Getter, m: AvailabilityMapping) -> dict[str, Any]:
    obs: dict[str, Any] = dict(m.constants)
    for name, ref in m.fields.items():
        value = get(ref)
        if value not in (None, ""):
            obs[name] = value
    return obs


def _has_data(obs: Mapping[str, Any]) -> bool:
    return any(k != "level_of_care" and v not in (None, "") for k, v in obs.items())


def _values(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if v not in (None, "") and not isinstance(v, bool)]


@lru_cache(maxsize=64)
def null_words(values: frozenset[str] | tuple[str, ...]) -> frozenset[str]:
    """A feed's null words as compared: lower case, spaces folded."""
    return frozenset(" ".join(v.lower().split()) for v in values)


#: the one list of blank values, as compared (lower case, spaces folded): the default null words, the empty
#: cell, and a spreadsheet's NaN. What normalize takes for "no value" in a count, a time or an address part.
BLANK_VALUES = null_words(DEFAULT_NULL_VALUES) | {"", "nan"}


def split_cell(value: Any, separators: tuple[str, ...]) -> Any:
    """'OTP/MD/DT' on '/' -> ['OTP', 'MD', 'DT']; a list's items are split each; other values pass."""
    items = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for item in items:
        if not isinstance(item, str):
            out.append(item)
            continue
        parts = [item]
        for sep in separators:
            parts = [piece for part in parts for piece in part.split(sep)]
        out += [p.strip() for p in parts if p.strip()]
    return out


def stable_id(values: Any) -> str:
    """A short stable id from identifying values (case and spacing do not matter)."""
    text = "|".join(" ".join(str(v or "").lower().split()) for v in values)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
