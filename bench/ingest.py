"""Benchmark: ingest, re-ingest, memory per center and the HTTP near route, each beside its baseline.

    python bench/ingest.py [--rows 100000] [--http-seconds 10] [--clients 16] [--python-clients]

In a private redis-server:

* ingest: a synthetic CSV of ``--rows`` rows with coordinates (the bundled sample's layout: services,
  detox and residential beds, an outpatient status, and each row's report time) through a forced
  ``Pipeline.run`` (fetch -> parse -> normalize -> place -> store), timed per stage; then the same bytes
  again (an unchanged re-ingest), then the same records in a new order. The SAMHSA list (../shared/data,
  14,034 rows) the same way, where present; then a fifth as many synthetic rows without report times
  (each run reports those figures again at its own time: an unchanged row is not normalized again, its memo
  keeps its figures, but they are written every run);
* memory: ``INFO memory`` used_memory of the loaded store over the number of centers;
* HTTP: the API (uvicorn, one process) on that store; for ``--http-seconds`` in all, requests go to
  ``/healthz`` (the same server's trivial route: the baseline), then to ``/v1/centers/near?zip=...``
  (ZIPs in turn), alternating in rounds; requests per second and the ratio. The load comes from ``wrk``
  (2 threads, ``--clients`` connections) where it is installed: a client in C leaves the server the
  cores; without it, ``--clients`` Python threads (which take CPU from the server on a small machine,
  so the ratio then reads lower).

Prints every figure beside its baseline from the same run; BENCHMARKS.md keeps the results.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.feeds.mapping import RecordMapping
from aggregator.fetch import Fetcher, new_session
from aggregator.geography import _zip_table, zip_place
from aggregator.ingest import Pipeline
from aggregator.local import sample
from aggregator.local.redis_process import RedisProcess
from aggregator.store import Store
from bench import _summary
from bench._stack import machine
from bench.api_process import api_process
from config import registry
from config.registry import FeedConfig

LEVELS = ["detox", "residential", "outpatient", "iop", "otp"]
PAYMENT = ["medicaid", "medicare", "private", "self_pay", "sliding_scale"]
HEADER = [
    "id",
    "name",
    "street",
    "city",
    "state",
    "zip",
    "latitude",
    "longitude",
    "phone",
    "website",
    "levels_of_care",
    "payment",
    "populations",
    "languages",
    "detox_beds",
    "detox_total",
    "residential_beds",
    "residential_total",
    "outpatient_status",
    "updated",
]
#: the bundled sample's mapping, with the partner's report time of each row (as live bed boards give it)
TIMED_MAPPING = dataclasses.replace(
    sample.SAMPLE_MAPPING, fields={**sample.SAMPLE_MAPPING.fields, "reported_at": "updated"}
)


def synthetic_csv(rows: int, seed: int = 5, updated: datetime | None = None) -> bytes:
    """``rows`` centers with coordinates, services and three figures each; ``updated``: each row says when it was
    reported (up to an hour before it), else the column is empty (the fetch is the report)."""
    rng = random.Random(seed)
    places = [p for p in map(zip_place, sorted(_zip_table())) if p is not None]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADER)
    for i in range(rows):
        p = rng.choice(places)
        total = rng.randint(4, 40)
        w.writerow(
            [
                f"S{i}",
                f"Synthetic Recovery Center {i}",
                f"{100 + i % 900} Main St",
                p.city,
                p.state,
                p.zip_code,
                f"{p.latitude + rng.gauss(0, 0.02):.6f}",
                f"{p.longitude + rng.gauss(0, 0.02):.6f}",
                f"617-555-{100 + i % 100:04d}",
                "",
                ";".join(rng.sample(LEVELS, rng.randint(1, 3))),
                ";".join(rng.sample(PAYMENT, rng.randint(1, 3))),
                "adults",
                "en",
                rng.randint(0, total),
                total,
                rng.randint(0, total),
                total,
                rng.choice(["available", "waitlist", "full"]),
                (updated - timedelta(minutes=rng.randint(1, 59))).isoformat() if updated else "",
            ]
        )
    return out.getvalue().encode()


class Partner:
    """The feeds' files on a local HTTP server (127.0.0.1), as a partner serves them."""

    def __init__(self) -> None:
        files: dict[str, bytes] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files.get(self.path, b"")
                self.send_response(200 if self.path in files else 404)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.files = files
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


