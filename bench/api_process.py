"""The HTTP API as the benchmarks run it: one uvicorn process on 127.0.0.1 over a given Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from aggregator.local.redis_process import free_port


@contextlib.contextmanager
def api_process(redis_url: str, data_dir: Path, *extra: str) -> Iterator[str]:
    """Start the API (no rate limit to speak of, no geocoder); yield its base URL; stop it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CENTERS_"))}
    env.update(
        {
            "REDIS_URL": redis_url,
            "CENTERS_GEOCODER": "none",
            "CENTERS_DATA_DIR": str(data_dir),
            "CENTERS_RATE_LIMIT": "100000000",
            "CENTERS_OPERATOR_TOKENS": "ops:bench-operator-token-01234",
        }
    )
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "aggregator.api.main:build",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra,
        ],
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(15)
