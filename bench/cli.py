"""Benchmark: the wall time of `centers near 02139` against a running store, beside the interpreter's own start.

    python bench/cli.py [--runs 15] [--centers 20000]

A private redis-server is loaded with the bundled sample and ``--centers`` synthetic centers (as a running
service's Redis would be; the CLI finds it through ``REDIS_URL``). Then, interleaved, ``--runs`` times each:

* baseline: ``python -c pass`` (the interpreter starting and stopping: the floor of any command);
* ``centers near 02139`` (a table), and ``centers near 02139 --json``.

It prints the median and the worst wall time of each and the difference to the baseline (goal: 0.5 s wall).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.feeds import csv as csv_feed
from aggregator.ingest import apply_snapshot
from aggregator.local import sample
from aggregator.local.redis_process import RedisProcess
from aggregator.model import Source
from aggregator.normalize import FeedContext
from aggregator.store import Store
from bench import _summary
from bench._stack import machine
from bench.ingest import synthetic_csv


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-1000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--centers", type=int, default=20_000)
    _summary.add_option(ap)
    args = ap.parse_args()
    centers = shutil.which("centers", path=str(Path(sys.executable).parent)) or "centers"
    tmp = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    print(
        f"machine: {machine()}; {datetime.now(UTC):%Y-%m-%d}; python bench/cli.py "
        f"--runs {args.runs} --centers {args.centers}"
    )
    with RedisProcess(tmp / "redis", persistent=False) as server:
        store = Store.from_url(server.url)
        now = datetime.now(UTC)
        sample.load_bundled_sample(store, now)
        if args.centers:
            raws = csv_feed.parse_one(synthetic_csv(args.centers), sample.SAMPLE_MAPPING)
            apply_snapshot(
                store, raws, FeedContext(feed_id="synthetic", now=now, source=Source.PULL, freshness_seconds=3600)
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CENTERS_"))}
        env.update(
            {
                "REDIS_URL": server.url,
                "CENTERS_GEOCODER": "none",
                "CENTERS_DATA_DIR": str(tmp / "data"),
                "XDG_CACHE_HOME": str(tmp / "cache"),
                "XDG_STATE_HOME": str(tmp / "state"),
            }
        )
        commands = {
            "baseline: python -c pass": [sys.executable, "-c", "pass"],
            "centers near 02139": [centers, "near", "02139"],
            "centers near 02139 --json": [centers, "near", "02139", "--json"],
        }
        for cmd in commands.values():  # warm the file cache and the CLI's own ZIP cache
            wall(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                times[name].append(wall(cmd, env))
    base = statistics.median(times["baseline: python -c pass"])
    print(f"\n  {'command':<32}{'median s':>10}{'worst s':>10}{'- baseline s':>14}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<32}{med:>10.3f}{max(ts):>10.3f}{med - base:>14.3f}")
    _summary.write(
        args.summary,
        {
            "runs": args.runs,
            "centers": args.centers,
            **{f"{name} median s": statistics.median(ts) for name, ts in times.items()},
        },
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
