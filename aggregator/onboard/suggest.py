"""A mapping suggested from a sample's names and values, and its TOML. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aggregator import vocabulary
from aggregator.feeds.mapping import LIST_FIELDS, PHONE_FIELDS
from aggregator.model import AvailabilityStatus
from aggregator.normalize import LEVEL_PRIORITY
from aggregator.onboard.discover import Candidate, Column, Discovery, discover, norm_name

# --------------------------------------------------------------------------------------------------
# Suggestion: a mapping from names and values


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+|\d+", text))


#: whole (normalized) names, field by field
EXACT: dict[str, frozenset[str]] = {
    "source_id": frozenset(
        {
            "id",
            "facility id",
            "frid",
            "provider id",
            "site id",
            "location id",
            "program id",
            "agency id",
            "record id",
            "facility code",
            "facility number",
            "license number",
            "uid",
            "guid",
        }
    ),
    "name": frozenset(
        {
            "name",
            "name1",
            "facility",
            "facility name",
            "provider",
            "provider name",
            "agency",
            "agency name",
            "program name",
            "program",
            "organization",
            "organization name",
            "center",
            "center name",
            "site name",
            "location name",
            "title",
            "name 1",
        }
    ),
    "alternate_name": frozenset(
        {
            "name2",
            "name 2",
            "dba",
            "alternate",
            "alternate name",
            "alt name",
            "aka",
            "doing business as",
            "other name",
            "also known as",
        }
    ),
    "address": frozenset({"full address", "one line address", "formatted address", "address full"}),
    "address_1": frozenset(
        {
            "street",
            "street1",
            "street 1",
            "address",
            "address1",
            "address 1",
            "addr",
            "addr1",
            "street address",
            "address line 1",
            "address line1",
            "street line 1",
            "streetaddress",
            "line1",
        }
    ),
    "address_2": frozenset(
        {
            "street2",
            "street 2",
            "address2",
            "address 2",
            "addr2",
            "address line 2",
            "address line2",
            "suite",
            "unit",
            "line2",
            "street line 2",
        }
    ),
    "city": frozenset({"city", "town", "city town", "municipality", "locality", "city name"}),
    "state": frozenset({"state", "st", "state code", "state abbr", "state abbreviation"}),
    "postal_code": frozenset(
        {"zip", "zipcode", "zip code", "zip5", "postal", "postal code", "postalcode", "postcode", "post code"}
    ),
    "latitude": frozenset({"lat", "latitude", "y coord"}),
    "longitude": frozenset({"lon", "lng", "long", "longitude", "x coord"}),
    "phone": frozenset(
        {
            "phone",
            "phones",
            "telephone",
            "telephones",
            "tel",
            "phone number",
            "phone numbers",
            "main phone",
            "phone1",
            "phone 1",
            "contact phone",
            "number",
        }
    ),
    "intake_phone": frozenset(
        {"intake phone", "intake", "intake number", "admissions phone", "admissions", "intake line", "referral phone"}
    ),
    "hotline_phone": frozenset(
        {"hotline", "hotline phone", "crisis line", "crisis phone", "24 hour phone", "24 hr phone", "emergency phone"}
    ),
    "website": frozenset(
        {"website", "web site", "url", "web", "homepage", "home page", "site url", "www", "web address", "website url"}
    ),
    "levels_of_care": frozenset(
        {
            "services",
            "service",
            "levels",
            "level",
            "levels of care",
            "level of care",
            "type of care",
            "types of care",
            "care type",
            "care types",
            "treatment type",
            "treatment types",
            "service types",
            "services offered",
            "loc",
            "service settings",
            "settings",
            "programs offered",
        }
    ),
    "payment": frozenset(
        {
            "payment",
            "payments",
            "payment types",
            "payment type",
            "payment accepted",
            "payments accepted",
            "insurance",
            "insurances",
            "insurance accepted",
            "fees",
            "payment options",
            "funding",
        }
    ),
    "populations": frozenset(
        {
            "populations",
            "population",
            "populations served",
            "population served",
            "special populations",
            "ages",
            "age",
            "age groups",
            "age group",
            "gender",
            "genders",
            "sex",
            "clients served",
            "serves",
            "serving",
            "who we serve",
        }
    ),
    "languages": frozenset({"languages", "language", "languages spoken", "spoken languages"}),
    "reported_at": frozenset(
        {
            "updated",
            "last updated",
            "as of",
            "updated at",
            "last update",
            "date updated",
            "update date",
            "modified",
            "last modified",
            "timestamp",
            "reported at",
            "reported",
            "date",
            "last changed",
            "as of date",
        }
    ),
    "status": frozenset(
        {"operating status", "facility status", "center status", "site status", "program status", "open closed"}
    ),
    "source_url": frozenset({"source url", "details", "detail url", "profile", "profile url", "link"}),
}

_EXACT_INDEX = {name: fld for fld, names in EXACT.items() for name in names}

#: fallbacks on the words of a name, in order: the first rule whose test holds gives the field
_RULES: tuple[tuple[str, Callable[[set[str]], bool]], ...] = (
    ("phone", lambda w: bool(w & {"contact", "contacts", "phones"}) and bool(w & {"main", "primary", "office"})),
    (
        "intake_phone",
        lambda w: (
            bool(w & {"intake", "admissions", "admission", "referral"})
            and bool(w & {"phone", "telephone", "tel", "number", "line"})
        ),
    ),
    ("hotline_phone", lambda w: bool(w & {"hotline", "crisis"})),
    ("phone", lambda w: bool(w & {"phone", "telephone", "tel", "phones"})),
    ("source_id", lambda w: bool(w & {"id", "frid"})),
    ("postal_code", lambda w: bool(w & {"zip", "zipcode", "postal", "postcode"}) and not w & {"4", "plus"}),
    ("latitude", lambda w: bool(w & {"latitude", "lat"})),
    ("longitude", lambda w: bool(w & {"longitude", "lon", "lng"})),
    ("alternate_name", lambda w: "name" in w and bool(w & {"alternate", "alt", "dba", "other", "2", "secondary"})),
    (
        "name",
        lambda w: (
            "name" in w and not w & {"city", "county", "state", "contact", "street", "first", "last", "file", "user"}
        ),
    ),
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
    norm = norm_name(name)
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
    "beds",
    "bed",
    "open",
    "available",
    "availability",
    "status",
    "capacity",
    "total",
    "waitlist",
    "waiting",
    "wait",
    "list",
    "vacancy",
    "vacancies",
    "openings",
    "slots",
    "count",
    "census",
    "accepting",
    "now",
    "today",
    "current",
    "number",
    "of",
    "spaces",
    "licensed",
    "max",
    "maximum",
}
#: level words the vocabulary reads only in longer phrases
_LEVEL_SYNONYMS = {
    "withdrawal": "withdrawal management",
    "withdrawal mgmt": "withdrawal management",
    "wm": "withdrawal management",
    "withdrawal mgt": "withdrawal management",
}


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
    words = norm_name(column.label).split()
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
    name = norm_name(col.label)
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
        return {
            "mapping": self.mapping,
            "toml": mapping_toml(self.mapping, self.not_mapped),
            "records": self.candidate.records if self.candidate else "",
            "not_mapped": self.not_mapped,
        }


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
        choice = next(
            (
                (sure, i, fld)
                for fuzzy in (False, True)
                for i, name in enumerate(names)
                for fld, sure in [field_for(name, fuzzy) or ("", 0)]
                if fld and not ((col.in_list or col.is_list) and fld not in _LIST_OK)
            ),
            None,
        )
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
_ITEM_LEVEL = frozenset(
    {
        "program",
        "level",
        "level of care",
        "levels of care",
        "loc",
        "service",
        "type",
        "care type",
        "program type",
        "category",
        "care",
        "setting",
        "service type",
    }
)
_ITEM_FIELDS = {
    "beds_available": frozenset(
        {
            "open",
            "available",
            "beds available",
            "available beds",
            "open beds",
            "vacancies",
            "beds open",
            "openings",
            "free",
            "beds",
        }
    ),
    "beds_total": frozenset({"capacity", "total", "beds total", "total beds", "licensed", "licensed beds", "max"}),
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
            name = norm_name(key.strip('"'))
            fld = (
                "level_of_care"
                if name in _ITEM_LEVEL
                else next((f for f, names in _ITEM_FIELDS.items() if name in names), "")
            )
            if fld and fld not in fields:
                fields[fld] = key
                used.append(col.ref)
        if (
            "level_of_care" in fields
            and fields.keys() & {"beds_available", "beds_total", "status"}
            and (best is None or len(used) > len(best[1]))
        ):
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
            name = norm_name(col.label)
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
        refs = [
            _ref_of(fields[f])
            for f in ("name", "alternate_name", "address", "address_1", "address_2", "city", "postal_code")
            if f in fields
        ]
        if refs:
            mapping["id_from"] = refs
    mapping["fields"] = {f: fields[f] for f in _FIELD_ORDER if f in fields}
    if by_level:
        mapping["availability"] = [
            {"constants": {"level_of_care": level}, "fields": entry} if level else {"fields": entry}
            for level, entry in by_level.items()
        ]
    if candidate.options:
        mapping["options"] = dict(candidate.options)
    if programs:
        mapping["availability_list"] = programs[0]
    not_mapped = [c.label for c in candidate.columns if c.ref not in matched]
    return Suggestion(mapping, candidate, matched, not_mapped)


def _ref_of(value: Any) -> str:
    return str(value["from"]) if isinstance(value, dict) else str(value)


_FIELD_ORDER = (
    "source_id",
    "name",
    "alternate_name",
    "address",
    "address_1",
    "address_2",
    "city",
    "state",
    "postal_code",
    "latitude",
    "longitude",
    "phone",
    "intake_phone",
    "hotline_phone",
    "website",
    "source_url",
    "levels_of_care",
    "payment",
    "populations",
    "languages",
    "status",
    "reported_at",
)


def recognized(candidate: Candidate) -> int:
    """How many fields a candidate's columns suggest (to rank HTML cards)."""
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
            lines += ["", f"[feed.mapping.{toml_key(key)}]"] if lines else [f"[feed.mapping.{toml_key(key)}]"]
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


def discover_and_rank(fmt: str, body: bytes) -> Discovery:
    """``discover``, with HTML cards ranked by how many fields their parts suggest."""
    return discover(fmt, body, recognized)
