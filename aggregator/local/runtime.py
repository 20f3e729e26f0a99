"""Where the Redis comes from: ``REDIS_URL`` if set, else a private redis-server of our own; and how any
``centers`` command finds a running ``centers serve``, wherever it is run.

The private server keeps its data in ``{data_dir}/redis``. While ``centers serve`` runs it keeps a
*service file*, ``$XDG_STATE_HOME/centers/serve-{pid}.json`` (``~/.local/state/centers/`` by default):
its Redis URL, key prefix, absolute data folder, partner registry, API URL and pid. Other ``centers``
commands read it (``for_cli``) and use that service's Redis and registry, from any folder; a file whose
process is gone or whose Redis does not answer is ignored. (``{data_dir}/redis/url`` is also written,
as before.) A command that finds no running service starts a private server in its data folder for its
own duration, and says so. A lock file keeps two servers from ever sharing one data folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aggregator.local.redis_process import RedisProcess, ping
from config.settings import Settings

SERVICE_FILE_PREFIX = "serve-"


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/centers``, else ``~/.local/state/centers`` (the XDG base directory rule: a
    relative XDG_STATE_HOME is ignored)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return root / "centers"


@dataclass(frozen=True)
class Service:
    """A running ``centers serve``, as its service file describes it."""

    pid: int
    redis_url: str
    data_dir: str  # absolute
    key_prefix: str = "cav:"
    feeds_file: str = ""  # absolute; "" when not known (before the API is up) or none
    api_url: str = ""
    started_at: float = 0.0
    path: Path | None = None

    def as_json(self) -> dict[str, object]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "path"}


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """Does a Redis answer at ``url``? Any reply to PING counts (a server asking for AUTH is there).
    Schemes a bare socket cannot check (TLS, unix sockets, Sentinel) count as answering."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        return True
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64)[:1] in (b"+", b"-")
    except (OSError, ValueError):
        return False


def _read_service(path: Path) -> Service | None:
    try:
        data = json.loads(path.read_text())
        fields = {f.name for f in dataclasses.fields(Service)} - {"path"}
        service = Service(**{k: v for k, v in data.items() if k in fields}, path=path)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(service.pid, int) or not isinstance(service.redis_url, str) or not service.redis_url:
        return None
    return service


def running_services(environ: Mapping[str, str] | None = None) -> list[Service]:
    """Every ``centers serve`` of this user that runs now (its process alive, its Redis answering),
    newest first. A stale file (a service killed without its clean-up) is ignored, and removed when both
    its process is gone and its Redis does not answer."""
    found = []
    folder = state_dir(environ)
    for path in folder.glob(f"{SERVICE_FILE_PREFIX}*.json") if folder.is_dir() else ():
        service = _read_service(path)
        if service is None:
            continue
        alive, answers = _pid_alive(service.pid), redis_answers(service.redis_url)
        if alive and answers:
            found.append(service)
        elif not alive and not answers:
            with contextlib.suppress(OSError):
                path.unlink()
    return sorted(found, key=lambda s: s.started_at, reverse=True)


def _same_folder(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def for_cli(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[Settings, Service | None]:
    """The settings a ``centers`` command should use, and the running service it found (or None).

    With ``REDIS_URL`` set: that Redis (and the service running on it, if any). Else with
    ``CENTERS_DATA_DIR`` set: the service running on that folder, if any. Else the newest running
    service. What the environment does not set explicitly (the Redis URL, data folder, registry, key
    prefix) is taken from the service found. The data folder is made absolute."""
    env = os.environ if environ is None else environ
    services = running_services(env)
    if settings.redis_url:
        service = next((s for s in services if s.redis_url == settings.redis_url), None)
    elif env.get("CENTERS_DATA_DIR"):
        service = next((s for s in services if _same_folder(s.data_dir, settings.data_dir)), None)
    else:
        service = services[0] if services else None
    changes: dict[str, Any] = {"data_dir": str(Path(settings.data_dir).resolve())}
    if service is not None:
        if not settings.redis_url:
            changes["redis_url"] = service.redis_url
        if not env.get("CENTERS_DATA_DIR"):
            changes["data_dir"] = service.data_dir
        if not env.get("CENTERS_KEY_PREFIX"):
            changes["key_prefix"] = service.key_prefix
        if not settings.feeds_file:
            # the service's registry; never the config/feeds.toml of the folder this command runs in
            demo = Path(changes["data_dir"]) / "demo" / "feeds.toml"
            changes["feeds_file"] = service.feeds_file or (str(demo) if demo.exists() else "")
    return dataclasses.replace(settings, **changes), service


# --------------------------------------------------------------------------------------------------
# The service file, kept by ``centers serve``


def _service_path(environ: Mapping[str, str] | None = None) -> Path:
    return state_dir(environ) / f"{SERVICE_FILE_PREFIX}{os.getpid()}.json"


def _write_service(service: Service, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(service.as_json(), f, indent=1)
    os.replace(tmp, path)


def announce(*, api_url: str | None = None, feeds_file: Path | str | None = None) -> None:
    """Add what ``centers serve`` learns after its Redis is up (the API's URL, the registry it chose,
    the demo's included) to this process's service file. No service file: nothing to do."""
    path = _service_path()
    current = _read_service(path)
    if current is None:
        return
    changes: dict[str, Any] = {}
    if api_url is not None:
        changes["api_url"] = api_url
    if feeds_file is not None:
        changes["feeds_file"] = str(Path(feeds_file).resolve())
    with contextlib.suppress(OSError):
        _write_service(dataclasses.replace(current, **changes), path)


@contextlib.contextmanager
def _service_file(settings: Settings, url: str) -> Iterator[None]:
    registry = settings.registry_path()
    service = Service(
        pid=os.getpid(),
        redis_url=url,
        data_dir=str(settings.data_path.resolve()),
        key_prefix=settings.key_prefix,
        feeds_file=str(registry.resolve()) if registry else "",
        started_at=time.time(),
    )
    path = _service_path()
    try:
        _write_service(service, path)
    except OSError:  # a home we may not write to: the service runs, other folders do not find it
        yield
        return
    try:
        yield
    finally:
        current = _read_service(path)
        if current is not None and current.pid == os.getpid():
            with contextlib.suppress(OSError):
                path.unlink()


# --------------------------------------------------------------------------------------------------
# The Redis


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
def redis_url(
    settings: Settings, *, announce: bool = False, notice: Callable[[Path], None] | None = None
) -> Iterator[str]:
    """Yield a Redis URL for the duration of the block (starting and stopping our own if needed).

    ``announce`` (``centers serve``): keep the service file while the block runs, so ``centers``
    commands anywhere find this service. ``notice`` is told the folder before a private server is
    started (a command that found no running service)."""
    with _redis_url(settings, announce=announce, notice=notice) as url:
        if not announce:
            yield url
            return
        with _service_file(settings, url):
            yield url


@contextlib.contextmanager
def _redis_url(settings: Settings, *, announce: bool, notice: Callable[[Path], None] | None) -> Iterator[str]:
    if settings.redis_url:
        yield settings.redis_url
        return
    folder = settings.data_path.resolve() / "redis"
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
        if notice is not None:
            notice(folder.parent)
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
