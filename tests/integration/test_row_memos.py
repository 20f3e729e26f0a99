"""Rows unchanged since a feed's last stored run are not normalized again (their memos), and lose nothing:
the report counts them as before, the store keeps their records, and any doubt normalizes them again."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
import redis

from aggregator.errors import StoreUnavailable
from aggregator.fetch import Fetcher, new_session
from aggregator.ingest import IngestReport, Pipeline, RowMemo, context_for, memo_fingerprint
from aggregator.invariants import check
from aggregator.lookup import near
from aggregator.model import Center
from aggregator.store import STAGE_ABOVE, Store, pack_memos, unpack_memos
from config import registry
from config.registry import FeedConfig
from tests.integration.factories import NOW
from tests.servers import LoopbackServer, Response

HEADER = "ID,Name,State,ZIP,Lat,Lon,Phone,Services,Detox beds,Updated\n"


def row(
    i: int,
    beds: int = 3,
    services: str = "DT;WIDGETS",
    phone: str = "617-555-0100 or 12345678",
    updated: str = "11/27/2026 9:45 AM",
) -> str:
    return f"C{i},Center {i},MA,02139,{42.36 + i / 10000:.5f},-71.10,{phone},{services},{beds},{updated}\n"


def body(lines: list[str]) -> bytes:
    return (HEADER + "".join(lines)).encode()


def feed_for(url: str, **extra: object) -> FeedConfig:
    [feed] = registry.parse(
        {
            "feed": [
                {
                    "id": "memo",
                    "format": "csv",
                    "url": url,
                    "allow_private": True,
                    "timezone": "America/New_York",
                    "freshness": "24h",
                    "timeout": 2,
                    "quarantine_share": 0.9,
                    "mapping": {
                        "fields": {
                            "source_id": "ID",
                            "name": "Name",
                            "state": "State",
                            "postal_code": "ZIP",
                            "latitude": "Lat",
                            "longitude": "Lon",
                            "phone": "Phone",
                            "levels_of_care": "Services",
                            "reported_at": "Updated",
                        },
                        "availability": [
                            {"constants": {"level_of_care": "detox"}, "fields": {"beds_available": "Detox beds"}}
                        ],
                    },
                    **extra,
                }
            ]
        }
    ).feeds
    return feed


@pytest.fixture
def partner() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    yield server
    server.stop()


@pytest.fixture
def pipeline(store: Store) -> Pipeline:
    clock = iter(NOW + timedelta(minutes=i) for i in range(10_000))
    return Pipeline(store, Fetcher(new_session("center-availability-tests/1.0")), clock=lambda: next(clock))


def serve(partner: LoopbackServer, lines: list[str]) -> str:
    partner.route("/beds.csv", Response(200, body(lines), {"Content-Type": "text/csv"}))
    return partner.url("/beds.csv")


def counts(report: IngestReport | None) -> dict[str, object]:
    """Everything a report says about the rows (what was stored aside)."""
    assert report is not None
    out = report.as_dict()
    out.pop("stored")
    out.pop("placement")
    return out


def test_an_unchanged_forced_run_keeps_every_row_and_reports_the_same(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    lines = [row(i) for i in range(20)] + ["C3,Center 3 again,MA,02139,42.36,-71.10,,DT,9,11/26/2026 9:45 AM\n"]
    feed = feed_for(serve(partner, lines))
    first = pipeline.run(feed)
    assert first.report is not None and first.report.stored is not None
    assert first.report.stored.added == 20
    assert first.report.unmapped["levels_of_care: WIDGETS"] == 20
    assert first.report.repeated == 1
    before = {k: store.redis.dump(k) for k in sorted(store.redis.keys(f"{store.keys.prefix}[rac]:*"))}

    again = pipeline.run(feed, force=True)
    assert again.status == "applied" and again.report is not None and again.report.stored is not None
    assert again.report.stored.unchanged == 20 and again.report.stored.added == again.report.stored.updated == 0
    assert again.report.stored.observations_written == 0
    assert counts(again.report) == counts(first.report)  # unmapped terms, dropped numbers, repeats: all counted
    after = {k: store.redis.dump(k) for k in sorted(store.redis.keys(f"{store.keys.prefix}[rac]:*"))}
    assert after == before  # records, facilities and figures untouched

    partner.route("/beds.csv", Response(200, body(list(reversed(lines))), {"Content-Type": "text/csv"}))
    reordered = pipeline.run(feed)
    assert reordered.report is not None and reordered.report.stored is not None
    assert reordered.report.stored.unchanged == 20
    assert counts(reordered.report)["unmapped"] == counts(first.report)["unmapped"]
    assert not check(store, now=NOW + timedelta(hours=1))


def test_only_the_changed_rows_are_normalized_and_the_rest_stay(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    feed = feed_for(serve(partner, [row(i) for i in range(10)]))
    pipeline.run(feed)
    lines = [row(i, beds=7) if i == 4 else row(i) for i in range(10) if i != 9] + [row(10)]
    serve(partner, lines)
    out = pipeline.run(feed)
    stored = out.report.stored if out.report else None
    assert stored is not None
    # C4's row changed only in its figure: normalized again, its record is the same
    assert (stored.unchanged, stored.updated, stored.added, stored.removed) == (9, 0, 1, 1)
    assert stored.observations_written == 2  # C4's new figure and C10's
    answer = {r.id: r for r in near(store, zip="02139", now=NOW + timedelta(hours=1)).results}
    assert "memo:C9" not in answer and "memo:C10" in answer
    assert answer["memo:C4"].availability[0]["beds_available"] == 7
    # the memos follow the run: a third, unchanged run keeps all ten
    third = pipeline.run(feed, force=True)
    assert third.report is not None and third.report.stored is not None and third.report.stored.unchanged == 10


def test_a_record_changed_behind_its_memo_is_normalized_again(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    feed = feed_for(serve(partner, [row(i) for i in range(5)]))
    pipeline.run(feed)
    raw = store.stored_records(["memo:C2"])["memo:C2"]
    moved = Center.model_validate_json(raw).model_copy(update={"latitude": 42.5, "longitude": -71.2})
    assert store.update_location(moved, NOW)  # a write the memo does not know (a geocode retry's): a new write token
    store.redis.delete(store.keys.record("memo:C3"))  # and a record lost: the same check finds it
    out = pipeline.run(feed, force=True)
    stored = out.report.stored if out.report else None
    assert stored is not None and stored.unchanged == 3 and stored.updated + stored.added == 2
    assert {"memo:C2", "memo:C3"} <= {r.id for r in near(store, zip="02139", now=NOW).results}
    assert not check(store, now=NOW + timedelta(hours=1))


def _count_checks(store: Store) -> list[int]:
    """How many records each check of kept records against the store asks about, as runs make them."""
    asked: list[int] = []
    ask = store._changed_records

    def counted(feed_id: str, expected: Any) -> set[str]:
        asked.append(len(expected))
        return ask(feed_id, expected)

    store._changed_records = counted  # type: ignore[method-assign]
    return asked


def test_memos_saved_under_the_standing_write_token_are_not_checked_against_the_records(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    """Every write of a feed's records gives the feed a new write token; memos saved with the token their run's write
    set need no check while it stands. A check that finds every kept record as its memo says vouches for the memos
    under the token it stood through."""
    asked = _count_checks(store)
    feed = feed_for(serve(partner, [row(i) for i in range(6)]))
    pipeline.run(feed)
    token = store.redis.hget(store.keys.feed_meta("memo"), "w")
    assert token and store.redis.hget(store.keys.feed_rows("memo"), "_w") == token
    unchanged = pipeline.run(feed, force=True)
    assert unchanged.report is not None and unchanged.report.stored is not None
    assert unchanged.report.stored.unchanged == 6 and asked == []  # kept without asking
    assert store.redis.hget(store.keys.feed_meta("memo"), "w") == token  # nothing written: the token stands
    # another write of the feed (a record of it placed anew) gives a new token: the next run checks every kept record
    other = Center.model_validate_json(store.stored_records(["memo:C5"])["memo:C5"])
    store.replace_feed("memo", [other.model_copy(update={"name": "Center 5 renamed"})], [], now=NOW, partial=True)
    assert store.redis.hget(store.keys.feed_meta("memo"), "w") != token
    again = pipeline.run(feed, force=True)
    assert asked == [6]
    assert again.report is not None and again.report.stored is not None
    assert again.report.stored.unchanged == 5 and again.report.stored.updated == 1  # C5 normalized and written again
    # that write set a token its memos were saved with: the run after asks nothing
    pipeline.run(feed, force=True)
    assert asked == [6]


def test_a_check_that_finds_every_record_as_its_memo_says_vouches_for_the_memos(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    asked = _count_checks(store)
    feed = feed_for(serve(partner, [row(i) for i in range(4)]))
    pipeline.run(feed)
    store.redis.hset(store.keys.feed_meta("memo"), "w", "a-write-that-changed-none-of-these")
    pipeline.run(feed, force=True)
    assert asked == [4]  # checked: all as their memos say
    assert store.redis.hget(store.keys.feed_rows("memo"), "_w") == b"a-write-that-changed-none-of-these"
    pipeline.run(feed, force=True)
    assert asked == [4]  # vouched: not asked again


def test_new_settings_or_a_stale_write_void_the_memos(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    feed = feed_for(serve(partner, [row(i) for i in range(5)]))
    pipeline.run(feed)
    ctx = context_for(feed, NOW)
    assert len(store.row_memos("memo", memo_fingerprint(ctx))) == 5
    changed = dataclasses.replace(feed, freshness_seconds=3600)  # figures are judged by another window now
    assert store.row_memos("memo", memo_fingerprint(context_for(changed, NOW))) == {}
    out = pipeline.run(changed, force=True)
    assert out.report is not None and out.report.stored is not None
    assert out.report.stored.observations_written == 5  # every row normalized again under the new window
    assert near(store, zip="02139", now=NOW).results[0].availability[0]["freshness_seconds"] == 3600
    # a staged write of the feed that died before its flip: its next run rewrites everything
    store.redis.hset(store.keys.staging, "1.dead", "w")
    store.redis.set(store.keys.stage("1.dead", "feed"), "memo")
    assert store.row_memos("memo", memo_fingerprint(context_for(changed, NOW))) == {}


def test_a_memo_never_keeps_a_report_past_the_age_the_feed_keeps(store: Store, partner: LoopbackServer) -> None:
    times = iter([NOW, NOW + timedelta(days=1), NOW + timedelta(days=3)])
    pipeline = Pipeline(store, Fetcher(new_session("t")), clock=lambda: next(times))
    feed = feed_for(serve(partner, [row(i) for i in range(3)]), max_report_age="2d")
    first = pipeline.run(feed)
    assert first.report is not None and first.report.observations == 3
    kept = pipeline.run(feed, force=True)
    assert kept.report is not None and kept.report.stored is not None and kept.report.stored.unchanged == 3
    late = pipeline.run(feed, force=True)  # the reports are now older than two days: normalized, and refused
    assert late.report is not None and late.report.observations == 0
    assert late.report.problems_by_reason  # each refusal counted with its reason


def test_a_held_run_with_kept_rows_holds_every_record(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    feed = feed_for(serve(partner, [row(i) for i in range(10)]), quarantine_share=0.3)
    pipeline.run(feed)
    serve(partner, [row(i) for i in range(4)])  # six of ten gone: held, though four rows are unchanged
    assert pipeline.run(feed).status == "held"
    held = store.held_snapshot("memo")
    assert held is not None
    assert sorted(c["id"] for c in json.loads(held)["centers"]) == [f"memo:C{i}" for i in range(4)]
    assert pipeline.release(feed, by="operator").status == "applied"
    assert store.feed_members("memo") == {f"memo:C{i}" for i in range(4)}
    assert store.redis.exists(store.keys.feed_rows("memo")) == 0  # a release starts the memos afresh


def test_row_memos_round_trip() -> None:
    from aggregator.model import Rejection

    memo = RowMemo(
        "f:1",
        "1",
        b"abc",
        5,
        2,
        (Rejection(record="1", field="phone", reason="unreadable"),),
        (("payment", ("barter",)),),
        ("swapped coordinates",),
        ("detox",),
    )
    assert RowMemo.decode(memo.encode()) == memo
    assert RowMemo.decode(memo.encode("f"), "f") == memo  # kept without its center id: the feed's own of "1"
    assert orjson.loads(memo.encode("f"))[0] is None
    assert RowMemo.decode(memo.encode("g"), "g") == memo  # another feed's id: kept as it is
    plain = RowMemo("f:1", "1", b"abc", None, 0)
    assert orjson.loads(plain.encode("f")) == [None, "1", b"abc".hex(), None, 0]  # nothing noticed: no empty lists
    assert RowMemo.decode(plain.encode("f"), "f") == plain


def test_rows_without_their_own_report_time_are_reported_again_by_every_run(
    store: Store, partner: LoopbackServer
) -> None:
    """The fetch is the report of a row that gives no time: each run reports it again at its own time, as a full
    normalize does (a row unchanged since the last run is no less current than the rest of the file). Its memo keeps
    its figures, so an unchanged such row is reported again without being normalized again."""
    times = iter([NOW, NOW + timedelta(hours=20), NOW + timedelta(hours=30)])
    said: list[str] = []
    pipeline = Pipeline(store, Fetcher(new_session("t")), clock=lambda: next(times))
    lines = [row(i, updated="") for i in range(3)]
    feed = feed_for(serve(partner, lines))
    pipeline.run(feed)
    memos = [
        RowMemo.decode(m, "memo") for m in store.row_memos("memo", memo_fingerprint(context_for(feed, NOW))).values()
    ]
    assert sorted(m.figures for m in memos) == [(("detox", "available", 3, None, None, None, None, ""),)] * 3
    assert {m.latest_ms for m in memos} == {None}  # reported as of each run, not of the first

    serve(partner, [row(0, beds=9, updated=""), *lines[1:]])
    second = pipeline.run(feed, progress=said.append)
    assert second.report is not None and second.report.stored is not None
    assert "(2 unchanged rows not normalized again)" in " ".join(said)
    assert second.report.stored.observations_written == 3  # every figure reported at the run's time
    assert second.report.observations == 3 and second.report.newest_data_at == NOW + timedelta(hours=20)
    later = near(store, zip="02139", now=NOW + timedelta(hours=30)).results
    assert {h.id: h.availability[0]["status"] for h in later} == {f"memo:C{i}": "available" for i in range(3)}

    third = pipeline.run(feed, force=True)  # the same file again: every row from its memo
    assert third.report is not None and third.report.stored is not None
    assert third.report.stored.unchanged == 3 and third.report.stored.observations_written == 3
    # fresh for a day from this run, not from the run that first stored them
    still = near(store, zip="02139", now=NOW + timedelta(hours=53), audience="operator").results
    assert {h.id: (h.availability[0]["fresh"], h.availability[0]["beds_available"]) for h in still} == {
        "memo:C0": (True, 9),
        "memo:C1": (True, 3),
        "memo:C2": (True, 3),
    }
    assert {h.availability[0]["reported_at"] for h in still} == {"2026-11-28T21:00:00Z"}
    assert {h.availability[0]["changed_at"] for h in still} == {"2026-11-28T11:00:00Z", "2026-11-27T15:00:00Z"}
    assert not check(store, now=NOW + timedelta(hours=31))


@pytest.mark.parametrize("stage_above", [STAGE_ABOVE, 2], ids=["one transaction", "staged"])
def test_rows_reported_again_from_their_memos_store_what_normalizing_them_again_stores(
    redis_url: str, partner: LoopbackServer, stage_above: int
) -> None:
    """The same runs into two stores, one keeping row memos and one normalizing every row every run: what each
    stores of every record (figures with their times, facilities, open spans) is the same, byte for byte. The rows
    mix the cases a memo must tell apart: no time at all, a time a little ahead of the clock (read as the run's
    time, so never reported again from a memo), a rejected figure (its last good one stays, its time unchanged), a
    repeated id and an id that leaves. A row with its own time is kept without writing anything, its checked time
    included (the tests above): C2's time stops being ahead after the first run, so from the third run on its
    figure is kept as it stood and only its checked time differs."""
    client = Store.from_url(redis_url).redis
    client.flushdb()
    memo_store = Store(client, prefix="m:", stage_above=stage_above)
    plain_store = Store(client, prefix="p:", stage_above=stage_above)
    starts = [NOW + timedelta(hours=h) for h in (0, 1, 2, 3, 4)]
    clocks = {name: iter(starts) for name in ("m", "p")}
    memo_run = Pipeline(memo_store, Fetcher(new_session("t")), clock=lambda: next(clocks["m"]))
    plain_run = Pipeline(plain_store, Fetcher(new_session("t")), clock=lambda: next(clocks["p"]))
    ahead = "11/27/2026 10:05 AM"  # 15:05 UTC: five minutes ahead of the first run, read as its time
    first = [
        row(0, updated=""),
        row(1, beds=0, updated=""),
        row(2, updated=ahead),
        row(3, services="DT;OP", updated=""),
        row(4, beds=5, updated=""),
        row(5, updated=""),
        "C5,Center 5,MA,02139,42.36,-71.10,617-555-0100,DT,7,\n",  # the same id again, saying as much
        row(6, services="DT;RES", updated=""),
    ]
    then = [*first[:4], row(4, beds=-2, updated=""), *first[5:7]]  # C4's count rejected; C6 leaves
    said: list[str] = []
    feed = feed_for(serve(partner, first))
    for i, lines in enumerate([first, then, then, list(reversed(then)), then]):
        serve(partner, lines)
        plain_store.drop_row_memos("memo")
        memo_outcome = memo_run.run(feed, force=True, progress=said.append)
        plain_outcome = plain_run.run(feed, force=True)
        assert memo_outcome.status == plain_outcome.status == "applied", i
        assert counts(memo_outcome.report) == counts(plain_outcome.report), i
        timed_kept = {"memo:C2"} if i >= 2 else set()
        memo_stored, plain_stored = memo_outcome.report.stored, plain_outcome.report.stored
        assert memo_stored.observations_written == plain_stored.observations_written - len(timed_kept), i
        for name in ("observations_stale", "observations_pruned", "removed", "unchanged"):
            assert getattr(memo_stored, name) == getattr(plain_stored, name), (i, name)
        for kind in ("a", "c", "r"):
            for cid in (f"memo:C{n}" for n in range(7)):
                if kind == "a" and cid in timed_kept:
                    continue
                assert client.hgetall(f"m:{kind}:{cid}") == client.hgetall(f"p:{kind}:{cid}"), (i, kind, cid)
        for when in (starts[i], starts[i] + timedelta(hours=23, minutes=30), starts[i] + timedelta(hours=25)):
            for audience in ("public", "operator"):
                for available_only in (False, True):
                    a, b = (_answer(s, when, audience, available_only, timed_kept) for s in (memo_store, plain_store))
                    assert a == b, (i, when, audience, available_only)
                    assert a["results"] or available_only, (i, when)
    assert "(4 unchanged rows not normalized again)" in " ".join(said)  # C0, C1, C3 and C5
    assert not check(memo_store, now=starts[-1]) and not check(plain_store, now=starts[-1])


def _answer(store: Store, when: datetime, audience: str, available_only: bool, timed_kept: set[str]) -> dict[str, Any]:
    """A near answer as a dict, the checked time of ``timed_kept`` records' figures left out."""
    answer = near(store, zip="02139", now=when, audience=audience, available_only=available_only).as_dict()  # type: ignore[arg-type]
    for hit in answer["results"]:
        if hit["id"] in timed_kept:
            for figure in hit["availability"]:
                figure.pop("checked_at")
    return answer


