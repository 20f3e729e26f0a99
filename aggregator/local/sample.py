"""Data to run with before any partner is onboarded.

* The SAMHSA nationwide facility list (``../shared/data/samhsa_sud_facilities_geocoded.csv``) where
  present: 14,034 real facilities, names, addresses and coordinates (no services, no capacity).
* Otherwise a small bundled sample (``aggregator/sample/centers.csv``): fictional centers in eight
  metros with fictional 555-01xx phone numbers and availability, to show what the service does.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path

from aggregator.feeds import csv as csv_feed
from aggregator.feeds.mapping import AvailabilityMapping, RecordMapping
from aggregator.ingest import IngestReport, apply_snapshot
from aggregator.model import Source
from aggregator.normalize import FeedContext
from aggregator.store import Store

SAMHSA_FEED = "samhsa"
SAMPLE_FEED = "sample"

SAMHSA_MAPPING = RecordMapping(
    fields={
        "name": "name1",
        "alternate_name": "name2",
        "address_1": "street1",
        "address_2": "street2",
        "city": "city",
        "state": "state",
        "postal_code": "zip",
        "latitude": "latitude",
        "longitude": "longitude",
    },
    id_from=("name1", "name2", "street1", "street2", "city", "zip"),
)

SAMPLE_MAPPING = RecordMapping(
    fields={
        "source_id": "id",
        "name": "name",
        "address_1": "street",
        "city": "city",
        "state": "state",
        "postal_code": "zip",
        "latitude": "latitude",
        "longitude": "longitude",
        "phone": "phone",
        "website": "website",
        "levels_of_care": "levels_of_care",
        "payment": "payment",
        "populations": "populations",
        "languages": "languages",
    },
    availability=(
        AvailabilityMapping(
            fields={"beds_available": "detox_beds", "beds_total": "detox_total"}, constants={"level_of_care": "detox"}
        ),
        AvailabilityMapping(
            fields={"beds_available": "residential_beds", "beds_total": "residential_total"},
            constants={"level_of_care": "residential"},
        ),
        AvailabilityMapping(fields={"status": "outpatient_status"}, constants={"level_of_care": "outpatient"}),
    ),
)


def shared_data_dir() -> Path | None:
    """The workplace's ../shared/data (beside the current folder or this checkout), if present."""
    for candidate in (Path.cwd() / ".." / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def shared_samhsa_file() -> Path | None:
    folder = shared_data_dir()
    path = folder / "samhsa_sud_facilities_geocoded.csv" if folder else None
    return path if path is not None and path.is_file() else None


def load_samhsa(store: Store, path: Path, now: datetime) -> IngestReport:
    raws = csv_feed.parse_one(path.read_bytes(), SAMHSA_MAPPING)
    ctx = FeedContext(feed_id=SAMHSA_FEED, now=now, source=Source.PULL, freshness_seconds=86400 * 30)
    return apply_snapshot(store, raws, ctx)


def bundled_sample() -> bytes:
    return resources.files("aggregator").joinpath("sample/centers.csv").read_bytes()


def load_bundled_sample(store: Store, now: datetime, freshness_seconds: int = 3600) -> IngestReport:
    """The fictional sample, its availability stamped as reported ``now``."""
    raws = csv_feed.parse_one(bundled_sample(), SAMPLE_MAPPING)
    ctx = FeedContext(feed_id=SAMPLE_FEED, now=now, source=Source.PULL, freshness_seconds=freshness_seconds)
    return apply_snapshot(store, raws, ctx)
