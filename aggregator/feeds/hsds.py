"""Open Referral HSDS 3.x: JSON objects, lists and API pages, and the tabular CSV package -> raw records. Pure.

**What one raw record is.** One record per physical location: one place is one row in an answer,
however many services the partner lists there. ``source_id`` is the location id (cut and ended with
a hash when longer than 64 characters); a location object without an id takes its
``service_at_location`` id, else it has none (and normalization rejects it for that). Every service
linked to the location (by a ``service_at_location``, nested or by id) is merged into that record.
A service with no physical location (only virtual ones, or none) still yields one record of its
own (``source_id`` = service id, no address; named by the rule below, so after its organization),
which normalization rejects for the missing state: the partner sees that the service could not be
placed rather than losing it silently. A ``location`` document that no service links to yields a
record for the site alone.

**JSON accepted.** A ``service`` (full: nested ``service_at_locations[].location``), a
``service_at_location`` (full: nested ``service`` and ``location``), an ``organization`` (with
``services`` and ``locations``), a ``location``, a list of any of these, or an HSDS API page
(``contents`` + ``page_number``/``total_pages``; ``follow`` returns the next page with ``page=N+1``).
Objects seen twice (a service nested in several places) are merged by id; links by id
(``location_id``, ``service_id``, ``organization_id``) are resolved across all documents.

**Tabular package.** ``follow`` on a ``datapackage.json`` returns the URLs of the tables used here
(services, locations, service_at_location, addresses, phones, languages, service_capacity, units,
organizations, attributes, taxonomy_terms, cost_options: whichever the package lists). ``parse``
recognizes each CSV by its resource name in the package (else its file name), joins the tables by
id into the nested JSON shape and reads that like JSON. A ``datapackage.json`` that is not a Data
Package (e.g. a git symlink stub) is a ``ParseError``: the adapter never guesses table URLs. Rows
that link to ids that do not exist (a ``service_capacity`` row for an unknown service) are dropped:
there is no record to hang them on (see the report's recommendation for an adapter warning channel).

**Fields.** name = the location's name, else the organization's name, else (last resort) the first
service's name; alternate_name = the organization's name when it differs from the chosen name (else
none). The organization is the location's own (``organization_id``), else the first service's.
Address from the location's ``physical`` address (else only the city, state and ZIP of its first
non-virtual address, e.g. a ``postal`` one: enough to place the site, while a PO box is no street
to send anyone to); lat/lon from the location. From the services at the location, in the order
they were read, merged: phones = the union (each number once, compared by its digits) of each
service_at_location's and each service's, then the location's (the organization's only when none;
fax and pager numbers skipped; "intake"/"hotline" in a phone's description set its role); website =
the first service ``url``, else organization ``website``; status = "active" when any service is
active, else the first service's ``status`` (none when a service gives none: normalization reads
that as active); languages = the union of the services' then the location's (ISO code when given
as two letters, else name); levels_of_care = the union of each service's name, description and the
``code``/``name`` of taxonomy terms attached through ``attributes`` (free text for the vocabulary: a
service with no capacity still names its level this way); payment = the union of each service's
``fees_description`` (else deprecated ``fees``) and its cost options' ``option``; the location's
``external_identifier`` becomes an external id. A mapping's ``constants`` are applied to every record.

**Capacity (3.1 ``service_capacity``).** A unit that counts places (``Bed``, ``Beds``, ``Place``,
``Slot``, ``Space``, optionally qualified: "Adult male beds") becomes an availability entry:
``beds_available`` = available, ``beds_total`` = maximum, ``reported_at`` = updated, notes = the
service's name then the capacity's description ("Detox program: 4 adult beds"), ``level_of_care`` =
that service's own level texts (normalization picks the level). Every capacity of every service at
the location is its own entry, even two for one level (normalization combines those). Any other
unit is *never* read as beds: the entry carries ``beds_available`` = "<available> <unit>" (e.g.
``'12 Kilogram'``), which normalization rejects with the reason
``availability.N.beds_available: '12 Kilogram' is not a count``, naming the unit. Capacity hangs off
the service, not the site: a service with capacity at several physical locations gets, at each, an
entry "<available> shared by <n> sites", rejected the same way, instead of counting the beds n times.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from aggregator.errors import ParseError
from aggregator.feeds import Document
from aggregator.feeds.csv import MAX_FIELD, decode
from aggregator.feeds.mapping import RecordMapping, stable_id
from aggregator.feeds.values import basename as _basename
from aggregator.feeds.values import dicts as _dicts
from aggregator.feeds.values import text as _s

#: canonical table -> names a package resource or CSV file may carry (HSDS 3.x, and 2.x where cheap)
TABLES: dict[str, tuple[str, ...]] = {
    "organizations": ("organization", "organizations"),
    "services": ("service", "services"),
    "locations": ("location", "locations"),
    "service_at_locations": (
        "service_at_location",
        "service_at_locations",
        "services_at_location",
        "services_at_locations",
    ),
    "addresses": ("address", "addresses", "physical_address", "physical_addresses"),
    "phones": ("phone", "phones"),
    "languages": ("language", "languages"),
    "service_capacity": ("service_capacity", "service_capacities"),
    "units": ("unit", "units"),
    "attributes": ("attribute", "attributes", "service_attribute", "service_attributes"),
    "taxonomy_terms": ("taxonomy_term", "taxonomy_terms"),
    "cost_options": ("cost_option", "cost_options"),
}
_ALIASES = {alias: table for table, aliases in TABLES.items() for alias in aliases}
#: columns without which a table cannot be joined
_REQUIRED = {
    "services": ("id",),
    "locations": ("id",),
    "service_at_locations": ("service_id", "location_id"),
}

#: a unit that counts places: its last word is bed/place/slot/space ("Beds", "Adult male beds"; not "Bed nights")
_BED_UNIT = re.compile(r"^[\w\s'-]*?\b(?:beds?|places?|slots?|spaces?)\s*$", re.I)
_SKIPPED_PHONE_TYPES = frozenset({"fax", "pager"})
_MAX_ID = 64


# --------------------------------------------------------------------------------------------------
# follow


def follow(document: Document, mapping: RecordMapping) -> list[str]:
    """A Data Package's table URLs, or the next page of an HSDS API list; nothing for other documents."""
    stripped = document.body.lstrip(b"\xef\xbb\xbf \t\r\n")
    is_package_name = _basename(document.url).lower() == "datapackage.json"
    if not stripped.startswith((b"{", b"[")):
        if is_package_name:
            start = stripped[:40].decode("utf-8", "replace")
            raise ParseError(f"{_basename(document.url)} is not a JSON Data Package (it begins {start!r})")
        return []
    data = _load_json(document)
    if isinstance(data, Mapping) and isinstance(data.get("resources"), list):
        return _package_urls(document, data)
    if is_package_name:
        raise ParseError(f"{_basename(document.url)} has no 'resources' list: not a Data Package")
    if isinstance(data, Mapping) and isinstance(data.get("contents"), list):
        return _next_page(document.url, data)
    return []


