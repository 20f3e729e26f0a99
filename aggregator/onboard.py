"""Onboarding a partner: a dry run of a sample (``centers feed try``) that writes nothing.

Given a sample of a partner's feed (a local file or an http(s) URL) and its format, it shows what is
there (CSV columns, JSON key paths, HTML tables and repeated cards, with sample values), suggests a
mapping from the names it sees (TOML ready to paste under ``[feed.mapping]``), then runs the sample
through the same registry checks, parser and normalization an ingest would, and says what would be
kept, rejected (and why), repaired, left unmapped and dropped, and whether the run would pass the
feed's accepted-share rule. No Redis, no file is written.

Discovery, suggestion and summaries are pure functions of bytes and values; only ``read_first``,
``read_follow_ups``, ``load_mapping_file`` and ``run_trial`` touch files or the network.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from aggregator import vocabulary
from aggregator.errors import ConfigError, FetchPermanent, FetchTransient, ParseError
from aggregator.feeds import Document, follower_for, parser_for
from aggregator.feeds import csv as csv_feed
from aggregator.feeds import html as html_feed
from aggregator.feeds import json as json_feed
from aggregator.feeds.mapping import LIST_FIELDS, PHONE_FIELDS
from aggregator.fetch import Fetcher
from aggregator.ingest import (
    PARTIAL_FORMATS,
    IngestReport,
    accepts_enough,
    context_for,
    normalize_all,
    reason_key,
)
from aggregator.model import Availability, AvailabilityStatus, Center
from aggregator.normalize import LEVEL_PRIORITY
from config import registry
from config.registry import FeedConfig

FORMATS = ("csv", "json", "html", "hsds", "smart")
#: a dry run reads at most this many documents (the first and its pages, manifest files, tables)
MAX_DOCUMENTS = 20
MAX_BYTES = 20_000_000
TIMEOUT = 30.0
#: rows (CSV), records (JSON) or elements (HTML) read for sample values
SCAN = 1000
#: sample values shown per column, and kept for the heuristics
SHOWN, KEPT = 3, 20
#: the feed id of the trial's FeedConfig (center ids read "try:{source id}")
TRIAL_ID = "try"
#: the placeholder URL a local file is given (follow-ups are resolved in its folder by basename)
FILE_BASE = "http://127.0.0.1/try/"
EXAMPLE_CENTERS = 3

# --------------------------------------------------------------------------------------------------
# Discovery: what is in the sample


@dataclass
class Column:
    """A CSV column, a JSON key path, an HTML cell or card element, with its sample values."""

    ref: str  # the mapping reference: a CSV column, a JMESPath expression, a CSS selector
    label: str  # what a person calls it (the header text, the key path, the class name)
    samples: list[Any] = field(default_factory=list)  # up to KEPT distinct non-empty values
    filled: int = 0  # records where it holds something
    seen: int = 0  # records looked at
    #: names tried in turn by the heuristics (the label; for JSON also "parent leaf", leaf, parent)
    names: tuple[str, ...] = ()
    #: JSON: under a list of objects (``phones[*].number``); its values are lists
    in_list: bool = False
    #: JSON: the value itself is a list of scalars
    is_list: bool = False
    #: HTML: share of cells holding a link (a name column whose cells are links)
    links: float = 0.0
    depth: int = 0

    def add(self, value: Any) -> None:
        self.seen += 1
        if value in (None, "", []):
            return
        self.filled += 1
        if len(self.samples) < KEPT and value not in self.samples:
            self.samples.append(value)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ref": self.ref, "label": self.label, "samples": self.samples[:SHOWN]}
        if self.seen:
            out["filled"] = round(self.filled / self.seen, 3)
        return out


@dataclass
class Candidate:
    """Where the records are: the whole document (CSV), a JSON list, an HTML table or repeated cards."""

    kind: str  # csv | json | table | cards | none
    records: str  # mapping.records ("" for CSV and a top-level JSON list)
    count: int  # records (rows, list items, elements)
    columns: list[Column] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)  # HTML tables: the header cells
    next_page: str = ""  # JSON: where the next page's URL is (``links.next``)
    options: dict[str, Any] = field(default_factory=dict)  # HTML: rowspan = "carry" for spanning cells

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "records": self.records, "count": self.count,
                               "columns": [c.as_dict() for c in self.columns]}
        if self.kind == "table":
            out["headers"] = self.headers
        if self.next_page:
            out["next_page"] = self.next_page
        if self.options:
            out["options"] = self.options
        return out


@dataclass
class Discovery:
    format: str
    candidates: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.format, "candidates": [c.as_dict() for c in self.candidates], "notes": self.notes}


def discover(fmt: str, body: bytes) -> Discovery:
    """What the first document holds, for a person writing the mapping. Raises ParseError if unreadable."""
    if fmt == "csv":
        return Discovery(fmt, [discover_csv(body)])
    if fmt == "json":
        return Discovery(fmt, [discover_json(body)])
    if fmt == "html":
        found = discover_html(body)
        notes = [] if found else ["no table with data rows and no repeated cards found on the page"]
        return Discovery(fmt, found, notes)
    return Discovery(fmt, [], [f"format '{fmt}' is read by its standard: no field mapping is needed"])


def discover_csv(body: bytes) -> Candidate:
    text = csv_feed.decode(body)
    if not text.strip():
        raise ParseError("CSV is empty")
    delimiter = csv_feed.sniff(text)  # the parser's own choice, so both read the same columns
    csv.field_size_limit(csv_feed.MAX_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
        columns = [Column(ref=h, label=h, names=(h,)) for h in header]
        rows = 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            rows += 1
            if rows <= SCAN:
                for i, col in enumerate(columns):
                    col.add(row[i].strip() if i < len(row) else "")
    except (csv.Error, StopIteration) as exc:
        raise ParseError(f"CSV unreadable: {exc}") from exc
    return Candidate("csv", "", rows, [c for c in columns if c.ref])


#: key paths kept from a JSON sample
MAX_PATHS = 300
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _key_ref(key: str) -> str:
    return key if _SIMPLE_KEY.fullmatch(key) else json.dumps(key)


def find_records(document: Any) -> tuple[str, list[Any]] | None:
    """The list of records: the document itself, or the first list of objects under its keys
    (breadth first, three levels deep: ``data``, ``results``, ``data.facilities``)."""
    if isinstance(document, list):
        return "", document
    for sub, _key, item in _entries(document):
        if isinstance(item, list) and any(isinstance(x, dict) for x in item):
            return sub, item
    return None


def _entries(document: Any, levels: int = 3) -> Iterator[tuple[str, str, Any]]:
    """(dotted path, key, value) of every entry of an object and its objects, breadth first, ``levels`` deep."""
    queue: list[tuple[str, Any, int]] = [("", document, 0)]
    while queue:
        path, value, depth = queue.pop(0)
        if not isinstance(value, dict):
            continue
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            yield sub, str(key), item
            if isinstance(item, dict) and depth < levels - 1:
                queue.append((sub, item, depth + 1))


def discover_json(body: bytes) -> Candidate:
    document = json_feed.load(body)
    found = find_records(document)
    if found is None:
        keys = ", ".join(repr(k) for k in list(document)[:12]) if isinstance(document, dict) else "(none)"
        raise ParseError(f"no list of records found in the JSON (top-level keys: {keys}); is it the right "
                         "document?")
    path, items = found
    columns: dict[str, Column] = {}
    records = [item for item in items if isinstance(item, dict)][:SCAN]
    for record in records:
        values: dict[str, list[Any]] = {}
        _walk_json(record, [], False, values, columns)
        for ref, col in columns.items():
            got = values.get(ref)
            col.add(None if got is None else got if (col.in_list or col.is_list) else got[0])
    ordered = sorted(columns.values(), key=lambda c: (c.depth, list(columns).index(c.ref)))
    return Candidate("json", path, len(items), ordered, next_page=find_next_page(document))


_NEXT_KEYS = frozenset({"next", "next page", "next url", "next link", "next href"})


def find_next_page(document: Any) -> str:
    """The dotted path of a next-page link outside the records (``links.next``, ``next``), or ""."""
    for sub, key, item in _entries(document):
        if _norm(key) in _NEXT_KEYS and isinstance(item, str) and item.strip():
            return sub
    return ""


def _walk_json(value: Any, keys: list[str], in_list: bool, values: dict[str, list[Any]],
               columns: dict[str, Column], depth: int = 0) -> None:
    ref = "".join(keys).lstrip(".")
    if isinstance(value, dict):
        if depth >= 4:
            return
        for k, v in value.items():
            _walk_json(v, [*keys, "." + _key_ref(str(k))], in_list, values, columns, depth + 1)
        return
    if isinstance(value, list):
        objects = [x for x in value if isinstance(x, dict)]
        if objects:
            for item in objects[:10]:
                _walk_json(item, [*keys, "[*]"], True, values, columns, depth + 1)
            return
        scalars = [x for x in value if isinstance(x, str | int | float | bool)]
        _note(ref, keys, in_list, True, scalars, values, columns, depth)
        return
    if value is None or value == "":
        _note(ref, keys, in_list, False, [], values, columns, depth)
        return
    _note(ref, keys, in_list, False, [value], values, columns, depth)


def _note(ref: str, keys: list[str], in_list: bool, is_list: bool, found: list[Any],
          values: dict[str, list[Any]], columns: dict[str, Column], depth: int) -> None:
    if not ref:
        return
    if ref not in columns:
        if len(columns) >= MAX_PATHS:
            return
        parts = [k.strip(".").strip('"') for k in keys if k != "[*]"]
        leaf = parts[-1] if parts else ref
        parent = parts[-2] if len(parts) > 1 else ""
        names = (f"{parent} {leaf}", leaf, parent) if parent else (leaf,)
        columns[ref] = Column(ref=ref, label=ref, names=names, in_list=in_list, is_list=is_list, depth=depth)
    if found:
        values.setdefault(ref, []).extend(found)


_CLASS = re.compile(r"-?[A-Za-z_][\w-]*")
_CARD_TAGS = frozenset({"div", "article", "section", "li", "dl", "tr"})


def discover_html(body: bytes) -> list[Candidate]:
    """Tables with data rows (their header cells and a reference per column), then repeated cards
    (elements sharing a tag and class, with their classed parts and data- attributes)."""
    from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, Tag, XMLParsedAsHTMLWarning

    if not body.strip():
        raise ParseError("page is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(body, "lxml")
    found: list[Candidate] = []
    for table in soup.find_all("table"):
        if isinstance(table, Tag):
            candidate = _table_candidate(soup, table)
            if candidate is not None:
                found.append(candidate)
    groups: dict[tuple[str, str], list[Tag]] = {}
    for element in soup.find_all(True):
        if not isinstance(element, Tag) or element.name not in _CARD_TAGS:
            continue
        classes = [c for c in (element.get("class") or []) if _CLASS.fullmatch(c)]
        if classes:
            groups.setdefault((element.name, classes[0]), []).append(element)
    cards = [c for (tag, cls), elements in groups.items() if len(elements) >= 2
             and (c := _card_candidate(f"{tag}.{cls}", elements)) is not None]
    cards.sort(key=lambda c: (-_recognized(c), -len(c.columns), -c.count))
    found += cards[:5]
    soup.decompose()
    return found


def _unique_selector(soup: Any, element: Any) -> str:
    """A selector matching this one element: by id, by classes, alone of its kind, else a path."""
    tag = element.name
    options = []
    if element.get("id") and _CLASS.fullmatch(element["id"]):
        options.append(f"{tag}#{element['id']}")
    classes = [c for c in (element.get("class") or []) if _CLASS.fullmatch(c)]
    if classes:
        options.append(tag + "".join(f".{c}" for c in classes))
    options.append(tag)
    for sel in options:
        if len(soup.select(sel)) == 1:
            return sel
    steps = []
    node = element
    while node is not None and node.name not in ("[document]", "html"):
        parent = node.parent
        same = [s for s in parent.find_all(node.name, recursive=False)] if parent is not None else [node]
        steps.append(f"{node.name}:nth-of-type({same.index(node) + 1})" if len(same) > 1 else node.name)
        node = parent
    return " > ".join(reversed(steps))


def _span(cell: Any, attr: str, limit: int) -> int:
    try:
        return max(1, min(int(str(cell.get(attr) or 1).strip()), limit))
    except ValueError:
        return 1


def _grid(rows: Sequence[Any]) -> list[list[Any]]:
    """Rows as they are seen: a cell spanning rows or columns fills every position it covers."""
    pending: dict[int, tuple[Any, int]] = {}
    grid: list[list[Any]] = []
    for row in rows:
        line: dict[int, Any] = {}
        for col, (cell, left) in list(pending.items()):
            line[col] = cell
            if left <= 1:
                del pending[col]
            else:
                pending[col] = (cell, left - 1)
        col = 0
        for cell in row.find_all(["td", "th"], recursive=False):
            while col in line:
                col += 1
            across, down = _span(cell, "colspan", 50), _span(cell, "rowspan", 500)
            for k in range(across):
                line[col + k] = cell
                if down > 1:
                    pending[col + k] = (cell, down - 1)
            col += across
        grid.append([line.get(i) for i in range(max(line, default=-1) + 1)])
    return grid


def _table_candidate(soup: Any, table: Any) -> Candidate | None:
    from bs4 import Tag

    rows = [r for r in table.find_all("tr") if r.find_parent("table") is table]
    head = [r for r in rows if isinstance(r.parent, Tag) and r.parent.name == "thead"]
    if not head:  # leading rows of header cells only
        for r in rows:
            if r.find("td", recursive=False) or not r.find("th", recursive=False):
                break
            head.append(r)
    body = [r for r in rows if r not in head]
    data = [r for r in body if r.find("td", recursive=False)]
    if not data:
        return None
    headers: list[str] = []
    for line in _grid(head):  # the lowest header cell over each column names it
        for i, cell in enumerate(line):
            if cell is not None:
                headers += [""] * (i + 1 - len(headers))
                headers[i] = html_feed.text(cell)
    # references from the widest of the first data rows: the cell's tag and place among its kind
    first = max(data[:5], key=lambda r: len(r.find_all(["td", "th"], recursive=False)))
    columns: list[Column] = []
    counts: Counter[str] = Counter()
    for i, cell in enumerate(first.find_all(["td", "th"], recursive=False)):
        counts[cell.name] += 1
        label = headers[i] if i < len(headers) and headers[i] else f"column {i + 1}"
        columns.append(Column(ref=f"{cell.name}:nth-of-type({counts[cell.name]})", label=label, names=(label,)))
    spans = any(_span(c, "rowspan", 2) > 1 for r in data for c in r.find_all("td", recursive=False))
    linked: Counter[int] = Counter()
    for row, line in zip(body, _grid(body), strict=True):
        if row not in data:
            continue
        for i, col in enumerate(columns):
            cell = line[i] if i < len(line) else None
            col.add(html_feed.text(cell) if cell is not None else "")
            if cell is not None and cell.find("a", href=True):
                linked[i] += 1
        if columns and columns[0].seen >= SCAN:
            break
    for i, col in enumerate(columns):
        col.links = linked[i] / col.seen if col.seen else 0.0
    selector = _unique_selector(soup, table)
    records = f"{selector} tbody tr" if isinstance(table.find("tbody", recursive=False), Tag) else f"{selector} tr"
    return Candidate("table", records, len(data), columns, headers, options={"rowspan": "carry"} if spans else {})


def _card_candidate(selector: str, elements: list[Any]) -> Candidate | None:
    from bs4 import Tag

    columns: dict[str, Column] = {}
    sample = elements[:SCAN]
    per_card: list[dict[str, Any]] = []
    for card in sample:
        values: dict[str, Any] = {}
        for attr, attr_value in card.attrs.items():
            if attr.startswith("data-") and attr != html_feed.COPY_MARK and isinstance(attr_value, str):
                ref = f"@{attr}"
                label = attr[5:].replace("-", " ").replace("_", " ")
                columns.setdefault(ref, Column(ref=ref, label=label, names=(label,)))
                values.setdefault(ref, attr_value)
        for part in card.find_all(True):
            if not isinstance(part, Tag):
                continue
            if part.name == "time" and part.get("datetime"):
                columns.setdefault("time@datetime", Column(ref="time@datetime", label="updated", names=("updated",),
                                                           depth=-1))  # machine-readable: preferred
                values.setdefault("time@datetime", part["datetime"])
            classes = [c for c in (part.get("class") or []) if _CLASS.fullmatch(c)]
            if not classes:
                continue
            cls = classes[0]
            label = cls.replace("-", " ").replace("_", " ")
            if part.name in ("ul", "ol"):
                ref = f"{part.name}.{cls} li"
                value: Any = [html_feed.text(li) for li in part.find_all("li") if html_feed.text(li)]
            else:
                ref = f"{part.name}.{cls}"
                value = html_feed.text(part)
            if ref not in columns:
                col = Column(ref=ref, label=label, names=(label,))
                col.links = 1.0 if part.name == "a" and part.get("href") else 0.0
                columns[ref] = col
            values.setdefault(ref, value)
        per_card.append(values)
    if len(columns) < 2:
        return None
    for values in per_card:
        for ref, col in columns.items():
            col.add(values.get(ref))
    kept = [c for c in columns.values() if c.filled]
    if len(kept) < 2:
        return None
    return Candidate("cards", selector, len(elements), kept)


# --------------------------------------------------------------------------------------------------
# Suggestion: a mapping from names and values


def _norm(name: str) -> str:
    """'FacilityName', 'facility_name', 'Facility Name:' -> 'facility name'."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return " ".join(re.findall(r"[a-z0-9]+", spaced.lower()))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+|\d+", text))


