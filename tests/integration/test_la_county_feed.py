"""Acceptance: the real Los Angeles County bed scrape, onboarded by configuration and served over HTTP.

The file (../shared/data/la_county_sud_bed_availability_2025-08-14.csv, 760 rows) is served from a
loopback server exactly as a partner would; a feed run fetches, parses (the la_county parser for
the run-together bed strings), normalizes, places (a Nominatim-compatible server on 127.0.0.1),
and stores it. The figures are the acceptance record: how many rows became centers, how many
availability observations, and why the rest were rejected.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from aggregator.fetch import Fetcher, new_session
from aggregator.geocode import Geocoder, GeocoderConfig
from aggregator.ingest import Pipeline
from aggregator.lookup import near
from aggregator.store import Store
from config import registry
from tests.conftest import shared_file
from tests.servers import LoopbackServer, Request, Response

SCRAPE_DAY = datetime(2025, 8, 14, 18, 0, tzinfo=UTC)  # after the file's newest "Last Updated"


@pytest.fixture
def servers() -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
    body = shared_file("la_county_sud_bed_availability_2025-08-14.csv").read_bytes()
    partner, nominatim = LoopbackServer().start(), LoopbackServer().start()
    partner.route("/la-county/beds.csv", Response(200, body, {"Content-Type": "text/csv; charset=utf-8"}))

    def answer(req: Request) -> Response:  # no match for any street: each center goes to its ZIP centroid
        return Response(200, b"[]", {"Content-Type": "application/json"})

    nominatim.route("/search", answer)
    yield partner, nominatim
    partner.stop()
    nominatim.stop()


def test_the_real_los_angeles_county_scrape_end_to_end(
    store: Store, servers: tuple[LoopbackServer, LoopbackServer]
) -> None:
    partner, nominatim = servers
    [feed] = registry.parse(
        {
            "feed": [
                {
                    "id": "la-county-sbat",
                    "format": "csv",
                    "parser": "la_county",
                    "source": "scrape",
                    "url": partner.url("/la-county/beds.csv"),
                    "allow_private": True,
                    "timezone": "America/Los_Angeles",
                    "freshness": "48h",
                    "max_report_age": "30d",
                    "schedule": "1h",
                }
            ]
        },
        "",
        frozenset({"la_county"}),
    ).feeds
    geocoder = Geocoder(
        store,
        GeocoderConfig(
            domain=f"127.0.0.1:{nominatim.port}",
            scheme="http",
            min_interval=0.001,
            user_agent="center-availability-tests/1.0",
            max_per_run=1000,
        ),
    )
    pipeline = Pipeline(
        store, Fetcher(new_session("center-availability-tests/1.0")), geocoder=geocoder, clock=lambda: SCRAPE_DAY
    )
    outcome = pipeline.run(feed)
    assert outcome.status == "applied"
    report = outcome.report
    assert report is not None

    # the acceptance figures
    assert report.records == 760
    assert report.accepted == 338  # centers
    assert report.observations == 180  # availability observations
    assert report.rejected == 422
    assert dict(report.problems_by_reason) == {
        # 380: every listing appears twice in the scrape (detail view and list view, same beds and same
        # update time: the detail view is kept). 42: 41 confidential recovery houses share agency, city,
        # ZIP and phone with another house of theirs and have no secondary name to tell them apart, and
        # one outpatient listing shares agency and street address with another: one id each, the newest
        # report kept, the other houses lost (confidential ids take the phone, which keeps 2 more apart)
        "source_id: repeated in this feed; the newest report was kept": 380 + 42,
        # a center whose last report is five years old: kept, its beds not shown
        "availability.reported_at: reported N years ago (N); older than this feed keeps": 1,
    }
    assert len(store.feed_members("la-county-sbat")) == 338

    # placement: hidden addresses and streets the geocoder cannot find go to their ZIP centroid;
    # nothing is dropped and nothing is left unplaced
    placement = report.placement
    assert placement is not None
    assert placement.unplaced == []
    assert placement.feed == 0  # the scrape carries no coordinates
    assert placement.zip_centroid == 338
    assert len(nominatim.requests("/search")) == 338 - 82  # the 82 hidden addresses are never sent

    # downtown Los Angeles: real programs, nearest first, with what they reported on 13-14 August
    answer = near(
        store, zip="90013", radius_mi=5, levels_of_care=["residential"], now=SCRAPE_DAY, audience="operator", limit=50
    )
    assert answer.results
    assert all("residential" in h.center["services"]["levels_of_care"] for h in answer.results)
    assert all(h.center["address"]["state"] == "CA" for h in answer.results)

    # a re-run of the unchanged scrape writes nothing and geocodes nothing
    before = len(nominatim.requests("/search"))
    assert pipeline.run(feed, force=False).status == "unchanged"
    assert len(nominatim.requests("/search")) == before
    assert len(partner.requests("/la-county/beds.csv")) == 2
