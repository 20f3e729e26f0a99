"""Issue 14's goals in one run: every benchmark once, in turn, and their headline figures against the goals.

    python bench/goals.py [--out DIR] [--only NAME ...] [--quick]

Each benchmark runs as its own process, one after another (run nothing else on the machine meanwhile: each
figure is still set beside its baseline from the same benchmark run, but a quiet machine moves them less):

* ``ingest``: ``bench/ingest.py --rows 100000 --http-seconds 20 --rounds 5``: the first ingest of 100,000
  synthetic rows and of the SAMHSA list, each again unchanged (same bytes, then a new order), Redis memory per
  center, the HTTP near route against the same server's ``/healthz``;
* ``lookup``: ``bench/postgis.py`` (100,000 centers, 2,000 origins): ``near()`` against the bare GEOSEARCH and,
  where PostGIS is at hand, against a prepared PostGIS KNN query;
* ``cli``: ``bench/cli.py --runs 15 --centers 20000``: the wall time of ``centers near 02139``;
* ``push``: ``bench/push_latency.py``: a signed push until it shows in ``GET /v1/centers/near``, against a no-op
  Celery task's round trip;
* ``feeds``: ``bench/feeds_at_scale.py``: 1,000 pull feeds due every 5 minutes for 12 minutes, 2 cores.

About half an hour in all. Each benchmark's output goes to ``DIR/{name}.txt`` and its figures to
``DIR/{name}.json``; the table (Markdown, as BENCHMARKS.md keeps it) to ``DIR/goals.md`` and the terminal.
``--quick`` runs every benchmark at a small size (the suite's smoke run): its figures say nothing. The exit
status is 1 when a benchmark failed to run (a goal missed is a figure, not a failure).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._stack import machine  # noqa: E402

#: name -> (script, full-size arguments, quick arguments, minutes it may take at full size)
BENCHMARKS: dict[str, tuple[str, list[str], list[str], float]] = {
    "ingest": (
        "ingest.py",
        ["--rows", "100000", "--http-seconds", "20", "--rounds", "5"],
        ["--rows", "1500", "--http-seconds", "1.5", "--clients", "2", "--rounds", "1"],
        30,
    ),
    "lookup": ("postgis.py", [], ["--centers", "600", "--queries", "30"], 20),
    "cli": ("cli.py", ["--runs", "15", "--centers", "20000"], ["--runs", "1", "--centers", "200"], 10),
    "push": ("push_latency.py", [], ["--pushes", "3", "--centers", "300"], 10),
    "feeds": (
        "feeds_at_scale.py",
        [],
        ["--feeds", "12", "--interval-seconds", "4", "--minutes", "0.25"],
        30,
    ),
}

Summaries = Mapping[str, Mapping[str, Any] | None]


@dataclass(frozen=True)
class Row:
    """One goal: what measured it, the figure, its baseline from the same run, the goal and the verdict."""

    source: str  # the benchmark that measures it (a key of BENCHMARKS)
    figure: str
    measured: str
    baseline: str
    goal: str
    verdict: str  # "met", "missed", "not run"


def _x(v: float) -> str:
    return f"{v:.2f}×"


def _get(summary: Mapping[str, Any] | None, *path: str) -> Any:
    """A figure of a summary (None where the benchmark did not run or did not measure it)."""
    at: Any = summary
    for key in path:
        if not isinstance(at, Mapping) or at.get(key) is None:
            return None
        at = at[key]
    return at


def _row(
    source: str,
    figure: str,
    values: list[Any],
    show: Callable[..., str],
    base: str,
    goal: str,
    ok: Callable[..., bool],
    missing: str = "",
) -> Row:
    """A goal's row: ``values`` shown and judged, or "not run" when any is missing (``missing`` says why)."""
    if any(v is None for v in values):
        return Row(source, figure, "not measured", missing, goal, "not run")
    return Row(source, figure, show(*values), base, goal, "met" if ok(*values) else "missed")


def _stages(ingest: Mapping[str, Any] | None, key: str) -> str:
    """Where a first ingest's time went (its two big stages)."""
    first, norm, store = (_get(ingest, key, k) or 0.0 for k in ("first_s", "normalize_s", "store_s"))
    return f"of its {first:.1f} s: normalize {norm:.1f}, store {store:.1f}"