#: whole (normalized) names, field by field
EXACT: dict[str, frozenset[str]] = {
    "source_id": frozenset({"id", "facility id", "frid", "provider id", "site id", "location id", "program id",
                            "agency id", "record id", "facility code", "facility number", "license number",
                            "uid", "guid"}),
    "name": frozenset({"name", "name1", "facility", "facility name", "provider", "provider name", "agency",
                       "agency name", "program name", "program", "organization", "organization name",
                       "center", "center name", "site name", "location name", "title", "name 1"}),
    "alternate_name": frozenset({"name2", "name 2", "dba", "alternate", "alternate name", "alt name", "aka",
                                 "doing business as", "other name", "also known as"}),
    "address": frozenset({"full address", "one line address", "formatted address", "address full"}),
    "address_1": frozenset({"street", "street1", "street 1", "address", "address1", "address 1", "addr",
                            "addr1", "street address", "address line 1", "address line1", "street line 1",
                            "streetaddress", "line1"}),
    "address_2": frozenset({"street2", "street 2", "address2", "address 2", "addr2", "address line 2",
                            "address line2", "suite", "unit", "line2", "street line 2"}),
    "city": frozenset({"city", "town", "city town", "municipality", "locality", "city name"}),
    "state": frozenset({"state", "st", "state code", "state abbr", "state abbreviation"}),
    "postal_code": frozenset({"zip", "zipcode", "zip code", "zip5", "postal", "postal code", "postalcode",
                              "postcode", "post code"}),
    "latitude": frozenset({"lat", "latitude", "y coord"}),
    "longitude": frozenset({"lon", "lng", "long", "longitude", "x coord"}),
    "phone": frozenset({"phone", "phones", "telephone", "telephones", "tel", "phone number", "phone numbers",
                        "main phone", "phone1", "phone 1", "contact phone", "number"}),
    "intake_phone": frozenset({"intake phone", "intake", "intake number", "admissions phone", "admissions",
                               "intake line", "referral phone"}),
    "hotline_phone": frozenset({"hotline", "hotline phone", "crisis line", "crisis phone", "24 hour phone",
                                "24 hr phone", "emergency phone"}),
    "website": frozenset({"website", "web site", "url", "web", "homepage", "home page", "site url", "www",
                          "web address", "website url"}),
    "levels_of_care": frozenset({"services", "service", "levels", "level", "levels of care", "level of care",
                                 "type of care", "types of care", "care type", "care types", "treatment type",
                                 "treatment types", "service types", "services offered", "loc",
                                 "service settings", "settings", "programs offered"}),
    "payment": frozenset({"payment", "payments", "payment types", "payment type", "payment accepted",
                          "payments accepted", "insurance", "insurances", "insurance accepted", "fees",
                          "payment options", "funding"}),
    "populations": frozenset({"populations", "population", "populations served", "population served",
                              "special populations", "ages", "age", "age groups", "age group", "gender",
                              "genders", "sex", "clients served", "serves", "serving", "who we serve"}),
    "languages": frozenset({"languages", "language", "languages spoken", "spoken languages"}),
    "reported_at": frozenset({"updated", "last updated", "as of", "updated at", "last update", "date updated",
                              "update date", "modified", "last modified", "timestamp", "reported at",
                              "reported", "date", "last changed", "as of date"}),
    "status": frozenset({"operating status", "facility status", "center status", "site status",
                         "program status", "open closed"}),
    "source_url": frozenset({"source url", "details", "detail url", "profile", "profile url", "link"}),
}

