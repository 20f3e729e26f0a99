"""The public find page's test data and server: the bundled fictional sample (reported 7 minutes ago, live for
an hour) plus a nightly partner near Cambridge, MA whose figures show each wording: live (reported 20 minutes
ago), stale (9 hours ago, past its one-hour window) and never reported. The app runs under uvicorn in a thread
of the test process, on the session's real Redis under its own key prefix."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import uvicorn

from aggregator.api import create_app
from aggregator.local.redis_process import free_port
from aggregator.local.sample import load_bundled_sample
from aggregator.model import Phone, PhoneRole
from aggregator.store import Store
from config.registry import parse
from config.settings import Settings
from tests.integration.factories import center, observation

PREFIX = "find:"
HELPLINE = "1-800-662-4357"
RIVERSIDE = "Riverside Detox and Recovery Center"
REGISTRY = {
    "feed": [
        {
            "id": "nightly",
            "partner": "Nightly Beds",
            "format": "csv",
            "url": "https://feeds.example.org/nightly.csv",
            "schedule": "15m",
            "freshness": "1h",
            "mapping": {"fields": {"source_id": "id", "name": "name", "state": "state", "postal_code": "zip"}},
        }
    ]
}


def clear(store: Store, prefix: str = PREFIX) -> None:
    for key in store.redis.scan_iter(match=f"{prefix}*"):
        store.redis.delete(key)


def load(store: Store, now: datetime) -> None:
    clear(store, store.keys.prefix)
    load_bundled_sample(store, now - timedelta(minutes=7))
    riverside = center(
        "nightly",
        "n-1",
        42.3650,
        -71.1035,
        name=RIVERSIDE,
        address={"address_1": "12 River St", "city": "Cambridge", "state": "MA", "postal_code": "02139"},
        phones=(Phone(number="+16175550142"), Phone(number="+16175550143", role=PhoneRole.INTAKE)),
        levels_of_care=["detox", "residential", "outpatient"],
        payment=["medicaid"],
    )
    store.replace_feed(
        "nightly",
        [riverside],
        [
            observation(
                riverside,
                "detox",
                "available",
                beds_available=3,
                beds_total=12,
                reported_at=now - timedelta(minutes=20),
                freshness=3600,
            ),
            observation(
                riverside,
                "residential",
                "limited",
                beds_available=1,
                beds_total=20,
                reported_at=now - timedelta(hours=9),
                freshness=3600,
            ),
        ],
        now=now,
        source="pull",
    )


def settings(**extra: str) -> Settings:
    return Settings.from_env(
        {"CENTERS_RATE_LIMIT": "100000", "CENTERS_GEOCODER": "none", "CENTERS_HELPLINE": HELPLINE, **extra}
    )


@contextmanager
def serving(store: Store, **extra: str) -> Iterator[str]:
    """The app on a free loopback port; yields its base URL."""
    app = create_app(settings(**extra), store, registry=parse(REGISTRY), enqueue=lambda _n, _a: None, environ={})
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="find-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def now_utc() -> datetime:
    return datetime.now(UTC)
