"""The public near-you answer rendered from kept JSON (``aggregator.api.rendered``): on a real Redis, at every
moment, the same answer as decoding and shaping each document anew; freshness judged per request."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from aggregator import lookup
from aggregator.api.rendered import HitRenderer, answer_bytes, no_hits, public_center
from aggregator.store import DocumentHits, Store, read_doc
from tests.integration.factories import CAMBRIDGE, NOW, ago, center, observation

PARTNERS = {"f": "Partner F", "g": "Partner G"}


@pytest.fixture
def varied(store: Store) -> Store:
    """Centers whose figures turn stale at different moments, one reported in the future, one offering a level
    nobody reports on, a facility known from two feeds, and notes written like the renderer's holes."""
    lat, lon = CAMBRIDGE
    a = center("f", "a", lat + 0.01, lon, levels_of_care=["detox", "residential"], payment=["medicaid"])
    b = center("f", "b", lat + 0.02, lon, levels_of_care=["detox"])
    d = center("f", "d", lat + 0.03, lon, levels_of_care=["outpatient"])
    e = center("f", "e", lat + 0.04, lon, levels_of_care=["detox"], name="Holes Recovery")
    shared = {"name": "Harbor Light Detox", "address_1": "12 Main Street"}
    s1 = center("f", "s", lat - 0.01, lon, levels_of_care=["detox"], name=shared["name"])
    s2 = center("g", "s", lat - 0.01, lon, levels_of_care=["detox"], name=shared["name"])
    store.replace_feed(
        "f",
        [a, b, d, e, s1],
        [
            observation(a, "detox", "available", beds_available=3, reported_at=ago(minutes=5)),
            # an older figure with a long window and a newer one with a short window: the newer wins while
            # fresh, then the older (still fresh) does
            observation(b, "detox", "full", beds_available=0, reported_at=ago(minutes=30), freshness=7200),
            observation(d, "outpatient", "limited", reported_at=NOW + timedelta(minutes=10)),
            observation(
                e,
                "detox",
                "waitlist",
                waitlist_size=2,
                notes='ask for "age_seconds":-900000000 and "distance_mi":-7777777.25',
                reported_at=ago(minutes=1),
            ),
            observation(s1, "detox", "limited", reported_at=ago(minutes=8)),
        ],
        now=NOW,
        source="pull",
    )
    store.replace_feed(
        "g", [s2], [observation(s2, "detox", "available", reported_at=ago(minutes=2))], now=NOW, source="pull"
    )
    store.record_observations([observation(b, "detox", "available", beds_available=2, source="push")])
    return store


def documents(store: Store, now: datetime, **query: Any) -> tuple[lookup.NearPlan, DocumentHits]:
    p = lookup.plan_near(latitude=CAMBRIDGE[0], longitude=CAMBRIDGE[1], now=now, **query)

    async def go() -> Any:
        return await store.count_and_search_documents("client", 60_000, 1000, p.search())

    retry, found = asyncio.run(go())
    assert retry is None
    return p, found


def shaped_anew(p: lookup.NearPlan, found: DocumentHits) -> dict[str, Any]:
    """The answer as the API made it before: every document decoded and shaped."""
    hits = no_hits(found)
    hits.extend((c, d, *read_doc(doc)) for c, d, doc in found)
    body = lookup.answer_near(p, hits, "public").as_dict()
    body["results"] = [public_center(r, PARTNERS) for r in body["results"]]
    return body


def rendered(renderer: HitRenderer, p: lookup.NearPlan, found: DocumentHits) -> dict[str, Any]:
    """The rendered answer, checked byte for byte against shaping anew (as the route did: ``orjson.dumps``)."""
    answer = lookup.answer_near(p, no_hits(found), "public")
    data = answer_bytes(answer, len(found), renderer.hits(found, p.now.timestamp() * 1000, PARTNERS))
    assert data == orjson.dumps(shaped_anew(p, found))
    body: dict[str, Any] = orjson.loads(data)
    return body


def levels(body: dict[str, Any], center_id: str) -> dict[str, dict[str, Any]]:
    (hit,) = [r for r in body["results"] if r["id"] == center_id]
    return {e["level_of_care"]: e for e in hit["availability"]}


