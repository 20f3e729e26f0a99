"""bench/goals.py sets every benchmark's headline figures against issue 14's goals: the verdicts at the goals' edges,
and a benchmark that did not run reads "not run", never "met"."""

from __future__ import annotations

import copy
from typing import Any

import pytest

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
