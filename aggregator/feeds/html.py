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
"""

from __future__ import annotations

import codecs
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
from aggregator.feeds.mapping import Getter, RecordMapping, apply

_ATTR = re.compile(r"(.*?)\s*@([A-Za-z_][\w:.-]*)")
_BREAKS = frozenset({
    "br", "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "tr", "td", "th", "table", "tbody", "thead",
    "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer", "address",
    "blockquote", "pre", "hr",
})
_SKIP = frozenset({"script", "style", "template", "noscript"})
_URL_ATTRS = frozenset({"href", "src"})
_UTF16_32_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)


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
    soup = _soup(body, mapping.options.get("encoding"))
    try:
        elements = select(soup, mapping.records, "records")[_skip_rows(mapping):]
        if not elements:
            raise ParseError(f"records selector {mapping.records!r} matched nothing: the page layout may have "
                             "changed, or this is an error or login page")
        records = []
        for element in elements:
            found: list[bool] = []
            raw = apply(_getter(element, url, found), mapping)
            if found:
                records.append(raw)
        if not records:
            raise ParseError(f"records selector {mapping.records!r} matched {len(elements)} elements but no mapped "
                             "field found anything in them: the page layout may have changed")
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
