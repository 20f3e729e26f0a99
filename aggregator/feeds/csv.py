"""CSV exports: bytes + mapping -> raw records. Pure.

Handles a UTF-8 byte-order mark, Windows line endings, quoted fields spanning lines, and a
delimiter given by the mapping (``options.delimiter``) or sniffed among ``, ; | TAB``. A column the
mapping names but the header lacks is a ``ParseError`` naming it: the partner changed the layout.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from aggregator.errors import ParseError
from aggregator.feeds import Document
from aggregator.feeds.mapping import RecordMapping, apply

MAX_FIELD = 1_000_000


def decode(body: bytes) -> str:
    """UTF-8 (with or without BOM); Windows-1252 when the bytes are not UTF-8 (old exports)."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return body.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise ParseError(f"CSV is neither UTF-8 nor Windows-1252 text: {exc}") from exc


def parse(documents: Sequence[Document], mapping: RecordMapping) -> list[dict[str, Any]]:
    """Every document is one CSV export (several when a feed is split across files)."""
    return [record for doc in documents for record in parse_one(doc.body, mapping)]


def parse_one(body: bytes, mapping: RecordMapping) -> list[dict[str, Any]]:
    return [row.mapped() for row in _rows(body, mapping)]


def rows(documents: Sequence[Document], mapping: RecordMapping) -> list[Row]:
    """``parse``, each record mapped only when asked for (``Row``): a run that knows a row from the feed's last
    run by its digest never maps it."""
    return [row for doc in documents for row in _rows(doc.body, mapping)]


class Row:
    """One CSV row: ``digest`` (BLAKE2b, 128 bits) of its cells under the header and mapping they were read with;
    ``mapped`` builds its raw record (``apply``). ``problem``: why the row cannot be read as its header says (its
    record is rejected with it)."""

    __slots__ = ("_cells", "_columns", "_mapping", "digest", "problem")

    def __init__(
        self, digest: bytes, cells: list[str], columns: dict[str, int], mapping: RecordMapping, problem: str = ""
    ) -> None:
        self.digest = digest
        self._cells = cells
        self._columns = columns
        self._mapping = mapping
        self.problem = problem

    def get(self, ref: str) -> Any:
        """The cell of column ``ref`` (stripped; "" where the row stops short of it)."""
        i = self._columns[ref]
        cells = self._cells
        return cells[i].strip() if i < len(cells) else ""

    def mapped(self) -> dict[str, Any]:
        raw = apply(self.get, self._mapping)
        if self.problem:
            raw["_problem"] = self.problem
        return raw


def _rows(body: bytes, mapping: RecordMapping) -> list[Row]:
    text = decode(body)
    if not text.strip():
        raise ParseError("CSV is empty")
    if "\x00" in text:
        raise ParseError("CSV contains NUL bytes: not a text export")
    delimiter = mapping.options.get("delimiter") or sniff(text)
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise ParseError(f"CSV header unreadable: {exc}") from exc
    columns = {name.strip(): i for i, name in enumerate(header)}
    needed = _referenced(mapping)
    names = [name.strip() for name in header]
    repeated = sorted({name for name in names if name in needed and names.count(name) > 1})
    if repeated:
        raise ParseError(
            f"CSV header repeats {', '.join(repr(c) for c in repeated)}: which column the mapping means is not "
            "known; rename one in the export or map by another name"
        )
    missing = sorted(c for c in needed if c not in columns)
    if missing:
        raise ParseError(
            f"CSV columns missing: {', '.join(repr(c) for c in missing)} "
            f"(header has {', '.join(repr(c) for c in list(columns)[:12])}); did the layout change?"
        )
    salt = hashlib.blake2b(orjson.dumps([header, mapping], default=_plain), digest_size=16).digest()
    records = []
    width = len(header)
    try:
        for row in reader:
            if not "".join(row).strip():  # a blank row (every cell empty or spaces)
                continue
            digest = hashlib.blake2b(orjson.dumps(row), digest_size=16, key=salt).digest()
            extra = sum(1 for cell in row[width:] if cell.strip()) if len(row) > width else 0
            problem = (
                f"line {reader.line_num} has {extra} more filled cell{'s' if extra > 1 else ''} than the header has "
                "columns (an unquoted comma?): its values may sit under the wrong columns; not read"
                if extra
                else ""
            )
            records.append(Row(digest, row, columns, mapping, problem))
    except csv.Error as exc:
        raise ParseError(f"CSV malformed at line {reader.line_num}: {exc}") from exc
    if sum(1 for r in records if r.problem) * 2 > len(records):
        # most rows run past the header: a column the export left unnamed, not values shifted by a comma (the
        # named columns read as they are, the unnamed one is not read, as before)
        for r in records:
            r.problem = ""
    else:
        for r in records:
            if r.problem:  # not read, for what the other rows say: never the digest of these cells read as they are
                r.digest = hashlib.blake2b(r.digest, digest_size=16, person=b"not read").digest()
    return records


def _plain(value: Any) -> Any:
    """What orjson does not write itself, for a mapping's digest: a mapping as a dict, a set sorted, anything
    else as its repr (distinct values stay distinct; one that differs from process to process only costs a
    run its row memos)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return repr(value)


def _referenced(mapping: RecordMapping) -> set[str]:
    refs = set(mapping.fields.values()) | set(mapping.id_from) | set(mapping.identifiers.values())
    for m in mapping.availability:
        refs |= set(m.fields.values())
    return refs


def sniff(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "|", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","
