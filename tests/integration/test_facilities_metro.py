"""A dense metro loaded from three feeds that overlap: one row per place in the answer, every part of it there.

The national directory (the real SAMHSA list), a bed board and a scheduling feed that describe the same
Boston-area facilities the way partners do (abbreviations, suites written otherwise, "Inc", a typo, points
moved up to 100 m; see tests/unit/test_match_evaluation.py), each feed with its own part of the truth.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from aggregator.geography import haversine_mi
from aggregator.local.sample import SAMHSA_FEED, load_samhsa
from aggregator.lookup import near
from aggregator.model import Center, GeoPrecision, Phone, PhoneRole
from aggregator.store import Store
from tests.conftest import shared_file
from tests.integration.factories import NOW, observation
from tests.unit.test_match_evaluation import variant

CAMBRIDGE = (42.3647, -71.1042)


@pytest.mark.shared_data
@pytest.mark.slow
def test_the_top_ten_in_a_dense_metro_has_one_row_per_place_with_every_sources_part(store: Store) -> None:
    load_samhsa(store, shared_file("samhsa_sud_facilities_geocoded.csv"), NOW)
    directory = [
        Center.model_validate_json(raw)
        for raw in store.stored_records(sorted(store.feed_members(SAMHSA_FEED))).values()
    ]
    metro = sorted(
        (
            c
            for c in directory
            if c.latitude is not None
            and c.longitude is not None
            and c.geo_precision is not GeoPrecision.POSTAL_CODE
            and haversine_mi(*CAMBRIDGE, c.latitude, c.longitude) < 3
        ),
        key=lambda c: c.id,
    )
    assert len(metro) > 30
    rng = random.Random(7)
    beds: list[Center] = []
    scheduling: list[Center] = []
    for i, base in enumerate(metro):
        for feed, into in (("beds", beds), ("scheduling", scheduling)):
            v, _edits = variant(base, feed, rng)
            if v.address.postal_code:  # a variant that lost its ZIP is not one a feed could send
                # the scheduling feed alone has the intake phone; the bed board alone has the beds
                phones = (Phone(number=f"+1617555{i % 100:04d}", role=PhoneRole.INTAKE),) * (feed == "scheduling")
                into.append(v.model_copy(update={"phones": phones}))
    store.replace_feed(
        "beds",
        beds,
        [
            observation(
                c, "detox", "available", beds_available=2, reported_at=NOW - timedelta(minutes=10), freshness=3600
            )
            for c in beds
        ],
        now=NOW,
        source="scrape",
        authority=-1,
    )
    store.replace_feed("scheduling", scheduling, [], now=NOW, source="pull", authority=-1)  # the directory names

    answer = near(store, latitude=CAMBRIDGE[0], longitude=CAMBRIDGE[1], limit=10, now=NOW, audience="operator")
    assert len(answer.results) == 10
    bases = [{s["id"] for s in h.center["sources"] if s["feed_id"] == SAMHSA_FEED} for h in answer.results]
    # one row per place: no two rows share a directory record, and every row has exactly one
    assert all(len(b) == 1 for b in bases)
    assert len(set.union(*bases)) == 10
    # every part of the truth on that one row: the scheduling feed's phone and the bed board's beds
    linked = [
        h for h in answer.results if {s["feed_id"] for s in h.center["sources"]} == {SAMHSA_FEED, "beds", "scheduling"}
    ]
    assert len(linked) >= 8  # recall is 97% on the evaluation set: a variant may stay apart (its own row)
    for h in linked:
        assert [p["source"] for p in h.center["phones"]] == ["scheduling"]
        detox = next(a for a in h.availability if a["level_of_care"] == "detox")
        assert (detox["status"], detox["beds_available"], detox["record"].split(":")[0]) == ("available", 2, "beds")
        assert h.center["name"] == next(c.name for c in metro if c.id in {s["id"] for s in h.center["sources"]})
