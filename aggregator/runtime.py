"""Where the Redis comes from: ``REDIS_URL`` if set, else a private redis-server of our own.

The private server keeps its data in ``{data_dir}/redis``. While ``centers serve`` runs it writes
the server's URL to ``{data_dir}/redis/url`` so other ``centers`` commands use the same server; a
command that finds no running server starts one for its own duration. A lock file keeps two
servers from ever sharing one data folder.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from aggregator.redis_process import RedisProcess, ping
from config.settings import Settings


def _running_url(folder: Path) -> str | None:
    url_file = folder / "url"
    if not url_file.exists():
        return None
    url = url_file.read_text().strip()
    try:
        host_port = url.split("//", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        if ping(host, int(port)):
            return url
    except (IndexError, ValueError):
        pass
    return None


@contextlib.contextmanager
def redis_url(settings: Settings, *, announce: bool = False) -> Iterator[str]:
    """Yield a Redis URL for the duration of the block (starting and stopping our own if needed)."""
    if settings.redis_url:
        yield settings.redis_url
        return
    folder = settings.data_path / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    if (url := _running_url(folder)) is not None:
        yield url
        return
    lock_path = folder / "lock"
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"another centers process is starting the Redis in {folder}; try again in a moment"
            ) from None
        server = RedisProcess(folder, persistent=True)
        server.start()
        url_file = folder / "url"
        try:
            if announce:
                url_file.write_text(server.url + "\n")
            yield server.url
        finally:
            if announce:
                with contextlib.suppress(FileNotFoundError):
                    url_file.unlink()
            server.stop()
