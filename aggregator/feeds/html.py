"""Scraped HTML pages (bed-board tables, directory cards): bytes + mapping -> raw records. Pure.

BeautifulSoup with the ``lxml`` parser is given the raw bytes, so it detects the charset (byte-order
mark, ``<meta charset>``, then a guess); ``options.encoding`` forces one.

``mapping.records`` is a CSS selector for each record element (``table#beds tbody tr``,
``div.facility``); ``options.skip_rows`` skips that many leading matches. A field reference is a CSS
selector relative to the record element (``td:nth-of-type(2)``, ``.name``), optionally ending in
``@attr`` for an attribute (``a.website@href``; ``@data-id`` alone reads the record element's own);
``@text`` or ``.`` is the record element's own text. Text is whitespace-collapsed (non-breaking
spaces too), with a space where a ``<br>`` or a block element breaks it. ``href`` and ``src`` values are
made absolute against the page URL. A selector matching several elements gives the list of their
values (for list fields such as ``ul.services li``). Cells are passed through as text ("FULL",
"Waitlist (3)", "2 beds", "N/A"): ``aggregator.normalize`` reads them.

Record elements where no reference finds anything (a header row of ``th`` cells) are skipped. A body
that is not HTML, a ``records`` selector matching nothing, or matches none of which holds mapped data
are a ``ParseError``: the page layout may have changed.

``options.rowspan = "carry"`` is for bed boards that list a facility's programs on several rows, with
the facility's name, address and phone cells spanning them (``<td rowspan="3">``)::

    | Harbor House  | 12 Main St | Detox       | 2 beds       |
    |   (rowspan=3) | (rowspan=3)| Residential | FULL         |
    |               |            | Outpatient  | Waitlist (3) |

Before the mapping is applied, every table holding a record row is expanded into its grid (per row
group: ``thead``, ``tbody``, ``tfoot``; ``colspan`` counts for column positions; ``rowspan="0"`` runs to
the end of the group, a rowspan running past it stops there): a cell with ``rowspan=N`` is copied into
the next N-1 rows at its column position, so ``td:nth-of-type(1)`` finds the facility's name on every
row. The copies carry a ``data-rowspan-copy`` attribute. A row that received copies (a continuation row)
is not a record of its own: it is mapped like any row and merged into the record of the row the copies
came from: its ``availability`` entries are appended, list fields (``levels_of_care``, ``payment``,
``populations``, ``languages``) are unioned (a single value counts as a one-item list), other fields keep
the first row's value unless it has none. The result is one record per facility with every program.
Without the option, cells are read as the markup has them: a continuation row is a record of its own,
named after whatever its first cell holds (a program).
"""

from __future__ import annotations

import codecs
import copy
import re
import warnings
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin

from bs4 import (
    BeautifulSoup,
    CData,
    MarkupResemblesLocatorWarning,
    NavigableString,
    PageElement,
    ParserRejectedMarkup,
    Tag,
    XMLParsedAsHTMLWarning,
)
from soupsieve import SelectorSyntaxError

from aggregator.errors import ParseError
from aggregator.feeds import Document
from aggregator.feeds.mapping import LIST_FIELDS, Getter, RecordMapping, apply

_ATTR = re.compile(r"(.*?)\s*@([A-Za-z_][\w:.-]*)")
_BREAKS = frozenset(
    {
        "br",
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "table",
        "tbody",
        "thead",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "header",
        "footer",
        "address",
        "blockquote",
        "pre",
        "hr",
    }
)
_SKIP = frozenset({"script", "style", "template", "noscript"})
_URL_ATTRS = frozenset({"href", "src"})
_UTF16_32_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)
#: marks a cell copied into a continuation row by ``options.rowspan = "carry"``
COPY_MARK = "data-rowspan-copy"
#: the HTML limits on colspan and rowspan (larger values are clamped by browsers too)
_MAX_COLSPAN = 1000
_MAX_ROWSPAN = 65534
#: spanning cells starting further right are not carried (bounds the work a hostile page can cause)
_MAX_COLUMNS = 1000


def parse(documents: Sequence[Document], mapping: RecordMapping) -> list[dict[str, Any]]:
    """Every document is one page; the records are concatenated."""
    records: list[dict[str, Any]] = []
    for doc in documents:
        try:
            records += parse_one(doc.body, mapping, doc.url)
        except ParseError as exc:
            raise ParseError(f"{doc.url}: {exc}" if doc.url else str(exc)) from exc
    return records


