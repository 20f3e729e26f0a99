"""Thin tasks: an id in, one call into ``aggregator``, retries decided by the error's type.

Transient errors retry with exponential backoff and full jitter (or the server's Retry-After),
capped well below the broker's visibility timeout; permanent errors are recorded in feed health
and not retried. Every task is idempotent: a feed run replaces the feed's snapshot as a whole.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from aggregator.errors import TransientError
from aggregator.geocode import retry_pending
from aggregator.ingest import RunStatus
from config.registry import FeedConfig
from workers import names
from workers.celery_app import context

log = logging.getLogger(__name__)

MAX_RETRIES = 5
#: a job started more often than this (retries plus redeliveries after a lost worker) is set aside:
#: a poison message must not loop forever under acks_late + reject_on_worker_lost
MAX_DELIVERIES = 10
BACKOFF_BASE = 5.0
BACKOFF_MAX = 600.0


def backoff(retries: int, retry_after: float | None = None) -> float:
    if retry_after:
        return min(retry_after, BACKOFF_MAX)
    return random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2**retries))


def _on_feed(task: Task, feed_id: str, work: Callable[[FeedConfig], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` on a registered feed; a transient error is retried with backoff and jitter."""
    ctx = context(task.app)
    try:
        feed = ctx.registry.get(feed_id)
    except KeyError:
        return {"feed_id": feed_id, "status": RunStatus.FAILED.value, "error": "no such feed in the registry"}
    deliveries = ctx.store.count_delivery(task.request.id or "")
    if deliveries > MAX_DELIVERIES:
        message = (
            f"job {task.request.id} set aside after {deliveries - 1} starts (it keeps failing or killing its worker)"
        )
        ctx.pipeline.record_failure(feed_id, "poisoned", message)
        log.error(message)
        return {"feed_id": feed_id, "status": RunStatus.FAILED.value, "error": message}
    try:
        return work(feed)
    except TransientError as exc:
        raise task.retry(exc=exc, countdown=backoff(task.request.retries, exc.retry_after)) from exc


@shared_task(name=names.RUN_FEED, bind=True, acks_late=True, max_retries=MAX_RETRIES)
def run_feed(self: Task, feed_id: str, force: bool = False) -> dict[str, Any]:
    ctx = context(self.app)
    pipeline = ctx.pipeline
    try:
        return _on_feed(
            self,
            feed_id,
            lambda feed: pipeline.run_locked(
                feed, force=force, owner=self.request.id, lock_seconds=ctx.settings.lock_lease_seconds
            ).as_dict(),
        )
    except SoftTimeLimitExceeded:
        pipeline.record_failure(feed_id, "time_limit", "the run took longer than the time limit; nothing was written")
        return {"feed_id": feed_id, "status": RunStatus.FAILED.value, "error": "time limit"}


@shared_task(name=names.INGEST_PUSH, bind=True, acks_late=True, max_retries=MAX_RETRIES)
def ingest_push(self: Task, feed_id: str, ingest_id: str) -> dict[str, Any]:
    pipeline = context(self.app).pipeline
    return _on_feed(self, feed_id, lambda feed: pipeline.apply_push(feed, ingest_id))


@shared_task(name=names.RELEASE_FEED, bind=True, acks_late=True, max_retries=MAX_RETRIES)
def release_feed(self: Task, feed_id: str, by: str = "") -> dict[str, Any]:
    pipeline = context(self.app).pipeline
    return _on_feed(self, feed_id, lambda feed: pipeline.release(feed, by=by).as_dict())


@shared_task(name=names.GEOCODE_RETRY, bind=True, acks_late=True)
def geocode_retry_pending(self: Task) -> dict[str, int]:
    ctx = context(self.app)
    if ctx.geocoder is None:
        return {}
    return retry_pending(ctx.store, ctx.geocoder, datetime.now(UTC))


@shared_task(name=names.PING, bind=True)
def ping(self: Task, key: str = "") -> None:
    """No work: the benchmarks' baseline for a trip through the broker and a worker slot (bench/push_latency.py,
    bench/feeds_at_scale.py). With ``key``, sets it to the time it ran: the side effect its sender watches."""
    if key:
        context(self.app).store.redis.set(key, repr(time.time()), ex=3600)


def push_sender(app: Any) -> Callable[[str, str], None]:
    def send(feed_id: str, ingest_id: str) -> None:
        app.send_task(names.INGEST_PUSH, args=[feed_id, ingest_id], queue=names.FEEDS_QUEUE)

    return send


@shared_task(name=names.SWEEP, bind=True, acks_late=True)
def sweep_pushes(self: Task) -> dict[str, list[str]]:
    """Queue again the accepted pushes and due feed runs nobody finished (``Pipeline.sweep_*``)."""
    return sweep(self.app)


def feed_sender(app: Any) -> Callable[[str], None]:
    def send(feed_id: str) -> None:
        app.send_task(names.RUN_FEED, args=[feed_id], queue=names.FEEDS_QUEUE)

    return send


def sweep(app: Any) -> dict[str, list[str]]:
    """Everything accepted or due that nobody finished: pushes, then feed runs (and the clean-up of a
    staged write whose writer died after its flip)."""
    ctx = context(app)
    bound = ctx.settings.stranded_seconds
    cleaned = ctx.pipeline.store.finish_staged()
    return {
        "pushes": ctx.pipeline.sweep_pushes(push_sender(app), stale_seconds=bound),
        "feeds": ctx.pipeline.sweep_feeds(ctx.registry.feeds, feed_sender(app), run_limit_seconds=bound),
        "staged_cleaned": [str(cleaned)] if cleaned else [],
    }
