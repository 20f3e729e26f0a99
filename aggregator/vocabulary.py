"""Value maps from the partner vocabularies we meet onto the canonical ones in ``aggregator.model``.

Sources: SAMHSA FindTreatment.gov filter codes (``DT``, ``RES``, ``MD`` ...), ASAM levels (``3.5``,
``3.2-WM`` ...), Los Angeles County's bed-tool codes (``RS(3.1)``, ``R-WM``, ``RBH`` ...), and common
free text ("Withdrawal Management", "Medi-Cal", "Sliding fee"). A feed's own ``value_map`` entries
(from the partner registry) are consulted first, so onboarding a partner's codes needs no code.

Each ``map_*`` function returns a ``Mapped``: the canonical values found and the terms that meant
nothing to us (reported, never silently dropped). Pure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from aggregator.model import (
    Accepting,
    AvailabilityStatus,
    LevelOfCare,
    Payment,
    Population,
)

E = TypeVar("E", bound=StrEnum)

L = LevelOfCare
P = Payment
Pop = Population


@dataclass(frozen=True)
class Mapped(Generic[E]):
    values: frozenset[E]
    unmapped: tuple[str, ...] = ()


_SPACES = re.compile(r"[\s_]+")


@functools.lru_cache(maxsize=20_000)
def _key(term: str) -> str:
    """Case- and punctuation-insensitive key: 'RS (3.1)' and 'rs(3.1)' meet."""
    return _SPACES.sub(" ", term.strip().lower()).replace(" (", "(").replace("( ", "(")


# --------------------------------------------------------------------------------------------------
# Levels of care

LEVEL_CODES: dict[str, tuple[LevelOfCare, ...]] = {
    # SAMHSA FindTreatment.gov care type / setting and MAT codes
    "dt": (L.DETOX,),
    "res": (L.RESIDENTIAL,),
    "hi": (L.INPATIENT,),
    "op": (L.OUTPATIENT,),
    "otp": (L.OTP, L.MAT),
    "mat": (L.MAT,),
    "meth": (L.OTP, L.MAT),
    "bu": (L.MAT,),
    "nu": (L.MAT,),
    "moa": (L.MAT,),
    "hh": (L.RECOVERY_HOUSING,),
    "tele": (L.TELEHEALTH,),
    "ct": (L.TELEHEALTH,),
    "wi": (L.CRISIS,),
    "php": (L.PHP,),
    "iop": (L.IOP,),
    # ASAM levels of care
    "1": (L.OUTPATIENT,),
    "1.0": (L.OUTPATIENT,),
    "2.1": (L.IOP,),
    "2.5": (L.PHP,),
    "3.1": (L.RESIDENTIAL,),
    "3.3": (L.RESIDENTIAL,),
    "3.5": (L.RESIDENTIAL,),
    "3.7": (L.INPATIENT,),
    "4": (L.INPATIENT,),
    "4.0": (L.INPATIENT,),
    "1-wm": (L.DETOX, L.OUTPATIENT),
    "2-wm": (L.DETOX, L.OUTPATIENT),
    "3.2-wm": (L.DETOX, L.RESIDENTIAL),
    "3.7-wm": (L.DETOX, L.INPATIENT),
    "4-wm": (L.DETOX, L.INPATIENT),
    "otp(1)": (L.OTP, L.MAT),
    # Los Angeles County SUD Service & Bed Availability Tool (la_county_sud_service_codes.csv)
    "rs": (L.RESIDENTIAL,),
    "rs(3.1)": (L.RESIDENTIAL,),
    "rs(3.3)": (L.RESIDENTIAL,),
    "rs(3.5)": (L.RESIDENTIAL,),
    "psrs": (L.RESIDENTIAL,),
    "psrs(3.3)": (L.RESIDENTIAL,),
    "wm": (L.DETOX,),
    "a-wm": (L.DETOX, L.OUTPATIENT),
    "r-wm": (L.DETOX, L.RESIDENTIAL),
    "i-wm": (L.DETOX, L.INPATIENT),
    "rbh": (L.RECOVERY_HOUSING,),
}

# Free text, tried in order; a matched span is blanked so "intensive outpatient" is not also
# "outpatient".
LEVEL_PHRASES: tuple[tuple[str, tuple[LevelOfCare, ...]], ...] = (
    (r"\b(?:asam\s*(?:level\s*)?)?(?:3\.2|3\.7|4)-wm\b", (L.DETOX, L.INPATIENT)),
    (r"\b(?:asam\s*(?:level\s*)?)?[12]-wm\b", (L.DETOX, L.OUTPATIENT)),
    (r"\basam\s*(?:level\s*)?3\.[135]\b", (L.RESIDENTIAL,)),
    (r"\basam\s*(?:level\s*)?(?:3\.7|4(?:\.0)?)\b", (L.INPATIENT,)),
    (r"\basam\s*(?:level\s*)?2\.1\b", (L.IOP,)),
    (r"\basam\s*(?:level\s*)?2\.5\b", (L.PHP,)),
    (r"\basam\s*(?:level\s*)?1(?:\.0)?\b", (L.OUTPATIENT,)),
    (r"withdrawal management|detox\w*", (L.DETOX,)),
    (r"partial hospitali[sz]ation|day treatment|\bphp\b", (L.PHP,)),
    (r"intensive outpatient|\biop\b", (L.IOP,)),
    (r"opioid treatment program|methadone|\botp\b", (L.OTP, L.MAT)),
    (
        r"medications? (?:for|assisted|for opioid use)[\w -]*|buprenorphine|suboxone|naltrexone|"
        r"vivitrol|\bmat\b|\bmoud\b",
        (L.MAT,),
    ),
    (
        r"recovery (?:bridge )?housing|recovery residence|sober living|halfway house|"
        r"transitional housing",
        (L.RECOVERY_HOUSING,),
    ),
    (r"hospital inpatient|\binpatient\b", (L.INPATIENT,)),
    (r"residential", (L.RESIDENTIAL,)),
    (r"crisis|walk-in|psychiatric emergency", (L.CRISIS,)),
    (r"tele(?:health|medicine)|virtual", (L.TELEHEALTH,)),
    (r"outpatient|ambulatory", (L.OUTPATIENT,)),
)

# --------------------------------------------------------------------------------------------------
# Payment

PAYMENT_CODES: dict[str, tuple[Payment, ...]] = {
    "pi": (P.PRIVATE,),
    "md": (P.MEDICAID,),
    "mc": (P.MEDICARE,),
    "si": (P.STATE_FUNDED,),
    "fsa": (P.STATE_FUNDED,),
    "mi": (P.MILITARY,),
    "itu": (P.IHS,),
    "sf": (P.SELF_PAY,),
    "np": (P.FREE,),
    "ss": (P.SLIDING_SCALE,),
    "pa": (P.PAYMENT_ASSISTANCE,),
    "va": (P.VA,),
}

PAYMENT_PHRASES: tuple[tuple[str, tuple[Payment, ...]], ...] = (
    (r"state[- ]financed|state[- ]funded|other than medicaid|federal.*funding", (P.STATE_FUNDED,)),
    (r"medicaid|medi-?cal|masshealth|ahcccs|tenncare|apple health|soonercare", (P.MEDICAID,)),
    (r"medicare", (P.MEDICARE,)),
    (r"sliding (?:fee|scale)", (P.SLIDING_SCALE,)),
    (r"payment assistance|financial assistance", (P.PAYMENT_ASSISTANCE,)),
    (r"tricare|military", (P.MILITARY,)),
    (r"\bva\b|veterans affairs|veterans administration", (P.VA,)),
    (r"\bihs\b|tribal|indian health", (P.IHS,)),
    (r"private|commercial|employer", (P.PRIVATE,)),
    (r"self[- ]?pay|cash|out of pocket", (P.SELF_PAY,)),
    (r"no (?:payment|charge|cost)|free|no fee", (P.FREE,)),
)

# --------------------------------------------------------------------------------------------------
# Populations

POPULATION_CODES: dict[str, tuple[Population, ...]] = {
    "adlt": (Pop.ADULTS,),
    "yad": (Pop.YOUNG_ADULTS,),
    "chld": (Pop.ADOLESCENTS,),
    "male": (Pop.MEN,),
    "fem": (Pop.WOMEN,),
    "vet": (Pop.VETERANS,),
    "vamc": (Pop.VETERANS,),
    "gl": (Pop.LGBTQ,),
    "ah": (Pop.DEAF_HARD_OF_HEARING,),
    "pw": (Pop.PREGNANT,),
    "co": (Pop.CO_OCCURRING,),
    "m": (Pop.MEN,),
    "f": (Pop.WOMEN,),
    # Los Angeles County "Client Served"
    "youth": (Pop.ADOLESCENTS, Pop.YOUNG_ADULTS),
    "perinatal": (Pop.PREGNANT,),
    "lgbtqia": (Pop.LGBTQ,),
}

POPULATION_PHRASES: tuple[tuple[str, tuple[Population, ...]], ...] = (
    (r"parent|with children", (Pop.PARENTS_WITH_CHILDREN,)),
    (r"pregnan|perinatal|postpartum", (Pop.PREGNANT,)),
    (r"young adult", (Pop.YOUNG_ADULTS,)),
    (r"adolescent|teen|youth|under 18|children", (Pop.ADOLESCENTS,)),
    (r"adult", (Pop.ADULTS,)),
    (r"\bwomen\b|\bfemale\b", (Pop.WOMEN,)),
    (r"\bmen\b|\bmale\b", (Pop.MEN,)),
    (r"veteran", (Pop.VETERANS,)),
    (r"lgbt|gay|lesbian|transgender", (Pop.LGBTQ,)),
    (r"deaf|hard of hearing|hearing impaired", (Pop.DEAF_HARD_OF_HEARING,)),
    (r"co-?occurring|dual diagnosis", (Pop.CO_OCCURRING,)),
    (r"homeless|unhoused", (Pop.HOMELESS,)),
    (r"criminal justice|court|probation|parole|re-?entry", (Pop.CRIMINAL_JUSTICE,)),
)

# --------------------------------------------------------------------------------------------------
# Languages: names and SAMHSA codes to ISO 639-1

LANGUAGE_NAMES: dict[str, str] = {
    "english": "en",
    "spanish": "es",
    "arabic": "ar",
    "armenian": "hy",
    "cambodian": "km",
    "khmer": "km",
    "cantonese": "zh",
    "mandarin": "zh",
    "chinese": "zh",
    "other chinese": "zh",
    "any chinese language": "zh",
    "farsi": "fa",
    "persian": "fa",
    "korean": "ko",
    "russian": "ru",
    "tagalog": "tl",
    "filipino": "tl",
    "vietnamese": "vi",
    "creole": "ht",
    "haitian creole": "ht",
    "french": "fr",
    "german": "de",
    "greek": "el",
    "hebrew": "he",
    "hindi": "hi",
    "italian": "it",
    "japanese": "ja",
    "polish": "pl",
    "portuguese": "pt",
    "navajo": "nv",
    "ojibwa": "oj",
    "somali": "so",
    "amharic": "am",
    "samoan": "sm",
    "other chinese languages": "zh",
    "urdu": "ur",
    "bengali": "bn",
    "punjabi": "pa",
    "ukrainian": "uk",
    "thai": "th",
    "lao": "lo",
    "swahili": "sw",
    "nepali": "ne",
}
LANGUAGE_CODES: dict[str, str] = {
    "sp": "es",
    "f4": "ar",
    "f17": "zh",
    "f19": "ht",
    "f25": "fa",
    "f28": "fr",
    "f30": "de",
    "f31": "el",
    "f35": "he",
    "f36": "hi",
    "f42": "it",
    "f43": "ja",
    "f47": "ko",
    "f66": "pl",
    "f67": "pt",
    "f70": "ru",
    "f81": "tl",
    "f92": "vi",
    "n23": "nv",
    "n24": "oj",
}
_ISO_639_1 = frozenset(LANGUAGE_NAMES.values()) | frozenset(LANGUAGE_CODES.values())

# --------------------------------------------------------------------------------------------------
# Availability status and accepting

STATUS_WORDS: tuple[tuple[str, AvailabilityStatus], ...] = (
    (
        r"^(?:n/?a|unknown|-+|—|\?|tbd|not reported|call|call for (?:availability|beds|details)|see notes)$",
        AvailabilityStatus.UNKNOWN,
    ),
    (r"assessment|screening required|call to assess", AvailabilityStatus.ASSESSMENT_REQUIRED),
    (r"wait\s*-?\s*list|waiting list", AvailabilityStatus.WAITLIST),
    (r"temporarily closed|\bclosed\b|inactive|defunct", AvailabilityStatus.CLOSED),
    (
        r"\bfull\b|\bno (?:beds|openings|capacity|availability|vacanc\w*)\b|\bunavailable\b|"
        r"not (?:available|accepting)|\bat capacity\b|^none$|^no$",
        AvailabilityStatus.FULL,
    ),
    (r"\blimited\b|\bfew\b|\blow\b", AvailabilityStatus.LIMITED),
    (
        r"\bavailable\b|\bopen\b|^yes$|\baccepting\b|\bvacan(?:t|cy|cies)\b|\bsome\b|\bhas capacity\b",
        AvailabilityStatus.AVAILABLE,
    ),
)

ACCEPTING_WORDS: tuple[tuple[str, Accepting], ...] = (
    (r":\s*(?:no|false)$", Accepting.NO),
    (r":\s*(?:yes|true)$", Accepting.NEW),
    (r"existing|current (?:clients|patients) only|existptonly|existptfam", Accepting.EXISTING_ONLY),
    (r"^(?:no|false|not accepting|nopt|n)$|not accepting", Accepting.NO),
    (r"^(?:yes|true|new|newpt|y|accepting)$|accepting new", Accepting.NEW),
)


# --------------------------------------------------------------------------------------------------


#: what a term maps to by a table's codes and phrases, by (table, term key): partners repeat their terms on
#: every row, and a phrase table is a dozen regular expressions. Bounded: cleared when it grows past 50,000.
_TERM_CACHE: dict[tuple[int, str], tuple[frozenset[Any], bool, bool]] = {}

#: a phrase said not to hold: a negation just before it ("does not accept Medicaid", "no adolescents",
#: "non-Medicaid", "no Medicaid or Medicare"). A cue joined to the next word by a hyphen binds that word only
#: ("non-hospital residential", "no-cost outpatient" negate nothing of ours), and "no cost" and the like are
#: phrases of their own ...
_NEGATED_BEFORE = re.compile(
    r"(?:\b(?:not|non|never|without|except|excluding|excludes?|no)\b(?!\s*-?\s*(?:cost|fee|charge|payment)\b)"
    r"|n't\b)(?:[\s-]*|\s+[\w\s/&]{0,24})$"
)
#: ... or after it, ending the term ("Medicaid not accepted", "Medicaid: no"; not "open - no waitlist")
_NEGATED_AFTER = re.compile(
    r"^[\s:,-]*(?:(?:is|are|currently)\s+)*(?:not|no|none)"
    r"(?:\s+(?:accepted|offered|available|provided|covered|taken|served))?\s*[.!]?\s*$"
)


def _negated(text: str, start: int, end: int) -> bool:
    """Is the phrase at ``text[start:end]`` said not to hold (``_NEGATED_BEFORE``, ``_NEGATED_AFTER``)? Judged on
    the term as written, not as other phrases left it."""
    return bool(_NEGATED_BEFORE.search(text, 0, start) or _NEGATED_AFTER.match(text[end:]))


def _by_table(
    k: str, codes: Mapping[str, tuple[E, ...]], phrases: tuple[tuple[str, tuple[E, ...]], ...], enum: type[E]
) -> tuple[frozenset[E], bool, bool]:
    """A term key's values by the codes, then the enum's own values, then the phrases; whether any matched; and
    whether a phrase was found negated ("does not accept Medicaid": that phrase gives no value)."""
    cache_key = (id(codes), k)
    hit = _TERM_CACHE.get(cache_key)
    if hit is not None:
        return hit
    if k in codes:
        found: tuple[frozenset[E], bool, bool] = (frozenset(codes[k]), True, False)
    elif k in enum._value2member_map_:
        found = (frozenset((enum(k),)), True, False)
    else:
        values: set[E] = set()
        rest, matched, negated = k, False, False
        for pattern, vals in phrases:
            spans = [(m.start(), m.end()) for m in re.finditer(pattern, rest)]
            if not spans:
                continue
            said = [span for span in spans if not _negated(k, *span)]
            if said:
                values.update(vals)
                matched = True
            negated = negated or len(said) < len(spans)
            for start, end in spans:  # blanked either way: "intensive outpatient" is not also "outpatient"
                rest = rest[:start] + " " * (end - start) + rest[end:]
        found = (frozenset(values), matched, negated)
    if len(_TERM_CACHE) > 50_000:
        _TERM_CACHE.clear()
    _TERM_CACHE[cache_key] = found
    return found


def _map(
    terms: Iterable[str],
    codes: Mapping[str, tuple[E, ...]],
    phrases: tuple[tuple[str, tuple[E, ...]], ...],
    overrides: Mapping[str, Iterable[str]] | None,
    enum: type[E],
) -> Mapped[E]:
    found: set[E] = set()
    unmapped: list[str] = []
    over = {_key(k): v for k, v in overrides.items()} if overrides else {}
    for raw in terms:
        term = str(raw).strip()
        if not term:
            continue
        k = _key(term)
        if k in over:
            found.update(enum(v) for v in over[k])
            continue
        values, hit, negated = _by_table(k, codes, phrases, enum)
        found.update(values)
        if negated or not hit:  # a negated phrase is reported, never read as its value
            unmapped.append(term)
    return Mapped(frozenset(found), tuple(unmapped))


def map_levels_of_care(
    terms: Iterable[str], overrides: Mapping[str, Iterable[str]] | None = None
) -> Mapped[LevelOfCare]:
    return _map(terms, LEVEL_CODES, LEVEL_PHRASES, overrides, LevelOfCare)


def map_payment(terms: Iterable[str], overrides: Mapping[str, Iterable[str]] | None = None) -> Mapped[Payment]:
    return _map(terms, PAYMENT_CODES, PAYMENT_PHRASES, overrides, Payment)


def map_populations(terms: Iterable[str], overrides: Mapping[str, Iterable[str]] | None = None) -> Mapped[Population]:
    return _map(terms, POPULATION_CODES, POPULATION_PHRASES, overrides, Population)


_LANGUAGE_RUN = re.compile("|".join(sorted((n for n in LANGUAGE_NAMES), key=len, reverse=True)))


def map_languages(terms: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Language names, SAMHSA codes (``SP``, ``F17``) or ISO codes to ISO 639-1.

    Handles run-together names as scraped from some bed boards ("EnglishSpanish")."""
    found: set[str] = set()
    unmapped: list[str] = []
    for raw in terms:
        term = str(raw).strip()
        if not term:
            continue
        k = _key(term)
        code = k.split("-", 1)[0] if re.match(r"^[a-z]\d+-|^sp-", k) else k
        if code in LANGUAGE_CODES:
            found.add(LANGUAGE_CODES[code])
        elif k in LANGUAGE_NAMES:
            found.add(LANGUAGE_NAMES[k])
        elif k in _ISO_639_1:
            found.add(k)
        else:
            names = _LANGUAGE_RUN.findall(k)
            leftover = _LANGUAGE_RUN.sub("", k).strip(" ,;/")
            if names and not leftover:
                found.update(LANGUAGE_NAMES[n] for n in names)
            else:
                unmapped.append(term)
    return frozenset(found), tuple(unmapped)


