"""Los Angeles County's SUD Service & Bed Availability Tool, as scraped to CSV: bytes -> raw records. Pure.

One row per listing, read by column name (``agency_name``, ``agency_name_secondary``, ``agency_address``,
``agency_phone``, ``agency_website``, ``available_beds``, ``populations_served``, ``languages_spoken``,
``last_updated``; hours and wheelchair access are not part of a raw record). What no mapping expresses:

* no ids: ``source_id`` hashes agency name, secondary name and address text (``stable_id``). The tool's
  list view prints the label ``Secondary Agency Name:`` instead of the name; such a row takes the name of
  the one row of the same snapshot with the same agency, address, phone, beds and update time (the same
  listing in the detail view), else keeps the label in its id and shows no secondary name.
* a confidential site (empty street) also hashes the digits of its phone: an agency lists several
  recovery houses in one ZIP under the same ``,City, CA ZIP``, mostly with no secondary name, so name and
  address cannot tell them apart. Of the columns that tell some of them apart, only the phone is printed
  alike in both views of one house (so the two views keep one id) and is not part of the report: the bed
  string (counts and their groups) and the update time are the report and may change with the next one;
  populations, languages, wheelchair access and hours are descriptions the agency edits, and most are
  printed differently (or not at all) in the list view.
  Houses that share agency, city and ZIP, secondary name and phone still share an id, and ingestion keeps
  only one of them, the one with the newest report (in the 2025-08-14 scrape 2 houses are told apart by
  their phone, 41 are still lost so). A site with a street keeps the three-part id.
* addresses ``street,City, CA\\xa0ZIP``; the street may hold commas and is empty for confidential sites
  (``,Los Angeles, CA 90013``).
* run-together beds ``RS(3.1)Adult - M: 6Adult - F: 0RS(3.5)Adult - M: 6R-WMAdult - M: 0``: one
  availability entry per program (its groups summed: men's and women's beds are different beds). The
  sub-levels of one program family (``RS(3.1)``, ``RS(3.3)``, ``RS(3.5)``) are views of the same
  residential beds (counts such as 6 and 6 recur), so the family makes one entry counting, per group, the
  largest sub-level count, never their sum; the notes keep every count as printed.
* ``Client Served`` phrases split into words and letters (``M; A; T; Co-; Occurring; ...``): rejoined
  from the legend's phrases; ``MAT`` is a service (a level of care), not a population.
* run-together languages (``ArmenianEnglishSpanish``) are split at word boundaries.
* ``Last Updated: 8/13/2025 8:42:02 AM`` is passed as is (normalization reads it in the feed's zone).

Text that does not parse is passed on, not dropped, so normalization names it in its reasons. The
mapping's ``constants`` (e.g. ``source_url``) and ``options`` (the CSV delimiter) apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aggregator.feeds import Document
from aggregator.feeds.csv import parse_one
from aggregator.feeds.mapping import RecordMapping, stable_id

COLUMNS = (
    "agency_name",
    "agency_name_secondary",
    "agency_address",
    "agency_phone",
    "agency_website",
    "available_beds",
    "populations_served",
    "languages_spoken",
    "last_updated",
)
SECONDARY_LABEL = "Secondary Agency Name:"
#: columns the detail and the list views of one listing share (to recover a hidden secondary name)
_TWIN = ("agency_name", "agency_address", "agency_phone", "available_beds", "last_updated")

#: the legend's "Client Served" phrases as the tool splits them into words and letters
PHRASES: dict[tuple[str, ...], str] = {
    ("M", "A", "T"): "MAT",
    ("L", "G", "B", "T", "Q"): "LGBTQ",
    ("Parent/", "Guardian (", "Female) with", "Children"): "Parent/Guardian (Female) with Children",
    ("Parent/", "Guardian (", "Male) with", "Children"): "Parent/Guardian (Male) with Children",
    ("Co-", "Occurring", "Mental", "Health", "Capabilities"): "Co-Occurring Mental Health Capabilities",
    ("Physically", "Disabled"): "Physically Disabled",
    ("Developmentally", "Disabled/", "Delayed"): "Developmentally Disabled/Delayed",
    ("Criminal", "Justice"): "Criminal Justice",
    ("Sexually-", "Exploited"): "Sexually-Exploited",
}
#: "Client Served" phrases that are services
SERVICES = frozenset({"MAT"})

_ADDRESS = re.compile(
    r"^(?:(?P<street>.*),)?\s*(?P<city>[^,]*?)\s*,\s*(?P<state>[A-Za-z]{2})\.?\s+(?P<zip>\d{5}(?:-?\d{4})?)$"
)
_CODE = re.compile(r"\s*([A-Z][A-Z-]*(?:\s*\(\s*\d+(?:\.\d+)?\s*\))?)(?=\s*(?:[A-Z][a-z]+\s*-|$))")
_COUNT = re.compile(r"\s*([A-Z][a-z]+)\s*-\s*([A-Z]\w*)\s*:\s*(\d{1,5})")
_NEXT_PROGRAM = re.compile(r"[A-Z][A-Z-]*(?:\(\d+(?:\.\d+)?\))?(?=[A-Z][a-z]+\s*-\s*[A-Z]\w*\s*:)")


@dataclass(frozen=True)
class Address:
    street: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""


@dataclass
class Program:
    """One program code of a bed string and its counts by group ("Adult - M")."""

    code: str
    counts: list[tuple[str, int]] = field(default_factory=list)

    @property
    def family(self) -> str:
        return re.sub(r"\s*\(.*\)$", "", self.code)

    @property
    def note(self) -> str:
        return " ".join([self.code, ", ".join(f"{group}: {n}" for group, n in self.counts)]).strip()


def parse(documents: Sequence[Document], mapping: RecordMapping) -> list[dict[str, Any]]:
    """Every document is one scrape of the tool (CSV)."""
    read = RecordMapping(fields={c: c for c in COLUMNS}, options=mapping.options)
    rows = [row for doc in documents for row in parse_one(doc.body, read)]
    named = secondary_names(rows)
    return [record(row, named, mapping.constants) for row in rows]


def record(
    row: Mapping[str, Any], named: Mapping[tuple[str, ...], str], constants: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One row (column -> text) to a raw record; ``named`` from ``secondary_names``."""
    col = {c: _clean(row.get(c)) for c in COLUMNS}
    secondary = shown = col["agency_name_secondary"]
    if secondary == SECONDARY_LABEL:
        secondary = named.get(_twin(row), SECONDARY_LABEL)
        shown = "" if secondary == SECONDARY_LABEL else secondary
    address = parse_address(col["agency_address"])
    programs, unparsed = parse_beds(col["available_beds"])
    phrases = population_phrases(col["populations_served"])
    raw: dict[str, Any] = dict(constants or {})
    values: dict[str, Any] = {
        "source_id": source_id(
            col["agency_name"], secondary, col["agency_address"], address.street, col["agency_phone"]
        ),
        "name": col["agency_name"],
        "alternate_name": shown,
        "address_1": address.street,
        "city": address.city,
        "state": address.state,
        "postal_code": address.postal_code,
        "phone": col["agency_phone"],
        "website": col["agency_website"],
        "levels_of_care": [p.code for p in programs] + [p for p in phrases if p in SERVICES],
        "populations": [p for p in phrases if p not in SERVICES],
        "languages": languages(col["languages_spoken"]),
        "reported_at": col["last_updated"],
        "availability": availability(programs, unparsed),
    }
    raw.update((k, v) for k, v in values.items() if v not in ("", []))
    return raw