_EXACT_INDEX = {name: fld for fld, names in EXACT.items() for name in names}

#: fallbacks on the words of a name, in order: the first rule whose test holds gives the field
_RULES: tuple[tuple[str, Callable[[set[str]], bool]], ...] = (
    ("phone", lambda w: bool(w & {"contact", "contacts", "phones"}) and bool(w & {"main", "primary", "office"})),
    ("intake_phone", lambda w: bool(w & {"intake", "admissions", "admission", "referral"}) and bool(
        w & {"phone", "telephone", "tel", "number", "line"})),
    ("hotline_phone", lambda w: bool(w & {"hotline", "crisis"})),
    ("phone", lambda w: bool(w & {"phone", "telephone", "tel", "phones"})),
    ("source_id", lambda w: bool(w & {"id", "frid"})),
    ("postal_code", lambda w: bool(w & {"zip", "zipcode", "postal", "postcode"}) and not w & {"4", "plus"}),
    ("latitude", lambda w: bool(w & {"latitude", "lat"})),
    ("longitude", lambda w: bool(w & {"longitude", "lon", "lng"})),
    ("alternate_name", lambda w: "name" in w and bool(w & {"alternate", "alt", "dba", "other", "2", "secondary"})),
    ("name", lambda w: "name" in w and not w & {"city", "county", "state", "contact", "street", "first", "last",
                                                  "file", "user"}),
    ("address_2", lambda w: bool(w & {"street", "address", "addr"}) and bool(w & {"2", "suite", "unit"})),
    ("address_1", lambda w: bool(w & {"street", "address", "addr"}) and not w & {"email", "mail", "web", "ip"}),
    ("city", lambda w: "city" in w),
    ("state", lambda w: "state" in w),
    ("website", lambda w: bool(w & {"website", "url", "homepage"})),
    ("reported_at", lambda w: bool(w & {"updated", "update", "modified", "asof"})),
    ("languages", lambda w: bool(w & {"language", "languages"})),
    ("payment", lambda w: bool(w & {"payment", "payments", "insurance", "insurances", "payor", "payer"})),
    ("populations", lambda w: bool(w & {"population", "populations", "ages", "gender", "genders", "serves"})),
    ("levels_of_care", lambda w: bool(w & {"services", "service", "levels", "care"})),
)

