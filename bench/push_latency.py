"""Benchmark: a partner's push, from its POST to the new figure in public search, against a no-op task's trip.

    python bench/push_latency.py [--pushes 150] [--centers 20000] [--poll-ms 2]

Starts, on 127.0.0.1, what `centers serve` runs: a private redis-server, a real Celery worker (beat on,
2 processes) and the API under uvicorn, with a registry holding one push feed signed with an HMAC secret
(Standard Webhooks, as partners sign). ``--centers`` synthetic centers (bench/lookup.py's) are loaded first
so the search has neighbours to rank. Then, ``--pushes`` times each, interleaved in random order:

* push: a signed ``POST /v1/feeds/bench-push/records`` changing one center's detox beds, then
  ``GET /v1/centers/near?lat=..&lon=..`` every ``--poll-ms`` until the new figure is in the answer;
* baseline: ``feeds.ping`` (a no-op task that sets a key) sent on the same broker to the same worker, then
  ``GET key`` on Redis every ``--poll-ms`` until it is set.

It prints p50/p99 of both and their ratio (goal: push -> visible within 3x the no-op task's trip).

Both HTTP calls go through one kept-alive ``http.client`` connection, so the figures are the service's and not the
benchmark's own client: httpx, used before, took about 1 ms more a request on the same machine, in the POST and in
every poll (a poll that misses the new figure by a little costs a whole GET and a sleep).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.push import sign
from aggregator.store import Store
from bench import _summary
from bench._stack import Stack, pct, preamble, ratio
from bench.lookup import build
from workers import names

FEED = "bench-push"
SECRET_ENV = "BENCH_PUSH_SECRET"  # noqa: S105 - the name of a variable, not a secret
SECRET = "bench-push-secret-" + uuid.uuid4().hex
LAT, LON = 42.3626, -71.0995  # Cambridge, MA: a dense area

REGISTRY = f'''
[[feed]]
id = "{FEED}"
partner = "Benchmark push partner"
format = "push"
freshness = "6h"
push = {{ hmac_secret_env = ["{SECRET_ENV}"] }}
[feed.mapping.fields]
source_id = "id"
name = "name"
address_1 = "street"
city = "city"
state = "state"
postal_code = "zip"
latitude = "lat"
longitude = "lon"
phone = "phone"
levels_of_care = "services"
payment = "payment"
[[feed.mapping.availability]]
constants = {{ level_of_care = "detox" }}
fields = {{ beds_available = "detox_beds", beds_total = "detox_total", reported_at = "updated_at" }}
'''


def record(beds: int) -> dict[str, object]:
    return {
        "id": "P-1",
        "name": "Bench Push Center",
        "street": "12 Harbor Way",
        "city": "Cambridge",
        "state": "MA",
        "zip": "02139",
        "lat": LAT,
        "lon": LON,
        "phone": "(617) 555-0190",
        "services": ["detox"],
        "payment": ["Medicaid"],
        "detox_beds": beds,
        "detox_total": 100,
        "updated_at": datetime.now(UTC).isoformat(),
    }


class Http:
    """One kept-alive HTTP/1.1 connection to the API (opened again if the server closed it)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


NEAR = "/v1/centers/near?" + urlencode({"lat": LAT, "lon": LON, "radius_mi": 5, "limit": 10})


def push(client: Http, beds: int) -> int:
    body = json.dumps([record(beds)]).encode()
    event, ts = "evt_" + uuid.uuid4().hex, str(int(time.time()))
    status, _ = client.request(
        "POST",
        f"/v1/feeds/{FEED}/records",
        body,
        {
            "content-type": "application/json",
            "webhook-id": event,
            "webhook-timestamp": ts,
            "webhook-signature": sign(SECRET.encode(), event, ts, body),
        },
    )
    return status


