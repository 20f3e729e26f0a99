"""near(): nearest first, filters, freshness, and a useful empty answer, on a real Redis."""

from __future__ import annotations

import math
import random
import re
from datetime import timedelta
from typing import Any

import pytest

from aggregator.errors import InvalidQuery, UnknownZip
from aggregator.geography import haversine_mi
from aggregator.lookup import MAX_LIMIT, MAX_RADIUS_MI, get_center, near, plan_near
from aggregator.model import Center
from aggregator.store import Store
from tests.integration.factories import CAMBRIDGE, NOW, ago, center, observation

PAYMENTS = ["medicaid", "private", "self_pay", "sliding_scale", "free", "medicare", "military", "va"]


@pytest.fixture
def metro(store: Store) -> Store:
    """Four Cambridge-area centers with different services and availability."""
    lat, lon = CAMBRIDGE
    a = center("f", "detox-medicaid", lat + 0.01, lon, levels_of_care=["detox"], payment=["medicaid"], languages=["es"])
    b = center("f", "detox-private", lat + 0.02, lon, levels_of_care=["detox"], payment=["private"])
    c = center(
        "f",
        "res-sliding",
        lat + 0.03,
        lon,
        levels_of_care=["residential"],
        payment=["sliding_scale"],
        populations=["women"],
    )
    d = center("f", "far-otp", lat + 0.5, lon, levels_of_care=["otp"], payment=["medicaid"])
    obs = [
        observation(a, "detox", "available", beds_available=3, reported_at=ago(minutes=5)),
        observation(b, "detox", "available", beds_available=2, reported_at=ago(hours=5)),  # stale (15 min window)
        observation(c, "residential", "waitlist", waitlist_size=4, reported_at=ago(minutes=1)),
    ]
    store.replace_feed("f", [a, b, c, d], obs, now=NOW, source="pull")
    return store


def ids(answer: object) -> list[str]:
    return [h.id for h in answer.results]  # type: ignore[attr-defined]


def test_nearest_first_with_distances(metro: Store) -> None:
    answer = near(metro, zip="02139", now=NOW)
    assert ids(answer) == ["f:detox-medicaid", "f:detox-private", "f:res-sliding"]
    assert answer.origin.resolved_from == "zip"
    assert answer.origin.place == "Cambridge, MA"
    for hit in answer.results:
        expected = haversine_mi(*CAMBRIDGE, hit.center["latitude"], hit.center["longitude"])
        assert hit.distance_mi == pytest.approx(expected, rel=0.005, abs=0.01)
    assert near(metro, zip="02139", radius_mi=50, now=NOW).results[-1].id == "f:far-otp"


def test_latitude_longitude_origin(metro: Store) -> None:
    answer = near(metro, latitude=CAMBRIDGE[0], longitude=CAMBRIDGE[1], radius_mi=1.5, now=NOW)
    assert answer.origin.resolved_from == "coordinates"
    assert ids(answer) == ["f:detox-medicaid", "f:detox-private"]


def test_filters_or_within_a_group_and_across_groups(metro: Store) -> None:
    assert ids(near(metro, zip="02139", payment=["medicaid", "sliding_scale"], now=NOW)) == [
        "f:detox-medicaid",
        "f:res-sliding",
    ]
    assert ids(near(metro, zip="02139", payment=["medicaid", "private"], levels_of_care=["detox"], now=NOW)) == [
        "f:detox-medicaid",
        "f:detox-private",
    ]
    assert ids(near(metro, zip="02139", payment=["private"], languages=["es"], now=NOW)) == []
    assert ids(near(metro, zip="02139", populations=["women"], now=NOW)) == ["f:res-sliding"]


def test_stale_availability_reads_unknown_to_the_public_and_stale_to_operators(metro: Store) -> None:
    public = near(metro, zip="02139", levels_of_care=["detox"], now=NOW).results[1]
    [detox] = public.availability
    assert detox["status"] == "unknown"
    assert detox["beds_available"] is None
    assert detox["fresh"] is False
    assert detox["age_seconds"] == 5 * 3600
    operator = near(metro, zip="02139", levels_of_care=["detox"], now=NOW, audience="operator").results[1]
    [detox] = operator.availability
    assert (detox["status"], detox["beds_available"], detox["fresh"]) == ("available", 2, False)


def test_fresh_availability_is_live(metro: Store) -> None:
    [detox] = near(metro, zip="02139", now=NOW).results[0].availability
    got = (detox["status"], detox["beds_available"], detox["fresh"], detox["age_seconds"])
    assert got == ("available", 3, True, 300)


