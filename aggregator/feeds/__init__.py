"""Format adapters: bytes + mapping -> raw records. Pure: no I/O, no clock, no environment.

Every adapter module (one per FORMAT: ``csv``, ``json``, ``html``, ``hsds``, ``smart``) and every
partner parser (``partners/``: what no mapping can express) offers::

    parse(documents: Sequence[Document], mapping: RecordMapping) -> list[dict]
        the raw records (see aggregator.normalize) of a feed's fetched documents

and may offer::

    rows(documents: Sequence[Document], mapping: RecordMapping) -> list[Row]
        the same records, each mapped only when asked for (``Row.mapped``), with a digest of what it was
        mapped from: a row unchanged since the feed's last run (ingest's row memos) is never mapped

    follow(document: Document, mapping: RecordMapping) -> list[str]
        further URLs to fetch after this document: the next page of a paginated JSON API, the
        NDJSON files a SMART ``$bulk-publish`` manifest lists, the CSV files of an HSDS package.

A document whose bytes do not fit the format raises ``aggregator.errors.ParseError`` with a message
a partner could act on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from types import ModuleType
from typing import Any, Protocol

from aggregator.feeds.mapping import RecordMapping


class Row(Protocol):
    """A record as ``rows`` gives it: ``digest`` names everything its raw record is made from (its cells, the
    header they sit under and the mapping), so equal digests map to equal records; ``mapped`` makes it."""

    digest: bytes

    def mapped(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Document:
    url: str
    body: bytes
    content_type: str = ""


Parse = Callable[[Sequence[Document], RecordMapping], list[dict[str, Any]]]
Follow = Callable[[Document, RecordMapping], list[str]]

#: format name -> module path
FORMAT_MODULES = {
    "csv": "aggregator.feeds.csv",
    "json": "aggregator.feeds.json",
    "html": "aggregator.feeds.html",
    "hsds": "aggregator.feeds.hsds",
    "smart": "aggregator.feeds.smart",
}

#: partner parser name (a feed's ``parser`` key) -> module path
PARSERS = {
    "la_county": "aggregator.feeds.partners.la_county",
}


def _module(name: str) -> ModuleType:
    if name in PARSERS:
        return import_module(PARSERS[name])
    return import_module(FORMAT_MODULES[name])


def parser_for(format_or_parser: str) -> Parse:
    parse: Parse = _module(format_or_parser).parse
    return parse


def rows_for(format_or_parser: str) -> Callable[[Sequence[Document], RecordMapping], list[Row]] | None:
    """The adapter's ``rows`` where it has one (CSV), else None (use ``parser_for``)."""
    rows: Callable[[Sequence[Document], RecordMapping], list[Row]] | None = getattr(
        _module(format_or_parser), "rows", None
    )
    return rows


def follower_for(format_or_parser: str) -> Follow | None:
    follow: Follow | None = getattr(_module(format_or_parser), "follow", None)
    return follow