def test_a_center_placed_without_the_feeds_coordinates_is_placed_again_by_every_run(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    lines = [row(0), "C1,Center 1,MA,02139,,,617-555-0100,DT,3,11/27/2026 9:45 AM\n"]  # no coordinates: its ZIP
    feed = feed_for(serve(partner, lines))
    pipeline.run(feed)
    memos = store.row_memos("memo", memo_fingerprint(context_for(feed, NOW)))
    assert [RowMemo.decode(m, "memo").center_id for m in memos.values()] == ["memo:C0"]


def test_a_write_that_cannot_keep_rows_sends_them_all(
    store: Store, partner: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A staged write of the feed died between reading its memos and writing (its next large write rewrites every
    record): the store refuses the kept rows and the run normalizes and sends them all."""
    from aggregator.store import KeptRecordsRefused

    staged = Store(store.redis, store.keys.prefix, stage_above=0)  # every write staged, as a large feed's
    clock = iter(NOW + timedelta(minutes=i) for i in range(100))
    pipeline = Pipeline(staged, Fetcher(new_session("t")), clock=lambda: next(clock))
    feed = feed_for(serve(partner, [row(i) for i in range(4)]))
    pipeline.run(feed)
    memos = staged.row_memos("memo", memo_fingerprint(context_for(feed, NOW)))
    assert len(memos) == 4
    staged.redis.hset(staged.keys.staging, "1.dead", "w")
    staged.redis.set(staged.keys.stage("1.dead", "feed"), "memo")
    refused: list[str] = []
    replace = staged.replace_feed

    def replace_feed(*args: Any, **kwargs: Any) -> Any:
        try:
            return replace(*args, **kwargs)
        except KeptRecordsRefused as exc:
            refused.append(str(exc))
            raise

    monkeypatch.setattr(staged, "replace_feed", replace_feed)
    monkeypatch.setattr(staged, "row_memos", lambda feed_id, fingerprint: memos)  # the memos as read before
    serve(partner, [row(i) for i in range(5)])  # four rows unchanged, one new
    out = pipeline.run(feed)
    assert refused and "died half-way" in refused[0]
    assert out.status == "applied" and out.report is not None and out.report.stored is not None
    assert out.report.stored.unchanged == 0  # every record sent again, and rewritten by the take-over
    assert staged.feed_members("memo") == {f"memo:C{i}" for i in range(5)}
    assert staged.redis.hgetall(staged.keys.staging) == {}  # the dead write was taken over and finished
    assert not check(staged, now=NOW + timedelta(hours=1))


def test_the_memos_are_exactly_the_current_rows_after_a_run_that_changed_some(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    """A run that changed some rows keeps the memos of the others as they were and drops those of rows gone: the
    memos left are the rows of the file as it is now, and the next run keeps every row."""
    feed = feed_for(serve(partner, [row(i) for i in range(6)]))
    pipeline.run(feed)
    fp = memo_fingerprint(context_for(feed, NOW))
    first = store.row_memos("memo", fp)
    assert len(first) == 6
    serve(partner, [row(i, beds=8) if i == 2 else row(i) for i in range(5)])  # C2 changed, C5 gone
    pipeline.run(feed)
    second = store.row_memos("memo", fp)
    assert len(second) == 5
    assert len(set(first) & set(second)) == 4  # the four unchanged rows kept their memos, byte for byte
    assert all(first[r] == second[r] for r in set(first) & set(second))
    assert {RowMemo.decode(m, "memo").center_id for m in second.values()} == {f"memo:C{i}" for i in range(5)}
    third = pipeline.run(feed, force=True)
    assert third.report is not None and third.report.stored is not None
    assert third.report.stored.unchanged == 5 and third.report.stored.observations_written == 0


def test_a_run_that_changed_one_row_writes_only_the_buckets_of_its_memos(
    store: Store, partner: LoopbackServer, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = feed_for(serve(partner, [row(i) for i in range(40)]))
    pipeline.run(feed)
    fp = memo_fingerprint(context_for(feed, NOW))
    first = store.row_memos("memo", fp)
    assert len(first) == 40 and len(store.redis.hkeys(store.keys.feed_rows("memo"))) > 10
    packed: list[int] = []

    def counted(memos: Any) -> bytes:
        packed.append(len(memos))
        return pack_memos(memos)

    monkeypatch.setattr("aggregator.store.pack_memos", counted)
    serve(partner, [row(i, beds=8) if i == 2 else row(i) for i in range(40)])
    pipeline.run(feed)
    assert 1 <= len(packed) <= 2  # the old row's bucket and the new one's (one when they share it)
    second = store.row_memos("memo", fp)
    assert len(second) == 40 and len(set(first) - set(second)) == 1


def test_memos_dropped_or_replaced_during_a_run_are_not_patched_by_it(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    """A run writes the buckets it changed only while the memos are still those it read: memos a release dropped
    meanwhile stay dropped, and those another run made under other settings are not touched."""
    feed = feed_for(serve(partner, [row(i) for i in range(20)]))
    pipeline.run(feed)
    fp = memo_fingerprint(context_for(feed, NOW))
    given = store.row_memos("memo", fp)
    changed = {**given, b"x" * 16: RowMemo("memo:C99", "C99", b"d", None, 0).encode("memo")}
    key = store.keys.feed_rows("memo")
    store.drop_row_memos("memo")
    store.save_row_memos("memo", fp, changed, given)
    assert store.redis.exists(key) == 0
    store.save_row_memos("memo", "other settings", given)  # another run, under other settings, wrote them whole
    before = store.redis.hgetall(key)
    store.save_row_memos("memo", fp, changed, given)
    assert store.redis.hgetall(key) == before
    assert store.row_memos("memo", fp) == {} and store.row_memos("memo", "other settings") == given


def test_a_damaged_bucket_is_written_again_and_one_of_no_row_dropped(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    lines = [row(i) for i in range(40)]
    feed = feed_for(serve(partner, lines))
    pipeline.run(feed)
    fp = memo_fingerprint(context_for(feed, NOW))
    whole = store.row_memos("memo", fp)
    key = store.keys.feed_rows("memo")
    damaged = sorted(n for n in store.redis.hkeys(key) if n[:2] == b"b:")[0]
    store.redis.hset(key, mapping={damaged: b"not deflated", "b:zz": b"not deflated either"})
    assert len(store.row_memos("memo", fp)) < 40
    serve(partner, [row(0, beds=8), *lines[1:]])
    pipeline.run(feed)
    assert b"b:zz" not in store.redis.hkeys(key)
    after = store.row_memos("memo", fp)
    assert len(after) == 40 and len(set(whole) & set(after)) == 39


def test_damaged_memos_are_a_shortcut_lost_not_a_failed_run(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    feed = feed_for(serve(partner, [row(i) for i in range(3)]))
    pipeline.run(feed)
    fp = memo_fingerprint(context_for(feed, NOW))
    key = store.keys.feed_rows("memo")
    for bucket in store.redis.hkeys(key):
        if bucket[:2] == b"b:":
            store.redis.hset(key, bucket, b"not deflated")
    assert store.row_memos("memo", fp) == {}
    again = pipeline.run(feed, force=True)
    assert again.status == "applied" and again.report is not None and again.report.stored is not None
    assert again.report.stored.unchanged == 3  # every row normalized again, nothing rewritten
    assert len(store.row_memos("memo", fp)) == 3  # and its memos kept afresh


def test_a_changed_mapping_or_header_voids_the_memos_of_a_csv_feed(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    """A CSV row is known by its cells under the header and the mapping it was read with: a feed that maps its
    columns otherwise, or a file whose header names them otherwise, maps every row again."""
    lines = [row(i) for i in range(3)]
    feed = feed_for(serve(partner, lines))
    pipeline.run(feed)
    assert {h.center["name"] for h in near(store, zip="02139", now=NOW).results} == {"Center 0", "Center 1", "Center 2"}
    names = {**feed.mapping.fields, "name": "Services"}  # the name from another column
    remapped = dataclasses.replace(feed, mapping=dataclasses.replace(feed.mapping, fields=names))
    out = pipeline.run(remapped, force=True)
    assert out.report is not None and out.report.stored is not None and out.report.stored.updated == 3
    assert {h.center["name"] for h in near(store, zip="02139", now=NOW).results} == {"DT;WIDGETS"}
    # the same cells under a header that names two columns the other way round: every row read anew
    swapped = body(lines).replace(b"ID,Name,", b"ID,Services,", 1).replace(b",Phone,Services,", b",Phone,Name,", 1)
    partner.route("/beds.csv", Response(200, swapped, {}))
    again = pipeline.run(remapped, force=True)
    assert again.report is not None and again.report.stored is not None
    assert again.report.stored.updated == 3  # the name from the column now headed Services
    assert {h.center["name"] for h in near(store, zip="02139", now=NOW).results} == {f"Center {i}" for i in range(3)}
    kept = pipeline.run(remapped, force=True)
    assert kept.report is not None and kept.report.stored is not None and kept.report.stored.unchanged == 3


def test_packed_memos_round_trip_whatever_their_bytes() -> None:
    memos = {b"": b"", b"\x00" * 16: b'[null,"1"]', bytes(range(256)) * 2: b"\n" * 70_000, b"k": b"x"}
    assert unpack_memos(pack_memos(memos)) == memos
    assert unpack_memos(pack_memos({})) == {}


def test_memos_kept_one_a_field_by_the_previous_release_are_not_read(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    """The previous release kept each memo as a field of the rows hash: under the same fingerprint they are not
    taken as memos (every row is normalized again) and the run keeps its memos packed."""
    feed = feed_for(serve(partner, [row(i) for i in range(4)]))
    pipeline.run(feed)
    fp = memo_fingerprint(context_for(feed, NOW))
    memos = store.row_memos("memo", fp)
    assert len(memos) == 4
    key = store.keys.feed_rows("memo")
    store.redis.delete(key)
    store.redis.hset(key, mapping={"_fp": fp, **memos})  # as the previous release kept them
    assert store.row_memos("memo", fp) == {}
    again = pipeline.run(feed, force=True)
    assert again.report is not None and again.report.stored is not None
    assert again.report.stored.unchanged == 4  # normalized again: the same records, none rewritten
    assert all(name in (b"_fp", b"_w") or name.startswith(b"b:") for name in store.redis.hkeys(key))
    assert store.row_memos("memo", fp) == memos


def _two_level_feed(url: str) -> FeedConfig:
    """``feed_for``'s feed, its rows giving detox and residential beds and no time."""
    fields = {
        "source_id": "ID",
        "name": "Name",
        "state": "State",
        "postal_code": "ZIP",
        "latitude": "Lat",
        "longitude": "Lon",
        "levels_of_care": "Services",
    }
    levels = [
        {"constants": {"level_of_care": "detox"}, "fields": {"beds_available": "Detox"}},
        {"constants": {"level_of_care": "residential"}, "fields": {"beds_available": "Res"}},
    ]
    return feed_for(url, mapping={"fields": fields, "availability": levels})


def _serve_two(partner: LoopbackServer, res: str) -> str:
    text = f"ID,Name,State,ZIP,Lat,Lon,Services,Detox,Res\nX,Center X,MA,02139,42.36,-71.10,DT;RES,3,{res}\n"
    partner.route("/two.csv", Response(200, text.encode(), {"Content-Type": "text/csv"}))
    return partner.url("/two.csv")


def _residential(store: Store, when: datetime) -> tuple[str, bool]:
    [hit] = near(store, zip="02139", now=when, audience="operator").results
    [res] = [a for a in hit.availability if a["level_of_care"] == "residential"]
    return res["status"], res["fresh"]


@pytest.mark.parametrize("how", ["partial run", "memos not saved"])
def test_a_level_the_partner_withdraws_after_a_run_that_kept_no_memos_is_dropped(
    store: Store, partner: LoopbackServer, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A run that writes rows but keeps no memos (some of its files failed, or saving them failed) leaves none
    behind: the memo of a row's earlier text would keep the record as stored on a later run sending that text
    again, and the level the partner has withdrawn since would stay live instead of being dropped."""
    times = iter(NOW + timedelta(hours=h) for h in range(10))
    pipeline = Pipeline(store, Fetcher(new_session("t")), clock=lambda: next(times))
    feed = _two_level_feed(_serve_two(partner, res=""))
    assert pipeline.run(feed).status == "applied"  # detox only: its memo is kept

    _serve_two(partner, res="5")  # the same center, with residential beds too
    if how == "partial run":
        fetch_all = pipeline._fetch_all

        def one_file_failed(*args: Any) -> Any:
            documents, first, failed = fetch_all(*args)
            return documents, first, [*failed, "page 2: 404"]

        monkeypatch.setattr(pipeline, "_fetch_all", one_file_failed)
        assert pipeline.run(feed).status == "partial"
        monkeypatch.undo()
    else:

        def unavailable(*args: Any, **kwargs: Any) -> None:
            raise StoreUnavailable("Timeout writing to socket (injected)")

        monkeypatch.setattr(store, "save_row_memos", unavailable)
        assert pipeline.run(feed).status == "applied"
        monkeypatch.undo()
    assert _residential(store, NOW + timedelta(hours=1, minutes=30)) == ("available", True)
    assert store.row_memos("memo", memo_fingerprint(context_for(feed, NOW))) == {}

    _serve_two(partner, res="")  # withdrawn: the first text again
    assert pipeline.run(feed).status == "applied"
    assert _residential(store, NOW + timedelta(hours=2, minutes=30)) == ("unknown", False)


@pytest.mark.parametrize("how", ["stopped before its memos", "clean-up failed after the flip"])
def test_a_run_that_stops_after_its_write_leaves_no_memo_of_the_rows_it_changed(
    store: Store, partner: LoopbackServer, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A run whose write is done but whose memos are not (its worker killed in between, or a staged write's
    clean-up failing after the flip made it visible) leaves the memos suspended, not those of the rows' earlier
    texts: a later run sending such a text again normalizes it, and the level the partner withdrew is dropped."""
    times = iter(NOW + timedelta(hours=h) for h in range(10))
    pipeline = Pipeline(store, Fetcher(new_session("t")), clock=lambda: next(times))
    feed = _two_level_feed(_serve_two(partner, res=""))
    assert pipeline.run(feed).status == "applied"  # detox only: its memo is kept
    fingerprint = memo_fingerprint(context_for(feed, NOW))
    assert store.row_memos("memo", fingerprint)

    _serve_two(partner, res="5")  # the same center, with residential beds too
    if how == "stopped before its memos":

        def killed(*args: Any) -> None:
            raise KeyboardInterrupt("the worker stopped here")

        monkeypatch.setattr(pipeline, "_remember_rows", killed)
        with pytest.raises(KeyboardInterrupt):
            pipeline.run(feed)
    else:
        store.stage_above = 0  # staged: the flip makes it visible, then the clean-up fails

        def lost(step: str) -> None:
            if step == "flipped":
                raise redis.ConnectionError("connection lost during the clean-up (injected)")

        store.on_stage_step = lost
        with pytest.raises(StoreUnavailable):
            pipeline.run(feed)
        store.on_stage_step = lambda step: None
        store.stage_above = STAGE_ABOVE
    monkeypatch.undo()
    assert _residential(store, NOW + timedelta(hours=1, minutes=30)) == ("available", True)
    assert store.row_memos("memo", fingerprint) == {}  # suspended: no run reads them

    _serve_two(partner, res="")  # withdrawn: the first text again
    assert pipeline.run(feed).status == "applied"
    assert _residential(store, NOW + timedelta(hours=2, minutes=30)) == ("unknown", False)
    assert store.row_memos("memo", fingerprint)  # this run's memos, read again
    store.finish_staged()  # the sweep's part: the clean-up the failed run left
    assert check(store, now=NOW + timedelta(hours=2, minutes=30), quiet=True) == []


def test_a_row_not_read_for_what_the_other_rows_say_is_never_kept_from_its_memo(
    store: Store, partner: LoopbackServer, pipeline: Pipeline
) -> None:
    """A row with more filled cells than the header is read when most rows run past it (a column left unnamed)
    and rejected when few do (values shifted by a comma): the same cells, judged by the rest of the file. A memo
    made where it was read never keeps it where it is not."""
    past = [row(i).rstrip("\n") + ",x\n" for i in range(5)]  # each runs one cell past the header
    feed = feed_for(serve(partner, past), min_accepted_share=0.1)
    first = pipeline.run(feed)
    assert first.report is not None and first.report.accepted == 5
    serve(partner, [past[0]] + [row(i) for i in range(1, 5)])  # C0 alone runs past: its values may be shifted
    second = pipeline.run(feed, force=True)
    assert second.report is not None and (second.report.accepted, second.report.rejected) == (4, 1)
    assert "more filled cell" in str(second.report.as_dict()["rejections"])
    assert "memo:C0" not in store.feed_members("memo")


def _harbor_feed(partner: LoopbackServer, feed_id: str, name: str, authority: int) -> FeedConfig:
    text = (
        "ID,Name,Street,City,State,ZIP,Lat,Lon,Phone,Services\n"
        f"A1,{name},12 Harbor Way,Cambridge,MA,02139,42.3626,-71.0995,(617) 555-0190,DT\n"
    )
    partner.route(f"/{feed_id}.csv", Response(200, text.encode(), {"Content-Type": "text/csv"}))
    fields = {
        "source_id": "ID",
        "name": "Name",
        "address_1": "Street",
        "city": "City",
        "state": "State",
        "postal_code": "ZIP",
        "latitude": "Lat",
        "longitude": "Lon",
        "phone": "Phone",
        "levels_of_care": "Services",
    }
    feed = feed_for(partner.url(f"/{feed_id}.csv"), mapping={"fields": fields}, authority=authority)
    return dataclasses.replace(feed, id=feed_id)


@pytest.mark.parametrize("forced", [True, False], ids=["forced", "scheduled"])
def test_a_feed_whose_authority_changed_rewrites_its_records_and_its_places_take_the_new_ranks(
    store: Store, partner: LoopbackServer, pipeline: Pipeline, forced: bool
) -> None:
    """Raising a feed's authority in the registry reaches the places its records compose, though its export is
    the same bytes: its validators and row memos were made under the old settings, and its stored records say
    the authority they were written with."""
    one = _harbor_feed(partner, "one", "Harbor Recovery Center", authority=1)
    two = _harbor_feed(partner, "two", "Harbor Recovery Ctr LLC", authority=2)
    assert pipeline.run(one).status == "applied" and pipeline.run(two).status == "applied"
    assert store.facility_of("one:A1") == store.facility_of("two:A1")
    assert store.get_center("one:A1")[0]["name"] == "Harbor Recovery Ctr LLC"  # feed two outranks feed one
    outcome = pipeline.run(dataclasses.replace(one, authority=5), force=forced)
    assert outcome.status == "applied", outcome
    assert store.get_center("one:A1")[0]["name"] == "Harbor Recovery Center"
    assert store.redis.hget(store.keys.record("one:A1"), "a") == b"5"
    assert pipeline.run(dataclasses.replace(one, authority=5)).status == "unchanged"  # the same settings again


def test_a_run_that_fails_before_its_write_leaves_the_memos_and_validators_as_they_were(
    store: Store, partner: LoopbackServer, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of a run that failed before it wrote (a Redis blip, a wait for another feed's staged write timing
    out) is void: its retry normalizes only the rows that changed, not every row."""
    feed = feed_for(serve(partner, [row(i) for i in range(30)]))
    assert pipeline.run(feed).status == "applied"
    fingerprint = memo_fingerprint(context_for(feed, NOW))
    digest = store.feed_state("memo").digest
    assert digest is not None and len(store.row_memos("memo", fingerprint)) == 30

    serve(partner, [row(0, beds=7)] + [row(i) for i in range(1, 30)])
    replace_feed = store.replace_feed

    def blip(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("Timeout reading from socket (injected, before anything was written)")

    monkeypatch.setattr(store, "replace_feed", blip)
    with pytest.raises(StoreUnavailable):
        pipeline.run(feed)
    monkeypatch.setattr(store, "replace_feed", replace_feed)
    assert store.feed_state("memo").digest == digest
    assert len(store.row_memos("memo", fingerprint)) == 30
    said: list[str] = []
    assert pipeline.run(feed, progress=said.append).status == "applied"
    assert any("29 unchanged rows not normalized again" in line for line in said), said


def _before_the_run_writes(store: Store, action: Any) -> None:
    """``action`` once, just before the next feed run's write (a geocode retry landing between its check and it)."""
    original = store.replace_feed
    fired: list[int] = []

    def wrapped(feed_id: str, centers: Any, observations: Any, **kw: Any) -> Any:
        if kw.get("run") is not None and not fired:
            fired.append(1)
            action()
        return original(feed_id, centers, observations, **kw)

    store.replace_feed = wrapped  # type: ignore[method-assign]


def _memo_digest(store: Store, feed: FeedConfig, center_id: str) -> tuple[bool, bytes | None]:
    memos = store.row_memos("memo", memo_fingerprint(context_for(feed, NOW)))
    found = [m for m in (RowMemo.decode(raw, "memo") for raw in memos.values()) if m.center_id == center_id]
    return memos.current, found[0].digest if found else None


def test_a_kept_record_written_between_the_runs_check_and_its_write_is_checked_again(
    store: Store, partner: LoopbackServer
) -> None:
    clock = [NOW]
    pipeline = Pipeline(store, Fetcher(new_session("t")), clock=lambda: clock[0])
    feed = feed_for(serve(partner, [row(i) for i in range(5)]))
    pipeline.run(feed)
    serve(partner, [row(i, beds=9) if i == 0 else row(i) for i in range(5)])  # C0 changed; C2 kept from its memo
    moved = Center.model_validate_json(store.stored_records(["memo:C2"])["memo:C2"])
    moved = moved.model_copy(update={"latitude": 42.5, "longitude": -71.2})
    _before_the_run_writes(store, lambda: store.update_location(moved, NOW + timedelta(seconds=1)))
    clock[0] = NOW + timedelta(minutes=1)
    pipeline.run(feed)
    current, digest = _memo_digest(store, feed, "memo:C2")
    assert digest != store.redis.hget(store.keys.record("memo:C2"), "h")  # C2's memo no longer says what is stored
    assert not current  # so its memos vouch for nothing: the next run checks, and puts C2 right
    clock[0] = NOW + timedelta(minutes=2)
    out = pipeline.run(feed, force=True)
    assert out.report is not None and out.report.stored is not None and out.report.stored.updated == 1
    assert Center.model_validate_json(store.stored_records(["memo:C2"])["memo:C2"]).latitude != 42.5


def test_a_row_whose_write_was_superseded_is_checked_again_and_applied(store: Store, partner: LoopbackServer) -> None:
    clock = [NOW]
    pipeline = Pipeline(store, Fetcher(new_session("t")), clock=lambda: clock[0])
    feed = feed_for(serve(partner, [row(i) for i in range(5)]))
    pipeline.run(feed)
    serve(partner, [row(i) if i != 2 else row(2).replace("Center 2", "Center Two") for i in range(5)])
    old = Center.model_validate_json(store.stored_records(["memo:C2"])["memo:C2"])
    old = old.model_copy(update={"latitude": 42.5, "longitude": -71.2})
    # a geocode retry ordered after the run's start lands before its write: the run's C2 is superseded
    _before_the_run_writes(store, lambda: store.update_location(old, NOW + timedelta(minutes=1, seconds=30)))
    clock[0] = NOW + timedelta(minutes=1)
    out = pipeline.run(feed)
    assert out.report is not None and out.report.stored is not None and out.report.stored.superseded == 1
    assert not _memo_digest(store, feed, "memo:C2")[0]  # its memo's digest is not what is stored: vouches nothing
    clock[0] = NOW + timedelta(minutes=2)
    pipeline.run(feed, force=True)  # later than the retry: the renamed row is applied
    assert Center.model_validate_json(store.stored_records(["memo:C2"])["memo:C2"]).name == "Center Two"


def test_a_staged_write_planned_before_another_write_of_its_records_is_planned_again(
    store: Store, partner: LoopbackServer
) -> None:
    """A staged write plans without the writer lock; a record of its feed written after the plan read it (a geocode
    retry) changes the feed's write token, so the write plans again under the lock and its memos say what is stored."""
    clock = [NOW]
    pipeline = Pipeline(store, Fetcher(new_session("t")), clock=lambda: clock[0])
    store.stage_above = 0
    feed = feed_for(serve(partner, [row(i) for i in range(5)]))
    pipeline.run(feed)
    store.drop_row_memos("memo")  # the next run keeps nothing: every row normalized and sent
    moved = Center.model_validate_json(store.stored_records(["memo:C2"])["memo:C2"])
    moved = moved.model_copy(update={"latitude": 42.5, "longitude": -71.2})
    take = store._take_writer
    fired: list[int] = []

    def retry_lands_first() -> str:
        if not fired:
            fired.append(1)
            assert store.update_location(moved, NOW + timedelta(seconds=30))
        return take()

    store._take_writer = retry_lands_first  # type: ignore[method-assign]
    clock[0] = NOW + timedelta(minutes=1)
    assert pipeline.run(feed, force=True).status == "applied"
    store._take_writer = take  # type: ignore[method-assign]
    current, digest = _memo_digest(store, feed, "memo:C2")
    assert digest == store.redis.hget(store.keys.record("memo:C2"), "h")  # planned again: C2 written back
    assert current
    assert Center.model_validate_json(store.stored_records(["memo:C2"])["memo:C2"]).latitude != 42.5
