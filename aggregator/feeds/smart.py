"""SMART Scheduling Links: a ``$bulk-publish`` manifest and its FHIR NDJSON files -> raw records. Pure.

**follow.** On the manifest (JSON with ``output``) returns the ``url`` of every output of type
Location, Schedule or Slot (other types are ignored). ``options.states`` (a list of state codes):
an output tagged with ``extension.state`` is kept only when a tag is in the list (Slot outputs as the
spec intends, and Location/Schedule outputs when a publisher tags them too); an untagged output whose
file name carries a state code in capitals on its own (``locations-RI.ndjson``, ``NH_slots.ndjson``) is
judged by that code; other outputs are kept, since nothing says they are out of region. A listed file
that cannot be fetched (404, timeout) is reported in the run, and the rest of the feed is applied as
a partial run (``aggregator.ingest``). ``options.rebase = true``: each output URL keeps its
file name (and query) but takes the manifest's own scheme, host and directory, so a locally served
copy of a feed whose manifest names its public host works.

**parse.** One raw record per Location: ``source_id`` = Location.id, name, phones (telecom
``phone``), website (first telecom ``url``), address (line[0], line[1], city, state, postalCode),
position, ``identifier[]`` as external ids, FHIR ``status`` (active / suspended / inactive).
Schedules link to Locations through ``actor[].reference`` (``Location/{id}``, relative or absolute);
Slots link to Schedules through ``schedule.reference``. With ``options.states``, Locations whose
address is in another state are left out.

**Availability** (one entry per Location with schedules or slots). The manifest's
``transactionTime`` is "now" for the slots and the ``reported_at`` of every observation; the
adapter never reads the clock. A slot counts when it is ``free`` and its ``end`` is after
transactionTime; its weight is the ``slot-capacity`` extension (``valueInteger``, 1 when absent).
Then, for the location:

* counted slots -> ``appointments_available`` = their total (appointments, never beds), status
  ``available``, ``next_appointment_at`` = the earliest start, notes "N open appointments of M from
  <first start>";
* else a Schedule with ``has-availability`` = ``unknown`` -> status ``unknown`` (slots of such a
  schedule are not trusted: the aggregator that published it could not read its source);
* else any slot (busy, or past) or ``has-availability`` = ``none`` -> status ``full``, 0 appointments;
* else ``has-availability`` = ``some`` -> status ``available`` with no count.

``level_of_care`` is ``options.level_of_care`` (default ``outpatient``): SMART carries intake
appointments, not beds. A mapping's ``constants`` are applied to every record. Without a manifest
(a feed pointed straight at NDJSON) every free slot counts and ``reported_at`` is left to the run.

**Malformed lines** never sink the feed. A line that is not JSON, not an object, or lacks
``resourceType``/``id`` is skipped and surfaced as a raw record ``{"_problem": ...}`` that says which
file and line and why (e.g. ``slots.ndjson line 7: not JSON``): normalization rejects it with that
reason and the run report lists it. At most 10 such records per
file (then one "... more unreadable lines" record); a file with no readable line at all is one
record. Only when *no* resource is readable in any document is it a ``ParseError``. Resources of
other types, and Slots or Schedules whose reference leads nowhere, are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

from aggregator import geography
from aggregator.errors import ParseError
from aggregator.feeds import Document
from aggregator.feeds.csv import decode
from aggregator.feeds.mapping import RecordMapping
from aggregator.feeds.values import basename as _basename
from aggregator.feeds.values import dicts as _dicts
from aggregator.feeds.values import text as _s

OUTPUT_TYPES = ("Location", "Schedule", "Slot")
MAX_BAD_LINES = 10
_REFERENCE = {kind: re.compile(rf"(?:^|/){kind}/([^/]+?)/?$") for kind in ("Location", "Schedule")}
_STATUS = {"active": "active", "suspended": "temporarily closed", "inactive": "inactive"}


# --------------------------------------------------------------------------------------------------
# follow


def follow(document: Document, mapping: RecordMapping) -> list[str]:
    manifest = _manifest(document.body)
    if manifest is None:
        return []
    states = _states(mapping)
    urls: list[str] = []
    for output in manifest.get("output") or ():
        if not isinstance(output, Mapping) or output.get("type") not in OUTPUT_TYPES:
            continue
        url = output.get("url")
        if not isinstance(url, str) or not url.strip():
            continue
        if states is not None:
            tags = _tags(output) or _file_states(url)
            if tags and not tags & states:
                continue
        url = url.strip()
        if mapping.options.get("rebase"):
            url = _rebase(url, document.url)
        if url not in urls:
            urls.append(url)
    return urls


def _rebase(url: str, manifest_url: str) -> str:
    parts = urlsplit(url)
    name = PurePosixPath(parts.path).name
    return urljoin(manifest_url, name + (f"?{parts.query}" if parts.query else ""))


def _tags(output: Mapping[str, Any]) -> set[str]:
    ext = output.get("extension")
    raw = ext.get("state") if isinstance(ext, Mapping) else None
    values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return {v.strip().upper() for v in values if isinstance(v, str) and v.strip()}


#: a state code in capitals standing alone in a file name: locations-MA.ndjson, RI_slots.ndjson (a word
#: such as "la" in slots-la-county.ndjson is not read as a state)
_NAME_TOKEN = re.compile(r"(?:^|[/_.\-])([A-Z]{2})(?=[/_.\-]|$)")


def _file_states(url: str) -> set[str]:
    """State codes a per-state file's name carries (its path after the host), when it has any."""
    found = {m.group(1) for m in _NAME_TOKEN.finditer(PurePosixPath(urlsplit(url).path).name)}
    return {code for code in found if code in geography.STATE_NAMES}


