"""Fields a facility or a record would keep at their usual value are left out, and index tokens are kept as
codes: a record keeps no feed (f: its id says it), and one that founded its facility no facility (fac); a
facility of its founding record alone keeps no member list (m), none without identifiers no x. What the
previous release wrote, every field spelled out, still reads, searches and checks alike."""

from __future__ import annotations

import pytest

from aggregator import staging
from aggregator.invariants import check
from aggregator.lookup import get_center, near
from aggregator.model import ExternalId, LevelOfCare, Payment, Population
from aggregator.store import (
    _CODED_TOKENS,
    GROUPS,
    Store,
    facility_members,
    facility_of_record,
    feed_of_record,
    token_code,
    token_of,
)
from tests.integration.factories import NOW, center, observation

HARBOR = (42.36470, -71.10420)
NEAR_HARBOR = (42.36490, -71.10400)


def fields(store: Store, key: str) -> set[str]:
    return {f.decode() for f in store.redis.hkeys(key)}


def test_a_record_that_founded_its_facility_keeps_no_facility_and_no_feed(store: Store) -> None:
    c = center("f", "a", *HARBOR, levels_of_care=["detox"])
    store.replace_feed("f", [c], [observation(c)], now=NOW, source="pull")
    kept = fields(store, store.keys.record("f:a"))
    assert "fac" not in kept and "f" not in kept and {"j", "h", "o"} <= kept
    assert len(store.redis.hget(store.keys.record("f:a"), "h") or b"") == 16  # the digest as bytes, not hex
    assert store.facility_of("f:a") == "f:a"
    assert store.facility_of("f:gone") is None
    assert fields(store, store.keys.center("f:a")) == {"j", "p", "t", "s"}  # no m, no x
    assert not check(store, now=NOW)
    digest = store.redis.hget(store.keys.record("f:a"), "h")
    assert digest is not None
    assert store.changed_records("f", {"f:a": digest}) == set()
    assert store.changed_records("f", {"f:a": b"\0" * 16}) == {"f:a"}
    assert store.changed_records("f", {"f:gone": digest}) == {"f:gone"}
    assert store.changed_records("g", {"f:a": digest}) == {"f:a"}  # another feed's record, by its id
    assert store.changed_records("f:", {"f:a": digest}) == {"f:a"}
    assert store.changed_records("f", {"f:a": digest.hex().encode()}) == {"f:a"}  # the hexadecimal form of before