def goal_rows(s: Summaries) -> list[Row]:
    """The goals of issue 14, each with what the summaries say (pure: tests give it made-up summaries)."""
    ingest, lookup, cli, push, feeds = (s.get(n) for n in ("ingest", "lookup", "cli", "push", "feeds"))
    rows = []
    for label, key in (("synthetic", "synthetic"), ("SAMHSA list", "samhsa")):
        skipped = _get(ingest, f"{key}_skipped")
        why = f"skipped: {skipped}" if skipped else ""
        n = _get(ingest, key, "records")
        size = f"{n:,.0f} rows" if n else "rows"
        rows.append(
            _row(
                "ingest",
                f"first ingest, {label} ({size}), parse → normalize → store",
                [_get(ingest, key, "first_rec_s")],
                lambda v: f"{v:,.0f} rec/s",
                _stages(ingest, key),
                "≥ 20,000 rec/s",
                lambda v: v >= 20_000,
                missing=why,
            )
        )
        rows.append(
            _row(
                "ingest",
                f"unchanged re-ingest vs first, {label}: same bytes / new order",
                [_get(ingest, key, "same_bytes_x"), _get(ingest, key, "new_order_x")],
                lambda a, b: f"{a:.1f}× / {b:.1f}× faster",
                "its first ingest",
                "≥ 20× faster",
                lambda a, b: a >= 20 and b >= 20,
                missing=why,
            )
        )
    rows.append(
        _row(
            "ingest",
            "Redis memory per center (INFO memory)",
            [_get(ingest, "bytes_per_center")],
            lambda v: f"{v:,.0f} B",
            "the empty store",
            "≤ 2,000 B",
            lambda v: v <= 2000,
        )
    )
    rows.append(
        _row(
            "ingest",
            "HTTP near vs the same server's /healthz",
            [_get(ingest, "near_vs_healthz")],
            _x,
            f"/healthz {_get(ingest, 'healthz_req_s') or 0:,.0f} req/s",
            "≥ 0.5×",
            lambda v: v >= 0.5,
        )
    )
    floor = _get(lookup, "floor p50")
    kinds = ("near", "near filtered", "near available")
    rows.append(
        _row(
            "lookup",
            "near() vs bare GEOSEARCH, p50: unfiltered / filtered / available_only",
            [_get(lookup, f"{k} p50") for k in kinds] + [floor],
            lambda a, b, c, f: " / ".join(_x(v / f) for v in (a, b, c)),
            f"GEOSEARCH {floor or 0:.0f} µs",
            "≤ 1.5×",
            lambda a, b, c, f: max(a, b, c) <= 1.5 * f,
        )
    )
    pg = [_get(lookup, f"pg{k[4:]} p50") for k in kinds]
    skipped = _get(lookup, "postgis_skipped")
    rows.append(
        _row(
            "lookup",
            "near() vs PostGIS KNN, p50: unfiltered / filtered / available_only",
            [_get(lookup, f"{k} p50") for k in kinds] + pg,
            lambda a, b, c, x, y, z: " / ".join(_x(v / w) for v, w in ((a, x), (b, y), (c, z))),
            "the same shapes on PostGIS",
            "≤ 0.5× (moonshot)",
            lambda a, b, c, x, y, z: max(a / x, b / y, c / z) <= 0.5,
            missing=f"PostGIS skipped: {skipped}" if skipped else "",
        )
    )
    base = _get(cli, "baseline: python -c pass median s")
    rows.append(
        _row(
            "cli",
            "`centers near 02139` against a running service, wall (median)",
            [_get(cli, "centers near 02139 median s")],
            lambda v: f"{v:.2f} s",
            f"python -c pass {base or 0:.2f} s",
            "≤ 0.5 s",
            lambda v: v <= 0.5,
        )
    )
    rows.append(
        _row(
            "push",
            "signed push → visible in GET near, p50 / p99 vs a no-op Celery task",
            [_get(push, f"{w} p{q} ms") for w in ("push", "ping") for q in (50, 99)],
            lambda a, b, c, d: f"{_x(a / c)} / {_x(b / d)}",
            f"no-op task {_get(push, 'ping p50 ms') or 0:.1f} / {_get(push, 'ping p99 ms') or 0:.1f} ms",
            "≤ 3×",
            lambda a, b, c, d: a <= 3 * c and b <= 3 * d,
        )
    )
    n, minutes, every = _get(feeds, "feeds"), _get(feeds, "minutes"), _get(feeds, "interval_s") or 300
    rows.append(
        _row(
            "feeds",
            f"{n or 1000:,} pull feeds due every "
            + (f"{every / 60:g} min" if every >= 60 else f"{every} s")
            + (f" ({minutes:.1f} min run)" if minutes else "")
            + ": missed runs, p99 start lag",
            [_get(feeds, "missed"), _get(feeds, "due"), _get(feeds, "start lag p99 s")],
            lambda m, d, p: f"{m} of {d:,} missed, p99 {p:.2f} s",
            f"no-op task p99 {_get(feeds, 'ping lag p99 s') or 0:.2f} s",
            "0 missed, p99 ≤ 30 s",
            lambda m, d, p: d > 0 and m == 0 and p <= 30,  # no due time inside the run: nothing shown
        )
    )
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    out = ["| figure | measured | baseline (same run) | goal | |", "|---|---|---|---|---|"]
    out += [f"| {r.figure} | {r.measured} | {r.baseline} | {r.goal} | {r.verdict} |" for r in rows]
    return "\n".join(out)