def _states(mapping: RecordMapping) -> set[str] | None:
    states = mapping.options.get("states")
    if not isinstance(states, list):
        return None
    return {s.strip().upper() for s in states if isinstance(s, str)}


# --------------------------------------------------------------------------------------------------
# parse


@dataclass
class _Feed:
    locations: list[dict[str, Any]] = field(default_factory=list)
    location_url: dict[str, str] = field(default_factory=dict)
    #: schedule id -> location ids
    schedule_locations: dict[str, list[str]] = field(default_factory=dict)
    schedule_availability: dict[str, str] = field(default_factory=dict)
    slots: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    readable: int = 0


def parse(documents: Sequence[Document], mapping: RecordMapping) -> list[dict[str, Any]]:
    feed = _Feed()
    transaction_time: str | None = None
    manifests = 0
    for doc in documents:
        manifest = _manifest(doc.body)
        if manifest is not None:
            manifests += 1
            tt = manifest.get("transactionTime")
            if isinstance(tt, str) and tt.strip() and transaction_time is None:
                transaction_time = tt.strip()
            continue
        _read_ndjson(doc, feed)
    if not feed.readable:
        names = ", ".join(_basename(d.url) for d in documents[:6]) or "no documents"
        what = (
            "the manifest lists no Location, Schedule or Slot file we read"
            if manifests and len(documents) == manifests
            else "no line is a FHIR resource with resourceType and id"
        )
        raise ParseError(f"SMART Scheduling Links feed unreadable ({names}): {what}")
    now = _instant(transaction_time) if transaction_time else None
    states = _states(mapping)
    level = str(mapping.options.get("level_of_care") or "outpatient")
    by_location = _availability(feed, now)
    scheduled = {lid for lids in feed.schedule_locations.values() for lid in lids}
    records: list[dict[str, Any]] = []
    for loc in feed.locations:
        lid = loc["id"]
        raw = _location_record(loc, mapping)
        if states is not None and raw.get("state") and _state(raw["state"]) not in states:
            continue
        if feed.location_url.get(lid):
            raw["source_url"] = feed.location_url[lid]
        if transaction_time:
            raw["reported_at"] = transaction_time
        entry = by_location.get(lid)
        if entry is None and lid in scheduled:
            # a schedule and no slot evidence (its slots file may be missing): it still offers the level
            raw["levels_of_care"] = [*_as_list(raw.get("levels_of_care")), level]
        if entry is not None:
            # a location with a schedule offers what the feed's appointments are for
            raw["levels_of_care"] = [*_as_list(raw.get("levels_of_care")), level]
            entry = {"level_of_care": level, **entry}
            if transaction_time:
                entry["reported_at"] = transaction_time
            raw["availability"] = [entry]
        records.append(raw)
    return records + feed.problems


