"""The demo answers the README's headline search (issue 13, item 11): every demo feed run once through the
real pipeline into the session's Redis, then `near 02139 --level-of-care detox --payment medicaid` finds
fresh availability, and every center it shows has a fictional 555-01xx number to call."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.fetch import Fetcher, new_session
from aggregator.ingest import Pipeline
from aggregator.local.demo import DemoPartners
from aggregator.lookup import near
from aggregator.store import Store
from config import registry
from tests.conftest import SHARED_DATA

README = Path(__file__).resolve().parents[2] / "README.md"


def sources() -> list[Path | None]:
    return [None, SHARED_DATA] if SHARED_DATA.is_dir() else [None]


@pytest.fixture(params=sources(), ids=lambda p: "shared" if p else "bundled")
def demo_store(request: pytest.FixtureRequest, store: Store, tmp_path: Path) -> Iterator[Store]:
    partners = DemoPartners(request.param).start()
    try:
        path = tmp_path / "feeds.toml"
        path.write_text(partners.registry_toml())
        reg = registry.load(path)
        pipeline = Pipeline(store, Fetcher(new_session("center-availability-tests/1.0")))
        for feed in reg.pulled:
            outcome = pipeline.run(feed, force=True)
            assert outcome.status == "applied", (feed.id, outcome)
        yield store
    finally:
        partners.stop()


def test_the_readme_headline_search_finds_fresh_detox_that_takes_medicaid(demo_store: Store) -> None:
    assert "centers near 02139 --level-of-care detox --payment medicaid" in README.read_text()
    answer = near(
        demo_store, zip="02139", radius_mi=50, levels_of_care=["detox"], payment=["medicaid"], now=datetime.now(UTC)
    ).as_dict()
    fresh = [
        (r, a) for r in answer["results"] for a in r["availability"] if a["level_of_care"] == "detox" and a["fresh"]
    ]
    assert len({r["id"] for r, _ in fresh}) >= 2, answer
    # open beds, whatever the period: "limited" is how a board's last few beds read (both can take someone)
    assert any(a["status"] in ("available", "limited") and a["beds_available"] for _r, a in fresh), fresh
    # the default radius (the public page's) finds them too, and so does available_only
    assert near(demo_store, zip="02139", levels_of_care=["detox"], payment=["medicaid"], available_only=True).results


def test_every_demo_center_near_the_default_place_has_a_fictional_number(demo_store: Store) -> None:
    answer = near(demo_store, zip="02139", radius_mi=25, limit=50).as_dict()
    assert answer["results"]
    for result in answer["results"]:
        numbers = [p["number"] for p in result["phones"]]
        assert numbers, result["name"]
        assert all(re.fullmatch(r"\+1\d{3}55501\d\d", n) for n in numbers), (result["name"], numbers)
