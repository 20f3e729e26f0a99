"""JSON APIs and NDJSON files: bytes + mapping -> raw records. Pure.

Field references (and ``availability_list``) are **JMESPath** expressions relative to the record
(https://jmespath.org): ``name``, ``address.zip``, ``phones[0].number``, ``services[*].code`` (every
item; a list), ``services[?f2=='TC'].f3`` (the items whose ``f2`` is ``TC``),
``contacts[?kind=='hotline'] | [0].number`` (the first such item). A leading ``$.`` is allowed. The
older dotted paths keep working as they were written, including keys JMESPath would need quoted
(``address.zip-code``, ``Facility Name``): they are read as ``"address"."zip-code"``.

``mapping.records`` and ``next_page`` are dotted paths (``data.items``, ``results[0].items``,
``links.next``), or any JMESPath expression when they are not.

A field reference landing on a string, number or true/false gives it unchanged; on a list of those
(nested lists are flattened), the list (for list fields such as ``levels_of_care``); on an object, a
list holding objects, or nothing, ``None`` (the field is left out).

``mapping.records`` leads from the document to the list of records (``""``: the document is the list).
A missing key or a value that is not a list is a ``ParseError`` naming the key and the keys that exist.

NDJSON (one JSON value per line) is read when ``options.ndjson`` is true, or when the body is not one
JSON value but its first line is one and more lines follow; the document is then the list of its lines.

An item of the records list that is not a JSON object becomes a raw record ``{"_problem": "..."}``
(no ``source_id``), so normalization rejects it (``source_id: missing``) while the good records are
kept; a document none of whose records is an object, or where no mapped field is found in any record,
is a ``ParseError`` (the layout changed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin, urlsplit

import jmespath
import orjson
from jmespath.exceptions import JMESPathError

from aggregator.errors import ParseError
from aggregator.feeds import Document
from aggregator.feeds.mapping import Getter, ListGetter, RecordMapping, apply

#: a key, a list index, or None for ``[*]``
Step = str | int | None

_PART = re.compile(r"([^.\[\]]*)((?:\[(?:-?\d+|\*)\])*)")
_INDEX = re.compile(r"\[(-?\d+|\*)\]")
_SCALARS = (str, int, float, bool)


def parse(documents: Sequence[Document], mapping: RecordMapping) -> list[dict[str, Any]]:
    """Every document is one page of the API (or one NDJSON file); the records are concatenated."""
    records: list[dict[str, Any]] = []
    for doc in documents:
        try:
            records += parse_one(doc.body, mapping)
        except ParseError as exc:
            raise ParseError(f"{doc.url}: {exc}" if doc.url else str(exc)) from exc
    return records


def parse_one(body: bytes, mapping: RecordMapping) -> list[dict[str, Any]]:
    items = records_at(load(body, bool(mapping.options.get("ndjson"))), mapping.records)
    raws: list[dict[str, Any]] = []
    objects = 0
    for i, item in enumerate(items):
        if isinstance(item, dict):
            objects += 1
            raws.append(apply(getter(item), mapping, _list_getter(item)))
        else:
            raws.append({"_problem": f"record [{i}] is {_kind(item)}, not a JSON object"})
    if items and not objects:
        raise ParseError(
            f"none of the {len(items)} records is a JSON object (the first is {_kind(items[0])}); "
            f"does mapping.records {mapping.records!r} name the list of records?"
        )
    found = set(mapping.fields) | {"availability"}
    if objects and mapping.fields and not any(found & (raw.keys() - mapping.constants.keys()) for raw in raws):
        first = next(item for item in items if isinstance(item, dict))
        raise ParseError(
            f"no mapped field ({', '.join(repr(r) for r in list(mapping.fields.values())[:8])}) "
            f"was found in any of the {objects} records; did the layout change? "
            f"The first record has keys {_keys(first)}"
        )
    return raws


def follow(document: Document, mapping: RecordMapping) -> list[str]:
    """The next page's URL, from ``mapping.next_page`` resolved on the whole document; [] on the last page."""
    if not mapping.next_page:
        return []
    value = expression(mapping.next_page)(load(document.body, bool(mapping.options.get("ndjson"))))
    if not isinstance(value, str) or not value.strip():
        return []
    url = urljoin(document.url, value.strip())
    if urlsplit(url).scheme not in ("http", "https"):
        raise ParseError(f"next page link {value[:200]!r} (at {mapping.next_page!r}) is not an http(s) URL")
    return [] if url == document.url else [url]


# --------------------------------------------------------------------------------------------------