def test_available_only_keeps_fresh_open_availability(metro: Store) -> None:
    assert ids(near(metro, zip="02139", available_only=True, now=NOW)) == ["f:detox-medicaid"]
    later = NOW.replace(hour=NOW.hour + 1)
    assert ids(near(metro, zip="02139", available_only=True, now=later)) == []


def test_available_only_with_a_level_looks_at_that_level(store: Store) -> None:
    lat, lon = CAMBRIDGE
    a = center("f", "a", lat, lon, levels_of_care=["detox", "outpatient"])
    store.replace_feed(
        "f", [a], [observation(a, "outpatient", "available"), observation(a, "detox", "full")], now=NOW, source="pull"
    )
    assert ids(near(store, zip="02139", available_only=True, now=NOW)) == ["f:a"]
    assert ids(near(store, zip="02139", available_only=True, levels_of_care=["detox"], now=NOW)) == []


def test_available_only_reads_the_open_until_field_and_answers_as_the_observations_do(store: Store) -> None:
    lat, lon = CAMBRIDGE
    a = center("f", "a", lat, lon, levels_of_care=["detox", "outpatient"])
    b = center("f", "b", lat + 0.01, lon, levels_of_care=["detox"])
    store.replace_feed(
        "f",
        [a, b],
        [
            observation(a, "outpatient", "limited", reported_at=ago(minutes=10)),
            observation(a, "detox", "full"),
            observation(b, "detox", "available", reported_at=ago(hours=5)),  # past its window: not open
        ],
        now=NOW,
        source="pull",
    )
    fields = {cid: store.redis.hget(store.keys.center(cid), "s") for cid in ("f:a", "f:b")}
    assert fields["f:a"] is not None and fields["f:a"].startswith(b"outpatient=")
    assert fields["f:b"] is not None and fields["f:b"].startswith(b"detox=")
    asks = [{}, {"levels_of_care": ["detox"]}, {"levels_of_care": ["outpatient"]}]
    answers = [ids(near(store, zip="02139", available_only=True, now=NOW, **ask)) for ask in asks]
    assert answers == [["f:a"], [], ["f:a"]]
    for cid in ("f:a", "f:b"):  # facilities composed before the field existed: judged from the observations
        store.redis.hdel(store.keys.center(cid), "s")
    assert [ids(near(store, zip="02139", available_only=True, now=NOW, **ask)) for ask in asks] == answers


def test_available_only_leaves_out_an_open_figure_a_newer_full_one_hides(store: Store) -> None:
    # the feed said detox was available (a day's window); an operator's call since says full (4 hours): the
    # answer shows "full", so "available now" must not list the center until the operator's figure goes stale
    lat, lon = CAMBRIDGE
    a = center("f", "a", lat, lon, levels_of_care=["detox", "outpatient"])
    store.replace_feed(
        "f",
        [a],
        [observation(a, "detox", "available", beds_available=4, reported_at=ago(hours=7), freshness=86400)],
        now=NOW,
        source="pull",
    )
    assert ids(near(store, zip="02139", available_only=True, levels_of_care=["detox"], now=NOW)) == ["f:a"]
    store.record_observations(
        [
            observation(
                a, "detox", "full", beds_available=0, reported_at=ago(hours=1), freshness=4 * 3600, source="operator"
            )
        ]
    )
    later = {"now": NOW + timedelta(hours=3, minutes=1)}  # the operator's figure stale: the feed's shows again

    def found(**ask: Any) -> tuple[list[str], list[str]]:  # near()'s answer, and its search script's alone
        plan = plan_near(zip="02139", available_only=True, **ask)
        return ids(near(store, zip="02139", available_only=True, **ask)), [
            cid for cid, _, _ in store.search_documents(**plan.search())
        ]

    for ask in ({}, {"levels_of_care": ["detox"]}):
        assert found(now=NOW, **ask) == ([], [])
        assert found(**later, **ask) == (["f:a"], ["f:a"])
    [hit] = near(store, zip="02139", now=NOW).results
    [detox, _] = hit.availability
    assert (detox["status"], detox["source"]) == ("full", "operator")
    # the operator's call is the facility's own report, not the feed's: the source still reads as reported at 08:00
    assert [s["reported_at"] for s in hit.center["sources"]] == ["2026-11-27T08:00:00Z"]
    u = store.redis.hget(store.keys.center("f:a"), "s")
    assert u is not None and re.fullmatch(rb"detox=\d+:\d+", u)  # open from when the operator's figure goes stale
    # composed before the field (or with the u of the release before, which said only until when any open figure
    # was fresh): judged from the figures alike
    store.redis.hdel(store.keys.center("f:a"), "s")
    store.redis.hset(store.keys.center("f:a"), "u", "detox=1796536065781")
    for ask in ({}, {"levels_of_care": ["detox"]}):
        assert found(now=NOW, **ask) == ([], [])
        assert found(**later, **ask) == (["f:a"], ["f:a"])


