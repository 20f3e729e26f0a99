"""Are two feed records the same physical facility? A pure, explainable matcher.

A feed record (``samhsa:ab12``, ``la-county:cd34``) is one partner's word about a place; a facility is
the place. ``compare`` looks at two records' ``Identity`` (what matching needs of a ``Center``) and says
``same``, ``uncertain`` or ``different``, with the rule that decided and the scores it looked at, so an
operator can always see why two records were (not) linked. ``best_match`` picks a record's match among
the candidates the store found near it (GEO index) or through a shared identifier.

The rules, in order (the first that applies decides; two records of one feed are judged alike, as a
partner export may have one row per service of one place):

1. an identifier of one system shared (``samhsa=123``): ``same`` (``uncertain`` when both are placed
   precisely more than ``ADDRESS_FAR_M`` apart at different addresses: an organization-wide number);
   both carry the system with different values: ``different`` ("different identifiers");
2. placed precisely more than ``FAR_M`` apart and not at one address: ``different`` ("far apart": the
   same-name branches of an agency); in different states: ``different``;
3. one standardized street line (USPS Pub. 28 via ``usaddress-scourgify``) in one ZIP or city:
   different suites are two programs in one building (``different``; ``uncertain`` when the names are
   alike); one agency name with unlike program names is two programs (``different``); alike names are
   ``same`` ("address+name"); a name that only contains the other (a program or site name on one side
   only) or is merely similar is ``uncertain``; unlike names are ``different``;
4. two different street lines: ``different`` ("different addresses"; ``uncertain`` for alike names
   placed within ``SAME_DISTANCE_M``: a corner building, a mistyped number);
5. a street line missing on one side or both (a confidential house, a feed with a point only): alike
   names placed precisely within ``SAME_DISTANCE_M``: ``same`` ("name+distance"); with no street on
   either side, alike names (both with or both without an alternate name) in one ZIP and city sharing a
   phone number: ``same`` ("name+phone"); alike names in one ZIP or close: ``uncertain``; otherwise
   ``different``.

Names are compared on ``name_key`` (lower case, punctuation, legal and filler words off, common
abbreviations spelled out) with rapidfuzz, word by word (see ``Names``): names are "alike" when every
word of one has its counterpart (maybe with a typo) in the other and the whole is at least ``NAME_SAME``
alike. A program word on one side only ("OP" vs "OP R") is what tells two programs in one building
apart, so it is never averaged away.

``best_match`` is where ambiguity shows: a record ``same`` as two candidates on equally strong evidence
that are not the same place as each other (a record with no street beside two same-name houses) is
``uncertain`` ("ambiguous"). No I/O, no clock.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import fuzz
from scourgify import normalize_address_record
from scourgify.address_constants import (
    DIRECTIONAL_REPLACEMENTS,
    OCCUPANCY_TYPE_ABBREVIATIONS,
    STREET_TYPE_ABBREVIATIONS,
)

from aggregator.geography import haversine_m, same_city
from aggregator.model import Center, GeoPrecision

# --------------------------------------------------------------------------------------------------
# Thresholds, chosen on the evaluation set (tests/unit/test_match_evaluation.py, bench/matching.py)

#: records placed precisely (feed coordinates, rooftop or street geocode) this close, with alike names,
#: are one place when a street line is missing; also the reach within which unlike street lines of alike
#: names are left to an operator. Variants of one place lie within ~100 m; 150 m leaves room for a
#: geocode at the parcel's edge.
SAME_DISTANCE_M = 150.0
#: farther than this (both placed precisely) and not at one address: different places ("far apart")
FAR_M = 150.0
#: one standardized address but this far apart (both placed precisely): left to an operator
ADDRESS_FAR_M = 2_000.0
#: records placed at a ZIP or city centroid this far apart are in different places whatever they say
APPROXIMATE_FAR_M = 25_000.0
#: name similarity (0-100) that makes alike names "the same name"
NAME_SAME = 85.0
#: below this, names are unlike: at one address, two facilities
NAME_UNCERTAIN = 70.0
#: two alternate (program, site, DBA) names under one agency name below this are two programs
PROGRAM_DIFFERENT = 60.0
#: two words of 4 letters or more this alike (rapidfuzz ratio) are one word with a typo
WORD_ALIKE = 75.0
#: street lines this alike (0-1) with the same house number are one street line written differently
ADDRESS_SAME = 0.9

Decision = str  # "same" | "uncertain" | "different"
SAME, UNCERTAIN, DIFFERENT = "same", "uncertain", "different"
_RANK = {SAME: 2, UNCERTAIN: 1, DIFFERENT: 0}

#: identifier systems that are one feed's own numbering, not shared across feeds (normalize's default)
LOCAL_SYSTEMS = frozenset({"partner"})


# --------------------------------------------------------------------------------------------------
# Identity: what matching needs of one record


@dataclass(frozen=True)
class Identity:
    """What matching needs of one record (``identity_of``), standardized once."""

    record_id: str
    feed_id: str
    name: str
    alternate_name: str
    #: standardized street line (USPS Pub. 28), "" when unknown
    street: str
    #: standardized suite or unit ("STE 200"), "" when none
    unit: str
    city: str
    state: str
    postal_code: str
    latitude: float | None
    longitude: float | None
    #: (system, value), the system lower-cased: ("samhsa", "123"), ("npi", "1234567890")
    identifiers: frozenset[tuple[str, str]]
    #: ``name_key(name)``
    name_key: str
    #: the coordinates are a ZIP or city centroid (geo_precision postal_code), not the place itself
    approximate: bool = False
    #: E.164 numbers (any role)
    phones: frozenset[str] = field(default_factory=frozenset)

    @property
    def located(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    @property
    def precise(self) -> bool:
        return self.located and not self.approximate


def identity_of(center: Center) -> Identity:
    a = center.address
    street, unit = standard_street(a.address_1, a.address_2, a.city, a.state, a.postal_code)
    return Identity(
        record_id=center.id,
        feed_id=center.feed_id,
        name=center.name,
        alternate_name=center.alternate_name,
        street=street,
        unit=unit,
        city=a.city,
        state=a.state,
        postal_code=a.postal_code,
        latitude=center.latitude,
        longitude=center.longitude,
        identifiers=frozenset((x.system.strip().lower(), x.value.strip()) for x in center.external_ids),
        name_key=name_key(center.name),
        approximate=center.geo_precision is GeoPrecision.POSTAL_CODE,
        phones=frozenset(p.number for p in center.phones),
    )


# --------------------------------------------------------------------------------------------------
# Addresses

#: words that start a unit designation in a street line (after Pub. 28 abbreviation)
_UNIT_WORDS = (
    frozenset(OCCUPANCY_TYPE_ABBREVIATIONS.values())
    | frozenset(OCCUPANCY_TYPE_ABBREVIATIONS)
    | {
        "#",
        "SUITE",
        "SUITES",
        "STES",
        "NO",
        "NUMBER",
        "UNITS",
        "ROOMS",
        "BLDGS",
        "OFFICE",
        "OFC",
        "FLR",
        "AND",
    }
)
_PLACEHOLDER = re.compile(r"^[\W_]*$")
_DIRECTIONS = frozenset(DIRECTIONAL_REPLACEMENTS.values())


@lru_cache(maxsize=16384)
def standard_street(address_1: str, address_2: str, city: str, state: str, postal_code: str) -> tuple[str, str]:
    """The street line and the unit, standardized (USPS Pub. 28, upper case): ``("1200 N WALNUT ST",
    "STE 200")``. A line ``usaddress-scourgify`` cannot read gets a light normalization (upper case,
    punctuation off, street types, directionals and unit words abbreviated), never an error."""
    line1 = "" if _PLACEHOLDER.match(address_1 or "") else " ".join(address_1.split())
    line2 = "" if _PLACEHOLDER.match(address_2 or "") else " ".join(address_2.split())
    if not line1:
        return "", _unit(" ".join(re.sub(r"[^\w#\- ]", " ", line2.upper()).split()))  # a unit alone locates nothing
    try:
        out = normalize_address_record(
            {
                "address_line_1": line1,
                "address_line_2": line2 or None,
                "city": city or None,
                "state": state or None,
                "postal_code": postal_code or None,
            },
            strict=False,
        )
        street, unit = (out.get("address_line_1") or "").strip(), (out.get("address_line_2") or "").strip()
    except Exception:  # scourgify and usaddress raise several untyped errors; any means "read it lightly"
        street, unit = _light(f"{line1} {line2}".strip())
    if not street:
        return _light(f"{line1} {line2}".strip())
    return _trailing_unit(street, _unit(unit))


#: street types after which a bare number is a suite ("3250 WILSHIRE BLVD 300"), not a route ("US HWY 431")
_TYPES_BEFORE_UNIT = frozenset({"ST", "AVE", "BLVD", "DR", "LN", "CT", "PL", "WAY", "PKWY", "CIR", "TER", "SQ", "TRL"})


def _trailing_unit(street: str, unit: str) -> tuple[str, str]:
    """Bare numbers after the street type are the unit: '3217 N EASTERN AVE 102 103' -> ('3217 N EASTERN
    AVE', '102 103'), as a feed that writes 'Ste 102 & 103' has it."""
    words = street.split()
    for i in range(len(words) - 1, 0, -1):
        if words[i] in _TYPES_BEFORE_UNIT or (words[i] in _DIRECTIONS and words[i - 1] in _TYPES_BEFORE_UNIT):
            tail = words[i + 1 :]
            if tail and all(any(ch.isdigit() for ch in w) for w in tail):
                return " ".join(words[: i + 1]), " ".join(x for x in (" ".join(tail), unit) if x)
            break
    return street, unit


def _light(text: str) -> tuple[str, str]:
    """Upper case, punctuation off, Pub. 28 abbreviations; the street split from its unit at the first
    unit word after the house number and street name."""
    words = re.sub(r"[^\w#\- ]", " ", text.upper().replace("#", " # ")).split()
    out: list[str] = []
    for i, w in enumerate(words):
        if w in DIRECTIONAL_REPLACEMENTS and not (i + 1 < len(words) and words[i + 1] in STREET_TYPE_ABBREVIATIONS):
            w = DIRECTIONAL_REPLACEMENTS[w]  # not "EAST" of "365 EAST ST": that is the street's name
        elif w in STREET_TYPE_ABBREVIATIONS and out:
            w = STREET_TYPE_ABBREVIATIONS[w]
        elif w in OCCUPANCY_TYPE_ABBREVIATIONS:
            w = OCCUPANCY_TYPE_ABBREVIATIONS[w]
        out.append(w)
    cut = next((i for i, w in enumerate(out) if i >= 2 and w in _UNIT_WORDS), len(out))
    return " ".join(out[:cut]), _unit(" ".join(out[cut:]))


def _unit(text: str) -> str:
    """A unit as Pub. 28 writes it, "#" spelled as the word it stands for: '# 200' and 'STE 200' share
    the identifier 200 (compared by ``unit_ids``)."""
    return " ".join(text.upper().replace("#", " # ").split())


def unit_ids(unit: str) -> frozenset[str]:
    """The identifiers of a unit: 'BLDG 9 STE 23' -> {'9', '23'}; 'STE A-200' -> {'A200'}."""
    out = set()
    for w in re.split(r"[\s,&/]+", unit.upper()):
        w = w.strip("#.-")
        if w and w not in _UNIT_WORDS:
            out.add(w.replace("-", ""))
    return frozenset(out)


#: directionals and street types: a street line's words that must agree, not merely look alike
_STREET_TYPES = frozenset(STREET_TYPE_ABBREVIATIONS.values())
_MARKERS = frozenset(DIRECTIONAL_REPLACEMENTS.values()) | _STREET_TYPES


def _house_number(street: str) -> str:
    """The first word when it holds a digit, hyphens off: '15-2714' (Hawaii), '728A' for '728-A'."""
    first = street.split(" ", 1)[0]
    return first.replace("-", "") if any(ch.isdigit() for ch in first) else ""


# --------------------------------------------------------------------------------------------------
# Names

#: legal and filler words that say nothing about which place a name is
_DROP = frozenset(
    {
        "inc",
        "incorporated",
        "llc",
        "llp",
        "lp",
        "ltd",
        "pc",
        "pllc",
        "pa",
        "corp",
        "corporation",
        "co",
        "company",
        "the",
        "of",
        "and",
        "a",
        "an",
        "at",
        "for",
        "dba",
        "aka",
    }
)
#: abbreviations spelled out (SAMHSA's list abbreviates freely: "Servs", "Cnty", "Resid Fac")
_SPELL = {
    "ctr": "center",
    "cntr": "center",
    "cent": "center",
    "centre": "center",
    "ctrs": "centers",
    "svc": "services",
    "svcs": "services",
    "serv": "services",
    "servs": "services",
    "srvs": "services",
    "service": "services",
    "st": "saint",
    "ste": "saint",
    "mt": "mount",
    "ft": "fort",
    "hosp": "hospital",
    "assn": "association",
    "assoc": "association",
    "dept": "department",
    "cnty": "county",
    "prog": "program",
    "progs": "programs",
    "pgm": "program",
    "trt": "treatment",
    "trtmt": "treatment",
    "tx": "treatment",
    "rehab": "rehabilitation",
    "behav": "behavioral",
    "bhvl": "behavioral",
    "hlth": "health",
    "comm": "community",
    "natl": "national",
    "intl": "international",
    "univ": "university",
    "med": "medical",
    "fac": "facility",
    "resid": "residential",
    "clin": "clinic",
    "couns": "counseling",
    "fam": "family",
    "mgmt": "management",
    "dev": "development",
    "sys": "systems",
    "alc": "alcohol",
    "subst": "substance",
    "recov": "recovery",
    "ofc": "office",
}
#: long legal words, dropped also when mistyped ('Corporatoin')
_LEGAL_LONG = {"corporation", "incorporated", "company"}
_ACRONYM = re.compile(r"\b(?:[a-z]\.){2,}")
_WORD = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=65536)
def name_key(name: str) -> str:
    """'St. Mary's Behavioral Health Ctr, Inc.' -> 'saint marys behavioral health center': lower case,
    accents and punctuation off ('&' is 'and'), dotted acronyms joined (L.L.C.), legal and filler words
    off (also a long one mistyped), common abbreviations spelled out. A name made only of such words keeps
    them."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = text.replace("&", " and ").replace("'", "").replace("\u2019", "")
    text = _ACRONYM.sub(lambda m: m.group(0).replace(".", ""), text)
    words = [_SPELL.get(w, w) for w in _WORD.findall(text)]
    kept = [w for w in words if w not in _DROP and not (len(w) >= 6 and _has_alike(w, _LEGAL_LONG))]
    return " ".join(kept or words)


def _parts(ident: Identity) -> tuple[str, str]:
    """(name key, alternate name key or "")."""
    key = ident.name_key or name_key(ident.name)
    alt = name_key(ident.alternate_name) if ident.alternate_name else ""
    return key, ("" if alt == key else alt)


@dataclass(frozen=True)
class Names:
    """How alike two records' names are.

    Names are aligned in the ways feeds write them: name and alternate name together on both sides;
    name with name and alternate with alternate; crossed (one feed's name is the other's alternate). An
    alignment accounts for every word when each word has a counterpart on the other side: the same
    word, or one of 4 letters or more, of a length within one, at least ``WORD_ALIKE`` alike (a typo; not
    'mens' for 'womens'). A record's own city and initials need no counterpart ('Tarzana Treatment
    Centers / Long Beach' in Long Beach, '(NATA)'). A program or site word on one side only ('OP' vs
    'OP R', 'Center' vs 'Center 2', 'Adult' vs 'Adolescent') is not accounted for. A name matching only
    the other's alternate (a DBA) is containment, not alikeness: SAMHSA lists a practice and its owner's
    DBA at one address as two facilities.

    ``strict``: the best ``token_sort_ratio`` (or plain ``ratio``, if higher) of an alignment, preferring
    those that account for every word; ``words``: how many words that alignment leaves unaccounted for;
    ``contained``: the best ``token_set_ratio`` of any two forms (100 when one's words are all in the
    other's); ``alternate``: how alike the two alternate names are, when both have one; ``programs``: one
    agency name (every word accounted for) with alternate names less than ``PROGRAM_DIFFERENT`` alike.
    """

    strict: float
    words: int
    contained: float
    alternate: float | None
    programs: bool

    @property
    def alike(self) -> bool:
        """One name, written two ways."""
        return self.words == 0 and self.strict >= NAME_SAME and not self.programs


def _has_alike(word: str, words: set[str]) -> bool:
    """A word of ``words`` that is ``word`` with a typo: both 4 letters or more, lengths within one
    ('mens' is not 'womens'), at least ``WORD_ALIKE`` alike."""
    n = len(word)
    if n < 4:
        return False
    return any(len(v) >= 4 and abs(len(v) - n) <= 1 and fuzz.ratio(word, v, score_cutoff=WORD_ALIKE) for v in words)


def unaccounted(x: str, y: str) -> int:
    """Words of ``x`` with no counterpart in ``y`` and of ``y`` with none in ``x``."""
    if x == y:
        return 0
    wx, wy = x.split(), y.split()
    sx, sy = set(wx), set(wy)
    return sum(1 for w in wx if w not in sy and not _has_alike(w, sy)) + sum(
        1 for w in wy if w not in sx and not _has_alike(w, sx)
    )


def _alike(x: str, y: str) -> float:
    """``token_sort_ratio``, or ``ratio`` where that is higher (a typo in a first letter moves a word
    when words are sorted)."""
    return max(fuzz.token_sort_ratio(x, y), fuzz.ratio(x, y))


@lru_cache(maxsize=65536)
def _own_words(key: str, alt: str, city: str) -> frozenset[str]:
    """Words a record's name may add without naming another place: its city's ('Tarzana Treatment
    Centers / Long Beach' in Long Beach) and its own initials ('(NATA)' of Narcotic Addiction Treatment
    Agency)."""
    own = set(name_key(city).split()) if city else set()
    for words in (key.split(), alt.split()):
        if len(words) >= 2:
            own.add("".join(w[0] for w in words))
    return frozenset(own)


def _aligned(x: str, y: str, own_x: frozenset[str], own_y: frozenset[str]) -> tuple[int, float]:
    """(words unaccounted for, how alike) of two name forms, each side's own words it alone has set
    aside."""
    wx, wy = x.split(), y.split()
    sx, sy = set(wx), set(wy)
    x = " ".join(w for w in wx if w not in own_x or w in sy or _has_alike(w, sy))
    y = " ".join(w for w in wy if w not in own_y or w in sx or _has_alike(w, sx))
    if not x or not y:
        return len(x.split()) + len(y.split()) or 1, 0.0
    return unaccounted(x, y), _alike(x, y)


def names(a: Identity, b: Identity) -> Names:
    (na, aa), (nb, ab) = _parts(a), _parts(b)
    oa, ob = _own_words(na, aa, a.city), _own_words(nb, ab, b.city)
    fa, fb = f"{na} {aa}".strip(), f"{nb} {ab}".strip()
    aligned = [_aligned(fa, fb, oa, ob)]
    alternate: float | None = None
    programs = False
    if aa and ab:
        alternate = _alike(aa, ab)
        (agency, agency_alike), (alts, _) = _aligned(na, nb, oa, ob), _aligned(aa, ab, oa, ob)
        aligned.append((agency + alts, min(agency_alike, alternate)))
        (u1, s1), (u2, s2) = _aligned(na, ab, oa, ob), _aligned(aa, nb, oa, ob)
        aligned.append((u1 + u2, min(s1, s2)))
        programs = agency == 0 and alternate < PROGRAM_DIFFERENT
    words, strict = min(aligned, key=lambda ws: (ws[0] > 0, -ws[1]))
    forms_a, forms_b = (na, aa, fa) if aa else (na,), (nb, ab, fb) if ab else (nb,)
    contained = max(fuzz.token_set_ratio(x, y) for x in forms_a for y in forms_b)
    return Names(
        round(strict, 1), words, round(contained, 1), None if alternate is None else round(alternate, 1), programs
    )


# --------------------------------------------------------------------------------------------------
# The verdict


@dataclass(frozen=True)
class Verdict:
    #: "same" | "uncertain" | "different"
    decision: Decision
    #: the rule that decided, e.g. "identifier samhsa=123", "address+name", "far apart"
    rule: str
    #: what the rule looked at. ``name`` (0-100: rapidfuzz token_sort_ratio of the best alignment of
    #: name and alternate name keys), ``name_set`` (0-100: best token_set_ratio of any name forms, 100
    #: when one name contains the other), ``name_words`` (words unaccounted for), ``alternate`` (0-100,
    #: when both have an alternate name), ``distance_m``, ``address`` (1.0 one street line, 0.95 one
    #: street with more words, 0 another house number, else 0-1 alike), ``unit`` (1 same, 0.5
    #: overlapping, 0 different), ``phone`` (1 one shared, 0 none), ``identifier`` (1 shared, 0 in
    #: conflict). Names are not scored for records far apart or at different addresses.
    scores: dict[str, float]


def _distance_m(a: Identity, b: Identity) -> float | None:
    if a.latitude is None or a.longitude is None or b.latitude is None or b.longitude is None:
        return None
    return haversine_m(a.latitude, a.longitude, b.latitude, b.longitude)


def _identifiers(a: Identity, b: Identity) -> tuple[tuple[str, str] | None, str | None]:
    """(a shared identifier, a system both carry with no value in common): the first of each, sorted."""
    shared = sorted((a.identifiers & b.identifiers) - {(s, v) for s, v in a.identifiers if s in LOCAL_SYSTEMS})
    systems_a = {s for s, _ in a.identifiers if s not in LOCAL_SYSTEMS}
    systems_b = {s for s, _ in b.identifiers if s not in LOCAL_SYSTEMS}
    conflict = sorted(s for s in systems_a & systems_b if not any(x[0] == s for x in shared))
    return (shared[0] if shared else None), (conflict[0] if conflict else None)


def _same_zip(a: Identity, b: Identity) -> bool:
    """The same ZIP; or, where one has none, the same city."""
    if a.state and b.state and a.state != b.state:
        return False
    if a.postal_code and b.postal_code:
        return a.postal_code == b.postal_code
    return same_city(a.city, b.city)


def _same_zip_or_city(a: Identity, b: Identity) -> bool:
    """The same ZIP or the same city (one street line in one city is one place, whatever ZIP a feed
    put: a ZIP is sometimes the nearest to the feed's coordinates, not the place's own)."""
    if a.state and b.state and a.state != b.state:
        return False
    return bool(a.postal_code and a.postal_code == b.postal_code) or same_city(a.city, b.city)


def _canonical(street: str) -> list[str]:
    """A street line's words with every directional and street type abbreviated, wherever it stands
    ('365 EAST ST' and '365 E ST', '7428 PARK PLACE BLVD' and '7428 PARK PL BLVD' read alike)."""
    return [DIRECTIONAL_REPLACEMENTS.get(w) or STREET_TYPE_ABBREVIATIONS.get(w) or w for w in street.split()]


def address_score(a: str, b: str) -> float:
    """How alike two standardized street lines are: 1.0 one line; 0.95 one street (number, name, type)
    followed by other words ('4500 PARSONS BLVD 1982 BUILDING', '801 W GIRARD AVE TOWER'); 0.0 for
    another house number, none, or unlike directionals or street types (N vs S WALNUT ST); else how
    alike the street names are."""
    if a == b:
        return 1.0
    wa, wb = _canonical(a), _canonical(b)
    if wa == wb:
        return 1.0
    number = _house_number(a)
    if not number or number != _house_number(b):
        return 0.0
    ma, mb = {w for w in wa[1:] if w in _MARKERS}, {w for w in wb[1:] if w in _MARKERS}
    if not (ma <= mb or mb <= ma):
        return 0.0
    common = next((i for i, (x, y) in enumerate(zip(wa, wb, strict=False)) if x != y), min(len(wa), len(wb)))
    if any(w in _STREET_TYPES for w in wa[2:common]):
        return 0.95
    na, nb = " ".join(w for w in wa[1:] if w not in _MARKERS), " ".join(w for w in wb[1:] if w not in _MARKERS)
    return round(fuzz.ratio(na, nb) / 100.0, 3) if na and nb else 0.0


def place_scores(a: Identity, b: Identity) -> dict[str, float]:
    """Where two records are, compared (cheap; symmetric): ``distance_m``, ``address``, ``unit``,
    ``phone`` where both sides have what each needs."""
    s: dict[str, float] = {}
    d = _distance_m(a, b)
    if d is not None:
        s["distance_m"] = round(d, 1)
    if a.street and b.street:
        s["address"] = address_score(a.street, b.street)
    if a.unit and b.unit:
        ua, ub = unit_ids(a.unit), unit_ids(b.unit)
        s["unit"] = 1.0 if ua == ub else 0.5 if ua & ub else 0.0
    if a.phones and b.phones:
        s["phone"] = 1.0 if a.phones & b.phones else 0.0
    return s


def name_scores(n: Names) -> dict[str, float]:
    s = {"name": n.strict, "name_set": n.contained, "name_words": float(n.words)}
    if n.alternate is not None:
        s["alternate"] = n.alternate
    return s


def compare(a: Identity, b: Identity) -> Verdict:
    """Whether ``a`` and ``b`` are one physical facility, the rule that says so, and the scores it
    looked at (names are compared only where a rule needs them: not for records far apart)."""
    if a.record_id == b.record_id:
        return Verdict(SAME, "same record", {})
    s = place_scores(a, b)
    d = s.get("distance_m")
    one_address = s.get("address", 0.0) >= ADDRESS_SAME and _same_zip_or_city(a, b)
    both_precise = a.precise and b.precise
    close = both_precise and d is not None and d <= SAME_DISTANCE_M

    shared, conflict = _identifiers(a, b)
    if shared is not None:
        s.update(name_scores(names(a, b)), identifier=1.0)
        rule = f"identifier {shared[0]}={shared[1]}"
        if both_precise and d is not None and d > ADDRESS_FAR_M and not one_address:
            return Verdict(UNCERTAIN, f"{rule} but {d / 1000:.1f} km apart", s)
        return Verdict(SAME, rule, s)
    if conflict is not None:
        s["identifier"] = 0.0
        return Verdict(DIFFERENT, f"different identifiers ({conflict})", s)
    if d is not None and not one_address and ((both_precise and d > FAR_M) or d > APPROXIMATE_FAR_M):
        return Verdict(DIFFERENT, "far apart", s)
    if a.state and b.state and a.state != b.state:
        return Verdict(DIFFERENT, "different states", s)
    if a.street and b.street and not one_address and not close:
        return Verdict(DIFFERENT, "different addresses", s)

    n = names(a, b)
    s.update(name_scores(n))
    if one_address:
        if both_precise and d is not None and d > ADDRESS_FAR_M:
            return Verdict(UNCERTAIN, "same address, far apart", s)
        if s.get("unit") == 0.0:
            return Verdict(UNCERTAIN if n.alike else DIFFERENT, "different units", s)
        if n.programs:
            return Verdict(DIFFERENT, "different programs", s)
        if n.alike:
            return Verdict(SAME, "address+name", s)
        if n.contained >= NAME_SAME:
            return Verdict(UNCERTAIN, "address, one name contains the other", s)
        if n.strict >= NAME_UNCERTAIN:
            return Verdict(UNCERTAIN, "address, names differ", s)
        return Verdict(DIFFERENT, "different names at one address", s)
    if a.street and b.street:  # two street lines, close by
        return Verdict(UNCERTAIN if n.alike else DIFFERENT, "different addresses", s)

    # a street line missing on one side or both: a confidential site, a partial address
    if n.programs or (n.strict < NAME_UNCERTAIN and n.contained < NAME_SAME):
        return Verdict(DIFFERENT, "different names", s)
    if n.alike and close:
        return Verdict(SAME, "name+distance", s)
    if (
        n.alike
        and s.get("phone") == 1.0
        and not a.street
        and not b.street
        and bool(a.alternate_name) == bool(b.alternate_name)
        and a.postal_code
        and a.postal_code == b.postal_code
        and same_city(a.city, b.city)
    ):
        return Verdict(SAME, "name+phone", s)
    if not close and not _same_zip(a, b):
        return Verdict(DIFFERENT, "different places", s)
    return Verdict(UNCERTAIN, "names alike, no address", s)


#: how strong the evidence of a "same" verdict is: an identifier, an address, a name and a place
_IDENTIFIER, _ADDRESS, _NEARBY = 3, 2, 1


def _evidence(v: Verdict) -> int:
    if v.scores.get("identifier") == 1.0:
        return _IDENTIFIER
    return _ADDRESS if v.scores.get("address", 0.0) >= ADDRESS_SAME else _NEARBY


def _rank(v: Verdict) -> tuple[int, int, float, float, float]:
    s = v.scores
    return (_RANK[v.decision], _evidence(v), s.get("name", 0.0), s.get("address", 0.0), -s.get("distance_m", math.inf))


def best_match(record: Identity, candidates: Sequence[Identity]) -> tuple[Identity | None, Verdict]:
    """The candidate most surely the same facility as ``record``: the best ``same`` (identifier, then
    address, then name and nearness), else the best ``uncertain``; ``(None, different)`` when there is
    none.

    When ``record`` is ``same`` as two candidates on evidence as strong that are not the same place as
    each other (a record with no street, near two houses of one name), it cannot be both: the answer is
    ``uncertain`` ("ambiguous"). Pass every candidate at once (not one facility's records at a time) for
    this to see them.
    """
    judged = sorted(
        ((compare(record, c), c) for c in candidates if c.record_id != record.record_id),
        key=lambda vc: (_rank(vc[0]), vc[1].record_id),
        reverse=True,
    )
    judged = [(v, c) for v, c in judged if v.decision != DIFFERENT]
    if not judged:
        return None, Verdict(DIFFERENT, "no candidate alike", {})
    top, found = judged[0]
    if top.decision == SAME:
        rival = next(
            (
                c
                for v, c in judged[1:]
                if v.decision == SAME and _evidence(v) >= _evidence(top) and compare(found, c).decision != SAME
            ),
            None,
        )
        if rival is not None:
            return found, Verdict(UNCERTAIN, f"ambiguous: {top.rule}, also {rival.record_id}", top.scores)
    return found, top
