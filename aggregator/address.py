"""A one-line US address ('12 Main St, Suite 2, Worcester, MA 01608') into its parts. Pure.

The parsing is ``usaddress`` (a probabilistic parser trained on US addresses), not a regular
expression of ours: it copes with commas or none, suites, PO boxes, ZIP+4, and a street that holds
commas. The street keeps the partner's own spelling and case (standardizing to USPS Publication 28
is for matching, not for showing a caller where to go).
"""

from __future__ import annotations

from dataclasses import dataclass

import usaddress

#: usaddress labels that make up the street line, in order of appearance
_STREET = frozenset(
    {
        "AddressNumberPrefix",
        "AddressNumber",
        "AddressNumberSuffix",
        "StreetNamePreModifier",
        "StreetNamePreDirectional",
        "StreetNamePreType",
        "StreetName",
        "StreetNamePostType",
        "StreetNamePostDirectional",
        "StreetNamePostModifier",
        "BuildingName",
        "CornerOf",
        "IntersectionSeparator",
        "LandmarkName",
        "USPSBoxGroupID",
        "USPSBoxGroupType",
        "USPSBoxID",
        "USPSBoxType",
        "SecondStreetName",
        "SecondStreetNamePostType",
        "SecondStreetNamePreDirectional",
        "SecondStreetNamePostDirectional",
        "SecondStreetNamePreType",
        "SecondStreetNamePreModifier",
        "SecondStreetNamePostModifier",
    }
)
_UNIT = frozenset({"OccupancyType", "OccupancyIdentifier", "SubaddressType", "SubaddressIdentifier"})


@dataclass(frozen=True)
class AddressParts:
    address_1: str = ""
    address_2: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    #: what the parser could not place (a reason), or ""
    problem: str = ""


def split_one_line(text: str) -> AddressParts:
    """Street, unit, city, state and ZIP of a one-line address; what is missing stays empty.

    A US address ends with its city, state and ZIP, so the parser's last state and last ZIP are taken, and its
    city is the run of place words just before that state. Words the parser took for a state, a ZIP or a place
    elsewhere ('10603, 10607, 10621 Downey Avenue': address numbers; 'Outpatient Office, Meeting Room': a part of
    the building), and words it could not place ('Suites A and D'), are kept: before the street's last word they
    belong to the street, after it to the second line. Nothing the partner wrote is dropped."""
    text = " ".join(text.replace("\xa0", " ").split())
    if not text:
        return AddressParts(problem="empty")
    try:
        tokens = [(token, label) for token, label in usaddress.parse(text) if token.strip(",;")]
    except Exception as exc:  # the parser raises several untyped errors; any of them means unreadable
        return AddressParts(problem=f"not readable as a US address ({exc.__class__.__name__})")
    labels = [label for _, label in tokens]
    last_state = _last(labels, "StateName")
    last_zip = _last(labels, "ZipCode")
    # the city: the place words just before the final state (or ZIP, when there is no state)
    end = last_state if last_state is not None else last_zip if last_zip is not None else len(labels)
    city_at = set()
    i = end - 1
    while i >= 0 and labels[i] == "PlaceName":
        city_at.add(i)
        i -= 1
    if not city_at:  # no place word there: the parser's place words, wherever they are (as before)
        city_at = {i for i, label in enumerate(labels) if label == "PlaceName"}
    street_positions = [i for i, label in enumerate(labels) if label in _STREET or label == "Recipient"]
    last_street = street_positions[-1] if street_positions else -1
    street: list[str] = []
    unit: list[str] = []
    city: list[str] = []
    state = postal = ""
    for i, (token, label) in enumerate(tokens):
        word = token.strip(",;")
        if label == "CountryName":  # "USA", "United States": every address here is in the US (Address.country)
            continue
        if label in _STREET or label == "Recipient":
            street.append(word)
        elif label in _UNIT:
            unit.append(token)
        elif i in city_at:
            city.append(word)
        elif i == last_state:
            state = word
        elif i == last_zip:
            postal = word
        elif label == "ZipPlus4" and last_zip is not None and i > last_zip and "-" not in postal:
            postal = f"{postal}-{word}"
        elif i < last_street:  # a word taken for a state, ZIP or place (or not placed) amid the street
            street.append(token)
        else:  # ... or after the street: a part of the building, a suite
            unit.append(token)
    parts = AddressParts(_line(street), _line(unit), " ".join(city), state, postal)
    missing = [name for name, value in (("state", state), ("ZIP", postal)) if not value]
    if missing:
        return AddressParts(
            parts.address_1,
            parts.address_2,
            parts.city,
            state,
            postal,
            f"no {' or '.join(missing)} found in {text[:80]!r}",
        )
    return parts


def _last(labels: list[str], wanted: str) -> int | None:
    for i in range(len(labels) - 1, -1, -1):
        if labels[i] == wanted:
            return i
    return None


def _line(words: list[str]) -> str:
    """Words (some with the comma that followed them) as one line: inner commas kept, none at the end."""
    return " ".join(words).strip(",; ")
