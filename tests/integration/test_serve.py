"""The README's run command on a clean environment: everything starts, demo centers answer with fresh
availability, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.environment import isolated_env

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_starts_with_the_run_and_test_commands() -> None:
    text = README.read_text()
    block = text.split("```", 2)[1]
    assert "centers serve" in block
    assert "scripts/test" in block


def test_centers_serve_runs_the_demo_and_stops_cleanly(tmp_path: Path) -> None:
    env = isolated_env()
    env.update({"CENTERS_DATA_DIR": str(tmp_path / "var"), "CENTERS_API_PORT": "0"})
    out = (tmp_path / "serve.out").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator.cli", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    family: set[int] = set()
    try:
        api = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and api is None:
            assert proc.poll() is None, Path(out.name).read_text()
            m = re.search(r"API:\s+(http://127\.0\.0\.1:\d+)", Path(out.name).read_text())
            api = m.group(1) if m else None
            time.sleep(0.3)
        assert api, Path(out.name).read_text()
        assert "redis" in Path(out.name).read_text().lower()
        # demo partners are fetched once at start; wait for fresh availability near a demo metro
        found: list[dict[str, object]] = []
        while time.monotonic() < deadline and not found:
            family |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
            answer = httpx.get(f"{api}/v1/centers/near", params={"zip": "60601", "radius_mi": 10}, timeout=5).json()
            found = [a for r in answer.get("results", []) for a in r["availability"] if a["fresh"]]
            time.sleep(0.5)
        assert found, "no fresh demo availability near Chicago"
        assert any("simulated" in str(a["notes"]) for a in found)
        assert httpx.get(f"{api}/readyz", timeout=5).status_code == 200
        family |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        names = " ".join(" ".join(psutil.Process(p).cmdline()) for p in family if psutil.pid_exists(p))
        assert "redis-server" in names and "celery" in names and "uvicorn" in names
        # a worker that dies is started again, and the API stays up meanwhile
        [worker] = celery_children(proc.pid)
        worker.kill()
        restarted = None
        while time.monotonic() < deadline + 60 and restarted is None:
            assert httpx.get(f"{api}/healthz", timeout=5).status_code == 200
            found_now = [c for c in celery_children(proc.pid) if c.pid != worker.pid]
            restarted = found_now[0] if found_now else None
            time.sleep(0.3)
        assert restarted is not None, Path(out.name).read_text()
        assert "The worker stopped (exit -9); starting it again in 1 s" in Path(out.name).read_text()
        family |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("centers serve did not stop within 60 s of Ctrl-C")
    assert proc.returncode == 0, Path(out.name).read_text()
    time.sleep(0.5)
    left = [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert left == [], [" ".join(psutil.Process(p).cmdline()) for p in left]
    assert "Stopped." in Path(out.name).read_text()


def celery_children(pid: int) -> list[psutil.Process]:
    """The live Celery worker processes ``centers serve`` started (a killed one may linger as a zombie)."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "celery" in " ".join(child.cmdline()):
                found.append(child)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
    return found
