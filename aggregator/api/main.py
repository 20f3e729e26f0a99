"""The API process's edge: settings from the environment, clients built here and handed in.

    uvicorn aggregator.api.main:build --factory          (or gunicorn -k uvicorn.workers.UvicornWorker
                                                            'aggregator.api.main:build()')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery
from fastapi import FastAPI

from aggregator.api import create_app
from aggregator.geocode import Geocoder, GeocoderConfig
from aggregator.store import Store
from config.settings import Settings
from workers.celery_app import create_app as create_celery
from workers.celery_app import load_registry

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.3}


def celery_enqueue(celery: Celery) -> Callable[[str, Sequence[Any]], None]:
    def enqueue(name: str, args: Sequence[Any]) -> None:
        queue = "geocode" if name.startswith("geocode.") else "feeds"
        celery.send_task(name, args=list(args), queue=queue, retry=True, retry_policy=PUBLISH_RETRY)

    return enqueue


def build() -> FastAPI:
    settings = Settings.from_env()
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is required (`centers serve` starts a Redis and sets it)")
    registry = load_registry(settings)
    store = Store.from_url(settings.redis_url, settings.key_prefix, timeout=0.4, retries=0)
    config = GeocoderConfig.from_settings(settings)
    geocoder = Geocoder(store, config) if config.enabled else None
    return create_app(settings, store, registry=registry, enqueue=celery_enqueue(create_celery(settings, registry)),
                      geocoder=geocoder)
