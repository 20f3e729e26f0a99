"""Benchmark: 1,000 pull feeds due every 5 minutes, on one worker as `centers serve` runs it.

    python bench/feeds_at_scale.py [--feeds 1000] [--interval-seconds 300] [--minutes 12]

On 127.0.0.1: one HTTP server (a process of its own) serving ``--feeds`` small CSV documents (5-20 centers
each, with coordinates around real ZIP centroids; every fifth feed's beds change at each fetch, the others
send the same bytes every time), a registry of that many csv feeds each due every ``--interval-seconds``
(``schedule``; beat staggers them inside the period, workers/schedule.py), a private redis-server and a
real Celery worker with beat and 2 processes (``-B -c 2``, as `centers serve`). It runs for ``--minutes``
of wall time and measures, per feed run:

* start lag: when the partner's server saw the run's fetch, minus when the run was due (the grid point of
  its staggered schedule); finish lag: when the worker logged the run's end, minus when it was due;
* missed runs: due times (with a whole period inside the run) with no fetch before the next due time.

Baseline in the same run: ``feeds.ping`` (a no-op task, same queue) sent every ``--ping-seconds`` at known
times; its lag is when it ran minus when it was sent. Prints p50/p99 of both, the ratio, missed runs, and
the outcomes. ``--interval-seconds 60`` is the harder variant (the same feeds five times as often).
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.geography import _zip_table, zip_place
from aggregator.local.redis_process import free_port
from bench import _summary
from bench._stack import Stack, pct, preamble, ratio
from workers import names
from workers.schedule import offset_for

HEADER = [
    "ID",
    "Name",
    "Street",
    "City",
    "State",
    "ZIP",
    "Lat",
    "Lon",
    "Phone",
    "Services",
    "Payment",
    "Detox open",
    "Detox total",
    "Residential open",
    "Residential total",
    "Updated",
]
WORDS = [
    "Harbor",
    "Cedar",
    "Valley",
    "Summit",
    "Bridge",
    "River",
    "Oak",
    "Lakeside",
    "North",
    "Hope",
    "New Day",
    "Pine",
    "Meadow",
    "Crossroads",
    "Beacon",
    "Horizon",
    "Willow",
    "Granite",
    "Sunrise",
    "Evergreen",
]
KINDS = ["Recovery Center", "Treatment Services", "Behavioral Health", "Detox Unit", "Wellness House", "Clinic"]
LEVELS = ["detox", "residential", "outpatient", "iop", "otp"]
PAYMENT = ["Medicaid", "Medicare", "Private health insurance", "Self-pay", "Sliding fee"]


def feed_id(i: int) -> str:
    return f"scale-{i:04d}"


def registry(base: str, feeds: int, interval: int) -> str:
    parts = []
    for i in range(feeds):
        parts.append(f'''[[feed]]
id = "{feed_id(i)}"
partner = "Scale partner {i}"
format = "csv"
url = "{base}/feeds/{i}.csv"
allow_private = true
schedule = "{interval}s"
freshness = "1h"
timeout = 20
[feed.mapping.fields]
source_id = "ID"
name = "Name"
address_1 = "Street"
city = "City"
state = "State"
postal_code = "ZIP"
latitude = "Lat"
longitude = "Lon"
phone = "Phone"
levels_of_care = "Services"
payment = "Payment"
reported_at = "Updated"
[[feed.mapping.availability]]
constants = {{ level_of_care = "detox" }}
fields = {{ beds_available = "Detox open", beds_total = "Detox total" }}
[[feed.mapping.availability]]
constants = {{ level_of_care = "residential" }}
fields = {{ beds_available = "Residential open", beds_total = "Residential total" }}
''')
    return "\n".join(parts)


class Partners:
    """The documents: fixed rows per feed; a changing feed's beds and report time move at every fetch."""

    def __init__(self, feeds: int, seed: int) -> None:
        places = [p for p in map(zip_place, sorted(_zip_table())) if p is not None]
        self.started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.rows: list[list[list[Any]]] = []
        for i in range(feeds):
            rng = random.Random(seed * 100_003 + i)
            home = rng.choice(places)
            rows = []
            for j in range(rng.randint(5, 20)):
                levels = rng.sample(LEVELS, rng.randint(1, 3))
                rows.append(
                    [
                        f"S{j}",
                        f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(KINDS)} {i}-{j}",
                        f"{rng.randint(1, 9999)} {rng.choice(WORDS)} St",
                        home.city,
                        home.state,
                        home.zip_code,
                        round(home.latitude + rng.gauss(0, 0.02), 5),
                        round(home.longitude + rng.gauss(0, 0.02), 5),
                        f"(617) 555-{rng.randint(0, 9999):04d}",
                        "; ".join(levels),
                        "; ".join(rng.sample(PAYMENT, rng.randint(1, 3))),
                        levels,
                    ]
                )
            self.rows.append(rows)
        self.fetches = [0] * feeds

    def document(self, i: int) -> bytes:
        self.fetches[i] += 1
        changing = i % 5 == 0
        n = self.fetches[i] if changing else 0
        updated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if changing else self.started
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(HEADER)
        for j, row in enumerate(self.rows[i]):
            *cells, levels = row
            detox = [(n + j) % 8, 8] if "detox" in levels else ["", ""]
            residential = [(n + 2 * j) % 12, 12] if "residential" in levels else ["", ""]
            w.writerow([*cells, *detox, *residential, updated])
        return out.getvalue().encode()