def map_status(text: str) -> AvailabilityStatus | None:
    """A partner's status word ("FULL", "Waitlist", "Open", "N/A") to ours; None if unrecognized."""
    k = _key(text)
    if not k:
        return None
    if k in AvailabilityStatus._value2member_map_:
        return AvailabilityStatus(k)
    for pattern, status in STATUS_WORDS:  # a word said not to hold ("not full", "open - no waitlist") is no sign
        if any(not _negated(k, m.start(), m.end()) for m in re.finditer(pattern, k)):
            return status
    return None


def map_accepting(text: str) -> Accepting | None:
    k = _key(text)
    if k in Accepting._value2member_map_:
        return Accepting(k)
    for pattern, value in ACCEPTING_WORDS:
        if re.search(pattern, k):
            return value
    return None


def age_words(seconds: float) -> str:
    """How a data age reads, for operators, the public and rejection reasons: 'a few seconds', '45 seconds',
    '12 minutes', '9 hours', '3 days', '2.3 years' (never negative, never '0')."""
    seconds = max(0, int(seconds))
    if seconds < 10:
        return "a few seconds"
    if seconds < 90:
        return f"{seconds} seconds"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)} hours"
    if seconds < 365 * 86400:
        return f"{round(seconds / 86400)} days"
    return f"{seconds / (365.25 * 86400):.1f} years"
