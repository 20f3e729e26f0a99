"""A facility (one physical place) composed from the feed records linked to it. Pure.

Every feed record (``{feed}:{source id}``) stays the partner's word, with its own id and history; the
store links it to exactly one facility, and the answer is made of facilities. A facility's id is the id
of the record that founded it and never changes while any record remains linked (a second source, a
re-run or the founder leaving does not move it).

Composition, in one place, so an answer can always say where each part came from:

* identity (name, address, website, status) from the most authoritative record: the feed's
  ``authority`` rank (higher first), then completeness, then the record id;
* location from the most precise placement (feed coordinates or a rooftop or street geocode before a
  ZIP centroid), authority breaking ties;
* every phone of every record, each with its role and the feed it came from;
* services, identifiers: the union;
* ``sources``: every linked record, most authoritative first.

Availability is not composed here: the read document holds every linked record's observations and
the lookup takes, per level of care, the freshest live one (each keeps its record and source).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from aggregator.model import Center, CenterStatus, GeoPrecision

_PRECISION = {GeoPrecision.ROOFTOP: 0, GeoPrecision.FEED: 1, GeoPrecision.STREET: 2, GeoPrecision.POSTAL_CODE: 3}


@dataclass(frozen=True)
class Member:
    """A record linked to a facility, with its feed's authority rank (higher wins identity)."""

    center: Center
    authority: int = 0


def completeness(c: Center) -> int:
    """How much of the identity a record carries (a tie-break between equally authoritative feeds)."""
    a = c.address
    return sum(
        bool(x)
        for x in (
            a.address_1,
            a.city,
            c.phones,
            c.website,
            c.alternate_name,
            c.external_ids,
            c.latitude is not None and c.geo_precision is not GeoPrecision.POSTAL_CODE,
        )
    )


def ranked(members: Sequence[Member]) -> list[Member]:
    return sorted(members, key=lambda m: (-m.authority, -completeness(m.center), m.center.id))


def compose(facility_id: str, members: Sequence[Member]) -> dict[str, Any]:
    """The facility's record (the shape of a Center's JSON, plus ``sources``; phones carry ``source``)."""
    if not members:
        raise ValueError("a facility needs at least one record")
    order = ranked(members)
    lead = order[0].center
    doc = lead.model_dump(mode="json")
    doc["id"] = facility_id
    located = [m for m in order if m.center.latitude is not None and m.center.longitude is not None]
    if located:
        best = min(
            located,
            key=lambda m: (_PRECISION.get(m.center.geo_precision or GeoPrecision.POSTAL_CODE, 9), order.index(m)),
        )
        c = best.center
        doc.update(latitude=c.latitude, longitude=c.longitude, geo_precision=c.geo_precision, geo_source=c.geo_source)
    for key in ("alternate_name", "website", "source_url"):
        if not doc.get(key):
            doc[key] = next((getattr(m.center, key) for m in order if getattr(m.center, key)), "")
    phones: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for m in order:
        for p in m.center.phones:  # one number at two extensions is two lines to call (as normalize keeps them)
            if (p.number, p.role.value, p.extension) not in seen:
                seen.add((p.number, p.role.value, p.extension))
                phones.append({**p.model_dump(mode="json"), "source": m.center.feed_id})
    doc["phones"] = phones
    ids = {(x.system, x.value): x.model_dump() for m in order for x in m.center.external_ids}
    doc["external_ids"] = list(ids.values())
    services: dict[str, set[str]] = {}
    for m in order:
        for group, values in m.center.services.model_dump(mode="json").items():
            services.setdefault(group, set()).update(values)
    doc["services"] = {group: sorted(values) for group, values in services.items()}
    statuses = {m.center.status for m in order}
    doc["status"] = next(
        s.value for s in (CenterStatus.ACTIVE, CenterStatus.TEMPORARILY_CLOSED, CenterStatus.INACTIVE) if s in statuses
    )
    doc["sources"] = [{"id": m.center.id, "feed_id": m.center.feed_id, "source_id": m.center.source_id} for m in order]
    return doc


def compose_alone(facility_id: str, member: Member, record: bytes) -> dict[str, Any] | None:
    """``compose(facility_id, [member])`` from the record's stored JSON (``record``: its ``model_dump_json``), when
    that is sure to give the same: the record founded the facility, and nothing in it is one that ``compose`` would
    drop or reorder (a phone line or an external id twice, a service list out of order). Else None: compose it.
    Saves dumping the model again for the common facility, a place of one record (a test holds the two alike)."""
    c = member.center
    if c.id != facility_id:
        return None
    if len({(p.number, p.role, p.extension) for p in c.phones}) != len(c.phones):
        return None
    if len({(x.system, x.value) for x in c.external_ids}) != len(c.external_ids):
        return None
    s = c.services
    for values in (s.levels_of_care, s.payment, s.populations, s.languages):
        if any(a >= b for a, b in itertools.pairwise(values)):
            return None
    doc = orjson.loads(record)
    for key in ("alternate_name", "website", "source_url"):
        if not doc.get(key):
            doc[key] = ""
    return single(doc)


def single(record: dict[str, Any]) -> dict[str, Any]:
    """``compose`` of a facility whose one record founded it, from that record's JSON (changed in place): its
    phones carry their feed, ``sources`` names the record. The store keeps no composed copy of such a facility
    when this gives exactly what ``compose`` gave (``store.diff_facilities`` checks it, byte for byte)."""
    feed = record["feed_id"]
    for phone in record["phones"]:  # the caller's own (decoded for this call): changed in place, as the record is
        phone["source"] = feed
    record["sources"] = [{"id": record["id"], "feed_id": feed, "source_id": record["source_id"]}]
    return record


def index_tokens(doc: dict[str, Any]) -> list[str]:
    """The filter index entries of a composed facility: ``loc:detox``, ``pay:medicaid`` ..."""
    s = doc["services"]
    return (
        [f"loc:{v}" for v in s.get("levels_of_care", ())]
        + [f"pay:{v}" for v in s.get("payment", ())]
        + [f"pop:{v}" for v in s.get("populations", ())]
        + [f"lang:{v}" for v in s.get("languages", ())]
    )


def identifiers(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(x["system"].lower(), x["value"]) for x in doc.get("external_ids", ())]