def visible_beds(client: Http) -> int | None:
    status, raw = client.request("GET", NEAR)
    answer = orjson.loads(raw) if status == 200 else {}
    for r in answer.get("results", []):
        if r["id"].startswith(f"{FEED}:"):
            for a in r["availability"]:
                if a["level_of_care"] == "detox":
                    return a["beds_available"]
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pushes", type=int, default=150)
    ap.add_argument("--centers", type=int, default=20_000)
    ap.add_argument("--poll-ms", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one push or ping")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (logs, registry) and name it")
    _summary.add_option(ap)
    args = ap.parse_args()
    preamble("push -> visible latency (bench/push_latency.py)")
    rng = random.Random(args.seed)
    poll = args.poll_ms / 1000
    folder = Path(tempfile.mkdtemp(prefix="bench-push-"))
    with Stack(folder, REGISTRY, env={SECRET_ENV: SECRET}) as stack:
        stack.start_redis()
        store = Store.from_url(stack.redis_url)
        now = datetime.now(UTC)
        for feed_id, (centers, observations) in build(args.centers, rng, now).items():
            store.replace_feed(feed_id, centers, observations, now=now, source="pull")
        stack.start_services()
        celery = stack.celery()
        r = store.redis
        push_times: list[float] = []
        post_times: list[float] = []
        ping_times: list[float] = []
        polls: list[float] = []
        client = Http(stack.api_url)
        try:

            def one_push(beds: int) -> None:
                t0 = time.perf_counter()
                status = push(client, beds)
                post_times.append(time.perf_counter() - t0)
                assert status == 202, f"push answered {status}"
                while True:
                    a = time.perf_counter()
                    seen = visible_beds(client)
                    polls.append(time.perf_counter() - a)
                    if seen == beds:
                        push_times.append(time.perf_counter() - t0)
                        return
                    if time.perf_counter() - t0 > args.timeout:
                        raise SystemExit(
                            f"push not visible after {args.timeout:g} s; worker log: "
                            f"{stack.worker_log.read_text(errors='replace')[-2000:]}"
                        )
                    time.sleep(poll)

            def one_ping() -> None:
                key = f"bench:ping:{uuid.uuid4().hex}"
                t0 = time.perf_counter()
                celery.send_task(names.PING, args=[key], queue=names.FEEDS_QUEUE)
                while r.get(key) is None:
                    if time.perf_counter() - t0 > args.timeout:
                        raise SystemExit(f"ping not seen after {args.timeout:g} s")
                    time.sleep(poll)
                ping_times.append(time.perf_counter() - t0)

            # warm up: the center exists, both paths have run (connections, script cache, worker imports)
            for beds in (1, 2, 3):
                one_push(beds)
                one_ping()
            for samples in (push_times, post_times, ping_times, polls):
                samples.clear()
            beds = 3
            for _ in range(args.pushes):
                beds = 4 + (beds - 3) % 90  # a new figure every time
                steps = [lambda b=beds: one_push(b), one_ping]
                rng.shuffle(steps)
                for step in steps:
                    step()
        finally:
            client.close()
        print(
            f"centers loaded: {store.count_located():,}; {args.pushes} pushes and {args.pushes} pings, "
            f"interleaved; polling every {args.poll_ms:g} ms; all on 127.0.0.1"
        )
        print(f"{'':48}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        rows = (
            ("baseline: no-op task, send -> its key set", ping_times),
            ("push: POST -> new beds in GET near", push_times),
            ("  of which POST answered 202", post_times),
            ("  one GET near while polling", polls),
        )
        for name, s in rows:
            print(f"{name:<48}{pct(s, 0.5) * 1000:>9.1f}{pct(s, 0.99) * 1000:>9.1f}{max(s) * 1000:>9.1f}")
        print(
            f"ratio push / no-op task: p50 {ratio(pct(push_times, 0.5), pct(ping_times, 0.5))}, "
            f"p99 {ratio(pct(push_times, 0.99), pct(ping_times, 0.99))} (goal <= 3x)"
        )
        _summary.write(
            args.summary,
            {
                "pushes": args.pushes,
                "centers": args.centers,
                **{
                    f"{name} p{q} ms": pct(s, q / 100) * 1000
                    for name, s in (("push", push_times), ("ping", ping_times))
                    for q in (50, 99)
                },
            },
        )
        store.redis.connection_pool.disconnect()
    if args.keep:
        print(f"logs and registry kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
