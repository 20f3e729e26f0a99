"""One feed run: fetch -> parse -> normalize -> place -> store, with a report of what was kept and why not.

``Pipeline.run`` is what a worker calls for a pulled feed: it skips unchanged content (HTTP 304 or the
same bytes), holds back a run that would empty the feed or remove too much of it (an operator
releases it), keeps feed health, and on any failure leaves the last good snapshot in place to age
into ``unknown``. Dependencies (store, fetcher, geocoder, clock, environment) are passed in.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

import orjson

from aggregator.errors import (
    AggregatorError,
    ConfigError,
    FetchPermanent,
    FetchTransient,
    ParseError,
    RunRejected,
    StoreUnavailable,
    TransientError,
)
from aggregator.feeds import Document, Row, follower_for, parser_for, rows_for
from aggregator.fetch import Fetched, Fetcher, Validators, credentials_header
from aggregator.geocode import Geocoder, PlacementReport, place_all
from aggregator.health import hold_obsolete, parse_when
from aggregator.model import (
    Accepting,
    Availability,
    AvailabilityStatus,
    Center,
    GeoPrecision,
    LevelOfCare,
    Rejection,
)
from aggregator.normalize import YEAR_SUPPLIED, FeedContext, NormalizedRecord, normalize_record
from aggregator.push import parse_push
from aggregator.store import (
    FeedRunWrite,
    FeedState,
    KeptRecordsRefused,
    PushRecord,
    ReplaceResult,
    Store,
    kept_json,
)
from config.registry import FeedConfig

log = logging.getLogger(__name__)

#: a feed run's lock lease (renewed every third of it while the run lives)
LOCK_LEASE_SECONDS = 60.0
#: how many rejections are kept verbatim in a report (counts by reason are always complete)
REJECTION_SAMPLE = 50
#: records named as examples of one repair, unmapped term or dropped value
EXAMPLES = 5
#: formats whose follow-up documents stand alone (API pages, per-state files): one that fails is
#: reported and the rest applied as a partial run, which updates what it carries and removes nothing
PARTIAL_FORMATS = frozenset({"json", "smart"})
REPEATED = "repeated in this feed; the newest report was kept"


@dataclass
class IngestReport:
    feed_id: str
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    observations: int = 0
    problems_by_reason: Counter[str] = field(default_factory=Counter)
    rejections: list[Rejection] = field(default_factory=list)
    field_problems: list[Rejection] = field(default_factory=list)
    unmapped: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    #: values dropped from accepted records (field problems), by grouped reason
    dropped: Counter[str] = field(default_factory=Counter)
    #: a few record ids per repair, unmapped term and dropped reason
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: records whose id repeated an earlier one (the newest report of each id is kept)
    repeated: int = 0
    #: follow-up documents that could not be fetched (a partial run): "url: error"
    failed_documents: list[str] = field(default_factory=list)
    #: levels of care whose figures a kept record carried but were rejected, by center id: storing the
    #: run keeps the feed's previous figures for them (a bad value never removes good data)
    rejected_levels: dict[str, set[str]] = field(default_factory=dict)
    stored: ReplaceResult | None = None
    placement: PlacementReport | None = None
    newest_data_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "feed_id": self.feed_id,
            "records": self.records,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "observations": self.observations,
            "problems_by_reason": dict(self.problems_by_reason.most_common()),
            "rejections": [r.model_dump() for r in self.rejections],
            "field_problems": [r.model_dump() for r in self.field_problems],
            "unmapped": dict(self.unmapped.most_common(50)),
            "repairs": dict(self.repairs),
            "dropped": dict(self.dropped.most_common(50)),
            "quality": self.quality(),
            "repeated": self.repeated,
            "failed_documents": self.failed_documents,
            "stored": {k: v for k, v in vars(self.stored).items() if k != "digests"} if self.stored else None,
            "placement": self.placement.as_dict() if self.placement else None,
        }

    def note(self, kind: str, key: str, record: str) -> None:
        examples = self.examples.setdefault(f"{kind}:{key}", [])
        if len(examples) < EXAMPLES and record not in examples:
            examples.append(record)

    def quality(self, limit: int = 20) -> dict[str, list[dict[str, Any]]]:
        """Repairs made, terms left unmapped and values dropped: counts with example records."""
        out: dict[str, list[dict[str, Any]]] = {}
        for kind, counter in (("repairs", self.repairs), ("unmapped", self.unmapped), ("dropped", self.dropped)):
            out[kind] = [
                {"what": key, "count": n, "records": self.examples.get(f"{kind}:{key}", [])}
                for key, n in counter.most_common(limit)
            ]
        return out

    def summary(self) -> str:
        """One line on the main reasons records or values were lost, for feed health."""
        reasons = "; ".join(f"{k} ({n})" for k, n in self.problems_by_reason.most_common(3))
        return reasons or "no reason recorded"


def reason_key(r: Rejection) -> str:
    """Group reasons: 'postal_code: ZIP 99999 does not exist' -> 'postal_code: ZIP N does not exist'."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", r.reason)
    text = re.sub(r"-?\d(?:[\d.:\-T+Z]| (?=\d))*", "N", text)
    field_ = re.sub(r"\.\d+", "", r.field)
    return f"{field_}: {' '.join(text.split())}"


def context_for(feed: FeedConfig, now: datetime) -> FeedContext:
    """What normalization needs to know about a registered feed, at ``now``."""
    return FeedContext(
        feed_id=feed.id,
        now=now,
        source=feed.source,
        timezone=feed.timezone,
        freshness_seconds=feed.freshness_seconds,
        max_report_age_seconds=feed.max_report_age_seconds,
        limited_threshold=feed.limited_threshold,
        value_maps=feed.mapping.value_maps,
        default_state=feed.default_state,
        null_values=feed.mapping.null_values,
        authority=feed.authority,
    )


