"""Every benchmark runs, briefly, so none can rot. No figure is judged here (these machines are shared and
noisy: BENCHMARKS.md keeps the measured figures); each run must finish and print its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.goals import goal_rows

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


def summarized(name: str, script: str, tmp_path: Path, *args: str, timeout: float = 300) -> tuple[str, dict[str, Any]]:
    """``run`` with ``--summary``: its output, and its figures, checked to give bench/goals.py every row of
    this benchmark (a row "not run" means a figure the table reads is missing, unless the benchmark said why it
    skipped it: PostGIS or the SAMHSA list absent)."""
    path = tmp_path / f"{name}.json"
    out = run(script, *args, "--summary", str(path), timeout=timeout)
    summary = json.loads(path.read_text())
    rows = [r for r in goal_rows({name: summary}) if r.source == name]
    assert rows and all(r.verdict != "not run" or "skipped: " in r.baseline for r in rows), rows
    return out, summary


def test_lookup_benchmark_runs() -> None:
    out = run("lookup.py", "--centers", "600", "--queries", "30")
    assert "floor: bare GEOSEARCH" in out and "near() unfiltered" in out


def test_bounded_work_benchmark_runs() -> None:
    out = run("bounded.py", "--base", "300", "--feed", "1500", "--push", "1200", "--quiet-seconds", "1")
    assert "during the writes" in out and "SLOWLOG entries over 50 ms" in out
    assert "statuses [200, 422]" in out  # the capped filter list is refused; the rest answered
    assert "writer national" in out and "writer partner-push" in out


def test_ingest_benchmark_runs(tmp_path: Path) -> None:
    out, _ = summarized("ingest", "ingest.py", tmp_path, "--rows", "1500", "--http-seconds", "1.5", "--clients", "2")
    assert "same records, new order" in out and "bytes per center" in out and "the trivial route" in out


@pytest.mark.skipif(not (ROOT / "bench" / "matching.py").exists(), reason="no matching benchmark")
def test_matching_benchmark_runs() -> None:
    assert run("matching.py", "--examples", "1").strip()


def test_postgis_comparison_runs_with_or_without_postgis(tmp_path: Path) -> None:
    """PostGIS is measured where psycopg, a server and the extension are at hand (CENTERS_BENCH_PG_DSN);
    elsewhere (CI) the benchmark says why it skipped it and still prints the Redis part."""
    out, summary = summarized("lookup", "postgis.py", tmp_path, "--centers", "600", "--queries", "30", timeout=120)
    assert (summary["postgis_skipped"] is None) == ("PostGIS KNN available_only" in out)
    assert "machine:" in out and "command: python bench/postgis.py" in out
    assert "floor: bare GEOSEARCH" in out and "near() unfiltered" in out and "near() available_only" in out
    assert "near()'s search script alone" in out
    assert ("PostGIS comparison skipped: " in out) != ("PostGIS KNN available_only" in out), out
    if "PostGIS KNN" in out:
        assert "near() / PostGIS, same shape" in out


def test_push_latency_benchmark_runs(tmp_path: Path) -> None:
    out, _ = summarized("push", "push_latency.py", tmp_path, "--pushes", "3", "--centers", "300", timeout=120)
    assert "baseline: no-op task, send -> its key set" in out and "push: POST -> new beds in GET near" in out
    assert "ratio push / no-op task" in out


def test_feeds_at_scale_benchmark_runs(tmp_path: Path) -> None:
    out, _ = summarized(
        "feeds",
        "feeds_at_scale.py",
        tmp_path,
        "--feeds",
        "12",
        "--interval-seconds",
        "4",
        "--minutes",
        "0.25",
        timeout=120,
    )
    assert "baseline: no-op task, sent -> ran" in out and "feed run: due -> fetch (start lag)" in out
    assert "missed runs: " in out and "ratio start lag / no-op task lag" in out


def test_cli_benchmark_runs(tmp_path: Path) -> None:
    out, _ = summarized("cli", "cli.py", tmp_path, "--runs", "1", "--centers", "200")
    assert "baseline: python -c pass" in out and "centers near 02139 --json" in out


def test_goals_runs_the_benchmarks_and_writes_the_table(tmp_path: Path) -> None:
    """bench/goals.py end to end, one benchmark (the others' summaries are checked above): its output kept, its
    row judged, the rest "not run"."""
    out = run("goals.py", "--quick", "--only", "cli", "--out", str(tmp_path))
    written = (tmp_path / "goals.md").read_text()
    assert written.strip() in out
    assert "centers near 02139 --json" in (tmp_path / "cli.txt").read_text()
    cli_row = next(line for line in written.splitlines() if "`centers near 02139`" in line)
    assert cli_row.endswith(("| met |", "| missed |")), cli_row
    rows = [line for line in written.splitlines() if line.startswith("| ") and not line.startswith("| figure ")]
    assert [r for r in rows if not r.endswith("| not run |")] == [cli_row]
