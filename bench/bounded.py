"""Demonstration: large writes and hostile queries never hold Redis long; public search keeps answering.

    python bench/bounded.py [--base 20000] [--feed 100000] [--push 100000] [--unstaged]

A private redis-server (SLOWLOG threshold 50 ms; LATENCY monitor threshold 50 ms, which also times a
whole MULTI/EXEC) and the HTTP API (uvicorn, one process) on 127.0.0.1. After ``--base`` centers are
loaded, a steady public load (4 clients, each one ``GET /v1/centers/near?zip=...`` after another)
runs for a quiet baseline phase, then while, all at once:

* a 100,000-center feed is written (its first load: every record, facility and observation new);
* a 100,000-record partner push is applied (the store write a push task does: partial, newest wins);
* hostile queries are sent: 20 ``languages`` values that match nothing in the densest area with a
  100-mile radius and ``available_only`` (the most work one query may ask for), and a 60-value
  filter list (refused: 422, the cap is 20).

It prints public p50/p99/max and the non-200 count for both phases (the ratio of p99s), the largest
staged write transaction the writers timed, and every SLOWLOG and LATENCY entry over 50 ms.
``--unstaged`` writes each snapshot as one transaction, as the store did before staged writes, to
show the difference on the same machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.geography import _zip_table
from aggregator.local.redis_process import RedisProcess
from aggregator.model import Source
from aggregator.store import STAGE_ABOVE, Store
from bench.api_process import api_process
from bench.lookup import build

THRESHOLD_MS = 50
#: language codes no center offers (the bench's centers speak en and es)
CODES = [a + b for a in "qxz" for b in "abcdefghijklmnopqrstuvwxyz"][:60]


def write_feed(url: str, feed_id: str, n: int, seed: int, partial: bool, stage_above: int) -> dict[str, float]:
    """One writer process: build ``n`` records of ``feed_id`` and store them; time each transaction."""
    now = datetime.now(UTC)
    feeds = build(n, random.Random(seed), now)
    centers = [
        c.model_copy(update={"id": f"{feed_id}:{c.source_id}", "feed_id": feed_id})
        for cs, _ in feeds.values()
        for c in cs
    ]
    observations = [
        o.model_copy(
            update={
                "center_id": f"{feed_id}:{o.center_id.split(':', 1)[1]}",
                "source": Source.PUSH if partial else Source.PULL,
            }
        )
        for _, obs in feeds.values()
        for o in obs
    ]
    store = Store(Store.from_url(url).redis, stage_above=stage_above)
    longest = [0.0]
    steps: list[float] = []

    def step(_name: str) -> None:
        t = time.perf_counter()
        longest[0] = max(longest[0], t - steps[-1])
        steps.append(t)

    def first(_name: str) -> None:  # the clock starts once planning is done and the masks are set
        steps.append(time.perf_counter())
        store.on_stage_step = step

    store.on_stage_step = first
    t0 = time.perf_counter()
    store.replace_feed(feed_id, centers, observations, now=now, source="push" if partial else "pull", partial=partial)
    end = time.perf_counter()
    return {
        "seconds": end - t0,
        "planning": (steps[0] if steps else end) - t0,
        "steps": max(0, len(steps) - 1),
        "longest_step_ms": longest[0] * 1000,
    }


def _writer(args: tuple[str, str, int, int, bool, int], out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        out.put((args[1], write_feed(*args)))
    except Exception as exc:  # reported: an unstaged write may time out or be refused
        out.put((args[1], {"error": f"{type(exc).__name__}: {exc}"}))


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else float("nan")


class Load:
    """Public clients, each sending one near request after another, recording (latency, status)."""

    def __init__(self, url: str, zips: list[str], clients: int = 4) -> None:
        self.url, self.zips, self.clients = url, zips, clients
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                t = time.perf_counter()
                try:
                    status = client.get("/v1/centers/near", params={"zip": rng.choice(self.zips)}).status_code
                except httpx.HTTPError:
                    status = 0
                self.samples.append((time.perf_counter() - t, status))

    def run_for(self, seconds: float) -> list[tuple[float, int]]:
        self.samples = []
        self.stop.clear()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.clients)]
        for t in self.threads:
            t.start()
        time.sleep(seconds)
        return self.halt()

    def start(self) -> None:
        self.samples = []
        self.stop.clear()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.clients)]
        for t in self.threads:
            t.start()

    def halt(self) -> list[tuple[float, int]]:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        return list(self.samples)


def report(name: str, samples: list[tuple[float, int]]) -> float:
    lat = [s for s, _ in samples]
    bad = sum(1 for _, st in samples if st != 200)
    p99 = pct(lat, 0.99)
    print(f"  {name:<34}{len(samples):>8}{pct(lat, 0.5):>10.1f}{p99:>10.1f}{max(lat) * 1000:>10.1f}{bad:>9}")
    return p99


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=int, default=20_000)
    ap.add_argument("--feed", type=int, default=100_000)
    ap.add_argument("--push", type=int, default=100_000)
    ap.add_argument("--quiet-seconds", type=float, default=10)
    ap.add_argument("--unstaged", action="store_true", help="write each snapshot in one transaction")
    args = ap.parse_args()
    stage_above = 10**9 if args.unstaged else STAGE_ABOVE
    tmp = Path(tempfile.mkdtemp(prefix="bench-bounded-"))
    with RedisProcess(tmp / "redis", persistent=False) as server:
        store = Store.from_url(server.url)
        r = store.redis
        now = datetime.now(UTC)
        for feed_id, (cs, obs) in build(args.base, random.Random(1), now).items():
            store.replace_feed(feed_id, cs, obs, now=now, source="pull")
        r.config_set("slowlog-log-slower-than", THRESHOLD_MS * 1000)
        r.config_set("slowlog-max-len", 10_000)
        r.config_set("latency-monitor-threshold", THRESHOLD_MS)
        r.slowlog_reset()
        r.execute_command("LATENCY", "RESET")

        with api_process(server.url, tmp) as url:
            zips = sorted(_zip_table())[::50]
            load = Load(url, zips)
            load.run_for(2)  # warm up: connections, the API's ZIP table, the script cache
            print(
                f"base: {store.count_located():,} centers; public load: {load.clients} clients on "
                f"{len(zips):,} ZIPs; writes {'UNSTAGED (one transaction each)' if args.unstaged else 'staged'}"
            )
            quiet = load.run_for(args.quiet_seconds)

            results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
            writers = [
                multiprocessing.Process(target=_writer, args=(a, results))
                for a in (
                    (server.url, "national", args.feed, 2, False, stage_above),
                    (server.url, "partner-push", args.push, 3, True, stage_above),
                )
            ]
            load.start()
            t0 = time.perf_counter()
            for w in writers:
                w.start()
            hostile: list[tuple[int, float]] = []
            dense = "10001"
            with httpx.Client(base_url=url, timeout=60) as client:
                while any(w.is_alive() for w in writers):
                    for params in (
                        {"zip": dense, "radius_mi": 100, "available_only": "true", "language": CODES[:20]},
                        {"zip": dense, "language": CODES},
                    ):
                        t = time.perf_counter()
                        try:
                            status = client.get("/v1/centers/near", params=params).status_code
                        except httpx.HTTPError:
                            status = 0
                        hostile.append((status, time.perf_counter() - t))
                    time.sleep(0.2)
            busy = load.halt()
            elapsed = time.perf_counter() - t0
            done = dict(results.get(timeout=60) for _ in writers)
            for w in writers:
                w.join(10)

        print(f"\npublic near (HTTP), {'':21}{'requests':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'non-200':>9}")
        q99 = report("quiet (no writes)", quiet)
        b99 = report(f"during the writes ({elapsed:.0f} s)", busy)
        print(f"  p99 during / quiet: {b99 / q99:.2f}x")
        for name, d in done.items():
            if "error" in d:
                print(f"writer {name}: FAILED: {d['error'][:300]}")
                continue
            print(
                f"writer {name}: {d['seconds']:.1f} s ({d['planning']:.1f} s planning, unlocked), "
                f"{d['steps']:.0f} steps, longest step "
                f"{d['longest_step_ms']:.1f} ms (client side, each transaction's round trip after planning)"
            )
        statuses = sorted({s for s, _ in hostile})
        print(
            f"hostile queries: {len(hostile)} sent, statuses {statuses}, slowest "
            f"{max(t for _, t in hostile) * 1000:.0f} ms"
        )
        slow = r.slowlog_get(10_000)
        print(f"SLOWLOG entries over {THRESHOLD_MS} ms: {len(slow)}")
        for e in slow[:10]:
            print(f"  {e['duration'] / 1000:.1f} ms  {str(e['command'])[:100]}")
        latency = r.execute_command("LATENCY", "LATEST")
        print(
            f"LATENCY events over {THRESHOLD_MS} ms (whole MULTI/EXEC included): "
            + (", ".join(f"{_s(e[0])} max {e[3]} ms" for e in latency) if latency else "none")
        )


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


if __name__ == "__main__":
    main()
