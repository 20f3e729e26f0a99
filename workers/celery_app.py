"""The Celery application: ``create_app(settings, registry)``; ``app`` is what ``celery -A`` runs.

Configured for a Redis broker per the reliability notes: JSON only; late acks with idempotent tasks;
rejection on a lost worker; prefetch of one; soft and hard time limits well below the broker's
visibility timeout; unlimited broker reconnects; long tasks cancelled on connection loss; children
recycled by task count and memory. Clients (Redis, the HTTP session, the geocoder) are built per
worker process, after the fork, and handed to the core: tasks stay thin.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import task_received, worker_init, worker_process_init, worker_ready

from aggregator.fetch import Fetcher
from aggregator.geocode import Geocoder
from aggregator.ingest import Pipeline, warm_up
from aggregator.store import Store
from aggregator.wiring import fetcher_for, geocoder_for, pipeline_for
from config import registry as registry_module
from config.registry import Registry
from config.settings import Settings
from workers import names, schedule

log = logging.getLogger(__name__)

VISIBILITY_TIMEOUT = 1800
#: how often a worker says it is alive (its heartbeat lives 90 s)
HEARTBEAT_SECONDS = 15
#: the shortest time messages may wait, with a slot free, before the consumer is taken for stopped
MIN_HANG_SECONDS = 10.0
SOFT_TIME_LIMIT = 240
HARD_TIME_LIMIT = 300
assert SOFT_TIME_LIMIT < HARD_TIME_LIMIT < VISIBILITY_TIMEOUT


class WorkerContext:
    """What tasks need, built lazily in each worker process (never shared across a fork)."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry

    @cached_property
    def store(self) -> Store:
        return Store.from_url(self.settings.redis_url, self.settings.key_prefix)

    @cached_property
    def fetcher(self) -> Fetcher:
        return fetcher_for(self.settings)

    @cached_property
    def geocoder(self) -> Geocoder | None:
        return geocoder_for(self.settings, self.store)

    @cached_property
    def pipeline(self) -> Pipeline:
        return pipeline_for(self.settings, self.store, fetcher=self.fetcher, geocoder=self.geocoder)

    def reset(self) -> None:
        for name in ("store", "fetcher", "geocoder", "pipeline"):
            self.__dict__.pop(name, None)


#: the registry from the settings (config.registry.for_settings), under the name tests and tools know
load_registry = registry_module.for_settings


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> Celery:
    settings = settings or Settings.from_env()
    registry = registry if registry is not None else load_registry(settings)
    app = Celery("centers", include=["workers.tasks"])
    transport = {
        "visibility_timeout": VISIBILITY_TIMEOUT,
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        "health_check_interval": 30,
        "retry_on_timeout": True,
    }
    app.conf.update(
        broker_url=settings.broker(),
        broker_transport_options=transport,
        result_backend=None,
        task_ignore_result=True,
        result_expires=3600,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=SOFT_TIME_LIMIT,
        task_time_limit=HARD_TIME_LIMIT,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_soft_shutdown_timeout=30.0,
        worker_enable_soft_shutdown_on_idle=True,
        # a child is replaced after this many tasks (and sooner past the memory cap below, which is what bounds
        # a large feed run's high-water mark): each replacement holds up the worker's dispatch for a moment (2 to
        # 3.5 s seen here, celery/celery#9579), and at 200 tasks a child that takes pushes was replaced every few
        # hundred pushes (bench/push_latency.py, 150 pushes: p99 8.4x a no-op task's trip; 1.5x with 5,000)
        worker_max_tasks_per_child=5000,
        worker_max_memory_per_child=400_000,
        task_default_queue=names.FEEDS_QUEUE,
        task_routes={
            f"{names.GEOCODE_QUEUE}.*": {"queue": names.GEOCODE_QUEUE},
            "feeds.*": {"queue": names.FEEDS_QUEUE},
            "pushes.*": {"queue": names.FEEDS_QUEUE},
        },
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        beat_schedule=schedule.build(registry),
        beat_schedule_filename=str(Path(settings.data_dir) / "celerybeat-schedule"),
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
    )
    app.centers = WorkerContext(settings, registry)
    return app


def context(app: Any) -> WorkerContext:
    ctx: WorkerContext = app.centers
    return ctx


@worker_ready.connect
def _start_sweeper(sender: Any = None, **_kwargs: Any) -> None:
    """Probe, beat and sweep in a daemon thread of every worker's main process (``_sweep_forever``)."""
    app = getattr(sender, "app", None)
    if app is None or not hasattr(app, "centers"):
        return
    name = str(getattr(sender, "hostname", "") or f"worker-{os.getpid()}")
    controller = getattr(sender, "controller", None)
    slots = int(getattr(controller, "concurrency", 0) or 1)
    queues = sorted(app.amqp.queues.consume_from) if app.amqp.queues.consume_from else ["feeds", "geocode"]
    hub = getattr(controller, "hub", None)
    if hub is not None:  # the consumer's event loop says it turns; a blocked loop stops ticking
        hub.call_repeatedly(LOOP_TICK_SECONDS, _tick)
    probe = ConsumerProbe(app, queues, slots, watch_loop=hub is not None)
    threading.Thread(target=_sweep_forever, args=(app, name, probe), name="push-sweeper", daemon=True).start()