@dataclass(frozen=True)
class RowMemo:
    """What one raw row normalized to when its run was stored: enough to count it in a report again, and to
    keep its stored record, without normalizing it again (``normalize_rows``)."""

    center_id: str
    source_id: str
    #: the stored record's digest (``ReplaceResult.digests``): the row is kept only while the store holds it
    digest: bytes
    #: the newest report among its observations (epoch ms), for choosing between repeats of one id
    latest_ms: int | None
    observations: int
    problems: tuple[Rejection, ...] = ()
    unmapped: tuple[tuple[str, tuple[str, ...]], ...] = ()
    repairs: tuple[str, ...] = ()
    rejected_levels: tuple[str, ...] = ()
    #: the figures of a row that gave no time (``NormalizedRecord.run_timed``), each (level, status, beds, total,
    #: accepting, waitlist, appointments, notes): the fetch is their report, so every run reports them again at its
    #: own time (``observations_now``)
    figures: tuple[tuple[Any, ...], ...] = ()

    def encode(self, feed_id: str = "") -> bytes:
        """Kept compact (a feed keeps one a row): the center id left out (null) when it is the feed's own id of
        the source id, the lists of what normalizing noticed left out at the end when empty."""
        fields: list[Any] = [
            None if feed_id and self.center_id == f"{feed_id}:{self.source_id}" else self.center_id,
            self.source_id,
            self.digest.hex(),
            self.latest_ms,
            self.observations,
            [[p.record, p.field, p.reason] for p in self.problems],
            self.unmapped,
            self.repairs,
            self.rejected_levels,
            self.figures,
        ]
        while len(fields) > 5 and not fields[-1]:
            fields.pop()
        return kept_json(fields)

    @classmethod
    def decode(cls, raw: bytes, feed_id: str = "") -> RowMemo:
        """What ``encode`` kept, for the same feed. Read for every unchanged row of a run: the common memo (nothing
        noticed) is built without the frozen ``__init__``'s per-field checks."""
        cid, sid, digest, latest, n, *rest = orjson.loads(raw)
        memo = object.__new__(cls)
        memo.__dict__.update(
            center_id=f"{feed_id}:{sid}" if cid is None else cid,
            source_id=sid,
            digest=bytes.fromhex(digest),
            latest_ms=latest,
            observations=n,
            problems=(),
            unmapped=(),
            repairs=(),
            rejected_levels=(),
            figures=(),
        )
        if rest:
            problems, unmapped, repairs, levels, figures = (*rest, [], [], [], [], [])[:5]
            memo.__dict__.update(
                problems=tuple(Rejection(record=r, field=f, reason=why) for r, f, why in problems),
                unmapped=tuple((fld, tuple(ts)) for fld, ts in unmapped),
                repairs=tuple(repairs),
                rejected_levels=tuple(levels),
                figures=tuple(map(tuple, figures)),
            )
        return memo

    def observations_now(self, ctx: FeedContext) -> list[Availability]:
        """A run-timed row's figures as normalizing them again gives them: reported (and checked) at this run."""
        return [
            Availability.model_construct(
                center_id=self.center_id,
                level_of_care=LevelOfCare(level),
                source=ctx.source,
                status=AvailabilityStatus(status),
                beds_available=beds,
                beds_total=total,
                accepting=None if accepting is None else Accepting(accepting),
                waitlist_size=waitlist,
                appointments_available=appointments,
                next_appointment_at=None,
                notes=notes,
                reported_at=ctx.now,
                checked_at=ctx.now,
                changed_at=None,
                freshness_seconds=ctx.freshness_seconds,
                reported_by="",
            )
            for level, status, beds, total, accepting, waitlist, appointments, notes in self.figures
        ]

    @classmethod
    def of(cls, result: NormalizedRecord, digest: bytes, ctx: FeedContext) -> RowMemo | None:
        """The memo of a freshly normalized row, or None where what it normalizes to depends on the run, so the
        row is normalized every run:

        * a figure whose report time is the run's own because it was a little ahead of our clock (read as now);
          a row that gave no time at all keeps its figures instead (``figures``): every run reports them again
          at its own time, as a full normalize would;
        * a report time judged against the clock: refused as in the future, or a feed that refuses reports
          older than ``max_report_age`` (a report ages out of it);
        * a center not placed by the feed's own coordinates: geocoding may place it better on a later run."""
        center = result.center
        if center is None or center.geo_precision is not GeoPrecision.FEED:
            return None
        if any(p.field.endswith("_at") for p in result.problems) or YEAR_SUPPLIED in result.repairs:
            return None
        times = [o.reported_at for o in result.availability]
        run_timed = result.run_timed and all(t == ctx.now for t in times)
        if times and not run_timed and (ctx.max_report_age_seconds is not None or ctx.now in times):
            return None
        figures = tuple(
            (
                o.level_of_care.value,
                o.status.value,
                o.beds_available,
                o.beds_total,
                None if o.accepting is None else o.accepting.value,
                o.waitlist_size,
                o.appointments_available,
                o.notes,
            )
            for o in (result.availability if run_timed else ())
        )
        return cls(
            center.id,
            result.source_id,
            digest,
            _ms(max(times)) if times and not run_timed else None,  # a run-timed row reports as of each run
            len(result.availability),
            tuple(result.problems),
            tuple((fld, tuple(ts)) for fld, ts in result.unmapped.items()),
            tuple(result.repairs),
            tuple(sorted(lv.value for lv in result.rejected_levels)),
            figures,
        )


#: the files whose code decides what a row normalizes to: a change to any of them makes every memo void
_NORMALIZING_CODE = (
    "normalize.py",
    "vocabulary.py",
    "model.py",
    "geography.py",
    "address.py",
    "geocode.py",
    "ingest.py",
    "feeds/mapping.py",
    "feeds/csv.py",  # a CSV row's memo is found by its cells: what they map to is decided here
)
#: and the libraries whose data or rules it applies
_NORMALIZING_LIBRARIES = ("phonenumbers", "zipcodes", "usaddress", "pydantic", "python-dateutil")


@functools.cache
def _code_digest() -> str:
    """The normalizing code's files, the libraries' versions and Python's: made when this module is imported
    (below), so a process that runs the code it loaded labels its memos with that code, not with files a release
    changed on disk since (a worker's child forked after an upgrade landed, before the worker restarted)."""
    h = hashlib.blake2b(digest_size=16)
    for name in _NORMALIZING_CODE:
        h.update((Path(__file__).parent / name).read_bytes())
    for library in _NORMALIZING_LIBRARIES:
        h.update(f"{library}=={importlib.metadata.version(library)}".encode())
    h.update(f"python=={platform.python_version()}".encode())  # its datetime parsing reads times (fromisoformat)
    return h.hexdigest()


_code_digest()


