"""The fault-matrix rig: the service as a user runs it, and the faults to inject into it.

One persistent ``redis-server`` (append-only file, every second) on a fixed port serves as data store
and broker, so it can be stopped and started again under the service. ``centers serve`` runs against it
(its supervisor, a Celery worker with beat, the HTTP API), with a partner registry of one push feed and
one pulled 5,000-center CSV feed served from a loopback HTTP server. The sweep and lock timings are
shortened (CENTERS_SWEEP_SECONDS and friends) so each run takes seconds; RELIABILITY.md gives the
bounds with the defaults.

A ``Partner`` pushes numbered updates as a real partner would: sequentially, retrying a 503 or a timeout
with the same Idempotency-Key until it is answered 202 (or 409: already accepted). What it was answered
202 for is what must be applied.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from aggregator.local.redis_process import RedisProcess, free_port
from aggregator.store import Store
from tests.environment import isolated_env
from tests.servers import LoopbackServer, Request, Response

PUSH_KEY = "harbor-partner-key-0123456789"
OPERATOR = "fault-matrix-operator-token"
TIMINGS = {"CENTERS_SWEEP_SECONDS": "0.5", "CENTERS_STRANDED_SECONDS": "3", "CENTERS_LOCK_LEASE_SECONDS": "4"}
COUNTY_SIZE = 5000
HARBOR_SITES = 20

REGISTRY = """
[[feed]]
id = "county"
format = "csv"
url = "{base}/county.csv"
allow_private = true
schedule = "1h"
freshness = "2h"
[feed.mapping.fields]
source_id = "ID"
name = "Name"
state = "State"
postal_code = "ZIP"
latitude = "Lat"
longitude = "Lon"
levels_of_care = "Services"
[[feed.mapping.availability]]
constants = {{ level_of_care = "detox" }}
fields = {{ beds_available = "Detox beds" }}