def source_id(name: str, secondary: str, address_text: str, street: str, phone: str) -> str:
    """Agency, secondary name and address text; for a confidential site (no street) also the phone's digits,
    which tell an agency's houses in one ZIP apart and are the same in both views of one house."""
    parts = [name, secondary, address_text]
    if not street:
        parts.append(re.sub(r"\D", "", phone))
    return stable_id(parts)


def secondary_names(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, ...], str]:
    """For rows of the list view: the secondary name of the one detail-view row that is their twin."""
    seen: dict[tuple[str, ...], set[str]] = {}
    for row in rows:
        name = _clean(row.get("agency_name_secondary"))
        if name and name != SECONDARY_LABEL:
            seen.setdefault(_twin(row), set()).add(name)
    return {key: next(iter(names)) for key, names in seen.items() if len(names) == 1}


def parse_address(text: str) -> Address:
    """'426 San Pedro Street,Los Angeles, CA\\xa090013' -> street, city, state, ZIP; the street is empty
    for a confidential site (',Los Angeles, CA 90013'). Unreadable text is all street (no state, no ZIP)."""
    text = _clean(text)
    m = _ADDRESS.match(text)
    if not m:
        return Address(street=text)
    return Address(_clean(m["street"]).strip(" ,"), m["city"], m["state"].upper(), m["zip"])