def test_records_are_checked_by_their_place_in_each_piece(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """``changed_records`` sends ids and their digests apart (the digests end to end): each answer names the record
    at its own place, in pieces too."""
    centers = [center("f", str(i), HARBOR[0] + i * 0.01, HARBOR[1]) for i in range(7)]
    store.replace_feed("f", centers, [], now=NOW, source="pull")
    stored = {c.id: store.redis.hget(store.keys.record(c.id), "h") or b"" for c in centers}
    expected = dict(stored) | {"f:1": b"\1" * 16, "f:4": b"\2" * 16, "f:gone": b"\3" * 16, "g:5": stored["f:5"]}
    want = {"f:1", "f:4", "f:gone", "g:5"}
    assert store.changed_records("f", expected) == want
    monkeypatch.setattr(staging, "MEMBERS", 2)
    assert store.changed_records("f", expected) == want
    assert store.changed_records("f", stored) == set()


def test_a_linked_record_keeps_its_facility_and_the_facility_its_members_until_they_part(store: Store) -> None:
    frid = (ExternalId(system="samhsa", value="frid-1"),)
    directory = center("samhsa", "1", *HARBOR, name="Harbor House Recovery Center", external_ids=frid)
    board = center("beds", "H-9", *NEAR_HARBOR, name="Harbor House Recovery Ctr, Inc.", external_ids=frid)
    store.replace_feed("samhsa", [directory], [], now=NOW, source="pull", authority=10)
    store.replace_feed("beds", [board], [observation(board, beds_available=2)], now=NOW, source="scrape")
    assert store.redis.hget(store.keys.record("beds:H-9"), "fac") == b"samhsa:1"
    assert store.redis.hget(store.keys.center("samhsa:1"), "m") == b"beds:H-9 samhsa:1"
    assert store.facility_of("beds:H-9") == "samhsa:1"
    assert not check(store, now=NOW)
    hit = get_center(store, "beds:H-9", now=NOW)
    assert hit is not None and hit["id"] == "samhsa:1"
    store.replace_feed("beds", [], [], now=NOW, source="scrape")  # the bed board leaves: its founder alone again
    assert "m" not in fields(store, store.keys.center("samhsa:1"))
    assert store.redis.hget(store.keys.center("samhsa:1"), "x") == b'[["samhsa","frid-1"]]'
    unnamed = directory.model_copy(update={"external_ids": ()})
    store.replace_feed("samhsa", [unnamed], [], now=NOW, source="pull", authority=10)
    assert fields(store, store.keys.center("samhsa:1")) == {"j", "p", "t", "s"}  # its identifier gone: no x
    assert store.redis.smembers(store.keys.identifier("samhsa", "frid-1")) == set()
    assert not check(store, now=NOW)
    assert [h.id for h in near(store, zip="02139", now=NOW).results] == ["samhsa:1"]


def test_an_operator_parting_a_record_from_its_facility_leaves_both_compact(store: Store) -> None:
    frid = (ExternalId(system="samhsa", value="frid-1"),)
    directory = center("samhsa", "1", *HARBOR, name="Harbor House Recovery Center", external_ids=frid)
    board = center("beds", "H-9", *NEAR_HARBOR, name="Harbor House Recovery Ctr, Inc.")
    store.replace_feed("samhsa", [directory], [], now=NOW, source="pull", authority=10)
    store.replace_feed("beds", [board], [], now=NOW, source="scrape")
    assert store.facility_of("beds:H-9") == "samhsa:1"
    assert store.decide_match("beds:H-9", "samhsa:1", "different", by="dana", now=NOW) == "beds:H-9"
    assert "fac" not in fields(store, store.keys.record("beds:H-9"))
    assert store.facility_of("beds:H-9") == "beds:H-9"
    assert "m" not in fields(store, store.keys.center("samhsa:1"))
    assert "m" not in fields(store, store.keys.center("beds:H-9"))
    assert store.link_explanation("beds:H-9") is not None
    assert not check(store, now=NOW)
    assert store.decide_match("beds:H-9", "samhsa:1", "same", by="dana", now=NOW) == "samhsa:1"
    assert store.redis.hget(store.keys.record("beds:H-9"), "fac") == b"samhsa:1"
    assert store.redis.hget(store.keys.center("samhsa:1"), "m") == b"beds:H-9 samhsa:1"
    assert not store.redis.exists(store.keys.center("beds:H-9"))
    assert not check(store, now=NOW)


def test_what_the_previous_release_spelled_out_reads_searches_and_checks_alike(store: Store) -> None:
    """Every field written as the release before wrote it (fac, f, m, x, tokens in full, a hex digest): readers,
    filters, the invariant check and the next write take it; the write rewrites the record once (its digest is
    kept otherwise now) and leaves it compact."""
    cs = [
        center("f", sid, 42.36 + i / 1000, -71.1, levels_of_care=["detox"], payment=["medicaid"], languages=["es"])
        for i, sid in enumerate("ab")
    ]
    store.replace_feed("f", cs, [observation(c, beds_available=1) for c in cs], now=NOW, source="pull")
    for c in cs:
        store.redis.hset(
            store.keys.record(c.id), mapping={"fac": c.id, "f": "f", "h": "0123456789abcdef0123456789abcdef"}
        )
        store.redis.hset(store.keys.center(c.id), mapping={"m": c.id, "x": "[]", "t": "lang:es loc:detox pay:medicaid"})
    assert not check(store, now=NOW)
    assert store.facility_of("f:a") == "f:a"
    for kw in ({"payment": ["medicaid"]}, {"languages": ["es"]}, {"levels_of_care": ["detox"]}):
        found = near(store, zip="02139", now=NOW, available_only=True, **kw)  # type: ignore[arg-type]
        assert sorted(h.id for h in found.results) == ["f:a", "f:b"], kw
    assert near(store, zip="02139", now=NOW, payment=["medicare"]).results == []
    result = store.replace_feed("f", cs, [], now=NOW, source="pull")
    assert result.updated == 2  # the digest is kept otherwise now: each record written once more
    assert fields(store, store.keys.record("f:a")) == {"j", "h", "a", "o", "why"}
    assert store.redis.hget(store.keys.center("f:a"), "t") == b"ES a l"
    assert fields(store, store.keys.center("f:a")) == {"j", "p", "t", "s"}
    assert store.replace_feed("f", cs, [], now=NOW, source="pull").unchanged == 2
    assert sorted(h.id for h in near(store, zip="02139", now=NOW, languages=["es"]).results) == ["f:a", "f:b"]
    assert not check(store, now=NOW)


def test_a_staged_clean_up_keeps_what_a_facility_still_offers_whichever_way_its_tokens_are_kept(
    store: Store,
) -> None:
    """The clean-up after a staged write checks each deferred removal against the facility's tokens as they are
    now: coded, or spelled out by the release before."""
    c = center("f", "a", *HARBOR, levels_of_care=["detox"], payment=["medicaid"])
    store.replace_feed("f", [c], [], now=NOW, source="pull")
    script = store._cleanup
    for t in ("a l", "loc:detox pay:medicaid"):
        store.redis.hset(store.keys.center("f:a"), "t", t)
        store.redis.sadd(store.keys.stage("g1", "rm"), "ix:pay:medicaid\tf:a", "geo:loc:detox\tf:a")
        script(keys=[], args=[store.keys.prefix, "g1", 10, "rm"])
        assert store.redis.sismember(store.keys.index("pay:medicaid"), "f:a"), t
        assert store.redis.zscore(store.keys.geo_level("detox"), "f:a") is not None, t
    store.redis.hset(store.keys.center("f:a"), "t", "a")  # medicaid no longer offered: its removal applies
    store.redis.sadd(store.keys.stage("g1", "rm"), "ix:pay:medicaid\tf:a")
    script(keys=[], args=[store.keys.prefix, "g1", 10, "rm"])
    assert not store.redis.sismember(store.keys.index("pay:medicaid"), "f:a")


def test_every_vocabulary_token_has_a_code_that_reads_back() -> None:
    values = {"loc": LevelOfCare, "pay": Payment, "pop": Population}
    for prefix, vocabulary in values.items():
        for v in vocabulary:
            token = f"{prefix}:{v.value}"
            code = token_code(token)
            assert ":" not in code and len(code) == 1, f"{token} has no code: add it at the end of _CODED_TOKENS"
            assert token_of(code) == token
    assert set(GROUPS.values()) == {*values, "lang"}
    assert token_code("lang:es") == "ES" and token_of("ES") == "lang:es"
    assert token_code("pay:barter") == "pay:barter" and token_of("pay:barter") == "pay:barter"  # no code: as is
    assert token_code("lang:ES") == "lang:ES"
    assert token_of("zz") == "zz"  # a code this release does not know: as it is


def test_token_codes_keep_their_meaning() -> None:
    """Codes are stored: the table only grows at its end (this is its start as first released)."""
    first = [
        "loc:detox",
        "loc:residential",
        "loc:inpatient",
        "loc:php",
        "loc:iop",
        "loc:outpatient",
        "loc:otp",
        "loc:mat",
        "loc:recovery_housing",
        "loc:crisis",
        "loc:telehealth",
        "pay:medicaid",
        "pay:medicare",
        "pay:private",
        "pay:self_pay",
        "pay:sliding_scale",
        "pay:free",
        "pay:va",
        "pay:military",
        "pay:state_funded",
        "pay:ihs",
        "pay:payment_assistance",
        "pop:adults",
        "pop:young_adults",
        "pop:adolescents",
        "pop:women",
        "pop:men",
        "pop:pregnant",
        "pop:parents_with_children",
        "pop:veterans",
        "pop:lgbtq",
        "pop:deaf_hard_of_hearing",
        "pop:co_occurring",
        "pop:homeless",
        "pop:criminal_justice",
    ]
    assert list(_CODED_TOKENS[: len(first)]) == first
    assert [token_code(t) for t in first] == list("abcdefghijklmnopqrstuvwxyz012345678")


def test_the_fields_left_out_read_as_their_usual_values() -> None:
    assert feed_of_record("f:a") == "f" and feed_of_record("f:a:b") == "f" and feed_of_record("f:a", b"f") == "f"
    assert facility_of_record("f:a", b"d", None) == "f:a" and facility_of_record("f:a", None, None) == ""
    assert facility_of_record("g:b", b"d", b"f:a") == "f:a"
    assert facility_members("f:a", b"\x02", None) == {"f:a"} and facility_members("f:a", None, None) == set()
    assert facility_members("f:a", b"\x02", b"f:a g:b") == {"f:a", "g:b"}
