"""The Celery application's reliability settings and the beat schedule built from the registry."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from config import registry
from config.settings import Settings
from workers import schedule
from workers.celery_app import HARD_TIME_LIMIT, SOFT_TIME_LIMIT, VISIBILITY_TIMEOUT, create_app
from workers.tasks import BACKOFF_MAX, backoff


def feeds(*ids: str, every: str = "5m") -> registry.Registry:
    return registry.parse(
        {
            "feed": [
                {
                    "id": i,
                    "format": "csv",
                    "url": f"https://partner.example.org/{i}.csv",
                    "schedule": every,
                    "mapping": {"fields": {"name": "Name"}},
                }
                for i in ids
            ]
        }
    )


def test_reliability_settings() -> None:
    conf = create_app(Settings(redis_url="redis://127.0.0.1:6379/0"), feeds("a")).conf
    assert conf.broker_url == "redis://127.0.0.1:6379/1"  # data and queue in separate databases
    assert conf.task_serializer == conf.result_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit == SOFT_TIME_LIMIT < conf.task_time_limit == HARD_TIME_LIMIT
    assert HARD_TIME_LIMIT < conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT
    assert conf.broker_connection_max_retries is None
    assert conf.worker_cancel_long_running_tasks_on_connection_loss
    # children are replaced past a memory cap (a large run's high-water mark), and after a task budget large
    # enough that pushes do not replace them every few minutes (each replacement holds up dispatch a moment)
    assert conf.worker_max_memory_per_child == 400_000
    assert conf.worker_max_tasks_per_child >= 5000


def test_the_worker_loads_what_a_first_task_needs_before_it_forks() -> None:
    """``warm_up`` (run in the worker's main process at start) leaves the matcher, its address standardizer and the
    place tables loaded: a fresh process shows what a child forked after it inherits."""
    code = (
        "import sys\n"
        "from aggregator.ingest import warm_up\n"
        "from aggregator import geography\n"
        "assert 'aggregator.match' not in sys.modules and 'scourgify' not in sys.modules\n"
        "warm_up()\n"
        "assert 'aggregator.match' in sys.modules and 'scourgify' in sys.modules\n"
        "assert geography._table.cache_info().currsize == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_retry_backoff_is_jittered_capped_and_honours_retry_after() -> None:
    waits = [backoff(3) for _ in range(200)]
    assert 0 <= min(waits) < max(waits) <= 40
    assert all(backoff(20) <= BACKOFF_MAX for _ in range(50))
    assert BACKOFF_MAX < VISIBILITY_TIMEOUT
    assert backoff(0, retry_after=120) == 120
    assert backoff(0, retry_after=10_000) == BACKOFF_MAX


def test_one_beat_entry_per_pulled_feed_with_expiry() -> None:
    entries = schedule.build(feeds("a", "b", "c"))
    assert set(entries) == {"feed:a", "feed:b", "feed:c", "geocode:retry", "pushes:sweep"}
    assert entries["pushes:sweep"]["task"] == "pushes.sweep"  # accepted pushes nobody finished
    assert entries["feed:a"]["args"] == ("a",)
    assert entries["feed:a"]["options"]["expires"] == 300


def test_start_times_are_staggered_on_a_fixed_grid() -> None:
    period = timedelta(minutes=5)
    offsets = {schedule.offset_for(f"feed-{i}", 300) for i in range(20)}
    assert len(offsets) > 10  # twenty feeds do not all start on the same second
    s = schedule.staggered(period, offset=42)
    t0 = datetime(2026, 11, 27, 15, 0, 0, tzinfo=UTC)  # epoch multiple of 300
    s.nowfun = lambda: t0 + timedelta(seconds=10)
    due, wait = s.is_due(t0 - timedelta(seconds=1))
    assert (due, round(wait)) == (False, 32)  # next slot at :00:42
    s.nowfun = lambda: t0 + timedelta(seconds=43)
    due, wait = s.is_due(t0 - timedelta(seconds=1))
    assert (due, round(wait)) == (True, 299)


def test_beat_waking_a_little_early_checks_again_at_the_due_time_not_half_a_second_later() -> None:
    s = schedule.staggered(timedelta(minutes=5), offset=42)
    t0 = datetime(2026, 11, 27, 15, 0, 0, tzinfo=UTC)
    s.nowfun = lambda: t0 + timedelta(seconds=41.99)  # beat's 10 ms drift
    due, wait = s.is_due(t0 - timedelta(seconds=1))
    assert not due and wait <= schedule.RECHECK_SECONDS