def ingest(pipeline: Pipeline, partner: Partner, feed: FeedConfig, data: bytes) -> dict[str, float]:
    """One forced run of the feed through the pipeline (fetch -> parse -> normalize -> place -> store, row
    memos included), timed per stage from its progress messages (seconds)."""
    partner.files[f"/{feed.id}.csv"] = data
    marks: dict[str, float] = {}
    outcome = pipeline.run(feed, force=True, progress=lambda msg: marks.setdefault(msg.split()[0], time.perf_counter()))
    end = time.perf_counter()
    if outcome.report is None or outcome.report.stored is None:
        raise SystemExit(f"the run stored nothing: {outcome}")
    stored = outcome.report.stored
    return {
        "records": float(outcome.report.records),
        "fetch": marks["parsing"] - marks["fetching"],
        "parse": marks["parsed"] - marks["parsing"],
        "normalize": marks["normalized"] - marks["parsed"],
        "place": marks["storing"] - marks["placing"],
        "store": end - marks["storing"],
        "total": end - marks["fetching"],
        "written": float(stored.added + stored.updated),
        "kept": float(stored.unchanged),
    }


def shuffled(data: bytes, seed: int = 9) -> bytes:
    head, *lines = data.decode().splitlines(keepends=True)
    random.Random(seed).shuffle(lines)
    return (head + "".join(lines)).encode()


def feed_config(feed_id: str, mapping: RecordMapping, url: str, freshness: int) -> FeedConfig:
    [feed] = registry.parse(
        {
            "feed": [
                {
                    "id": feed_id,
                    "format": "csv",
                    "url": url,
                    "allow_private": True,
                    "freshness": f"{freshness}s",
                    "max_bytes": "500MB",
                    "timeout": 120,
                    "mapping": {"fields": {"source_id": "id"}},
                }
            ]
        }
    ).feeds
    return dataclasses.replace(feed, mapping=mapping)


def report_ingest(
    name: str, data: bytes, mapping: RecordMapping, store: Store, partner: Partner, freshness: int
) -> dict[str, float]:
    """The three runs of one file, printed; returns the first run's rec/s and how many times faster each
    unchanged run was."""
    pipeline = Pipeline(store, Fetcher(new_session("center-availability-bench/1.0")))
    feed = feed_config(name, mapping, partner.url(f"/{name}.csv"), freshness)
    first = ingest(pipeline, partner, feed, data)
    again = ingest(pipeline, partner, feed, data)
    reordered = ingest(pipeline, partner, feed, shuffled(data))
    n = first["records"]
    print(f"\ningest {name}: {n:,.0f} rows (forced runs of Pipeline.run; fetched from 127.0.0.1)")
    print(
        f"  {'':28}{'rec/s':>10}{'fetch s':>9}{'parse s':>9}{'normalize s':>12}{'place s':>9}{'store s':>9}"
        f"{'written':>9}{'unchanged':>10}{'× first':>9}"
    )
    for label, r in (("first ingest", first), ("same bytes again", again), ("same records, new order", reordered)):
        print(
            f"  {label:<28}{n / r['total']:>10,.0f}{r['fetch']:>9.2f}{r['parse']:>9.2f}{r['normalize']:>12.2f}"
            f"{r['place']:>9.2f}{r['store']:>9.2f}{r['written']:>9,.0f}{r['kept']:>10,.0f}"
            f"{first['total'] / r['total']:>8.1f}x"
        )
    return {
        "records": n,
        "first_rec_s": n / first["total"],
        "same_bytes_x": first["total"] / again["total"],
        "new_order_x": first["total"] / reordered["total"],
        "first_s": first["total"],
        "normalize_s": first["normalize"],
        "store_s": first["store"],
    }


