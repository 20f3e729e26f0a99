"""Partner vocabularies map onto ours; what means nothing to us is reported, not dropped."""

from __future__ import annotations

import csv

import pytest

from aggregator.model import AvailabilityStatus, LevelOfCare, Payment, Population
from aggregator.vocabulary import (
    map_accepting,
    map_languages,
    map_levels_of_care,
    map_payment,
    map_populations,
    map_status,
)
from tests.conftest import shared_file

L, P, Pop = LevelOfCare, Payment, Population


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        (["DT"], {L.DETOX}),
        (["RES"], {L.RESIDENTIAL}),
        (["HI"], {L.INPATIENT}),
        (["OP"], {L.OUTPATIENT}),
        (["OTP"], {L.OTP, L.MAT}),
        (["BU", "NU"], {L.MAT}),
        (["HH"], {L.RECOVERY_HOUSING}),
        (["TELE"], {L.TELEHEALTH}),
        # ASAM levels
        (["2.1"], {L.IOP}),
        (["2.5"], {L.PHP}),
        (["3.5"], {L.RESIDENTIAL}),
        (["3.7"], {L.INPATIENT}),
        (["3.2-WM"], {L.DETOX, L.RESIDENTIAL}),
        (["4-WM"], {L.DETOX, L.INPATIENT}),
        # Los Angeles County bed tool
        (["RS(3.1)"], {L.RESIDENTIAL}),
        (["RS (3.5)"], {L.RESIDENTIAL}),
        (["R-WM"], {L.DETOX, L.RESIDENTIAL}),
        (["A-WM"], {L.DETOX, L.OUTPATIENT}),
        (["RBH"], {L.RECOVERY_HOUSING}),
        # free text
        (["Withdrawal Management"], {L.DETOX}),
        (["Intensive outpatient treatment"], {L.IOP}),
        (["Partial hospitalization/day treatment"], {L.PHP}),
        (["Residential; Short-term residential (30 days or less)"], {L.RESIDENTIAL}),
        (["Hospital inpatient detoxification"], {L.DETOX, L.INPATIENT}),
        (["Sober living home"], {L.RECOVERY_HOUSING}),
        (["Buprenorphine (Suboxone)"], {L.MAT}),
        (["detox"], {L.DETOX}),
        (["residential"], {L.RESIDENTIAL}),
    ],
)
def test_levels_of_care(terms: list[str], expected: set[LevelOfCare]) -> None:
    mapped = map_levels_of_care(terms)
    assert mapped.values == expected
    assert mapped.unmapped == ()


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("MD", P.MEDICAID),
        ("MC", P.MEDICARE),
        ("PI", P.PRIVATE),
        ("SF", P.SELF_PAY),
        ("SS", P.SLIDING_SCALE),
        ("NP", P.FREE),
        ("MI", P.MILITARY),
        ("ITU", P.IHS),
        ("Medi-Cal", P.MEDICAID),
        ("MassHealth", P.MEDICAID),
        ("Sliding fee", P.SLIDING_SCALE),
        ("Sliding fee scale (fee is based on income)", P.SLIDING_SCALE),
        ("Cash or self-payment", P.SELF_PAY),
        ("Military insurance (e.g., TRICARE)", P.MILITARY),
        ("Private health insurance", P.PRIVATE),
        ("medicaid", P.MEDICAID),
    ],
)
def test_payment(term: str, expected: Payment) -> None:
    assert map_payment([term]).values == {expected}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("ADLT", {Pop.ADULTS}),
        ("FEM", {Pop.WOMEN}),
        ("MALE", {Pop.MEN}),
        ("PW", {Pop.PREGNANT}),
        ("VET", {Pop.VETERANS}),
        ("GL", {Pop.LGBTQ}),
        ("Perinatal", {Pop.PREGNANT}),
        ("LGBTQIA", {Pop.LGBTQ}),
        ("Youth", {Pop.ADOLESCENTS, Pop.YOUNG_ADULTS}),
        ("Parent/Guardian (Female) with Children", {Pop.PARENTS_WITH_CHILDREN, Pop.WOMEN}),
        ("Court Diversion, Probation/Parole, Re-entry", {Pop.CRIMINAL_JUSTICE}),
    ],
)
def test_populations(term: str, expected: set[Population]) -> None:
    assert map_populations([term]).values == expected


def test_languages_from_names_codes_and_run_together_scrapes() -> None:
    assert map_languages(["EnglishSpanish"]) == (frozenset({"en", "es"}), ())
    assert map_languages(["ArmenianEnglishKoreanRussianSpanishTagalog"])[0] == {"hy", "en", "ko", "ru", "es", "tl"}
    assert map_languages(["SP", "F17-Any Chinese Language", "F92", "es"])[0] == {"es", "zh", "vi"}
    assert map_languages(["Klingon"]) == (frozenset(), ("Klingon",))


def test_unknown_terms_are_reported() -> None:
    assert map_levels_of_care(["DUI", "DT"]).unmapped == ("DUI",)


