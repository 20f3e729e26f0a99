"""The matcher, rule by rule: whether two feed records are one physical facility, why, and the scores."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.match import (
    FAR_M,
    NAME_SAME,
    SAME_DISTANCE_M,
    Identity,
    address_score,
    best_match,
    compare,
    identity_of,
    name_key,
    standard_street,
    unit_ids,
)
from aggregator.model import Address, Center, ExternalId, GeoPrecision, Phone

#: Selma, AL: 912 JL Chestnut Jr Boulevard (a real SAMHSA facility's address)
LAT, LON = 32.4146865, -87.0259873
_IDS = itertools.count(1)


def moved(lat: float, lon: float, north_m: float = 0.0, east_m: float = 0.0) -> tuple[float, float]:
    return lat + north_m / 111_320.0, lon + east_m / (111_320.0 * math.cos(math.radians(lat)))


def record(
    feed: str,
    name: str,
    address_1: str = "912 JL Chestnut Jr Boulevard",
    *,
    alternate_name: str = "",
    address_2: str = "",
    city: str = "Selma",
    postal_code: str = "36701",
    north_m: float = 0.0,
    east_m: float = 0.0,
    located: bool = True,
    precision: GeoPrecision = GeoPrecision.FEED,
    ids: tuple[tuple[str, str], ...] = (),
    phones: tuple[str, ...] = (),
) -> Identity:
    """The identity of a record of ``feed`` (a ``Center`` through ``identity_of``, as the store makes it)."""
    lat, lon = moved(LAT, LON, north_m, east_m)
    fields: dict[str, Any] = {
        "id": f"{feed}:r{next(_IDS)}",
        "feed_id": feed,
        "name": name,
        "alternate_name": alternate_name,
        "external_ids": tuple(ExternalId(system=s, value=v) for s, v in ids),
        "address": Address.model_construct(
            address_1=address_1, address_2=address_2, city=city, state="AL", postal_code=postal_code, country="US"
        ),
        "latitude": lat if located else None,
        "longitude": lon if located else None,
        "geo_precision": precision if located else None,
        "phones": tuple(Phone(number=p) for p in phones),
    }
    fields["source_id"] = fields["id"].split(":", 1)[1]
    return identity_of(Center.model_construct(**fields))


# --------------------------------------------------------------------------------------------------
# Names and addresses, standardized


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("St. Mary's Behavioral Health Ctr, Inc.", "saint marys behavioral health center"),
        ("ALETHEIA HOUSE, INC.", "aletheia house"),
        ("Aletheia House LLC", "aletheia house"),
        ("Smith & Jones Counseling Co.", "smith jones counseling"),
        ("Bradford Health Svcs", "bradford health services"),
        ("The Salvation Army, a California Corporation", "salvation army california"),
        ("East House Corporatoin", "east house"),  # a mistyped legal word is still a legal word
        ("Acme Recovery L.L.C.", "acme recovery"),
        ("Clínica Monseñor Óscar A. Romero", "clinica monsenor oscar romero"),
        ("The Co", "the co"),  # a name made only of filler words keeps them
    ],
)
def test_name_key_drops_case_punctuation_legal_and_filler_words_and_spells_out_abbreviations(
    name: str, key: str
) -> None:
    assert name_key(name) == key


def test_standard_street_reads_suites_written_any_way_as_one_street_and_unit() -> None:
    spelled = standard_street("1200 North Walnut Street, Suite 200", "", "Springfield", "IL", "62701")
    assert spelled == ("1200 N WALNUT ST", "STE 200")
    assert standard_street("1200 N Walnut St Ste 200", "", "Springfield", "IL", "62701") == spelled
    assert standard_street("1200 N. Walnut St.", "Ste. 200", "Springfield", "IL", "62701") == spelled
    street, unit = standard_street("1200 N Walnut St", "#200", "Springfield", "IL", "62701")
    assert street == "1200 N WALNUT ST"
    assert unit_ids(unit) == unit_ids("STE 200") == {"200"}


def test_standard_street_without_a_zip_still_standardizes() -> None:
    assert standard_street("4246 5th Avenue South", "", "Birmingham", "AL", "") == ("4246 5TH AVE S", "")


def test_standard_street_moves_bare_numbers_after_the_street_type_to_the_unit() -> None:
    assert standard_street("3217 North Eastern Avenue, 102 & 103", "", "Los Angeles", "CA", "90032") == (
        "3217 N EASTERN AVE",
        "102 103",
    )
    assert standard_street("22165 US Highway 431", "", "Guntersville", "AL", "35976") == ("22165 US HWY 431", "")


def test_standard_street_falls_back_to_a_light_normalization_where_the_parser_gives_up() -> None:
    assert standard_street("PO Box 12", "", "Selma", "AL", "36701") == ("PO BOX 12", "")  # scourgify raises
    assert standard_street("1200 North Walnut Street Suite 200", "", "", "", "") == ("1200 N WALNUT ST", "STE 200")
    assert standard_street("- - -", "", "Anchorage", "AK", "99503") == ("", "")  # SAMHSA's placeholder


@pytest.mark.parametrize(
    ("a", "b", "score"),
    [
        ("365 EAST ST", "365 E ST", 1.0),  # scourgify keeps a street's name, the fallback abbreviates it
        ("7428 PARK PLACE BLVD", "7428 PARK PL BLVD", 1.0),
        ("4500 PARSONS BLVD 1982 BUILDING", "4500 PARSONS BLVD", 0.95),
        ("1200 N WALNUT ST", "1200 S WALNUT ST", 0.0),  # another street
        ("15-2714 PAHOA RD", "15-2874 PAHOA RD", 0.0),  # Hawaiian house numbers
        ("728A FREEMAN AVE", "728 FREEMAN AVE", 0.0),  # 728-A is another house
        ("912 JL CHESTNUT JR BLVD", "912 JL CHESTNUTT JR BLVD", 0.97),
    ],
)
def test_address_score(a: str, b: str, score: float) -> None:
    assert address_score(a, b) == pytest.approx(score, abs=0.01)
    assert address_score(b, a) == address_score(a, b)


def test_identity_of_takes_identifiers_phones_and_how_the_record_was_placed() -> None:
    c = record(
        "hsds",
        "Aletheia House",
        ids=(("SAMHSA", "123"), ("NPI", "1234567890")),
        phones=("+13348722114",),
        precision=GeoPrecision.POSTAL_CODE,
    )
    assert c.identifiers == {("samhsa", "123"), ("npi", "1234567890")}
    assert c.phones == {"+13348722114"}
    assert c.approximate and not c.precise
    assert (c.street, c.unit, c.name_key) == ("912 JL CHESTNUT JR BLVD", "", "aletheia house")


# --------------------------------------------------------------------------------------------------
# The rules, each with its reason and scores


def test_a_shared_identifier_is_the_same_facility_whatever_the_names() -> None:
    v = compare(
        record("samhsa", "Aletheia House", ids=(("samhsa", "123"),)),
        record("la", "AH Selma Outpatient", "912 J.L. Chestnut Jr. Blvd", ids=(("SAMHSA", "123"),), east_m=80),
    )
    assert (v.decision, v.rule) == ("same", "identifier samhsa=123")
    assert v.scores["identifier"] == 1.0
    assert "name" in v.scores


def test_a_shared_identifier_far_from_its_other_address_is_left_to_an_operator() -> None:
    v = compare(
        record("samhsa", "Aletheia House", ids=(("npi", "1234567890"),)),
        record("hsds", "Aletheia House", "4246 5th Avenue South", ids=(("npi", "1234567890"),), north_m=5000),
    )
    assert (v.decision, v.rule) == ("uncertain", "identifier npi=1234567890 but 5.0 km apart")


def test_different_identifiers_of_one_system_are_different_facilities_even_at_one_address() -> None:
    v = compare(
        record("samhsa", "Aletheia House", ids=(("samhsa", "123"),)),
        record("hsds", "Aletheia House", ids=(("samhsa", "456"), ("npi", "1")), east_m=10),
    )
    assert (v.decision, v.rule) == ("different", "different identifiers (samhsa)")
    assert v.scores["identifier"] == 0.0


def test_a_partner_s_own_numbers_are_not_identifiers_shared_across_feeds() -> None:
    v = compare(
        record("a", "Aletheia House", ids=(("partner", "1"),)),
        record("b", "Rapha Treatment Center", "400 Broad St", ids=(("partner", "1"),), north_m=500),
    )
    assert (v.decision, v.rule) == ("different", "far apart")


def test_one_address_and_alike_names_are_the_same_facility() -> None:
    v = compare(
        record("samhsa", "Aletheia House Inc"), record("la", "ALETHEIA HOSUE", "912 J.L. Chestnut Jr. Blvd.", east_m=90)
    )
    assert (v.decision, v.rule) == ("same", "address+name")
    assert v.scores["address"] == 1.0
    assert v.scores["name"] >= NAME_SAME
    assert v.scores["name_words"] == 0
    assert v.scores["distance_m"] == pytest.approx(90, abs=1)


def test_suites_written_differently_are_one_suite() -> None:
    v = compare(
        record("samhsa", "Bradford Health Services", "1200 North Walnut Street", address_2="Suite 200"),
        record("hsds", "Bradford Health Svcs", "1200 N Walnut St Ste. 200", east_m=40),
    )
    assert (v.decision, v.rule) == ("same", "address+name")
    assert v.scores["unit"] == 1.0


def test_two_programs_in_one_building_are_told_apart_by_their_suites() -> None:
    v = compare(
        record(
            "samhsa",
            "Akeela Inc",
            "360 West Benson Boulevard",
            address_2="Suite 200",
            alternate_name="Women and Families Programs",
        ),
        record("hsds", "Community Counseling Services", "360 W Benson Blvd", address_2="Suite 210"),
    )
    assert (v.decision, v.rule) == ("different", "different units")
    assert v.scores["unit"] == 0.0
    same_name = compare(
        record("samhsa", "Harbor House Inc", address_2="Suite 114"),
        record("hsds", "Harbor House", address_2="Suite 116"),
    )
    assert (same_name.decision, same_name.rule) == ("uncertain", "different units")  # moved, or a second site?


def test_two_programs_of_one_agency_at_one_address_are_different_facilities() -> None:
    v = compare(
        record("samhsa", "Community Bridges Inc", alternate_name="Transition Point Residential"),
        record("hsds", "Community Bridges", alternate_name="Globe Outpatient Services Center"),
    )
    assert (v.decision, v.rule) == ("different", "different programs")
    assert v.scores["alternate"] < 60
    # a program word on one side only is what tells them apart: it is never averaged away
    op = compare(
        record("samhsa", "Lexington Center for Recovery", alternate_name="OP"),
        record("hsds", "Lexington Ctr for Recovery", alternate_name="OP R"),
    )
    assert op.decision != "same"
    assert op.scores["name_words"] == 1


def test_a_name_that_only_contains_the_other_is_left_to_an_operator() -> None:
    v = compare(record("samhsa", "Caminar", alternate_name="Family and Children Services"), record("hsds", "CAMINAR"))
    assert (v.decision, v.rule) == ("uncertain", "address, one name contains the other")
    assert v.scores["name_set"] == 100.0


def test_a_name_adding_its_own_city_or_initials_names_the_same_place() -> None:
    city = compare(
        record("samhsa", "Tarzana Treatment Centers Inc", alternate_name="Selma"),
        record("la", "TARZANA TREATMENT CENTERS, INC."),
    )
    assert (city.decision, city.rule) == ("same", "address+name")
    initials = compare(
        record("samhsa", "Narcotic Addiction Trt Agency Inc", alternate_name="(NATA)"),
        record("la", "NARCOTIC ADDICTION TREATMENT AGENCY, INC."),
    )
    assert initials.decision == "same"


def test_unlike_names_at_one_address_are_two_facilities() -> None:
    v = compare(
        record("samhsa", "Family Life Center", "677 West Covington Avenue"),
        record("hsds", "Rapha Treatment Center", "677 W Covington Ave"),
    )
    assert (v.decision, v.rule) == ("different", "different names at one address")


def test_mens_and_womens_programs_are_not_one_name_with_a_typo() -> None:
    v = compare(record("samhsa", "Men's Recovery House"), record("hsds", "Women's Recovery House"))
    assert v.decision != "same"


def test_same_name_branches_far_apart_are_different_facilities() -> None:
    v = compare(
        record("samhsa", "Aletheia House"),
        record("hsds", "Aletheia House", "4246 5th Avenue South", north_m=FAR_M + 50),
    )
    assert (v.decision, v.rule) == ("different", "far apart")
    no_street = compare(record("samhsa", "Aletheia House"), record("hsds", "Aletheia House", "", north_m=400))
    assert (no_street.decision, no_street.rule) == ("different", "far apart")


def test_one_address_far_apart_is_a_geocode_gone_astray_left_to_an_operator() -> None:
    v = compare(record("samhsa", "Aletheia House"), record("hsds", "Aletheia House", north_m=3000))
    assert (v.decision, v.rule) == ("uncertain", "same address, far apart")


def test_close_with_an_alike_name_and_no_street_is_the_same_facility() -> None:
    v = compare(record("samhsa", "Aletheia House"), record("smart", "ALETHEIA HOUSE", "", east_m=60))
    assert (v.decision, v.rule) == ("same", "name+distance")
    assert v.scores["distance_m"] <= SAME_DISTANCE_M
    assert "address" not in v.scores
    other = compare(record("samhsa", "Aletheia House"), record("smart", "Aletheia House 2", "", east_m=60))
    assert other.decision != "same"


def test_alike_streets_with_another_number_close_by_are_left_to_an_operator() -> None:
    v = compare(
        record("samhsa", "Aletheia House"), record("hsds", "Aletheia House", "914 JL Chestnut Jr Boulevard", east_m=30)
    )
    assert (v.decision, v.rule) == ("uncertain", "different addresses")
    assert v.scores["address"] == 0.0


def test_a_confidential_house_placed_at_its_zip_needs_a_shared_phone() -> None:
    def house(feed: str, phones: tuple[str, ...]) -> Identity:
        return record(feed, "Safe Refuge", "", precision=GeoPrecision.POSTAL_CODE, phones=phones)

    v = compare(house("la", ("+15625551212",)), house("hsds", ("+15625551212", "+15625550000")))
    assert (v.decision, v.rule) == ("same", "name+phone")
    assert v.scores["phone"] == 1.0
    no_phone = compare(house("la", ("+15625551212",)), house("hsds", ()))
    assert (no_phone.decision, no_phone.rule) == ("uncertain", "names alike, no address")


def test_a_record_without_a_zip_placed_at_its_city_matches_by_street_and_city() -> None:
    v = compare(
        record("samhsa", "Aletheia House"),
        record(
            "hsds",
            "Aletheia House",
            "912 JL Chestnut Jr Blvd",
            postal_code="",
            north_m=2500,
            precision=GeoPrecision.POSTAL_CODE,
        ),
    )
    assert (v.decision, v.rule) == ("same", "address+name")


def test_rows_of_one_place_in_one_feed_are_one_facility_and_its_programs_are_not() -> None:
    # one row per service, as some partner exports have it
    v = compare(record("otp", "Harbor House Recovery Center"), record("otp", "Harbor House Recovery Center"))
    assert (v.decision, v.rule) == ("same", "address+name")
    agency = "Indian Rivers Mental Health Center"
    programs = compare(
        record("samhsa", agency, alternate_name="Substance Abuse Services"),
        record("samhsa", agency, alternate_name="A Womans Place"),
    )
    assert (programs.decision, programs.rule) == ("different", "different programs")


# --------------------------------------------------------------------------------------------------
# best_match


def test_best_match_prefers_the_surest_same() -> None:
    me = record("hsds", "Aletheia House", "912 JL Chestnut Jr Blvd", east_m=20)
    by_address = record("samhsa", "Aletheia House")
    nearby = record("smart", "Aletheia House", "", east_m=40)
    elsewhere = record("la", "Rapha Treatment Center", "400 Broad St", north_m=100)
    found, v = best_match(me, [elsewhere, nearby, by_address])
    assert found == by_address
    assert (v.decision, v.rule) == ("same", "address+name")


def test_best_match_returns_an_uncertain_match_when_there_is_no_same() -> None:
    me = record("hsds", "CAMINAR")
    program = record("samhsa", "Caminar", alternate_name="Family and Children Services")
    found, v = best_match(me, [program])
    assert found == program
    assert v.decision == "uncertain"


def test_best_match_finds_none_among_different_facilities() -> None:
    found, v = best_match(record("hsds", "Aletheia House"), [record("samhsa", "Rapha Treatment Center", east_m=5)])
    assert found is None
    assert (v.decision, v.rule) == ("different", "no candidate alike")


def test_best_match_leaves_a_record_alike_two_places_of_one_feed_to_an_operator() -> None:
    me = record("smart", "Safe Refuge", "", east_m=30)
    houses = [
        record("samhsa", "Safe Refuge", "3119 East 7th Street"),
        record("samhsa", "Safe Refuge", "3125 East 7th Street", east_m=50),
    ]
    found, v = best_match(me, houses)
    assert found in houses
    assert v.decision == "uncertain"
    assert v.rule.startswith("ambiguous: name+distance, also samhsa:")


def test_best_match_is_not_ambiguous_between_two_records_of_one_place() -> None:
    me = record("smart", "Safe Refuge", "", east_m=30)
    one_place = [
        record("samhsa", "Safe Refuge", "3119 East 7th Street"),
        record("la", "SAFE REFUGE", "3119 E 7th St", east_m=20),
    ]
    found, v = best_match(me, one_place)
    assert found in one_place
    assert (v.decision, v.rule) == ("same", "name+distance")


# --------------------------------------------------------------------------------------------------
# Symmetry

NAMES = [
    "Aletheia House",
    "ALETHEIA HOUSE, INC.",
    "Aletheia Hosue",
    "Aletheia House Outpatient",
    "Aletheia House 2",
    "Bradford Health Svcs",
    "Bradford Health Services",
    "Men's Recovery House",
    "Women's Recovery House",
]
ALTERNATES = ["", "", "Outpatient", "Residential Treatment", "Selma", "(AH)"]
STREETS = [
    "912 JL Chestnut Jr Boulevard",
    "912 J.L. Chestnut Jr. Blvd",
    "914 JL Chestnut Jr Blvd",
    "4246 5th Avenue South",
    "",
    "PO Box 12",
]
UNITS = ["", "Suite 200", "#200", "Ste 210"]
IDS = [("samhsa", "1"), ("samhsa", "2"), ("npi", "9"), ("partner", "1")]


@st.composite
def identities(draw: st.DrawFn, feeds: tuple[str, ...] = ("a",)) -> Identity:
    located = draw(st.booleans())
    return record(
        draw(st.sampled_from(feeds)),
        draw(st.sampled_from(NAMES)),
        draw(st.sampled_from(STREETS)),
        alternate_name=draw(st.sampled_from(ALTERNATES)),
        address_2=draw(st.sampled_from(UNITS)),
        city=draw(st.sampled_from(["Selma", "Selma", "Valley Grande"])),
        postal_code=draw(st.sampled_from(["36701", "36701", "36703", ""])),
        north_m=draw(st.sampled_from([0.0, 40.0, 140.0, 160.0, 3000.0, 30_000.0])),
        east_m=draw(st.floats(0, 120)),
        located=located,
        precision=draw(st.sampled_from([GeoPrecision.FEED, GeoPrecision.POSTAL_CODE])),
        ids=tuple(draw(st.sampled_from([(), (), (), *((x,) for x in IDS), (IDS[0], IDS[2])]))),
        phones=tuple(draw(st.lists(st.sampled_from(["+13345550100", "+13345550101"]), max_size=2, unique=True))),
    )


@settings(max_examples=500, deadline=None)
@given(identities(), identities(feeds=("b", "b", "b", "a")))
def test_compare_is_symmetric(a: Identity, b: Identity) -> None:
    ab, ba = compare(a, b), compare(b, a)
    assert (ab.decision, ab.rule) == (ba.decision, ba.rule)
    assert ab.scores == ba.scores
