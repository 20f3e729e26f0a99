"""While Redis is down or hung, every data endpoint answers 503 JSON within a second; it recovers by itself."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from aggregator.invariants import check
from aggregator.local.redis_process import RedisProcess, free_port
from aggregator.push import sign
from aggregator.store import Store
from tests.environment import isolated_env
from tests.faults.matrix import row as matrix_row
from tests.integration.api_server import ApiServer

TOKEN = "operator-token-0123456789abcdef"
SECRET = "push-secret-0123456789abcdef"
REGISTRY = """
[[feed]]
id = "pusher"
format = "push"
push = { hmac_secret_env = ["PUSH_SECRET"] }
[feed.mapping.fields]
source_id = "id"
name = "name"
state = "state"
postal_code = "zip"
"""


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", port=free_port(), persistent=False)
    server.start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture
def api(own_redis: RedisProcess, tmp_path: Path) -> Iterator[ApiServer]:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(REGISTRY)
    env = isolated_env()
    env.update(
        {
            "REDIS_URL": own_redis.url,
            "CENTERS_FEEDS_FILE": str(feeds),
            "CENTERS_GEOCODER": "none",
            "CENTERS_OPERATOR_TOKENS": TOKEN,
            "PUSH_SECRET": SECRET,
            "CENTERS_DATA_DIR": str(tmp_path),
        }
    )
    server = ApiServer(env, tmp_path).start()
    yield server
    server.stop()


def calls() -> list[tuple[str, str, dict[str, Any]]]:
    body = b'[{"id": "1", "name": "A", "state": "MA", "zip": "02139"}]'
    ts = str(int(time.time()))
    signed = {"webhook-id": f"e{time.monotonic_ns()}", "webhook-timestamp": ts, "content-type": "application/json"}
    signed["webhook-signature"] = sign(SECRET.encode(), signed["webhook-id"], ts, body)
    op = {"authorization": f"Bearer {TOKEN}"}
    return [
        ("GET", "/v1/centers/near?zip=02139", {}),
        ("GET", "/v1/centers/pusher:1", {}),
        ("GET", "/readyz", {}),
        ("GET", "/v1/feeds", {"headers": op}),
        ("GET", "/v1/ingests/ing_" + "0" * 32, {}),
        ("POST", "/v1/feeds/pusher/records", {"headers": signed, "content": body}),
        ("POST", "/v1/centers/pusher:1/reports", {"headers": op, "json": {"level_of_care": "detox", "status": "full"}}),
    ]


def assert_all_unavailable(client: httpx.Client) -> None:
    for method, path, kw in calls():
        started = time.monotonic()
        resp = client.request(method, path, **kw)
        elapsed = time.monotonic() - started
        assert resp.status_code == 503, (path, resp.status_code, resp.text)
        assert resp.json()["error"] == "unavailable", path
        assert elapsed < 1.0, (path, elapsed)


def assert_recovers(client: httpx.Client) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(client.get(p).status_code == 200 for p in ("/readyz", "/v1/centers/near?zip=02139")):
            return
        time.sleep(0.2)
    raise AssertionError("the API did not recover after Redis came back")


def test_redis_stopped_then_restarted(own_redis: RedisProcess, api: ApiServer) -> None:
    with api.client() as client:
        assert client.get("/v1/centers/near", params={"zip": "02139"}).status_code == 200
        port = own_redis.port
        own_redis.stop()
        assert_all_unavailable(client)
        assert client.get("/healthz").status_code == 200  # the process itself is up
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "centers_store_up 0.0" in metrics.text
        own_redis.port = port
        own_redis.start()
        assert_recovers(client)


def test_redis_hung_then_resumed(own_redis: RedisProcess, api: ApiServer) -> None:
    with api.client() as client:
        assert client.get("/v1/centers/near", params={"zip": "02139"}).status_code == 200
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
        try:
            assert_all_unavailable(client)
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        assert_recovers(client)


def test_redis_busy_running_a_script(own_redis: RedisProcess, api: ApiServer) -> None:
    """A script that runs long (nothing of ours does: RELIABILITY.md, "Bounded work on Redis") makes Redis
    answer BUSY to everyone: a 503 naming the store, never a 500."""
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("busy-reply-threshold", 100)  # ms before Redis answers others BUSY
    spin = (
        "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') until "
        "(t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 3000000 return 1"
    )
    busy = threading.Thread(target=lambda: redis.Redis.from_url(own_redis.url, socket_timeout=10).eval(spin, 0))
    with api.client() as http:
        assert http.get("/v1/centers/near", params={"zip": "02139"}).status_code == 200
        busy.start()
        time.sleep(0.4)
        try:
            assert_all_unavailable(http)
        finally:
            busy.join(10)
        assert_recovers(http)


def test_a_broker_outage_answers_503_fast_and_keeps_nothing_half_stored(
    own_redis: RedisProcess, tmp_path: Path
) -> None:
    # data in one Redis, the broker on its own server, which is down
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(REGISTRY)
    env = isolated_env()
    env.update(
        {
            "REDIS_URL": own_redis.url,
            "CENTERS_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
            "CENTERS_FEEDS_FILE": str(feeds),
            "CENTERS_GEOCODER": "none",
            "PUSH_SECRET": SECRET,
            "CENTERS_DATA_DIR": str(tmp_path),
        }
    )
    server = ApiServer(env, tmp_path).start()
    row = matrix_row(
        "Broker outage, data Redis up", "`CENTERS_BROKER_URL` on its own server, which is down; a partner pushes"
    )
    store = Store.from_url(own_redis.url)
    try:
        with server.client() as client:
            for _ in range(5):
                [(method, path, kwargs)] = [c for c in calls() if c[1].endswith("/records")]  # a new event id
                started = time.monotonic()
                resp = client.request(method, path, **kwargs)
                took = time.monotonic() - started
                assert resp.status_code == 503, resp.text
                assert resp.headers["retry-after"] == "5"
                assert took < 1.5, took  # 0.28 s here: connection refused, two quick publish retries
                # nothing half-stored: no push, no event id taken (a retry with it works), nothing pending
                assert store.redis.keys("cav:push*") == []
                assert store.stale_pushes(datetime.now(UTC) + timedelta(days=1)) == []
                row.add(took=took, violations=[str(v) for v in check(store, now=datetime.now(UTC), quiet=True)])
        row.assert_held(bound=1.0)
    finally:
        server.stop()
        store.redis.connection_pool.disconnect()