def memo_fingerprint(ctx: FeedContext) -> str:
    """Row memos hold for one feed's settings (``settings_fingerprint``) and one version of the normalizing code; so
    do its validators (``FeedState.settings``: a run under others fetches and reads the export whole)."""
    return hashlib.blake2b(
        orjson.dumps([_code_digest(), _settings(ctx)], option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


def settings_fingerprint(ctx: FeedContext) -> str:
    """A feed's settings alone: everything normalizing reads but the clock, and the authority its records are written
    with. The figures a run stores were read under them (``FeedState.figures_settings``); a new version of the code
    does not change them."""
    return hashlib.blake2b(orjson.dumps(_settings(ctx), option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


def _settings(ctx: FeedContext) -> list[Any]:
    return [
        ctx.feed_id,
        ctx.source.value,
        ctx.timezone,
        ctx.freshness_seconds,
        ctx.max_report_age_seconds,
        ctx.limited_threshold,
        {k: {t: sorted(v) for t, v in m.items()} for k, m in ctx.value_maps.items()},
        ctx.default_state,
        sorted(ctx.null_values),
        ctx.authority,
    ]


def row_digest(raw: Mapping[str, Any]) -> bytes:
    """A raw row's digest: equal rows (whatever their place in the file) have equal digests."""
    body = orjson.dumps(
        raw if isinstance(raw, dict) else dict(raw), default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    )
    return hashlib.blake2b(body, digest_size=16).digest()


#: raw records as a parser gives them: dicts, or rows mapped only when needed (``aggregator.feeds.Row``)
RawRecords = Iterable[Mapping[str, Any] | Row]


@dataclass
class Normalized:
    """A feed's rows, normalized (``centers``, ``observations``) or known from their memo (``kept``)."""

    centers: list[Center]
    observations: list[Availability]
    report: IngestReport
    #: records kept as stored, unnormalized: center id -> the memo of the row that won
    kept: dict[str, RowMemo] = field(default_factory=dict)
    #: the same memos by their row's digest
    kept_rows: dict[bytes, RowMemo] = field(default_factory=dict)
    #: row digests of the normalized records that won, by center id (for their memos once stored)
    rows: dict[str, tuple[bytes, NormalizedRecord]] = field(default_factory=dict)
    #: the memos the run read (row digest -> memo as stored), all of them: those of kept rows are kept as they are
    given: Mapping[bytes, bytes] = field(default_factory=dict)
    #: the feed's write token the kept rows' records were found good under (``FeedRunWrite.seen_token``)
    seen_token: str | None = None

    def memos(self, digests: Mapping[str, bytes], ctx: FeedContext) -> dict[bytes, bytes]:
        """The memos of this run once stored: the kept rows' and the normalized winners' (with the digest the
        store computed for their record)."""
        out: dict[bytes, bytes] = {}
        for cid, (row, result) in self.rows.items():
            digest = digests.get(cid)
            memo = RowMemo.of(result, digest, ctx) if digest is not None else None
            if memo is not None:
                out[row] = memo.encode(ctx.feed_id)
        for memo_row, memo in self.kept_rows.items():
            kept = self.given.get(memo_row)
            out[memo_row] = kept if kept is not None else memo.encode(ctx.feed_id)
        return out


def warm_up() -> None:
    """Load what normalizing and matching load on first use (the state and ZIP tables, phone metadata, the
    vocabulary, the matcher and its address standardizer): a worker's main process calls it before it forks its
    pool, so a child started later (one replaced after its task budget) does not load them on its first task."""
    from aggregator import match

    now = datetime(2026, 1, 1, tzinfo=UTC)
    raw = {
        "source_id": "warm",
        "name": "Warm Up Recovery Center",
        "address_1": "12 Harbor Way Suite 2",
        "city": "Cambridge",
        "state": "MA",
        "postal_code": "02139",
        "latitude": "42.3626",
        "longitude": "-71.0995",
        "phone": "(617) 555-0190",
        "levels_of_care": "detox; residential",
        "payment": "Medicaid",
        "availability": [{"level_of_care": "detox", "beds_available": "3"}],
    }
    result = normalize_record(raw, FeedContext(feed_id="warm", now=now))
    if result.center is not None:
        match.identity_of(result.center)
    match.standard_street("12 Harbor Way", "Suite 2", "Cambridge", "MA", "02139")


def normalize_all(raws: RawRecords, ctx: FeedContext) -> tuple[list[Center], list[Availability], IngestReport]:
    """Normalize a feed's raw records (``normalize_rows`` without memos)."""
    done = normalize_rows(raws, ctx)
    return done.centers, done.observations, done.report


def normalize_rows(raws: RawRecords, ctx: FeedContext, memos: Mapping[bytes, bytes] | None = None) -> Normalized:
    """Normalize a feed's raw records.

    A source_id seen twice keeps the record with the newest report (its latest observation), whatever order
    the partner's rows or pages came in; the other is counted as rejected with reason ``source_id: repeated in
    this feed ...``, with its own problems beside it (a repeat whose report was rejected as "in the future" says
    so). Where neither report is newer (or neither row has one), the row that says more is kept (``_says_more``:
    a list view repeating a detail view keeps the detail), and between rows saying as much, the same one in any
    order (the lower row digest): a file exported in another order stores the same record. Field problems are
    counted for the records kept.

    With ``memos`` (row digest -> ``RowMemo``, from the feed's last stored run), a row whose digest has a memo
    is not normalized again: the report counts it from its memo, and its record is ``kept`` as stored."""
    report = IngestReport(feed_id=ctx.feed_id)
    kept: dict[str, NormalizedRecord | RowMemo] = {}
    rows: dict[str, bytes] = {}
    newest: dict[str, int | None] = {}
    items: dict[str, Mapping[str, Any] | Row] = {}  # the raw row kept for each id (a tie between repeats reads it)
    records = 0
    decode, feed_id = RowMemo.decode, ctx.feed_id
    for item in raws:
        records += 1
        # a parser's Row (it has a digest): mapped only when no memo knows it
        lazy = None if type(item) is dict or _is_mapping(type(item)) else cast(Row, item)
        row = b""
        if memos is not None:
            row = lazy.digest if lazy is not None else row_digest(cast(Mapping[str, Any], item))
        memo_raw = memos.get(row) if memos else None
        memo = decode(memo_raw, feed_id) if memo_raw is not None else None
        result: NormalizedRecord | RowMemo
        if memo is not None:
            result, label, center_id = memo, memo.source_id, memo.center_id
            latest = memo.latest_ms if not memo.figures else _ms(ctx.now)  # a run-timed row: reported now
            unmapped, repairs = memo.unmapped, memo.repairs
        else:
            raw = lazy.mapped() if lazy is not None else cast(Mapping[str, Any], item)
            result = normalize_record(raw, ctx)
            label = result.source_id or "(no id)"
            unmapped, repairs = tuple(result.unmapped.items()), tuple(result.repairs)
            if result.center is None:
                _count_terms(report, unmapped, repairs, label)
                _reject(report, result.problems)
                continue
            center_id = result.center.id
            latest = max((_ms(o.reported_at) for o in result.availability), default=None)
        if unmapped or repairs:
            _count_terms(report, unmapped, repairs, label)
        earlier = kept.get(center_id)
        if earlier is None:
            report.accepted += 1
        else:
            report.repeated += 1
            before = newest[center_id]
            if latest == before:
                wins = _says_more(item, row, items[center_id], rows[center_id])
            else:
                wins = latest is not None and (before is None or latest > before)
            loser = earlier if wins else result
            _reject(report, [Rejection(record=loser.source_id, field="source_id", reason=REPEATED), *loser.problems])
            if not wins:
                continue
        kept[center_id] = result
        rows[center_id] = row
        newest[center_id] = latest
        items[center_id] = item
    report.records += records
    done = Normalized([], [], report)
    for center_id, result in kept.items():
        if result.rejected_levels:
            report.rejected_levels[center_id] = (
                set(result.rejected_levels)
                if isinstance(result, RowMemo)
                else {lv.value for lv in result.rejected_levels}
            )
        for p in result.problems:
            key = reason_key(p)
            report.problems_by_reason[key] += 1
            report.dropped[key] += 1
            report.note("dropped", key, result.source_id)
            if len(report.field_problems) < REJECTION_SAMPLE:
                report.field_problems.append(p)
        if isinstance(result, RowMemo):
            done.kept[center_id] = result
            done.kept_rows[rows[center_id]] = result
            report.observations += result.observations
            if result.figures:  # its record stays as stored; its figures are reported again by this run
                done.observations.extend(result.observations_now(ctx))
        else:
            assert result.center is not None
            done.centers.append(result.center)
            done.observations.extend(result.availability)
            done.rows[center_id] = (rows[center_id], result)
            report.observations += len(result.availability)
    latest_ms = max((m for m in newest.values() if m is not None), default=None)
    report.newest_data_at = datetime.fromtimestamp(latest_ms / 1000, UTC) if latest_ms is not None else None
    return done


@functools.lru_cache(maxsize=64)
def _is_mapping(kind: type) -> bool:
    """Is a raw record of this type a mapping (else a parser's ``Row``)? Asked once a type, not once a row: the
    abstract class check costs a row more than the rest of reading its memo."""
    return issubclass(kind, Mapping)


def _says_more(item: Mapping[str, Any] | Row, row: bytes, other: Mapping[str, Any] | Row, other_row: bytes) -> bool:
    """Between two rows of one id whose reports are as new: does ``item`` win over ``other``? The row whose raw
    record (as the mapping reads it) is longer says more; as long, the lower row digest wins. Either way the
    choice is the same whatever order the rows came in. ``row``: the digest where the run computed it (with memos),
    else empty."""
    mine, theirs = _raw_size(item), _raw_size(other)
    if mine != theirs:
        return mine > theirs
    return (row or _digest_of(item)) < (other_row or _digest_of(other))


def _raw_size(item: Mapping[str, Any] | Row) -> int:
    raw = item if isinstance(item, Mapping) else item.mapped()
    return len(orjson.dumps(raw if isinstance(raw, dict) else dict(raw), default=str, option=orjson.OPT_NON_STR_KEYS))


def _digest_of(item: Mapping[str, Any] | Row) -> bytes:
    return row_digest(item) if isinstance(item, Mapping) else item.digest


def _count_terms(
    report: IngestReport, unmapped: Iterable[tuple[str, Iterable[str]]], repairs: Iterable[str], label: str
) -> None:
    for fld, terms in unmapped:
        for t in terms:
            report.unmapped[f"{fld}: {t}"] += 1
            report.note("unmapped", f"{fld}: {t}", label)
    for repair in repairs:
        report.repairs[repair] += 1
        report.note("repairs", repair, label)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def accepts_enough(report: IngestReport, min_share: float) -> bool:
    """Did a run accept something, and at least ``min_share`` of its records? Repeats of one id are not
    losses: the share is also judged against the distinct records."""
    if not report.accepted:
        return False
    distinct = report.records - report.repeated
    return report.accepted / report.records >= min_share or (distinct > 0 and report.accepted / distinct >= min_share)


def _reject(report: IngestReport, problems: list[Rejection]) -> None:
    """One record rejected: its first problem is the reason counted; the rest are shown beside it."""
    report.rejected += 1
    problems = problems or [Rejection(field="record", reason="rejected")]
    report.problems_by_reason[reason_key(problems[0])] += 1
    for p in problems[:3]:
        if len(report.rejections) < REJECTION_SAMPLE:
            report.rejections.append(p)


def apply_snapshot(
    store: Store, raws: Iterable[Mapping[str, Any]], ctx: FeedContext, geocoder: Geocoder | None = None
) -> IngestReport:
    """Normalize, place and store a feed's whole snapshot (atomically replacing the previous one).

    Without a geocoder, centers lacking plausible coordinates are placed at their ZIP centroid."""
    centers, observations, report = normalize_all(raws, ctx)
    centers, report.placement = place_all(centers, geocoder, ctx.now)
    report.stored = store.replace_feed(ctx.feed_id, centers, observations, now=ctx.now, source=ctx.source.value)
    return report


# --------------------------------------------------------------------------------------------------
# A pulled feed's run: fetch -> (unchanged? stop) -> parse -> normalize -> (held?) -> place -> store

STATE_SAMPLE = 20  # rejections kept in feed health


class RunStatus(StrEnum):
    """How a feed run ended (``RunOutcome.status``, the task's result, `centers ingest`)."""

    APPLIED = "applied"  # the snapshot replaced the feed's
    PARTIAL = "partial"  # some documents failed: what was read is applied, nothing pruned
    UNCHANGED = "unchanged"  # the same bytes as the last run: nothing to do
    NOT_MODIFIED = "not_modified"  # the partner answered 304
    HELD = "held"  # the run would gut the feed: kept aside for an operator to release
    WAITING = "waiting"  # not due yet (max-age, Retry-After)
    BUSY = "busy"  # another run of the feed holds its lock
    FAILED = "failed"


@dataclass
class RunOutcome:
    feed_id: str
    status: RunStatus
    report: IngestReport | None = None
    error: str = ""
    error_kind: str = ""
    documents: int = 0
    retry_after: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "feed_id": self.feed_id,
            "status": self.status.value,
            "error": self.error,
            "error_kind": self.error_kind,
            "documents": self.documents,
            "report": self.report.as_dict() if self.report else None,
        }


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


#: the cyclic garbage collector's thresholds while a run or a push holds a feed's records: the youngest
#: generation collected every 200,000 allocations instead of 700. A run keeps tens of thousands of records and
#: their models alive until it has stored them, and the frequent collections walk them again and again: a
#: third of a first load's time (30,000 rows: 18.9 s, 14.9 s at 50,000). Collection still runs, less often; at
#: 200,000 an unchanged run of the SAMHSA list (14,034 rows, about 56,000 allocations) walks nothing, where at
#: 50,000 it walked all its row memos once (13 ms of about 150), and first loads run as fast.
RUN_GC_THRESHOLD = (200_000, 20, 10)
_gc_lock = threading.Lock()
_gc_holders = 0
_gc_saved: tuple[int, int, int] = gc.get_threshold()


def _after_fork_in_child() -> None:
    """A worker's pool child forked while a run held the pace (or the lock): it starts with neither."""
    global _gc_lock, _gc_holders
    _gc_lock = threading.Lock()
    if _gc_holders:
        _gc_holders = 0
        gc.set_threshold(*_gc_saved)


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """``RUN_GC_THRESHOLD`` while the block runs (process-wide: the first block in sets it, the last out puts
    back what was there)."""
    global _gc_holders, _gc_saved
    with _gc_lock:
        if _gc_holders == 0:
            _gc_saved = gc.get_threshold()
            if _gc_saved[0]:  # 0: automatic collection is off, and stays off
                gc.set_threshold(*RUN_GC_THRESHOLD)
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0:
                gc.set_threshold(*_gc_saved)


class Pipeline:
    """Runs feeds with the dependencies it is given (store, fetcher, geocoder, clock, environment)."""

    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        *,
        geocoder: Geocoder | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.geocoder = geocoder
        self.environ = environ if environ is not None else {}
        self.clock = clock

    # ------------------------------------------------------------------------------------ pull

    def run(
        self, feed: FeedConfig, *, force: bool = False, progress: Callable[[str], None] | None = None
    ) -> RunOutcome:
        """One run of a pulled feed. Records health; raises TransientError (after recording it) so a
        caller can retry; a PermanentError is recorded and returned as a failed outcome."""
        with fewer_collections():
            return self._run(feed, force=force, progress=progress)

    def _run(self, feed: FeedConfig, *, force: bool, progress: Callable[[str], None] | None) -> RunOutcome:
        say = progress or (lambda _msg: None)
        now = self.clock()
        state = self.store.feed_state(feed.id)
        if not force and (state.next_fetch_after or 0) > now.timestamp():
            return RunOutcome(feed.id, RunStatus.WAITING)
        self.store.set_feed_state(feed.id, FeedState(last_attempt=_iso(now)), increment=FeedState.RUNS)
        # what the feed's rows are read and written with (its settings, its authority, the code): the validators
        # of an export read under other settings say nothing of what reading it now would store
        ctx = context_for(feed, now)
        settings = memo_fingerprint(ctx)
        # the feed's figures were stored under other settings (a corrected time zone, say): the run's figures replace
        # them whatever their report times. Not the validators' settings: those carry the code's version too, and are
        # dropped as a write lands; unknown (a feed stored before they were kept) is taken as unchanged
        figures_settings = settings_fingerprint(ctx)
        settings_changed = bool(state.figures_settings) and state.figures_settings != figures_settings
        try:
            say(f"fetching {feed.url}")
            documents, first, failed = self._fetch_all(feed, state, force or state.settings != settings)
            checked = FeedState(
                last_checked=_iso(now), consecutive_failures=0, next_fetch_after=now.timestamp() + (first.max_age or 0)
            )
            if first.not_modified:
                self.store.set_feed_state(feed.id, replace(checked, last_outcome="not_modified"))
                return RunOutcome(feed.id, RunStatus.NOT_MODIFIED, documents=1)
            digest = hashlib.sha256(b"".join(hashlib.sha256(d.body).digest() for d in documents)).hexdigest()
            if digest == state.digest and state.settings == settings and not force:
                self.store.set_feed_state(feed.id, replace(checked, last_outcome="unchanged"))
                return RunOutcome(feed.id, RunStatus.UNCHANGED, documents=len(documents))
            say(f"parsing {len(documents)} document(s), {sum(len(d.body) for d in documents):,} bytes")
            rows_of = rows_for(feed.parser or feed.format)  # CSV: rows mapped only when no memo knows them
            raws: Sequence[Mapping[str, Any] | Row] = (rows_of or parser_for(feed.parser or feed.format))(
                documents, feed.mapping
            )  # a row's digest, when a memo is looked up: row_digest of its raw record, or a Row's own
            say(f"parsed {len(raws)} records")
            if not raws and not self.store.feed_members(feed.id):
                raise ParseError("the feed contained no records (empty export, or a page of another shape)")
            done = self._normalize(feed, raws, ctx, settings)
            centers, observations, report = done.centers, done.observations, done.report
            report.failed_documents = failed
            say(
                f"normalized {report.records} records: {report.accepted} centers, {report.rejected} rejected"
                + (f" ({len(done.kept)} unchanged rows not normalized again)" if done.kept else "")
            )
            self._check_share(feed, report)
            partial = bool(failed)
            # a partial run keeps no validators, so the next run reads every document (not a 304 on the first one
            # while another went missing)
            validators = (
                FeedState()
                if partial
                else FeedState(etag=first.etag, last_modified=first.last_modified, digest=digest, settings=settings)
            )
            # the settings its figures are read under, once every figure of the feed was replaced under them: not
            # after a partial run (the figures of the documents it could not read: the next run replaces again).
            # Recorded in any case where none was
            if not state.figures_settings or not partial:
                validators = replace(validators, figures_settings=figures_settings)
            held = "" if partial else _hold_reason(self.store, feed, {c.id for c in centers} | set(done.kept))
            if held:
                if done.kept:  # the held snapshot carries every record: normalize the kept rows too
                    done = normalize_rows(raws, ctx)
                    centers, observations, report = done.centers, done.observations, done.report
                self._hold(feed, centers, observations, report, held, now, figures_settings=figures_settings)
                self.store.set_feed_state(feed.id, replace(checked, last_outcome=RunStatus.HELD.value))
                return RunOutcome(feed.id, RunStatus.HELD, report, documents=len(documents))
            if partial:
                # a partial run keeps no memos and prunes nothing: a row it writes may report more than the memo
                # of that row's earlier text says, and a later run sending that text again must drop the rest,
                # as normalizing it does. Its memos go first: the next full run normalizes every row.
                self.store.drop_row_memos(feed.id)
            # as the write lands: the validators dropped, and the memos suspended when rows were normalized anew,
            # until this run ends (Store.begin_feed_write)
            write = FeedRunWrite(
                settings if done.rows and not partial else None, settings_changed, seen_token=done.seen_token
            )
            try:
                self._apply(
                    feed,
                    centers,
                    observations,
                    report,
                    now,
                    say,
                    partial=partial,
                    prune=not partial,
                    kept=done.kept,
                    run=write,
                )
            except KeptRecordsRefused:  # an earlier write of the feed died half-way: send every record
                done = normalize_rows(raws, ctx, {})  # each row with its digest, for the memos saved after
                centers, observations, report = done.centers, done.observations, done.report
                report.failed_documents = failed
                write = FeedRunWrite(None if partial else settings, settings_changed)
                self._apply(
                    feed, centers, observations, report, now, say, partial=partial, prune=not partial, run=write
                )
            if not partial and report.stored is not None:
                self._remember_rows(feed, done, report.stored, ctx, settings)
            outcome = RunStatus.PARTIAL if partial else RunStatus.APPLIED
            self.store.set_feed_state(
                feed.id,
                checked.merged(validators)
                .merged(self._success(report, now))
                .merged(FeedState(last_outcome=outcome.value))
                .merged(self._discard_hold(feed, state, now)),
                delete=FeedState.ERROR + FeedState.HOLD,
            )
            return RunOutcome(feed.id, outcome, report, documents=len(documents))
        except AggregatorError as exc:
            retry_after = exc.retry_after if isinstance(exc, TransientError) else None
            self._failed(
                feed.id,
                str(exc),
                exc.kind,
                now,
                run=True,
                details=self._details(exc.report) if isinstance(exc, RunRejected) and exc.report is not None else None,
                retry_after=retry_after,
            )
            if isinstance(exc, TransientError):
                raise
            return RunOutcome(
                feed.id, RunStatus.FAILED, getattr(exc, "report", None), error=str(exc), error_kind=exc.kind
            )

    def run_locked(
        self,
        feed: FeedConfig,
        *,
        force: bool = False,
        lock_seconds: float = LOCK_LEASE_SECONDS,
        progress: Callable[[str], None] | None = None,
        owner: str | None = None,
    ) -> RunOutcome:
        """``run`` under the feed's lock: a feed never runs twice at once (a second caller skips, and feed
        health counts it).

        The lock is a short lease renewed while the run lives, so a run killed with its process (or cut
        off by a Redis restart) frees the feed within ``lock_seconds``. ``owner``: the job's id; a
        redelivered job takes back the lock its killed attempt held."""
        name = f"feed:{feed.id}"
        token = self.store.acquire_lock(name, lock_seconds, owner=owner)
        if token is None:
            self.store.set_feed_state(
                feed.id, FeedState(last_busy_at=_iso(self.clock())), increment=FeedState.BUSY_REFUSALS
            )
            return RunOutcome(feed.id, RunStatus.BUSY)
        done = threading.Event()

        def renew() -> None:
            while not done.wait(lock_seconds / 3):
                try:
                    self.store.acquire_lock(name, lock_seconds, owner=token)
                except AggregatorError:
                    continue  # Redis away for a moment: the next renewal tries again

        renewer = threading.Thread(target=renew, name=f"lease-{feed.id}", daemon=True)
        renewer.start()
        try:
            return self.run(feed, force=force, progress=progress)
        finally:
            done.set()
            renewer.join(timeout=5)
            self.store.release_lock(name, token)

    def _discard_hold(self, feed: FeedConfig, state: FeedState, now: datetime) -> FeedState:
        """A held run is obsolete once a newer run is applied: drop it, with a note for feed health (an
        operator releasing it would put older data over newer)."""
        if not state.held_at and self.store.held_snapshot(feed.id) is None:
            return FeedState()
        self.store.drop_held_snapshot(feed.id)
        return FeedState(
            hold_discarded=f"the run held at {state.held_at or 'an earlier time'} "
            f"({state.held_reason or 'no reason kept'}) was discarded: a newer run "
            f"was applied at {_iso(now)}"
        )

    def record_failure(self, feed_id: str, kind: str, message: str) -> None:
        """A failure the run itself could not record (killed by a time limit)."""
        self._failed(feed_id, message, kind, self.clock())

    def _failed(
        self,
        feed_id: str,
        message: str,
        kind: str,
        at: datetime,
        *,
        run: bool = False,
        details: FeedState | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Record a failure in feed health: the error, one more consecutive failure and, for a pulled feed's
        run (``run``), one more failed run; ``details``: the run's losses; ``retry_after``: the partner asked
        us to wait (at most an hour)."""
        values = FeedState(
            last_error=message[:500], last_error_kind=kind, last_error_at=_iso(at), last_outcome="failed"
        )
        if details is not None:
            values = values.merged(details)
        if retry_after:
            values.next_fetch_after = at.timestamp() + min(retry_after, 3600)
        self.store.set_feed_state(feed_id, values, increment=FeedState.CONSECUTIVE_FAILURES)
        if run:
            self.store.set_feed_state(feed_id, FeedState(), increment=FeedState.FAILURES)

    def _check_share(self, feed: FeedConfig, report: IngestReport) -> None:
        """A run accepting nothing, or less than the feed's share of its records, is not applied."""
        if not report.records or accepts_enough(report, feed.min_accepted_share):
            return
        share = report.accepted / report.records
        raise RunRejected(
            f"accepted {report.accepted} of {report.records} records "
            f"({'none' if not report.accepted else f'{share:.0%}'}; this feed needs "
            f"{feed.min_accepted_share:.0%}); the last good data stays. Main reasons: {report.summary()}",
            report=report,
        )

    def _details(self, report: IngestReport) -> FeedState:
        """What the operator needs to see of a run's losses: reasons, samples, repairs, unmapped terms."""
        return FeedState(
            problems_by_reason=json.dumps(dict(report.problems_by_reason.most_common(STATE_SAMPLE))),
            rejections=json.dumps([r.model_dump() for r in (report.rejections + report.field_problems)[:STATE_SAMPLE]]),
            quality=json.dumps(report.quality()),
            repeated=report.repeated,
            failed_documents=json.dumps(report.failed_documents[:STATE_SAMPLE]),
            run_records=report.records,
            run_accepted=report.accepted,
            run_rejected=report.rejected,
        )

    def _fetch_all(self, feed: FeedConfig, state: FeedState, force: bool) -> tuple[list[Document], Fetched, list[str]]:
        headers = {}
        if feed.credentials is not None:
            value = self.environ.get(feed.credentials.env)
            if not value:
                raise ConfigError(f"feed '{feed.id}': credentials variable {feed.credentials.env} is not set")
            headers = credentials_header(feed.credentials.header, value, feed.credentials.scheme)
        validators = None if force else Validators(state.etag or "", state.last_modified or "")

        def get(url: str, v: Validators | None) -> Fetched:
            return self.fetcher.get(
                url,
                fmt=feed.format,
                max_bytes=feed.max_bytes,
                timeout=feed.timeout_seconds,
                allow_private=feed.allow_private,
                validators=v,
                headers=headers,
            )

        first = get(feed.url, validators)
        failed: list[str] = []
        if first.not_modified:
            return [], first, failed

        def fetch(url: str) -> Document:
            got = get(url, None)
            return Document(got.url, got.body, got.content_type)

        documents, failed, unread = follow_documents(
            feed, Document(first.url, first.body, first.content_type), fetch, feed.max_pages
        )
        if unread:
            raise FetchPermanent(f"feed '{feed.id}': more than {feed.max_pages} documents (max_pages)")
        return documents, first, failed

    def _success(self, report: IngestReport, now: datetime) -> FeedState:
        # last_success: the last run that changed data; every success is a check too
        return self._details(report).merged(
            FeedState(
                last_success=_iso(now),
                last_checked=_iso(now),
                last_outcome="applied",
                records=report.records,
                accepted=report.accepted,
                rejected=report.rejected,
                observations=report.observations,
                centers=report.accepted,
                newest_data_at=_iso(report.newest_data_at) if report.newest_data_at else "",
                placement=json.dumps(report.placement.as_dict() if report.placement else {}),
            )
        )

    def _normalize(self, feed: FeedConfig, raws: RawRecords, ctx: FeedContext, fingerprint: str) -> Normalized:
        """Normalize a pulled run's rows, keeping the rows unchanged since the feed's last stored run (their
        memos) as they are stored. A kept record the store no longer holds as its memo says (a geocode retry
        moved it, a write died half-way) is normalized again; while no write changed the feed's records since the
        memos were saved (its write token stands), none is asked for. ``fingerprint``: ``memo_fingerprint(ctx)``."""
        memos = self.store.row_memos(feed.id, fingerprint)
        done = normalize_rows(raws, ctx, memos)
        # memos saved with the feed's write token that still stands describe its records as stored: no write changed
        # them since (Store.row_memos). Else each kept record is checked, and the memos vouched for when none changed
        seen = memos.token
        if done.kept and not memos.current:
            stale, seen = self.store.check_records(feed.id, {cid: m.digest for cid, m in done.kept.items()})
            if stale:
                drop = {row for row, memo in done.kept_rows.items() if memo.center_id in stale}
                done = normalize_rows(raws, ctx, {row: m for row, m in memos.items() if row not in drop})
            elif seen is not None and len(done.kept) == len(memos):
                self.store.vouch_row_memos(feed.id, fingerprint, seen)
        done.given = memos
        done.seen_token = seen
        return done

    def _remember_rows(
        self, feed: FeedConfig, done: Normalized, stored: ReplaceResult, ctx: FeedContext, fingerprint: str
    ) -> None:
        """Keep the memos of the rows just stored, for the feed's next run (only when they changed). Memos are
        a shortcut: failing to write them loses nothing, so it is logged, never the run's failure."""
        if not done.rows and stored.removed == 0 and not stored.superseded:
            return  # every row was kept from its memo: the memos stand as they are
        memos = done.memos(stored.digests, ctx)
        try:
            # kept packed by bucket: those that changed are written, and memos suspended for the write read again
            # (store.save_row_memos)
            if memos != done.given or done.rows:
                self.store.save_row_memos(feed.id, fingerprint, memos, done.given, stored.memo_token)
        except StoreUnavailable as exc:
            # the memos standing may be those of rows this run changed: none is better than a stale one
            try:
                self.store.drop_row_memos(feed.id)
            except StoreUnavailable:
                log.error(
                    "feed %s: row memos neither saved nor dropped (%s); they may not match its records", feed.id, exc
                )
                return
            log.warning("feed %s: row memos not saved (%s); its next run normalizes every row", feed.id, exc)

    def _apply(
        self,
        feed: FeedConfig,
        centers: list[Center],
        observations: list[Availability],
        report: IngestReport,
        now: datetime,
        say: Callable[[str], None],
        *,
        partial: bool = False,
        prune: bool = True,
        order: int | None = None,
        kept: Mapping[str, RowMemo] | None = None,
        run: FeedRunWrite | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> None:
        """Place and store. ``partial``: remove no center; ``prune``: drop this feed's figures for levels a
        center no longer reports (not when files of the run are missing: their figures may be in them), but
        never for a level whose figures the run carried and rejected (``report.rejected_levels``), unless the run was
        read under changed settings (``run.settings_changed``): the figure kept would be one stamped under the
        settings replaced (a wrong time zone's, showing as fresher than it is). ``run``: a feed run's write;
        ``also``: more commands for the write's transaction (both ``Store.replace_feed``'s)."""
        say(f"placing {len(centers)} centers")
        placed, report.placement = place_all(centers, self.geocoder, now)
        say("storing the snapshot")
        report.stored = self.store.replace_feed(
            feed.id,
            placed,
            observations,
            now=now,
            source=feed.source.value if prune else None,
            partial=partial,
            authority=feed.authority,
            order=order,
            keep={} if run is not None and run.settings_changed else report.rejected_levels,
            kept=kept or (),
            run=run,
            also=also,
        )

    # ------------------------------------------------------------------------------------ push

    def apply_push(self, feed: FeedConfig, ingest_id: str) -> dict[str, Any]:
        """Apply a stored partner push: an update of the centers it carries (nothing else removed).

        Idempotent: a push already done is not applied twice. The result is kept with the push."""
        with fewer_collections():
            return self._apply_push(feed, ingest_id)

    def _apply_push(self, feed: FeedConfig, ingest_id: str) -> dict[str, Any]:
        now = self.clock()
        attempt = secrets.token_hex(8)  # this delivery's: another may apply the same push (a redelivery, a sweep)
        record = self.store.begin_push(  # read, and pending again: the sweeper's clock starts again from this start
            ingest_id,
            PushRecord(
                status="processing",
                started_at=_iso(now),
                applier=f"{socket.gethostname()}:{os.getpid()}",
            ),
            feed.id,
            FeedState(last_attempt=_iso(now)),
            now,
        )
        if record is None:
            return {"ingest_id": ingest_id, "status": "missing"}
        if record.finished:
            return {"ingest_id": ingest_id, "status": record.status}
        report: IngestReport | None = None

        def done(pipe: Any) -> None:  # the push is done in the transaction its data lands in
            assert report is not None
            rejections = [r.model_dump() for r in report.rejections + report.field_problems]
            self.store.queue_end_push(
                pipe,
                ingest_id,
                PushRecord(
                    status="done",
                    done_by=attempt,
                    finished_at=_iso(self.clock()),
                    records=report.records,
                    accepted=report.accepted,
                    rejected=report.rejected,
                    observations=report.observations,
                    rejections=json.dumps(rejections),
                ),
                feed.id,
                replace(self._success(report, now), consecutive_failures=0),
                delete=FeedState.ERROR,
            )

        try:
            raws = parse_push(record.body or b"", record.kind or "", feed.mapping, f"push {ingest_id}")
            centers, observations, report = normalize_all(raws, context_for(feed, now))
            self._apply(
                feed,
                centers,
                observations,
                report,
                now,
                lambda _m: None,
                partial=True,
                order=push_order(record),
                also=done,
            )
        except AggregatorError as exc:
            # a transient error leaves the push to be applied again (applying is idempotent and ordered);
            # only a permanent one fails it for good
            retry = isinstance(exc, TransientError)
            mine = self.store.push_not_applied(
                ingest_id,
                attempt,
                PushRecord(
                    status="retrying" if retry else "failed",
                    error=str(exc)[:500],
                    error_kind=exc.kind,
                    finished_at=None if retry else _iso(self.clock()),
                ),
                again_at=now if retry else None,
            )
            if not mine:  # another delivery applied it meanwhile: nothing failed
                return {"ingest_id": ingest_id, "status": "done"}
            self._failed(feed.id, f"push {ingest_id}: {exc}", exc.kind, now)
            if retry:
                raise
            return {"ingest_id": ingest_id, "status": "failed", "error": str(exc)}
        except Exception as exc:
            # an error reply inside the write's transaction (a script that failed), a time limit, a defect: what was
            # queued after an error reply still ran, the push's "done" among it. The push is put back, to be applied
            # again (the sweeper queues it), and the feed's health says why
            error = f"{exc.__class__.__name__}: {exc}"[:500]
            if self.store.push_not_applied(
                ingest_id, attempt, PushRecord(status="retrying", error=error, error_kind="unexpected"), again_at=now
            ):
                self._failed(feed.id, f"push {ingest_id}: {error}", "unexpected", now)
            raise
        return {"ingest_id": ingest_id, "status": "done", "accepted": report.accepted, "rejected": report.rejected}

    def sweep_feeds(
        self, feeds: Sequence[FeedConfig], enqueue: Callable[[str], None], *, run_limit_seconds: float = 30
    ) -> list[str]:
        """Queue again a due feed run that did not complete: one started more than ``run_limit_seconds``
        ago that neither finished nor holds its lock (a live run renews its lock's lease, so its worker
        died or Redis restarted under it), or a feed not tried for two of its periods (its scheduled
        messages were lost). A dead attempt is queued once; an overdue feed at most once per period."""
        now = self.clock()
        states = self.store.feed_states([f.id for f in feeds])
        queued = []
        for feed in feeds:
            if not feed.pulled or not feed.enabled:
                continue
            s = states.get(feed.id) or FeedState()
            attempt = parse_when(s.last_attempt)
            if attempt is None:
                continue  # never run: its first run is the schedule's (or `centers serve`'s) to make
            finished = max(
                (t for t in map(parse_when, (s.last_checked, s.last_error_at, s.last_success)) if t is not None),
                default=None,
            )
            age = (now - attempt).total_seconds()
            swept = parse_when(s.last_swept_at)
            died = (
                (finished is None or finished < attempt)
                and age > run_limit_seconds
                and not self.store.lock_held(f"feed:{feed.id}")
            )
            if (
                died
                and swept is not None
                and swept >= attempt
                and (now - swept).total_seconds() < feed.schedule_seconds
            ):
                died = False  # this dead attempt is already queued again
            overdue = age > 2 * feed.schedule_seconds + 60 and (
                swept is None or (now - swept).total_seconds() > feed.schedule_seconds
            )
            if died or overdue:
                enqueue(feed.id)
                self.store.set_feed_state(
                    feed.id, FeedState(last_swept_at=_iso(now), last_swept_why="run died" if died else "overdue")
                )
                queued.append(feed.id)
        return queued

    def sweep_pushes(self, enqueue: Callable[[str, str], None], *, stale_seconds: float = 60) -> list[str]:
        """Queue again every accepted push nobody finished: still queued, processing or retrying
        ``stale_seconds`` after it was last queued or started (a killed worker, a Redis restart, a lost
        message). Applying is idempotent and ordered, so a push queued twice is applied once, in order.
        ``enqueue(feed_id, ingest_id)`` sends the job; what it cannot send waits for the next sweep."""
        now = self.clock()
        queued = []
        for ingest_id in self.store.stale_pushes(now - timedelta(seconds=stale_seconds)):
            record = self.store.push_record(ingest_id)
            if record is None or record.finished:
                self.store.push_finished(ingest_id)  # expired, or finished by a run the index missed
                continue
            enqueue(record.feed_id or "", ingest_id)
            self.store.mark_push_pending(ingest_id, now)
            queued.append(ingest_id)
        return queued

    # ------------------------------------------------------------------------------ quarantine

    def _hold(
        self,
        feed: FeedConfig,
        centers: list[Center],
        observations: list[Availability],
        report: IngestReport,
        reason: str,
        now: datetime,
        *,
        figures_settings: str = "",
    ) -> None:
        snapshot = {
            "held_at": _iso(now),
            "reason": reason,
            # the settings it was read under: a release replaces the feed's own figures when they differ from those
            # its stored figures were read under, as the run would have
            "figures_settings": figures_settings,
            "centers": [c.model_dump(mode="json") for c in centers],
            "availability": [o.model_dump(mode="json") for o in observations],
            "report": report.as_dict(),
            "rejected_levels": {cid: sorted(levels) for cid, levels in report.rejected_levels.items()},
        }
        self.store.hold_snapshot(feed.id, json.dumps(snapshot).encode())
        self.store.set_feed_state(feed.id, FeedState(held_reason=reason, held_at=_iso(now)))

    def release(self, feed: FeedConfig, *, by: str = "") -> RunOutcome:
        """An operator lets a held run through: it is applied as it was fetched."""
        raw = self.store.held_snapshot(feed.id)
        if raw is None:
            return RunOutcome(feed.id, RunStatus.FAILED, error="no held run to release", error_kind="not_held")
        snapshot = json.loads(raw)
        state = self.store.feed_state(feed.id)
        obsolete = hold_obsolete(state, snapshot.get("held_at"))
        if obsolete:
            self.store.drop_held_snapshot(feed.id)
            self.store.set_feed_state(feed.id, FeedState(hold_discarded=obsolete), delete=FeedState.HOLD)
            return RunOutcome(feed.id, RunStatus.FAILED, error=obsolete, error_kind="obsolete_hold")
        centers = [Center.model_validate(c) for c in snapshot["centers"]]
        observations = [Availability.model_validate(o) for o in snapshot["availability"]]
        now = self.clock()
        report = IngestReport(
            feed_id=feed.id,
            records=snapshot["report"]["records"],
            accepted=len(centers),
            rejected=snapshot["report"]["rejected"],
            observations=len(observations),
            rejected_levels={cid: set(lv) for cid, lv in snapshot.get("rejected_levels", {}).items()},
        )
        held_under = snapshot.get("figures_settings") or ""
        stored_under = state.figures_settings
        write = FeedRunWrite(settings_changed=bool(held_under and stored_under and held_under != stored_under))
        self._apply(feed, centers, observations, report, now, lambda _m: None, run=write)
        self.store.drop_row_memos(feed.id)
        self.store.drop_held_snapshot(feed.id)
        self.store.set_feed_state(
            feed.id,
            replace(
                self._success(report, now),
                released_by=by,
                released_at=_iso(now),
                figures_settings=held_under or None,
            ),
            delete=FeedState.HOLD + FeedState.VALIDATORS,
        )
        return RunOutcome(feed.id, RunStatus.APPLIED, report)


def follow_documents(
    feed: FeedConfig, first: Document, fetch: Callable[[str], Document], limit: int
) -> tuple[list[Document], list[str], int]:
    """The first document and every one it leads to (pages, manifest files, tables), at most ``limit``.

    A follow-up that cannot be fetched fails the whole fetch, except for ``PARTIAL_FORMATS``, where it
    is listed ("url: error") and the rest kept (unless nothing but the manifest is left). Returns
    (documents, failed, how many links were left unread at the limit)."""
    follow = follower_for(feed.parser or feed.format)
    documents = [first]
    failed: list[str] = []
    if follow is None:
        return documents, failed, 0
    queue = list(follow(first, feed.mapping))
    seen = {feed.url, first.url}
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        if len(documents) >= limit:
            return documents, failed, len(set(queue) - seen) + 1
        seen.add(url)
        try:
            doc = fetch(url)
        except (FetchPermanent, FetchTransient) as exc:
            if feed.format not in PARTIAL_FORMATS or feed.parser:
                raise
            failed.append(f"{url}: {exc}"[:300])
            continue
        documents.append(doc)
        queue.extend(follow(doc, feed.mapping))
    if failed and len(documents) == 1 and feed.format == "smart":
        raise FetchPermanent(f"every file the manifest lists failed: {failed[0]}")
    return documents, failed, 0


def push_order(record: PushRecord) -> int | None:
    """A push's place in its feed's order: when it was accepted (epoch ms). A push applied late never
    overwrites what a later one wrote."""
    received = parse_when(record.received_at) if record.received_at else None
    return int(received.timestamp() * 1000) if received is not None else None


def _hold_reason(store: Store, feed: FeedConfig, ids: set[str]) -> str:
    """Why a run must wait for an operator: it empties the feed, or removes too much of it."""
    old = store.feed_members(feed.id)
    if not old:
        return ""
    if not ids:
        return f"the run would remove all {len(old)} centers of this feed"
    removed = len(old - ids)
    if removed / len(old) > feed.quarantine_share:
        return (
            f"the run would remove {removed} of {len(old)} centers ({removed / len(old):.0%}, more than "
            f"the {feed.quarantine_share:.0%} this feed allows)"
        )
    return ""