def _manifest(body: bytes) -> Mapping[str, Any] | None:
    """The manifest's JSON object, or None when the bytes are not one (an NDJSON file, garbage)."""
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped.startswith(b"{"):
        return None
    try:
        data = json.loads(decode(body))
    except (ValueError, RecursionError, ParseError):
        return None
    if isinstance(data, Mapping) and "resourceType" not in data and isinstance(data.get("output"), list):
        return data
    return None


def _read_ndjson(doc: Document, feed: _Feed) -> None:
    name = _basename(doc.url)
    try:
        text = decode(doc.body)
    except ParseError:
        feed.problems.append({"_problem": f"{name}: not UTF-8 text"})
        return
    bad: list[str] = []
    readable_before = feed.readable
    lines = 0
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        lines += 1
        try:
            resource = json.loads(line)
        except (ValueError, RecursionError):
            bad.append(f"{name} line {number}: not JSON")
            continue
        why = _unreadable(resource)
        if why:
            bad.append(f"{name} line {number}: {why}")
            continue
        feed.readable += 1
        _add(resource, doc.url, feed)
    if lines and feed.readable == readable_before:
        plural = "s" if lines > 1 else ""
        feed.problems.append({"_problem": f"{name}: no readable FHIR resource in {lines} line{plural}"})
        return
    feed.problems += [{"_problem": text} for text in bad[:MAX_BAD_LINES]]
    if len(bad) > MAX_BAD_LINES:
        feed.problems.append({"_problem": f"{name}: {len(bad) - MAX_BAD_LINES} more unreadable lines"})


def _unreadable(resource: Any) -> str:
    if not isinstance(resource, Mapping):
        return "not a JSON object"
    if not isinstance(resource.get("resourceType"), str) or not resource["resourceType"].strip():
        return "no resourceType"
    rid = resource.get("id")
    if isinstance(rid, bool) or not isinstance(rid, str | int) or not str(rid).strip():
        return f"{resource['resourceType'][:20]} without id"
    return ""


def _add(resource: Mapping[str, Any], url: str, feed: _Feed) -> None:
    kind, rid = resource["resourceType"], str(resource["id"]).strip()
    if kind == "Location":
        feed.locations.append({**resource, "id": rid})
        feed.location_url.setdefault(rid, url)
    elif kind == "Schedule":
        targets = feed.schedule_locations.setdefault(rid, [])
        for actor in _dicts(resource.get("actor")):
            m = _REFERENCE["Location"].search(_s(actor.get("reference")))
            if m and m.group(1) not in targets:
                targets.append(m.group(1))
        for ext in _dicts(resource.get("extension")):
            if _s(ext.get("url")).endswith("/has-availability"):
                feed.schedule_availability[rid] = _s(ext.get("valueCode")).lower()
    elif kind == "Slot":
        feed.slots.append(dict(resource))


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _location_record(loc: Mapping[str, Any], mapping: RecordMapping) -> dict[str, Any]:
    raw: dict[str, Any] = dict(mapping.constants)
    raw["source_id"] = loc["id"]
    if _s(loc.get("name")):
        raw["name"] = _s(loc.get("name"))
    phones, website = [], ""
    for telecom in _dicts(loc.get("telecom")):
        system, value = _s(telecom.get("system")).lower(), _s(telecom.get("value"))
        if system == "phone" and value:
            phones.append({"number": value, "role": "main"})
        elif system == "url" and value and not website:
            website = value
    if phones:
        raw["phones"] = phones
    if website:
        raw["website"] = website
    found = loc.get("address")
    address: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    line = address.get("line")
    lines = [_s(x) for x in line if _s(x)] if isinstance(line, list) else []
    for key, value in (
        ("address_1", lines[0] if lines else ""),
        ("address_2", lines[1] if len(lines) > 1 else ""),
        ("city", _s(address.get("city"))),
        ("state", _s(address.get("state"))),
        ("postal_code", _s(address.get("postalCode"))),
    ):
        if value:
            raw[key] = value
    position = loc.get("position")
    if isinstance(position, Mapping):
        for key in ("latitude", "longitude"):
            coordinate = position.get(key)
            if isinstance(coordinate, int | float | str) and not isinstance(coordinate, bool):
                raw[key] = coordinate
    ids = [
        {"system": _s(i.get("system")) or "identifier", "value": _s(i.get("value"))}
        for i in _dicts(loc.get("identifier"))
        if _s(i.get("value"))
    ]
    if ids:
        raw["external_ids"] = ids
    status = _STATUS.get(_s(loc.get("status")).lower())
    if status:
        raw["status"] = status
    return raw


