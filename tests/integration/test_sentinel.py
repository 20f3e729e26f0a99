"""The store follows the primary that Redis Sentinel names (a real sentinel process)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from aggregator.local.redis_process import RedisProcess, find_binary, free_port, ping
from aggregator.lookup import near
from aggregator.store import Store
from tests.integration.factories import NOW, center


def test_a_sentinel_url_reaches_the_primary(tmp_path: Path) -> None:
    with RedisProcess(tmp_path / "primary", persistent=False) as primary:
        port = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\nsentinel monitor centers 127.0.0.1 {primary.port} 1\n"
        )
        sentinel = subprocess.Popen(
            [find_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 10
            while not ping("127.0.0.1", port) and time.monotonic() < deadline:
                time.sleep(0.05)
            store = Store.from_url(f"redis+sentinel://127.0.0.1:{port}/centers/0")
            store.replace_feed("f", [center("f", "a", 42.365, -71.104)], [], now=NOW)
            assert [h.id for h in near(store, zip="02139", now=NOW).results] == ["f:a"]
            store.redis.close()
        finally:
            sentinel.terminate()
            sentinel.wait(10)