#: fields a column under a list of objects, or holding a list, may fill
_LIST_OK = LIST_FIELDS | PHONE_FIELDS


def field_for(name: str, fuzzy: bool = True) -> tuple[str, int] | None:
    """The canonical field a column name suggests, and how sure (0: the whole name, 1: a word of it;
    ``fuzzy=False``: whole names only).

    ``field_for("Facility ID") == ("source_id", 0)``; ``field_for("zip4") is None``."""
    norm = _norm(name)
    if not norm:
        return None
    words = _words(norm)
    if words & {"fax", "email", "e", "county"} and norm not in _EXACT_INDEX:
        return None
    if norm in _EXACT_INDEX:
        return _EXACT_INDEX[norm], 0
    compact = norm.replace(" ", "")
    if compact in _EXACT_INDEX:
        return _EXACT_INDEX[compact], 0
    if not fuzzy:
        return None
    for fld, test in _RULES:
        if test(words):
            return fld, 1
    return None


#: a whole US address on one line: a number and street, then ", City, ST 01608" at the end
_ONE_LINE = re.compile(r"^\s*\d+[A-Za-z]?\s+\S.*,\s*[A-Za-z][A-Za-z .'-]*,?\s+[A-Za-z]{2}\.?,?\s+\d{5}(?:-\d{4})?\s*$")


def looks_like_one_line_address(values: Iterable[Any]) -> bool:
    """Most values are whole addresses such as '12 Main St, Worcester, MA 01608'."""
    texts = [v for v in values if isinstance(v, str) and v.strip()]
    return bool(texts) and sum(bool(_ONE_LINE.match(t)) for t in texts) * 2 > len(texts)


_CODES = re.compile(r"^\s*[A-Za-z0-9.+&-]{1,10}(?:\s*/\s*[A-Za-z0-9.+&-]{1,10})+\s*$")


def split_separator(values: Iterable[Any]) -> str | None:
    """'/' when the values are short codes run together with slashes ('OTP/MD/DT').

    (``; , |`` are split by normalization already; dates, fractions and '24/7' are not codes.)"""
    texts = [v for v in values if isinstance(v, str) and v.strip()]
    slashed = [t for t in texts if "/" in t]
    if not slashed or len(slashed) * 3 < len(texts):
        return None
    good = [t for t in slashed if _CODES.match(t) and all(re.search(r"[A-Za-z]", p) for p in t.split("/"))]
    return "/" if len(good) * 2 > len(slashed) else None


_AVAILABILITY_WORDS = {
    "beds", "bed", "open", "available", "availability", "status", "capacity", "total", "waitlist",
    "waiting", "wait", "list", "vacancy", "vacancies", "openings", "slots", "count", "census", "accepting",
    "now", "today", "current", "number", "of", "spaces", "licensed", "max", "maximum",
}
#: level words the vocabulary reads only in longer phrases
_LEVEL_SYNONYMS = {"withdrawal": "withdrawal management", "withdrawal mgmt": "withdrawal management",
                   "wm": "withdrawal management", "withdrawal mgt": "withdrawal management"}


def _availability_value(text: str) -> bool | None:
    """Whether a cell reads as availability (a count, a status word); None when it says nothing."""
    t = text.strip().lower()
    if not t:
        return None
    if re.fullmatch(r"\d+(?:\s*(?:beds?|open|available|spaces?|slots?))?", t):
        return True
    if t in ("yes", "no", "y", "n", "true", "false", "x"):
        return False  # offers the service, or not: not availability
    status = vocabulary.map_status(t)
    if status is AvailabilityStatus.UNKNOWN:
        return None
    return status is not None


def availability_for(column: Column) -> tuple[str, str] | None:
    """(level of care, availability field) when a column reports a level's availability:
    'Detox beds open' -> ('detox', 'beds_available'); 'Residential' holding FULL / Waitlist (3) ->
    ('residential', 'status')."""
    if column.in_list or column.is_list:
        return None
    words = _norm(column.label).split()
    rest = " ".join(w for w in words if w not in _AVAILABILITY_WORDS)
    said = set(words) & _AVAILABILITY_WORDS
    if not rest:
        return None
    levels = vocabulary.map_levels_of_care([_LEVEL_SYNONYMS.get(rest, rest)]).values
    if not levels:
        return None
    level = ([lv for lv in LEVEL_PRIORITY if lv in levels] or sorted(levels))[0]
    reads = [r for v in column.samples if isinstance(v, str) for r in [_availability_value(v)] if r is not None]
    looks = bool(reads) and sum(reads) * 2 > len(reads)
    if not said and not looks:
        return None
    numeric = [v for v in column.samples if isinstance(v, str | int) and re.fullmatch(r"\s*\d+\s*", str(v))]
    mostly_numbers = bool(column.samples) and len(numeric) * 2 > len(column.samples)
    if said & {"total", "capacity", "licensed", "max", "maximum"}:
        return level.value, "beds_total"
    if said & {"waitlist", "waiting", "wait"} and mostly_numbers:
        return level.value, "waitlist_size"
    if "accepting" in said:
        return level.value, "accepting"
    if mostly_numbers:
        return level.value, "beds_available"
    return level.value, "status"


