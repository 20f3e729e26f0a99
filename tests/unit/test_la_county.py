"""Los Angeles County's SUD Service & Bed Availability Tool: the partner parser, and the real scrape end to end."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from aggregator.errors import ParseError
from aggregator.feeds import Document, parser_for
from aggregator.feeds.mapping import RecordMapping, stable_id
from aggregator.feeds.partners.la_county import (
    COLUMNS,
    SECONDARY_LABEL,
    Address,
    Program,
    availability,
    languages,
    parse,
    parse_address,
    parse_beds,
    population_phrases,
    source_id,
)
from aggregator.ingest import IngestReport, context_for, normalize_all
from aggregator.model import Availability, Center
from aggregator.normalize import FeedContext, normalize_record
from config import registry
from tests.conftest import shared_file

HEADER = ",".join(COLUMNS)


def csv_body(*rows: dict[str, str]) -> bytes:
    lines = [HEADER] + [",".join(f'"{row.get(c, "")}"' for c in COLUMNS) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode()


def counts(programs: list[Program]) -> list[tuple[str, list[tuple[str, int]]]]:
    return [(p.code, p.counts) for p in programs]


# --------------------------------------------------------------------------------------------------
# Bed strings


def test_run_together_bed_string_splits_into_programs_with_counts_by_group() -> None:
    programs, unparsed = parse_beds("RS(3.1)Adult - M: 6RS(3.5)Adult - M: 6R-WMAdult - M: 0")
    assert counts(programs) == [
        ("RS(3.1)", [("Adult - M", 6)]),
        ("RS(3.5)", [("Adult - M", 6)]),
        ("R-WM", [("Adult - M", 0)]),
    ]
    assert unparsed == []


def test_a_code_running_into_its_first_group_is_told_apart() -> None:
    programs, _ = parse_beds("RBHAdult - M: 0Adult - F: 0")
    assert counts(programs) == [("RBH", [("Adult - M", 0), ("Adult - F", 0)])]
    programs, _ = parse_beds("RBHAdult - F: 0Youth - F: 0")
    assert counts(programs) == [("RBH", [("Adult - F", 0), ("Youth - F", 0)])]


def test_spaces_and_multi_digit_counts_are_read() -> None:
    programs, unparsed = parse_beds("RS (3.1) Adult - M: 12\xa0I-WMAdult - F: 105")
    assert counts(programs) == [("RS(3.1)", [("Adult - M", 12)]), ("I-WM", [("Adult - F", 105)])]
    assert unparsed == []


def test_an_empty_bed_string_has_no_programs() -> None:
    assert parse_beds("") == ([], [])
    assert availability([]) == []


def test_groups_of_one_program_are_summed_men_and_women_are_different_beds() -> None:
    programs, _ = parse_beds("RBHAdult - M: 2Adult - F: 1")
    assert availability(programs) == [
        {"level_of_care": "RBH", "beds_available": 3, "notes": "RBH Adult - M: 2, Adult - F: 1"}
    ]


def test_sub_levels_of_one_family_count_the_largest_per_group_never_the_sum() -> None:
    # RS(3.1) and RS(3.5) are the same residential beds seen at two intensities: 6 and 6 is 6, not 12
    programs, _ = parse_beds("RS(3.1)Adult - M: 6RS(3.5)Adult - M: 6R-WMAdult - M: 0")
    assert availability(programs) == [
        {"level_of_care": "RS", "beds_available": 6, "notes": "RS(3.1) Adult - M: 6; RS(3.5) Adult - M: 6"},
        {"level_of_care": "R-WM", "beds_available": 0, "notes": "R-WM Adult - M: 0"},
    ]
    programs, _ = parse_beds("RS(3.1)Adult - M: 3Adult - F: 0RS(3.3)Adult - F: 2RS(3.5)Adult - M: 1Adult - F: 1")
    [entry] = availability(programs)
    assert entry["beds_available"] == 3 + 2  # men: max(3, 1); women: max(0, 2, 1)


def test_a_single_sub_level_keeps_its_own_code() -> None:
    programs, _ = parse_beds("RS(3.1)Adult - F: 0")
    assert availability(programs)[0]["level_of_care"] == "RS(3.1)"


def test_a_program_without_counts_is_an_entry_without_a_count() -> None:
    programs, unparsed = parse_beds("RBH")
    assert (counts(programs), unparsed) == ([("RBH", [])], [])
    assert availability(programs) == [{"level_of_care": "RBH", "notes": "RBH"}]


def test_an_unreadable_program_is_left_out_whole_and_reading_resumes_at_the_next() -> None:
    text = "RS(3.1)Adult - M: 3Adult - F: 0RS(3.5)Adult - M: ?Adult - F: 0R-WMAdult - M: 1Adult - F: 1"
    programs, unparsed = parse_beds(text)
    assert counts(programs) == [
        ("RS(3.1)", [("Adult - M", 3), ("Adult - F", 0)]),
        ("R-WM", [("Adult - M", 1), ("Adult - F", 1)]),
    ]
    assert unparsed == ["RS(3.5)Adult - M: ?Adult - F: 0"]
    assert availability(programs, unparsed)[-1] == {
        "level_of_care": "RS(3.5)",
        "beds_available": "RS(3.5)Adult - M: ?Adult - F: 0",
    }


def test_text_with_no_program_code_is_passed_on_for_normalization_to_name() -> None:
    programs, unparsed = parse_beds("beds: call us")
    assert (programs, unparsed) == ([], ["beds: call us"])
    assert availability(programs, unparsed) == [{"level_of_care": "beds: call us", "beds_available": "beds: call us"}]


# --------------------------------------------------------------------------------------------------
# Addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "426 San Pedro Street,Los Angeles, CA\xa090013",
            Address("426 San Pedro Street", "Los Angeles", "CA", "90013"),
        ),
        (
            "1644 Wilshire Boulevard, Suite 101,Los Angeles, CA\xa090017",
            Address("1644 Wilshire Boulevard, Suite 101", "Los Angeles", "CA", "90017"),
        ),
        (
            "1750 South La Cienega Boulevard,  Suites A, B, C and D,Los Angeles, CA\xa090035",
            Address("1750 South La Cienega Boulevard, Suites A, B, C and D", "Los Angeles", "CA", "90035"),
        ),
        (
            "13211 Whittier Boulevard, Unit H ,Whittier, CA\xa090602",
            Address("13211 Whittier Boulevard, Unit H", "Whittier", "CA", "90602"),
        ),
        (
            "10603, 10607, 10615, 10621 Downey Avenue,Downey, CA 90241",
            Address("10603, 10607, 10615, 10621 Downey Avenue", "Downey", "CA", "90241"),
        ),
        (
            "426 San Pedro Street,Los Angeles, ca 90013-1234",
            Address("426 San Pedro Street", "Los Angeles", "CA", "90013-1234"),
        ),
    ],
)
def test_street_city_state_and_zip_are_split_at_the_last_commas(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


def test_a_confidential_site_has_an_empty_street() -> None:
    assert parse_address(",Los Angeles, CA\xa090013") == Address("", "Los Angeles", "CA", "90013")
    assert parse_address("Winnetka, CA\xa091306") == Address("", "Winnetka", "CA", "91306")


def test_an_unreadable_address_is_all_street_with_no_state_or_zip() -> None:
    assert parse_address("88 Orchard Lane Los Angeles") == Address("88 Orchard Lane Los Angeles")
    assert parse_address("") == Address()


# --------------------------------------------------------------------------------------------------
# Populations and languages


def test_split_client_served_phrases_are_reassembled() -> None:
    text = (
        "Adult; M; A; T; Parent/; Guardian (; Female) with; Children; Parent/; Guardian (; Male) with; "
        "Children; Perinatal; Co-; Occurring; Mental; Health; Capabilities; L; G; B; T; Q; Veterans; Homeless; "
        "Criminal; Justice"
    )
    assert population_phrases(text) == [
        "Adult",
        "MAT",
        "Parent/Guardian (Female) with Children",
        "Parent/Guardian (Male) with Children",
        "Perinatal",
        "Co-Occurring Mental Health Capabilities",
        "LGBTQ",
        "Veterans",
        "Homeless",
        "Criminal Justice",
    ]


def test_mat_right_before_lgbtq_is_two_phrases() -> None:
    assert population_phrases("M; A; T; L; G; B; T; Q; Veterans") == ["MAT", "LGBTQ", "Veterans"]


def test_unknown_tokens_pass_through_one_by_one() -> None:
    assert population_phrases("Youth; Visually; Impaired/; Blind;; ") == ["Youth", "Visually", "Impaired/", "Blind"]
    assert population_phrases("") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EnglishSpanish", ["English", "Spanish"]),
        ("English, Spanish", ["English", "Spanish"]),
        ("American Sign LanguageEnglishSpanish", ["American Sign Language", "English", "Spanish"]),
        ("English, Japanese, Other Chinese Languages", ["English", "Japanese", "Other Chinese Languages"]),
        ("", []),
    ],
)
def test_run_together_languages_are_split_where_a_name_ends(text: str, expected: list[str]) -> None:
    assert languages(text) == expected


# --------------------------------------------------------------------------------------------------
# Records

DETAIL = {
    "agency_name": "SUNRISE HOUSE FOUNDATION",
    "agency_name_secondary": "Sunrise Residential",
    "agency_address": "455 West 7th Street,San Pedro, CA\xa090731",
    "agency_phone": "(310) 555-0187",
    "agency_website": "http://www.example.org/",
    "available_beds": "RS(3.1)Adult - M: 6RS(3.5)Adult - M: 6",
    "populations_served": "Adult; M; A; T; Homeless",
    "languages_spoken": "EnglishSpanish",
    "last_updated": "Last Updated: 8/13/2025 8:42:02 AM",
}
#: the same listing as the tool's list view prints it
LISTED = {
    **DETAIL,
    "agency_name_secondary": SECONDARY_LABEL,
    "agency_website": "",
    "populations_served": "",
    "languages_spoken": "English, Spanish",
}


def test_a_row_becomes_a_raw_record() -> None:
    [raw] = parse([Document("http://x/beds.csv", csv_body(DETAIL))], RecordMapping())
    assert raw == {
        "source_id": stable_id(
            ("SUNRISE HOUSE FOUNDATION", "Sunrise Residential", "455 West 7th Street,San Pedro, CA 90731")
        ),
        "name": "SUNRISE HOUSE FOUNDATION",
        "alternate_name": "Sunrise Residential",
        "address_1": "455 West 7th Street",
        "city": "San Pedro",
        "state": "CA",
        "postal_code": "90731",
        "phone": "(310) 555-0187",
        "website": "http://www.example.org/",
        "levels_of_care": ["RS(3.1)", "RS(3.5)", "MAT"],
        "populations": ["Adult", "Homeless"],
        "languages": ["English", "Spanish"],
        "reported_at": "Last Updated: 8/13/2025 8:42:02 AM",
        "availability": [
            {"level_of_care": "RS", "beds_available": 6, "notes": "RS(3.1) Adult - M: 6; RS(3.5) Adult - M: 6"},
        ],
    }


def test_mapping_constants_are_kept() -> None:
    [raw] = parse([Document("u", csv_body(DETAIL))], RecordMapping(constants={"source_url": "https://example.org/"}))
    assert raw["source_url"] == "https://example.org/"


def test_the_list_view_takes_the_secondary_name_of_its_detail_view_twin() -> None:
    detail, listed = parse([Document("u", csv_body(DETAIL, LISTED))], RecordMapping())
    assert listed["source_id"] == detail["source_id"]
    assert listed["alternate_name"] == "Sunrise Residential"


def test_a_list_view_row_without_one_twin_shows_no_secondary_name_and_keeps_its_own_id() -> None:
    other = {**DETAIL, "agency_name_secondary": "Sunrise Annex"}
    rows = parse([Document("u", csv_body(DETAIL, other, LISTED))], RecordMapping())
    listed = rows[-1]
    assert "alternate_name" not in listed
    assert listed["source_id"] == stable_id(("SUNRISE HOUSE FOUNDATION", SECONDARY_LABEL, DETAIL["agency_address"]))
    assert len({r["source_id"] for r in rows}) == 3


#: two confidential recovery houses of one agency in one ZIP: no street, no secondary name
HOUSE_A = {
    "agency_name": "HARBOR RECOVERY HOMES",
    "agency_name_secondary": "",
    "agency_address": ",San Pedro, CA\xa090731",
    "agency_phone": "(310) 555-0140",
    "agency_website": "http://www.example.org/",
    "available_beds": "RBHAdult - F: 0",
    "populations_served": "Adult; Homeless",
    "languages_spoken": "EnglishSpanish",
    "last_updated": "Last Updated: 8/13/2025 9:45:39 AM",
}
HOUSE_B = {**HOUSE_A, "agency_phone": "(310) 555-0141"}


def listed(row: dict[str, str]) -> dict[str, str]:
    """The list view of a detail-view row: secondary name hidden behind the label (an empty one stays
    empty), no website, no populations, languages spelled apart."""
    return {
        **row,
        "agency_name_secondary": SECONDARY_LABEL if row["agency_name_secondary"] else "",
        "agency_website": "",
        "populations_served": "",
        "languages_spoken": "English, Spanish",
    }


def test_confidential_houses_of_one_agency_in_one_zip_are_told_apart_by_their_phones() -> None:
    # the tool's order: the detail view of every listing, then the list view of every listing
    a, b, a_listed, b_listed = parse(
        [Document("u", csv_body(HOUSE_A, HOUSE_B, listed(HOUSE_A), listed(HOUSE_B)))], RecordMapping()
    )
    assert a["source_id"] != b["source_id"]  # two houses, two ids
    assert (a_listed["source_id"], b_listed["source_id"]) == (a["source_id"], b["source_id"])  # one per house
    assert a["source_id"] == stable_id(("HARBOR RECOVERY HOMES", "", ",San Pedro, CA 90731", "3105550140"))


def test_the_list_view_of_a_named_confidential_house_keeps_the_id_of_its_detail_view() -> None:
    named = {**HOUSE_A, "agency_name_secondary": "Harbor Bridge Housing"}
    detail, shown = parse([Document("u", csv_body(named, listed(named)))], RecordMapping())
    assert (
        shown["source_id"]
        == detail["source_id"]
        == stable_id(("HARBOR RECOVERY HOMES", "Harbor Bridge Housing", ",San Pedro, CA 90731", "3105550140"))
    )


def test_a_confidential_id_takes_the_phone_digits_not_how_they_are_printed() -> None:
    confidential = ",San Pedro, CA 90731"
    assert source_id("A", "", confidential, "", "(310) 555-0140") == source_id(
        "A", "", confidential, "", "310-555-0140"
    )
    assert source_id("A", "", confidential, "", "(310) 555-0140") != source_id("A", "", confidential, "", "")
    # a site with a street: name, secondary name and address only, whatever its phone
    street = "455 West 7th Street,San Pedro, CA 90731"
    assert source_id("A", "B", street, "455 West 7th Street", "(310) 555-0140") == stable_id(("A", "B", street))


def test_confidential_houses_sharing_agency_zip_and_phone_still_share_an_id() -> None:
    # nothing stable tells them apart: not the bed string nor the update time (the report itself)
    other = {**HOUSE_A, "available_beds": "RBHAdult - M: 2", "last_updated": "Last Updated: 8/13/2025 9:50:00 AM"}
    a, other_house = parse([Document("u", csv_body(HOUSE_A, other))], RecordMapping())
    assert a["source_id"] == other_house["source_id"]


def test_a_changed_layout_is_a_parse_error_naming_the_missing_columns() -> None:
    body = b'agency_name,agency_address\nA,"1 Main St,Los Angeles, CA 90013"\n'
    with pytest.raises(ParseError, match="available_beds"):
        parse([Document("u", body)], RecordMapping())


def test_rows_that_cannot_be_read_still_become_records_that_normalization_rejects_with_a_reason() -> None:
    body = csv_body(
        {"agency_name": "ORCHARD HOUSE", "agency_address": "88 Orchard Lane Los Angeles"},
        {"agency_address": ",Los Angeles, CA 90013", "available_beds": "RBHAdult - M: 1"},
    )
    raws = parse([Document("u", body)], RecordMapping())
    assert len(raws) == 2
    ctx = FeedContext(feed_id="la", now=datetime(2025, 8, 14, 18, tzinfo=UTC), timezone="America/Los_Angeles")
    reasons = [[(p.field, p.reason) for p in normalize_record(r, ctx).problems] for r in raws]
    assert reasons == [[("state", "empty")], [("name", "missing")]]


def test_an_unreadable_bed_count_is_a_problem_of_that_observation_only() -> None:
    row = {**DETAIL, "available_beds": "RS(3.1)Adult - M: lotsRBHAdult - F: 1"}
    [raw] = parse([Document("u", csv_body(row))], RecordMapping())
    ctx = FeedContext(feed_id="la", now=datetime(2025, 8, 14, 18, tzinfo=UTC), timezone="America/Los_Angeles")
    result = normalize_record(raw, ctx)
    assert result.center is not None
    assert [(a.level_of_care.value, a.beds_available) for a in result.availability] == [("recovery_housing", 1)]
    assert [(p.field, p.reason) for p in result.problems] == [
        ("availability.1.beds_available", "'RS(3.1)Adult - M: lots' is not a count"),
    ]


# --------------------------------------------------------------------------------------------------
# The real scrape: 760 rows of 2025-08-14, read in place

REAL = "la_county_sud_bed_availability_2025-08-14.csv"
#: the latest "Last Updated" in the file is 8/14/2025 9:37:40 AM PDT (16:37:40Z): the scrape came after it
SCRAPED = datetime(2025, 8, 14, 18, 0, tzinfo=UTC)
FEED = {
    "id": "la-county-sbat",
    "format": "csv",
    "parser": "la_county",
    "source": "scrape",
    "url": "http://127.0.0.1/feeds/la-county/beds.csv",
    "allow_private": True,
    "timezone": "America/Los_Angeles",
    "freshness": "48h",
    "max_report_age": "30d",
}

Result = tuple[list[Center], list[Availability], IngestReport]


@pytest.fixture(scope="module")
def real() -> Result:
    [feed] = registry.parse({"feed": [FEED]}, "test", frozenset({"la_county"})).feeds
    body = shared_file(REAL).read_bytes()
    raws = parser_for("la_county")([Document(feed.url, body)], feed.mapping)
    return normalize_all(raws, context_for(feed, SCRAPED))


def center(
    result: Result, name: str, alternate_name: str = "", **address: str
) -> tuple[Center, dict[str, Availability]]:
    """The one center so named (and at that address), and its observations by level."""
    centers, observations, _ = result
    [found] = [
        c
        for c in centers
        if c.name == name and c.alternate_name == alternate_name and address.items() <= c.address.model_dump().items()
    ]
    return found, {o.level_of_care.value: o for o in observations if o.center_id == found.id}


def services(c: Center) -> dict[str, Any]:
    return c.services.model_dump(mode="json")


@pytest.mark.shared_data
def test_every_real_row_is_accounted_for(real: Result) -> None:
    centers, observations, report = real
    assert report.records == 760
    assert report.accepted == len(centers) == 338
    assert report.rejected == 422
    assert report.observations == len(observations) == 180
    # The file holds every listing twice (detail view, then list view: 380 + 380 rows). The two views of
    # a listing never differ in beds or update time (only in website, populations, languages, hours and
    # wheelchair text), so the newest-report rule has a tie there and keeps the detail view: 380.
    # The detail view holds 380 listings but only 338 ids: 41 more houses share agency, city/ZIP, phone and
    # an empty street with an earlier one and have no (or the same) secondary name; 1 more is a second
    # outpatient listing at a street address of the same agency (SOUTHERN CALIFORNIA ALCOHOL AND DRUG
    # PROGRAMS, 11500 Paramount Boulevard, Downey). Those 42 are different listings, not repeated reports:
    # ingestion keeps the newest report of each id, and the other houses' beds are lost (2 more houses,
    # told apart by their phones, are kept since confidential ids take the phone).
    assert dict(report.problems_by_reason) == {
        "source_id: repeated in this feed; the newest report was kept": 380 + 42,
        "availability.reported_at: reported N years ago (N); older than this feed keeps": 1,
    }
    assert [(p.record, p.field, p.reason) for p in report.field_problems] == [
        (
            "f8d9c129a169119a",
            "availability.0.reported_at",
            "reported 5.1 years ago (2020-07-09); older than this feed keeps",
        ),
    ]
    assert not [c for c in centers if SECONDARY_LABEL in c.alternate_name]
    assert sum(1 for c in centers if not c.address.address_1) == 82  # confidential sites (",City, CA ZIP")


@pytest.mark.shared_data
def test_real_observations_by_level_and_status(real: Result) -> None:
    _, observations, report = real
    assert Counter(f"{o.level_of_care.value}:{o.status.value}" for o in observations) == {
        "residential:full": 57,
        "residential:limited": 7,
        "residential:available": 9,
        # 2 houses told apart by phone, both full. Where houses sharing an id report at the same minute, the one
        # whose row says more is kept, whatever the order (one kept that way is full where the first was limited)
        "recovery_housing:full": 56,
        "recovery_housing:limited": 24,
        "detox:full": 24,
        "detox:limited": 3,
    }
    beds = Counter[str]()
    for o in observations:
        beds[o.level_of_care.value] += o.beds_available or 0
    assert beds == {"residential": 55, "recovery_housing": 40, "detox": 5}
    assert len({o.center_id for o in observations}) == 154
    assert dict(report.unmapped) == {
        "populations: Physically Disabled": 32,
        "populations: Sexually-Exploited": 25,
        "populations: Developmentally Disabled/Delayed": 15,
        "languages: American Sign Language": 8,
    }


@pytest.mark.shared_data
def test_real_outpatient_site_with_mat_and_split_populations(real: Result) -> None:
    c, obs = center(
        real, "LOS ANGELES CENTERS FOR ALCOHOL AND DRUG ABUSE", "Downtown Los Angeles Outpatient - San Pedro"
    )
    assert c.address.model_dump() == {
        "address_1": "426 San Pedro Street",
        "address_2": "",
        "city": "Los Angeles",
        "state": "CA",
        "postal_code": "90013",
        "country": "US",
    }
    assert [p.number for p in c.phones] == ["+12136266411"]
    assert services(c) == {
        "levels_of_care": ["mat"],
        "payment": [],
        "populations": [
            "adults",
            "co_occurring",
            "criminal_justice",
            "homeless",
            "lgbtq",
            "men",
            "parents_with_children",
            "veterans",
            "women",
        ],
        "languages": ["es"],
    }
    assert obs == {}


@pytest.mark.shared_data
def test_real_residential_levels_are_not_double_counted(real: Result) -> None:
    c, obs = center(real, "SADLER HEALTHCARE, INC.", "Menlo House")
    assert (c.address.address_1, c.address.city, c.address.postal_code) == ("1731 Menlo Avenue", "Los Angeles", "90006")
    assert services(c)["levels_of_care"] == ["detox", "residential"]
    res, detox = obs["residential"], obs["detox"]
    assert (res.status.value, res.beds_available) == ("available", 6)  # RS(3.1) 6 and RS(3.5) 6: not 12
    assert res.notes == "RS(3.1) Adult - M: 6; RS(3.5) Adult - M: 6"
    assert (detox.status.value, detox.beds_available, detox.notes) == ("full", 0, "R-WM Adult - M: 0")
    assert res.reported_at == datetime(2025, 8, 14, 16, 15, 12, tzinfo=UTC)  # 9:15:12 AM PDT

    c, obs = center(real, "TARZANA TREATMENT CENTERS, INC.", address_1="44447 North 10th Street, West, Building C")
    assert obs["residential"].beds_available == 10  # youth: men 5 + women 5, at 3.1 and 3.5 alike
    c, obs = center(real, "DIDI HIRSCH PSYCHIATRIC SERVICE", "Via Avanta")
    assert c.address.address_1 == ""
    assert obs["residential"].beds_available == 4  # women: 2 at 3.1, 2 at 3.3, 4 at 3.5
    assert (obs["detox"].status.value, obs["detox"].beds_available) == ("limited", 2)


@pytest.mark.shared_data
def test_real_confidential_recovery_house(real: Result) -> None:
    c, obs = center(real, "LOS ANGELES CENTERS FOR ALCOHOL AND DRUG ABUSE", "L.A. CADA @ LA Mission")
    assert (c.address.address_1, c.address.city, c.address.state, c.address.postal_code) == (
        "",
        "Los Angeles",
        "CA",
        "90013",
    )
    assert services(c)["levels_of_care"] == ["recovery_housing"]
    [rbh] = obs.values()
    assert (rbh.level_of_care.value, rbh.status.value, rbh.beds_available, rbh.notes) == (
        "recovery_housing",
        "full",
        0,
        "RBH Adult - M: 0",
    )
    assert rbh.reported_at == datetime(2025, 8, 13, 15, 42, 1, tzinfo=UTC)  # 8:42:01 AM PDT


@pytest.mark.shared_data
def test_real_report_from_2020_keeps_the_center_but_not_its_beds(real: Result) -> None:
    c, obs = center(real, "PHOENIX HOUSES OF LOS ANGELES, INC.", "Phoenix House of Orange County")
    assert c.source_id == "f8d9c129a169119a"
    assert (c.address.address_1, c.address.city, c.address.postal_code) == (
        "1207 East Fruit Street",
        "Santa Ana",
        "92701",
    )
    assert services(c)["levels_of_care"] == ["mat", "residential"]
    assert obs == {}


@pytest.mark.shared_data
def test_real_confidential_houses_sharing_an_id_keep_only_the_newest_listing(real: Result) -> None:
    # Known limitation: seven Tarzana recovery houses in Reseda (men's and women's, 2 beds each) have the
    # same hidden address, no secondary name and one phone, (800) 996-1051: one id. Only the newest
    # report is kept (a men's house, 9:17:53 AM PDT; the others reported at 9:14:04 and 9:16:39), so the
    # women's beds there are not shown.
    _, obs = center(real, "TARZANA TREATMENT CENTERS, INC.", address_1="", city="Reseda", postal_code="91335")
    assert [(o.beds_available, o.notes) for o in obs.values()] == [(2, "RBH Adult - M: 2")]
    assert obs["recovery_housing"].reported_at == datetime(2025, 8, 14, 16, 17, 53, tzinfo=UTC)


@pytest.mark.shared_data
def test_real_confidential_houses_with_different_phones_are_kept_apart(real: Result) -> None:
    centers, observations, _ = real

    def houses(name: str, postal_code: str) -> list[tuple[list[str], list[str]]]:
        found = [
            c
            for c in centers
            if c.name == name
            and not c.address.address_1
            and c.address.postal_code == postal_code
            and not c.alternate_name
        ]
        return [([p.number for p in c.phones], [o.notes for o in observations if o.center_id == c.id]) for c in found]

    # L.A. CADA's two houses in Long Beach 90806, each with its own phone
    assert houses("LOS ANGELES CENTERS FOR ALCOHOL AND DRUG ABUSE", "90806") == [
        (["+15629824018"], ["RBH Adult - M: 0, Adult - F: 0"]),
        (["+15626764259"], ["RBH Adult - M: 0"]),
    ]
    # House of Hope's six houses in San Pedro 90731 have two phones between them: two ids (4 houses lost)
    assert houses("HOUSE OF HOPE FOUNDATION, INC.", "90731") == [
        (["+13108319411"], ["RBH Adult - F: 0"]),
        (["+13105219209"], ["RBH Adult - F: 0"]),
    ]