def parse_one(body: bytes, mapping: RecordMapping, url: str = "") -> list[dict[str, Any]]:
    _check(body)
    if not mapping.records.strip():
        raise ParseError("mapping.records must be a CSS selector for each record, e.g. 'table#beds tbody tr'")
    carry = _carries(mapping)
    soup = _soup(body, mapping.options.get("encoding"))
    try:
        elements = select(soup, mapping.records, "records")
        continues: dict[int, Tag] = {}
        if carry and elements:
            continues = _expand_rowspans(soup, elements)
            # again: a selector may match a continuation row only once it has its carried cells
            elements = [e for e in select(soup, mapping.records, "records") if not _is_copy(e)]
        elements = elements[_skip_rows(mapping) :]
        if not elements:
            raise ParseError(
                f"records selector {mapping.records!r} matched nothing: the page layout may have "
                "changed, or this is an error or login page"
            )
        records = []
        by_row: dict[int, dict[str, Any]] = {}
        for element in elements:
            found: list[bool] = []
            raw = apply(_getter(element, url, found), mapping)
            if not found:
                continue
            first = by_row.get(id(continues[id(element)])) if id(element) in continues else None
            if first is not None:
                _merge(first, raw)
                by_row[id(element)] = first
            else:
                records.append(raw)
                by_row[id(element)] = raw
        if not records:
            raise ParseError(
                f"records selector {mapping.records!r} matched {len(elements)} elements but no mapped "
                "field found anything in them: the page layout may have changed"
            )
        return records
    finally:
        soup.decompose()


def value(element: Tag, ref: str, base_url: str = "") -> Any:
    """One reference inside a record element: text, attribute, a list of them, or None."""
    ref = ref.strip()
    if ref in ("", ".", "@text"):
        return text(element)
    m = _ATTR.fullmatch(ref)
    selector, attr = (m.group(1), m.group(2)) if m else (ref, "text")
    matched = select(element, selector, "field") if selector not in ("", ".") else [element]
    values = [text(t) if attr == "text" else _attribute(t, attr, base_url) for t in matched]
    if not matched:
        return None
    if len(matched) == 1:
        return values[0]
    return [v for v in values if v]


def text(element: Tag) -> str:
    """The element's text, whitespace-collapsed, with a space where a block element or <br> breaks it."""
    parts: list[str] = []
    stack: list[PageElement | None] = [element]
    while stack:
        node = stack.pop()
        if node is None:
            parts.append(" ")
        elif isinstance(node, Tag):
            if node.name in _SKIP:
                continue
            if node.name in _BREAKS:
                parts.append(" ")
                stack.append(None)
            stack.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):
            parts.append(str(node))
    return " ".join("".join(parts).split())


def select(element: Tag, selector: str, what: str) -> list[Tag]:
    try:
        return list(element.select(selector))
    except (SelectorSyntaxError, ValueError) as exc:
        first_line = str(exc).split("\n", 1)[0]
        raise ParseError(f"{what} selector {selector!r} is not valid CSS: {first_line}") from exc


# --------------------------------------------------------------------------------------------------


def _check(body: bytes) -> None:
    head = body.lstrip(codecs.BOM_UTF8).lstrip()
    if not head:
        raise ParseError("page is empty")
    if not body.startswith(_UTF16_32_BOMS) and b"\x00" in body:
        raise ParseError("page contains NUL bytes: binary data, not an HTML page")
    if head[:1] in (b"{", b"["):
        raise ParseError("page looks like JSON, not HTML: should the feed's format be 'json'?")


def _soup(body: bytes, encoding: Any) -> BeautifulSoup:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
            warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
            return BeautifulSoup(body, "lxml", from_encoding=str(encoding) if encoding else None)
    except (ParserRejectedMarkup, LookupError, ValueError) as exc:
        raise ParseError(f"page could not be parsed as HTML: {exc}") from exc


