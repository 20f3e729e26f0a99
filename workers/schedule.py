"""Celery beat's schedule, built from the partner registry: one entry per pulled feed, staggered.

Each feed runs every ``schedule`` seconds at a fixed offset inside its period (derived from its id),
so twenty feeds with the same period do not all start on the same second. Every scheduled message
expires after one period: a backlog never turns into a burst of stale runs.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.schedules import schedstate, schedule

from config.registry import Registry
from workers import names

GEOCODE_RETRY_SECONDS = 300
#: how often accepted pushes nobody finished are looked for (beat, and a thread in every worker)
PUSH_SWEEP_SECONDS = 30


#: the shortest wait beat is told before it looks at a staggered entry again
RECHECK_SECONDS = 0.02


class staggered(schedule):  # lower case, like celery's own schedule classes
    """Due at every ``k * period + offset`` (epoch seconds): a fixed grid, offset per feed."""

    def __init__(
        self, run_every: timedelta, offset: float, relative: bool = False, nowfun: Any = None, app: Any = None
    ) -> None:
        super().__init__(run_every=run_every, relative=relative, nowfun=nowfun, app=app)
        self.offset = offset % run_every.total_seconds()

    def _next_after(self, t: datetime) -> float:
        period = self.run_every.total_seconds()
        k = (t.timestamp() - self.offset) // period + 1
        return k * period + self.offset

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = self.now().astimezone(UTC)
        due_at = self._next_after(
            last_run_at.astimezone(UTC) if last_run_at.tzinfo else last_run_at.replace(tzinfo=UTC)
        )
        # beat wakes an entry 10 ms early (its drift): a floor of 0.5 s here sent many runs half a second late
        if now.timestamp() >= due_at:
            return schedstate(True, max(RECHECK_SECONDS, self._next_after(now) - now.timestamp()))
        return schedstate(False, max(RECHECK_SECONDS, due_at - now.timestamp()))

    def __reduce__(self) -> Any:
        return self.__class__, (self.run_every, self.offset, self.relative, self.nowfun)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, staggered) and other.run_every == self.run_every and other.offset == self.offset

    __hash__ = None  # type: ignore[assignment]


def offset_for(feed_id: str, period: float) -> float:
    return zlib.crc32(feed_id.encode()) % max(1, int(period))


def build(registry: Registry) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for feed in registry.pulled:
        period = timedelta(seconds=feed.schedule_seconds)
        entries[f"feed:{feed.id}"] = {
            "task": names.RUN_FEED,
            "schedule": staggered(period, offset_for(feed.id, feed.schedule_seconds)),
            "args": (feed.id,),
            "options": {"expires": feed.schedule_seconds, "queue": names.FEEDS_QUEUE},
        }
    entries["pushes:sweep"] = {
        "task": names.SWEEP,
        "schedule": timedelta(seconds=PUSH_SWEEP_SECONDS),
        "options": {"expires": PUSH_SWEEP_SECONDS, "queue": names.FEEDS_QUEUE},
    }
    entries["geocode:retry"] = {
        "task": names.GEOCODE_RETRY,
        "schedule": timedelta(seconds=GEOCODE_RETRY_SECONDS),
        "options": {"expires": GEOCODE_RETRY_SECONDS, "queue": names.GEOCODE_QUEUE},
    }
    return entries