def test_the_same_answer_as_shaping_anew_at_every_moment(varied: Store) -> None:
    renderer = HitRenderer()
    moments = [0, 3, 9, 11, 12, 16, 40, 130, 0, 12, 9]  # minutes after NOW; the clock also goes back
    seen = []
    for minutes in moments:
        p, found = documents(varied, NOW + timedelta(minutes=minutes))
        assert len(found) >= 5
        seen.append(rendered(renderer, p, found))
    # the answers do change with the clock: the holes and the judgement are per request
    a = [levels(b, "f:a")["detox"] for b in seen]
    assert [x["fresh"] for x in a[:3]] == [True, True, True]
    assert a[1]["age_seconds"] - a[0]["age_seconds"] == 180
    assert a[6]["fresh"] is False and a[6]["status"] == "unknown" and a[6]["beds_available"] is None
    b = [levels(x, "f:b")["detox"] for x in seen]
    assert b[0]["status"] == "available" and b[0]["source"] == "push"
    assert b[5]["status"] == "full" and b[5]["source"] == "pull"  # the push's 15 minutes are over
    assert b[7]["status"] == "unknown"  # both windows over
    assert b[8] == b[0] | {"age_seconds": b[8]["age_seconds"]}  # the clock set back: fresh again
    d = [levels(x, "f:d")["outpatient"] for x in seen]
    assert d[0]["age_seconds"] == 0 and d[0]["fresh"] is True  # reported in the future: no age yet
    assert d[4]["age_seconds"] == 120
    assert levels(seen[0], "f:a")["residential"]["status"] == "unknown"  # offered, nobody reports on it
    assert "age_seconds" in levels(seen[0], "f:e")["detox"]["notes"]
    # a moment seen before shapes nothing again: the judgements are the same
    shaped = renderer.shaped
    p, found = documents(varied, NOW + timedelta(minutes=9, seconds=30))
    rendered(renderer, p, found)
    assert renderer.shaped == shaped


def test_near_shapes_the_stored_slots_as_decoding_every_observation_does(varied: Store) -> None:
    """``near()`` shapes each hit from its stored slots (``lookup.answer_documents``), spelling out only the figure
    shown for each level: the same answers, for the public and for operators, at every moment, as decoding every
    observation first (``read_doc``, ``answer_near``). An operator's call, a push with microseconds and a changed
    figure join the varied centers; every query kind; and documents of the older stored forms."""
    lat, lon = CAMBRIDGE
    varied.record_observations(
        [
            observation("f:a", "detox", "full", source="operator", reported_at=ago(minutes=2), reported_by="Dana"),
            observation("f:a", "residential", "limited", source="push", reported_at=ago(seconds=30.000123)),
        ]
    )
    varied.record_observations([observation("f:d", "outpatient", "full", source="push", reported_at=ago(seconds=20))])
    queries: list[dict[str, Any]] = [{}, {"levels_of_care": ["detox"]}, {"available_only": True}, {"limit": 2}]
    compared = 0
    for minutes in (-3, 0, 1, 3, 9, 11, 12, 16, 40, 130):
        for query in queries:
            p, found = documents(varied, NOW + timedelta(minutes=minutes), **query)
            for audience in ("public", "operator"):
                decoded = no_hits(found)
                decoded.extend((c, d, *read_doc(doc)) for c, d, doc in found)
                expected = lookup.answer_near(p, decoded, audience).as_dict()
                assert lookup.answer_documents(p, found, audience).as_dict() == expected
                assert orjson.dumps(lookup.answer_documents(p, found, audience).as_dict()) == orjson.dumps(expected)
                compared += len(found)
    assert compared > 200
    operator_view = lookup.near(varied, latitude=lat, longitude=lon, now=NOW, audience="operator")
    a = {e["level_of_care"]: e for e in next(h for h in operator_view.results if h.id == "f:a").availability}
    assert a["detox"]["source"] == "operator" and a["detox"]["reported_by"] == "Dana"

    reported = int(NOW.timestamp() * 1000)
    record = {"id": "f:z", "name": "Z", "services": {"levels_of_care": ["detox", "iop"]}, "sources": []}
    compact = ["f:z", "detox|pull", {"st": "available", "fs": 600.0, "rt": reported, "ct": reported, "sig": "0"}]
    old = {"level_of_care": "iop", "source": "pull", "status": "limited", "freshness_seconds": 600, "rt": reported}
    whole = [record, [old | {"reported_at": "t", "checked_at": "t", "changed_at": "t"}]]
    for doc in (orjson.dumps([compact]) + b"\n" + orjson.dumps(record), orjson.dumps(whole)):
        for audience in ("public", "operator"):
            shaped = lookup._hit_doc("f:z", 0.25, doc, reported + 60_000.0, audience)
            assert shaped == lookup._hit(("f:z", 0.25, *read_doc(doc)), reported + 60_000.0, audience)


def test_a_figure_turns_stale_at_the_very_millisecond_its_window_ends(varied: Store) -> None:
    """f:a's detox figure was reported 5 minutes before NOW with a 15-minute window: live until NOW + 10 min."""
    renderer = HitRenderer()
    ends = NOW + timedelta(minutes=10)
    judged = []
    for at in (ends - timedelta(milliseconds=1), ends, ends + timedelta(milliseconds=1), ends - timedelta(seconds=1)):
        p, found = documents(varied, at)
        judged.append(levels(rendered(renderer, p, found), "f:a")["detox"]["fresh"])
    assert judged == [True, False, False, True]