def _package_urls(document: Document, package: Mapping[str, Any]) -> list[str]:
    tables = list(_package_tables(document.url, package))
    if not any(t == "services" for t, _ in tables):
        names = [str(r.get("name") or r.get("path")) for r in package["resources"] if isinstance(r, Mapping)]
        raise ParseError(
            f"{_basename(document.url)} lists no services table (resources: {', '.join(names[:15]) or 'none'})"
        )
    return list(dict.fromkeys(url for table, url in tables if table))


def _package_tables(base: str, package: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(canonical table, absolute http(s) URL) of each resource the package lists that we use."""
    for resource in package.get("resources") or ():
        if not isinstance(resource, Mapping):
            continue
        paths = resource.get("path")
        for path in paths if isinstance(paths, list) else [paths]:
            if not isinstance(path, str) or not path.strip():
                continue
            url = urljoin(base, path.strip())
            if urlsplit(url).scheme not in ("http", "https"):
                continue
            name = resource.get("name")
            table = _ALIASES.get(str(name).lower()) if isinstance(name, str) else None
            yield table or _ALIASES.get(_stem(url), ""), url


def _next_page(url: str, page: Mapping[str, Any]) -> list[str]:
    if page.get("last_page") is True:
        return []
    number, total = _int(page.get("page_number")), _int(page.get("total_pages"))
    if number is None or total is None or number >= total:
        return []
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    query.append(("page", str(number + 1)))
    return [urlunsplit(parts._replace(query=urlencode(query)))]


# --------------------------------------------------------------------------------------------------
# parse


def parse(documents: Sequence[Document], mapping: RecordMapping) -> list[dict[str, Any]]:
    graph = _Graph()
    tables: dict[str, list[dict[str, str]]] = {}
    package_tables: dict[str, str] = {}
    loaded: list[tuple[Document, Any]] = []
    for doc in documents:
        stripped = doc.body.lstrip(b"\xef\xbb\xbf \t\r\n")
        if stripped.startswith((b"{", b"[")):
            data = _load_json(doc)
            if isinstance(data, Mapping) and isinstance(data.get("resources"), list):
                package_tables.update((url, t) for t, url in _package_tables(doc.url, data) if t)
                graph.found += 1
            else:
                loaded.append((doc, data))
        else:
            loaded.append((doc, None))
    for doc, data in loaded:
        if data is not None:
            before = graph.found
            graph.walk(data, doc.url)
            if graph.found == before:
                raise ParseError(
                    f"{_basename(doc.url)}: no HSDS service, service_at_location, organization or location "
                    "found (expected an object with 'id' and e.g. 'name'/'status', a list of them, "
                    "or an API page with 'contents')"
                )
            continue
        table = package_tables.get(doc.url) or _ALIASES.get(_stem(doc.url))
        if table is None:
            known = ", ".join(f"{t}.csv" for t in TABLES)
            raise ParseError(f"{_basename(doc.url)} is neither HSDS JSON nor a known HSDS table by name ({known})")
        rows = _read_table(doc, table)
        if table == "addresses" and _stem(doc.url).startswith("physical"):
            for row in rows:
                row.setdefault("address_type", "physical")
        tables.setdefault(table, []).extend(rows)
        graph.found += 1
        graph.source_of_table[table] = graph.source_of_table.get(table) or doc.url
    if package_tables and "services" not in tables and not graph.services:
        raise ParseError("a datapackage.json was read but none of its services tables: nothing to join")
    if tables:
        _join_tables(tables, graph)
    if not graph.found:
        raise ParseError("no HSDS documents to read")
    return graph.records(mapping)


def _load_json(doc: Document) -> Any:
    try:
        text = decode(doc.body)
    except ParseError as exc:
        raise ParseError(f"{_basename(doc.url)}: not UTF-8 or Windows-1252 text") from exc
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"{_basename(doc.url)}: not valid JSON ({str(exc)[:120]})") from exc


def _read_table(doc: Document, table: str) -> list[dict[str, str]]:
    name = _basename(doc.url)
    try:
        text = decode(doc.body)
    except ParseError as exc:
        raise ParseError(f"{name}: not UTF-8 or Windows-1252 text") from exc
    if "\x00" in text:
        raise ParseError(f"{name}: contains NUL bytes: not a CSV table")
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[dict[str, str]] = []
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if not any(header):
            raise ParseError(f"{name}: empty CSV table")
        missing = [c for c in _REQUIRED.get(table, ()) if c not in header]
        if missing:
            raise ParseError(
                f"{name}: column {missing[0]!r} missing (header has {', '.join(repr(h) for h in header[:12])})"
            )
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append({h: c.strip() for h, c in zip(header, cells, strict=False) if h})
    except csv.Error as exc:
        raise ParseError(f"{name}: CSV malformed at line {reader.line_num}: {exc}") from exc
    return rows


def _join_tables(tables: Mapping[str, list[dict[str, str]]], graph: _Graph) -> None:
    """The package's tables, joined by id into nested HSDS JSON and walked like a JSON feed."""

    def by(table: str, key: str) -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = {}
        for row in tables.get(table, ()):
            if row.get(key):
                out.setdefault(row[key], []).append(row)
        return out

    def one(table: str) -> dict[str, dict[str, str]]:
        return {row["id"]: row for row in tables.get(table, ()) if row.get("id")}

    units, terms = one("units"), one("taxonomy_terms")
    org_phones = by("phones", "organization_id")
    orgs = {key: {**org, "phones": org_phones.get(key, [])} for key, org in one("organizations").items()}
    addresses = by("addresses", "location_id")
    loc_phones, svc_phones, sal_phones = (
        by("phones", k) for k in ("location_id", "service_id", "service_at_location_id")
    )
    loc_langs, svc_langs = by("languages", "location_id"), by("languages", "service_id")
    capacities, costs = by("service_capacity", "service_id"), by("cost_options", "service_id")
    attributes = by("attributes", "link_id")
    for key, rows in by("attributes", "service_id").items():  # HSDS 2.x service_attributes
        attributes.setdefault(key, []).extend(r for r in rows if r not in attributes.get(key, []))
    sals = by("service_at_locations", "service_id")

    locations: dict[str, dict[str, Any]] = {}
    for row in tables.get("locations", ()):
        loc: dict[str, Any] = dict(row)
        loc["addresses"] = addresses.get(row["id"], [])
        loc["phones"] = loc_phones.get(row["id"], [])
        loc["languages"] = loc_langs.get(row["id"], [])
        locations[row["id"]] = loc
    url = graph.source_of_table.get("services", "")
    for row in tables.get("services", ()):
        sid = row["id"]
        service: dict[str, Any] = dict(row)
        if row.get("organization_id") in orgs:
            service["organization"] = orgs[row["organization_id"]]
        service["phones"] = svc_phones.get(sid, [])
        service["languages"] = svc_langs.get(sid, [])
        service["cost_options"] = costs.get(sid, [])
        service["capacities"] = [
            {**cap, "unit": units[cap["unit_id"]]} if cap.get("unit_id") in units else dict(cap)
            for cap in capacities.get(sid, [])
        ]
        service["attributes"] = [
            {**a, "taxonomy_term": terms[a["taxonomy_term_id"]]} if a.get("taxonomy_term_id") in terms else a
            for a in attributes.get(sid, [])
        ]
        service["service_at_locations"] = [
            {
                **sal,
                "phones": sal_phones.get(sal.get("id", ""), []) if sal.get("id") else [],
                "attributes": [
                    {**a, "taxonomy_term": terms[a["taxonomy_term_id"]]} if a.get("taxonomy_term_id") in terms else a
                    for a in attributes.get(sal.get("id", ""), [])
                ]
                if sal.get("id")
                else [],
                **({"location": locations[sal["location_id"]]} if sal["location_id"] in locations else {}),
            }
            for sal in sals.get(sid, [])
        ]
        graph.add_service(service, url)


# --------------------------------------------------------------------------------------------------
# The object graph: every service, location, organization and (service, location) pair seen


@dataclass
class _Pair:
    service: str
    location: str
    sal_id: str = ""
    phones: list[Mapping[str, Any]] = field(default_factory=list)
    attributes: list[Mapping[str, Any]] = field(default_factory=list)


@dataclass
class _Graph:
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    service_url: dict[str, str] = field(default_factory=dict)
    service_org: dict[str, str] = field(default_factory=dict)
    locations: dict[str, dict[str, Any]] = field(default_factory=dict)
    location_url: dict[str, str] = field(default_factory=dict)
    top_locations: list[str] = field(default_factory=list)
    orgs: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: dict[tuple[str, str], _Pair] = field(default_factory=dict)
    source_of_table: dict[str, str] = field(default_factory=dict)
    found: int = 0
    anonymous: int = 0

    # ---- reading

    def walk(self, data: Any, url: str, depth: int = 0) -> None:
        if isinstance(data, list):
            if depth < 3:
                for item in data:
                    self.walk(item, url, depth + 1)
            return
        kind = _kind(data)
        if kind == "page":
            for item in data["contents"]:
                self.walk(item, url, depth + 1)
            self.found += 1
        elif kind == "service":
            self.add_service(data, url)
        elif kind == "service_at_location":
            self.add_sal(data, url)
        elif kind == "organization":
            self.add_org(data, url)
        elif kind == "location":
            key = self.add_location(data, url)
            if key not in self.top_locations:
                self.top_locations.append(key)

    def _key(self, obj: Mapping[str, Any]) -> str:
        key = _s(obj.get("id"))
        if not key:
            self.anonymous += 1
            key = f"#{self.anonymous}"
        return key

    def add_service(self, obj: Mapping[str, Any], url: str, org: str = "") -> str:
        self.found += 1
        key = self._key(obj)
        _merge(self.services.setdefault(key, {}), obj)
        self.service_url.setdefault(key, url)
        nested_org = obj.get("organization")
        if isinstance(nested_org, Mapping):
            org = self.add_org(nested_org, url, walk_services=False)
        elif not org and _s(obj.get("organization_id")):
            org = _s(obj.get("organization_id"))
        if org:
            self.service_org.setdefault(key, org)
        for sal in _dicts(obj.get("service_at_locations")):
            self.add_sal(sal, url, service=key)
        return key

    def add_sal(self, obj: Mapping[str, Any], url: str, service: str = "") -> None:
        self.found += 1
        nested = obj.get("service")
        if isinstance(nested, Mapping) and not service:
            service = self.add_service(nested, url)
        service = service or _s(obj.get("service_id"))
        loc = obj.get("location")
        location = self.add_location(loc, url) if isinstance(loc, Mapping) else _s(obj.get("location_id"))
        if not service or not location:
            return
        pair = self.pairs.setdefault((service, location), _Pair(service, location))
        pair.sal_id = pair.sal_id or _s(obj.get("id"))
        pair.phones += _dicts(obj.get("phones"))
        pair.attributes += _dicts(obj.get("attributes"))

    def add_location(self, obj: Mapping[str, Any], url: str) -> str:
        self.found += 1
        key = self._key(obj)
        _merge(self.locations.setdefault(key, {}), obj)
        self.location_url.setdefault(key, url)
        return key

    def add_org(self, obj: Mapping[str, Any], url: str, walk_services: bool = True) -> str:
        self.found += 1
        key = self._key(obj)
        _merge(self.orgs.setdefault(key, {}), obj)
        for loc in _dicts(obj.get("locations")):
            self.add_location(loc, url)
        if walk_services:
            for service in _dicts(obj.get("services")):
                self.add_service(service, url, org=key)
        return key

    # ---- writing

    def records(self, mapping: RecordMapping) -> list[dict[str, Any]]:
        """One record per physical location (its services merged), per unplaced service, per bare location."""
        by_service: dict[str, list[_Pair]] = {}
        for pair in self.pairs.values():
            by_service.setdefault(pair.service, []).append(pair)
        at_location: dict[str, list[_Pair]] = {}  # physical location -> its pairs, in service order
        sites: dict[str, int] = {}  # service -> how many physical locations it is at
        order: list[tuple[str | None, str]] = []  # (location, service): a location's record, or an unplaced service's
        for key in self.services:
            pairs = [p for p in by_service.get(key, []) if _physical(self.locations.get(p.location))]
            sites[key] = len(pairs)
            if not pairs:
                order.append((None, key))
            for pair in pairs:
                if pair.location not in at_location:
                    at_location[pair.location] = []
                    order.append((pair.location, ""))
                at_location[pair.location].append(pair)
        for key in self.top_locations:
            if not any(p.location == key for p in self.pairs.values()):
                order.append((key, ""))
        out: list[dict[str, Any]] = []
        for location, service_key in order:
            members: list[tuple[str, _Pair | None]] = (
                [(p.service, p) for p in at_location.get(location, [])]
                if location is not None
                else [(service_key, None)]
            )
            out.append(self._record(mapping, location, members, sites))
        return out

    def _record(
        self,
        mapping: RecordMapping,
        location: str | None,
        members: list[tuple[str, _Pair | None]],
        sites: Mapping[str, int],
    ) -> dict[str, Any]:
        """The record of one physical location and all its services (or of one service with no location)."""
        loc: Mapping[str, Any] = self.locations.get(location, {}) if location is not None else {}
        services = [(key, self.services[key], pair) for key, pair in members]
        org: Mapping[str, Any] = self.orgs.get(_s(loc.get("organization_id")), {}) or next(
            (self.orgs[o] for key, _, _ in services if (o := self.service_org.get(key, "")) in self.orgs), {}
        )
        raw: dict[str, Any] = dict(mapping.constants)
        if location is None:
            raw["source_id"] = "" if members[0][0].startswith("#") else members[0][0]
        elif location.startswith("#"):  # a location without an id: its service_at_location's id, if any
            raw["source_id"] = next((p.sal_id for _, _, p in services if p and p.sal_id), "")
        else:
            raw["source_id"] = _source_id(location)
        name = (
            _s(loc.get("name"))
            or _s(org.get("name"))
            or next((_s(svc.get("name")) for _, svc, _ in services if _s(svc.get("name"))), "")
        )
        raw["name"] = name
        if _s(org.get("name")) and _s(org.get("name")) != name:
            raw["alternate_name"] = _s(org.get("name"))
        raw.update(_place(loc))
        phones = _phones(
            [
                *(
                    phone
                    for _, svc, pair in services
                    for phone in [*(pair.phones if pair else []), *_dicts(svc.get("phones"))]
                ),
                *_dicts(loc.get("phones")),
            ]
        ) or _phones(_dicts(org.get("phones")))
        if phones:
            raw["phones"] = phones
        website = (
            next((_s(svc.get("url")) for _, svc, _ in services if _s(svc.get("url"))), "")
            or _s(org.get("website"))
            or _s(org.get("url"))
        )
        if website:
            raw["website"] = website
        statuses = [_s(svc.get("status")) for _, svc, _ in services]
        active = next((s for s in statuses if s.lower() == "active"), "")
        if active or (statuses and all(statuses)):  # a service with no status is not read as closed
            raw["status"] = active or statuses[0]
        languages = _languages(
            [
                *(lang for _, svc, _ in services for lang in _dicts(svc.get("languages"))),
                *_dicts(loc.get("languages")),
            ]
        )
        if languages:
            raw["languages"] = languages
        own_levels = {key: _service_levels(svc, pair) for key, svc, pair in services}
        levels = _unique([text for texts in own_levels.values() for text in texts])
        if levels:
            raw["levels_of_care"] = levels
        payment = _unique(
            [
                text
                for _, svc, _ in services
                for text in (
                    _s(svc.get("fees_description")) or _s(svc.get("fees")),
                    *(_s(c.get("option")) for c in _dicts(svc.get("cost_options"))),
                )
            ]
        )
        if payment:
            raw["payment"] = payment
        url = next((self.service_url[key] for key, _, _ in services if self.service_url.get(key)), "") or (
            self.location_url.get(location, "") if location is not None else ""
        )
        if url:
            raw["source_url"] = url
        entries = [
            _capacity(cap, "; ".join(own_levels[key]), max(sites.get(key, 1), 1), _s(svc.get("name")))
            for key, svc, _ in services
            for cap in _dicts(svc.get("capacities"))
        ]
        if entries:
            raw["availability"] = entries
        return raw


def _kind(obj: Any) -> str | None:
    """Which HSDS object this is, from the keys it carries (objects do not name their type)."""
    if not isinstance(obj, Mapping):
        return None
    if isinstance(obj.get("contents"), list):
        return "page"
    if (
        isinstance(obj.get("service"), Mapping)
        or isinstance(obj.get("location"), Mapping)
        or ("service_id" in obj and "location_id" in obj)
    ):
        return "service_at_location"
    if "location_type" in obj or (isinstance(obj.get("addresses"), list) and "status" not in obj):
        return "location"
    if isinstance(obj.get("services"), list) and "status" not in obj:
        return "organization"
    if any(k in obj for k in ("status", "service_at_locations", "capacities", "organization_id")) or isinstance(
        obj.get("organization"), Mapping
    ):
        return "service"
    if any(k in obj for k in ("website", "legal_status", "organization_identifiers", "year_incorporated")):
        return "organization"
    return None


# --------------------------------------------------------------------------------------------------
# Field helpers


def _source_id(location_id: str) -> str:
    """The location's id; one longer than an id may be is cut and ends in a hash of the whole."""
    if len(location_id) <= _MAX_ID:
        return location_id
    return f"{location_id[: _MAX_ID - 17]}.{stable_id([location_id])}"


def _service_levels(service: Mapping[str, Any], pair: _Pair | None) -> list[str]:
    """A service's own level-of-care texts: its name, description and taxonomy terms (free text)."""
    return _unique(
        [
            _s(service.get("name")),
            _s(service.get("description")),
            *_term_texts([*_dicts(service.get("attributes")), *(pair.attributes if pair else [])]),
        ]
    )


def _place(loc: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    address, physical = _address(loc)
    for key, names in (
        ("address_1", ("address_1",) if physical else ()),
        ("address_2", ("address_2",) if physical else ()),
        ("city", ("city",)),
        ("state", ("state_province", "state")),
        ("postal_code", ("postal_code",)),
    ):
        value = next((_s(address.get(n)) for n in names if _s(address.get(n))), "")
        if value:
            out[key] = value
    for key in ("latitude", "longitude"):
        coordinate = _scalar(loc.get(key))
        if coordinate is not None:
            out[key] = coordinate
    external = _s(loc.get("external_identifier"))
    if external:
        out["external_ids"] = [
            {"system": _s(loc.get("external_identifier_type")) or "external_identifier", "value": external}
        ]
    return out


def _address(loc: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """The location's physical address; else its first non-virtual one, whose street is not a place."""
    addresses = (
        _dicts(loc.get("addresses")) + _dicts(loc.get("physical_address")) + _dicts(loc.get("physical_addresses"))
    )
    physical = [a for a in addresses if _s(a.get("address_type")).lower() in ("physical", "")]
    if physical:
        return physical[0], True
    others = [a for a in addresses if _s(a.get("address_type")).lower() != "virtual"]
    return (others[0] if others else {}), False


def _physical(loc: Mapping[str, Any] | None) -> bool:
    """A site a person can go to; an unresolved location id is kept (its record then says what is missing)."""
    return loc is None or _s(loc.get("location_type")).lower() in ("", "physical")


def _phones(items: list[Mapping[str, Any]]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in items:
        number = _s(item.get("number")).strip("\"' ")
        key = re.sub(r"\D", "", number) or number  # one number however it is written
        if not number or _s(item.get("type")).lower() in _SKIPPED_PHONE_TYPES or key in seen:
            continue
        seen.add(key)
        text = _s(item.get("description")).lower()
        role = (
            "intake"
            if re.search(r"intake|admission", text)
            else ("hotline" if re.search(r"hotline|crisis line", text) else "main")
        )
        out.append({"number": number, "role": role})
    return out


def _languages(items: list[Mapping[str, Any]]) -> list[str]:
    values = []
    for item in items:
        code, name = _s(item.get("code")), _s(item.get("name"))
        values.append(code if len(code) == 2 else name or code)
    return _unique(values)


def _term_texts(attributes: list[Mapping[str, Any]]) -> list[str]:
    out = []
    for attribute in attributes:
        term = attribute.get("taxonomy_term")
        if isinstance(term, Mapping):
            out += [_s(term.get("code")), _s(term.get("name"))]
    return out


def _capacity(cap: Mapping[str, Any], level_text: str, sites: int, service_name: str) -> dict[str, Any]:
    unit = cap.get("unit")
    unit_name = _s(unit.get("name")) if isinstance(unit, Mapping) else _s(cap.get("unit_name"))
    available = _scalar(cap.get("available"))
    entry: dict[str, Any] = {"level_of_care": level_text}
    if not _BED_UNIT.match(unit_name):
        # never beds: a value normalization rejects, and whose reason names the unit
        entry["beds_available"] = f"{_s(available) or '?'} {unit_name or '(no unit)'}"
    elif sites > 1:
        entry["beds_available"] = f"{_s(available) or '?'} shared by {sites} sites"
    else:
        if available is not None:
            entry["beds_available"] = available
        maximum = _scalar(cap.get("maximum"))
        if maximum is not None:
            entry["beds_total"] = maximum
    updated = _scalar(cap.get("updated"))
    if updated is not None:
        entry["reported_at"] = updated
    notes = ": ".join(t for t in (service_name, _s(cap.get("description"))) if t)
    if notes:  # the service's name first: several services share one location's record
        entry["notes"] = notes
    return entry


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for k, v in new.items():
        if into.get(k) in (None, "", [], {}):
            into[k] = v


def _scalar(value: Any) -> str | int | float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _stem(url: str) -> str:
    return PurePosixPath(urlsplit(url).path).stem.lower()
