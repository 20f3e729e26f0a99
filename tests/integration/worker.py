"""A real Celery worker (with beat) in a subprocess, against the test session's Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.environment import isolated_env

WORKER_DB = 2  # data; the broker is the next database (see Settings.broker)


class WorkerProcess:
    def __init__(
        self,
        redis_base_url: str,
        feeds_file: Path,
        data_dir: Path,
        *,
        prefix: str = "wk:",
        beat: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.url = redis_base_url.rsplit("/", 1)[0] + f"/{WORKER_DB}"
        self.env = isolated_env()
        self.env.update(
            {
                "REDIS_URL": self.url,
                "CENTERS_KEY_PREFIX": prefix,
                "CENTERS_FEEDS_FILE": str(feeds_file),
                "CENTERS_DATA_DIR": str(data_dir),
                "CENTERS_GEOCODER": "none",
                "CENTERS_USER_AGENT": "center-availability-tests/1.0",
                **(extra_env or {}),
            }
        )
        self.beat = beat
        self.log_path = data_dir / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def flush(self) -> None:
        for db in (WORKER_DB, WORKER_DB + 1):
            client = redis.Redis.from_url(self.url.rsplit("/", 1)[0] + f"/{db}")
            client.flushdb()
            client.close()

    def start(self) -> WorkerProcess:
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "-Q",
            "feeds,geocode",
            "-c",
            "2",
            "--loglevel",
            "INFO",
            "-n",
            f"test-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
        if self.beat:
            args += ["-B", "-s", str(Path(self.env["CENTERS_DATA_DIR"]) / "beat-schedule")]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n--- worker log (tail) ---\n{log()[-4000:]}")