def _level_terms(text: str) -> list[str]:
    return [t for t in re.split(r"\s*[;|,/]\s*", text) if t.strip()]


def is_level_column(col: Column, one_per_row: bool = False) -> bool:
    """A column whose values are mostly levels of care ('Withdrawal Management (ATS)', 'IOP'), named
    as such or by nothing else ('Program', 'Type'); ``one_per_row``: one level a cell (a program per row)."""
    if col.in_list or col.is_list:
        return False
    name = _norm(col.label)
    named = field_for(col.label)
    if not (name in _ITEM_LEVEL or named is None or named[0] == "levels_of_care"):
        return False
    texts = [v for v in col.samples if isinstance(v, str) and v.strip()]
    if len(texts) < 2:
        return False
    good = 0
    for text in texts:
        terms = _level_terms(text)
        mapped = vocabulary.map_levels_of_care(terms)
        if mapped.values and not mapped.unmapped and (not one_per_row or len(terms) == 1):
            good += 1
    return good * 3 >= len(texts) * 2


@dataclass
class Suggestion:
    mapping: dict[str, Any]
    candidate: Candidate | None = None
    #: column -> canonical field, in the order shown
    matched: dict[str, str] = field(default_factory=dict)
    not_mapped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"mapping": self.mapping, "toml": mapping_toml(self.mapping, self.not_mapped),
                "records": self.candidate.records if self.candidate else "", "not_mapped": self.not_mapped}


#: list-ish fields whose references pick the first item of a list of objects (``phones[0].number``)
_FIRST_ITEM = PHONE_FIELDS


def suggest_fields(columns: Sequence[Column]) -> tuple[dict[str, Any], dict[str, str]]:
    """canonical field -> reference (or ``{from, split}``), and column ref -> field, by the heuristics."""
    options: list[tuple[tuple[int, int, int, int], str, Column]] = []
    for order, col in enumerate(columns):
        if col.filled == 0 and col.seen:
            continue
        plain = [v for v in col.samples if isinstance(v, str)]
        if not (col.in_list or col.is_list) and looks_like_one_line_address(plain):
            options.append(((0, 0, col.depth, order), "address", col))
            continue
        if is_level_column(col):
            options.append(((0, 0, col.depth, order), "levels_of_care", col))
            continue
        names = col.names or (col.label,)
        choice = next(((sure, i, fld) for fuzzy in (False, True) for i, name in enumerate(names)
                       for fld, sure in [field_for(name, fuzzy) or ("", 0)]
                       if fld and not ((col.in_list or col.is_list) and fld not in _LIST_OK)), None)
        if choice is None:
            continue
        sure, i, fld = choice
        if fld == "address_1" and looks_like_one_line_address(plain):
            fld = "address"
        options.append(((sure, i, col.depth, order), fld, col))
    options.sort(key=lambda o: o[0])
    fields: dict[str, Any] = {}
    matched: dict[str, str] = {}
    for _rank, fld, col in options:
        if fld in fields or col.ref in matched:
            continue
        ref = col.ref
        if col.in_list and fld in _FIRST_ITEM:
            ref = ref.replace("[*]", "[0]", 1)
        if col.links >= 0.5 and ":nth-of-type(" in ref and fld in ("name", "website", "source_url"):
            ref = f"{ref} a" if fld == "name" else f"{ref} a@href"  # a table cell holding a link
        elif col.links >= 0.5 and ref.startswith("a.") and fld in ("website", "source_url"):
            ref = f"{ref}@href"  # a card's link
        separator = split_separator(col.samples) if fld in LIST_FIELDS else None
        fields[fld] = {"from": ref, "split": separator} if separator else ref
        matched[col.ref] = fld
    return fields, matched


def suggest(fmt: str, discovery: Discovery) -> Suggestion:
    """A mapping for the best candidate: fields by name, availability by level, an id when none."""
    if fmt in ("hsds", "smart") or not discovery.candidates:
        return Suggestion({})
    best: tuple[int, Suggestion] | None = None
    for candidate in discovery.candidates:
        suggestion = _suggest_for(candidate)
        score = len(suggestion.matched)
        if best is None or score > best[0]:
            best = (score, suggestion)
    assert best is not None
    return best[1]


#: keys of a list item naming its level of care, and keys giving an availability field
_ITEM_LEVEL = frozenset({"program", "level", "level of care", "levels of care", "loc", "service", "type",
                         "care type", "program type", "category", "care", "setting", "service type"})
_ITEM_FIELDS = {
    "beds_available": frozenset({"open", "available", "beds available", "available beds", "open beds",
                                 "vacancies", "beds open", "openings", "free", "beds"}),
    "beds_total": frozenset({"capacity", "total", "beds total", "total beds", "licensed", "licensed beds",
                             "max"}),
    "status": frozenset({"status", "availability", "availability status"}),
    "waitlist_size": frozenset({"waitlist", "wait list", "waiting", "waitlist size", "waiting list"}),
    "accepting": frozenset({"accepting", "accepting new", "accepting clients", "accepting patients"}),
    "reported_at": frozenset({"as of", "updated", "updated at", "last updated", "reported at", "timestamp"}),
    "notes": frozenset({"notes", "note", "comment", "comments"}),
}


def availability_list_for(columns: Sequence[Column]) -> tuple[dict[str, Any], list[str]] | None:
    """A JSON list of programs inside each record (``beds[*].program``, ``beds[*].open``) as
    ``availability_list``: ({path, fields}, the column refs it uses), or None."""
    groups: dict[str, list[tuple[str, Column]]] = {}
    for col in columns:
        head, star, key = col.ref.partition("[*].")
        if star and "[" not in head and key and "." not in key and "[" not in key:
            groups.setdefault(head, []).append((key, col))
    best: tuple[dict[str, Any], list[str]] | None = None
    for path, items in groups.items():
        fields: dict[str, str] = {}
        used: list[str] = []
        for key, col in items:
            name = _norm(key.strip('"'))
            fld = "level_of_care" if name in _ITEM_LEVEL else next(
                (f for f, names in _ITEM_FIELDS.items() if name in names), "")
            if fld and fld not in fields:
                fields[fld] = key
                used.append(col.ref)
        if "level_of_care" in fields and fields.keys() & {"beds_available", "beds_total", "status"} \
                and (best is None or len(used) > len(best[1])):
            best = ({"path": path, "fields": fields}, used)
    return best


