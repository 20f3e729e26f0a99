"""The Celery task and queue names, said once: the tasks, the beat schedule, the API's enqueue, `centers
serve` and the benchmarks use these (a message sent under a misspelt name would wait forever).

Imports nothing: the API and the CLI may import it without Celery.
"""

from __future__ import annotations

#: queues: feed runs, pushes and sweeps; geocoder retries (rate-limited, kept apart)
FEEDS_QUEUE = "feeds"
GEOCODE_QUEUE = "geocode"

#: tasks (workers/tasks.py)
RUN_FEED = "feeds.run"
INGEST_PUSH = "feeds.ingest_push"
RELEASE_FEED = "feeds.release"
PING = "feeds.ping"
SWEEP = "pushes.sweep"
GEOCODE_RETRY = "geocode.retry_pending"


def queue_for(task: str) -> str:
    """The queue a task is sent to (its name's first part: the routes in workers/celery_app.py)."""
    return GEOCODE_QUEUE if task.startswith(GEOCODE_QUEUE + ".") else FEEDS_QUEUE
