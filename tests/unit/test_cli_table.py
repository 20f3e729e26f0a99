"""`centers near`'s table (issue 13): four rows of 'LOS ANGELES CENTERS FOR ALCOHOL AND DRUG ABU' could not be
told apart. Every row shows the center's id (what `centers report` takes) and long names wrap, whole."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest

from aggregator import cli, lookup

LA = "LOS ANGELES CENTERS FOR ALCOHOL AND DRUG ABUSE"
SITES = ("HAWTHORNE SITE", "SANTA FE SPRINGS WOMEN'S RESIDENTIAL PROGRAM", "PICO RIVERA OUTPATIENT", "WHITTIER")


def _hit(i: int, name: str, levels: list[dict[str, Any]] | None = None) -> lookup.Hit:
    center = {
        "name": name,
        "address": {"city": "Santa Fe Springs"},
        "phones": [{"number": f"+1562555010{i}", "role": "main"}],
    }
    avail = (
        levels
        if levels is not None
        else [
            {
                "level_of_care": "residential",
                "status": "limited",
                "beds_available": i,
                "reported_at": "2025-01-01T00:00:00Z",
                "age_seconds": 600,
                "fresh": True,
            },
            {
                "level_of_care": "detox",
                "status": "waitlist",
                "beds_available": None,
                "waitlist_size": 4,
                "reported_at": "2025-01-01T00:00:00Z",
                "age_seconds": 7200,
                "fresh": False,
            },
        ]
    )
    return lookup.Hit(f"la-county:{1000 + i}", 1.5 + i, center, avail)


def _answer(hits: list[lookup.Hit]) -> lookup.NearAnswer:
    return lookup.NearAnswer(
        origin=lookup.resolve_zip("90670"), radius_mi=10, limit=10, filters={}, available_only=False, results=hits
    )


@pytest.mark.parametrize("width", [60, 80, 100, 120, 200])
def test_rows_show_ids_and_whole_names(width: int) -> None:
    hits = [_hit(i, f"{LA} - {site}") for i, site in enumerate(SITES)]
    text = cli.render_table(_answer(hits), width=width)
    lines = text.splitlines()
    assert lines[0] == "Centers within 10 miles of Santa Fe Springs, CA"
    flat = " ".join(" ".join(text.split()).split(" "))
    for i, site in enumerate(SITES):
        assert f"la-county:{1000 + i}" in text  # the id, never wrapped or cut
        assert _in_order(f"{LA} - {site}".split(), _row_words(lines, hits[i].id))  # the whole name, wrapped
        assert "+1562555010" + str(i) in text
    assert "residential: limited" in flat and "detox: waitlist" in flat and "(4 waiting)" in flat
    assert "STALE" in flat
    # every row starts with its distance and id on one line, so the id is found by its row
    starts = [line for line in lines if re.match(r"^\s*\d+\.\d mi  la-county:\d+", line)]
    assert len(starts) == len(SITES)
    if width >= 80:
        assert max(len(line) for line in lines[1:]) <= width


def _row_words(lines: list[str], center_id: str) -> list[str]:
    """The words of a row: its first line and its continuation lines, left to right, top to bottom."""
    first = next(i for i, line in enumerate(lines) if center_id in line)
    row = [lines[first]]
    for line in lines[first + 1 :]:
        if re.match(r"^\s*\d+\.\d mi  ", line):
            break
        row.append(line)
    return " ".join(row).split()


def _in_order(words: list[str], within: list[str]) -> bool:
    """Every word, in order (other columns' words may come between: a wrapped name's lines)."""
    it = iter(within)
    return all(any(w == x for x in it) for w in words)


def test_narrow_terminals_put_availability_below() -> None:
    text = cli.render_table(_answer([_hit(1, "Harbor House")]), width=60)
    first, second = text.splitlines()[1:3]
    assert "Harbor House" in first and "la-county:1001" in first
    assert second.strip().startswith("residential: limited 1 beds")


def test_no_availability_reported_and_an_empty_answer() -> None:
    text = cli.render_table(_answer([_hit(2, "Quiet Place", levels=[])]), width=120)
    assert "no availability reported" in text
    empty = _answer([])
    empty.hint = {"message": "No centers matched within 10 miles of Santa Fe Springs, CA."}
    assert cli.render_table(empty).splitlines()[1] == "No centers matched within 10 miles of Santa Fe Springs, CA."


def test_the_cli_defaults_are_the_lookups() -> None:
    assert cli.DEFAULT_RADIUS_MI == lookup.DEFAULT_RADIUS_MI
    assert cli.DEFAULT_LIMIT == lookup.DEFAULT_LIMIT


def test_help_imports_no_store_lookup_or_models() -> None:
    """`centers --help` stays quick: the heavy modules load inside the commands that need them."""
    code = (
        "import sys; from aggregator.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'pydantic', 'requests', 'geopy',"
        " 'zipcodes', 'rapidfuzz') or m in ('aggregator.store', 'aggregator.lookup', 'aggregator.model',"
        " 'config.registry'))\nprint('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "HEAVY []" in out, out