def _skip_rows(mapping: RecordMapping) -> int:
    skip = mapping.options.get("skip_rows", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise ParseError(f"options.skip_rows must be a whole number >= 0, not {skip!r}")
    return skip


def _carries(mapping: RecordMapping) -> bool:
    rowspan = mapping.options.get("rowspan")
    if rowspan is None:
        return False
    if rowspan != "carry":
        raise ParseError(f"options.rowspan must be 'carry', not {rowspan!r}")
    return True


def _span(cell: Tag, attr: str, default: int, limit: int) -> int:
    """A cell's colspan or rowspan as browsers read it: leading digits, else the default; clamped."""
    raw = cell.get(attr)
    m = re.match(r"\s*(\d+)", raw if isinstance(raw, str) else "")
    if not m:
        return default
    digits = m.group(1).lstrip("0") or "0"
    return min(int(digits), limit) if len(digits) <= 6 else limit


def _is_copy(element: Tag) -> bool:
    return element.has_attr(COPY_MARK) or element.find_parent(attrs={COPY_MARK: True}) is not None


def _expand_rowspans(soup: BeautifulSoup, elements: list[Tag]) -> dict[int, Tag]:
    """Expand the rowspans of the tables whose rows are record elements (see the module docstring); a
    table around cards (a layout table) is left alone.

    Returns, by ``id()`` of each continuation row, the row it continues: the earliest row whose cells it
    received, followed back to a row that is no continuation itself."""
    tables: dict[int, Tag] = {}
    for element in elements:
        table = element.find_parent("table") if element.name == "tr" else None
        if table is not None:
            tables.setdefault(id(table), table)
    continues: dict[int, Tag] = {}
    for table in tables.values():
        groups: dict[int, list[Tag]] = {}  # rows by their row group (thead, tbody, tfoot, the table)
        for row in table.find_all("tr"):
            if row.parent is not None and row.find_parent("table") is table:
                groups.setdefault(id(row.parent), []).append(row)
        for rows in groups.values():
            _expand_group(soup, rows, continues)
    return continues


#: column -> (first column of the spanning cell, the cell, its row, rows it still covers, this one included)
_Spanning = dict[int, tuple[int, Tag, Tag, int]]


def _expand_group(soup: BeautifulSoup, rows: list[Tag], continues: dict[int, Tag]) -> None:
    """One row group: copy each spanning cell into the rows it spans, at its column position."""
    index = {id(row): i for i, row in enumerate(rows)}
    spanning: _Spanning = {}
    for row in rows:
        sources = _expand_row(soup, row, spanning, len(rows))
        for c, (start, cell, source, left) in list(spanning.items()):
            if left <= 1:
                del spanning[c]
            else:
                spanning[c] = (start, cell, source, left - 1)
        if sources:
            first = min(sources, key=lambda r: index[id(r)])
            continues[id(row)] = continues.get(id(first), first)


def _expand_row(soup: BeautifulSoup, row: Tag, spanning: _Spanning, group_rows: int) -> list[Tag]:
    """Insert the cells carried into this row; note the row's own spanning cells. Returns the rows the
    carried cells came from."""
    own = [c for c in row.find_all(["td", "th"], recursive=False) if isinstance(c, Tag)]
    carried = dict(spanning)
    sources: list[Tag] = []
    col = 0
    for cell in own:
        col = _carry(row, carried, col, cell, sources)
        colspan = _span(cell, "colspan", 1, _MAX_COLSPAN) or 1
        rowspan = _span(cell, "rowspan", 1, _MAX_ROWSPAN)
        if rowspan == 0:  # to the end of the row group
            rowspan = group_rows
        for c in range(col, min(col + colspan, _MAX_COLUMNS)):
            if rowspan > 1:
                spanning[c] = (col, cell, row, rowspan)
            else:
                spanning.pop(c, None)
        col += colspan
    # carried cells to the right of the row's own cells; empty cells fill a gap before them
    while any(c >= col for c in carried):
        if col in carried:
            col = _carry(row, carried, col, None, sources)
        else:
            filler = soup.new_tag("td")
            filler[COPY_MARK] = ""
            row.append(filler)
            col += 1
    return sources


def _carry(row: Tag, carried: _Spanning, col: int, anchor: Tag | None, sources: list[Tag]) -> int:
    """Copy the carried cells from column ``col`` on (before ``anchor``, else at the row's end) until a
    free column, which is returned."""
    while col in carried:
        start, cell, source, _ = carried[col]
        if start == col:
            duplicate = copy.copy(cell)
            duplicate.attrs.pop("rowspan", None)
            duplicate[COPY_MARK] = ""
            if anchor is None:
                row.append(duplicate)
            else:
                anchor.insert_before(duplicate)
            sources.append(source)
        col += 1
    return col


def _merge(first: dict[str, Any], more: dict[str, Any]) -> None:
    """A continuation row's raw record into the record of its first row (new lists, never mutated)."""
    for key, val in more.items():
        if val in (None, "", []):
            continue
        if key == "availability":
            first["availability"] = [*first.get("availability", []), *val]
        elif key in LIST_FIELDS:
            have = first.get(key)
            items = list(have) if isinstance(have, list) else ([] if have in (None, "") else [have])
            for item in val if isinstance(val, list) else [val]:
                if item not in items:
                    items.append(item)
            first[key] = items
        elif first.get(key) in (None, "", []):
            first[key] = val


def _attribute(element: Tag, attr: str, base_url: str) -> str:
    raw = element.get(attr)
    if raw is None:
        return ""
    result = " ".join((" ".join(raw) if isinstance(raw, list) else str(raw)).split())
    return urljoin(base_url, result) if result and base_url and attr in _URL_ATTRS else result


def _getter(element: Tag, base_url: str, found: list[bool]) -> Getter:
    """A reference getter that notes (in ``found``) whether any reference found something."""

    def get(ref: str) -> Any:
        result = value(element, ref, base_url)
        if result not in (None, "", []):
            found.append(True)
        return result

    return get
