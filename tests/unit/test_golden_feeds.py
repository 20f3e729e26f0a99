"""Golden tests: every format adapter, a small input and the expected normalized output.

Each folder under tests/fixtures/feeds/ is a case::

    feed.toml       one [[feed]] table as in the partner registry; its url names the first file
    <files>         the documents; URLs the adapter's follow() returns are served by basename
    expected.json   {"centers": [...], "availability": [...], "rejections": [...], "records": N}

Regenerate after a deliberate change with ``UPDATE_GOLDEN=1 scripts/test tests/unit/test_golden_feeds.py``
and read the diff: the expected files are the specification.
"""

from __future__ import annotations

import json
import os
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from aggregator.feeds import PARSERS, Document, follower_for, parser_for
from aggregator.ingest import context_for, normalize_all
from config import registry

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def run_case(case: Path) -> dict[str, Any]:
    reg = registry.parse(tomllib.loads((case / "feed.toml").read_text()), str(case), frozenset(PARSERS))
    [feed] = reg.feeds
    name = feed.parser or feed.format
    follow = follower_for(name)
    queue, documents, seen = [feed.url], [], set()
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        body = (case / Path(urlsplit(url).path).name).read_bytes()
        doc = Document(url=url, body=body)
        documents.append(doc)
        if follow is not None:
            queue.extend(follow(doc, feed.mapping))
    raws = parser_for(name)(documents, feed.mapping)
    centers, observations, report = normalize_all(raws, context_for(feed, NOW))
    return {
        "records": report.records,
        "documents": [Path(urlsplit(d.url).path).name for d in documents],
        "centers": [c.model_dump(mode="json") for c in centers],
        "availability": [o.model_dump(mode="json") for o in observations],
        "rejections": [r.model_dump() for r in report.rejections],
        "field_problems": [r.model_dump() for r in report.field_problems],
    }


@pytest.mark.parametrize(
    "case",
    sorted(p for p in CASES.iterdir() if (p / "feed.toml").exists()) if CASES.exists() else [],
    ids=lambda p: p.name,
)
def test_golden(case: Path) -> None:
    got = run_case(case)
    expected_path = case / "expected.json"
    if os.environ.get("UPDATE_GOLDEN") == "1" or not expected_path.exists():
        expected_path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
        if os.environ.get("UPDATE_GOLDEN") != "1":
            pytest.fail(f"{expected_path} was missing and has been written: read it, then commit it")
    assert got == json.loads(expected_path.read_text())


def test_there_is_a_golden_case_for_every_format() -> None:
    formats = set()
    for case in CASES.iterdir():
        if (case / "feed.toml").exists():
            [feed] = tomllib.loads((case / "feed.toml").read_text())["feed"]
            formats.add(feed["format"])
    assert formats >= {"csv", "json", "html", "hsds", "smart"}