def _suggest_for(candidate: Candidate) -> Suggestion:
    programs = availability_list_for(candidate.columns)
    taken = set(programs[1]) if programs else set()
    fields, matched = suggest_fields([c for c in candidate.columns if c.ref not in taken])
    for ref in taken:
        matched[ref] = "availability_list"
    # availability: one entry per level, from the columns not taken by a field
    by_level: dict[str, dict[str, str]] = {}
    for col in candidate.columns:
        if col.ref in matched:
            continue
        found = availability_for(col)
        if found is None:
            continue
        level, fld = found
        entry = by_level.setdefault(level, {})
        if fld not in entry:
            entry[fld] = col.ref
            matched[col.ref] = f"availability: {level} {fld}"
    # a program per row ("Program" | "Availability"): one observation whose level is the row's
    level_col = next((c for c in candidate.columns if matched.get(c.ref) == "levels_of_care"), None)
    row_entry: dict[str, str] = {}
    if level_col is not None and is_level_column(level_col, one_per_row=True):
        for col in candidate.columns:
            name = _norm(col.label)
            fld = next((f for f, names in _ITEM_FIELDS.items() if name in names and f != "reported_at"), "")
            if col.ref not in matched and fld and fld not in row_entry:
                row_entry[fld] = col.ref
                matched[col.ref] = f"availability: {fld}"
    if row_entry.keys() & {"status", "beds_available", "beds_total"}:
        assert level_col is not None
        row_entry = {"level_of_care": level_col.ref, **row_entry}
        if candidate.options.get("rowspan") and "reported_at" in fields:
            row_entry["reported_at"] = _ref_of(fields["reported_at"])
        by_level[""] = row_entry
    mapping: dict[str, Any] = {}
    if candidate.records:
        mapping["records"] = candidate.records
    if candidate.next_page:
        mapping["next_page"] = candidate.next_page
    if "source_id" not in fields and fields:
        refs = [_ref_of(fields[f]) for f in ("name", "alternate_name", "address", "address_1", "address_2", "city",
                                            "postal_code") if f in fields]
        if refs:
            mapping["id_from"] = refs
    mapping["fields"] = {f: fields[f] for f in _FIELD_ORDER if f in fields}
    if by_level:
        mapping["availability"] = [{"constants": {"level_of_care": level}, "fields": entry} if level
                                   else {"fields": entry} for level, entry in by_level.items()]
    if candidate.options:
        mapping["options"] = dict(candidate.options)
    if programs:
        mapping["availability_list"] = programs[0]
    not_mapped = [c.label for c in candidate.columns if c.ref not in matched]
    return Suggestion(mapping, candidate, matched, not_mapped)


def _ref_of(value: Any) -> str:
    return str(value["from"]) if isinstance(value, dict) else str(value)


_FIELD_ORDER = (
    "source_id", "name", "alternate_name", "address", "address_1", "address_2", "city", "state", "postal_code",
    "latitude", "longitude", "phone", "intake_phone", "hotline_phone", "website", "source_url",
    "levels_of_care", "payment", "populations", "languages", "status", "reported_at",
)


def _recognized(candidate: Candidate) -> int:
    return len(suggest_fields(candidate.columns)[1])


# --------------------------------------------------------------------------------------------------
# TOML


def toml_value(value: Any) -> str:
    """A TOML literal for a string, number, true/false, list or inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def mapping_toml(mapping: Mapping[str, Any], not_mapped: Sequence[str] = ()) -> str:
    """The mapping as registry TOML: ``[feed.mapping]`` and its tables, ready to paste under a ``[[feed]]``
    (or to save as a file for ``--mapping``)."""
    lines: list[str] = []
    top = {k: v for k, v in mapping.items() if not isinstance(v, Mapping) and k != "availability"}
    if top:
        lines.append("[feed.mapping]")
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in top.items()]
    for key, value in mapping.items():
        if isinstance(value, Mapping) and key not in ("value_maps", "availability_list"):
            lines += (["", f"[feed.mapping.{toml_key(key)}]"] if lines else [f"[feed.mapping.{toml_key(key)}]"])
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()]
    if isinstance(mapping.get("availability_list"), Mapping):
        lines += ["", "[feed.mapping.availability_list]"]
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in mapping["availability_list"].items()]
    for entry in mapping.get("availability") or ():
        lines += ["", "[[feed.mapping.availability]]"]
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in entry.items()]
    for group, terms in (mapping.get("value_maps") or {}).items():
        lines += ["", f"[feed.mapping.value_maps.{toml_key(group)}]"]
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in terms.items()]
    if not_mapped:
        lines += ["", "# not mapped: " + ", ".join(not_mapped)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Reading the sample (the only I/O, with load_mapping_file)


def is_url(source: str) -> bool:
    return urlsplit(source).scheme.lower() in ("http", "https")


def file_url(path: Path) -> str:
    return FILE_BASE + quote(path.name)


def check_destination(url: str, allow_private: bool) -> None:
    """Refuse a loopback or private address written in the URL itself unless allowed (the fetcher checks
    resolved names and redirects again)."""
    import ipaddress

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise ConfigError(f"{url}: no host")
    try:
        private = not ipaddress.ip_address(host).is_global
    except ValueError:
        private = host == "localhost" or host.endswith(".localhost")
    if private and not allow_private:
        raise ConfigError(f"{url} is a loopback or private address; pass --allow-private to try it")


def read_first(source: str, fmt: str, fetcher: Fetcher | None, *, allow_private: bool = False) -> Document:
    """The sample's first document: a local file, or an http(s) URL fetched as a feed run would."""
    if is_url(source):
        check_destination(source, allow_private)
        if fetcher is None:
            raise ConfigError("no fetcher given for a URL")
        try:
            got = fetcher.get(source, fmt=fmt, max_bytes=MAX_BYTES, timeout=TIMEOUT, allow_private=allow_private,
                              validators=None, headers={})
        except FetchPermanent as exc:
            if "refused destination" in str(exc) and not allow_private:
                raise FetchPermanent(f"{source}: refused destination (not a public address); pass "
                                     "--allow-private to try it") from exc
            raise
        return Document(got.url, got.body, got.content_type)
    if "://" in source:
        raise ConfigError(f"{source}: only http(s) URLs and local files can be tried")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise FetchPermanent(f"{source}: {path.stat().st_size:,} bytes is over the {MAX_BYTES:,}-byte cap")
    return Document(file_url(path), path.read_bytes())


def read_follow_ups(feed: FeedConfig, first: Document, source: str, fetcher: Fetcher | None,
                    limit: int = MAX_DOCUMENTS) -> tuple[list[Document], list[str], list[str]]:
    """The first document and what it leads to (pages, manifest files, tables), as a run would fetch
    them, bounded to ``limit`` documents. A local file's follow-ups are read from its folder by name.

    Returns (documents, failed "url: error", notes)."""
    follow = follower_for(feed.parser or feed.format)
    documents = [first]
    failed: list[str] = []
    notes: list[str] = []
    if follow is None:
        return documents, failed, notes
    queue = list(follow(first, feed.mapping))
    seen = {first.url, feed.url}
    folder = None if is_url(source) else Path(source).parent
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        if len(documents) >= min(limit, feed.max_pages):
            notes.append(f"stopped after {len(documents)} documents (a dry run reads at most {limit}); "
                         f"{len(set(queue) - seen) + 1} more not read")
            break
        seen.add(url)
        try:
            if folder is not None:
                path = folder / PurePosixPath(urlsplit(url).path).name
                if not path.is_file():
                    raise FetchPermanent(f"no file {path.name} beside {Path(source).name}")
                doc = Document(url, path.read_bytes())
            else:
                assert fetcher is not None
                got = fetcher.get(url, fmt=feed.format, max_bytes=feed.max_bytes, timeout=feed.timeout_seconds,
                                  allow_private=feed.allow_private, validators=None, headers={})
                doc = Document(got.url, got.body, got.content_type)
        except (FetchPermanent, FetchTransient) as exc:
            if feed.format not in PARTIAL_FORMATS or feed.parser:
                raise
            failed.append(f"{url}: {exc}"[:300])
            continue
        documents.append(doc)
        queue.extend(follow(doc, feed.mapping))
    if failed and len(documents) == 1 and feed.format == "smart":
        raise FetchPermanent(f"every file the manifest lists failed: {failed[0]}")
    return documents, failed, notes


