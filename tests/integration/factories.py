"""Small builders for centers and observations used by the integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aggregator.errors import StoreUnavailable
from aggregator.model import Address, Availability, Center
from aggregator.store import Store

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
CAMBRIDGE = (42.3647, -71.1042)  # ZIP 02139 centroid


def center(feed: str, sid: str, lat: float | None = None, lon: float | None = None, **kw: Any) -> Center:
    data: dict[str, Any] = {
        "id": f"{feed}:{sid}",
        "feed_id": feed,
        "source_id": sid,
        "name": kw.pop("name", f"Center {sid}"),
        "address": Address(state=kw.pop("state", "MA"), postal_code=kw.pop("postal_code", "02139")),
    }
    if lat is not None:
        data.update(latitude=lat, longitude=lon, geo_precision="feed")
    services = {g: kw.pop(g) for g in ("levels_of_care", "payment", "populations", "languages") if g in kw}
    if services:
        data["services"] = services
    data.update(kw)
    return Center(**data)


def observation(
    c: Center | str,
    level: str = "detox",
    status: str = "available",
    *,
    reported_at: datetime = NOW,
    freshness: int = 900,
    source: str = "pull",
    **kw: Any,
) -> Availability:
    return Availability(
        center_id=c if isinstance(c, str) else c.id,
        level_of_care=level,
        source=source,
        status=status,
        reported_at=reported_at,
        checked_at=kw.pop("checked_at", reported_at),
        freshness_seconds=freshness,
        **kw,
    )


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


class FlakyStore(Store):
    """A real store whose next ``failures`` snapshot writes fail as a Redis timeout would (fault injection)."""

    failures = 1

    def replace_feed(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("Timeout reading from socket (injected)")
        return super().replace_feed(*args, **kwargs)
