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
from aggregator.store import Store
from aggregator.wiring import geocoder_for
from config import registry as registry_module
from config.settings import Settings
from workers.celery_app import create_app as create_celery
from workers.names import queue_for

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.3}


def celery_enqueue(celery: Celery) -> Callable[[str, Sequence[Any]], None]:
    def enqueue(name: str, args: Sequence[Any]) -> None:
        celery.send_task(name, args=list(args), queue=queue_for(name), retry=True, retry_policy=PUBLISH_RETRY)

    return enqueue


def build() -> FastAPI:
    settings = Settings.from_env()
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is required (`centers serve` starts a Redis and sets it)")
    registry = registry_module.for_settings(settings)
    store = Store.from_url(settings.redis_url, settings.key_prefix, timeout=0.4, retries=0)
    geocoder = geocoder_for(settings, store)
    return create_app(
        settings, store, registry=registry, enqueue=celery_enqueue(create_celery(settings, registry)), geocoder=geocoder
    )