def load(body: bytes, ndjson: bool = False) -> Any:
    """UTF-8 JSON (a BOM is tolerated); NDJSON as the list of its lines' values."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"JSON is not UTF-8 text (bad byte at offset {exc.start})") from exc
    if not text.strip():
        raise ParseError("JSON body is empty")
    if ndjson:
        return _lines(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        stripped = text.strip()
        if "\n" in stripped and _is_json(stripped.split("\n", 1)[0]):
            return _lines(text)
        raise ParseError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _lines(text: str) -> list[Any]:
    values = []
    for n, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                values.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise ParseError(f"invalid NDJSON at line {n}, column {exc.colno}: {exc.msg}") from exc
    return values


@lru_cache(maxsize=512)
def steps(path: str) -> tuple[Step, ...]:
    """'phones[0].number' -> ('phones', 0, 'number'); '' -> () (the value itself)."""
    path = path.strip()
    path = path[2:] if path.startswith("$.") else path[1:] if path.startswith("$") else path
    if not path:
        return ()
    out: list[Step] = []
    for part in path.split("."):
        m = _PART.fullmatch(part)
        if not m or not part:
            raise ParseError(
                f"mapping path {path!r} is not a JSON path such as 'address.zip', "
                "'phones[0].number' or 'services[*].code'"
            )
        if m.group(1):
            out.append(None if m.group(1) == "*" else m.group(1))
        out += [None if i == "*" else int(i) for i in _INDEX.findall(m.group(2))]
    return tuple(out)


def resolve(value: Any, path: tuple[Step, ...]) -> Any:
    """Follow a path; None where it leads nowhere. ``[*]`` gives the list of what each item leads to."""
    for i, step in enumerate(path):
        if step is None:
            if not isinstance(value, list):
                return None
            out: list[Any] = []
            for item in value:
                found = resolve(item, path[i + 1 :])
                if isinstance(found, list):
                    out += found
                elif found is not None:
                    out.append(found)
            return out
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return None
            value = value[step]
        elif isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


def field_value(value: Any) -> Any:
    """What a field may hold: a scalar, or a list of scalars (nested lists flattened); None for objects."""
    if isinstance(value, list):
        items = list(_flatten(value))
        return items if all(isinstance(v, _SCALARS) for v in items) else None
    return value if isinstance(value, _SCALARS) else None


def _flatten(values: list[Any]) -> Any:
    for v in values:
        if isinstance(v, list):
            yield from _flatten(v)
        elif v is not None:
            yield v


Search = Any  # a function: JSON value -> what the reference finds there


@lru_cache(maxsize=2048)
def expression(ref: str) -> Search:
    """A compiled reference: a plain dotted path is followed directly (fast); anything else is JMESPath.

    Raises ParseError naming the reference when it is neither."""
    text = ref.strip()
    text = text[2:] if text.startswith("$.") else text[1:] if text.startswith("$") else text
    if _SIMPLE.fullmatch(text):
        path = steps(text)
        return lambda value: resolve(value, path)
    try:
        compiled = jmespath.compile(text)
    except JMESPathError as exc:
        legacy = _legacy(text)
        if legacy is None:
            detail = " ".join(str(exc).split())[:200]
            raise ParseError(
                f"reference {ref!r} is not a JMESPath expression ({detail}); e.g. 'address.zip', "
                "'phones[0].number', \"contacts[?kind=='hotline'] | [0].number\""
            ) from exc
        compiled = jmespath.compile(legacy)
    return compiled.search


#: a dotted path of plain keys and list indexes: followed without JMESPath (the same meaning)
_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[(?:-?\d+|\*)\])*(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[(?:-?\d+|\*)\])*)*")


def _legacy(text: str) -> str | None:
    """An older dotted path whose keys JMESPath needs quoted ('address.zip-code' -> '"address"."zip-code"')."""
    try:
        path = steps(text)
    except ParseError:
        return None
    out = ""
    for step in path:
        if step is None:
            out += "[*]"
        elif isinstance(step, int):
            out += f"[{step}]"
        else:
            out += ("." if out else "") + orjson.dumps(step).decode()
    try:
        jmespath.compile(out or "@")
    except JMESPathError:
        return None
    return out or "@"


def getter(record: dict[str, Any]) -> Getter:
    def get(ref: str) -> Any:
        return field_value(expression(ref)(record))

    return get


def _list_getter(record: dict[str, Any]) -> ListGetter:
    def list_get(path: str) -> list[Getter]:
        found = expression(path)(record)
        items = found if isinstance(found, list) else [found]
        return [getter(item) for item in items if isinstance(item, dict)]

    return list_get


def records_at(document: Any, path: str) -> list[Any]:
    """The list at ``path``, or a ParseError saying where the path stopped and what is there."""
    value, where = document, ""

    def fail(reason: str) -> ParseError:
        return ParseError(f"records path {path!r}: {reason}")

    try:
        path_steps = steps(path)
    except ParseError:  # not a dotted path: a JMESPath expression
        found = expression(path)(document)
        if not isinstance(found, list):
            raise fail(f"the expression gives {_kind(found)}, not a list of records") from None
        return found
    for step in path_steps:
        place = f"{where!r}" if where else "the document"
        if step is None:
            raise fail("[*] cannot be used here; name one list, e.g. 'results[0].items'")
        if isinstance(step, int):
            if not isinstance(value, list):
                raise fail(f"{place} is {_kind(value)}, not a list")
            if not -len(value) <= step < len(value):
                raise fail(f"{place} has no item [{step}] (it has {len(value)} items)")
            value, where = value[step], f"{where}[{step}]"
        else:
            if not isinstance(value, dict):
                raise fail(f"{place} is {_kind(value)}, not an object with key {step!r}")
            if step not in value:
                raise fail(f"key {step!r} is missing in {place}, which has keys {_keys(value)}; did the layout change?")
            value, where = value[step], f"{where}.{step}" if where else step
    if not isinstance(value, list):
        hint = (
            f" with keys {_keys(value)}; set mapping.records to the key of the list of records"
            " (or options.ndjson = true for one record per line)"
            if isinstance(value, dict)
            else ""
        )
        raise fail(f"{repr(where) if where else 'the document'} is {_kind(value)}{hint}, not a list of records")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else "a number"


def _keys(obj: dict[str, Any]) -> str:
    keys = [repr(k) for k in list(obj)[:12]]
    return (", ".join(keys) + (", ..." if len(obj) > 12 else "")) if keys else "(none)"