@pytest.mark.parametrize(
    ("term", "values"),
    [
        ("Does not accept Medicaid", set()),
        ("No Medicaid or Medicare", set()),
        ("Non-Medicaid", set()),
        ("Medicaid not accepted", set()),
        ("Medicaid: no", set()),
        ("No cost", {Payment.FREE}),  # a phrase of its own, not a negation
        ("State-financed (other than Medicaid)", {Payment.STATE_FUNDED}),
    ],
)
def test_a_payment_said_not_to_be_taken_is_never_mapped_to_it_and_is_reported(term: str, values: set[Payment]) -> None:
    mapped = map_payment([term])
    assert mapped.values == values
    assert mapped.unmapped == (() if values else (term,))


@pytest.mark.parametrize(
    ("term", "values"),
    [
        ("Non-hospital residential detoxification", {L.DETOX, L.RESIDENTIAL}),  # "non-" binds "hospital" only
        ("Non-medical detox", {L.DETOX}),
        ("No-cost outpatient", {L.OUTPATIENT}),
        ("Buprenorphine - no methadone", {L.MAT}),  # the "no" is methadone's, whatever was read first
        ("Outpatient - not telehealth", {L.OUTPATIENT}),
    ],
)
def test_a_negation_takes_only_the_phrase_it_stands_by(term: str, values: set[LevelOfCare]) -> None:
    assert map_levels_of_care([term]).values == values


def test_a_population_or_level_said_not_to_be_served_is_reported_not_mapped() -> None:
    adults = map_populations(["Adults only - no adolescents"])
    assert (adults.values, adults.unmapped) == ({Population.ADULTS}, ("Adults only - no adolescents",))
    levels = map_levels_of_care(["Detox not offered", "No detox"])
    assert (levels.values, levels.unmapped) == (frozenset(), ("Detox not offered", "No detox"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Open - no waitlist", AvailabilityStatus.AVAILABLE),
        ("Accepting, no wait list", AvailabilityStatus.AVAILABLE),
        ("Not full", None),  # unrecognized (reported), never "full"
        ("No beds", AvailabilityStatus.FULL),
        ("Not accepting", AvailabilityStatus.FULL),
    ],
)
def test_a_status_word_said_not_to_hold_is_no_sign_of_it(text: str, expected: AvailabilityStatus | None) -> None:
    assert map_status(text) is expected


def test_overrides_come_first() -> None:
    assert map_levels_of_care(["OP"], {"OP": ["otp"]}).values == {L.OTP}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FULL", AvailabilityStatus.FULL),
        ("Waitlist (3)", AvailabilityStatus.WAITLIST),
        ("N/A", AvailabilityStatus.UNKNOWN),
        ("Open", AvailabilityStatus.AVAILABLE),
        ("No beds", AvailabilityStatus.FULL),
        ("Assessment required", AvailabilityStatus.ASSESSMENT_REQUIRED),
        ("Accepting new clients", AvailabilityStatus.AVAILABLE),
        ("Temporarily closed", AvailabilityStatus.CLOSED),
        ("limited", AvailabilityStatus.LIMITED),
        ("gibberish", None),
        ("2 beds", None),
    ],
)
def test_status_words(text: str, expected: AvailabilityStatus | None) -> None:
    assert map_status(text) == expected


def test_accepting_words() -> None:
    assert [map_accepting(t) for t in ("yes", "No", "existing clients only", "newpt", "maybe")] == [
        "new",
        "no",
        "existing_only",
        "new",
        None,
    ]


def test_every_los_angeles_county_service_code_maps() -> None:
    path = shared_file("la_county_sud_service_codes.csv")
    with path.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["category"] == "Treatment/Service Type" and r["service_code"]]
    unmapped = {
        r["service_code"]
        for r in rows
        if r["service_code"] != "DUI" and not map_levels_of_care([r["service_code"]]).values
    }
    assert rows
    assert unmapped == set()
    names = {r["service_name"] for r in rows}
    assert all(map_levels_of_care([n]).values for n in names if "Driving" not in n)


def test_los_angeles_county_client_served_and_languages_map() -> None:
    path = shared_file("la_county_sud_service_codes.csv")
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    languages = [r["service_name"] for r in rows if r["category"] == "Languages Spoken"]
    found, unmapped = map_languages(languages)
    assert unmapped == ("American Sign Language",)  # no ISO 639-1 code; the deaf population covers it
    assert {"ar", "hy", "km", "zh", "fa", "ko", "ru", "es", "tl", "vi"} <= found
    served = [r["service_name"] for r in rows if r["category"] == "Client Served"]
    mapped = map_populations(served)
    assert {
        Pop.ADULTS,
        Pop.WOMEN,
        Pop.PREGNANT,
        Pop.LGBTQ,
        Pop.VETERANS,
        Pop.HOMELESS,
        Pop.CO_OCCURRING,
        Pop.DEAF_HARD_OF_HEARING,
        Pop.CRIMINAL_JUSTICE,
    } <= mapped.values