def test_newest_source_wins_and_operator_reports_expire(store: Store) -> None:
    lat, lon = CAMBRIDGE
    a = center("f", "a", lat, lon, levels_of_care=["detox"])
    store.replace_feed(
        "f",
        [a],
        [observation(a, "detox", "full", beds_available=0, reported_at=ago(minutes=10))],
        now=NOW,
        source="pull",
    )
    store.record_observations(
        [
            observation(
                a,
                "detox",
                "available",
                beds_available=1,
                source="operator",
                reported_at=ago(minutes=2),
                freshness=3600,
                reported_by="op-7",
            )
        ]
    )
    [view] = near(store, zip="02139", now=NOW).results[0].availability
    assert (view["source"], view["status"], view["beds_available"]) == ("operator", "available", 1)
    # the operator report expired; the feed's own (fresh) report shows again
    later = NOW.replace(hour=NOW.hour + 2)
    store.record_observations([observation(a, "detox", "full", beds_available=0, reported_at=later)])
    [view] = near(store, zip="02139", now=later).results[0].availability
    assert (view["source"], view["status"]) == ("pull", "full")


def test_an_empty_answer_says_what_was_searched_and_what_would_help(metro: Store) -> None:
    answer = near(metro, zip="02139", levels_of_care=["otp"], radius_mi=10, now=NOW, helpline="1-800-662-4357")
    assert answer.results == []
    hint = answer.hint
    assert hint is not None
    assert hint["searched"]["filters"] == {"levels_of_care": ["otp"]}
    assert hint["searched"]["radius_mi"] == 10
    changes = {s["change"]: s for s in hint["suggestions"]}
    assert changes["wider_radius"]["nearest_mi"] == pytest.approx(34.5, abs=0.5)
    assert changes["drop_filter"]["filter"] == "levels_of_care"
    assert "1-800-662-4357" in hint["message"]


def test_nothing_anywhere_says_so(metro: Store) -> None:
    answer = near(metro, zip="99501", now=NOW)  # Anchorage
    assert answer.hint is not None
    assert answer.hint["suggestions"] == []
    assert "none would" in answer.hint["message"]


