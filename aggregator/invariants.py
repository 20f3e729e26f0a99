"""The service's invariants, checked against what Redis holds.

The fault-matrix tests run ``check`` after every scenario (RELIABILITY.md); an operator can run it at
any time with ``centers check``. It reads Redis through the store's client and never writes. Each
broken invariant is one ``Violation`` naming it and the key or record concerned. The invariants:

- ``geo_without_record``: every GEO member (main index and per-level indexes) is a facility with a
  composed record, and every record a facility lists exists;
- ``snapshot_torn``: every feed's snapshot is whole: its members exist, belong to it, are linked to a
  facility that lists them, and its count says how many there are (and, when the caller knows, as many
  as the partner sent);
- ``older_over_newer``: nothing was replaced by something older (the caller says what the newest
  accepted values are);
- ``push_not_applied``: every push answered 202 is applied, or failed with its reason listed; none is
  left pending once the system is quiet;
- ``stale_as_fresh``: nothing past its freshness window is served as fresh, and nothing stale is shown
  to the public with figures;
- ``dead_lock``: every lock has a lease (no lock outlives its run for longer than the lease), and none is
  held once the system is quiet; no staged write (``aggregator.staging``) is left unfinished once the
  system is quiet.

While a staged write runs, the facilities it masks and the feed it writes are not judged: readers see
them as they were (``lua/visible.lua``), and what Redis holds for them is half-way by design.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from aggregator.lookup import get_center
from aggregator.store import (
    WRITER_LEASE_SECONDS,
    WRITER_LOCK,
    Store,
    facility_members,
    facility_of_record,
    feed_of_record,
)

INVARIANTS = (
    "geo_without_record",
    "snapshot_torn",
    "older_over_newer",
    "push_not_applied",
    "stale_as_fresh",
    "dead_lock",
)


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


def check(
    store: Store,
    *,
    now: datetime,
    pushes: Iterable[str] = (),
    newest: Mapping[str, Mapping[str, Any]] | None = None,
    feed_sizes: Mapping[str, int] | None = None,
    lock_lease_seconds: float = 60.0,
    quiet: bool = False,
    limit: int = 20,
) -> list[Violation]:
    """Every broken invariant (at most ``limit`` per invariant), or ``[]``.

    ``pushes``: ingest ids answered 202. ``newest``: record id -> the newest accepted values, as paths
    into the record (``name``, ``phones.0.number``) or ``availability.<level>.<field>`` (what operators
    are shown). ``feed_sizes``: feed id -> how many records its partner last sent. ``quiet``: nothing
    runs now, so nothing may be pending or locked."""
    found: list[Violation] = []
    masked, staged_feeds = _staged(store)
    for part in (
        _geo(store, masked),
        _snapshots(store, feed_sizes or {}, staged_feeds),
        _newest(store, newest or {}, now),
        _pushes(store, pushes, quiet),
        _freshness(store, now, masked),
        _locks(store, lock_lease_seconds, quiet),
    ):
        found.extend(part[:limit])
    return found


def _text(v: bytes | str | None) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


def _geo_keys(store: Store) -> list[str]:
    k = store.keys
    return [k.geo, *sorted(_text(x) for x in store.redis.scan_iter(match=k.geo_level("*"), count=500))]


def _staged(store: Store) -> tuple[set[str], set[str]]:
    """Facilities masked and feeds written by staged writes in progress (not judged: see above)."""
    r, k = store.redis, store.keys
    gens = [_text(g) for g in r.hkeys(k.staging)]
    if not gens:
        return set(), set()
    feeds = {_text(f) for f in r.mget([k.stage(g, "feed") for g in gens]) if f is not None}
    hidden = {_text(m) for g in gens for part in ("m", "hide") for m in r.smembers(k.stage(g, part))}
    return hidden, feeds


def _geo(store: Store, masked: set[str]) -> list[Violation]:
    r, k = store.redis, store.keys
    out: list[Violation] = []
    facilities: set[str] = set()
    for key in _geo_keys(store):
        facilities.update(_text(m) for m, _ in r.zscan_iter(key, count=1000))
    ids = sorted(facilities - masked)
    reader = r.pipeline(transaction=False)
    for fid in ids:
        reader.hmget(k.center(fid), "j", "m")
    members: dict[str, list[str]] = {}
    for fid, (doc, m) in zip(ids, reader.execute(), strict=True):
        if doc is None:
            out.append(Violation("geo_without_record", f"GEO member {fid} has no composed record"))
            continue
        members[fid] = sorted(facility_members(fid, doc, m))  # at least its own id: a lone founder keeps no m
    flat = [(fid, rid) for fid, rids in members.items() for rid in rids]
    for (fid, rid), exists in zip(flat, _exists(store, [k.record(rid) for _, rid in flat]), strict=True):
        if not exists:
            out.append(Violation("geo_without_record", f"facility {fid} lists record {rid}, which does not exist"))
    return out


def _exists(store: Store, keys: list[str]) -> list[bool]:
    reader = store.redis.pipeline(transaction=False)
    for key in keys:
        reader.exists(key)
    return [bool(x) for x in reader.execute()] if keys else []


def _snapshots(store: Store, sizes: Mapping[str, int], staged: set[str]) -> list[Violation]:
    r, k = store.redis, store.keys
    out: list[Violation] = []
    for feed_id in sorted((store.feed_ids() | set(sizes)) - staged):
        ids = sorted(store.feed_members(feed_id))
        meta = store.feed_meta(feed_id)
        if feed_id in sizes and len(ids) != sizes[feed_id]:
            out.append(
                Violation(
                    "snapshot_torn", f"feed {feed_id} holds {len(ids)} records; its partner sent {sizes[feed_id]}"
                )
            )
        if ids and str(len(ids)) != meta.get("centers"):
            out.append(
                Violation(
                    "snapshot_torn", f"feed {feed_id} holds {len(ids)} records but its count says {meta.get('centers')}"
                )
            )
        reader = r.pipeline(transaction=False)
        for rid in ids:
            reader.hmget(k.record(rid), "h", "f", "fac")
        links = [  # (feed, facility) as a stored record says them; (None, "") where it does not exist
            (feed_of_record(rid, feed) if digest is not None else None, facility_of_record(rid, digest, fac))
            for rid, (digest, feed, fac) in zip(ids, reader.execute() if ids else [], strict=True)
        ]
        facilities = sorted({fac for _, fac in links if fac})
        reader = r.pipeline(transaction=False)
        for fid in facilities:
            reader.hmget(k.center(fid), "j", "m")
        listed = {
            fid: facility_members(fid, j, m)
            for fid, (j, m) in zip(facilities, reader.execute() if facilities else [], strict=True)
        }
        for rid, (feed, fac) in zip(ids, links, strict=True):
            if feed is None:
                out.append(Violation("snapshot_torn", f"feed {feed_id} lists record {rid}, which does not exist"))
            elif feed != feed_id:
                out.append(Violation("snapshot_torn", f"record {rid} in feed {feed_id} says it is {feed}'s"))
            elif not fac or rid not in listed.get(fac, set()):
                out.append(Violation("snapshot_torn", f"record {rid} of feed {feed_id} is in no facility"))
    return out


def _path(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, list):
            value = value[int(part)] if part.isdigit() and int(part) < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _newest(store: Store, newest: Mapping[str, Mapping[str, Any]], now: datetime) -> list[Violation]:
    out: list[Violation] = []
    records = store.stored_records(sorted(newest))
    for rid, expected in sorted(newest.items()):
        raw = records.get(rid)
        if raw is None:
            out.append(Violation("older_over_newer", f"record {rid} is missing (expected {dict(expected)})"))
            continue
        record = orjson.loads(raw)
        view: dict[str, Any] | None = None
        for path, want in expected.items():
            if path.startswith("availability."):
                if view is None:
                    fid = store.facility_of(rid) or rid
                    view = get_center(store, fid, audience="operator", now=now) or {}
                    view = {"availability": {a["level_of_care"]: a for a in view.get("availability", [])}}
                got = _path(view, path)
            else:
                got = _path(record, path)
            if got != want:
                out.append(
                    Violation(
                        "older_over_newer", f"record {rid}: {path} is {got!r}, the newest accepted value is {want!r}"
                    )
                )
    return out


def _pushes(store: Store, pushes: Iterable[str], quiet: bool) -> list[Violation]:
    out: list[Violation] = []
    for ingest_id in pushes:
        record = store.push_record(ingest_id)
        if record is None:
            out.append(Violation("push_not_applied", f"push {ingest_id} was accepted and is gone"))
            continue
        status = record.status or ""
        if status == "done":
            if (record.rejected or 0) and not (record.rejections or "").strip("[]"):
                out.append(Violation("push_not_applied", f"push {ingest_id} rejected records without listing why"))
        elif status == "failed":
            if not record.error:
                out.append(Violation("push_not_applied", f"push {ingest_id} failed with no reason"))
        else:
            out.append(Violation("push_not_applied", f"push {ingest_id} is still {status or 'unknown'}"))
    if quiet:
        pending = store.stale_pushes(datetime.now(UTC) + timedelta(days=3650))
        if pending:
            out.append(
                Violation("push_not_applied", f"{len(pending)} push(es) still pending: {', '.join(pending[:5])}")
            )
    return out


def _freshness(store: Store, now: datetime, masked: set[str]) -> list[Violation]:
    r, k = store.redis, store.keys
    now_ms = now.timestamp() * 1000
    out: list[Violation] = []
    ids = sorted({_text(m) for m, _ in r.zscan_iter(k.geo, count=1000)} - masked)
    for fid in ids:
        found = store.get_center(fid)
        if found is None:
            continue  # reported by _geo
        _record, observations = found
        live = {o["level_of_care"] for o in observations if o["rt"] + o["freshness_seconds"] * 1000 > now_ms}
        view = get_center(store, fid, audience="public", now=now)
        for a in (view or {}).get("availability", []):
            level = a["level_of_care"]
            if a["fresh"] and level not in live:
                out.append(Violation("stale_as_fresh", f"{fid} {level}: served as fresh past its freshness window"))
            if not a["fresh"] and (a["status"] != "unknown" or a["beds_available"] is not None):
                out.append(
                    Violation(
                        "stale_as_fresh",
                        f"{fid} {level}: stale, yet the public sees {a['status']} with {a['beds_available']} beds",
                    )
                )
    return out


def _locks(store: Store, lease_seconds: float, quiet: bool) -> list[Violation]:
    r, k = store.redis, store.keys
    out: list[Violation] = []
    for key in sorted(_text(x) for x in r.scan_iter(match=k.lock("*"), count=500)):
        ttl = int(r.pttl(key))
        lease = max(lease_seconds, WRITER_LEASE_SECONDS) if key == k.lock(WRITER_LOCK) else lease_seconds
        if ttl == -1:
            out.append(Violation("dead_lock", f"{key} has no lease: it would outlive a dead run forever"))
        elif ttl > lease * 1000:
            out.append(Violation("dead_lock", f"{key} is held for {ttl / 1000:.0f} s, past the {lease:.0f} s lease"))
        elif quiet and ttl > 0:
            out.append(Violation("dead_lock", f"{key} is held though nothing runs"))
    if quiet:
        for gen, state in sorted(r.hgetall(k.staging).items()):
            feed = _text(r.get(k.stage(_text(gen), "feed")))
            out.append(
                Violation(
                    "dead_lock",
                    f"staged write {_text(gen)} of feed {feed} was left "
                    f"{'before its flip' if _text(state) == 'w' else 'before its clean-up'}",
                )
            )
    return out