@dataclass
class _Tally:
    free: int = 0  # capacity of current free slots
    total: int = 0  # capacity of current slots, free or busy
    current: int = 0  # number of current slots
    any_slot: bool = False
    first: tuple[datetime, str] | None = None  # earliest start of a current free slot
    marks: set[str] = field(default_factory=set)  # has-availability codes of its schedules


def _availability(feed: _Feed, now: datetime | None) -> dict[str, dict[str, Any]]:
    """Per location id: the availability entry its schedules and slots amount to."""

    tallies: dict[str, _Tally] = {}
    for sid, locations in feed.schedule_locations.items():
        for lid in locations:
            mark = feed.schedule_availability.get(sid)
            tally = tallies.setdefault(lid, _Tally())
            if mark:
                tally.marks.add(mark)
    for slot in feed.slots:
        schedule = slot.get("schedule")
        m = _REFERENCE["Schedule"].search(_s(schedule.get("reference"))) if isinstance(schedule, Mapping) else None
        if not m or feed.schedule_availability.get(m.group(1)) == "unknown":
            continue
        end = _instant(_s(slot.get("end")))
        current = now is None or (end is not None and end > now)
        weight = _capacity(slot)
        for lid in feed.schedule_locations.get(m.group(1), ()):
            tally = tallies.setdefault(lid, _Tally())
            tally.any_slot = True
            if not current:
                continue
            tally.current += 1
            tally.total += weight
            if _s(slot.get("status")).lower() == "free":
                tally.free += weight
                start_text = _s(slot.get("start"))
                start = _instant(start_text)
                if start is not None and (tally.first is None or start < tally.first[0]):
                    tally.first = (start, start_text)
    out: dict[str, dict[str, Any]] = {}
    for lid, t in tallies.items():
        if t.free:
            notes = (
                f"{t.free} open appointments"
                + (f" of {t.total}" if t.total > t.free else "")
                + (f" from {t.first[1]}" if t.first else "")
            )
            out[lid] = {"status": "available", "appointments_available": t.free, "notes": notes}
            if t.first:
                out[lid]["next_appointment_at"] = t.first[1]
        elif "unknown" in t.marks:
            out[lid] = {"status": "unknown", "notes": "the publisher reports availability unknown"}
        elif t.any_slot or "none" in t.marks:
            out[lid] = {
                "status": "full",
                "appointments_available": 0,
                "notes": (
                    f"no open appointments ({t.current} booked slot{'s' if t.current != 1 else ''})"
                    if t.current
                    else "no open appointments: every listed slot has ended"
                    if t.any_slot
                    else "no open appointments"
                ),
            }
        elif "some" in t.marks:
            out[lid] = {"status": "available", "notes": "the publisher reports some availability; no slots listed"}
    return out


def _capacity(slot: Mapping[str, Any]) -> int:
    for ext in _dicts(slot.get("extension")):
        if _s(ext.get("url")).endswith("/slot-capacity"):
            value = ext.get("valueInteger")
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
    return 1


def _state(text: str) -> str:
    return geography.state_code(text[:40]) or text.upper()


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
