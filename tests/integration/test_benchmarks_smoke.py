"""Every benchmark runs, briefly, so none can rot. No figure is judged here (these machines are shared and
noisy: BENCHMARKS.md keeps the measured figures); each run must finish and print its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_lookup_benchmark_runs() -> None:
    out = run("lookup.py", "--centers", "600", "--queries", "30")
    assert "floor: bare GEOSEARCH" in out and "near() unfiltered" in out


def test_bounded_work_benchmark_runs() -> None:
    out = run("bounded.py", "--base", "300", "--feed", "1500", "--push", "1200", "--quiet-seconds", "1")
    assert "during the writes" in out and "SLOWLOG entries over 50 ms" in out
    assert "statuses [200, 422]" in out  # the capped filter list is refused; the rest answered
    assert "writer national" in out and "writer partner-push" in out


def test_ingest_benchmark_runs() -> None:
    out = run("ingest.py", "--rows", "1500", "--http-seconds", "1.5", "--clients", "2")
    assert "same records, new order" in out and "bytes per center" in out and "the trivial route" in out


@pytest.mark.skipif(not (ROOT / "bench" / "matching.py").exists(), reason="no matching benchmark")
def test_matching_benchmark_runs() -> None:
    assert run("matching.py", "--examples", "1").strip()


def test_postgis_comparison_runs_with_or_without_postgis() -> None:
    """PostGIS is measured where psycopg, a server and the extension are at hand (CENTERS_BENCH_PG_DSN);
    elsewhere (CI) the benchmark says why it skipped it and still prints the Redis part."""
    out = run("postgis.py", "--centers", "600", "--queries", "30", timeout=120)
    assert "machine:" in out and "command: python bench/postgis.py" in out
    assert "floor: bare GEOSEARCH" in out and "near() unfiltered" in out and "near() available_only" in out
    assert "near()'s search script alone" in out
    assert ("PostGIS comparison skipped: " in out) != ("PostGIS KNN available_only" in out), out
    if "PostGIS KNN" in out:
        assert "near() / PostGIS, same shape" in out


def test_push_latency_benchmark_runs() -> None:
    out = run("push_latency.py", "--pushes", "3", "--centers", "300", timeout=120)
    assert "baseline: no-op task, send -> its key set" in out and "push: POST -> new beds in GET near" in out
    assert "ratio push / no-op task" in out


def test_feeds_at_scale_benchmark_runs() -> None:
    out = run("feeds_at_scale.py", "--feeds", "12", "--interval-seconds", "4", "--minutes", "0.25", timeout=120)
    assert "baseline: no-op task, sent -> ran" in out and "feed run: due -> fetch (start lag)" in out
    assert "missed runs: " in out and "ratio start lag / no-op task lag" in out


def test_cli_benchmark_runs() -> None:
    out = run("cli.py", "--runs", "1", "--centers", "200")
    assert "baseline: python -c pass" in out and "centers near 02139 --json" in out
