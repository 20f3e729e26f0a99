"""How the public page words availability, ages, distances, phones and directions, in English and Spanish;
and how it reads its form. Stale figures are never shown as live; an error or a missing report never reads
as "0 beds"."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import QueryParams

from aggregator.api.find import (
    DEFAULT_RADIUS,
    age_words,
    availability_words,
    center_view,
    directions_href,
    hint_view,
    miles_words,
    parse_query,
    tel_href,
)
from aggregator.i18n import translations

EN, ES = translations("en"), translations("es")


def entry(**kw: Any) -> dict[str, Any]:
    base = {
        "level_of_care": "detox",
        "status": "available",
        "beds_available": 3,
        "age_seconds": 1200,
        "fresh": True,
        "accepting": None,
        "waitlist_size": None,
        "appointments_available": None,
    }
    return base | kw


@pytest.mark.parametrize(
    ("seconds", "en", "es"),
    [
        (0, "a few seconds", "unos segundos"),
        (45, "45 seconds", "45 segundos"),
        (60 * 20, "20 minutes", "20 minutos"),
        (60, "60 seconds", "60 segundos"),
        (90, "2 minutes", "2 minutos"),
        (3600 * 9, "9 hours", "9 horas"),
        (5400, "2 hours", "2 horas"),
        (86400 * 3, "3 days", "3 días"),
    ],
)
def test_age_words(seconds: int, en: str, es: str) -> None:
    assert age_words(seconds, EN) == en and age_words(seconds, ES) == es


def test_live_figures_are_worded_with_their_age() -> None:
    words = availability_words(entry(), EN)
    assert words == {
        "level": "Detox (withdrawal management)",
        "status": "Open",
        "kind": "open",
        "symbol": "✓",
        "detail": "3 beds open",
        "age": "confirmed 20 minutes ago",
    }
    assert availability_words(entry(beds_available=1, status="limited"), EN)["detail"] == "1 bed open"
    es = availability_words(entry(), ES)
    assert (es["status"], es["detail"], es["age"]) == ("Con plazas", "3 camas libres", "confirmado hace 20 minutos")


def test_stale_or_unreported_reads_call_to_check_never_the_old_figure() -> None:
    stale = availability_words(entry(fresh=False, age_seconds=9 * 3600, status="unknown", beds_available=None), EN)
    assert (stale["status"], stale["detail"], stale["age"]) == ("Call to check", "", "last confirmed 9 hours ago")
    # even if a stale figure reached the page, it is not shown
    leaked = availability_words(entry(fresh=False, age_seconds=9 * 3600), EN)
    assert leaked["status"] == "Call to check" and "3" not in leaked["detail"] + leaked["status"]
    never = availability_words(entry(age_seconds=None, fresh=False, status="unknown", beds_available=None), EN)
    assert (never["status"], never["age"]) == ("Call to check", "No recent report")
    assert availability_words(entry(age_seconds=None, fresh=False), ES)["status"] == "Llame para confirmar"


@pytest.mark.parametrize(
    ("status", "words", "kind"),
    [
        ("full", "Full", "no"),
        ("closed", "Closed", "no"),
        ("waitlist", "Waitlist", "wait"),
        ("assessment_required", "Assessment first", "wait"),
        ("unknown", "Call to check", "unknown"),
    ],
)
def test_every_status_is_in_words(status: str, words: str, kind: str) -> None:
    got = availability_words(entry(status=status, beds_available=0), EN)
    assert (got["status"], got["kind"]) == (words, kind)
    assert "0 beds" not in got["detail"]  # a full center says "Full", not a count


def test_details() -> None:
    assert availability_words(entry(status="waitlist", waitlist_size=4), EN)["detail"] == "4 people waiting"
    assert (
        availability_words(entry(beds_available=None, appointments_available=2), EN)["detail"]
        == "2 intake appointments open"
    )
    assert (
        availability_words(entry(accepting="existing_only", beds_available=0), EN)["detail"] == "current clients only"
    )
    assert availability_words(entry(beds_available=0), EN)["detail"] == ""


def test_phones_distances_and_directions() -> None:
    assert tel_href("1-800-662-4357") == "tel:+18006624357"
    assert tel_href("+16175550142") == "tel:+16175550142"
    assert tel_href("(617) 555-0142", "12") == "tel:+16175550142;ext=12"
    assert tel_href("988") == "tel:988"
    assert miles_words(0.03, EN, "en") == "0.1 miles"
    assert miles_words(1.0, EN, "en") == "1 mile"
    assert miles_words(12.34, ES, "es") == "12,3 millas"
    assert (
        directions_href({"latitude": 42.365, "longitude": -71.1035})
        == "https://www.google.com/maps/dir/?api=1&destination=42.365000,-71.103500"
    )
    assert (
        directions_href(
            {"address": {"address_1": "12 River St", "city": "Cambridge", "state": "MA", "postal_code": "02139"}}
        )
        == "https://www.google.com/maps/dir/?api=1&destination=12%20River%20St,%20Cambridge,%20MA%2002139"
    )


def test_a_center_card() -> None:
    hit = {
        "id": "f:1",
        "name": "Harbor House",
        "distance_mi": 2.04,
        "address": {"address_1": "1 Main St", "city": "Cambridge", "state": "MA", "postal_code": "02139"},
        "latitude": 42.36,
        "longitude": -71.1,
        "phones": [{"number": "+16175550101", "role": "main"}, {"number": "+16175550102", "role": "intake"}],
        "availability": [entry(level_of_care="residential"), entry()],
    }
    card = center_view(hit, EN, "en", level="detox")
    assert card["address"] == "1 Main St, Cambridge, MA 02139" and card["distance"] == "2 miles"
    assert [c["text"] for c in card["calls"]] == ["Call intake (617) 555-0102", "Call (617) 555-0101"]
    assert [v["code"] for v in card["levels"]] == ["detox", "residential"]  # the level searched for first


def test_the_form() -> None:
    q = parse_query(QueryParams("place=+02139+&level_of_care=detox&payment=bogus&radius_mi=30&available_only=on"))
    assert (q.place, q.level, q.payment, q.radius, q.available_only, q.submitted) == (
        "02139",
        "detox",
        "",
        25,
        True,
        True,
    )
    assert parse_query(QueryParams("")).submitted is False
    assert parse_query(QueryParams("")).radius == DEFAULT_RADIUS
    located = parse_query(QueryParams("place=&lat=42.36512&lon=-71.10398"))
    assert (located.latitude, located.longitude, located.place, located.errors) == (42.365, -71.104, "", [])
    assert located.params() == {"lat": "42.365", "lon": "-71.104", "radius_mi": "25"}
    assert parse_query(QueryParams("lat=95&lon=1")).errors == ["location"]
    assert parse_query(QueryParams("lat=nan&lon=1")).errors == ["location"]


def test_the_hint_as_links() -> None:
    q = parse_query(QueryParams("place=01002&level_of_care=detox&payment=medicaid&available_only=on&radius_mi=10"))
    hint = {
        "suggestions": [
            {"change": "wider_radius", "radius_mi": 100.0, "nearest_mi": 71.24},
            {"change": "include_unconfirmed_availability", "nearest_mi": 8.0},
            {"change": "drop_filter", "filter": "payment", "nearest_mi": 9.5},
            {"change": "drop_all_filters", "nearest_mi": 1.0},
        ]
    }
    out = hint_view(hint, q, "/find", EN, "en")
    assert [h["text"] for h in out] == [
        "Within 100 miles, the nearest center is 71.2 miles away.",
        "Not only centers confirmed open now: the nearest is 8 miles away.",
        "Without the payment filter, the nearest is 9.5 miles away.",
        "Without any filter, the nearest is 1 mile away.",
    ]
    assert out[0]["href"] == "/find?place=01002&level_of_care=detox&payment=medicaid&radius_mi=100&available_only=on"
    assert out[1]["href"] == "/find?place=01002&level_of_care=detox&payment=medicaid&radius_mi=10"
    assert out[2]["href"] == "/find?place=01002&level_of_care=detox&radius_mi=10&available_only=on"
    assert out[3]["href"] == "/find?place=01002&radius_mi=10"
    es = hint_view(hint, q, "/es/find", ES, "es")
    assert es[2]["text"] == "Sin el filtro de pago, el más cercano está a 9,5 millas."