[[feed]]
id = "harbor"
format = "push"
freshness = "2h"
push = {{ bearer_key_env = ["HARBOR_KEY"] }}
[feed.mapping.fields]
source_id = "id"
name = "name"
state = "state"
postal_code = "zip"
latitude = "lat"
longitude = "lon"
[[feed.mapping.availability]]
constants = {{ level_of_care = "detox" }}
fields = {{ beds_available = "beds", reported_at = "updated_at" }}
"""


def county_csv(generation: int) -> bytes:
    """5,000 sites on a grid around Cambridge, MA; every record's name and beds change per generation."""
    lines = ["ID,Name,State,ZIP,Lat,Lon,Services,Detox beds"]
    for i in range(COUNTY_SIZE):
        lat = 42.2647 + (i % 100) * 0.002
        lon = -71.1542 + (i // 100) * 0.002
        lines.append(f"c{i},County Site {i} g{generation},MA,02139,{lat:.4f},{lon:.4f},DT,{county_beds(i, generation)}")
    return ("\n".join(lines) + "\n").encode()


def county_beds(i: int, generation: int) -> int:
    return (i + generation) % 9


def county_newest(generation: int, sample: int = 100) -> dict[str, dict[str, Any]]:
    """What the county feed's last applied run must show: every name, and the beds of a sample."""
    newest: dict[str, dict[str, Any]] = {
        f"county:c{i}": {"name": f"County Site {i} g{generation}"} for i in range(COUNTY_SIZE)
    }
    for i in range(0, COUNTY_SIZE, COUNTY_SIZE // sample):
        newest[f"county:c{i}"]["availability.detox.beds_available"] = county_beds(i, generation)
    return newest


@dataclass
class Partner:
    """Pushes updates of its 20 sites (Springfield, MA), one request at a time, as a partner would."""

    api: str
    sent: int = 0
    accepted: list[str] = field(default_factory=list)  # ingest ids answered 202 (or 409: already taken)
    records: int = 0  # records in the accepted pushes
    newest: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: int = 0  # 503s and timeouts, each retried with the same Idempotency-Key
    stop: threading.Event = field(default_factory=threading.Event)

    def body(self, n: int) -> list[dict[str, Any]]:
        """Push n updates 5 of the 20 sites (each site every 4th push): name, beds, report time."""
        at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return [
            {
                "id": f"h-{s}",
                "name": f"Harbor Site {s} v{n}",
                "state": "MA",
                "zip": "01103",
                "lat": 42.1015 + s * 0.01,
                "lon": -72.5898,
                "beds": (n + s) % 7,
                "updated_at": at,
            }
            for s in range((n % 4) * 5, (n % 4) * 5 + 5)
        ]

    def push(self, client: httpx.Client, n: int, deadline: float) -> bool:
        body = self.body(n)
        key = f"evt-{os.getpid()}-{n}-{time.monotonic_ns()}"
        while time.monotonic() < deadline:
            try:
                r = client.post(
                    "/v1/feeds/harbor/records",
                    json=body,
                    timeout=3,
                    headers={"Authorization": f"Bearer {PUSH_KEY}", "Idempotency-Key": key},
                )
            except httpx.HTTPError:
                self.refused += 1
                time.sleep(0.2)
                continue
            if r.status_code in (202, 409):
                self.accepted.append(r.json()["ingest_id"])
                self.records += len(body)
                for record in body:  # acceptance order is send order: the last accepted is the newest
                    self.newest[f"harbor:{record['id']}"] = {
                        "name": record["name"],
                        "availability.detox.beds_available": record["beds"],
                    }
                return True
            self.refused += 1
            if r.status_code not in (503, 429):
                raise AssertionError(f"push {n}: {r.status_code} {r.text}")
            time.sleep(0.2)
        return False

    def run(self, count: int, pause: float = 0.02, deadline_s: float = 60) -> None:
        deadline = time.monotonic() + deadline_s
        with httpx.Client(base_url=self.api) as client:
            for _ in range(count):
                if self.stop.is_set() or not self.push(client, self.sent, deadline):
                    return
                self.sent += 1
                time.sleep(pause)

    def start(self, count: int, pause: float = 0.02) -> threading.Thread:
        t = threading.Thread(target=self.run, args=(count, pause), daemon=True)
        t.start()
        return t


class Rig:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis = RedisProcess(root / "redis", port=free_port(), persistent=True)
        self.partner_server = LoopbackServer()
        self.generation = 0
        self.serve: subprocess.Popen[bytes] | None = None
        self.api = ""
        self.store: Store | None = None

    # ------------------------------------------------------------------------------ start, stop

    def start(self) -> Rig:
        self.redis.start()
        self.partner_server.route("/county.csv", self._county)
        self.partner_server.start()
        registry = self.root / "feeds.toml"
        registry.write_text(REGISTRY.format(base=self.partner_server.url("").rstrip("/")))
        env = isolated_env()
        env.update(
            {
                "REDIS_URL": self.redis.url,
                "CENTERS_FEEDS_FILE": str(registry),
                "CENTERS_DATA_DIR": str(self.root / "var"),
                "CENTERS_API_PORT": "0",
                "CENTERS_GEOCODER": "none",
                "CENTERS_OPERATOR_TOKENS": f"ops:{OPERATOR}",
                "CENTERS_PUSH_RATE_LIMIT": "100000",
                "CENTERS_RATE_LIMIT": "100000",
                "CENTERS_USER_AGENT": "center-availability-tests/1.0",
                "HARBOR_KEY": PUSH_KEY,
                **TIMINGS,
            }
        )
        self.env = env
        self.out_path = self.root / "serve.out"
        self.serve = subprocess.Popen(
            [sys.executable, "-m", "aggregator.cli", "serve"],
            env=env,
            stdout=self.out_path.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not self.api:
            if self.serve.poll() is not None:
                raise RuntimeError(f"centers serve exited:\n{self.output()}")
            m = re.search(r"API:\s+(http://127\.0\.0\.1:\d+)", self.output())
            self.api = m.group(1) if m else ""
            time.sleep(0.2)
        if not self.api:
            raise RuntimeError(f"centers serve did not start:\n{self.output()}")
        self.store = Store.from_url(self.redis.url)
        # the first run (queued by `centers serve` at start) has loaded all 5,000 sites
        self.wait(
            lambda: (
                len(self.data.feed_members("county")) == COUNTY_SIZE
                and self.data.feed_state("county").last_outcome == "applied"
            ),
            120,
            "the first county run",
        )
        return self

    def stop(self) -> None:
        if self.serve is not None and self.serve.poll() is None:
            self.serve.send_signal(signal.SIGINT)
            try:
                self.serve.wait(60)
            except subprocess.TimeoutExpired:
                self.serve.kill()
        if self.store is not None:
            self.store.redis.connection_pool.disconnect()
        self.partner_server.stop()
        self.redis.stop()

    def events(self) -> Counter[str]:
        """What the service logged about its worker so far: exits, restarts, the kombu defect."""
        out, log = self.output(), self.logs(tail=None)
        return Counter(
            {
                "worker exited, restarted by `centers serve`": out.count("The worker stopped"),
                "worker hung, restarted": out.count("has not beaten"),
                "worker stopped consuming, exited": log.count("this worker stopped consuming"),
                "kombu `_connparams` AttributeError": log.count("'NoneType' object has no attribute 'hostname'"),
                "worker reconnected to the broker": log.count("Connected to redis://"),
            }
        )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def logs(self, tail: int | None = 6000) -> str:
        worker = self.root / "var" / "logs" / "worker.log"
        text = worker.read_text(errors="replace") if worker.exists() else ""
        return text[-tail:] if tail else text

    @property
    def data(self) -> Store:
        assert self.store is not None
        return self.store

    def _county(self, _req: Request) -> Response:
        return Response(200, county_csv(self.generation), {"Content-Type": "text/csv"})

    # ------------------------------------------------------------------------------------ helpers

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Seconds until ``condition`` held (a Redis still restarting counts as not yet)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                if condition():
                    return time.monotonic() - start
            except Exception:  # noqa: S110 - Redis restarting: not yet
                pass
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout:.0f} s waiting for {what}\n--- serve ---\n"
            f"{self.output()[-3000:]}\n--- worker log ---\n{self.logs()}"
        )

    def run_county(self) -> int:
        """Start a county run of a new generation (through the broker, as beat would); its generation."""
        from config import registry as registry_module
        from config.settings import Settings
        from workers.celery_app import create_app

        self.generation += 1
        app = create_app(Settings.from_env(self.env), registry_module.load(Path(self.env["CENTERS_FEEDS_FILE"])))
        try:
            app.send_task("feeds.run", args=["county", True], queue="feeds")
        finally:
            app.close()
        return self.generation

    def county_applied(self, generation: int) -> bool:
        record = self.data.stored_records([f"county:c{COUNTY_SIZE - 1}"]).get(f"county:c{COUNTY_SIZE - 1}")
        return record is not None and f'g{generation}"' in record.decode()

    def pushes_done(self, ingest_ids: list[str]) -> bool:
        done = 0
        for ingest_id in ingest_ids:
            record = self.data.push_record(ingest_id)
            if record is None or not record.finished:
                return False
            done += 1
        return done == len(ingest_ids)

    # ------------------------------------------------------------------------------------ faults

    def restart_redis(self, sig: signal.Signals, down_seconds: float = 0.5) -> None:
        proc = self.redis.process
        assert proc is not None
        proc.send_signal(sig)
        proc.wait(30)
        self.redis.process = None
        time.sleep(down_seconds)
        self.redis.start()

    def worker_main(self) -> psutil.Process:
        assert self.serve is not None
        found = []
        for child in psutil.Process(self.serve.pid).children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "celery" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.Error:
                continue
        if len(found) != 1:
            raise AssertionError(f"expected one worker, found {len(found)}\n{self.output()[-2000:]}")
        return found[0]

    def beating(self) -> set[str]:
        return {name for name in self.data.live_workers() if name.startswith("serve-")}

    def steady(self) -> bool:
        """One worker runs and its own heartbeat says it consumes (not a predecessor's lingering one)."""
        try:
            main = self.worker_main()
        except AssertionError:
            return False
        args = main.cmdline()
        name = args[args.index("-n") + 1].split("@", 1)[0] if "-n" in args else ""
        return any(b.split("@", 1)[0] == name for b in self.beating())

    def worker_ready(self, before: set[str]) -> bool:
        """A new worker (not one of ``before``) runs and beats."""
        try:
            self.worker_main()
        except AssertionError:
            return False
        return bool(self.beating() - before)
