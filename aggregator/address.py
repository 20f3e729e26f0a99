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
    """Street, unit, city, state and ZIP of a one-line address; what is missing stays empty."""
    text = " ".join(text.replace("\xa0", " ").split())
    if not text:
        return AddressParts(problem="empty")
    try:
        tokens = usaddress.parse(text)
    except Exception as exc:  # the parser raises several untyped errors; any of them means unreadable
        return AddressParts(problem=f"not readable as a US address ({exc.__class__.__name__})")
    street: list[str] = []
    unit: list[str] = []
    city: list[str] = []
    state = postal = ""
    for token, label in tokens:
        word = token.strip(",;")
        if not word:
            continue
        if label in _STREET:
            street.append(word)
        elif label in _UNIT:
            unit.append(word)
        elif label == "PlaceName":
            city.append(word)
        elif label == "StateName" and not state:
            state = word
        elif label == "ZipCode" and not postal:
            postal = word
        elif label == "ZipPlus4" and postal and "-" not in postal:
            postal = f"{postal}-{word}"
        elif label == "Recipient":
            street.append(word)
    parts = AddressParts(" ".join(street), " ".join(unit), " ".join(city), state, postal)
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
