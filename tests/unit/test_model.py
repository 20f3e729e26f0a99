"""The canonical record validates, naming the field and the reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from aggregator.model import Address, Availability, Center, rejections_from

T = datetime(2026, 11, 27, tzinfo=UTC)


def center(**kw: object) -> Center:
    base: dict[str, object] = {
        "id": "f:1",
        "feed_id": "f",
        "source_id": "1",
        "name": "Harbor House",
        "address": Address(state="MA", postal_code="02139"),
    }
    base.update(kw)
    return Center(**base)  # type: ignore[arg-type]


def reasons(exc: ValidationError) -> dict[str, str]:
    return {r.field: r.reason for r in rejections_from(exc, "1")}


def test_center_id_is_feed_and_source() -> None:
    with pytest.raises(ValidationError) as err:
        center(id="other")
    assert "feed_id" in str(err.value)


def test_validation_names_the_field_and_reason() -> None:
    with pytest.raises(ValidationError) as err:
        Center(
            id="f:1",
            feed_id="f",
            source_id="1",
            name="",
            address={"state": "Mass", "postal_code": "2139"},
            phones=[{"number": "617-555-0100"}],
        )
    got = reasons(err.value)
    assert "at least 1 character" in got["name"]
    assert "2-letter" in got["address.state"]
    assert "5-digit" in got["address.postal_code"]
    assert "E.164" in got["phones.0.number"]


def test_coordinates_come_in_pairs_with_a_precision() -> None:
    with pytest.raises(ValidationError, match="together"):
        center(latitude=42.0)
    with pytest.raises(ValidationError, match="geo_precision"):
        center(latitude=42.0, longitude=-71.0)
    assert center(latitude=42.0, longitude=-71.0, geo_precision="street").located


def test_services_are_sorted_and_unique() -> None:
    c = center(services={"levels_of_care": ["residential", "detox", "detox"], "languages": ["es", "en"]})
    assert c.services.levels_of_care == ("detox", "residential")
    with pytest.raises(ValidationError, match="ISO 639-1"):
        center(services={"languages": ["spanish"]})


def obs(**kw: object) -> Availability:
    base: dict[str, object] = {
        "center_id": "f:1",
        "level_of_care": "detox",
        "source": "pull",
        "status": "available",
        "reported_at": T,
        "checked_at": T,
        "freshness_seconds": 900,
    }
    base.update(kw)
    return Availability(**base)  # type: ignore[arg-type]


def test_availability_counts_are_consistent() -> None:
    assert obs(beds_available=2, beds_total=5).beds_available == 2
    with pytest.raises(ValidationError, match="exceeds"):
        obs(beds_available=12, beds_total=10)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        obs(beds_available=-1)


def test_availability_times_must_be_aware() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        obs(reported_at=datetime(2026, 1, 1))  # noqa: DTZ001 - the naive time under test


def test_status_vocabulary_is_closed() -> None:
    with pytest.raises(ValidationError, match="status"):
        obs(status="maybe")