def test_a_whole_number_clock_is_judged_as_a_float_one() -> None:
    """int.__lt__ says NotImplemented of a float: a clock given in whole milliseconds must still judge a window
    written as a float (a mask of NotImplemented would never change, and a stale figure would read live)."""
    reported = int(NOW.timestamp() * 1000)
    group = ["f:z", "detox|pull", {"st": "available", "fs": 600.0, "rt": reported, "ct": reported, "sig": "0"}]
    record = {"id": "f:z", "name": "Z", "services": {"levels_of_care": ["detox"]}, "sources": []}
    doc = orjson.dumps([group]) + b"\n" + orjson.dumps(record)
    found = DocumentHits([("f:z", 0.5, doc)])
    renderer = HitRenderer()
    fresh = [
        orjson.loads(b"".join(renderer.hits(found, reported + minutes * 60_000, PARTNERS)))["availability"][0]["fresh"]
        for minutes in (1, 11, 1)
    ]
    assert fresh == [True, False, True]


def test_a_facility_known_from_two_feeds_names_both_partners(varied: Store) -> None:
    p, found = documents(varied, NOW)
    body = rendered(HitRenderer(), p, found)
    linked = [r for r in body["results"] if len(r["sources"]) == 2]
    assert linked, "the two feeds' records of one place were not linked"
    assert {s["partner"] for s in linked[0]["sources"]} == {"Partner F", "Partner G"}
    assert all(s["reported_at"] for s in linked[0]["sources"])


def test_filters_and_distances_as_shaped_anew(varied: Store) -> None:
    renderer = HitRenderer()
    for query in ({"levels_of_care": ["detox"]}, {"available_only": True}, {"payment": ["medicaid"]}, {"limit": 2}):
        p, found = documents(varied, NOW + timedelta(minutes=4), **query)
        assert found
        body = rendered(renderer, p, found)
        assert [r["distance_mi"] for r in body["results"]] == [round(d, 2) for _, d, _ in found]


def test_a_renamed_partner_is_named_at_once(varied: Store) -> None:
    renderer = HitRenderer()
    p, found = documents(varied, NOW)
    renderer.hits(found, p.now.timestamp() * 1000, PARTNERS)
    answer = lookup.answer_near(p, no_hits(found), "public")
    parts = renderer.hits(found, p.now.timestamp() * 1000, {"f": "Renamed F", "g": "Partner G"})
    body = orjson.loads(answer_bytes(answer, len(found), parts))
    assert "Renamed F" in {s["partner"] for r in body["results"] for s in r["sources"]}
    assert "Partner F" not in {s["partner"] for r in body["results"] for s in r["sources"]}


