"""bench/goals.py sets every benchmark's headline figures against issue 14's goals: the verdicts at the goals' edges,
and a benchmark that did not run reads "not run", never "met"."""

from __future__ import annotations

import copy
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bench import _summary, goals
from bench.goals import BENCHMARKS, Row, goal_rows, table

#: a run that meets every goal exactly at its edge
AT_THE_EDGE: dict[str, dict[str, Any]] = {
    "ingest": {
        "synthetic": {"records": 100_000, "first_rec_s": 20_000.0, "same_bytes_x": 20.0, "new_order_x": 20.0},
        "samhsa": {"records": 14_034, "first_rec_s": 20_000.0, "same_bytes_x": 20.0, "new_order_x": 20.0},
        "bytes_per_center": 2000.0,
        "healthz_req_s": 4000.0,
        "near_vs_healthz": 0.5,
    },
    "lookup": {
        "floor p50": 400.0,
        "near p50": 600.0,
        "near filtered p50": 600.0,
        "near available p50": 600.0,
        "pg p50": 1200.0,
        "pg filtered p50": 1200.0,
        "pg available p50": 1300.0,
    },
    "cli": {"centers near 02139 median s": 0.5, "baseline: python -c pass median s": 0.02},
    "push": {"push p50 ms": 9.0, "push p99 ms": 12.0, "ping p50 ms": 3.0, "ping p99 ms": 4.0},
    "feeds": {"feeds": 1000, "interval_s": 300, "minutes": 12.0, "missed": 0, "due": 1400, "start lag p99 s": 30.0},
}


def verdicts(summaries: dict[str, Any]) -> list[str]:
    return [r.verdict for r in goal_rows(summaries)]


def test_every_goal_met_at_its_edge() -> None:
    rows = goal_rows(AT_THE_EDGE)
    assert [r.verdict for r in rows] == ["met"] * len(rows), table(rows)
    assert {r.source for r in rows} == set(BENCHMARKS)


@pytest.mark.parametrize(
    ("path", "value", "row"),
    [
        (("ingest", "synthetic", "first_rec_s"), 19_999.0, 0),
        (("ingest", "synthetic", "new_order_x"), 19.9, 1),
        (("ingest", "samhsa", "same_bytes_x"), 19.9, 3),
        (("ingest", "bytes_per_center"), 2001.0, 4),
        (("ingest", "near_vs_healthz"), 0.49, 5),
        (("lookup", "near available p50"), 601.0, 6),
        (("lookup", "pg filtered p50"), 1199.0, 7),
        (("cli", "centers near 02139 median s"), 0.51, 8),
        (("push", "push p99 ms"), 12.1, 9),
        (("feeds", "missed"), 1, 10),
        (("feeds", "start lag p99 s"), 30.5, 10),
    ],
)
def test_a_figure_past_its_goal_is_missed(path: tuple[str, ...], value: float, row: int) -> None:
    summaries = copy.deepcopy(AT_THE_EDGE)
    at: Any = summaries
    for key in path[:-1]:
        at = at[key]
    at[path[-1]] = value
    got = verdicts(summaries)
    assert got[row] == "missed" and got.count("missed") == 1, got


def test_a_benchmark_not_run_reads_not_run() -> None:
    for name in BENCHMARKS:
        summaries = {k: v for k, v in AT_THE_EDGE.items() if k != name}
        rows = goal_rows(summaries)
        assert {r.verdict for r in rows if r.source == name} == {"not run"}
        assert {r.verdict for r in rows if r.source != name} == {"met"}


def test_postgis_absent_says_why() -> None:
    summaries = copy.deepcopy(AT_THE_EDGE)
    lookup = summaries["lookup"]
    for k in ("pg p50", "pg filtered p50", "pg available p50"):
        del lookup[k]
    lookup["postgis_skipped"] = "psycopg is not installed"
    row = next(r for r in goal_rows(summaries) if "PostGIS" in r.figure)
    assert row == Row(
        row.source, row.figure, "not measured", "PostGIS skipped: psycopg is not installed", row.goal, "not run"
    )


def test_samhsa_absent_says_why() -> None:
    summaries = copy.deepcopy(AT_THE_EDGE)
    del summaries["ingest"]["samhsa"]
    summaries["ingest"]["samhsa_skipped"] = "../shared/data/samhsa_sud_facilities_geocoded.csv is absent"
    rows = goal_rows(summaries)
    samhsa = [r for r in rows if "SAMHSA" in r.figure]
    assert len(samhsa) == 2 and all(
        r.verdict == "not run" and r.baseline.startswith("skipped: ../shared") for r in samhsa
    )
    assert [r.verdict for r in rows if "SAMHSA" not in r.figure] == ["met"] * (len(rows) - 2)


def test_a_benchmark_past_its_time_is_stopped_with_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """goals.py stops a benchmark that outlives its minutes, and the processes it started with it (a child holding
    the output pipe open must not keep goals.py waiting)."""
    (tmp_path / "bench").mkdir()
    pid_file = tmp_path / "child.pid"
    (tmp_path / "bench" / "hang.py").write_text(
        "import subprocess, sys, time\n"
        "print('started', flush=True)\n"
        f"child = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    )
    monkeypatch.setattr(goals, "ROOT", tmp_path)
    monkeypatch.setitem(goals.BENCHMARKS, "hang", ("hang.py", [], [], 0.05))
    out = tmp_path / "out"
    out.mkdir()
    t0 = time.monotonic()
    summary, _took, status = goals.run("hang", False, out)
    assert time.monotonic() - t0 < 30
    assert summary is None and status != 0
    log = (out / "hang.txt").read_text()
    assert "started" in log and "stopped after 0.05 minutes" in log
    child = int(pid_file.read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the benchmark's child outlived it")


def test_a_run_with_no_due_time_inside_shows_nothing_met() -> None:
    summaries = copy.deepcopy(AT_THE_EDGE)
    summaries["feeds"].update(missed=0, due=0)
    assert goal_rows(summaries)[10].verdict == "missed"


def test_a_figure_not_measured_is_written_null_however_deep(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    _summary.write(path, {"a": float("nan"), "b": {"c": float("inf"), "d": [1.0, float("nan")]}, "e": 2})
    assert json.loads(path.read_text()) == {"a": None, "b": {"c": None, "d": [1.0, None]}, "e": 2}
    summaries = copy.deepcopy(AT_THE_EDGE)
    summaries["ingest"]["synthetic"]["first_rec_s"] = None
    assert goal_rows(summaries)[0].verdict == "not run"
