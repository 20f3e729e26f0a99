"""What the service benchmarks share: the machine line, percentiles, and the stack as `centers serve` runs it
(a private redis-server, a real Celery worker with beat and 2 processes, the API under uvicorn), all on
127.0.0.1, each process started here and stopped here."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
import timeit
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from aggregator.local.redis_process import RedisProcess, free_port
from workers import names

ROOT = Path(__file__).resolve().parents[1]


def pct(samples: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of ``samples``; NaN when there are none."""
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def machine() -> str:
    """The machine as every benchmark names it: cores, memory, processor, system, Python, and how fast this Python
    runs a plain loop here (``python_loop_us``): a ratio of Python work to Redis work moves with that balance."""
    memory = 0.0
    cpu = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 2**20
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {memory:.1f} GiB, {cpu or platform.machine()}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()} (sum(range(1000)) {python_loop_us():.1f} µs)"
    )


def python_loop_us() -> float:
    """µs this Python takes for ``sum(range(1000))``, the best of five rounds: a plain measure of the machine's
    speed for Python code, to set runs on different machines side by side."""
    return min(timeit.repeat("sum(range(1000))", number=1000, repeat=5)) / 1000 * 1e6


def preamble(title: str) -> None:
    """Title, machine, date and the command, as every benchmark table starts."""
    print(title)
    print(f"machine: {machine()}")
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"command: python {' '.join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])}")
    sys.stdout.flush()


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and b == b and a == a else "n/a"


class Stack:
    """Redis, a Celery worker (``-B``, ``-c 2``, queues feeds and geocode) and, if asked, the API.

    ``registry``: the TOML text of the partner registry; ``env``: more environment for both (secrets)."""

    def __init__(
        self,
        folder: Path,
        registry: str,
        *,
        env: dict[str, str] | None = None,
        api: bool = True,
        concurrency: int = 2,
        worker_loglevel: str = "INFO",
    ) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.registry_file = folder / "feeds.toml"
        self.registry_file.write_text(registry)
        self.extra_env = env or {}
        self.want_api = api
        self.concurrency = concurrency
        self.worker_loglevel = worker_loglevel
        self.redis = RedisProcess(folder / "redis", persistent=False)
        self.worker: subprocess.Popen[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.api_url = ""
        self.worker_log = folder / "worker.log"
        self.api_log = folder / "api.log"

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CENTERS_"))}
        env.update(
            {
                "REDIS_URL": self.redis.url,
                "CENTERS_FEEDS_FILE": str(self.registry_file),
                "CENTERS_DATA_DIR": str(self.folder),
                "CENTERS_GEOCODER": "none",
                "TZ": "UTC",
                "CENTERS_USER_AGENT": "center-availability-bench/1.0",
                "CENTERS_RATE_LIMIT": "100000000",
                "CENTERS_PUSH_RATE_LIMIT": "100000000",
                "CENTERS_OPERATOR_TOKENS": "ops:bench-operator-token-01234",
                "PYTHONPATH": str(ROOT),
                **self.extra_env,
            }
        )
        return env

    def start_redis(self) -> str:
        return self.redis.start()

    def start_services(self, timeout: float = 90) -> None:
        """The worker (then waits for its 'ready') and the API (then waits for /healthz)."""
        env = self.env()
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "-B",
            "-Q",
            f"{names.FEEDS_QUEUE},{names.GEOCODE_QUEUE}",
            "-c",
            str(self.concurrency),
            "--loglevel",
            self.worker_loglevel,
            "-s",
            str(self.folder / "beat-schedule"),
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"bench-{os.getpid()}@%h",
        ]
        self.worker = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=self.worker_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        if self.want_api:
            port = free_port()
            self.api = subprocess.Popen(
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
                ],
                env=env,
                cwd=ROOT,
                stdout=self.api_log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.api_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while " ready." not in self.worker_log.read_text(errors="replace"):
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start:\n" + self.worker_log.read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        while self.api is not None:
            try:
                if httpx.get(self.api_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API did not start:\n" + self.api_log.read_text(errors="replace")[-3000:])
            time.sleep(0.1)

    def celery(self) -> Any:
        """A Celery app of our own on the same broker (to send tasks as the API does)."""
        from config.registry import Registry
        from config.settings import Settings
        from workers.celery_app import create_app

        return create_app(Settings(redis_url=self.redis.url, data_dir=str(self.folder)), Registry(()))

    def stop(self) -> None:
        for proc, grace in ((self.api, 15.0), (self.worker, 45.0)):
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.api = self.worker = None
        self.redis.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
