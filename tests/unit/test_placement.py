"""Placing a center when feed coordinates and ZIP disagree (the evidence decides, and says why); ages in words."""

from __future__ import annotations

from datetime import UTC, datetime

from aggregator.geocode import place_all
from aggregator.model import Address, Center, GeoPrecision
from aggregator.normalize import FeedContext, normalize_record

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
WORCESTER = (42.2624, -71.8003)  # a ZIP 01608 centroid


def center(city: str, zip_code: str, lat: float, lon: float) -> Center:
    return Center(
        id="f:1",
        feed_id="f",
        source_id="1",
        name="Harbor House",
        address=Address(address_1="1 Main St", city=city, state="MA", postal_code=zip_code),
        latitude=lat,
        longitude=lon,
        geo_precision=GeoPrecision.FEED,
        geo_source="f",
    )


def test_a_zip_typo_keeps_the_feeds_coordinates_when_the_city_agrees_with_them() -> None:
    # Worcester's coordinates and city, but Cambridge's ZIP (a typo): the ZIP must not move the center 58 km
    [placed], report = place_all([center("Worcester", "02139", *WORCESTER)], None, NOW)
    assert (placed.latitude, placed.longitude, placed.geo_precision) == (*WORCESTER, GeoPrecision.FEED)
    assert report.feed_over_zip == 1 and report.dropped_feed_coordinates == []
    [why] = report.decisions
    assert why.startswith("f:1: kept the feed's coordinates: the city Worcester agrees with them")
    assert "ZIP 02139 (Cambridge, 58 km away) does not: a ZIP typo" in why


def test_bad_coordinates_give_way_to_the_zip_when_the_city_agrees_with_the_zip() -> None:
    [placed], report = place_all([center("Cambridge", "02139", *WORCESTER)], None, NOW)
    assert placed.geo_precision is GeoPrecision.POSTAL_CODE
    assert round(placed.latitude or 0, 2) == 42.36
    assert report.feed_over_zip == 0
    assert report.dropped_feed_coordinates == ["f:1: 58 km from ZIP 02139"]
    assert report.decisions[0].startswith("f:1: dropped the feed's coordinates: the city Cambridge agrees with ZIP")


def test_without_a_city_to_judge_by_the_zip_wins_and_the_reason_says_so() -> None:
    [placed], report = place_all([center("", "02139", *WORCESTER)], None, NOW)
    assert placed.geo_precision is GeoPrecision.POSTAL_CODE
    assert report.decisions == [
        "f:1: coordinates 58 km from ZIP 02139 and no city to judge by; no geocoder: the ZIP centroid is used"
    ]


def test_coordinates_near_their_zip_are_kept_without_a_decision() -> None:
    [placed], report = place_all([center("Worcester", "01608", 42.27, -71.80)], None, NOW)
    assert placed.geo_precision is GeoPrecision.FEED
    assert report.decisions == [] and report.feed == 1


def test_an_unknown_zip_with_good_in_state_coordinates_is_kept_with_a_field_problem() -> None:
    raw = {
        "source_id": "A-1",
        "name": "Harbor House",
        "city": "Worcester",
        "state": "MA",
        "postal_code": "01699",
        "latitude": "42.2624",
        "longitude": "-71.8003",
    }
    result = normalize_record(raw, FeedContext(feed_id="f", now=NOW))
    assert result.center is not None
    assert result.center.address.postal_code == "01608"  # the ZIP nearest the coordinates
    assert [(p.field, p.reason) for p in result.problems] == [
        ("postal_code", "ZIP 01699 does not exist; ZIP 01608, nearest the feed's coordinates, is used instead")
    ]


def test_an_unknown_zip_without_coordinates_is_still_rejected() -> None:
    raw = {"source_id": "A-1", "name": "Harbor House", "state": "MA", "postal_code": "01699"}
    result = normalize_record(raw, FeedContext(feed_id="f", now=NOW))
    assert result.center is None
    assert [(p.field, p.reason) for p in result.problems] == [("postal_code", "ZIP 01699 does not exist")]


def test_an_age_reads_in_words_and_is_never_negative_or_zero() -> None:
    from aggregator.lookup import age_words

    assert [age_words(s) for s in (-188, 0, 9, 45, 600, 7200, 3 * 86400)] == [
        "a few seconds",
        "a few seconds",
        "a few seconds",
        "45 seconds",
        "10 minutes",
        "2 hours",
        "3 days",
    ]
