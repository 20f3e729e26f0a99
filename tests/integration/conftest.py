"""Integration-test stacks: a partner registry, the worker's environment on the test session's Redis, a store on
its key prefix, the Celery worker and the HTTP API as real processes (each only when a test asks for it).

``open_stack`` builds one and takes it down again; ``isolated_env`` is the environment every subprocess starts
from (none of the developer's REDIS_* or CENTERS_* settings); ``partner`` is a loopback partner server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from aggregator.store import Store
from tests.integration.api_server import ApiServer
from tests.integration.worker import WorkerProcess
from tests.servers import LoopbackServer


@dataclass
class Stack:
    """A test stack. ``env``: the worker's environment (Redis, prefix, registry, data folder), which the API
    server also gets (with ``api_env`` on top); ``api`` is None until ``start_api``."""

    tmp: Path
    worker: WorkerProcess
    store: Store
    env: dict[str, str] = field(default_factory=dict)
    api: ApiServer | None = None

    def start_api(self, **api_env: str) -> ApiServer:
        self.env = {**self.env, **api_env}
        self.api = ApiServer(self.env, self.tmp).start()
        return self.api

    def client(self, **kw: object) -> httpx.Client:
        assert self.api is not None, "the stack's API was not started"
        return self.api.client(**kw)

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
        self.worker.stop()
        self.store.redis.connection_pool.disconnect()


@contextmanager
def open_stack(
    redis_url: str,
    tmp: Path,
    registry: str,
    *,
    prefix: str = "wk:",
    beat: bool = False,
    worker: bool = False,
    extra_env: dict[str, str] | None = None,
    load: Callable[[Store], None] | None = None,
    api: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """A stack on an empty store: ``registry`` (TOML) written to ``tmp/feeds.toml``; ``load`` fills the store;
    then the Celery worker (``worker``, with its beat when ``beat``) and the API (``api``: its extra settings)
    start. Everything is stopped on the way out."""
    feeds = tmp / "feeds.toml"
    feeds.write_text(registry)
    process = WorkerProcess(redis_url, feeds, tmp, prefix=prefix, beat=beat, extra_env=extra_env)
    process.flush()
    stack = Stack(tmp, process, Store.from_url(process.url, prefix), dict(process.env))
    try:
        if load is not None:
            load(stack.store)
        if worker:
            process.start()
        if api is not None:
            stack.start_api(**api)
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def partner() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    yield server
    server.stop()