def test_radius_and_limit_are_capped(store: Store) -> None:
    lat, lon = CAMBRIDGE
    store.replace_feed("f", [center("f", str(i), lat + i / 2000, lon) for i in range(80)], [], now=NOW)
    answer = near(store, zip="02139", radius_mi=5000, limit=500, now=NOW)
    assert answer.radius_mi == MAX_RADIUS_MI
    assert answer.limit == MAX_LIMIT
    assert len(answer.results) == MAX_LIMIT
    assert answer.notes


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"zip": "1234"}, "zip"),
        ({"zip": "ABCDE"}, "zip"),
        ({"latitude": 95.0, "longitude": 0.0}, "lat"),
        ({"latitude": 42.0, "longitude": -200.0}, "lon"),
        ({}, "location"),
        ({"zip": "02139", "radius_mi": 0}, "radius_mi"),
        ({"zip": "02139", "limit": 0}, "limit"),
        ({"zip": "02139", "payment": ["gold bars"]}, "payment"),
        ({"zip": "02139", "languages": ["spanish"]}, "languages"),
        ({"zip": "02139", "latitude": 1.0, "longitude": 1.0}, "zip"),
    ],
)
def test_bad_queries_name_the_parameter(store: Store, kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(InvalidQuery) as err:
        near(store, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert err.value.parameter == parameter


def test_a_zip_that_does_not_exist_is_named(store: Store) -> None:
    with pytest.raises(UnknownZip, match="99999"):
        near(store, zip="99999", now=NOW)


def test_ghost_members_are_skipped(metro: Store) -> None:
    metro.redis.geoadd(metro.keys.geo, (-71.1042, 42.3650, "f:ghost"))
    assert "f:ghost" not in ids(near(metro, zip="02139", now=NOW))


def test_get_center_by_id(metro: Store) -> None:
    found = get_center(metro, "f:detox-medicaid", now=NOW)
    assert found is not None
    assert found["availability"][0]["beds_available"] == 3
    assert get_center(metro, "f:nope") is None


def nearest_by_hand(
    centers: list[Center],
    open_at: set[tuple[str, str]],
    radius: float,
    limit: int,
    pay: list[str],
    lvl: list[str],
    only: bool,
) -> list[tuple[float, str]]:
    """The answer near Cambridge worked out from the centers themselves: (distance, id), nearest first (a little
    inside the radius: Redis and haversine_mi differ on its edge). ``open_at``: (center, level) shown open."""
    lat0, lon0 = CAMBRIDGE
    found = sorted(
        (haversine_mi(lat0, lon0, c.latitude, c.longitude), c.id)  # type: ignore[arg-type]
        for c in centers
        if (not pay or set(pay) & set(c.services.payment))
        and (not lvl or set(lvl) & set(c.services.levels_of_care))
        and (not only or any((c.id, level) in open_at for level in (lvl or c.services.levels_of_care)))
    )
    return [e for e in found if e[0] <= radius - 0.02][:limit]


def test_outward_search_agrees_with_brute_force(store: Store) -> None:
    """Random centers and filters: near() returns exactly the nearest matching ones, in order."""
    rng = random.Random(11)
    lat0, lon0 = CAMBRIDGE
    centers, obs = [], []
    for i in range(600):
        lat = lat0 + rng.uniform(-0.6, 0.6)
        lon = lon0 + rng.uniform(-0.8, 0.8)
        c = center(
            "f",
            str(i),
            lat,
            lon,
            levels_of_care=rng.sample(["detox", "residential", "otp"], rng.randint(1, 2)),
            payment=rng.sample(["medicaid", "private", "self_pay"], rng.randint(1, 2)),
        )
        centers.append(c)
        if rng.random() < 0.5:
            obs.append(
                observation(
                    c,
                    c.services.levels_of_care[0],
                    rng.choice(["available", "full"]),
                    reported_at=ago(minutes=rng.choice([1, 60])),
                )
            )
    store.replace_feed("f", centers, obs, now=NOW, source="pull")
    open_at = {
        (o.center_id, o.level_of_care.value) for o in obs if o.status == "available" and o.reported_at > ago(minutes=15)
    }
    for trial in range(40):
        radius = rng.choice([1, 3, 10, 25, 40])
        limit = rng.choice([1, 5, 10, 30])
        pay = rng.sample(["medicaid", "private", "self_pay"], rng.randint(0, 2))
        lvl = rng.sample(["detox", "residential", "otp"], rng.randint(0, 2))
        only = trial % 3 == 0
        expected = nearest_by_hand(centers, open_at, radius, limit, pay, lvl, only)
        got = near(
            store,
            latitude=lat0,
            longitude=lon0,
            radius_mi=radius,
            limit=limit,
            payment=pay,
            levels_of_care=lvl,
            available_only=only,
            now=NOW,
        )
        got_ids = [h.id for h in got.results]
        assert got_ids[: len(expected)] == [e[1] for e in expected], (radius, limit, pay, lvl, only)
        assert len(got_ids) <= len(expected) + 1  # at most one more, exactly at the radius edge


def test_outward_search_is_exact_where_density_changes_with_distance(store: Store) -> None:
    """near.lua guesses its next radius from the density it found so far: wrong guesses (a few centers close by,
    a dense ring farther out, searches where few candidates pass) cost a search more, never a center missed or
    out of order. available_only and levels of care go the outward way (a level's own GEO index; two levels: two
    indexes merged); a payment filter this small is answered from its index set, with max_examined below the
    set's size it goes the outward way too."""
    rng = random.Random(5)
    lat0, lon0 = CAMBRIDGE
    centers, obs = [], []
    for i, (lo, hi, n) in enumerate([(0.2, 1.5, 4), (3.0, 4.0, 300), (9.0, 20.0, 60)]):
        for j in range(n):
            miles = rng.uniform(lo, hi)
            bearing = rng.uniform(0, 6.283)
            lat = lat0 + miles / 69.0 * math.cos(bearing)
            lon = lon0 + miles / (69.0 * math.cos(math.radians(lat0))) * math.sin(bearing)
            c = center(
                "g",
                f"{i}-{j}",
                lat,
                lon,
                levels_of_care=sorted(rng.sample(["detox", "outpatient", "residential"], rng.randint(1, 2))),
                payment=[rng.choice(PAYMENTS)],
            )
            centers.append(c)
            if rng.random() < 0.3:
                level = c.services.levels_of_care[0]
                obs.append(observation(c, level, rng.choice(["available", "full", "full"]), reported_at=ago(minutes=1)))
    store.replace_feed("g", centers, obs, now=NOW, source="pull")
    open_at = {(o.center_id, o.level_of_care.value) for o in obs if o.status == "available"}
    cases: list[tuple[float, int, list[str], list[str], bool]] = [
        (25, 10, [], [], False),
        (25, 30, [], [], False),
        (5, 10, [], [], False),
        (25, 10, [], [], True),
        (25, 20, [], ["detox"], False),
        (25, 10, [], ["detox", "residential"], False),
        (25, 5, [], ["detox", "residential"], True),
        (25, 10, ["self_pay"], [], False),
        (25, 40, ["medicaid"], [], False),
        (25, 20, PAYMENTS[:6], [], False),  # most centers pass; its sets hold more than 200
    ]
    skipped: list[tuple[Any, ...]] = []
    for radius, limit, pay, lvl, only in cases:
        expected = nearest_by_hand(centers, open_at, radius, limit, pay, lvl, only)
        assert len(expected) == limit, (radius, limit, pay, lvl, only)  # the answer is full: the search went far
        plan = plan_near(
            latitude=lat0,
            longitude=lon0,
            radius_mi=radius,
            limit=limit,
            payment=pay,
            levels_of_care=lvl,
            available_only=only,
            now=NOW,
        )
        for max_examined in (2000, 200):  # 200: under the sets' size of PAYMENTS[:6], which then searches outward
            found = store.search(**plan.search(), max_examined=max_examined)
            if found.stopped:
                skipped.append((radius, limit, pay, lvl, only, max_examined))
                continue  # examined its maximum before filling the answer: said so (test_bounded_*)
            assert [h[0] for h in found][: len(expected)] == [e[1] for e in expected], (radius, limit, pay, lvl, only)
    assert skipped == []
    # the case that searches outward at 200: its payment sets hold more than that (near.lua's selective path)
    assert sum(store.redis.scard(f"{store.keys.prefix}ix:pay:{v}") for v in PAYMENTS[:6]) > 200


@pytest.fixture
def dense(store: Store) -> Store:
    """3,000 centers within a few miles of Cambridge; one in 100 speaks Spanish, none Vietnamese."""
    lat0, lon0 = CAMBRIDGE
    rng = random.Random(7)
    cs = [
        center(
            "d",
            str(i),
            lat0 + rng.uniform(-0.05, 0.05),
            lon0 + rng.uniform(-0.05, 0.05),
            levels_of_care=["outpatient"],
            payment=["medicaid"],
            languages=["es"] if i % 100 == 0 else ["en"],
        )
        for i in range(3000)
    ]
    store.replace_feed("d", cs, [], now=NOW, source="pull")
    return store


def test_a_selective_filter_is_answered_from_its_index_exactly(dense: Store) -> None:
    lat0, lon0 = CAMBRIDGE
    answer = near(dense, zip="02139", languages=["es"], limit=50, radius_mi=25, now=NOW)
    assert answer.notes == []
    brute = sorted(
        (haversine_mi(lat0, lon0, c["latitude"], c["longitude"]), c["id"])
        for c in (get_center(dense, f"d:{i}", now=NOW) for i in range(0, 3000, 100))
        if c is not None
    )
    assert ids(answer) == [cid for _, cid in brute]  # all 30, nearest first
    for hit, (dist, _) in zip(answer.results, brute, strict=True):
        assert hit.distance_mi == pytest.approx(dist, abs=0.01)
    # no center speaks it: answered from an empty index at once, however dense the area
    assert ids(near(dense, zip="02139", languages=["vi"], radius_mi=25, now=NOW)) == []


def test_a_search_examines_a_bounded_number_of_candidates_and_says_when_it_stopped(dense: Store) -> None:
    # nothing open anywhere: available_only has to examine candidates one by one
    hits = dense.search(
        longitude=CAMBRIDGE[1],
        latitude=CAMBRIDGE[0],
        radius_mi=25,
        limit=10,
        available_only=True,
        now=NOW,
        max_examined=500,
    )
    assert hits == [] and hits.stopped
    answer = near(dense, zip="02139", available_only=True, radius_mi=25, now=NOW)  # the default bound (2,000)
    assert answer.results == []
    assert any("searched the nearest 2,000 centers only" in n for n in answer.notes)
    # an ordinary search is not cut short
    plain = dense.search(
        longitude=CAMBRIDGE[1], latitude=CAMBRIDGE[0], radius_mi=25, limit=10, now=NOW, max_examined=500
    )
    assert len(plain) == 10 and not plain.stopped
