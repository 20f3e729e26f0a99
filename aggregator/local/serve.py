"""``centers serve``: Redis (ours unless REDIS_URL is set), a Celery worker with beat, and the HTTP API.

With no partner registry configured (or ``--demo``) it also runs the demo partners (a local HTTP
server in every supported format, and a push partner) and a registry pointing at them. Children run
in their own process groups; Ctrl-C or SIGTERM stops them all, API first, Redis last, and leaves no
orphan.

Unless CENTERS_OPERATOR_TOKENS names its own tokens, the operator token is kept in
``{data_dir}/operator-token`` (mode 0600) and reused by every start, so a restart signs no one out;
deleting the file makes the next start issue a new one. The demo push partner's secret is kept the
same way in ``{data_dir}/demo/push-secret``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

from aggregator.local.demo import PUSH_FEED, PUSH_SECRET_ENV, DemoPartners
from aggregator.local.redis_process import free_port
from aggregator.local.runtime import announce, redis_url
from aggregator.local.sample import shared_data_dir
from config.settings import Settings, redact_url


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


#: where ``centers serve`` keeps the operator token it issues (beside Redis's data)
TOKEN_FILE = "operator-token"  # noqa: S105 - a file name, not a secret
#: where it keeps the demo push partner's secret
PUSH_SECRET_FILE = Path("demo") / "push-secret"
#: an example push for the demo partner, in a checkout
PUSH_EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "push.example.json"
_KEPT = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def kept_secret(path: Path) -> str:
    """The secret kept in ``path`` (made, mode 0600, when absent or unreadable as a secret)."""
    with contextlib.suppress(FileNotFoundError, UnicodeDecodeError):
        text = path.read_text().strip()
        if _KEPT.match(text):
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
            return text
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(tmp, path)
    return value


def operator_token(settings: Settings, data: Path) -> str:
    """The operator token ``centers serve`` offers: kept in ``{data}/operator-token`` and reused by every start;
    '' (and no file) when CENTERS_OPERATOR_TOKENS names the tokens."""
    if settings.operator_tokens:
        return ""
    return kept_secret(data / TOKEN_FILE)


def check_port(host: str, port: int) -> None:
    """Refuse to start when the API could not listen on ``host:port``, saying why in one line."""
    if not port:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise RuntimeError(
            f"cannot listen on {host}:{port} ({exc.strerror}); set CENTERS_API_HOST or pass --host"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            raise RuntimeError(_bind_problem(host, port, exc.errno, exc.strerror or str(exc))) from None


def _bind_problem(host: str, port: int, code: int | None, text: str) -> str:
    if code == errno.EADDRINUSE:
        return f"port {port} is already in use (address already in use); set CENTERS_API_PORT or pass --port"
    return (
        f"cannot listen on {host}:{port} ({text.lower()}); set CENTERS_API_HOST and CENTERS_API_PORT "
        "or pass --host and --port"
    )


def api_command(host: str, port: int) -> list[str]:
    """The API process: uvicorn's own access log is off (it writes client addresses and raw query strings);
    the app's privacy-preserving access log (aggregator/access_log.py) writes to stderr, the API's log file."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "aggregator.api.main:build",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def exit_reason(log: str, host: str, port: int) -> str:
    """Why the API exited, from what it wrote: the last error line (uvicorn's 'ERROR: ...', else the last line
    of a traceback), with a failed bind said plainly."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    if not lines:
        return "it wrote nothing"
    binds = [line for line in lines if "attempting to bind" in line]
    bind = re.search(r"\[Errno (\d+)\].*:\s*(.+)$", binds[-1]) if binds else None
    if bind:
        return _bind_problem(host, port, int(bind.group(1)), bind.group(2).strip())
    errors = [line for line in lines if line.startswith("ERROR")]
    exception = re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", lines[-1])  # a traceback's last line
    line = lines[-1] if exception or not errors else errors[-1]
    line = re.sub(r"^ERROR:\s*", "", line)
    return line if len(line) <= 300 else line[:297] + "..."


def _wait_ready(
    url: str,
    proc: subprocess.Popen[bytes],
    log_path: Path,
    timeout: float = 60,
    *,
    log_offset: int = 0,
    host: str = "127.0.0.1",
    port: int = 0,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with log_path.open("rb") as f:
                f.seek(log_offset)
                written = f.read().decode(errors="replace")
            raise RuntimeError(
                f"the API exited during start-up: {exit_reason(written, host, port)} "
                f"(exit {proc.returncode}; log: {log_path})"
            )
        try:
            with urlopen(url + "/readyz", timeout=1) as resp:  # noqa: S310 - our own loopback API
                if resp.status == 200:
                    return
        except HTTPError as exc:  # 503 "loading": the API is up and the first runs (below) bring its data
            if exc.code == 503 and b'"loading"' in exc.read():
                return
        except (URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not become ready within {timeout:.0f} s (log: {log_path})")


def serve(
    settings: Settings, *, demo: bool | None, host: str, port: int, echo: Callable[[str], None], concurrency: int = 2
) -> None:
    data = settings.data_path.resolve()
    data.mkdir(parents=True, exist_ok=True)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    registry_file = settings.registry_path()
    use_demo = demo if demo is not None else registry_file is None
    check_port(host, port)  # before anything starts: a busy port is said plainly, at once

    def on_signal(signum: int, _frame: object) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ExitStack() as stack:
            url = stack.enter_context(redis_url(settings, announce=True))
            echo(
                f"Redis:         {redact_url(url)}"
                + ("" if settings.redis_url else f" (ours, data in {data / 'redis'})")
            )
            env = {**os.environ, "REDIS_URL": url, "CENTERS_DATA_DIR": str(data)}
            push_secret = ""
            if use_demo:
                partners = DemoPartners(shared_data_dir()).start()
                stack.callback(partners.stop)
                demo_dir = data / "demo"
                demo_dir.mkdir(exist_ok=True)
                registry_file = demo_dir / "feeds.toml"
                registry_file.write_text(partners.registry_toml())
                env.setdefault("CENTERS_GEOCODER", "none")  # the demo needs no network
                push_secret = env.get(PUSH_SECRET_ENV) or kept_secret(data / PUSH_SECRET_FILE)
                env[PUSH_SECRET_ENV] = push_secret
                echo(f"Demo partners: {partners.base} (simulated availability; registry {registry_file})")
            if registry_file is not None:
                env["CENTERS_FEEDS_FILE"] = str(registry_file.resolve())
            token = operator_token(settings, data)
            if token:
                env["CENTERS_OPERATOR_TOKENS"] = f"operator:{token}"
            port = port or free_port()
            api_url = f"http://{host}:{port}"
            worker_log, api_log = logs / "worker.log", logs / "api.log"

            def worker_args(generation: int) -> list[str]:
                return [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "workers.celery_app",
                    "worker",
                    "-B",
                    "-Q",
                    "feeds,geocode",
                    "-c",
                    str(concurrency),
                    "--loglevel",
                    "INFO",
                    "-s",
                    str(data / "celerybeat-schedule"),
                    "--without-mingle",
                    "--without-gossip",
                    "-n",
                    f"{_worker_name(generation)}@%h",
                ]

            worker = stack.enter_context(_child(worker_args(0), env, worker_log, "worker"))
            log_offset = api_log.stat().st_size if api_log.exists() else 0
            api = stack.enter_context(_child(api_command(host, port), env, api_log, "api"))
            _wait_ready(
                f"http://127.0.0.1:{port}" if host in ("0.0.0.0", "::") else api_url,  # noqa: S104
                api,
                api_log,
                log_offset=log_offset,
                host=host,
                port=port,
            )
            _first_runs(env, registry_file)
            announce(api_url=api_url, feeds_file=registry_file)
            echo(f"API:           {api_url}/v1/centers/near?zip=02139   (docs: {api_url}/docs)")
            echo(
                f"Operator page: {api_url}/operator"
                + (f"   token: {token}   (kept in {data / TOKEN_FILE}; delete it to issue a new one)" if token else "")
            )
            if push_secret:
                example = f" {PUSH_EXAMPLE}" if PUSH_EXAMPLE.exists() else " FILE"
                echo(
                    f"Push partner:  {PUSH_FEED}   secret: {push_secret}   "
                    f"(try: centers push {PUSH_FEED}{example} --url {api_url})"
                )
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
                    worker = stack.enter_context(_child(worker_args(supervisor.generation), env, worker_log, "worker"))
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
            delay = min(self.MAX_DELAY, 2.0**self.restarts)
            self.echo(
                f"The worker stopped (exit {worker.returncode}); starting it again in {delay:.0f} s "
                f"(see {self.log}). The API stays up."
            )
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
        from workers.celery_app import context, create_app
        from workers.tasks import sweep

        settings = Settings.from_env(self.env)
        reg = registry_module.load_or_empty(self.registry_file)
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
    from workers import names
    from workers.celery_app import create_app

    reg = registry_module.load(registry_file)
    app = create_app(Settings.from_env(env), reg)
    try:
        for feed in reg.pulled:
            app.send_task(names.RUN_FEED, args=[feed.id, True], queue=names.FEEDS_QUEUE)
    finally:
        app.close()