def load_mapping_file(path: str | Path) -> dict[str, Any]:
    """What goes under ``[feed.mapping]``: a file of its keys (``records``, ``[fields]``, ...), or one with
    a ``[feed.mapping]`` table (the suggestion as printed), or one ``[[feed]]`` entry."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"mapping file {p}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"mapping file {p} is not UTF-8 text") from None
    feed = data.get("feed")
    if feed is None:
        return data
    if isinstance(feed, list):
        if len(feed) != 1:
            raise ConfigError(f"mapping file {p}: holds {len(feed)} [[feed]] entries; give one")
        feed = feed[0]
    if not isinstance(feed, dict) or not isinstance(feed.get("mapping", {}), dict):
        raise ConfigError(f"mapping file {p}: 'feed' must hold a mapping table ([feed.mapping])")
    unknown = sorted(set(data) - {"feed"})
    if unknown:
        raise ConfigError(f"mapping file {p}: unknown top-level key '{unknown[0]}' beside [feed.mapping]")
    mapping: dict[str, Any] = feed.get("mapping", {})
    return mapping


def feed_config(fmt: str, url: str, mapping: Mapping[str, Any], *, allow_private: bool) -> FeedConfig:
    """The trial's feed, checked by the registry as ``centers check-config`` would."""
    entry: dict[str, Any] = {"id": TRIAL_ID, "format": fmt, "url": url, "mapping": dict(mapping)}
    if allow_private:
        entry["allow_private"] = True
    from aggregator.feeds import PARSERS

    try:
        return registry.parse({"feed": [entry]}, "(feed try)", frozenset(PARSERS)).feeds[0]
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(f"feed '{TRIAL_ID}'.mapping", "mapping")
                          .replace(f"feed '{TRIAL_ID}': key 'mapping.", "mapping: key '")) from None


# --------------------------------------------------------------------------------------------------
# Evaluation: what an ingest would do with the sample


@dataclass
class Evaluation:
    feed: FeedConfig
    centers: list[Center]
    observations: list[Availability]
    report: IngestReport


def evaluate(feed: FeedConfig, documents: Sequence[Document], now: datetime) -> Evaluation:
    """Parse and normalize as a run would (no placing, no storing)."""
    raws = parser_for(feed.parser or feed.format)(documents, feed.mapping)
    centers, observations, report = normalize_all(raws, context_for(feed, now))
    return Evaluation(feed, centers, observations, report)


def share_verdict(feed: FeedConfig, report: IngestReport) -> tuple[bool, str]:
    """(would fail, why): the run's accepted-share rule (``Pipeline._check_share``) on this sample."""
    if not report.records:
        return True, "the sample holds no records (a run would fail: empty export, or a page of another shape)"
    share = report.accepted / report.records
    ok = accepts_enough(report, feed.min_accepted_share)
    words = (f"accepted {report.accepted:,} of {report.records:,} records ({share:.0%}; the feed needs "
             f"{feed.min_accepted_share:.0%}, its min_accepted_share)")
    if ok:
        return False, f"would be applied: {words}"
    return True, f"would FAIL: {words}; the last good data would stay. Main reasons: {report.summary()}"


def rejected_by_reason(report: IngestReport) -> list[dict[str, Any]]:
    """Records rejected, by grouped reason, with a few record ids (field problems of kept records are
    'dropped', not here)."""
    counts = report.problems_by_reason - report.dropped
    examples: dict[str, list[str]] = {}
    previous = None
    for r in report.rejections:
        if r.record == previous:  # a record's further problems, listed beside the reason it was counted under
            continue
        previous = r.record
        ids = examples.setdefault(reason_key(r), [])
        if len(ids) < 5 and r.record and r.record not in ids:
            ids.append(r.record)
    return [{"reason": k, "count": n, "records": examples.get(k, [])} for k, n in counts.most_common()]


#: fields a record cannot be kept without, and what else can give them
_REQUIRED = {"source_id": ("id_from",), "name": (), "state": ("address",), "postal_code": ("address",)}


def hints(feed: FeedConfig, rejected: Sequence[Mapping[str, Any]], records: int) -> list[str]:
    """What to change when a required field is missing from many records and the mapping never names it."""
    out = []
    m = feed.mapping
    for item in rejected:
        fld, _, reason = str(item["reason"]).partition(": ")
        if fld not in _REQUIRED or reason not in ("missing", "empty") or item["count"] * 5 < records:
            continue
        if fld in m.fields or fld in m.constants or any(m.fields.get(k) for k in _REQUIRED[fld]) or (
                fld == "source_id" and m.id_from):
            continue
        if fld == "source_id":
            out.append("no id column: list the columns that identify a center in id_from = [...] under "
                       "[feed.mapping] (a stable id is hashed from them)")
        elif fld == "state":
            out.append("no state in the records: a single-state partner sets default_state = \"XX\" on its "
                       "[[feed]] (here: constants = { state = \"XX\" } under [feed.mapping])")
        else:
            out.append(f"no {fld} in the records: name its column under [feed.mapping.fields]")
    return out


def example_center(center: Center, observations: Sequence[Availability]) -> dict[str, Any]:
    return {
        "id": center.id, "name": center.name, "city": center.address.city, "state": center.address.state,
        "postal_code": center.address.postal_code,
        "phones": [p.number if p.role == "main" else f"{p.number} ({p.role})" for p in center.phones],
        "levels_of_care": [str(v) for v in center.services.levels_of_care],
        "availability": [f"{o.level_of_care}: {o.status}" + (f" {o.beds_available} beds" if o.beds_available
                                                              is not None else "")
                         for o in observations if o.center_id == center.id],
    }


def summary(ev: Evaluation) -> dict[str, Any]:
    r = ev.report
    would_fail, verdict = share_verdict(ev.feed, r)
    quality = r.quality()
    rejected = rejected_by_reason(r)
    return {
        "records": r.records, "accepted": r.accepted, "rejected": r.rejected, "observations": r.observations,
        "repeated": r.repeated,
        "examples": [example_center(c, ev.observations) for c in ev.centers[:EXAMPLE_CENTERS]],
        "rejected_by_reason": rejected, "hints": hints(ev.feed, rejected, r.records),
        "repairs": quality["repairs"], "unmapped": quality["unmapped"], "dropped": quality["dropped"],
        "accepted_share": round(r.accepted / r.records, 4) if r.records else 0.0,
        "min_accepted_share": ev.feed.min_accepted_share,
        "would_fail": would_fail, "verdict": verdict,
    }


