"""Every benchmark runs, briefly, so none can rot. No figure is judged here (these machines are shared and
noisy: BENCHMARKS.md keeps the measured figures); each run must finish and print its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)
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