def test_what_is_kept_is_bounded_and_the_least_recently_used_goes_first(varied: Store) -> None:
    p, found = documents(varied, NOW)
    now_ms = p.now.timestamp() * 1000
    one = [DocumentHits([hit]) for hit in found[:3]]
    sizes = []
    for hits in one:
        measure = HitRenderer()
        measure.hits(hits, now_ms, PARTNERS)
        sizes.append(measure.size)
    renderer = HitRenderer(kept_bytes=sizes[0] + sizes[2] + sizes[1] // 2)
    for i in (0, 1, 0, 2):  # the first is used again: the second is the least recently used
        renderer.hits(one[i], now_ms, PARTNERS)
    assert len(renderer) == 2 and renderer.size == sizes[0] + sizes[2] <= renderer.kept_bytes
    shaped = renderer.shaped
    renderer.hits(one[0], now_ms, PARTNERS)
    renderer.hits(one[2], now_ms, PARTNERS)
    assert renderer.shaped == shaped  # both kept
    renderer.hits(one[1], now_ms, PARTNERS)
    assert renderer.shaped == shaped + 1  # it was not
    for _ in range(2):
        rendered(renderer, p, found)  # byte for byte as shaped anew, whatever is kept (rendered() checks it)


def test_a_record_carrying_a_field_named_like_a_hole_is_shaped_per_request() -> None:
    record = {
        "id": "f:x",
        "name": "X",
        "distance_mi": 1.5,  # never stored so, but a document is data: the renderer must not misplace it
        "services": {"levels_of_care": ["detox"]},
        "sources": [{"id": "f:x", "feed_id": "f", "source_id": "x"}],
    }
    doc = b"[]\n" + orjson.dumps(record)
    found = DocumentHits([("f:x", 0.25, doc)])
    renderer = HitRenderer()
    now_ms = NOW.timestamp() * 1000
    first = orjson.loads(b"[" + b"".join(renderer.hits(found, now_ms, PARTNERS)) + b"]")
    hit = lookup._hit(("f:x", 0.25, *read_doc(doc)), now_ms, "public")
    assert first == [public_center(hit.as_dict(), PARTNERS)]
    assert len(renderer) == 0  # nothing kept of it


def test_a_record_carrying_a_holes_text_is_shaped_per_request() -> None:
    """The stand-ins' text written by the record itself (not in a string: in a value) is found twice: the
    document is shaped per request, and reads as it would anew."""
    record = {
        "id": "f:y",
        "name": "Y",
        "address": {"city": "Boston", "age_seconds": -900000000},
        "services": {"levels_of_care": ["detox"]},
        "sources": [{"id": "f:y", "feed_id": "f", "source_id": "y"}],
    }
    groups = [
        [
            "f:y",
            "detox|pull",
            {
                "st": "available",
                "fs": 900,
                "rt": int(NOW.timestamp() * 1000) - 60_000,
                "ct": int(NOW.timestamp() * 1000),
                "sig": "0",
            },
        ]
    ]
    doc = orjson.dumps(groups) + b"\n" + orjson.dumps(record)
    found = DocumentHits([("f:y", 0.5, doc)])
    renderer = HitRenderer()
    now_ms = NOW.timestamp() * 1000
    got = b"".join(renderer.hits(found, now_ms, PARTNERS))
    hit = lookup._hit(("f:y", 0.5, *read_doc(doc)), now_ms, "public")
    assert got == orjson.dumps(public_center(hit.as_dict(), PARTNERS))
    assert orjson.loads(got)["availability"][0]["age_seconds"] == 60
    assert len(renderer) == 0


def test_what_an_entry_is_counted_covers_what_it_holds_however_many_figures_its_document_has(store: Store) -> None:
    """A facility known from many feeds has many figures but a short public answer (one view a level): each
    figure's expiry and freshness flag are held too, and counted, so the kept bytes stay within their bound."""
    import tracemalloc

    levels = ["crisis", "detox", "inpatient", "iop", "mat", "otp", "outpatient", "php", "residential", "telehealth"]
    lat, lon = CAMBRIDGE
    for i in range(40):  # one facility: the same SAMHSA id from 40 partners
        c = center(f"p{i}", "x", lat, lon, levels_of_care=levels, external_ids=[{"system": "samhsa", "value": "77"}])
        figures = [observation(c, lv, "available", reported_at=ago(minutes=i % 7), freshness=3600) for lv in levels]
        store.replace_feed(f"p{i}", [c], figures, now=NOW, source="pull")
    plan = lookup.plan_near(zip="02139", now=NOW, limit=1)
    found = store.search_documents(**plan.search())
    assert len(found) == 1 and len(read_doc(found[0][2])[1]) == 400
    renderer = HitRenderer()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        renderer.hits(found, NOW.timestamp() * 1000, {})
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(
        d.size_diff for d in after.compare_to(before, "filename") if d.traceback[0].filename.endswith("rendered.py")
    )
    assert len(renderer) == 1
    assert held <= renderer.size, (held, renderer.size)


def test_a_public_answer_is_never_cacheable_past_the_moment_a_figure_it_shows_turns_stale(store: Store) -> None:
    """``Cache-Control: max-age`` lets a browser or a proxy show the answer again without asking: never past the
    moment a fresh figure in it turns stale, or that figure would be shown as live (near-you and one center)."""
    from fastapi.testclient import TestClient

    from aggregator.api import create_app
    from config.registry import Registry
    from config.settings import Settings

    lat, lon = CAMBRIDGE
    c = center("f", "a", lat, lon, levels_of_care=["detox"])
    # reported 59 min 56.5 s before NOW with a one-hour window: fresh for 3.5 s more
    store.replace_feed(
        "f",
        [c],
        [observation(c, "detox", "available", reported_at=ago(minutes=59, seconds=56.5), freshness=3600)],
        now=NOW,
    )
    clock = {"now": NOW}
    settings = Settings.from_env({"CENTERS_RATE_LIMIT": "100000", "CENTERS_GEOCODER": "none"})
    app = create_app(
        settings,
        store,
        registry=Registry(feeds=()),
        enqueue=lambda _n, _a: None,
        environ={},
        clock=lambda: clock["now"],
    )
    with TestClient(app) as client:
        for moment, seconds in (
            (NOW - timedelta(minutes=5), 10),
            (NOW, 3),
            (NOW + timedelta(seconds=3), 0),
            (NOW + timedelta(seconds=4), 10),
        ):
            clock["now"] = moment
            near = client.get("/v1/centers/near", params={"zip": "02139"})
            one = client.get("/v1/centers/f:a")
            assert near.status_code == one.status_code == 200
            assert near.headers["cache-control"] == f"public, max-age={seconds}", moment
            assert one.headers["cache-control"] == f"public, max-age={seconds}", moment
