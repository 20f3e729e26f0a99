"""What a partner sample holds: CSV columns, JSON key paths, HTML tables and cards, with sample values. Pure."""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aggregator.errors import ParseError
from aggregator.feeds import csv as csv_feed
from aggregator.feeds import html as html_feed
from aggregator.feeds import json as json_feed

#: rows (CSV), records (JSON) or elements (HTML) read for sample values
SCAN = 1000
#: sample values shown per column, and kept for the heuristics
SHOWN, KEPT = 3, 20


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
        out: dict[str, Any] = {
            "kind": self.kind,
            "records": self.records,
            "count": self.count,
            "columns": [c.as_dict() for c in self.columns],
        }
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


def discover(fmt: str, body: bytes, rank: Callable[[Candidate], int] = lambda _c: 0) -> Discovery:
    """What the first document holds, for a person writing the mapping (HTML cards ordered by ``rank``).
    Raises ParseError if unreadable."""
    if fmt == "csv":
        return Discovery(fmt, [discover_csv(body)])
    if fmt == "json":
        return Discovery(fmt, [discover_json(body)])
    if fmt == "html":
        found = discover_html(body, rank)
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
        raise ParseError(f"no list of records found in the JSON (top-level keys: {keys}); is it the right document?")
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


def norm_name(name: str) -> str:
    """'FacilityName', 'facility_name', 'Facility Name:' -> 'facility name'."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return " ".join(re.findall(r"[a-z0-9]+", spaced.lower()))


_NEXT_KEYS = frozenset({"next", "next page", "next url", "next link", "next href"})


def find_next_page(document: Any) -> str:
    """The dotted path of a next-page link outside the records (``links.next``, ``next``), or ""."""
    for sub, key, item in _entries(document):
        if norm_name(key) in _NEXT_KEYS and isinstance(item, str) and item.strip():
            return sub
    return ""


def _walk_json(
    value: Any, keys: list[str], in_list: bool, values: dict[str, list[Any]], columns: dict[str, Column], depth: int = 0
) -> None:
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


def _note(
    ref: str,
    keys: list[str],
    in_list: bool,
    is_list: bool,
    found: list[Any],
    values: dict[str, list[Any]],
    columns: dict[str, Column],
    depth: int,
) -> None:
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


def discover_html(body: bytes, rank: Callable[[Candidate], int] = lambda _c: 0) -> list[Candidate]:
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
    cards = [
        c
        for (tag, cls), elements in groups.items()
        if len(elements) >= 2 and (c := _card_candidate(f"{tag}.{cls}", elements)) is not None
    ]
    cards.sort(key=lambda c: (-rank(c), -len(c.columns), -c.count))
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
                columns.setdefault(
                    "time@datetime", Column(ref="time@datetime", label="updated", names=("updated",), depth=-1)
                )  # machine-readable: preferred
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