_last_received = [time.monotonic()]
_last_tick = [time.monotonic()]
#: how often the consumer's event loop notes that it turns
LOOP_TICK_SECONDS = 1.0


@task_received.connect
def _received(**_kwargs: Any) -> None:
    _last_received[0] = time.monotonic()


def _tick() -> None:
    _last_tick[0] = time.monotonic()


class ConsumerProbe:
    """Is this worker consuming? Not when its consumer's event loop has stopped turning (blocked on a dead
    connection: finished tasks are then never collected, so its slots look busy forever), nor when
    messages wait in its queues, it has a free slot, and it has received nothing since the last look (a
    healthy consumer takes a waiting message at once). The answer is None when the broker cannot be
    reached: the consumer is reconnecting, not hung."""

    def __init__(self, app: Any, queues: list[str], slots: int, *, watch_loop: bool = False) -> None:
        self.app = app
        self.queues = queues
        self.slots = slots
        self.watch_loop = watch_loop
        self.looked = time.monotonic()

    def waiting(self) -> int | None:
        try:
            with self.app.connection_for_read() as conn:
                channel = conn.default_channel
                return sum(int(channel.queue_declare(q).message_count) for q in self.queues)
        except Exception:
            return None

    def __call__(self) -> bool | None:
        from celery.worker import state

        looked, self.looked = self.looked, time.monotonic()
        waiting = self.waiting()
        if waiting is None:
            return None
        stalled = self.watch_loop and time.monotonic() - _last_tick[0] > 3 * LOOP_TICK_SECONDS
        free = len(state.reserved_requests) < self.slots
        return not (stalled or (waiting and free and _last_received[0] < looked))


def _sweep_forever(app: Any, name: str, probe: Callable[[], bool | None]) -> None:
    """Probe, beat and sweep, in a thread of the worker's main process.

    - Probe (every HEARTBEAT_SECONDS at most, ``ConsumerProbe``): the heartbeat that /readyz, `centers
      feeds` and `centers serve` watch is written only while the worker consumes, so it means "consumes",
      not merely "runs". A worker that leaves messages waiting with a free slot for
      CENTERS_STRANDED_SECONDS (at least MIN_HANG_SECONDS) has stopped consuming (it happens after a Redis
      restart: celery #8030, #9054): it exits so its supervisor (`centers serve`, compose, systemd) starts
      a fresh one.
    - Sweep (at start, then every CENTERS_SWEEP_SECONDS): a restarted worker picks up at once what a
      Redis restart or its killed predecessor left.
    """
    from workers.tasks import sweep

    settings = context(app).settings
    probe_every = min(float(HEARTBEAT_SECONDS), max(0.5, settings.sweep_seconds))
    hang_after = max(settings.stranded_seconds, MIN_HANG_SECONDS)
    next_probe = next_sweep = 0.0
    stuck_since: float | None = None
    while True:
        now = time.monotonic()
        if now >= next_probe:
            next_probe = now + probe_every
            consuming = probe()
            if consuming:
                stuck_since = None
                try:
                    context(app).store.beat(name, datetime.now(UTC))
                except Exception:  # Redis away: the heartbeat lapses, which is the truth
                    log.warning("heartbeat failed", exc_info=True)
            elif consuming is False:
                stuck_since = stuck_since or now
                if time.monotonic() - stuck_since >= hang_after:
                    log.critical(
                        "this worker stopped consuming: messages have waited %.0f s with a slot free; "
                        "exiting so that it is started again",
                        time.monotonic() - stuck_since,
                    )
                    logging.shutdown()
                    os._exit(75)
        if now >= next_sweep:
            next_sweep = now + settings.sweep_seconds
            try:
                queued = sweep(app)
                for kind, ids in queued.items():
                    if ids:
                        log.warning("queued again %d %s nobody finished: %s", len(ids), kind, ", ".join(ids[:10]))
            except Exception as exc:  # Redis or the broker down: the next round tries again
                log.warning("sweep failed (%s); trying again in %.0f s", exc, settings.sweep_seconds)
        time.sleep(max(0.05, min(next_probe, next_sweep) - time.monotonic()))


@worker_init.connect
def _warm_up(**_kwargs: Any) -> None:
    """In the worker's main process, before its pool forks: what a first task would load (``ingest.warm_up``)."""
    try:
        warm_up()
    except Exception as exc:  # a shortcut lost: each child then loads what it needs on its first task
        log.warning("warming up failed (%s); children load on their first task", exc)


@worker_process_init.connect
def _fresh_clients(**_kwargs: Any) -> None:
    """A forked child must not reuse its parent's sockets."""
    current = globals().get("app")
    if current is not None:
        context(current).reset()


def __getattr__(name: str) -> Any:
    """``app`` is built on first use (``celery -A workers.celery_app``), from the environment then."""
    if name == "app":
        built = create_app()
        globals()["app"] = built
        return built
    raise AttributeError(name)
