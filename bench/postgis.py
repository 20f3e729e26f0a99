"""Benchmark: near() on Redis against the GEOSEARCH floor and against PostGIS, same centers, same origins.

    python bench/postgis.py [--centers 100000] [--queries 2000] [--dsn postgresql://postgres@127.0.0.1:5432/postgres]

Loads bench/lookup.py's synthetic centers (its generator, same seed) into a private redis-server and, when
psycopg 3 and PostGIS are at hand, into a PostgreSQL table of its own (a schema with a unique name, dropped
at the end; the postgis extension is created inside it when the database lacks one, so it goes too):

    id text primary key, geog geography(Point, 4326) (GiST), levels/payment/populations/languages text[],
    open_until timestamptz (btree: until when a fresh available or limited figure lasts),
    doc jsonb (the full record: the center and its observations)

The array columns have no index by default: the filters' values are few (7 levels of care, 6 payment
kinds) and each matches a third of the centers, so PostgreSQL does best walking the GiST index nearest
first and filtering. ``--gin`` adds a GIN index on each: the planner then ANDs a bitmap of the level index
(some 28,000 rows at 100,000 centers) with the area's, several times slower (BENCHMARKS.md has both).

Then for the same origins, all kinds interleaved in random order per origin, it times:

* floor: ``GEOSEARCH ... BYRADIUS 25 mi ASC COUNT 10``, ids only (redis-py, same connection);
* near()'s search alone (``Store.search_documents``: the script's reply, each hit's document not decoded),
  which says how much of ``near()`` is Redis's work and how much the reading and shaping in Python;
* ``near()`` unfiltered; with detox AND (medicaid OR sliding scale); with ``available_only``;
* PostGIS, the same three shapes, one prepared KNN statement each returning id, distance and the record
  (``WHERE ST_DWithin(geog, p, r, false) [AND filters] ORDER BY geog <-> p LIMIT 10``, sphere distances as
  Redis uses; jsonb decoded with orjson, as the store does).

It prints p50/p99 of each, near()/floor and near()/PostGIS. The DSN: ``--dsn``, else the environment's
CENTERS_BENCH_PG_DSN, else postgres on 127.0.0.1. Without psycopg, a server or the extension it says
"PostGIS comparison skipped: <why>" and prints the Redis part alone. Install: ``pip install -e '.[bench]'``
and, on Debian, ``apt-get install postgresql-15-postgis-3``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.local.redis_process import RedisProcess
from aggregator.lookup import near, plan_near
from aggregator.model import OPEN_STATUSES, Availability, Center
from aggregator.store import Store
from bench import _summary
from bench._stack import pct, preamble
from bench.lookup import build

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
METERS_PER_MILE = 1609.344
FILTERS = {"levels_of_care": ["detox"], "payment": ["medicaid", "sliding_scale"]}


class Skipped(Exception):
    """PostGIS cannot be measured here; the message says why."""


class PostGIS:
    """A table of our own in a schema of our own; ``close()`` drops the schema (and an extension made in it)."""

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg
            from psycopg.types.json import set_json_loads
        except ImportError:
            raise Skipped("psycopg is not installed (pip install 'psycopg[binary]', or the 'bench' extra)") from None
        set_json_loads(orjson.loads)
        try:
            self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise Skipped(f"cannot connect to {dsn}: {str(exc).strip().splitlines()[0]}") from None
        self.schema = f"bench_postgis_{uuid.uuid4().hex[:12]}"
        self.table = f"{self.schema}.centers"
        try:
            row = self.conn.execute(
                "SELECT extnamespace::regnamespace::text, extversion FROM pg_extension WHERE extname = 'postgis'"
            ).fetchone()
            if (
                row is None
                and self.conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone() is None
            ):
                raise Skipped(
                    "the PostgreSQL server has no PostGIS extension (Debian: apt-get install postgresql-15-postgis-3)"
                )
            self.conn.execute(f"CREATE SCHEMA {self.schema}")
            if row is None:
                self.conn.execute(f"CREATE EXTENSION postgis WITH SCHEMA {self.schema}")
                row = self.conn.execute(
                    "SELECT extnamespace::regnamespace::text, extversion FROM pg_extension WHERE extname = 'postgis'"
                ).fetchone()
            assert row is not None
            self.version = f"PostGIS {row[1]}, " + self.conn.execute("SHOW server_version").fetchone()[0]
            self.conn.execute(f"SET search_path = {self.schema}, {row[0]}, public")
        except psycopg.Error as exc:
            self.close()
            raise Skipped(f"cannot set up PostGIS: {str(exc).strip().splitlines()[0]}") from None
        except Skipped:
            self.close()
            raise

    def load(self, feeds: dict[str, tuple[list[Center], list[Availability]]], *, gin: bool = False) -> None:
        c = self.conn
        c.execute(f"""CREATE TABLE {self.table} (
            id text PRIMARY KEY, geog geography(Point, 4326) NOT NULL,
            levels text[] NOT NULL, payment text[] NOT NULL, populations text[] NOT NULL, languages text[] NOT NULL,
            open_until timestamptz, doc jsonb NOT NULL)""")
        with c.cursor() as cur, cur.copy(f"COPY {self.table} FROM STDIN") as copy:
            for centers, observations in feeds.values():
                by_center: dict[str, list[Availability]] = {}
                for o in observations:
                    by_center.setdefault(o.center_id, []).append(o)
                for center in centers:
                    obs = by_center.get(center.id, [])
                    opens = [
                        o.reported_at + timedelta(seconds=o.freshness_seconds) for o in obs if o.status in OPEN_STATUSES
                    ]
                    doc = {**center.model_dump(mode="json"), "availability": [o.model_dump(mode="json") for o in obs]}
                    s = center.services
                    copy.write_row(
                        (
                            center.id,
                            f"SRID=4326;POINT({center.longitude} {center.latitude})",
                            [str(v) for v in s.levels_of_care],
                            [str(v) for v in s.payment],
                            [str(v) for v in s.populations],
                            list(s.languages),
                            max(opens, default=None),
                            orjson.dumps(doc).decode(),
                        )
                    )
        indexes = [("geog", "gist"), ("open_until", "btree")]
        if gin:
            indexes += [(column, "gin") for column in ("levels", "payment", "populations", "languages")]
        for column, method in indexes:
            c.execute(f"CREATE INDEX ON {self.table} USING {method} ({column})")
        self.indexes = ", ".join(f"{method} ({column})" for column, method in indexes)
        c.execute(f"VACUUM ANALYZE {self.table}")

    def statement(self, extra: str) -> str:
        point = "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography"
        # our own table and fixed clauses: no outside text reaches this statement
        return (
            f"SELECT id, ST_Distance(geog, {point}, false) / {METERS_PER_MILE} AS mi, doc FROM {self.table} "  # noqa: S608
            f"WHERE ST_DWithin(geog, {point}, %(r)s, false) {extra} ORDER BY geog <-> {point} LIMIT %(n)s"
        )

    def query(self, extra: str) -> Callable[[dict[str, Any]], int]:
        sql = self.statement(extra)
        cur = self.conn.cursor()

        def run(params: dict[str, Any]) -> int:
            return len(cur.execute(sql, params, prepare=True).fetchall())

        return run

    def explain(self, extra: str, params: dict[str, Any]) -> str:
        rows = self.conn.execute("EXPLAIN " + self.statement(extra), params).fetchall()
        return " / ".join(r[0].strip() for r in rows[:4])

    def close(self) -> None:
        try:
            self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        finally:
            self.conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--centers", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--radius", type=float, default=25.0)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--dsn",
        default=os.environ.get("CENTERS_BENCH_PG_DSN") or DEFAULT_DSN,
        help="PostgreSQL to compare with (env CENTERS_BENCH_PG_DSN; default %(default)s)",
    )
    ap.add_argument("--gin", action="store_true", help="also index the array columns with GIN (slower plans)")
    ap.add_argument("--explain", action="store_true", help="print PostgreSQL's plan of each statement")
    _summary.add_option(ap)
    args = ap.parse_args()
    preamble("near() against the GEOSEARCH floor and PostGIS (bench/postgis.py)")
    rng = random.Random(args.seed)
    now = datetime.now(UTC)

    pg: PostGIS | None = None
    skipped = ""
    try:
        pg = PostGIS(args.dsn)
    except Skipped as exc:
        skipped = str(exc)
    try:
        with RedisProcess(Path(tempfile.mkdtemp(prefix="bench-redis-")), persistent=False) as server:
            store = Store.from_url(server.url)
            feeds = build(args.centers, rng, now)
            t0 = time.perf_counter()
            for feed_id, (centers, observations) in feeds.items():
                store.replace_feed(feed_id, centers, observations, now=now, source="pull")
            t1 = time.perf_counter()
            print(f"centers: {store.count_located():,} in Redis ({t1 - t0:.1f} s)", end="")
            if pg is not None:
                pg.load(feeds, gin=args.gin)
                print(
                    f", {args.centers:,} in PostgreSQL ({time.perf_counter() - t1:.1f} s; {pg.version}; "
                    f"indexes {pg.indexes})",
                    end="",
                )
            print()
            all_centers = [c for cs, _ in feeds.values() for c in cs]
            origins = [(c.latitude, c.longitude) for c in rng.sample(all_centers, min(args.queries, len(all_centers)))]
            figures = measure(store, pg, origins, args, now)
            if skipped:
                print(f"PostGIS comparison skipped: {skipped}")
            _summary.write(args.summary, {"centers": args.centers, "postgis_skipped": skipped or None, **figures})
            store.redis.connection_pool.disconnect()
    finally:
        if pg is not None:
            pg.close()


def measure(
    store: Store, pg: PostGIS | None, origins: list[tuple[float, float]], args: argparse.Namespace, now: datetime
) -> dict[str, float]:
    """Times every kind of query, prints the table; returns each kind's p50 and p99 in µs (``{kind} p50``)."""
    r, geo, radius, limit = store.redis, store.keys.geo, args.radius, args.limit

    def floor(lat: float, lon: float) -> int:
        return len(r.geosearch(geo, longitude=lon, latitude=lat, radius=radius, unit="mi", sort="ASC", count=limit))

    def lookup(**kw: Any) -> Callable[[float, float], int]:
        def run(lat: float, lon: float) -> int:
            return len(near(store, latitude=lat, longitude=lon, radius_mi=radius, limit=limit, now=now, **kw).results)

        return run

    def search(lat: float, lon: float) -> int:  # near()'s search alone: its script's reply, not decoded or shaped
        plan = plan_near(latitude=lat, longitude=lon, radius_mi=radius, limit=limit, now=now)
        return len(store.search_documents(**plan.search()))

    kinds: list[tuple[str, Callable[[float, float], int]]] = [
        ("floor", floor),
        ("search", search),
        ("near", lookup()),
        ("near filtered", lookup(**FILTERS)),
        ("near available", lookup(available_only=True)),
    ]
    shapes = {
        "pg": "",
        "pg filtered": "AND levels && %(levels)s AND payment && %(payment)s",
        "pg available": "AND open_until > %(now)s",
    }
    if pg is not None:
        for name, extra in shapes.items():
            run_pg = pg.query(extra)

            def bound(lat: float, lon: float, run_pg: Callable[[dict[str, Any]], int] = run_pg) -> int:
                return run_pg(
                    {
                        "lat": lat,
                        "lon": lon,
                        "r": radius * METERS_PER_MILE,
                        "n": limit,
                        "now": now,
                        "levels": FILTERS["levels_of_care"],
                        "payment": FILTERS["payment"],
                    }
                )

            kinds.append((name, bound))
        if args.explain:
            for name, extra in shapes.items():
                print(
                    f"plan of {name}: "
                    + pg.explain(
                        extra,
                        {
                            "lat": origins[0][0],
                            "lon": origins[0][1],
                            "r": radius * METERS_PER_MILE,
                            "n": limit,
                            "now": now,
                            "levels": FILTERS["levels_of_care"],
                            "payment": FILTERS["payment"],
                        },
                    )
                )

    samples: dict[str, list[float]] = {name: [] for name, _ in kinds}
    hits = dict.fromkeys(samples, 0)
    for lat, lon in origins[:50]:  # warm up: connections, script cache, ZIP table, prepared statements
        for _, fn in kinds:
            fn(lat, lon)
    rng = random.Random(args.seed + 1)
    order = list(kinds)
    for lat, lon in origins:
        rng.shuffle(order)  # interleaved in random order: no kind always pays for going first
        for name, fn in order:
            a = time.perf_counter()
            n = fn(lat, lon)
            samples[name].append(time.perf_counter() - a)
            hits[name] += n
    assert hits["near"] == hits["floor"] == hits["search"], "near() must find what GEOSEARCH finds when unfiltered"

    def p(name: str, q: float) -> float:
        return pct(samples[name], q) * 1e6

    print(f"queries: {len(origins)} origins, radius {radius:g} mi, limit {limit}; each kind interleaved")
    labels = {
        "floor": "floor: bare GEOSEARCH, ids only",
        "search": "near()'s search script alone, not read",
        "near": "near() unfiltered, full records",
        "near filtered": "near() detox AND (medicaid|sliding)",
        "near available": "near() available_only",
        "pg": "PostGIS KNN unfiltered, full records",
        "pg filtered": "PostGIS KNN detox AND (medicaid|sliding)",
        "pg available": "PostGIS KNN available_only",
    }
    print(f"{'':42}{'p50 µs':>9}{'p99 µs':>9}{'p50 ×floor':>12}{'p99 ×floor':>12}{'mean hits':>11}")
    for name, _ in kinds:
        print(
            f"{labels[name]:42}{p(name, 0.5):>9.0f}{p(name, 0.99):>9.0f}{p(name, 0.5) / p('floor', 0.5):>12.2f}"
            f"{p(name, 0.99) / p('floor', 0.99):>12.2f}{hits[name] / len(origins):>11.1f}"
        )
    figures = {f"{name} p{q}": p(name, q / 100) for name, _ in kinds for q in (50, 99)}
    if pg is None:
        return figures
    print(f"{'near() / PostGIS, same shape':42}{'p50':>9}{'p99':>9}")
    for shape, ours in (
        ("unfiltered", "near"),
        ("detox AND (medicaid|sliding)", "near filtered"),
        ("available_only", "near available"),
    ):
        theirs = "pg" + ours[4:]
        print(f"  {shape:40}{p(ours, 0.5) / p(theirs, 0.5):>8.2f}x{p(ours, 0.99) / p(theirs, 0.99):>8.2f}x")
    differ = [
        f"{label} {hits['near' + s]} vs {hits['pg' + s]}"
        for s, label in (("", "unfiltered"), (" filtered", "filtered"), (" available", "available_only"))
        if hits["near" + s] != hits["pg" + s]
    ]
    if differ:
        print(
            "hits near() vs PostGIS differ (centers on the radius's edge: Redis measures on a 6,372.8 km sphere "
            "with geohash-rounded points, PostGIS on a 6,371.0 km one): " + "; ".join(differ)
        )
    return figures


if __name__ == "__main__":
    main()
