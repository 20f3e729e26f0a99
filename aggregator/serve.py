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
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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
            def worker_args(generation: int) -> list[str]:
                return [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-B", "-Q",
                        "feeds,geocode", "-c", str(concurrency), "--loglevel", "INFO", "-s",
                        str(data / "celerybeat-schedule"), "--without-mingle", "--without-gossip",
                        "-n", f"{_worker_name(generation)}@%h"]

            worker = stack.enter_context(_child(worker_args(0), env, worker_log, "worker"))
            api = stack.enter_context(_child(
                [sys.executable, "-m", "uvicorn", "aggregator.api.main:build", "--factory", "--host", host,
                 "--port", str(port), "--log-level", "warning"], env, api_log, "api"))
            _wait_ready(f"http://127.0.0.1:{port}" if host in ("0.0.0.0", "::") else api_url, api, api_log)  # noqa: S104
            _first_runs(env, registry_file)
            echo(f"API:           {api_url}/v1/centers/near?zip=02139   (docs: {api_url}/docs)")
            echo(f"Operator page: {api_url}/operator" + (f"   token: {token}" if token else ""))
            echo(f"Logs:          {logs}   Stop with Ctrl-C.")
            supervisor = _Supervisor(echo, worker_log)
            watch = _Watch(env, registry_file)
            watch.start()
            stack.callback(watch.stop)
            while True:
                if api.poll() is not None:
                    raise RuntimeError(f"the API stopped (exit {api.returncode}); see {api_log}")
                if worker.poll() is None and watch.silent(_worker_name(supervisor.generation), supervisor.started):
                    supervisor.stuck(worker)
                if supervisor.due(worker, healthy=watch.has_beaten(_worker_name(supervisor.generation))):
                    worker = stack.enter_context(_child(worker_args(supervisor.generation), env, worker_log,
                                                        "worker"))
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

    #: a worker that lived this long died of something else than a crash loop: started again at once
    STABLE_SECONDS = 60.0
    MAX_DELAY = 30.0

    def __init__(self, echo: Callable[[str], None], log: Path) -> None:
        self.echo = echo
        self.log = log
        self.restarts = 0
        self.generation = 0
        self.started = time.monotonic()
        self.restart_at: float | None = None

    def stuck(self, worker: subprocess.Popen[bytes]) -> None:
        """The worker runs but has stopped beating (hung on a dead connection): stop it to start anew."""
        self.echo(f"The worker has not beaten for {HEARTBEAT_LAPSE:.0f} s; stopping it to start it again.")
        _stop(worker, "worker", grace=10.0)

    def due(self, worker: subprocess.Popen[bytes], healthy: bool = False) -> bool:
        """True when a new worker should be started now (the old one has stopped and its wait is over).

        ``healthy``: the worker that stopped had consumed (it beat). Its death is a crash, not a crash loop:
        it is started again at once; only workers that die before working back off (1, 2, 4 ... 30 s)."""
        now = time.monotonic()
        if worker.poll() is None:
            return False
        if self.restart_at is None:
            if healthy or now - self.started > self.STABLE_SECONDS:
                self.restarts = 0
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
        self.generation += 1
        self.restart_at = None
        self.started = now
        return True


#: a worker silent this long (its heartbeat's lifetime) while Redis answers is taken for hung
HEARTBEAT_LAPSE = 90.0


def _worker_name(generation: int) -> str:
    return f"serve-{os.getpid()}-{generation}"


class _Watch(threading.Thread):
    """The supervisor's own sweep and heartbeat watch, beside the worker's: what is accepted gets applied
    even when the worker cannot sweep (dead, hung, or between restarts) and beat is down with it.

    Every CENTERS_SWEEP_SECONDS it queues again the pushes and runs nobody finished, and notes which
    workers beat. A Redis or broker outage only skips a round."""

    def __init__(self, env: Mapping[str, str], registry_file: Path | None) -> None:
        super().__init__(name="serve-watch", daemon=True)
        self.env = dict(env)
        self.registry_file = registry_file
        self.stopped = threading.Event()
        self.beating: dict[str, float] = {}  # worker name prefix -> monotonic time last seen beating
        self.redis_ok = False

    def stop(self) -> None:
        self.stopped.set()

    def has_beaten(self, name: str) -> bool:
        return name in self.beating

    def silent(self, name: str, started: float) -> bool:
        """True when the worker ``name`` has not beaten for HEARTBEAT_LAPSE while Redis answered."""
        last = max(self.beating.get(name, started), started)
        return self.redis_ok and time.monotonic() - last > HEARTBEAT_LAPSE

    def run(self) -> None:
        from config import registry as registry_module
        from config.registry import Registry
        from workers.celery_app import context, create_app
        from workers.tasks import sweep

        settings = Settings.from_env(self.env)
        reg = registry_module.load(self.registry_file) if self.registry_file else Registry(())
        app = create_app(settings, reg)
        try:
            while not self.stopped.wait(settings.sweep_seconds):
                try:
                    now = time.monotonic()
                    for name in context(app).store.live_workers():
                        self.beating[name.split("@", 1)[0]] = now
                    self.redis_ok = True
                    sweep(app)  # the workers' own sweep, run from here
                except Exception:  # Redis or the broker away: the next round tries again
                    self.redis_ok = False
        finally:
            app.close()


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