class Wrk:
    """wrk (2 threads, ``n`` connections) sending GET requests for a while: requests per second."""

    def __init__(self, url: str, n: int, tmp: Path) -> None:
        self.url, self.n, self.tmp = url, n, tmp
        self.exe = shutil.which("wrk")

    def rate(self, path: str, params_for: list[dict[str, str]], seconds: float) -> tuple[float, int]:
        targets = [path + ("?" + "&".join(f"{k}={v}" for k, v in p.items()) if p else "") for p in params_for]
        script = self.tmp / "requests.lua"
        script.write_text(
            "targets = {" + ",".join(f'"{t}"' for t in targets) + "}\n"
            "i = 0\n"
            "request = function()\n  i = i + 1\n  return wrk.format('GET', targets[(i % #targets) + 1])\nend\n"
        )
        assert self.exe is not None
        out = subprocess.run(
            [self.exe, "-t2", f"-c{self.n}", f"-d{max(1, round(seconds))}s", "-s", str(script), self.url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
        found = re.search(r"Requests/sec:\s*([\d.]+)", out)
        if found is None:
            raise RuntimeError(f"wrk printed no rate: {out}")
        bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s*(\d+)", out))
        bad += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        return float(found.group(1)), bad


class Clients:
    """``n`` threads sending GET requests to one path for a while: requests per second."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.n = url, n

    def rate(self, path: str, params_for: list[dict[str, str]], seconds: float) -> tuple[float, int]:
        done = [0] * self.n
        bad = [0] * self.n
        stop = time.perf_counter() + seconds

        def run(i: int) -> None:
            rng = random.Random(i)
            with httpx.Client(base_url=self.url, timeout=30) as client:
                while time.perf_counter() < stop:
                    status = client.get(path, params=rng.choice(params_for)).status_code
                    done[i] += 1
                    bad[i] += status != 200

        threads = [threading.Thread(target=run, args=(i,)) for i in range(self.n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(done) / (time.perf_counter() - t0), sum(bad)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--http-seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--python-clients", action="store_true", help="Python client threads even where wrk is installed")
    _summary.add_option(ap)
    args = ap.parse_args()
    figures: dict[str, object] = {"rows": args.rows}
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    print(f"machine: {machine()}; {datetime.now(UTC):%Y-%m-%d}")
    with RedisProcess(tmp / "redis", persistent=False) as server:
        store = Store.from_url(server.url)
        empty = int(store.redis.info("memory")["used_memory"])
        partner = Partner()
        now = datetime.now(UTC)
        figures["synthetic"] = report_ingest(
            "synthetic", synthetic_csv(args.rows, updated=now), TIMED_MAPPING, store, partner, 3600
        )
        used = int(store.redis.info("memory")["used_memory"]) - empty
        centers = len(store.feed_members("synthetic"))
        observations = sum(
            int(n)
            for n in [
                store.redis.hlen(store.keys.availability(c)) for c in list(store.feed_members("synthetic"))[:2000]
            ]
        )
        print(
            f"\nmemory: {used / centers:,.0f} bytes per center ({centers:,} centers, "
            f"{observations / min(centers, 2000):.1f} observations each; INFO memory used_memory)"
        )
        figures["bytes_per_center"] = used / centers
        samhsa = sample.shared_samhsa_file()
        if samhsa is None:
            print("\ningest samhsa: ../shared/data/samhsa_sud_facilities_geocoded.csv is absent: skipped")
            figures["samhsa_skipped"] = "../shared/data/samhsa_sud_facilities_geocoded.csv is absent"
        else:
            figures["samhsa"] = report_ingest(
                "samhsa", samhsa.read_bytes(), sample.SAMHSA_MAPPING, store, partner, 86400 * 30
            )
        untimed = max(1, args.rows // 5)
        figures["untimed"] = report_ingest(
            "untimed", synthetic_csv(untimed, seed=6), sample.SAMPLE_MAPPING, store, partner, 3600
        )

        with api_process(server.url, tmp, "--no-access-log") as url:
            zips = [{"zip": z} for z in sorted(_zip_table())[::50]]
            wrk = Wrk(url, args.clients, tmp)
            clients: Wrk | Clients = wrk if wrk.exe and not args.python_clients else Clients(url, args.clients)
            clients.rate("/v1/centers/near", zips, 1)  # warm up
            trivial, near, bad = [], [], 0
            for _ in range(args.rounds):
                r, b = clients.rate("/healthz", [{}], args.http_seconds / args.rounds)
                trivial.append(r)
                bad += b
                r, b = clients.rate("/v1/centers/near", zips, args.http_seconds / args.rounds)
                near.append(r)
                bad += b
        t, n = sum(trivial) / len(trivial), sum(near) / len(near)
        print(
            f"\nHTTP (1 uvicorn process; {args.clients} "
            f"{'wrk connections' if isinstance(clients, Wrk) else 'Python client threads'}; "
            f"{args.rounds} alternating rounds): "
            f"/healthz {t:,.0f} req/s, near {n:,.0f} req/s: near = {n / t:.2f}x the trivial route"
            f"{f'; {bad} non-200' if bad else ''}"
        )
        figures.update(healthz_req_s=t, near_req_s=n, near_vs_healthz=n / t if t else float("nan"), non_200=bad)
        _summary.write(args.summary, figures)


if __name__ == "__main__":
    main()