def run(name: str, quick: bool, out: Path) -> tuple[dict[str, Any] | None, float, int]:
    """One benchmark, its output shown and kept; (its summary or None, seconds, exit status)."""
    script, full, small, minutes = BENCHMARKS[name]
    summary = out / f"{name}.json"
    summary.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "bench" / script), *(small if quick else full), "--summary", str(summary)]
    print(f"\n== {name}: python bench/{script} {' '.join(small if quick else full)}", flush=True)
    t0 = time.perf_counter()
    with (out / f"{name}.txt").open("w", encoding="utf-8") as log:
        # its own process group: on a timeout the benchmark goes with what it started (redis-server, workers)
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )

        def copy() -> None:
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    sys.stdout.write(line)
                    log.write(line)
            except (OSError, ValueError):  # the log closed under a child that outlived its benchmark
                return

        copier = threading.Thread(target=copy, daemon=True)
        copier.start()
        try:
            status = proc.wait(timeout=minutes * 60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            status = proc.wait()
            log.write(f"\ngoals.py: stopped after {minutes:g} minutes\n")
        copier.join(10)  # what it printed last (a child still holding the pipe is not waited for)
    took = time.perf_counter() - t0
    found = json.loads(summary.read_text(encoding="utf-8")) if status == 0 and summary.exists() else None
    return found, took, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=None, help="where outputs and the table go (default: a new folder)")
    ap.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    ap.add_argument("--quick", action="store_true", help="small sizes: checks the run, measures nothing")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-goals-"))
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    summaries: dict[str, dict[str, Any] | None] = {}
    failed = []
    took: dict[str, float] = {}
    for name in args.only:
        summaries[name], took[name], status = run(name, args.quick, out)
        if status != 0:
            failed.append(f"{name} (exit {status}; {out / (name + '.txt')})")
    head = (
        f"Issue 14's goals, `python bench/goals.py{' --quick' if args.quick else ''}`"
        f"{' --only ' + ' '.join(args.only) if args.only != list(BENCHMARKS) else ''}: {machine()}; "
        f"{started:%Y-%m-%d %H:%M} UTC, {sum(took.values()) / 60:.0f} min"
        f" ({', '.join(f'{n} {t / 60:.1f}' for n, t in took.items())})"
    )
    text = f"{head}\n\n{table(goal_rows(summaries))}\n"
    if failed:
        text += f"\nfailed to run: {'; '.join(failed)}\n"
    (out / "goals.md").write_text(text, encoding="utf-8")
    print(f"\n{text}\noutputs and figures in {out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
