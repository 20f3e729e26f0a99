"""All 14,034 SAMHSA facilities through the core; near 02139 finds real Cambridge/Boston facilities."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aggregator.feeds import csv as csv_feed
from aggregator.geography import haversine_mi
from aggregator.ingest import normalize_all
from aggregator.local.sample import SAMHSA_FEED, SAMHSA_MAPPING, load_samhsa
from aggregator.lookup import near
from aggregator.model import Source
from aggregator.normalize import FeedContext
from aggregator.store import Store
from tests.conftest import shared_file
from tests.integration.factories import NOW


@pytest.fixture(scope="module")
def samhsa_report(redis_url: str) -> object:
    store = Store.from_url(redis_url, prefix="samhsa-test:")
    for key in store.redis.scan_iter("samhsa-test:*"):
        store.redis.delete(key)
    return load_samhsa(store, shared_file("samhsa_sud_facilities_geocoded.csv"), NOW)


@pytest.fixture
def samhsa_store(redis_url: str, samhsa_report: object) -> Store:
    return Store.from_url(redis_url, prefix="samhsa-test:")


def test_every_row_is_accounted_for(samhsa_report: object, samhsa_store: Store) -> None:
    r = samhsa_report
    assert r.records == 14034  # type: ignore[attr-defined]
    assert r.accepted + r.rejected == 14034  # type: ignore[attr-defined]
    # the only rows left out are exact duplicates of an earlier row
    assert set(r.problems_by_reason) <= {  # type: ignore[attr-defined]
        "source_id: repeated in this feed; the newest report was kept",
        *[k for k in r.problems_by_reason if k.startswith(("latitude", "longitude"))],  # type: ignore[attr-defined]
    }
    assert r.rejected < 20  # type: ignore[attr-defined]
    assert len(samhsa_store.feed_members(SAMHSA_FEED)) == r.accepted  # type: ignore[attr-defined]
    # a few listings the directory repeats at one place (same name, same address) are one facility
    members = sorted(samhsa_store.feed_members(SAMHSA_FEED))
    facilities = {samhsa_store.facility_of(m) for m in members}
    assert r.accepted - 10 <= len(facilities) <= r.accepted  # type: ignore[attr-defined]
    assert samhsa_store.count_located() + len(samhsa_store.needs_location()) == len(facilities)


def test_leading_zero_zips_are_restored(samhsa_store: Store) -> None:
    answer = near(samhsa_store, zip="08332", radius_mi=15, now=NOW)  # Millville, NJ: 4 digits in the file
    assert answer.results
    assert all(len(h.center["address"]["postal_code"]) == 5 for h in answer.results)
    assert any(h.center["address"]["postal_code"].startswith("08") for h in answer.results)


def test_near_cambridge_returns_real_cambridge_and_boston_facilities(samhsa_store: Store) -> None:
    answer = near(samhsa_store, zip="02139", limit=20, now=NOW)
    assert len(answer.results) == 20
    cities = {h.center["address"]["city"] for h in answer.results}
    assert {"Cambridge", "Boston"} <= cities
    names = [h.center["name"] for h in answer.results]
    assert "Institute for Health and Recovery Inc" in names  # 349 Broadway, Cambridge
    distances = [h.distance_mi for h in answer.results]
    assert distances == sorted(distances)
    assert distances[-1] < 5
    for h in answer.results:
        expected = haversine_mi(
            answer.origin.latitude, answer.origin.longitude, h.center["latitude"], h.center["longitude"]
        )
        assert h.distance_mi == pytest.approx(expected, rel=0.005, abs=0.01)
    assert all(h.center["address"]["state"] == "MA" for h in answer.results)


@pytest.mark.shared_data
def test_the_same_rows_in_another_order_give_the_same_records() -> None:
    # the list repeats a few places (same name and address, geocoded twice): which is kept must not follow the
    # export's order, or every run in a new order would move them back and forth
    header, *lines = shared_file("samhsa_sud_facilities_geocoded.csv").read_bytes().splitlines(keepends=True)
    ctx = FeedContext(
        feed_id=SAMHSA_FEED, now=NOW, source=Source.PULL, freshness_seconds=int(timedelta(days=30).total_seconds())
    )
    runs = []
    for order in (lines, lines[::-1]):
        centers, _, report = normalize_all(csv_feed.parse_one(header + b"".join(order), SAMHSA_MAPPING), ctx)
        assert report.repeated > 0
        runs.append(sorted(c.model_dump_json() for c in centers))
    assert runs[0] == runs[1]