# --------------------------------------------------------------------------------------------------
# The whole trial, and its text


def run_trial(source: str, fmt: str, *, now: datetime, fetcher: Fetcher | None = None,
              mapping_file: str | Path | None = None, allow_private: bool = False,
              show: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Read the sample, show what is in it, suggest (or load) a mapping, and run it as an ingest would,
    writing nothing. ``show`` receives the text as it is known (the columns before a later error)."""
    say = show or (lambda _text: None)
    first = read_first(source, fmt, fetcher, allow_private=allow_private)
    discovery = discover(fmt, first.body)
    suggestion = suggest(fmt, discovery)
    say("\n".join(discovery_lines(source, fmt, first, discovery)))
    if mapping_file is not None:
        mapping = load_mapping_file(mapping_file)
        say(f"Mapping from {mapping_file}.")
    else:
        mapping = suggestion.mapping
        say("\n".join(suggestion_lines(fmt, suggestion)))
        if fmt in ("csv", "json", "html") and not mapping.get("fields"):
            raise ConfigError("no column was recognized: write the mapping from the columns above and pass "
                              "--mapping FILE")
    url = source if is_url(source) else file_url(Path(source))
    feed = feed_config(fmt, url, mapping, allow_private=allow_private or not is_url(source))
    documents, failed, notes = read_follow_ups(feed, first, source, fetcher)
    ev = evaluate(feed, documents, now)
    ev.report.failed_documents = failed
    result = {
        "source": source, "format": fmt,
        "documents": [{"url": d.url if is_url(source) else _local_name(d.url), "bytes": len(d.body)}
                      for d in documents],
        "failed_documents": failed, "notes": notes,
        "discovery": discovery.as_dict(), "suggestion": suggestion.as_dict(),
        "mapping_from": str(mapping_file) if mapping_file is not None
        else "none (a standard format)" if fmt in ("hsds", "smart") else "suggestion",
        "mapping": mapping,
        **summary(ev),
    }
    say("\n".join(result_lines(result)))
    return result


def _local_name(url: str) -> str:
    return PurePosixPath(urlsplit(url).path).name


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def discovery_lines(source: str, fmt: str, first: Document, discovery: Discovery) -> list[str]:
    lines = [f"Sample: {source} ({fmt}, {len(first.body):,} bytes; nothing is written)"]
    for c in discovery.candidates:
        if c.kind == "csv":
            lines.append(f"Columns ({c.count:,} rows; sample values):")
        elif c.kind == "json":
            lines.append(f"Records: {c.records or 'the document itself'} ({c.count:,} records); "
                         "key paths in the first records:")
        elif c.kind == "table":
            lines.append(f"Table {c.records!r}: {c.count:,} rows; header: "
                         f"{' | '.join(c.headers) or '(none)'}")
        elif c.kind == "cards":
            lines.append(f"Cards {c.records!r}: {c.count:,} elements; parts:")
        else:
            lines.append("No records found.")
        width = min(28, max((len(col.ref) for col in c.columns), default=0))
        for col in c.columns[:40]:
            samples = " | ".join(_short(v) for v in col.samples[:SHOWN]) or "(empty)"
            filled = f"  [{col.filled / col.seen:.0%} filled]" if col.seen and col.filled < col.seen else ""
            label = f" ({col.label})" if c.kind == "table" else ""
            lines.append(f"  {col.ref:<{width}}{label}  {samples}{filled}")
        if len(c.columns) > 40:
            lines.append(f"  ... and {len(c.columns) - 40} more")
    lines += [f"Note: {n}" for n in discovery.notes]
    return lines


def suggestion_lines(fmt: str, suggestion: Suggestion) -> list[str]:
    if fmt in ("hsds", "smart"):
        return ["", f"Mapping: none needed for {fmt} (options such as states or level_of_care go under "
                "[feed.mapping.options]; pass --mapping FILE to try them)."]
    if not suggestion.mapping.get("fields"):
        return ["", "Suggested mapping: no column name was recognized."]
    text = mapping_toml(suggestion.mapping, suggestion.not_mapped)
    return ["", "Suggested mapping (paste under the partner's [[feed]]; or save it to a file, edit it and "
            "rerun with --mapping FILE):", "", *("  " + line if line else "" for line in text.splitlines())]


def quality_lines(quality: Mapping[str, Sequence[Mapping[str, Any]]], *, repeated: int = 0,
                  failed_documents: Sequence[str] = (), indent: str = "  ", limit: int = 8) -> list[str]:
    """Repairs made, terms left unmapped, values dropped (with example records), repeated ids and
    documents that could not be fetched, as lines (for ``feed try`` and ``ingest``)."""
    lines: list[str] = []
    for kind, title in (("repairs", "repairs made"), ("unmapped", "terms left unmapped"),
                        ("dropped", "values dropped from kept records")):
        items = list(quality.get(kind) or [])
        if not items:
            continue
        lines.append(f"{indent}{title}:")
        for item in items[:limit]:
            records = list(item.get("records") or [])
            eg = f"  (e.g. {', '.join(records[:3])})" if records else ""
            lines.append(f"{indent}  {item.get('count', 0):>6}  {item.get('what', '')}{eg}")
        if len(items) > limit:
            lines.append(f"{indent}  ... and {len(items) - limit} more")
    if repeated:
        lines.append(f"{indent}repeated ids: {repeated} record(s) repeated an earlier record's id "
                     "(the newest report of each id is kept)")
    if failed_documents:
        lines.append(f"{indent}documents that could not be fetched ({len(failed_documents)}; a partial run):")
        lines += [f"{indent}  {d}" for d in failed_documents[:limit]]
    return lines


def result_lines(result: Mapping[str, Any]) -> list[str]:
    docs = result["documents"]
    lines = ["", f"Dry run ({len(docs)} document{'s' if len(docs) != 1 else ''}, "
             f"{sum(d['bytes'] for d in docs):,} bytes; mapping: {result['mapping_from']}):",
             f"  {result['records']:,} records: {result['accepted']:,} would be kept, {result['rejected']:,} "
             f"rejected, {result['observations']:,} availability observations"]
    for ex in result["examples"]:
        where = ", ".join(x for x in (ex["city"], f"{ex['state']} {ex['postal_code']}") if x)
        lines.append(f"    {ex['name']}: {where}; phones {', '.join(ex['phones']) or '-'}; "
                     f"levels {', '.join(ex['levels_of_care']) or '-'}"
                     + (f"; {', '.join(ex['availability'])}" if ex["availability"] else ""))
    if result["rejected_by_reason"]:
        lines.append("  rejected, by reason:")
        for item in result["rejected_by_reason"][:10]:
            eg = f"  (e.g. {', '.join(item['records'][:3])})" if item["records"] else ""
            lines.append(f"    {item['count']:>6}  {item['reason']}{eg}")
    lines += quality_lines({k: result[k] for k in ("repairs", "unmapped", "dropped")},
                           repeated=result["repeated"], failed_documents=result["failed_documents"])
    lines += [f"  note: {n}" for n in result["notes"]]
    lines += [f"  hint: {h}" for h in result["hints"]]
    lines.append(f"  verdict: {result['verdict']}")
    return lines
