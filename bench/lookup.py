"""Benchmark: near() at 100,000 centers against the bare GEOSEARCH floor, measured in the same run.

    python bench/lookup.py [--centers 100000] [--queries 2000]

Loads synthetic centers placed around real ZIP centroids (dense where ZIP codes are dense, as
treatment centers are), with random services and availability, into a private redis-server. Then
for the same origins, interleaved, it times:

* floor: ``GEOSEARCH geo FROMLONLAT lon lat BYRADIUS 25 mi ASC COUNT 10`` returning ids only,
  through redis-py on the same connection;
* ``near()`` unfiltered, full records and availability included;
* ``near()`` with two filters (level of care detox AND payment medicaid OR sliding scale).

It prints p50/p99 of each and their ratio to the floor (issue 14's goal: 1.5x, filtered or not; bench/postgis.py
measures available_only and PostGIS too, and bench/goals.py sets every figure against its goal).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.geography import _zip_table, zip_place
from aggregator.local.redis_process import RedisProcess
from aggregator.lookup import near
from aggregator.model import Address, Availability, Center
from aggregator.store import Store

LEVELS = ["detox", "residential", "outpatient", "iop", "otp", "mat", "recovery_housing"]
PAYMENT = ["medicaid", "medicare", "private", "self_pay", "sliding_scale", "free"]
STATUSES = ["available", "limited", "full", "waitlist"]


def build(n: int, rng: random.Random, now: datetime) -> dict[str, tuple[list[Center], list[Availability]]]:
    places = [p for p in map(zip_place, sorted(_zip_table())) if p is not None]
    feeds: dict[str, tuple[list[Center], list[Availability]]] = {}
    for i in range(n):
        feed = f"bench{i % 20}"
        p = rng.choice(places)
        c = Center(
            id=f"{feed}:{i}",
            feed_id=feed,
            source_id=str(i),
            name=f"Bench Center {i}",
            address=Address(address_1=f"{i} Main St", city=p.city, state=p.state, postal_code=p.zip_code),
            latitude=max(-85.0, min(85.0, p.latitude + rng.gauss(0, 0.02))),
            longitude=p.longitude + rng.gauss(0, 0.02),
            geo_precision="feed",
            geo_source=feed,
            phones=[{"number": "+16175550100", "role": "main"}],
            services={
                "levels_of_care": rng.sample(LEVELS, rng.randint(1, 3)),
                "payment": rng.sample(PAYMENT, rng.randint(1, 4)),
                "populations": ["adults"],
                "languages": ["en"] + (["es"] if rng.random() < 0.4 else []),
            },
        )
        obs = [
            Availability(
                center_id=c.id,
                level_of_care=lv,
                source="pull",
                status=rng.choice(STATUSES),
                beds_available=rng.randint(0, 9),
                reported_at=now - timedelta(minutes=rng.randint(0, 60)),
                checked_at=now,
                freshness_seconds=1800,
            )
            for lv in c.services.levels_of_care
        ]
        centers, observations = feeds.setdefault(feed, ([], []))
        centers.append(c)
        observations.extend(obs)
    return feeds


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--centers", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--radius", type=float, default=25.0)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    now = datetime.now(UTC)

    with RedisProcess(Path(tempfile.mkdtemp(prefix="bench-redis-")), persistent=False) as server:
        store = Store.from_url(server.url)
        t0 = time.perf_counter()
        feeds = build(args.centers, rng, now)
        t1 = time.perf_counter()
        for feed_id, (centers, observations) in feeds.items():
            store.replace_feed(feed_id, centers, observations, now=now, source="pull")
        t2 = time.perf_counter()
        print(
            f"centers: {store.count_located():,} (built in {t1 - t0:.1f}s, stored in {t2 - t1:.1f}s, "
            f"{args.centers / (t2 - t1):,.0f} centers/s)"
        )

        all_centers = [c for cs, _ in feeds.values() for c in cs]
        origins = [(c.latitude, c.longitude) for c in rng.sample(all_centers, args.queries)]
        r = store.redis
        geo = store.keys.geo
        floor, plain, filtered = [], [], []
        # warm up: connection, script cache, ZIP table
        for lat, lon in origins[:50]:
            near(store, latitude=lat, longitude=lon, now=now)
        filters = {"levels_of_care": ["detox"], "payment": ["medicaid", "sliding_scale"]}

        def run_floor(lat: float, lon: float) -> int:
            return len(
                r.geosearch(
                    geo, longitude=lon, latitude=lat, radius=args.radius, unit="mi", sort="ASC", count=args.limit
                )
            )

        def run_plain(lat: float, lon: float) -> int:
            return len(
                near(store, latitude=lat, longitude=lon, radius_mi=args.radius, limit=args.limit, now=now).results
            )

        def run_filtered(lat: float, lon: float) -> int:
            return len(
                near(
                    store, latitude=lat, longitude=lon, radius_mi=args.radius, limit=args.limit, now=now, **filters
                ).results
            )

        runs = [(run_floor, floor), (run_plain, plain), (run_filtered, filtered)]
        found = {id(floor): 0, id(plain): 0, id(filtered): 0}
        for lat, lon in origins:
            rng.shuffle(runs)  # interleaved in random order: no query kind always pays for going first
            for fn, samples in runs:
                a = time.perf_counter()
                n = fn(lat, lon)
                samples.append(time.perf_counter() - a)
                found[id(samples)] += n
        found_floor, found_plain, found_filtered = found[id(floor)], found[id(plain)], found[id(filtered)]
        assert found_plain == found_floor, "near() must find what GEOSEARCH finds when unfiltered"

        f50, f99 = pct(floor, 0.5), pct(floor, 0.99)
        print(f"queries: {args.queries} origins, radius {args.radius:g} mi, limit {args.limit}")
        print(f"{'':34}{'p50 µs':>10}{'p99 µs':>10}{'p50 ×floor':>12}{'p99 ×floor':>12}{'mean hits':>11}")
        for name, s, hits in (
            ("floor: bare GEOSEARCH, ids only", floor, found_floor),
            ("near() unfiltered, full records", plain, found_plain),
            ("near() detox AND (medicaid|sliding)", filtered, found_filtered),
        ):
            p50, p99 = pct(s, 0.5), pct(s, 0.99)
            print(f"{name:34}{p50:>10.0f}{p99:>10.0f}{p50 / f50:>12.2f}{p99 / f99:>12.2f}{hits / len(s):>11.1f}")
        print(
            f"mean: floor {statistics.mean(floor) * 1e6:.0f} µs, near {statistics.mean(plain) * 1e6:.0f} µs, "
            f"filtered {statistics.mean(filtered) * 1e6:.0f} µs"
        )
        store.redis.connection_pool.disconnect()


if __name__ == "__main__":
    main()
