"""The fault matrix's table: one row per scenario, printed at the end of the test session (RELIABILITY.md).

Scenarios run in the fault-matrix tests and in the integration tests they fold in (hostile feeds, a broker
outage, the geocoder down) each add their runs to their row."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ROWS: dict[str, Row] = {}


@dataclass
class Row:
    scenario: str
    injection: str
    runs: int = 0
    pushes: int = 0  # pushes answered 202
    records: int = 0  # records in them, plus the feed runs' records
    lost: int = 0
    late: int = 0  # runs whose recovery took longer than the bound
    worst: float = 0.0  # seconds, fault end to everything applied
    violations: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)  # what else was seen (worker restarts, ...)

    def add(
        self,
        partner: Any = None,
        took: float = 0.0,
        feed_records: int = 0,
        violations: list[str] | None = None,
        *,
        pushes: int = 0,
        records: int = 0,
        lost: int = 0,
    ) -> None:
        self.runs += 1
        if partner is not None:
            pushes += len(partner.accepted)
            records += partner.records
        self.pushes += pushes
        self.records += records + feed_records
        self.worst = max(self.worst, took)
        found = violations or []
        self.lost += lost + sum(
            1 for v in found if v.startswith(("push_not_applied", "older_over_newer", "snapshot_torn"))
        )
        self.violations.extend(found)

    def assert_held(self, bound: float = 60.0, runs: int = 5) -> None:
        self.late = 0 if self.worst <= bound else 1
        assert self.violations == [], self.violations[:20]
        assert self.runs >= runs
        assert self.worst <= bound, f"recovery took {self.worst:.1f} s (bound {bound:.0f} s)"

    def markdown(self) -> str:
        worst = f"{self.worst:.1f} s" if self.worst else "-"
        notes = "; ".join(f"{what} ({n}x)" for what, n in sorted(self.notes.items())) or "-"
        return (
            f"| {self.scenario} | {self.injection} | {self.runs} | {self.pushes} | {self.records:,} | "
            f"{self.lost} | {self.late} | {worst} | {len(self.violations)} | {notes} |"
        )


HEADER = (
    "| scenario | injection | runs | pushes accepted | records accepted | lost | late (> 60 s) | "
    "worst recovery | invariant violations | also seen |\n|---|---|---|---|---|---|---|---|---|---|"
)


def row(scenario: str, injection: str) -> Row:
    """The row of ``scenario``, created on first use (runs of one scenario may come from several tests)."""
    if scenario not in ROWS:
        ROWS[scenario] = Row(scenario, injection)
    return ROWS[scenario]


def dump(path: Path) -> None:
    """This process's rows, for the process that prints the table (test runs split across processes)."""
    rows = [
        {**{f.name: getattr(r, f.name) for f in fields(r) if f.name != "notes"}, "notes": dict(r.notes)}
        for r in ROWS.values()
    ]
    path.write_text(json.dumps(rows))


def load(path: Path) -> None:
    """Add the rows another process dumped to this process's."""
    for data in json.loads(path.read_text()):
        r = row(data["scenario"], data["injection"])
        r.runs += data["runs"]
        r.pushes += data["pushes"]
        r.records += data["records"]
        r.lost += data["lost"]
        r.late += data["late"]
        r.worst = max(r.worst, data["worst"])
        r.violations.extend(data["violations"])
        r.notes.update(data["notes"])


def summary(write: Any) -> None:
    if not ROWS:
        return
    write(HEADER)
    for r in ROWS.values():
        write(r.markdown())
