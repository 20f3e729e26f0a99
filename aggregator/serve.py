"""``centers serve``: Redis (ours unless REDIS_URL is set), a Celery worker with beat, and the HTTP API.

With no partner registry configured (or ``--demo``) it also runs the demo partners (a local HTTP
server in every supported format) and a registry pointing at them. Children run in their own
process groups; Ctrl-C or SIGTERM stops them all, API first, Redis last, and leaves no orphan.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from aggregator.demo import DemoPartners
from aggregator.redis_process import free_port
from aggregator.runtime import redis_url
from aggregator.sample import shared_data_dir
from config.settings import Settings


class Stopped(Exception):
    pass


@contextmanager
def _child(args: list[str], env: dict[str, str], log_path: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    log = log_path.open("ab")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
    try:
        yield proc
    finally:
        _stop(proc, name)
        log.close()


def _stop(proc: subprocess.Popen[bytes], name: str, grace: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the API exited during start-up:\n{tail}")
        try:
            with urlopen(url + "/readyz", timeout=1) as resp:  # noqa: S310 - our own loopback API
                if resp.status == 200:
                    return
        except (URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not become ready within {timeout:.0f} s (log: {log_path})")


def serve(settings: Settings, *, demo: bool | None, host: str, port: int, echo: Callable[[str], None],
          concurrency: int = 2) -> None:
    data = settings.data_path.resolve()
    data.mkdir(parents=True, exist_ok=True)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    registry_file = settings.registry_path()
    use_demo = demo if demo is not None else registry_file is None

    def on_signal(signum: int, _frame: object) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ExitStack() as stack:
            url = stack.enter_context(redis_url(settings, announce=True))
            echo(f"Redis:         {url}" + ("" if settings.redis_url else f" (ours, data in {data / 'redis'})"))
            env = {**os.environ, "REDIS_URL": url, "CENTERS_DATA_DIR": str(data)}
            if use_demo:
                partners = DemoPartners(shared_data_dir()).start()
                stack.callback(partners.stop)
                demo_dir = data / "demo"
                demo_dir.mkdir(exist_ok=True)
                registry_file = demo_dir / "feeds.toml"
                registry_file.write_text(partners.registry_toml())
                env.setdefault("CENTERS_GEOCODER", "none")  # the demo needs no network
                echo(f"Demo partners: {partners.base} (simulated availability; registry {registry_file})")
            if registry_file is not None:
                env["CENTERS_FEEDS_FILE"] = str(registry_file.resolve())
            token = ""
            if not settings.operator_tokens:
                token = secrets.token_urlsafe(18)
                env["CENTERS_OPERATOR_TOKENS"] = f"operator:{token}"
            port = port or free_port()
            api_url = f"http://{host}:{port}"
            worker_log, api_log = logs / "worker.log", logs / "api.log"
            worker_args = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-B", "-Q",
                           "feeds,geocode", "-c", str(concurrency), "--loglevel", "INFO", "-s",
                           str(data / "celerybeat-schedule"), "--without-mingle", "--without-gossip"]
            worker = stack.enter_context(_child(worker_args, env, worker_log, "worker"))
            api = stack.enter_context(_child(
                [sys.executable, "-m", "uvicorn", "aggregator.api.main:build", "--factory", "--host", host,
                 "--port", str(port), "--log-level", "warning"], env, api_log, "api"))
            _wait_ready(f"http://127.0.0.1:{port}" if host in ("0.0.0.0", "::") else api_url, api, api_log)  # noqa: S104
            _first_runs(env, registry_file)
            echo(f"API:           {api_url}/v1/centers/near?zip=02139   (docs: {api_url}/docs)")
            echo(f"Operator page: {api_url}/operator" + (f"   token: {token}" if token else ""))
            echo(f"Logs:          {logs}   Stop with Ctrl-C.")
            supervisor = _Supervisor(echo, worker_log)
            while True:
                if api.poll() is not None:
                    raise RuntimeError(f"the API stopped (exit {api.returncode}); see {api_log}")
                if supervisor.due(worker):
                    worker = stack.enter_context(_child(worker_args, env, worker_log, "worker"))
                time.sleep(0.5)
    except Stopped as stop:
        echo(f"Stopping ({stop}) ...")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    echo("Stopped.")


class _Supervisor:
    """Restarts a worker that stopped (a Redis restart can make Celery exit), with backoff, while the API
    stays up: a helpline's search must not go down with its background work."""

    STABLE_SECONDS = 300.0
    MAX_DELAY = 30.0

    def __init__(self, echo: Callable[[str], None], log: Path) -> None:
        self.echo = echo
        self.log = log
        self.restarts = 0
        self.started = time.monotonic()
        self.restart_at: float | None = None

    def due(self, worker: subprocess.Popen[bytes]) -> bool:
        """True when a new worker should be started now (the old one has stopped and its wait is over)."""
        now = time.monotonic()
        if worker.poll() is None:
            if self.restarts and now - self.started > self.STABLE_SECONDS:
                self.restarts = 0  # it has run long enough: the next failure starts the backoff anew
            return False
        if self.restart_at is None:
            delay = min(self.MAX_DELAY, 2.0 ** self.restarts)
            self.echo(f"The worker stopped (exit {worker.returncode}); starting it again in {delay:.0f} s "
                      f"(see {self.log}). The API stays up.")
            self.restart_at = now + delay
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(worker.pid, signal.SIGKILL)  # its pool children, if any outlived it
            return False
        if now < self.restart_at:
            return False
        self.restarts += 1
        self.restart_at = None
        self.started = now
        return True


def _first_runs(env: dict[str, str], registry_file: Path | None) -> None:
    """Queue every pulled feed once now, so data appears without waiting for the schedule."""
    if registry_file is None:
        return
    from config import registry as registry_module
    from workers.celery_app import create_app

    reg = registry_module.load(registry_file)
    app = create_app(Settings.from_env(env), reg)
    try:
        for feed in reg.pulled:
            app.send_task("feeds.run", args=[feed.id, True], queue="feeds")
    finally:
        app.close()