def serve(port: int, feeds: int, seed: int, log_path: str, ready: Any) -> None:
    """The partners' HTTP server (a process of its own): logs 'time feed' for every fetch."""
    partners = Partners(feeds, seed)
    lock = threading.Lock()
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the server's life
    pattern = re.compile(r"^/feeds/(\d+)\.csv$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # http.server's name for it
            seen = time.time()
            m = pattern.match(self.path)
            if m is None or int(m.group(1)) >= feeds:
                self.send_error(404)
                return
            i = int(m.group(1))
            with lock:
                body = partners.document(i)
                log.write(f"{seen:.6f} {i}\n")
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ready.set()
    server.serve_forever()


LOG_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/[^\]]*\] Task " + re.escape(names.RUN_FEED) + r"\[[^\]]+\] "
    r"succeeded in ([\d.e-]+)s: \{'feed_id': '([^']+)', 'status': '([^']+)'"
)


def finished_runs(log_text: str) -> list[tuple[float, str, str, float]]:
    """(finish time, feed id, outcome, run seconds) of every feed run the worker logged as done."""
    out = []
    for line in log_text.splitlines():
        m = LOG_LINE.match(line)
        if m:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
            out.append((at, m.group(3), m.group(4), float(m.group(2))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--interval-seconds", type=int, default=300, help="each feed's schedule (5 minutes)")
    ap.add_argument("--minutes", type=float, default=12.0, help="wall time of the run (bounded)")
    ap.add_argument("--ping-seconds", type=float, default=2.0, help="a no-op task is sent this often")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (fetch and worker logs) and name it")
    _summary.add_option(ap)
    args = ap.parse_args()
    if not 1 <= args.feeds <= 5000 or not 0 < args.minutes <= 60:
        raise SystemExit("--feeds 1..5000 and --minutes up to 60: this benchmark stays bounded")
    preamble("pull feeds at scale: lag from due to run (bench/feeds_at_scale.py)")
    period = float(args.interval_seconds)
    folder = Path(tempfile.mkdtemp(prefix="bench-feeds-"))
    fetch_log = folder / "fetches.log"
    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(
        target=serve, args=(port, args.feeds, args.seed, str(fetch_log), ready), daemon=True
    )
    server.start()
    if not ready.wait(60):
        raise SystemExit("the partners' server did not start")
    sends: list[tuple[float, str]] = []
    backlog: list[int] = []
    try:
        with Stack(folder, registry(f"http://127.0.0.1:{port}", args.feeds, args.interval_seconds), api=False) as stack:
            stack.start_redis()
            stack.start_services()
            started = time.time()
            celery = stack.celery()
            import redis

            data = redis.Redis.from_url(stack.redis_url)
            broker = redis.Redis.from_url(stack.redis_url.rsplit("/", 1)[0] + "/1")
            end = started + args.minutes * 60
            next_ping = started + 0.5
            while time.time() < end:
                now = time.time()
                if now >= next_ping:
                    key = f"bench:ping:{uuid.uuid4().hex}"
                    sends.append((time.time(), key))
                    celery.send_task(names.PING, args=[key], queue=names.FEEDS_QUEUE)
                    next_ping += args.ping_seconds
                    backlog.append(int(broker.llen(names.FEEDS_QUEUE)))
                time.sleep(max(0.0, min(next_ping, end) - time.time()))
            stopped = time.time()
            ran = data.mget([k for _, k in sends]) if sends else []
            log_text = stack.worker_log.read_text(errors="replace")
            data.close()
            broker.close()
    finally:
        server.terminate()
        server.join(10)

    ping_lags = [float(v) - t for (t, _), v in zip(sends, ran, strict=True) if v is not None]
    pings_unrun = sum(1 for v in ran if v is None)

    fetches: dict[str, list[float]] = {}
    for line in fetch_log.read_text().splitlines():
        at, i = line.split()
        fetches.setdefault(feed_id(int(i)), []).append(float(at))
    start_lags, finish_lags, durations = [], [], []
    extra = missed = slots = 0
    for n in range(args.feeds):
        fid = feed_id(n)
        offset = offset_for(fid, args.interval_seconds)
        seen: Counter[float] = Counter()
        for at in fetches.get(fid, []):
            due = ((at - offset) // period) * period + offset
            seen[due] += 1
            start_lags.append(at - due)
        extra += sum(c - 1 for c in seen.values())
        # due times after the worker started whose whole period passed before the run stopped
        due = ((started - offset) // period + 1) * period + offset
        while due + period <= stopped:
            slots += 1
            missed += due not in seen
            due += period
    outcomes: Counter[str] = Counter()
    for at, fid, status, seconds in finished_runs(log_text):
        outcomes[status] += 1
        durations.append(seconds)
        starts = [t for t in fetches.get(fid, []) if t <= at]
        if starts:
            offset = offset_for(fid, args.interval_seconds)
            finish_lags.append(at - (((starts[-1] - offset) // period) * period + offset))
    expired = log_text.count(f"Discarding revoked task: {names.RUN_FEED}")

    print(
        f"{args.feeds:,} csv feeds, each due every {args.interval_seconds} s (staggered), "
        f"{sum(len(r) for r in Partners(args.feeds, args.seed).rows):,} centers; one worker -B -c 2; "
        f"{(stopped - started) / 60:.1f} min of wall time; all on 127.0.0.1"
    )
    print(f"{'':44}{'runs':>7}{'p50 s':>9}{'p99 s':>9}{'max s':>9}")
    rows = (
        ("baseline: no-op task, sent -> ran", ping_lags),
        ("feed run: due -> fetch (start lag)", start_lags),
        ("feed run: due -> logged done (finish lag)", finish_lags),
        ("feed run: time in the task", durations),
    )
    for name, s in rows:
        print(f"{name:<44}{len(s):>7}{pct(s, 0.5):>9.3f}{pct(s, 0.99):>9.3f}{max(s, default=float('nan')):>9.3f}")
    print(
        f"ratio start lag / no-op task lag: p50 {ratio(pct(start_lags, 0.5), pct(ping_lags, 0.5))}, "
        f"p99 {ratio(pct(start_lags, 0.99), pct(ping_lags, 0.99))}"
    )
    print(
        f"missed runs: {missed} of {slots} due times with a whole period inside the run; extra runs (a second "
        f"run in one period): {extra}; expired messages: {expired}; pings not run by the end: {pings_unrun}"
    )
    print(
        f"outcomes: {', '.join(f'{k} {v}' for k, v in outcomes.most_common()) or 'none'}; "
        f"queue 'feeds' length at each ping: p50 {pct(backlog, 0.5):.0f}, max {max(backlog, default=0)}"
    )
    _summary.write(
        args.summary,
        {
            "feeds": args.feeds,
            "interval_s": args.interval_seconds,
            "minutes": (stopped - started) / 60,
            "missed": missed,
            "due": slots,
            "extra": extra,
            "expired": expired,
            "runs": len(start_lags),
            "start lag p50 s": pct(start_lags, 0.5),
            "start lag p99 s": pct(start_lags, 0.99),
            "ping lag p50 s": pct(ping_lags, 0.5),
            "ping lag p99 s": pct(ping_lags, 0.99),
        },
    )
    if args.keep:
        print(f"fetch log, worker log and registry kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