def parse_beds(text: str) -> tuple[list[Program], list[str]]:
    """'RS(3.1)Adult - M: 6Adult - F: 0R-WMAdult - M: 0' -> the programs with their counts, and the text of
    each program that does not parse (left out whole: a partial count would be wrong); reading resumes at
    the next program."""
    text = _clean(text)
    programs: list[Program] = []
    unparsed: list[str] = []
    pos = start = 0
    reading = False  # counts now belong to programs[-1]
    while pos < len(text):
        if reading and (m := _COUNT.match(text, pos)):
            programs[-1].counts.append((f"{m[1]} - {m[2]}", int(m[3])))
        elif m := _CODE.match(text, pos):
            programs.append(Program(m[1].replace(" ", "")))
            start, reading = m.start(1), True
        else:
            if reading:
                programs.pop()
            else:
                start = pos
            after = _NEXT_PROGRAM.search(text, pos + 1)
            pos, reading = (after.start() if after else len(text)), False
            unparsed.append(text[start:pos].strip())
            continue
        pos = m.end()
    return programs, unparsed


def availability(programs: Sequence[Program], unparsed: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One entry per program family: per group the largest count among its sub-levels, groups summed.
    Unparsed text becomes an entry whose count normalization rejects, naming the text."""
    families: dict[str, list[Program]] = {}
    for p in programs:
        families.setdefault(p.family, []).append(p)
    entries: list[dict[str, Any]] = []
    for family, members in families.items():
        largest: dict[str, int] = {}
        for p in members:
            for group, n in p.counts:
                largest[group] = max(largest.get(group, 0), n)
        entry: dict[str, Any] = {
            "level_of_care": members[0].code if len(members) == 1 else family,
            "notes": "; ".join(p.note for p in members),
        }
        if largest:
            entry["beds_available"] = sum(largest.values())
        entries.append(entry)
    for text in unparsed:
        code = _CODE.match(text)
        entries.append({"level_of_care": code[1] if code else text, "beds_available": text})
    return entries


def population_phrases(text: str) -> list[str]:
    """'Adult; M; A; T; Co-; Occurring; ...' -> ['Adult', 'MAT', 'Co-Occurring Mental Health Capabilities']."""
    tokens = [t for t in (_clean(t) for t in text.split(";")) if t]
    out: list[str] = []
    i = 0
    while i < len(tokens):
        words = max((p for p in PHRASES if tuple(tokens[i : i + len(p)]) == p), key=len, default=(tokens[i],))
        out.append(PHRASES.get(words, tokens[i]))
        i += len(words)
    return out


def languages(text: str) -> list[str]:
    """'ArmenianEnglishSpanish' or 'Armenian, English, Spanish' -> the names; 'American Sign LanguageEnglish'
    -> 'American Sign Language', 'English' (a name never ends in a lower-case letter followed by a capital)."""
    return [n for part in re.split(r"\s*[,;]\s*", _clean(text)) for n in re.split(r"(?<=[a-z])(?=[A-Z])", part) if n]


def _twin(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(_clean(row.get(c)) for c in _TWIN)


def _clean(value: object) -> str:
    return " ".join(str(value or "").split())
