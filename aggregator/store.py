"""The Redis store: the only module that imports redis.

Key names are built here and nowhere else (``Keys``). Layout, under a configurable prefix::

    c:{center_id}          hash  j=the composed record's JSON (deflated, ``pack``; its read document is joined as
                                 it is read: lua/readdoc.lua), p=1 when it belongs in the GEO index (located, not
                                 inactive), t=index tokens (coded: ``token_code``), m=its records (left out when it
                                 is its founding record alone: ``facility_members``), x=identifiers (left out when
                                 none), u=until when each level of care has a fresh open figure ("detox=<epoch ms> ...")
    r:{record_id}          hash  a feed record: j=its JSON (deflated, ``pack``), h=its digest (16 bytes), f=feed id
                                 (left out: the record's id says it, ``feed_of_record``), a=the feed's authority,
                                 o=when written (order), fac=its facility (left out when it is the record's own: it
                                 founded it), why=the link's reasons (``pack``)
    a:{center_id}          hash  "{level}|{source}" -> availability observation JSON (compact: ``observation_json``)
    geo                    GEO   located, non-inactive centers
    geo:loc:{level}        GEO   the same, for each level of care (a level filter searches only these)
    ix:{group}:{value}     set   center ids, e.g. ix:pay:medicaid, ix:lang:es (not levels of care: geo:loc is
                                 their index; a selective filter is read from its set, lua/near.lua)
    feed:{feed_id}:m       set   the feed's current centers
    feed:{feed_id}:meta    hash  digest and counts of the last applied snapshot
    feeds                  set   feed ids that have a snapshot
    needs_location         set   centers that could not be placed (kept, listed for operators)
    feed:{feed_id}:state   hash  feed health (``FeedState``): last attempt/success/error, counts, validators, digest
    feed:{feed_id}:held    str   a quarantined snapshot waiting for an operator (JSON)
    feed:{feed_id}:rows    hash  b:{byte}=the row memos (``ingest.RowMemo``) of the last stored run whose row digest
                                 begins with that byte, packed (``memo_buckets``, ``pack_memos``); _fp: their settings
                                 and code fingerprint
    lock:{name}            str   a lock's token (SET NX PX), e.g. one run per feed at a time
    push:{ingest_id}       hash  a partner push (``PushRecord``), stored before it is acknowledged, then its result
    push:event:{feed}:{id} str   the ingest that accepted a partner's event id (replay protection)
    rate:{client}          str   requests in the current window (per-client rate limit)
    deliveries:{job}       str   how often a queued job has been started (redelivery cap)
    geocode:c:{digest}     str   a geocoder answer (found or not found), with a time to live
    geocode:retry          zset  center ids to geocode again after an outage (score: when)
    limit:{name}           str   next free slot of a shared rate limit (epoch ms)
    pushes:pending         zset  accepted pushes not yet done or failed (score: when last queued or started)
    worker:{name}          str   a worker's heartbeat, written while it consumes (expires)
    session:{sha256}       hash  an operator's page session (the cookie holds the id; expires in 12 h)
    staging                hash  large writes in progress: generation -> 'w' (writing) | 'c' (flipped, cleaning up)
    masks                  hash  facility -> what readers see of it while a generation writes (lua/visible.lua)
    stage:{gen}:{part}     set   a generation's masked facilities (m), deferred index removals (rm),
                                 facilities hidden from its flip until its clean-up (hide); str: its feed (feed)

Invariants, held by writing each feed snapshot in one MULTI/EXEC transaction, or, when it is large, as
a staged generation (``aggregator.staging``: bounded transactions behind masks, then one flip): a reader
sees a feed whole-old or whole-new (but for the figures of records a run keeps as stored and reports again, rows
that gave no time: each shows its new time as soon as it is written); a GEO member always has its record (once a
generation's clean-up is done); index sets hold exactly the tokens in each record's ``t``. An older observation never
overwrites a newer one (``lua/observe.lua``). While a generation writes, every other write waits for
it (the ``store-writer`` lock), so no Redis command or transaction runs long.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import secrets
import struct
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar, cast

import hiredis
import orjson
import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from aggregator import facility, geography, staging
from aggregator.errors import StoreUnavailable
from aggregator.model import Availability, AvailabilityStatus, Center, CenterStatus, GeoPrecision

if TYPE_CHECKING:  # matching (scourgify, rapidfuzz) loads only where a write plans links: a CLI search stays quick
    from aggregator import match

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "cav:"

#: filter groups and their token prefixes
GROUPS = {"levels_of_care": "loc", "payment": "pay", "populations": "pop", "languages": "lang"}

#: Index tokens as a facility's ``t`` keeps them (``token_code``): one character each for the vocabulary's values,
#: by their place here. Only ever added to, at the end: a stored code keeps its meaning across releases. One
#: character (a-z, 0-9) is left; past it, a token stays spelled out.
_CODED_TOKENS = (
    *(f"loc:{v}" for v in ("detox", "residential", "inpatient", "php", "iop", "outpatient", "otp", "mat")),
    *(f"loc:{v}" for v in ("recovery_housing", "crisis", "telehealth")),
    *(f"pay:{v}" for v in ("medicaid", "medicare", "private", "self_pay", "sliding_scale", "free", "va")),
    *(f"pay:{v}" for v in ("military", "state_funded", "ihs", "payment_assistance")),
    *(f"pop:{v}" for v in ("adults", "young_adults", "adolescents", "women", "men", "pregnant")),
    *(f"pop:{v}" for v in ("parents_with_children", "veterans", "lgbtq", "deaf_hard_of_hearing", "co_occurring")),
    *(f"pop:{v}" for v in ("homeless", "criminal_justice")),
)
_TOKEN_CODES: dict[str, str] = dict(zip(_CODED_TOKENS, "abcdefghijklmnopqrstuvwxyz0123456789", strict=False))
_TOKEN_NAMES = {code: token for token, code in _TOKEN_CODES.items()}


def token_code(token: str) -> str:
    """An index token as a facility's ``t`` keeps it: its code (``_CODED_TOKENS``), a language as its ISO 639-1
    code in capitals ("lang:es" -> "ES"), any other as it is (it holds a colon, which no code does). About 100
    bytes a center fewer than the tokens themselves."""
    code = _TOKEN_CODES.get(token)
    if code is not None:
        return code
    lang = token[5:]
    if token.startswith("lang:") and len(lang) == 2 and lang.isascii() and lang.isalpha() and lang.islower():
        return lang.upper()
    return token


def token_of(kept: str) -> str:
    """What ``token_code`` kept, as the index token again; a token kept as it is (a store written before codes,
    or one without a code) as it is, and so a code this release does not know (a later release's)."""
    if ":" in kept:
        return kept
    token = _TOKEN_NAMES.get(kept)
    if token is not None:
        return token
    if len(kept) == 2 and kept.isascii() and kept.isalpha() and kept.isupper():
        return "lang:" + kept.lower()
    return kept


@lru_cache(maxsize=1)
def _token_prelude() -> str:
    """``token_code`` for Lua scripts that look a token up in a facility's ``t`` (lua/near.lua, lua/cleanup.lua),
    made once a process."""
    table = ", ".join(f"[{orjson.dumps(t).decode()}] = {orjson.dumps(c).decode()}" for t, c in _TOKEN_CODES.items())
    return (
        "-- Generated (store._token_prelude): an index token as a facility's t keeps it (store.token_code).\n"
        "-- The table is built on first use: a search without filters never builds it.\n"
        "local TOKEN_CODE = nil\n"
        "local function token_code(token)\n"
        f"  if not TOKEN_CODE then TOKEN_CODE = {{{table}}} end\n"
        "  local code = TOKEN_CODE[token]\n"
        "  if code then return code end\n"
        "  local lang = string.match(token, '^lang:(%l%l)$')\n"
        "  if lang then return string.upper(lang) end\n"
        "  return token\n"
        "end\n"
    )


class Keys:
    """Every Redis key name the service uses, in one place."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.geo = prefix + "geo"
        self.feeds = prefix + "feeds"
        self.needs_location = prefix + "needs_location"

    def center(self, facility_id: str) -> str:
        """A facility: its composed record, read document, index tokens and member records."""
        return f"{self.prefix}c:{facility_id}"

    def record(self, record_id: str) -> str:
        """A feed record as the partner sent it (normalized), and the facility it is linked to."""
        return f"{self.prefix}r:{record_id}"

    def identifier(self, system: str, value: str) -> str:
        return f"{self.prefix}xid:{system}:{value}"

    def heartbeat(self, worker: str) -> str:
        """A worker's heartbeat (expires when it stops beating)."""
        return f"{self.prefix}worker:{worker}"

    @property
    def pending_pushes(self) -> str:
        """Pushes accepted and not yet done or failed: ingest id -> when last queued or started (ms)."""
        return f"{self.prefix}pushes:pending"

    @property
    def matches(self) -> str:
        """Pairs the matcher could not decide, for an operator: "{record}|{facility}" -> JSON."""
        return f"{self.prefix}matches"

    def decisions(self, record_id: str) -> str:
        """An operator's decisions about a record: facility -> "same" | "different" (they win over the matcher)."""
        return f"{self.prefix}decision:{record_id}"

    def geo_level(self, level: str) -> str:
        return f"{self.prefix}geo:loc:{level}"

    def geo_keys(self, tokens: Iterable[str]) -> list[str]:
        """The GEO indexes a center with these index tokens belongs in (when located and active)."""
        return [self.geo] + [self.geo_level(t[4:]) for t in tokens if t.startswith("loc:")]

    def availability(self, center_id: str) -> str:
        return f"{self.prefix}a:{center_id}"

    def index(self, token: str) -> str:
        return f"{self.prefix}ix:{token}"

    def feed_members(self, feed_id: str) -> str:
        return f"{self.prefix}feed:{feed_id}:m"

    def feed_meta(self, feed_id: str) -> str:
        return f"{self.prefix}feed:{feed_id}:meta"

    def feed_state(self, feed_id: str) -> str:
        return f"{self.prefix}feed:{feed_id}:state"

    def feed_held(self, feed_id: str) -> str:
        return f"{self.prefix}feed:{feed_id}:held"

    def feed_rows(self, feed_id: str) -> str:
        """What each raw row of the feed's last stored run normalized to: row digest -> memo (``ingest.RowMemo``),
        and ``_fp``, the fingerprint of the feed's settings and normalizing code the memos hold for."""
        return f"{self.prefix}feed:{feed_id}:rows"

    def lock(self, name: str) -> str:
        return f"{self.prefix}lock:{name}"

    def push(self, ingest_id: str) -> str:
        return f"{self.prefix}push:{ingest_id}"

    def push_event(self, feed_id: str, event_id: str) -> str:
        return f"{self.prefix}push:event:{feed_id}:{event_id}"

    def rate(self, client: str) -> str:
        return f"{self.prefix}rate:{client}"

    def deliveries(self, job: str) -> str:
        return f"{self.prefix}deliveries:{job}"

    def geocode_answer(self, digest: str) -> str:
        return f"{self.prefix}geocode:c:{digest}"

    @property
    def geocode_retry(self) -> str:
        return f"{self.prefix}geocode:retry"

    def limit(self, name: str) -> str:
        return f"{self.prefix}limit:{name}"

    @property
    def staging(self) -> str:
        """Large writes in progress (lua/visible.lua): generation -> 'w' | 'c'."""
        return f"{self.prefix}staging"

    @property
    def masks(self) -> str:
        return f"{self.prefix}masks"

    def stage(self, gen: str, part: str) -> str:
        """A staged generation's sets: m (masked facilities), rm (deferred removals), hide; feed (str)."""
        return f"{self.prefix}stage:{gen}:{part}"

    def session(self, session_id: str) -> str:
        """An operator page session, named by the SHA-256 of its id: the id (the cookie) is never stored."""
        return f"{self.prefix}session:{hashlib.sha256(session_id.encode()).hexdigest()}"


def observation_field(obs: Availability) -> str:
    return f"{obs.level_of_care.value}|{obs.source.value}"


#: an observation's stored form: a JSON array of its fields by position (``SLOTS``), short names below, times as
#: epoch milliseconds (``rt`` reported, ``ct`` checked, ``ch`` changed when it differs from reported) with any
#: microseconds left over beside them (``ru``, ``cu``, ``chu``: 0 when none), and nothing a reader can tell from
#: where it is stored: its level and source are the hash field ("{level}|{source}"), the record it is about the
#: key (a:{record}). Fields at their default are null, and left out at the end. ``_observations`` puts everything
#: back as documents are read; ``stored_observation`` names the fields. Forms kept by earlier releases are read as
#: they are: the same short names in a JSON object (2026-12-06), the long form before it.
OBSERVATION_DEFAULTS: dict[str, Any] = {
    name: f.default for name, f in Availability.model_fields.items() if not f.is_required() and name != "changed_at"
}
#: stored name of each optional figure (``_observations`` spells the same names out: the read path)
_SHORT = {
    "beds_available": "ba",
    "beds_total": "bt",
    "accepting": "ac",
    "waitlist_size": "wl",
    "appointments_available": "ap",
    "next_appointment_at": "na",
    "notes": "no",
    "reported_by": "rb",
}
assert set(_SHORT) == set(OBSERVATION_DEFAULTS), "every optional figure needs a stored name"
#: the stored form's positions, the most used first (lua/readdoc.lua has the same list): status, freshness window,
#: reported ms, write order ms (observe.lua sets it), the microseconds of reported and checked, beds available and
#: total, changed ms and its microseconds, checked ms (when not the write order), the other figures, and the
#: changed time as ISO text (carried from the long form)
SLOTS = ("st", "fs", "rt", "wo", "ru", "cu", "ba", "bt", "ch", "chu", "ct", "ac", "wl", "ap", "na", "no", "rb", "chi")
#: a status is stored as its place here (lua/readdoc.lua has the same list); only ever added to, at the end
STATUS_CODES = (
    "available",
    "limited",
    "waitlist",
    "full",
    "assessment_required",
    "closed",
    "unknown",
)
assert set(STATUS_CODES) == {s.value for s in AvailabilityStatus}, "every status needs its stored code"
_STATUS_CODE = {name: i for i, name in enumerate(STATUS_CODES)}
#: slots whose 0 means none (microseconds left over)
_ZERO_IS_NONE = frozenset({"ru", "cu", "chu"})
#: a stored array padded to every slot (absent microseconds 0, every other absent field null)
_PADDING = [0 if name in _ZERO_IS_NONE else None for name in SLOTS]
#: where a stored figure keeps who reported it (operators see it, the public does not)
REPORTED_BY_SLOT = SLOTS.index("rb")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def kept_json(value: Any) -> bytes:
    """``orjson.dumps`` for a value that is kept, by the thousand, until a write sends it (an observation's stored
    form, a row memo, a facility's identifiers): in a bytes object of its own size. orjson hands its output out in
    the buffer it wrote it in, at least 4 KiB: 100,000 observations of 48 bytes took 393 MB of resident memory,
    their copies 10 MB (a large write's first load held three a record until it was sent)."""
    return memoryview(orjson.dumps(value)).tobytes()


def observation_json(obs: Availability, order: int | None = None) -> bytes:
    """The stored form (see ``OBSERVATION_DEFAULTS``), as observe.lua takes it (an unchanged figure keeps its changed
    time, compared figure by figure). Built in ``SLOTS`` order (what ``_positional`` gives of the named fields: a
    test holds the two alike). ``order``: the write's order (epoch ms), kept as ``wo``, with no ``ct`` when the
    figure was checked at that very ms (readers take ``wo``): the form as stored, which observe.lua stores as it
    comes where the level had no figure of this source."""
    rt, ru = divmod(_us(obs.reported_at), 1000)
    ct, cu = divmod(_us(obs.checked_at), 1000)
    na = obs.next_appointment_at
    out = [
        _STATUS_CODE[obs.status.value],
        obs.freshness_seconds,
        rt,
        order,  # wo (observe.lua sets it where none is given)
        ru,
        cu,
        obs.beds_available,
        obs.beds_total,
        None,  # ch, chu: observe.lua keeps them
        0,
        None if ct == order else ct,
        obs.accepting,  # an enum is stored as its value (orjson)
        obs.waitlist_size,
        obs.appointments_available,
        None if na is None else _iso(_us(na)),
        obs.notes or None,
        obs.reported_by or None,
    ]
    return kept_json(_trimmed(out))


def _positional(data: Mapping[str, Any]) -> list[Any]:
    """Named fields in ``SLOTS`` order: absent ones null (0 for microseconds), none after the last present."""
    return _trimmed([data.get(name, pad) for name, pad in zip(SLOTS, _PADDING, strict=True)])


def _trimmed(out: list[Any]) -> list[Any]:
    """Slots in ``SLOTS`` order with none after the last present (null, or 0 for microseconds), changed in place."""
    while out and (out[-1] is None or (out[-1] == 0 and SLOTS[len(out) - 1] in _ZERO_IS_NONE)):
        out.pop()
    return out


def stored_observation(stored: bytes | str) -> dict[str, Any]:
    """An observation as a:{record} keeps it, by its short names (absent ones left out), whichever form it was
    stored in (the long form of the earliest releases as it is)."""
    o = orjson.loads(stored)
    return _named(o) if isinstance(o, list) else o


def _named(o: list[Any]) -> dict[str, Any]:
    named = {
        name: v for name, v in zip(SLOTS, o, strict=False) if v is not None and not (v == 0 and name in _ZERO_IS_NONE)
    }
    named["st"] = STATUS_CODES[named["st"]]
    return named


def _us(t: datetime) -> int:
    return (t - _EPOCH) // _MICROSECOND


@lru_cache(maxsize=4096)  # a feed stamps its rows alike: an answer's times are mostly a few
def _iso(us: int) -> str:
    """Epoch microseconds as the API writes a time (pydantic's form: UTC, 'Z', microseconds only when any).
    The time of day is written by hand, the date looked up (a datetime and strftime for each time cost four
    times as much, and pushed figures have times of their own)."""
    seconds, rest = divmod(us, 1_000_000)
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    # printf-style: a third faster here than f-string format specs (one call, not one per field)
    if rest:
        return "%s%02d:%02d:%02d.%06dZ" % (_iso_day(days), hours, minutes, seconds, rest)  # noqa: UP031
    return "%s%02d:%02d:%02dZ" % (_iso_day(days), hours, minutes, seconds)  # noqa: UP031


@lru_cache(maxsize=1024)
def _iso_day(days: int) -> str:
    """The date part of ``_iso``: days since the epoch as 'YYYY-MM-DDT'."""
    t = _EPOCH + timedelta(days=days)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T"


def _observations(groups: list[Any]) -> list[dict[str, Any]]:
    """Stored observations as readers use them (every field there): a read document's groups, one per key
    a:{record}, each ``[record, field, stored, field, stored, ...]`` (lua/readdoc.lua)."""
    out = []
    for g in groups:
        if isinstance(g, dict):  # a document composed before the compact form (a staged write's mask)
            out.append({**OBSERVATION_DEFAULTS, **g})
            continue
        record = g[0]
        for i in range(1, len(g), 2):
            o = g[i + 1]
            if type(o) is list:  # the positional form (most): read by place, no names in between
                out.append(_positional_observation(record, g[i], o))
                continue
            if "st" not in o:  # stored before the compact form (the oldest without their record)
                out.append({**OBSERVATION_DEFAULTS, "record": record, **o})
                continue
            # the compact object the release before kept: the same fields, by name
            out.append(_positional_observation(record, g[i], _positional({**o, "st": _STATUS_CODE[o["st"]]})))
    return out


def _positional_observation(record: str, field: str, o: list[Any]) -> dict[str, Any]:
    """One observation of the positional form as readers use it (the compact object form of the release before is
    read through it too, put in place by ``_positional``)."""
    if len(o) != len(_PADDING):  # trailing fields left out (or slots a later release added: not read here)
        o = (o + _PADDING[len(o) :])[: len(_PADDING)]
    level, _, source = field.partition("|")
    out = figure_fields(level, source, o)
    rb = o[REPORTED_BY_SLOT]
    out["reported_by"] = "" if rb is None else rb
    out["record"] = record
    out["rt"] = o[2]
    out["wo"] = o[3]
    return out


def figure_fields(level: str, source: str, o: list[Any]) -> dict[str, Any]:
    """A figure's stored slots (``o``, padded to every slot of ``SLOTS``) as readers name them, up to its freshness
    window: who reported it, its record and its times in ms follow (``_positional_observation``), or its age
    (``lookup``'s view of a hit, which reads the slots itself)."""
    st, fs, rt, wo, ru, cu, ba, bt, ch, chu, ct, ac, wl, ap, na, no, _rb, chi = o
    reported = _iso(rt * 1000 + (ru or 0))
    if chi is None:
        chi = reported if ch is None else _iso(ch * 1000 + (chu or 0))
    return {
        "level_of_care": level,
        "source": source,
        "status": STATUS_CODES[st],
        "beds_available": ba,
        "beds_total": bt,
        "accepting": ac,
        "waitlist_size": wl,
        "appointments_available": ap,
        "next_appointment_at": na,
        "notes": "" if no is None else no,
        "reported_at": reported,
        "checked_at": _iso((wo if ct is None else ct) * 1000 + (cu or 0)),  # ct: wo unless other
        "changed_at": chi,
        "freshness_seconds": fs,
    }


#: Feed records (r:{record} j), link explanations (why) and composed records (c:{facility} j) are kept deflated
#: against this dictionary: what such JSON shares (field names, the vocabulary, common words of names and
#: streets). A record of 530-720 bytes keeps about 140; readers inflate the composed record of each hit (about
#: 1.5 µs). The dictionary is part of the stored form: never change it; a new one takes a new tag byte.
_PACK_DICTIONARY_1 = (
    b" Street Avenue Road Drive Boulevard Highway Lane Place Parkway Suite Floor Building Unit"
    b" Health Services Treatment Recovery Center Counseling Behavioral Mental Substance Abuse Addiction"
    b" Clinic Program Hospital Medical Family County Community Department Inc LLC of and the Saint North South"
    b' East West "role":"intake" "role":"hotline" ,"extension":"" "geo_precision":"rooftop" "postal_code"'
    b' "status":"temporarily_closed" https://www. .org/ .com/ "external_ids":[{"system":"","value":""}]'
    b' "decision":"same","rule":"","scores":{"name":,"address":,"distance_mi":}'
    b'{"facility":"","decision":"new","rule":"no candidate nearby","scores":{}}'
    b'"sources":[{"id":"","feed_id":"","source_id":""}]'
    b'"services":{"levels_of_care":["crisis","detox","inpatient","iop","mat","otp","outpatient","php",'
    b'"recovery_housing","residential","telehealth"],"payment":["free","ihs","medicaid","medicare","military",'
    b'"payment_assistance","private","self_pay","sliding_scale","state_funded","va"],"populations":["adolescents",'
    b'"adults","co_occurring","criminal_justice","deaf_hard_of_hearing","homeless","lgbtq","men",'
    b'"parents_with_children","pregnant","veterans","women","young_adults"],"languages":["en","es"]},"source_url":""'
    b'{"id":"","feed_id":"","source_id":"","name":"","alternate_name":"","external_ids":[],"address":{"address_1":"",'
    b'"address_2":"","city":"","state":"","postal_code":"","country":"US"},"latitude":3,"longitude":-8,'
    b'"geo_precision":"feed","geo_source":"","phones":[{"number":"+1","role":"main","extension":""}],"website":"",'
    b'"status":"active","services":{"levels_of_care":[],"payment":[],"populations":[],"languages":[]},"source_url":""}'
)
#: the tag byte of a value deflated against ``_PACK_DICTIONARY_1`` (JSON never starts with it)
_PACKED_1 = b"\x01"
#: a composed record kept as this byte alone: the facility is its founding record alone, composed as it is read
#: (``facility.single`` of ``r:{facility}`` j; ``diff_facilities``). A read document carries the byte, then that
#: record as stored (lua/readdoc.lua).
COMPOSED_FROM_RECORD = b"\x02"
_PACKER = threading.local()


def pack(text: bytes) -> bytes:
    """JSON as kept compact (``_PACK_DICTIONARY_1``): raw deflate, the dictionary loaded once a thread."""
    base = getattr(_PACKER, "base", None)
    if base is None:
        # level 3, a 4 KiB window, a small hash: as small as level 9 within 2%, and a third of the time (the
        # state copied per value is what costs); reading takes any window up to 32 KiB
        base = _PACKER.base = zlib.compressobj(3, zlib.DEFLATED, -12, 4, zlib.Z_DEFAULT_STRATEGY, _PACK_DICTIONARY_1)
    c = base.copy()
    return _PACKED_1 + c.compress(text) + c.flush()


def unpack(stored: bytes) -> bytes:
    """What ``pack`` kept, as JSON again; a value stored as plain JSON (before packing) as it is."""
    if stored[:1] != _PACKED_1:
        return stored
    d = zlib.decompressobj(-15, _PACK_DICTIONARY_1)
    text = d.decompress(memoryview(stored)[1:])
    return text if d.eof else text + d.flush()


_MEMO_HEAD = struct.Struct("<HI")


def memo_buckets(memos: Mapping[bytes, bytes]) -> dict[str, dict[bytes, bytes]]:
    """A feed's row memos by bucket, the field of ``feed:{feed}:rows`` that keeps them packed: ``b:`` and the
    first byte of the row digest in hexadecimal (256 buckets at most)."""
    out: dict[str, dict[bytes, bytes]] = defaultdict(dict)
    for row, memo in memos.items():
        out[f"b:{row[:1].hex()}"][row] = memo
    return dict(out)


def _memo_token(result: ReplaceResult, run: FeedRunWrite | None, kept: Iterable[str], standing: Any) -> str | None:
    """``ReplaceResult.memo_token`` of a write that set ``result.write_token``, given the feed's token ``standing``
    as the write was planned (it matters only when the write kept records)."""
    if result.write_token is None or result.superseded:
        return None
    if kept and (run is None or run.seen_token is None or standing is None or _str(standing) != run.seen_token):
        return None  # a record kept may have been written after it was found good: the memos must be checked
    return result.write_token


class RowMemos(dict[bytes, bytes]):
    """A feed's row memos as ``Store.row_memos`` reads them; ``current``: saved with the feed's write token that
    still stands (``token``), so no write changed the feed's records since."""

    current: bool = False
    token: str | None = None


def pack_memos(memos: Mapping[bytes, bytes]) -> bytes:
    """Row memos as one value (a bucket of ``feed:{feed}:rows``, ``memo_buckets``): each row digest and memo after
    their lengths, deflated. A row memo kept one a hash field cost about 110 bytes of Redis memory; packed,
    about 45."""
    head = _MEMO_HEAD.pack
    return zlib.compress(b"".join(head(len(k), len(v)) + k + v for k, v in memos.items()), 1)


def unpack_memos(packed: bytes) -> dict[bytes, bytes]:
    """What ``pack_memos`` kept: row digest -> memo."""
    data = zlib.decompress(packed)
    out: dict[bytes, bytes] = {}
    at, end, size, read = 0, len(data), _MEMO_HEAD.size, _MEMO_HEAD.unpack_from
    while at < end:
        k, v = read(data, at)
        at += size
        out[data[at : at + k]] = data[at + k : at + k + v]
        at += k + v
    return out


def read_doc(doc: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A read document (lua/readdoc.lua: its observation groups' JSON, a newline, the facility's composed record
    as stored; ``DocumentHits``) as readers use it: the record and its observations, fresh objects each call (the
    caller may change them)."""
    if doc[1:2] == b"{":  # composed before records were packed: [record, [observation...]] (a staged write's mask)
        record, observations = orjson.loads(doc)
        return record, _observations(observations)
    nl = doc.index(b"\n")
    return composed(doc[nl + 1 :]), _observations(orjson.loads(doc[:nl]))


def read_doc_positional(doc: bytes) -> tuple[dict[str, Any], list[Any]] | None:
    """A read document's record and its observation groups as stored (``[record, field, [slot, ...], ...]``, in
    ``SLOTS`` order, trailing ones left out) for a reader that takes the slots itself (``lookup``'s shaping of a
    hit); None for a document composed before records were packed (``read_doc`` reads every form)."""
    if doc[1:2] == b"{":
        return None
    nl = doc.index(b"\n")
    return composed(doc[nl + 1 :]), orjson.loads(doc[:nl])


def composed(stored: bytes) -> dict[str, Any]:
    """A composed record as a read document carries it (or c:{facility} j keeps it, with its founding record's
    JSON after ``COMPOSED_FROM_RECORD``): packed, plain JSON, or to compose from its one record."""
    if stored[:1] == COMPOSED_FROM_RECORD:
        if len(stored) == 1:
            raise ValueError("a facility composed from its founding record, which is missing")
        return facility.single(orjson.loads(unpack(stored[1:])))
    return cast(dict[str, Any], orjson.loads(unpack(stored)))


#: a link explanation (r:{record} why) kept as this byte alone: ``founded_alone``, the most common one
FOUNDED_ALONE = b"\x03"


def founded_alone(record_id: str) -> dict[str, Any]:
    """The explanation of a record that founded its own facility, no other being near (``Store._plan_links``)."""
    return {"facility": record_id, "decision": "new", "rule": "no candidate nearby", "scores": {}}


def _composed_or_none(stored: bytes | None, founder: bytes | None) -> dict[str, Any] | None:
    """c:{facility} j as read beside r:{facility} j (the founding record, for ``COMPOSED_FROM_RECORD``)."""
    if not stored:
        return None
    if stored == COMPOSED_FROM_RECORD:
        return composed(stored + founder) if founder else None
    return composed(stored)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _strs(values: Iterable[bytes | str]) -> set[str]:
    """A set's members as text, decoded at C speed from this client's bytes (a feed's members are read whole twice
    a run: 14,000 of them take 6 ms one by one, 2 ms at once); a client that decodes gives them as they are."""
    if isinstance(values, Sequence | set | frozenset):
        try:
            return set(map(bytes.decode, values))
        except TypeError:  # str already (or mixed)
            pass
    return {_str(v) for v in values}


def _lua(name: str) -> str:
    return resources.files("aggregator").joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")


#: one GEO hit: (center_id, distance_mi, center record, [observation, ...])
RawHit = tuple[str, float, dict[str, Any], list[dict[str, Any]]]


#: a write naming more centers and observations than this is staged (``aggregator.staging``)
STAGE_ABOVE = 1000
#: the lock every write of facility data takes or waits for while a staged write runs
WRITER_LOCK = "store-writer"
#: its lease, renewed every quarter of it while the write lives: a writer killed half-way (its process, or its
#: connection by a Redis restart) holds up every other write for at most this long (it was 120 s, longer than
#: the fault matrix's 60 s bound on applying an accepted push)
WRITER_LEASE_SECONDS = 30.0
#: how long a small write waits for a staged one before it gives up (the task is retried)
WRITER_WAIT_SECONDS = 180.0

#: candidates one near query may examine: its work on Redis is bounded however dense the area
MAX_EXAMINED = 2000
#: ``_fp`` of a feed's row memos while a write of rows normalized anew runs (``Store.begin_feed_write``), then the
#: fingerprint they were made under: no run reads them until the write's own run saves its memos
ROW_MEMOS_SUSPENDED = "suspended "
#: a small partial write naming more records than this (sent, or kept as stored) reads its feed's members whole
#: (lua/look.lua asks for each one: at 100,000 kept records, some 85 ms of Redis time against 15 for SMEMBERS)
LOOK_KEPT_MAX = 5000


@dataclass(frozen=True)
class FeedRunWrite:
    """A feed run's write (``Store.replace_feed``'s ``run``): as it lands, the feed's validators are dropped and, with
    ``memo_fingerprint`` (rows normalized anew), its row memos suspended, until the run's end sets them again."""

    memo_fingerprint: str | None = None
    #: the feed's settings changed since its last stored run (a corrected time zone, say): its figures replace those
    #: it stored before whatever their report times (observe.lua's mode 'own'); newest-wins guards against an older
    #: export, not against the feed's own correction, which would otherwise leave figures stamped by the wrong clock
    #: showing as fresh until their window ends
    settings_changed: bool = False
    #: the feed's write token its rows kept from their memos were found good under (``RowMemos.token`` when the
    #: memos were current, else ``check_records``' token), None when there is none: the write's token vouches for
    #: the memos saved after it only if no other write came between (``ReplaceResult.memo_token``)
    seen_token: str | None = None


class KeptRecordsRefused(Exception):
    """A write named records to keep as stored (``replace_feed``'s ``kept``) that it cannot keep: an earlier
    staged write of the feed died half-way, and taking it over rewrites every record. Send them all."""


class SearchHits(list[RawHit]):
    """Search hits, nearest first; ``stopped``: the search examined its maximum and stopped early."""

    stopped: bool = False


class DocumentHits(list[tuple[str, float, bytes]]):
    """Search hits as (center_id, distance_mi, read document as stored), nearest first; ``stopped`` as in
    ``SearchHits``."""

    stopped: bool = False


def _decoded(found: DocumentHits) -> SearchHits:
    hits = SearchHits((center_id, distance, *read_doc(doc)) for center_id, distance, doc in found)
    hits.stopped = found.stopped
    return hits


@dataclass
class ReplaceResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    observations_written: int = 0
    observations_stale: int = 0
    observations_pruned: int = 0
    needs_location: list[str] = field(default_factory=list)
    facilities_changed: int = 0
    #: records not rewritten because a later write (a newer push) already wrote them
    superseded: int = 0
    #: pairs the matcher could not decide, queued for an operator
    uncertain: int = 0
    #: the stored digest of every record the write carried, changed or not (``kept`` ones excluded)
    digests: dict[str, bytes] = field(default_factory=dict)
    #: the feed's write token this write set (feed meta ``w``), None when it set none (``_queue_writes``)
    write_token: str | None = None
    #: ``write_token`` when the memos saved after this write may carry it (``save_row_memos``): no record of the
    #: write superseded (its memo's digest is not what is stored), and the records it kept were found good under
    #: the token that stood until this write (``FeedRunWrite.seen_token``); else None, and the memos vouch for nothing
    memo_token: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.observations_written)


#: a value written to a Redis hash field
HashValue = str | int | float | bytes


def _hash_kinds(cls: type) -> dict[str, type]:
    """A record's hash fields and the type each is read back as (int, float, bytes or str)."""
    kinds: dict[str, type] = {}
    for f in fields(cls):
        text = str(f.type)
        kinds[f.name] = int if "int" in text else float if "float" in text else bytes if "bytes" in text else str
    return kinds


def _read_hash(kinds: Mapping[str, type], raw: Mapping[Any, Any]) -> dict[str, Any]:
    """A Redis hash as the typed values of the fields ``kinds`` names (others, and unreadable numbers, are left
    out: a record written by an older version still reads)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = _str(key)
        kind = kinds.get(name)
        if kind is None or value is None:
            continue
        if kind is bytes:
            out[name] = value if isinstance(value, bytes) else str(value).encode()
            continue
        text = _str(value)
        if kind is str:
            out[name] = text
            continue
        try:
            out[name] = kind(text)
        except ValueError:
            continue
    return out


def _write_hash(record: Any) -> dict[str, HashValue]:
    """The fields of ``record`` that are set (None: not written), as a hash mapping."""
    return {f.name: v for f in fields(record) if (v := getattr(record, f.name)) is not None}


@dataclass
class FeedState:
    """A feed's health, as kept in Redis (``Keys.feed_state``): each attribute is the hash field of its name.

    Every field may be absent (None): a record read back holds what was written, and a ``FeedState`` given to
    ``Store.set_feed_state`` is a partial update writing only the fields that are set. Times are ISO text
    ('...Z'); the JSON fields (placement, problems_by_reason, rejections, quality, failed_documents) are text."""

    # the last run: when, and what became of it
    last_attempt: str | None = None
    last_checked: str | None = None  # the last run that succeeded, changed or not
    last_success: str | None = None  # the last run that changed data
    last_outcome: str | None = None  # applied | partial | unchanged | not_modified | held | failed
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_at: str | None = None
    # counters (``increment``)
    consecutive_failures: int | None = None
    failures: int | None = None
    runs: int | None = None
    busy_refusals: int | None = None
    last_busy_at: str | None = None
    # fetching: when the partner lets us ask again, and the validators of what we have
    next_fetch_after: float | None = None
    digest: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    #: the feed's settings the validators above were stored under (``ingest.memo_fingerprint``)
    settings: str | None = None
    #: the feed's settings its stored figures were read under (``ingest.settings_fingerprint``: no code version in
    #: it), set by a run that read the export whole or a release; never dropped with the validators. A run under
    #: others replaces the feed's own figures whatever their report times (``FeedRunWrite.settings_changed``)
    figures_settings: str | None = None
    # a held (quarantined) run, and what operators did with it
    held_reason: str | None = None
    held_at: str | None = None
    released_by: str | None = None
    released_at: str | None = None
    hold_discarded: str | None = None
    # the last applied run's counts
    records: int | None = None
    accepted: int | None = None
    rejected: int | None = None
    observations: int | None = None
    centers: int | None = None
    newest_data_at: str | None = None
    placement: str | None = None
    # the last run's losses (``ingest.Pipeline._details``), applied or not
    problems_by_reason: str | None = None
    rejections: str | None = None
    quality: str | None = None
    repeated: int | None = None
    failed_documents: str | None = None
    run_records: int | None = None
    run_accepted: int | None = None
    run_rejected: int | None = None
    # the sweep that queued a dead or overdue run again
    last_swept_at: str | None = None
    last_swept_why: str | None = None

    #: field groups cleared together (``Store.set_feed_state(..., delete=...)``)
    ERROR: ClassVar[tuple[str, ...]] = ("last_error", "last_error_kind", "last_error_at")
    HOLD: ClassVar[tuple[str, ...]] = ("held_reason", "held_at")
    VALIDATORS: ClassVar[tuple[str, ...]] = ("digest", "etag", "last_modified", "settings")
    #: counters (``Store.set_feed_state(..., increment=...)``)
    RUNS: ClassVar[str] = "runs"
    FAILURES: ClassVar[str] = "failures"
    CONSECUTIVE_FAILURES: ClassVar[str] = "consecutive_failures"
    BUSY_REFUSALS: ClassVar[str] = "busy_refusals"

    def to_hash(self) -> dict[str, HashValue]:
        return _write_hash(self)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> FeedState:
        return cls(**_read_hash(_FEED_STATE_KINDS, raw))

    def merged(self, other: FeedState) -> FeedState:
        """This update with the fields ``other`` sets written over it."""
        changes: dict[str, Any] = _write_hash(other)
        return replace(self, **changes)


@dataclass
class PushRecord:
    """A partner push, as kept in Redis (``Keys.push``): each attribute is the hash field of its name. Stored
    when it is accepted (feed_id ... bytes), then updated as it is applied; None: not (yet) written."""

    feed_id: str | None = None
    event_id: str | None = None
    kind: str | None = None  # json | ndjson | csv (``push.content_kind``)
    body: builtins.bytes | None = None
    status: str | None = None  # queued | processing | retrying | done | failed
    received_at: str | None = None
    bytes: str | None = None  # the body's size
    started_at: str | None = None
    applier: str | None = None  # host:pid of the worker applying it
    done_by: str | None = None  # the token of the delivery that applied it (written with its data)
    finished_at: str | None = None
    error: str | None = None
    error_kind: str | None = None
    records: int | None = None
    accepted: int | None = None
    rejected: int | None = None
    observations: int | None = None
    rejections: str | None = None  # JSON: [rejection, ...]

    DONE: ClassVar[tuple[str, ...]] = ("done", "failed")

    def to_hash(self) -> dict[str, HashValue]:
        return _write_hash(self)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> PushRecord:
        return cls(**_read_hash(_PUSH_KINDS, raw))

    @property
    def finished(self) -> bool:
        """Done or failed for good (applying it again would do nothing)."""
        return self.status in self.DONE


_FEED_STATE_KINDS = _hash_kinds(FeedState)
_PUSH_KINDS = _hash_kinds(PushRecord)


class _Packer:
    """Commands packed by hiredis in C, as they are: it takes bytes, str, int and float (a float written as repr
    writes it, as redis-py does) and refuses anything else. redis-py's own packer first runs its encoder in Python
    over every argument: a sixth of a first load's time (2.6 million calls for 30,000 centers). What hiredis
    refuses (a bool, None), and a command named in two words, go to redis-py's packer, which names the problem as
    before."""

    def __init__(self) -> None:
        encode = redis.connection.Encoder("utf-8", "strict", False).encode
        python = redis.connection.PythonRespSerializer(6000, encode)
        self._fallback = redis.connection.HiredisRespSerializer(python.pack, encode)

    def pack(self, *args: Any) -> list[bytes]:
        first = args[0]
        if type(first) in (str, bytes) and len(first.split()) != 1:  # a command named in two words
            return list(self._fallback.pack(*args))
        try:
            return [hiredis.pack_command(args)]
        except (TypeError, UnicodeEncodeError):
            return list(self._fallback.pack(*args))


_COMMANDS = _Packer()

#: a staged write's transaction: its recorded calls, each with the kind of reply summed (``staging.Staged``)
_Chunk = list[tuple[staging.Op, str]]


def connect(url: str, *, timeout: float = 2.0, max_connections: int = 50, retries: int = 2) -> redis.Redis:
    """A client with explicit timeouts and bounded, jittered retries (never block forever).

    ``redis+sentinel://host1:26379,host2:26379/<master name>/<db>`` follows the primary that Redis
    Sentinel names, across failovers. The HTTP API uses a short timeout and no retries: while
    Redis is down it must answer 503 fast."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError] if retries else [],
        "command_packer": _COMMANDS,
    }
    if url.startswith("redis+sentinel://"):
        sentinels, service, db = _sentinel_url(url)
        sentinel = redis.sentinel.Sentinel(sentinels, socket_timeout=timeout, socket_connect_timeout=timeout)
        return sentinel.master_for(service, db=db, max_connections=max_connections, **options)
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout, **options)
    return redis.Redis(connection_pool=pool)


def connect_async(url: str, *, timeout: float = 2.0, max_connections: int = 50) -> redis.asyncio.Redis:
    """``connect``'s asyncio twin for the HTTP API's near-you search: the same URL forms and timeouts, no
    retries (the API answers 503 fast instead)."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
    }
    if url.startswith("redis+sentinel://"):
        sentinels, service, db = _sentinel_url(url)
        sentinel = redis.asyncio.sentinel.Sentinel(sentinels, socket_timeout=timeout, socket_connect_timeout=timeout)
        return sentinel.master_for(service, db=db, max_connections=max_connections, **options)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, **options
    )
    return redis.asyncio.Redis(connection_pool=pool)


def _sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int]:
    hosts, _, rest = url.removeprefix("redis+sentinel://").partition("/")
    service, _, db = rest.partition("/")
    if not hosts or not service:
        raise ValueError("a Sentinel URL is redis+sentinel://host:port[,host:port]/<master name>[/<db>]")
    sentinels = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]) if ":" in h else 26379) for h in hosts.split(",")]
    return sentinels, service, int(db or 0)


#: how far from a new record its candidate facilities are looked for (meters); farther for a record placed
#: only at its ZIP centroid, whose true place may be a few kilometres off
MATCH_RADIUS_M = 300
MATCH_RADIUS_ZIP_M = 5000
MATCH_CANDIDATES = 25


@dataclass
class LinkPlan:
    """The links of one snapshot: record -> facility, and the members of every facility that changes."""

    link: dict[str, str] = field(default_factory=dict)
    leaving: dict[str, str] = field(default_factory=dict)  # removed record -> its facility
    before: dict[str, set[str]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    centers: dict[str, list[facility.Member]] = field(default_factory=dict)
    #: facility -> (index tokens, identifiers) as stored before this snapshot
    previous: dict[str, tuple[set[str], set[tuple[str, str]]]] = field(default_factory=dict)
    explanations: dict[str, dict[str, Any]] = field(default_factory=dict)
    uncertain: list[tuple[str, str, match.Verdict]] = field(default_factory=list)
    #: facilities founded by a record of this snapshot (new ids: nobody else can be writing them)
    founded_here: set[str] = field(default_factory=set)
    #: facility -> which of the fields a facility may leave out (m, x) its stored hash holds
    spelled: dict[str, set[str]] = field(default_factory=dict)

    @property
    def facilities(self) -> set[str]:
        return set(self.members)

    @property
    def recompose(self) -> list[str]:
        """The facilities whose read documents are built again: those that keep a record."""
        return sorted(f for f, ms in self.members.items() if ms)


class _Grid:
    """Facilities founded in one snapshot, found again by place (a ~500 m grid) or shared identifier."""

    CELL = 0.005  # degrees

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], list[tuple[float, float, str]]] = defaultdict(list)
        self.ids: dict[tuple[str, str], set[str]] = defaultdict(set)

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return int(lat // self.CELL), int(lon // self.CELL)

    def add(self, center: Center, facility_id: str) -> None:
        if center.latitude is not None and center.longitude is not None:
            self.cells[self._cell(center.latitude, center.longitude)].append(
                (center.latitude, center.longitude, facility_id)
            )
        for x in center.external_ids:
            self.ids[(x.system.lower(), x.value)].add(facility_id)

    def near(self, center: Center) -> set[str]:
        found: set[str] = set()
        for x in center.external_ids:
            found |= self.ids.get((x.system.lower(), x.value), set())
        if center.latitude is None or center.longitude is None:
            return found
        zip_placed = center.geo_precision is GeoPrecision.POSTAL_CODE
        reach = MATCH_RADIUS_ZIP_M if zip_placed else MATCH_RADIUS_M
        span = int(reach / 111_000 / self.CELL) + 1
        ci, cj = self._cell(center.latitude, center.longitude)
        for di in range(-span, span + 1):
            for dj in range(-span, span + 1):
                for lat, lon, fid in self.cells.get((ci + di, cj + dj), ()):
                    if geography.haversine_m(center.latitude, center.longitude, lat, lon) <= reach:
                        found.add(fid)
        return found


@dataclass
class _Look:
    """What a write read of its feed before planning (``Store._look``): the members it plans with (a partial
    write's: those of its records), the feed's size, and for a partial write what is stored of its records."""

    members: set[str]
    count: int = 0
    stored: dict[str, StoredRecord] | None = None
    #: the feed's write token as read (feed meta ``w``), None when none
    token: str | None = None


@dataclass(frozen=True)
class StoredRecord:
    """What a write reads of a stored feed record: its digest, the facility it is linked to ("" when none), the
    order of the write that wrote it and the authority of its feed when it was written (None when unknown)."""

    digest: bytes | None
    facility: str = ""
    written: int | None = None
    authority: int | None = None

    @classmethod
    def read(
        cls,
        record_id: str,
        digest: bytes | None,
        fac: bytes | None,
        written: bytes | None,
        authority: bytes | None = None,
    ) -> StoredRecord:
        """From r:{record} h, fac, o and a as Redis returns them."""
        return cls(
            digest,
            facility_of_record(record_id, digest, fac),
            int(written) if written is not None else None,
            int(authority) if authority is not None else None,
        )


@dataclass
class RecordDiff:
    """A snapshot's records against the stored ones: which to write, which left, and the counts."""

    result: ReplaceResult
    #: changed records to write: record id -> (JSON, digest)
    changed: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    #: records that left the feed (read, not in the snapshot)
    removed: list[str] = field(default_factory=list)
    #: the stored records read: record id -> (digest, facility), as ``Store._plan_links`` takes them
    old: dict[str, tuple[bytes | None, str]] = field(default_factory=dict)


#: a record's digest, in bytes (an earlier release kept it as 32 hexadecimal digits, and its feed and facility
#: spelled out)
DIGEST_SIZE = 16


def record_digest(record: bytes) -> bytes:
    """A feed record's stored digest (``r:{record}`` h): equal JSON, equal digest."""
    return hashlib.blake2b(record, digest_size=DIGEST_SIZE).digest()


def feed_of_record(record_id: str, stored: bytes | str | None = None) -> str:
    """The feed of a stored record: what its id says (a record's id is "{feed}:{source}", and a feed's id holds no
    colon: ``model.Center``), or ``r:{record}`` f where a release before this one kept it."""
    return _str(stored) if stored else record_id.split(":", 1)[0]


def facility_members(facility_id: str, composed: bytes | None, stored: bytes | str | None) -> set[str]:
    """The records a stored facility lists: ``c:{facility}`` m as stored, else (a facility of its founding record
    alone keeps no m) the facility's own id; none when the facility is not stored (no composed record, j)."""
    if stored:
        return set(_str(stored).split())
    return {facility_id} if composed is not None else set()


def facility_of_record(record_id: str, digest: bytes | None, stored: bytes | str | None) -> str:
    """The facility a stored record is linked to: ``r:{record}`` fac as stored, else the record's own id (a
    record that founded its facility keeps no fac); "" when the record is not stored (no digest)."""
    if stored:
        return _str(stored)
    return record_id if digest is not None else ""


def diff_records(
    new: Mapping[str, Center],
    stored: Mapping[str, StoredRecord],
    *,
    kept: frozenset[str] = frozenset(),
    order: int = 0,
    force: bool = False,
    authority: int | None = None,
) -> RecordDiff:
    """Pure: the record changes of a snapshot. ``stored``: the records read (the feed's members, or for a partial
    write those it carries; ``kept`` ones not read); ``kept``: stored records carried unchanged without being sent
    (counted unchanged, nothing written). A record whose digest and link are as stored, and written with the feed's
    ``authority`` (when given), is unchanged, unless ``force``; one last written by a later write (``order``) is
    superseded; every other is added or updated (a feed whose authority changed rewrites its records, and their
    facilities are composed again by the new ranks)."""
    result = ReplaceResult(unchanged=len(kept))
    diff = RecordDiff(result, old={rid: (s.digest, s.facility) for rid, s in stored.items()})
    later = {rid for rid, s in stored.items() if s.written is not None and s.written > order and rid in new}
    diff.removed = sorted(set(stored) - set(new))
    for rid, center in new.items():
        if center.latitude is None:
            result.needs_location.append(rid)
        record = center.model_dump_json().encode()
        digest = record_digest(record)
        result.digests[rid] = digest
        prev = stored.get(rid)
        if (
            prev is not None
            and prev.digest == digest
            and prev.facility
            and not force
            and (authority is None or prev.authority in (None, authority))
        ):
            result.unchanged += 1
            continue
        if rid in later:
            result.superseded += 1
            continue
        if prev is None or prev.digest is None:
            result.added += 1
        else:
            result.updated += 1
        diff.changed[rid] = (record, digest)
    result.removed = len(diff.removed)
    return diff


@dataclass
class FacilityChange:
    """One facility written (``fields``: its hash) or removed (``fields`` None), with its identifier changes."""

    facility: str
    fields: dict[str, Any] | None
    identifiers_added: list[tuple[str, str]] = field(default_factory=list)
    identifiers_removed: list[tuple[str, str]] = field(default_factory=list)
    #: fields of its hash to delete: left out now (``facility_members``), stored before
    cleared: list[str] = field(default_factory=list)


@dataclass
class FacilityDiff:
    """The facility, filter-index and GEO changes of a link plan: index token -> facilities, GEO key -> facilities
    (``geo_add``: flat lon, lat, facility triples as GEOADD takes them)."""

    facilities: list[FacilityChange] = field(default_factory=list)
    index_add: dict[str, list[str]] = field(default_factory=dict)
    index_rem: dict[str, list[str]] = field(default_factory=dict)
    geo_add: dict[str, list[Any]] = field(default_factory=dict)
    geo_rem: dict[str, list[str]] = field(default_factory=dict)


def diff_facilities(keys: Keys, plan: LinkPlan, records: Mapping[str, bytes] | None = None) -> FacilityDiff:
    """Pure: every facility whose members change, composed again (``plan.centers``) and compared with its index
    tokens and identifiers as read (``plan.previous``): its hash, identifier, filter-index and GEO changes. A
    facility left with no record leaves every index.

    ``records``: the JSON of the feed records this write stores (record id -> bytes, as ``r:{record}`` j gets
    them). A facility founded by one of them and composed of it alone keeps ``COMPOSED_FROM_RECORD`` as its
    composed record when ``facility.single`` of that JSON gives exactly the composed one: readers compose it as
    they read (lua/readdoc.lua)."""
    out = FacilityDiff()
    index_add: dict[str, list[str]] = defaultdict(list)
    index_rem: dict[str, list[str]] = defaultdict(list)
    geo_add: dict[str, list[Any]] = defaultdict(list)
    geo_rem: dict[str, list[str]] = defaultdict(list)
    for fid in sorted(plan.facilities):
        prev_tokens, prev_ids = plan.previous.get(fid, (set(), set()))
        members = plan.centers.get(fid, [])
        if not members:
            for t in prev_tokens:
                index_rem[t].append(fid)
            for key in keys.geo_keys(prev_tokens):
                geo_rem[key].append(fid)
            out.facilities.append(FacilityChange(fid, None, identifiers_removed=list(prev_ids)))
            continue
        own = records.get(fid) if records and len(members) == 1 and members[0].center.id == fid else None
        alone = facility.compose_alone(fid, members[0], own) if own is not None else None
        doc = alone if alone is not None else facility.compose(fid, members)
        tokens = facility.index_tokens(doc)
        indexed = doc["status"] != CenterStatus.INACTIVE.value
        want = set(tokens) if indexed else set()
        ids = set(facility.identifiers(doc))
        located = doc["latitude"] is not None and doc["longitude"] is not None
        # a facility of its founding record alone keeps one byte where readers compose it from the record: when
        # composing the record as read gives byte for byte what compose gives (compose_alone: sure of it)
        if alone is not None:
            stored = COMPOSED_FROM_RECORD
        else:
            body = orjson.dumps(doc)
            same = own is not None and orjson.dumps(facility.single(orjson.loads(own))) == body
            stored = COMPOSED_FROM_RECORD if same else pack(body)
        fields_: dict[str, Any] = {
            "j": stored,
            "p": "1" if located and indexed else "0",
            "t": " ".join(sorted(token_code(t) for t in want)),
        }
        spelled, cleared = plan.spelled.get(fid, set()), []  # a field stored before and left out now is deleted
        names = sorted(c.center.id for c in members)
        if names != [fid]:  # a facility of its founding record alone keeps no m (facility_members)
            fields_["m"] = " ".join(names)
        elif "m" in spelled:
            cleared.append("m")
        if ids:  # none: no x
            fields_["x"] = kept_json(sorted(ids))
        elif "x" in spelled:
            cleared.append("x")
        out.facilities.append(
            FacilityChange(
                fid,
                fields_,
                identifiers_added=list(ids - prev_ids),
                identifiers_removed=list(prev_ids - ids),
                cleared=cleared,
            )
        )
        for t in want - prev_tokens:
            if not t.startswith("loc:"):  # a level of care is searched in its own GEO index (geo:loc:{level})
                index_add[t].append(fid)
        for t in prev_tokens - want:  # ix:loc:* too (sets earlier releases kept: a level dropped leaves them)
            index_rem[t].append(fid)
        new_geo = set(keys.geo_keys(want)) if located and indexed else set()
        for key in set(keys.geo_keys(prev_tokens)) | {keys.geo}:
            if key not in new_geo:
                geo_rem[key].append(fid)
        for key in new_geo:
            geo_add[key].extend((doc["longitude"], doc["latitude"], fid))
    out.index_add, out.index_rem, out.geo_add, out.geo_rem = (
        dict(index_add),
        dict(index_rem),
        dict(geo_add),
        dict(geo_rem),
    )
    return out


@dataclass(frozen=True)
class ReplyAt:
    """Where a queued write's replies are in its transaction's: the observe script's ({written, stale}) and the
    prune script's (removed), when queued."""

    observe: int | None = None
    prune: int | None = None


class _Counted:
    """A transaction pipeline (or a ``_Recorder``) whose queued commands are counted: each call returns the
    position of its reply."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.queued = 0

    def __getattr__(self, name: str) -> Callable[..., int]:
        method = getattr(self.pipe, name)

        def queue(*args: Any, **kwargs: Any) -> int:
            method(*args, **kwargs)
            self.queued += 1
            return self.queued - 1

        return queue


class _Lease:
    """The writer lock, renewed by a thread every quarter of its lease until ``end``; ``check`` raises once
    it was lost (the write must stop: another writer may hold the lock now)."""

    def __init__(self, store: Store, token: str) -> None:
        self.store, self.token = store, token
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="writer-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(WRITER_LEASE_SECONDS / 4):
            try:
                if not self.store.acquire_lock(WRITER_LOCK, WRITER_LEASE_SECONDS, owner=self.token):
                    self.lost = True
                    return
            except StoreUnavailable:
                continue  # Redis away for a moment: try again; the lease is long

    def check(self) -> None:
        if self.lost:
            raise StoreUnavailable("a staged write lost the store's writer lock (its lease ran out)")

    def end(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.store.release_lock(WRITER_LOCK, self.token)


class _Recorder:
    """Stands in for a transaction pipeline in a staged write: the feed's members are read at once;
    commands queued after ``multi()`` are recorded (``aggregator.staging`` cuts them up)."""

    def __init__(
        self, client: redis.Redis, center_prefix: str, fingerprints: Callable[[Sequence[str]], list[str]]
    ) -> None:
        self.client = client
        self.center_prefix = center_prefix
        self.ops: list[staging.Op] = []
        self.members_before: set[str] = set()
        #: facility -> what the plan read of it (checked again under the writer lock)
        self.fingerprints: dict[str, str] = {}
        self._digest = fingerprints

    def smembers(self, key: str) -> set[bytes]:
        found: set[bytes] = self.client.smembers(key)  # type: ignore[assignment]
        self.members_before = _strs(found)
        return found

    def watch(self, *keys: str) -> None:
        """Where a transaction would WATCH facilities, note what they hold now (compared under the lock)."""
        ids = [key[len(self.center_prefix) :] for key in keys if key.startswith(self.center_prefix)]
        self.fingerprints.update(zip(ids, self._digest(ids), strict=True))

    def multi(self) -> None:
        """Commands from here on are recorded."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            self.ops.append((name, args, kwargs))

        return record


def _pairs(reply: Any) -> dict[Any, Any]:
    """An HGETALL reply as a dict: RESP3 sends a map, RESP2 field, value, ..."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


class Store:
    """Facilities, feed records, availability and feed snapshots in Redis. Pass a client in (no globals)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        *,
        stage_above: int = STAGE_ABOVE,
        async_client: Callable[[], redis.asyncio.Redis] | None = None,
        async_in_flight: int = 50,
    ) -> None:
        self.redis = client
        #: opens the asyncio client of ``count_and_search`` (one per event loop; None, as for a store built
        #: on a client handed in: the same call runs in a worker thread)
        self._async_connect = async_client
        self._async: tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis, asyncio.Semaphore] | None = None
        #: asyncio calls in flight at once (``connect_async``'s pool holds this many connections)
        self._async_in_flight = async_in_flight
        self.keys = Keys(prefix)
        self.stage_above = stage_above
        #: the cost of one staged transaction (``staging.BUDGET``; tests make it small to see many steps)
        self.stage_budget = staging.BUDGET
        #: called with the step's name ("masked", "chunk", "flipped", "cleaned") as a staged write goes on
        self.on_stage_step: Callable[[str], None] = lambda step: None
        reads = _lua("readdoc") + _lua("visible")
        self._near = client.register_script(reads + _token_prelude() + _lua("near"))
        self._rate_near = client.register_script(reads + _lua("rate_first") + _token_prelude() + _lua("near"))
        self._get = client.register_script(reads + _lua("get"))
        self._mask = client.register_script(_lua("readdoc") + _lua("mask"))
        self._fingerprint = client.register_script(_lua("fingerprint"))
        self._cleanup = client.register_script(_token_prelude() + _lua("cleanup"))
        self._changed = client.register_script(_lua("changed"))
        self._look_script = client.register_script(_lua("look"))
        prelude = _lua("readdoc") + _lua("doc")
        self._observe_src = prelude + _lua("observe")
        self._prune_src = prelude + _lua("prune")
        self._compose_src = prelude + _lua("compose")
        self._ratelimit = client.register_script(_lua("ratelimit"))
        self._accept_push = client.register_script(_lua("accept_push"))
        self._begin_push = client.register_script(_lua("begin_push"))
        self._push_not_applied = client.register_script(_lua("push_not_applied"))
        self._rate_accept_push = client.register_script(_lua("rate_first") + _lua("accept_push"))
        self._rate = client.register_script(_lua("rate"))
        self._lock = client.register_script(_lua("lock"))
        self._unlock = client.register_script(_lua("unlock"))

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX, **kwargs: Any) -> Store:
        twin = {k: kwargs[k] for k in ("timeout", "max_connections") if k in kwargs}
        return cls(
            connect(url, **kwargs),
            prefix,
            async_client=lambda: connect_async(url, **twin),
            async_in_flight=twin.get("max_connections", 50),
        )

    # ----------------------------------------------------------------------------------- errors

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except redis.exceptions.NoScriptError:
            raise
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError) as exc:
            raise StoreUnavailable(f"Redis unavailable while {what}: {exc}") from exc
        except (
            redis.exceptions.ReadOnlyError,
            redis.exceptions.OutOfMemoryError,
            redis.exceptions.MasterDownError,
        ) as exc:
            raise StoreUnavailable(f"Redis refused {what}: {type(exc).__name__} {exc}") from exc
        except redis.ResponseError as exc:
            reply = str(exc).split("caused error: ", 1)[-1]  # a pipeline names its command first
            if reply.startswith(("OOM", "READONLY", "MISCONF", "LOADING", "MASTERDOWN", "BUSY")):
                raise StoreUnavailable(f"Redis refused {what}: {exc}") from exc
            raise

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one client call, translating redis-py's errors (its reply types are loose: Any)."""
        with self._translated(what):
            return fn()

    def ping(self) -> bool:
        return bool(self._call("pinging", self.redis.ping))

    # ------------------------------------------------------------------------------------ reads

    def search(
        self,
        *,
        longitude: float,
        latitude: float,
        radius_mi: float,
        limit: int,
        groups: Sequence[Sequence[str]] = (),
        levels: Sequence[str] = (),
        level_filter: bool = False,
        available_only: bool = False,
        now: datetime,
        first_radius_mi: float = 2.0,
        max_examined: int = MAX_EXAMINED,
    ) -> SearchHits:
        """Nearest-first centers within ``radius_mi`` passing the filters, in one round trip, examining at
        most ``max_examined`` candidates (``stopped`` says the search ended there; see ``lua/near.lua``).

        ``groups``: index tokens, OR within a group and AND across groups. With ``available_only``
        a center needs a fresh available/limited observation (at one of ``levels``, if given).
        ``level_filter``: only centers offering one of ``levels`` (searched in their own indexes)."""
        keys, args = self._search_command(
            longitude=longitude,
            latitude=latitude,
            radius_mi=radius_mi,
            limit=limit,
            groups=groups,
            levels=levels,
            level_filter=level_filter,
            available_only=available_only,
            now=now,
            first_radius_mi=first_radius_mi,
            max_examined=max_examined,
        )
        return self._hits(self._call("searching", lambda: self._evalsha(self._near, keys, args)))

    def search_documents(self, **search: Any) -> DocumentHits:
        """``search`` (the same arguments) with each hit's read document as Redis returned it, not decoded
        (``read_doc`` decodes one): what the search itself costs, without the reading."""
        keys, args = self._search_command(**search)
        return self._documents(self._call("searching", lambda: self._evalsha(self._near, keys, args)))

    def _search_command(
        self,
        *,
        longitude: float,
        latitude: float,
        radius_mi: float,
        limit: int,
        groups: Sequence[Sequence[str]] = (),
        levels: Sequence[str] = (),
        level_filter: bool = False,
        available_only: bool = False,
        now: datetime,
        first_radius_mi: float = 2.0,
        max_examined: int = MAX_EXAMINED,
    ) -> tuple[list[str], list[Any]]:
        args: list[Any] = [
            self.keys.prefix,
            repr(longitude),
            repr(latitude),
            repr(radius_mi),
            limit,
            _ms(now),
            1 if available_only else 0,
            repr(first_radius_mi),
            len(groups),
        ]
        for group in groups:
            if any(token.startswith("loc:") for token in group):  # no ix:loc set is kept: it would find nothing
                raise ValueError("a level of care is searched with levels=, not as an index token")
            args.append(len(group))
            args.extend(group)
        args.append(len(levels))
        args.extend(levels)
        args.append(max_examined)
        keys = [self.keys.geo_level(lv) for lv in levels] if level_filter and levels else [self.keys.geo]
        return keys, args

    @classmethod
    def _hits(cls, raw: list[Any]) -> SearchHits:
        return _decoded(cls._documents(raw))

    @staticmethod
    def _documents(raw: list[Any]) -> DocumentHits:
        hits = DocumentHits()
        if len(raw) % 3 == 1:  # the script stopped after max_examined candidates
            hits.stopped = True
            raw = raw[:-1]
        for i in range(0, len(raw), 3):
            hits.append((raw[i].decode(), float(raw[i + 1]), raw[i + 2]))
        return hits

    async def count_and_search(
        self, client: str, window_ms: int, allowed: int, search: Mapping[str, Any]
    ) -> tuple[int | None, SearchHits]:
        """``count_request`` and ``search`` in one script call (``lua/rate_first.lua``), awaited without
        blocking the event loop: the HTTP API's near-you search. Over ``allowed`` requests in the window, no
        search runs: (ms until the window ends, no hits); else (None, the hits). A store without an asyncio
        client (one built on a client handed in, not ``from_url``) runs the same call in a worker thread."""
        retry_ms, found = await self.count_and_search_documents(client, window_ms, allowed, search)
        return retry_ms, _decoded(found)

    async def count_and_search_documents(
        self, client: str, window_ms: int, allowed: int, search: Mapping[str, Any]
    ) -> tuple[int | None, DocumentHits]:
        """``count_and_search`` with each hit's read document as Redis returned it, not decoded (``read_doc``
        decodes one): for a reader that keeps what it made of a document (``aggregator.api.rendered``)."""
        keys, args = self._search_command(**search)
        keys.insert(0, self.keys.rate(client))
        args[:0] = [window_ms, allowed]
        found = self._async_client()
        if found is None:
            raw = await asyncio.to_thread(
                lambda: self._call("searching", lambda: self._evalsha(self._rate_near, keys, args))
            )
        else:
            aclient, in_flight = found
            async with in_flight:
                with self._translated("searching"):
                    try:
                        raw = await aclient.execute_command("EVALSHA", self._rate_near.sha, len(keys), *keys, *args)
                    except redis.exceptions.NoScriptError:  # Redis restarted or was flushed: load it once more
                        await aclient.script_load(self._rate_near.script)
                        raw = await aclient.execute_command("EVALSHA", self._rate_near.sha, len(keys), *keys, *args)
        if len(raw) == 2 and raw[0] == b"__limited__":
            return max(0, int(raw[1])), DocumentHits()
        return None, self._documents(raw)

    def _async_client(self) -> tuple[redis.asyncio.Redis, asyncio.Semaphore] | None:
        """The asyncio client for the running event loop (its connections belong to that loop), and the
        semaphore that keeps its calls in flight within its pool: a burst waits its turn, as it did for a
        worker thread, instead of failing for want of a connection."""
        if self._async_connect is None:
            return None
        loop = asyncio.get_running_loop()
        current = self._async
        if current is None or current[0] is not loop:
            current = (loop, self._async_connect(), asyncio.Semaphore(self._async_in_flight))
            self._async = current
        return current[1], current[2]

    def _evalsha(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA straight through the client (the hot path), loading the script if Redis lost it."""
        try:
            return self.redis.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return script(keys=keys, args=args)

    def get_center(self, center_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A facility's record and its observations (as readers may see them: ``lua/visible.lua``), or None.
        A feed record's id answers for the facility it is linked to (the record says its facility's ``id``)."""
        doc = self._call("reading a center", lambda: self._evalsha(self._get, [], [self.keys.prefix, center_id]))
        if doc is None:
            return None
        return read_doc(doc)

    def facility_of(self, record_id: str) -> str | None:
        """The facility a stored feed record is linked to (None when the record is not stored)."""
        digest, fac = self._call("reading a link", lambda: self.redis.hmget(self.keys.record(record_id), "h", "fac"))
        return facility_of_record(record_id, digest, fac) or None

    def link_explanation(self, record_id: str) -> dict[str, Any] | None:
        """Why a record was linked to its facility (rule and scores), when it was matched."""
        raw = self._call("reading a link", lambda: self.redis.hget(self.keys.record(record_id), "why"))
        if raw == FOUNDED_ALONE:
            return founded_alone(record_id)
        return orjson.loads(unpack(raw)) if raw else None

    def _members(self, key: str) -> set[str]:
        return _strs(self._call("reading a set", lambda: self.redis.smembers(key)))

    def feed_members(self, feed_id: str) -> set[str]:
        return self._members(self.keys.feed_members(feed_id))

    def feed_ids(self) -> set[str]:
        return self._members(self.keys.feeds)

    def feed_meta(self, feed_id: str) -> dict[str, str]:
        raw = self._call("reading a feed", lambda: self.redis.hgetall(self.keys.feed_meta(feed_id)))
        return {_str(k): _str(v) for k, v in raw.items()}

    def needs_location(self) -> list[str]:
        return sorted(self._members(self.keys.needs_location))

    def count_located(self) -> int:
        return int(self._call("counting", lambda: self.redis.zcard(self.keys.geo)))

    # ----------------------------------------------------------------------------------- writes

    def replace_feed(
        self,
        feed_id: str,
        centers: Iterable[Center],
        observations: Iterable[Availability],
        *,
        now: datetime,
        source: str | None = None,
        partial: bool = False,
        authority: int = 0,
        order: int | None = None,
        keep: Mapping[str, Iterable[str]] | None = None,
        kept: Iterable[str] = (),
        run: FeedRunWrite | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> ReplaceResult:
        """Make ``centers`` (the feed's records) the feed's whole snapshot, atomically and idempotently.

        Each new record is linked to a facility (matched with the records near it, or founding its own);
        the facilities whose members changed are composed again (``aggregator.facility``, identity from the
        feed with the highest ``authority``). Records that left the feed leave their facility (a facility
        with no record left leaves every index); unchanged records are not rewritten; the feed's own
        observations (``source``) for levels a record no longer reports are dropped. One MULTI/EXEC, with
        the facilities it changes watched: a concurrent reader sees the old snapshot or the new one, links
        included, never a mix. ``partial``: an update of some records (a partner's push): nothing else is
        removed. ``order`` (a push's acceptance time, epoch ms; else ``now``): a record last written by a
        later write is not overwritten by an earlier one applied late (its observations still go through
        newest-wins). ``keep``: levels, by center id, whose figures this write carried but rejected: the
        feed's previous figures for them are not pruned. ``kept``: ids of stored records this snapshot carries
        unchanged without sending them (rows the ingest did not normalize again, ``changed_records`` checked):
        they stay members and nothing of their records is written; their figures in ``observations`` (a row that
        gave no time, reported again at this run's time) are written as the others are, never pruned. ``run``: a
        feed run's write, which makes its feed's validators and (with a fingerprint) row memos void as it lands
        (``begin_feed_write``: in the write's own transaction, or just before a staged write's first step; a write
        that fails before then leaves them as they were). ``also``: queues more commands on the write's own
        transaction, after its own (a push is marked done as its data lands, ``queue_end_push``); a staged write runs
        them in a transaction of their own once it is done."""
        new = {c.id: c for c in centers}
        still = frozenset(kept) - new.keys()
        obs = list(observations)
        for c in new.values():
            if c.feed_id != feed_id:
                raise ValueError(f"center {c.id} does not belong to feed {feed_id}")
        k = self.keys
        members_key = k.feed_members(feed_id)
        order_ms = order if order is not None else _ms(now)
        size = (
            len(new)
            + len(obs)
            + (
                0
                if partial
                else max(0, int(self._call("reading a feed", lambda: self.redis.scard(members_key))) - len(still))
            )
        )
        if size > self.stage_above:
            result = self._replace_staged(
                feed_id, new, obs, now, source, partial, authority, order_ms, keep or {}, still, run
            )
            if also is not None:
                with self._translated(f"replacing feed {feed_id} (staged)"), self.redis.pipeline() as pipe:
                    also(pipe)
                    pipe.execute()
            return result
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        with self._translated(f"replacing feed {feed_id}"), self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(members_key, k.feed_meta(feed_id), k.lock(WRITER_LOCK))
                    look = self._look(pipe, feed_id, new, still, partial)
                    if look is None:  # a staged write runs: wait, then read again
                        pipe.reset()
                        self._wait_for_writer(deadline)
                        continue
                    standing = look.token  # as this write is planned (the meta is watched: it stands until it lands)
                    result, _, at = self._queue_replace(
                        pipe,
                        feed_id,
                        new,
                        obs,
                        now,
                        source,
                        partial,
                        authority,
                        order_ms,
                        keep or {},
                        kept=still,
                        look=look,
                        run=run,
                    )
                    if run is not None:  # after every reply _queue_replace counts on: their places stand
                        self._queue_feed_write(pipe, feed_id, run.memo_fingerprint)
                    if also is not None:
                        also(pipe)
                    replies = pipe.execute()
                    result.memo_token = _memo_token(result, run, still, standing)
                    break
                except redis.WatchError:
                    pipe.reset()
                    continue
        if at.observe is not None:
            written, stale = replies[at.observe]
            result.observations_written, result.observations_stale = int(written), int(stale)
        if at.prune is not None:  # also when the snapshot carries no figure at all: what it dropped is counted
            result.observations_pruned = int(replies[at.prune])
        return result

    # ----------------------------------------------------------------------------- staged writes

    def _look(
        self, pipe: Any, feed_id: str, new: Mapping[str, Center], kept: frozenset[str], partial: bool
    ) -> _Look | None:
        """A small write's reads in one call on its watching ``pipe`` (``lua/look.lua``): None while a staged write
        holds the writer lock; else the feed's members (a partial write's: those of its records, sent or ``kept``,
        that are members, with what is stored of them) and the feed's size. A partial write keeping more records
        than ``LOOK_KEPT_MAX`` reads every member instead (one SMEMBERS, not a script asking for each)."""
        k = self.keys
        keys = [k.lock(WRITER_LOCK), k.feed_members(feed_id), k.feed_meta(feed_id)]
        named = partial and len(kept) + len(new) <= LOOK_KEPT_MAX
        sent = sorted(new) if named else []
        args = [k.prefix, "1" if named else "0", len(sent), *sent, *(sorted(kept - new.keys()) if named else ())]
        try:
            reply = pipe.evalsha(self._look_script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:  # Redis lost its scripts (a restart): the WATCH still holds
            pipe.script_load(self._look_script.script)
            reply = pipe.evalsha(self._look_script.sha, len(keys), *keys, *args)
        if int(reply[0]):
            return None
        _, found, count, kept_members, token = reply
        token = _str(token) if token else None
        if not named:
            return _Look(_strs(found), int(count), token=token)
        stored = {_str(rid): StoredRecord.read(_str(rid), *fields) for rid, *fields in found}
        return _Look(set(stored) | _strs(kept_members), int(count), stored, token)

    def _writer_free(self, pipe: Any, deadline: float, *keys: str) -> bool:
        """WATCH ``keys`` and the writer lock: True when no staged write runs; else wait a moment and say False
        (the caller starts over: the staged write may change what it read)."""
        writer = self.keys.lock(WRITER_LOCK)
        pipe.watch(*keys, writer)
        if not pipe.exists(writer):
            return True
        pipe.reset()
        self._wait_for_writer(deadline)
        return False

    def _wait_for_writer(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise StoreUnavailable("a large write has held the store's writer lock for too long; try again")
        time.sleep(0.05)

    def _take_writer(self) -> str:
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        while (token := self.acquire_lock(WRITER_LOCK, WRITER_LEASE_SECONDS)) is None:
            self._wait_for_writer(deadline)
        return token

    def _stages(self, state: str, feed_id: str | None = None) -> list[str]:
        """Generations in ``state`` ('w' writing, 'c' cleaning up), of ``feed_id`` if given."""
        k = self.keys
        gens = sorted(_str(g) for g, st in self.redis.hgetall(k.staging).items() if _str(st) == state)
        if feed_id is None or not gens:
            return gens
        feeds = self.redis.mget([k.stage(g, "feed") for g in gens])
        return [g for g, f in zip(gens, feeds, strict=True) if f is not None and _str(f) == feed_id]

    def _fingerprints(self, facility_ids: Sequence[str]) -> list[str]:
        return [
            _str(x)
            for ids in staging.pieces(facility_ids, staging.SCRIPT_ITEMS)
            for x in self._fingerprint(keys=[self.keys.center(i) for i in ids], args=[self.keys.prefix])
        ]

    def _plan_staged(
        self,
        feed_id: str,
        new: dict[str, Center],
        obs: list[Availability],
        now: datetime,
        source: str | None,
        partial: bool,
        authority: int,
        order: int,
        keep: Mapping[str, Iterable[str]],
        kept: frozenset[str],
        dead: Sequence[str],
        *,
        run: FeedRunWrite | None = None,
    ) -> tuple[_Recorder, ReplaceResult, set[str]]:
        """Plan a staged write, recording its commands; returns the recorder, the result and every facility
        it may change (those of ``dead`` generations included, to be composed again)."""
        extra: set[str] = set()
        for gen in dead:
            extra |= self._members(self.keys.stage(gen, "m"))
        while True:
            rec = _Recorder(self.redis, self.keys.center(""), self._fingerprints)
            try:
                result, touched, _ = self._queue_replace(
                    rec,
                    feed_id,
                    new,
                    obs,
                    now,
                    source,
                    partial,
                    authority,
                    order,
                    keep,
                    force=bool(dead),
                    extra=extra,
                    kept=kept,
                    run=run,
                )
            except redis.WatchError:  # a facility changed while it was planned: plan again
                continue
            return rec, result, touched | extra

    def _replace_staged(
        self,
        feed_id: str,
        new: dict[str, Center],
        obs: list[Availability],
        now: datetime,
        source: str | None,
        partial: bool,
        authority: int,
        order: int,
        keep: Mapping[str, Iterable[str]],
        kept: frozenset[str] = frozenset(),
        run: FeedRunWrite | None = None,
    ) -> ReplaceResult:
        """``replace_feed`` for a large write, as a staged generation (``aggregator.staging``).

        It is planned without the writer lock (planning a national feed takes a while; pushes go on
        meanwhile), then, holding the lock, checked: if the feed's members, its write token (any write of its
        records) or any facility it planned from changed since, it is planned again under the lock. Every other
        write of facility data waits while the lock is held. A generation of this feed whose writer died before its
        flip (still masked: readers see the state before it) is taken over: its facilities are composed again, every
        record of this snapshot is rewritten whatever its digest says, and one flip makes both visible."""
        k = self.keys
        args = (feed_id, new, obs, now, source, partial, authority, order, keep, kept)
        with self._translated(f"replacing feed {feed_id} (staged)"):
            planned_under = self.redis.hget(k.feed_meta(feed_id), "w")  # read before what the plan reads
            dead = self._stages("w", feed_id)
            rec, result, touched = self._plan_staged(*args, dead, run=run)
            lease = _Lease(self, self._take_writer())
            try:
                for gen in self._stages("c"):  # a clean-up a dead writer left
                    self._clean_stage(gen)
                # the token standing as this write begins (the writer lock keeps every other write out until the flip)
                standing = self.redis.hget(k.feed_meta(feed_id), "w")
                watched = sorted(rec.fingerprints)
                if (
                    self._stages("w", feed_id) != dead
                    or standing != planned_under  # a record written since it was read (a geocode retry, a push)
                    or self._members(k.feed_members(feed_id)) != rec.members_before
                    or self._fingerprints(watched) != [rec.fingerprints[f] for f in watched]
                ):
                    dead = self._stages("w", feed_id)
                    rec, result, touched = self._plan_staged(*args, dead, run=run)
                scripts = staging.Scripts(
                    observe=self._observe_src,
                    compose=self._compose_src,
                    prune=self._prune_src,
                    prefix=k.prefix,
                    geo=k.geo,
                    members=k.feed_members(feed_id),
                    feeds=k.feeds,
                    meta=k.feed_meta(feed_id),
                )
                plan = staging.plan(rec.ops, scripts, budget=self.stage_budget)
                gen = f"{_ms(now)}.{secrets.token_hex(4)}"
                if run is not None:
                    self.begin_feed_write(feed_id, run.memo_fingerprint)
                self._run_staged(gen, feed_id, plan, sorted(touched), result, lease)
                self._flip_and_clean(
                    gen, dead, feed_id, plan, set() if partial else rec.members_before - set(new) - kept
                )
                result.memo_token = _memo_token(result, run, kept, standing)
            finally:
                lease.end()
        return result

    def _run_staged(
        self, gen: str, feed_id: str, plan: staging.Staged, masked: Sequence[str], result: ReplaceResult, lease: _Lease
    ) -> None:
        k = self.keys
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(k.staging, gen, "w")
            pipe.set(k.stage(gen, "feed"), feed_id)
            pipe.execute()
        for ids in staging.pieces(masked, staging.SCRIPT_ITEMS):
            self._mask(keys=[k.masks, k.stage(gen, "m"), k.staging, *[k.center(f) for f in ids]], args=[k.prefix, gen])
        self.on_stage_step("masked")
        for key, items in (
            (k.stage(gen, "rm"), plan.deferred),
            (k.stage(gen, "hide"), plan.hide),
            (k.feed_members(feed_id), plan.members_added),
        ):
            for piece in staging.pieces(items, staging.MEMBERS):
                self.redis.sadd(key, *piece)
        if plan.add_feed:
            self.redis.sadd(k.feeds, feed_id)

        def done(chunk: _Chunk, replies: list[Any]) -> None:
            for (_op, kind), reply in zip(chunk, replies, strict=True):
                if kind == "observe":
                    result.observations_written += int(reply[0])
                    result.observations_stale += int(reply[1])
                elif kind == "prune":
                    result.observations_pruned += int(reply)
            lease.check()
            self.on_stage_step("chunk")

        self._run_transactions(plan.chunks, done)

    def _run_transactions(self, chunks: Sequence[_Chunk], done: Callable[[_Chunk, list[Any]], None]) -> None:
        """Each chunk of recorded calls as one MULTI/EXEC, in order, on one connection, the next one sent before
        the one before it is answered: Redis runs a transaction while this process packs the next, instead of
        each waiting for the other. ``done`` gets each chunk's replies once it is answered, before the chunk two
        after it is sent. A reply that is an error raises it, as a pipeline does; the one transaction sent after
        it may have been applied already, and so may one past a ``done`` that raises: a generation stopped before
        its flip is never seen, and the feed's next write takes it over whole, whichever of its transactions
        landed. A lost connection is retried as redis-py retries a pipeline, with the connection's retry budget
        for each transaction (a long write rides out as many short outages as it has transactions, as when each
        was a pipeline): the transactions not yet answered are sent again (each is a replay of the same writes)."""
        pool = self.redis.connection_pool
        conn = pool.get_connection()
        packed: dict[int, list[bytes]] = {}
        answered = [0]  # the first chunk not yet answered

        def pack(i: int) -> list[bytes]:
            pipe = self.redis.pipeline(transaction=True)
            for name, args, kwargs in (op for op, _kind in chunks[i]):
                getattr(pipe, name)(*args, **kwargs)
            return conn.pack_commands([("MULTI",), *[a for a, _options in pipe.command_stack], ("EXEC",)])

        def answers(n: int) -> list[Any]:
            conn.read_response()  # MULTI
            queued: list[redis.ResponseError] = []
            for _ in range(n):
                try:
                    conn.read_response()  # QUEUED, or the reason the command was refused
                except redis.ResponseError as exc:
                    queued.append(exc)
            try:
                replies = conn.read_response()
            except redis.exceptions.ExecAbortError:
                if queued:
                    raise queued[0] from None
                raise
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return cast(list[Any], replies)

        sent: list[int] = []  # chunks sent on this connection and not yet answered, in order
        following = [0]  # the next chunk to send

        def step() -> None:
            """Keep two transactions in flight, then read the first one's answer."""
            while following[0] < len(chunks) and len(sent) < 2:
                if following[0] not in packed:
                    packed[following[0]] = pack(following[0])
                conn.send_packed_command(packed[following[0]], check_health=not sent)
                sent.append(following[0])
                following[0] += 1
            i = sent.pop(0)
            replies = answers(len(chunks[i]))
            del packed[i]
            answered[0] = i + 1
            done(chunks[i], replies)

        def lost(_error: Exception) -> None:  # a new connection: what was not answered goes again
            conn.disconnect()
            sent.clear()
            following[0] = answered[0]

        try:
            while answered[0] < len(chunks):  # each transaction answered with its own retry budget
                conn.retry.call_with_retry(step, lost)
        except BaseException:
            conn.disconnect()  # replies of a transaction in flight are left unread: never reuse the connection
            raise
        finally:
            pool.release(conn)

    def _flip_and_clean(
        self, gen: str, dead: Sequence[str], feed_id: str, plan: staging.Staged, left: set[str]
    ) -> None:
        """The flip (one short transaction: the generation, and any it took over, become visible), then
        the clean-up: deferred removals, masks, the members that left."""
        k = self.keys
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(k.staging, mapping={g: "c" for g in (gen, *dead)})
            if plan.meta:
                pipe.hset(k.feed_meta(feed_id), mapping=plan.meta)  # type: ignore[arg-type]
            pipe.execute()
        self.on_stage_step("flipped")
        for g in (gen, *dead):
            self._clean_stage(g)
        for piece in staging.pieces(sorted(left), staging.MEMBERS):
            self.redis.srem(k.feed_members(feed_id), *piece)
        if plan.drop_feed:
            self.redis.srem(k.feeds, feed_id)
        self.on_stage_step("cleaned")

    def _clean_stage(self, gen: str) -> None:
        """Finish a flipped generation: its deferred index removals, then its masks, a batch at a time."""
        k = self.keys
        for what in ("rm", "m"):
            while int(self._cleanup(keys=[], args=[k.prefix, gen, staging.SCRIPT_ITEMS, what])) > 0:
                pass
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*[k.stage(gen, part) for part in ("hide", "rm", "m", "feed")])
            pipe.hdel(k.staging, gen)
            pipe.execute()

    def finish_staged(self) -> int:
        """Finish the clean-up of generations whose writer died after their flip (the sweep calls this);
        returns how many. Generations that died before their flip stay masked until their feed writes
        again (``replace_feed`` takes them over)."""
        with self._translated("finishing staged writes"):
            if not self._stages("c"):  # the usual case: nothing to finish, and no lock taken
                return 0
            token = self.acquire_lock(WRITER_LOCK, WRITER_LEASE_SECONDS)
            if token is None:
                return 0
            try:
                gens = self._stages("c")
                for gen in gens:
                    self._clean_stage(gen)
                return len(gens)
            finally:
                self.release_lock(WRITER_LOCK, token)

    def _queue_replace(
        self,
        pipe: Any,
        feed_id: str,
        new: dict[str, Center],
        obs: list[Availability],
        now: datetime,
        source: str | None,
        partial: bool,
        authority: int = 0,
        order: int = 0,
        keep: Mapping[str, Iterable[str]] | None = None,
        *,
        force: bool = False,
        extra: set[str] | None = None,
        kept: frozenset[str] = frozenset(),
        look: _Look | None = None,
        run: FeedRunWrite | None = None,
    ) -> tuple[ReplaceResult, set[str], ReplyAt]:
        """Plan a replace and queue its commands on ``pipe``; returns the result, every facility the commands
        may change and where the replies to read are. ``force``: rewrite every record whatever its digest says,
        and compose the facilities in ``extra`` again (taking over a staged write that died half-way).

        Reads (the feed's members, its stored records, the links: ``_plan_links``), the pure diffs
        (``diff_records``, ``diff_facilities``), then the writer (``_queue_writes``). ``look``: what ``_look`` read
        (else the feed's members are read here, and the records)."""
        if look is None:
            members = _strs(pipe.smembers(self.keys.feed_members(feed_id)))
            look = _Look(members, len(members))
        all_ids = look.members
        if force and kept:  # taking over a dead write rewrites every record: the caller must send them all
            raise KeptRecordsRefused(f"feed {feed_id}: a staged write died half-way; send every record")
        kept = kept & all_ids
        if look.stored is not None:
            stored = look.stored
        else:
            stored = self._read_records(sorted(all_ids & set(new)) if partial else sorted(all_ids - kept))
        diff = diff_records(new, stored, kept=kept, order=order, force=force, authority=authority)
        # links: a record keeps its facility; a new one is matched against nearby facilities
        plan = self._plan_links(feed_id, new, diff.old, diff.changed, diff.removed, authority, extra or set())
        self._watch_facilities(pipe, plan)
        # (a kept record's figures reported again, a row that gave no time, change no facility but its figures'
        # times: its facility is not masked while a staged write runs, each figure shows as soon as it is written)
        touched = plan.facilities | {plan.link.get(rid) or diff.old.get(rid, (None, ""))[1] or rid for rid in new}
        replies = self._queue_writes(
            _Counted(pipe),
            feed_id,
            new,
            obs,
            now,
            source,
            partial,
            authority,
            order,
            keep or {},
            kept,
            look.count + len(new.keys() - all_ids) if partial else len(new) + len(kept),
            diff,
            plan,
            run,
        )
        return diff.result, touched, replies

    def _read_many(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Read commands in one round trip, each reply as Redis sends it (HGETALL: field, value, ... ; see
        ``_pairs``). A pipeline without redis-py's bookkeeping of every command (about 4 us a command, against 1
        here): planning a write reads a few commands for each of its records. An error reply raises as a command's
        would, and its connection (replies may be left unread behind it) is dropped; a connection that broke is
        retried as the client's other commands are (its ``Retry``: the reads change nothing)."""
        if not commands:
            return []
        payload = [b"".join(part for c in commands for part in _COMMANDS.pack(*c))]
        pool = self.redis.connection_pool
        conn = pool.get_connection()

        def read() -> list[Any]:
            conn.send_packed_command(payload)
            return [conn.read_response() for _ in commands]

        try:
            return cast(list[Any], conn.retry.call_with_retry(read, lambda _error: conn.disconnect()))
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def _read_records(self, record_ids: Sequence[str]) -> dict[str, StoredRecord]:
        """What a write needs of these stored records (an absent one reads with no digest and no facility)."""
        if not record_ids:
            return {}
        replies = self._read_many([("HMGET", self.keys.record(rid), "h", "fac", "o", "a") for rid in record_ids])
        return {
            rid: StoredRecord.read(rid, digest, fac, written, authority)
            for rid, (digest, fac, written, authority) in zip(record_ids, replies, strict=True)
        }

    def _queue_writes(
        self,
        q: _Counted,
        feed_id: str,
        new: dict[str, Center],
        obs: list[Availability],
        now: datetime,
        source: str | None,
        partial: bool,
        authority: int,
        order: int,
        keep: Mapping[str, Iterable[str]],
        kept: frozenset[str],
        centers: int,
        diff: RecordDiff,
        plan: LinkPlan,
        run: FeedRunWrite | None = None,
    ) -> ReplyAt:
        """The writer: queue a replace's commands (after MULTI) and say where the replies to read are. ``centers``:
        the feed's size after the write; ``run``: a feed run's (its figures replace the feed's own whatever their
        times when its settings changed). A write that changes or removes records, or that stores rows normalized
        anew (their memos are saved after it), gives the feed a new write token (``ReplaceResult.write_token``,
        feed meta ``w``): row memos saved with it vouch for the records while it stands (``row_memos``)."""
        k = self.keys
        result, removed = diff.result, diff.removed
        own = run is not None and run.settings_changed
        if diff.changed or removed or (run is not None and run.memo_fingerprint is not None):
            result.write_token = secrets.token_hex(8)
        q.multi()
        q.queued = 0  # replies count from here
        for rid in removed:
            q.delete(k.record(rid))
            if plan.members.get(rid) and source:
                # the record founded a facility that other records keep: drop only its own figures
                q.eval(self._prune_src, 1, k.availability(rid), k.prefix, source, 0)
            elif not plan.members.get(rid):
                q.delete(k.availability(rid))
        for rid, (record, digest) in diff.changed.items():
            why = plan.explanations.get(rid)
            # no f: the record's id says its feed (feed_of_record)
            fields_: dict[str, Any] = {"j": pack(record), "h": digest, "a": authority, "o": order}
            link = plan.link[rid]
            if link != rid:  # a record that founded its facility keeps no fac (facility_of_record)
                fields_["fac"] = link
            stored = diff.old.get(rid, (None, ""))[0]
            if stored is not None and len(stored) != DIGEST_SIZE:  # written by an earlier release: f, fac = its id
                q.hdel(k.record(rid), "f", *(("fac",) if link == rid else ()))
            if why is not None:
                fields_["why"] = FOUNDED_ALONE if why == founded_alone(rid) else pack(orjson.dumps(why))
            q.hset(k.record(rid), mapping=fields_)
        self._queue_facilities(q, plan, result, {rid: record for rid, (record, _) in diff.changed.items()})
        for rid, fid, verdict in plan.uncertain:
            q.hset(
                k.matches,
                f"{rid}|{fid}",
                orjson.dumps(
                    {
                        "record": rid,
                        "facility": fid,
                        "rule": verdict.rule,
                        "scores": dict(verdict.scores),
                        "found_at": now.isoformat(),
                    }
                ),
            )
        result.uncertain = len(plan.uncertain)
        removed_or_located = removed + [rid for rid in new if new[rid].latitude is not None]
        if removed_or_located:
            q.srem(k.needs_location, *removed_or_located)
        if result.needs_location:
            q.sadd(k.needs_location, *result.needs_location)
        if removed and not partial:
            q.srem(k.feed_members(feed_id), *removed)
        if new:
            q.sadd(k.feed_members(feed_id), *sorted(new))
        if new or kept:
            q.sadd(k.feeds, feed_id)
        elif not partial:
            q.srem(k.feeds, feed_id)
        q.hset(
            k.feed_meta(feed_id),
            mapping={
                "centers": centers,
                "replaced_at": now.isoformat(),
                **({"w": result.write_token} if result.write_token else {}),
            },
        )
        if plan.recompose:
            q.eval(self._compose_src, *self._compose_args(plan.recompose))
        return self._queue_observations(q, new, obs, source, order, keep, kept, own=own)

    def _queue_observations(
        self,
        q: _Counted,
        new: dict[str, Center],
        obs: list[Availability],
        source: str | None,
        order: int,
        keep: Mapping[str, Iterable[str]],
        kept: frozenset[str] = frozenset(),
        *,
        own: bool = False,
    ) -> ReplyAt:
        """Queue the snapshot's observations (newest wins; ``own``: replacing the source's own whatever their
        times) and, for a feed's own ``source``, the pruning of its figures for levels a record no longer reports
        (``keep``: levels carried but rejected stay). Figures of ``kept`` records (stored as they are) are written
        too: a row that gave no time reports them again."""
        k = self.keys
        observe_at: int | None = None
        if obs:
            sent = [o for o in obs if o.center_id in new or o.center_id in kept]
            observe_at = q.eval(self._observe_src, *self._observe_args(sent, order, own=own))
        if not source or not (obs or new):
            return ReplyAt(observe=observe_at)
        levels: dict[str, list[str]] = defaultdict(list)
        for o in obs:
            levels[o.center_id].append(o.level_of_care.value)
        keys: list[str] = []
        argv: list[Any] = [k.prefix, source]
        for cid in new:
            lv = [*levels.get(cid, []), *sorted(keep.get(cid, ()))]
            keys.append(k.availability(cid))
            argv.extend((len(lv), *lv))
        return ReplyAt(observe=observe_at, prune=q.eval(self._prune_src, len(keys), *keys, *argv))

    def _observe_args(self, obs: Sequence[Availability], order: int, *, own: bool = False) -> list[Any]:
        """observe.lua's arguments: numkeys, each observation's a:{center} key, then prefix, order, mode ('own' or
        '') and each observation's field and JSON."""
        keys = [self.keys.availability(o.center_id) for o in obs]
        argv: list[Any] = [self.keys.prefix, order, "own" if own else ""]
        for o in obs:
            argv.extend((observation_field(o), observation_json(o, order)))
        return [len(keys), *keys, *argv]

    def _compose_args(self, facility_ids: Sequence[str]) -> list[Any]:
        """compose.lua's arguments: numkeys, each facility's c:{id} key, then the prefix."""
        return [len(facility_ids), *[self.keys.center(f) for f in facility_ids], self.keys.prefix]

    # ------------------------------------------------------------------------------- facilities

    def _watch_facilities(self, pipe: Any, plan: LinkPlan) -> None:
        """WATCH the facilities this snapshot changes, then check nobody changed their members since they
        were read (another feed's run linking to the same place): if so, the whole write starts over."""
        # a facility founded in this snapshot by one of its own records did not exist: nothing to watch
        ids = sorted(f for f in plan.facilities if plan.before.get(f) or f not in plan.founded_here)
        for fid in plan.facilities - set(ids):
            plan.previous[fid] = (set(), set())
        if not ids:
            return
        k = self.keys
        pipe.watch(*[k.center(f) for f in ids])
        reader = self.redis.pipeline(transaction=False)
        for fid in ids:
            reader.hmget(k.center(fid), "j", "m", "t", "x")
        for fid, (j, m, t, x) in zip(ids, reader.execute(), strict=True):
            if facility_members(fid, j, m) != plan.before[fid]:
                raise redis.WatchError(f"facility {fid} changed while this snapshot was planned")
            ids_ = {(a, b) for a, b in orjson.loads(x)} if x else set()
            plan.previous[fid] = ({token_of(kept) for kept in _str(t).split()} if t else set(), ids_)
            plan.spelled[fid] = {name for name, value in (("m", m), ("x", x)) if value is not None}

    def _plan_links(
        self,
        feed_id: str,
        new: Mapping[str, Center],
        old: Mapping[str, tuple[bytes | None, str]],
        records: Mapping[str, tuple[bytes, bytes]],
        removed: Sequence[str],
        authority: int,
        extra: set[str] | None = None,
    ) -> LinkPlan:
        """Which facility each changed record belongs to, and the members of every facility that changes
        (and of those in ``extra``, composed again from the records they list that still exist).

        A record linked before keeps its facility. A new one is compared (``aggregator.match``) with the
        records of facilities near it (GEO index) or sharing an identifier, and with the records of this
        snapshot placed before it; a "same" verdict links it, anything else founds a facility of its own
        (its id is the record's). Only new records are matched: an unchanged re-run does no matching."""
        from aggregator import match

        plan = LinkPlan()
        for rid in records:
            if old.get(rid, (None, ""))[1]:
                plan.link[rid] = old[rid][1]
        for rid in removed:
            if old[rid][1]:
                plan.leaving[rid] = old[rid][1]
        unlinked = sorted(rid for rid in records if rid not in plan.link)
        decided = self._decisions(unlinked)
        candidates = self._candidates({rid: new[rid] for rid in unlinked})
        for rid, choices in decided.items():  # an operator's "same" is a candidate however far away
            candidates.setdefault(rid, set()).update(f for f, d in choices.items() if d == "same")
        members = self._facility_members({f for fs in candidates.values() for f in fs})
        stored = self._stored_records({m for ms in members.values() for m in ms} - set(new))
        identities: dict[str, match.Identity] = {}

        def identity(rid: str) -> match.Identity | None:
            if rid not in identities:
                center = new[rid] if rid in new else stored[rid][0] if rid in stored else None
                if center is None:
                    return None
                identities[rid] = match.identity_of(center)
            return identities[rid]

        grid = _Grid()
        founded: dict[str, list[str]] = {}  # facilities founded or joined in this snapshot -> records
        own = self._facility_members(unlinked)  # a returning record whose facility lived on without it
        for rid in unlinked:
            center = new[rid]
            if own.get(rid) and decided.get(rid, {}).get(rid) != "different":
                plan.link[rid] = rid
                plan.explanations[rid] = {
                    "facility": rid,
                    "decision": "same",
                    "scores": {},
                    "rule": "returned to the facility it founded",
                }
                continue
            options: dict[str, list[str]] = {}
            for fid in candidates.get(rid, ()):
                options[fid] = [m for m in members.get(fid, ()) if m not in plan.leaving and m not in records]
            for fid in grid.near(center):
                options.setdefault(fid, []).extend(founded[fid])
            choices = decided.get(rid, {})
            confirmed = sorted(f for f, d in choices.items() if d == "same" and members.get(f))
            if confirmed:  # an operator confirmed this pair: it wins over the matcher
                fid = confirmed[0]
                plan.link[rid] = fid
                founded.setdefault(fid, []).append(rid)
                plan.explanations[rid] = {
                    "facility": fid,
                    "decision": "same",
                    "rule": "operator confirmed",
                    "scores": {},
                }
                continue
            for fid in [f for f, d in choices.items() if d == "different"]:
                options.pop(fid, None)  # an operator split this pair: never linked again
            fid, decision, chosen = rid, "new", None
            if options:  # standardizing an address costs: only when there is someone to compare with
                me = identity(rid)
                assert me is not None
                owner = {m: f for f, ms in options.items() for m in ms}
                pool = [i for m in owner if (i := identity(m)) is not None]
                found, chosen = match.best_match(me, pool)  # all at once: one record cannot be two places
                target = owner[found.record_id] if found is not None else None
                if chosen.decision == "uncertain" and chosen.rule.startswith("ambiguous"):
                    # the rivals may be records of one facility: then it is no ambiguity
                    sames = {
                        f: v
                        for f in options
                        if (
                            v := match.best_match(me, [i for m in options[f] if (i := identity(m)) is not None])[1]
                        ).decision
                        == "same"
                    }
                    if len(sames) == 1:
                        [(target, chosen)] = sames.items()
                if target is not None and chosen.decision == "same":
                    fid, decision = target, "same"
                elif target is not None and chosen.decision == "uncertain":
                    plan.uncertain.append((rid, target, chosen))
            if decision == "new":
                plan.founded_here.add(rid)
                grid.add(center, rid)
            plan.link[rid] = fid
            founded.setdefault(fid, []).append(rid)
            plan.explanations[rid] = (
                {
                    "facility": fid,
                    "decision": decision,
                    "rule": chosen.rule,
                    "scores": dict(chosen.scores),
                }
                if chosen
                else {**founded_alone(rid), "facility": fid, "decision": decision}
            )
        # the members of every facility that changes: before, and after this snapshot
        touched = {plan.link[rid] for rid in records} | set(plan.leaving.values()) | (extra or set())
        members.update(self._facility_members(touched - set(members)))
        joining: dict[str, set[str]] = defaultdict(set)
        for rid in records:
            joining[plan.link[rid]].add(rid)
        leaving = set(plan.leaving)
        for fid in touched:
            before = set(members.get(fid, ()))
            after = (before - leaving) | joining[fid]
            plan.before[fid] = before
            plan.members[fid] = after
        # a record of this snapshot not written (unchanged, or superseded by a later write) counts as stored: a
        # superseded one's stored content is newer than this snapshot's
        need = {m for ms in plan.members.values() for m in ms} - set(records) - set(stored)
        stored.update(self._stored_records(need))
        for fid, ms in plan.members.items():
            plan.centers[fid] = [
                facility.Member(new[m], authority)
                if m in records or (m in new and m not in stored)  # (not found as stored: the snapshot's copy)
                else facility.Member(stored[m][0], authority if m in new else stored[m][1])
                for m in sorted(ms)
                if m in new or m in stored
            ]
        return plan

    def pending_matches(self, limit: int = 500) -> list[dict[str, Any]]:
        """Pairs the matcher could not decide, oldest first, for an operator to confirm or split: each with
        what judging it needs (``record_center``: the feed record; ``facility_center``: the facility)."""
        k = self.keys

        def read() -> list[dict[str, Any]]:
            pairs = sorted(
                (orjson.loads(v) for v in self.redis.hvals(k.matches)),
                key=lambda m: (m.get("found_at", ""), m["record"]),
            )[:limit]
            reader = self.redis.pipeline(transaction=False)
            for m in pairs:
                reader.hget(k.record(m["record"]), "j")
                reader.hget(k.center(m["facility"]), "j")
                reader.hget(k.record(m["facility"]), "j")  # a facility composed from its founding record
            found = reader.execute()
            return [
                {
                    **m,
                    "record_center": orjson.loads(unpack(r)) if r else None,
                    "facility_center": _composed_or_none(f, founder),
                }
                for m, r, f, founder in zip(pairs, found[::3], found[1::3], found[2::3], strict=True)
            ]

        return list(self._call("reading matches", read))

    def decide_match(self, record_id: str, facility_id: str, decision: str, *, by: str, now: datetime) -> str:
        """An operator's word on a pair: "same" links the record to the facility, "different" keeps them
        apart (the record gets a facility of its own if it was linked there). The decision is kept and wins
        over the matcher on every later run. Returns the facility the record is now linked to."""
        if decision not in ("same", "different"):
            raise ValueError("decision must be 'same' or 'different'")
        k = self.keys
        current = self.facility_of(record_id)
        if current is None:
            raise KeyError(record_id)
        if decision == "same" and not self._call(
            "reading a facility", lambda: self.redis.exists(k.center(facility_id))
        ):
            raise KeyError(facility_id)
        target = facility_id if decision == "same" else (record_id if current == facility_id else current)
        why = {
            "facility": target,
            "decision": decision,
            "rule": f"operator {by} decided: {decision}",
            "scores": {},
            "at": now.isoformat(),
        }
        self._call("recording a decision", lambda: self._relink(record_id, current, target, why, decision, facility_id))
        return target

    def _relink(
        self, record_id: str, current: str, target: str, why: dict[str, Any], decision: str, facility_id: str
    ) -> None:
        k = self.keys
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    if not self._writer_free(pipe, deadline):
                        continue
                    plan = LinkPlan()
                    touched = {current, target}
                    members = self._facility_members(touched)
                    for fid in touched:
                        after = set(members.get(fid, ())) - {record_id}
                        if fid == target:
                            after.add(record_id)
                        plan.before[fid] = set(members.get(fid, ()))
                        plan.members[fid] = after
                    stored = self._stored_records({m for ms in plan.members.values() for m in ms})
                    for fid, ms in plan.members.items():
                        plan.centers[fid] = [facility.Member(*stored[m]) for m in sorted(ms) if m in stored]
                    self._watch_facilities(pipe, plan)
                    pipe.watch(k.record(record_id))
                    pipe.multi()
                    pipe.hset(k.decisions(record_id), facility_id, decision)
                    pipe.hdel(k.matches, f"{record_id}|{facility_id}")
                    if target == record_id:  # its own facility: no fac (facility_of_record)
                        pipe.hdel(k.record(record_id), "fac")
                        pipe.hset(k.record(record_id), "why", pack(orjson.dumps(why)))
                    else:
                        pipe.hset(k.record(record_id), mapping={"fac": target, "why": pack(orjson.dumps(why))})
                    self._queue_facilities(pipe, plan, ReplaceResult())
                    if plan.recompose:
                        pipe.eval(self._compose_src, *self._compose_args(plan.recompose))
                    pipe.execute()
                    return
                except redis.WatchError:
                    pipe.reset()

    def _decisions(self, record_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        if not record_ids:
            return {}
        replies = self._read_many([("HGETALL", self.keys.decisions(rid)) for rid in record_ids])
        return {
            rid: {_str(f): _str(d) for f, d in _pairs(found).items()}
            for rid, found in zip(record_ids, replies, strict=True)
            if found
        }

    def _candidates(self, centers: Mapping[str, Center]) -> dict[str, set[str]]:
        """Facilities near each record (GEO index) or sharing one of its identifiers, in one round trip."""
        if not centers:
            return {}
        k = self.keys
        commands: list[tuple[Any, ...]] = []
        asked: list[tuple[str, str]] = []
        for rid, c in centers.items():
            if c.latitude is not None and c.longitude is not None:
                radius = MATCH_RADIUS_ZIP_M if c.geo_precision is GeoPrecision.POSTAL_CODE else MATCH_RADIUS_M
                commands.append(
                    (
                        "GEOSEARCH",
                        k.geo,
                        "FROMLONLAT",
                        c.longitude,
                        c.latitude,
                        "BYRADIUS",
                        radius,
                        "m",
                        "ASC",
                        "COUNT",
                        MATCH_CANDIDATES,
                    )
                )
                asked.append((rid, "geo"))
            for x in c.external_ids:
                commands.append(("SMEMBERS", k.identifier(x.system.lower(), x.value)))
                asked.append((rid, "id"))
        out: dict[str, set[str]] = defaultdict(set)
        for (rid, _kind), found in zip(asked, self._read_many(commands), strict=True):
            out[rid].update(_str(f) for f in found)
        return out

    def _facility_members(self, facility_ids: Iterable[str]) -> dict[str, set[str]]:
        ids = sorted(facility_ids)
        if not ids:
            return {}
        replies = self._read_many([("HMGET", self.keys.center(fid), "j", "m") for fid in ids])
        return {fid: facility_members(fid, j, m) for fid, (j, m) in zip(ids, replies, strict=True)}

    def _stored_records(self, record_ids: Iterable[str]) -> dict[str, tuple[Center, int]]:
        """Stored feed records (those that exist) with their feed's authority rank."""
        ids = sorted(record_ids)
        if not ids:
            return {}
        out: dict[str, tuple[Center, int]] = {}
        replies = self._read_many([("HMGET", self.keys.record(rid), "j", "a") for rid in ids])
        for rid, (raw, rank) in zip(ids, replies, strict=True):
            if raw is not None:
                out[rid] = (Center.model_validate_json(unpack(raw)), int(rank or 0))
        return out

    def _queue_facilities(
        self, pipe: Any, plan: LinkPlan, result: ReplaceResult, records: Mapping[str, bytes] | None = None
    ) -> None:
        """Write every facility whose members changed (``diff_facilities``, with the JSON of the feed records
        written beside them): its composed record, GEO and filter indexes, identifier index; a facility left with
        no record is removed everywhere."""
        k = self.keys
        diff = diff_facilities(k, plan, records)
        for change in diff.facilities:
            if change.fields is None:
                for system, value in change.identifiers_removed:
                    pipe.srem(k.identifier(system, value), change.facility)
                pipe.delete(k.center(change.facility))  # its a: hash is its founder record's, removed with it
                continue
            if change.cleared:
                pipe.hdel(k.center(change.facility), *change.cleared)
            pipe.hset(k.center(change.facility), mapping=change.fields)
            for system, value in change.identifiers_added:
                pipe.sadd(k.identifier(system, value), change.facility)
            for system, value in change.identifiers_removed:
                pipe.srem(k.identifier(system, value), change.facility)
        for t, ids_ in diff.index_rem.items():
            pipe.srem(k.index(t), *ids_)
        for t, ids_ in diff.index_add.items():
            pipe.sadd(k.index(t), *ids_)
        for key, ids_ in diff.geo_rem.items():
            pipe.zrem(key, *ids_)
        for key, members_ in diff.geo_add.items():
            for i in range(0, len(members_), 3 * 2000):
                pipe.geoadd(key, members_[i : i + 3 * 2000])
        result.facilities_changed = len(plan.facilities)

    def record_observations(self, observations: Iterable[Availability]) -> tuple[int, int]:
        """Upsert observations of existing facilities (operators' phone reports): (written, stale).

        A feed record's id stands for its facility. Observations of unknown centers are not written."""
        obs = list(observations)
        if not obs:
            return 0, 0
        k = self.keys

        def run() -> tuple[int, int]:
            exists = self.redis.pipeline(transaction=False)
            for o in obs:
                exists.exists(k.center(o.center_id))
                exists.hget(k.record(o.center_id), "fac")
            replies = exists.execute()
            known = []
            for o, found, fac in zip(obs, replies[::2], replies[1::2], strict=True):
                if found:
                    known.append(o)
                elif fac:
                    known.append(o.model_copy(update={"center_id": _str(fac)}))
            if not known:
                return 0, 0
            args = self._observe_args(known, _ms(datetime.now(UTC)))
            deadline = time.monotonic() + WRITER_WAIT_SECONDS
            with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        if not self._writer_free(pipe, deadline):
                            continue
                        pipe.multi()
                        pipe.eval(self._observe_src, *args)
                        [(written, stale)] = pipe.execute()
                        return int(written), int(stale)
                    except redis.WatchError:
                        pipe.reset()

        return self._call("recording observations", run)

    # ------------------------------------------------------------------------ geocoding support

    def cached_answers(self, digests: Sequence[str]) -> list[bytes | None]:
        """Cached geocoder answers for these digests (None where nothing is cached)."""
        if not digests:
            return []
        keys = [self.keys.geocode_answer(d) for d in digests]
        return list(self._call("reading the geocode cache", lambda: self.redis.mget(keys)))

    def cache_answer(self, digest: str, answer: bytes, ttl_seconds: int) -> None:
        self._call(
            "writing the geocode cache",
            lambda: self.redis.set(self.keys.geocode_answer(digest), answer, ex=ttl_seconds),
        )

    def reserve_slot(self, name: str, interval_ms: int, defer_ms: int = 0) -> int:
        """Reserve the next slot of the shared limit ``name``; returns milliseconds to wait first.

        ``defer_ms`` pushes every process's next slot back (a server asked us to slow down)."""
        return int(
            self._call(
                "rate limiting", lambda: self._ratelimit(keys=[self.keys.limit(name)], args=[interval_ms, defer_ms])
            )
        )

    def queue_geocode_retry(self, center_ids: Iterable[str], due: datetime) -> int:
        ids = list(center_ids)
        if not ids:
            return 0
        score = due.timestamp()
        return int(
            self._call(
                "queueing geocode retries", lambda: self.redis.zadd(self.keys.geocode_retry, {i: score for i in ids})
            )
        )

    def due_geocode_retries(self, now: datetime, limit: int = 100) -> list[str]:
        raw = self._call(
            "reading geocode retries",
            lambda: self.redis.zrangebyscore(self.keys.geocode_retry, "-inf", now.timestamp(), start=0, num=limit),
        )
        return [_str(m) for m in raw]

    def pending_geocode_retries(self) -> list[str]:
        raw = self._call("reading geocode retries", lambda: self.redis.zrange(self.keys.geocode_retry, 0, -1))
        return [_str(m) for m in raw]

    def drop_geocode_retries(self, center_ids: Iterable[str]) -> None:
        ids = list(center_ids)
        if ids:
            self._call("clearing geocode retries", lambda: self.redis.zrem(self.keys.geocode_retry, *ids))

    def update_location(self, center: Center, now: datetime | None = None) -> bool:
        """Rewrite one stored feed record whose location changed (a geocode retry succeeded).

        Only if it is still a member of its feed; its facility is composed again (its place may move),
        with the GEO index, the needs-location list and the read document, in one transaction."""
        k = self.keys

        def read() -> Any:
            pipe = self.redis.pipeline(transaction=False)
            pipe.sismember(k.feed_members(center.feed_id), center.id)
            pipe.hget(k.record(center.id), "a")
            return pipe.execute()

        member, rank = self._call("updating a location", read)
        if not member:
            return False
        self.replace_feed(
            center.feed_id,
            [center],
            [],
            now=now or datetime.now(UTC),
            source=None,
            partial=True,
            authority=int(rank or 0),
        )
        return True

    def stored_records(self, center_ids: Sequence[str]) -> dict[str, bytes]:
        """The stored feed records of these ids (those that exist), in one round trip."""
        if not center_ids:
            return {}

        def read() -> Any:
            pipe = self.redis.pipeline(transaction=False)
            for cid in center_ids:
                pipe.hget(self.keys.record(cid), "j")
            return pipe.execute()

        return {
            cid: unpack(raw)
            for cid, raw in zip(center_ids, self._call("reading centers", read), strict=True)
            if raw is not None
        }

    # ------------------------------------------------------------------------------- row memos

    def row_memos(self, feed_id: str, fingerprint: str) -> RowMemos:
        """The feed's row memos (row digest -> memo) if they were made under ``fingerprint``; none while a staged
        write of the feed is unfinished (its next write rewrites every record), or where they were kept one a
        field (before ``pack_memos``: the feed's next run normalizes every row and keeps them packed). ``current``:
        they were saved with the feed's write token that still stands (``save_row_memos``' ``token``): no write
        changed the feed's records since, so they are stored as the memos say (``changed_records`` need not ask)."""
        k = self.keys

        def read() -> Any:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hgetall(k.feed_rows(feed_id))
            pipe.hget(k.feed_meta(feed_id), "w")
            return pipe.execute()

        stored, token = self._call("reading row memos", read)
        fp = stored.pop(b"_fp", None)
        vouched = stored.pop(b"_w", None)
        if fp is None or _str(fp) != fingerprint:
            return RowMemos()
        if self._call("reading row memos", lambda: self._stages("w", feed_id)):
            return RowMemos()
        out = RowMemos()
        out.current = token is not None and vouched == token
        out.token = _str(token) if out.current else None
        for name, packed in stored.items():
            if name[:2] != b"b:":
                continue  # a memo kept one a field by an earlier release: not read
            try:
                out.update(unpack_memos(packed))
            except (zlib.error, struct.error) as exc:  # a damaged value: a shortcut lost (rewritten by the next save)
                log.warning("feed %s: row memos unreadable (%s); their rows are normalized again", feed_id, exc)
        return out

    def save_row_memos(
        self,
        feed_id: str,
        fingerprint: str,
        memos: Mapping[bytes, bytes],
        given: Mapping[bytes, bytes] | None = None,
        token: str | None = None,
    ) -> None:
        """Keep the feed's row memos, packed by bucket (``memo_buckets``, ``pack_memos``).

        ``given``: the memos this run read (``row_memos``) under ``fingerprint``. Then only the buckets that differ
        from them (or that are damaged or missing) are written, and buckets of no row dropped, while the memos are
        still those of ``fingerprint``; else nothing (dropped or replaced meanwhile: what is there stands, and the
        next run rewrites them whole). Without ``given``, every bucket is written in place of what was there.
        ``token``: the write token the run's write set (``ReplaceResult.write_token``), kept with the memos: while
        it stands, no write has changed the records they describe. Without one, the memos vouch for nothing."""
        key = self.keys.feed_rows(feed_id)
        new = memo_buckets(memos)
        old = memo_buckets(given) if given else None

        def write_all() -> None:
            packed: dict[Any, Any] = {name: pack_memos(bucket) for name, bucket in new.items()}
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)  # memos of other settings, or kept one a field by an earlier release
                pipe.hset(key, mapping={"_fp": fingerprint, **({"_w": token} if token else {}), **packed})
                pipe.execute()

        def write_changed(old: dict[str, dict[bytes, bytes]]) -> None:
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    fp = pipe.hget(key, "_fp")
                    if fp is None or _str(fp) not in (fingerprint, ROW_MEMOS_SUSPENDED + fingerprint):
                        return
                    suspended = _str(fp) != fingerprint
                    stored_raw = set(pipe.hkeys(key))
                    stored = {_str(name) for name in stored_raw} - {"_fp", "_w"}
                    changed = {n: pack_memos(b) for n, b in new.items() if b != old.get(n) or n not in stored}
                    gone = sorted(stored - set(new))
                    if not changed and not gone and not suspended and not token and b"_w" not in stored_raw:
                        return
                    pipe.multi()
                    if suspended:  # this run's write is done: its memos are read again
                        pipe.hset(key, "_fp", fingerprint)
                    if token:
                        pipe.hset(key, "_w", token)
                    else:  # memos that vouch for nothing (a write that may not match them): checked next run
                        pipe.hdel(key, "_w")
                    if changed:
                        pipe.hset(key, mapping=cast(dict[Any, Any], changed))
                    if gone:
                        pipe.hdel(key, *gone)
                    pipe.execute()
                except redis.WatchError:  # changed meanwhile: what stands may not match the records; dropped
                    self.redis.delete(key)  # (a shortcut lost: the next run normalizes every row)

        self._call("writing row memos", write_all if old is None else lambda: write_changed(old))

    def drop_row_memos(self, feed_id: str) -> None:
        self._call("dropping row memos", lambda: self.redis.delete(self.keys.feed_rows(feed_id)))

    def begin_feed_write(self, feed_id: str, memo_fingerprint: str | None = None) -> None:
        """As a run's write of what its feed sent lands, in one transaction (``replace_feed``'s ``run``: just before a
        staged write's first step; a small write queues the same in its own transaction, ``_queue_feed_write``): the
        feed's validators (``FeedState.VALIDATORS``: the export's digest, its ETag and Last-Modified) are dropped
        until the run's end sets them again, and with ``memo_fingerprint`` (a write of rows normalized anew) its row
        memos are suspended: no run reads them until ``save_row_memos`` under that fingerprint puts them right after
        the write. A run that stops between its
        write and its end (a killed worker, a staged write's clean-up failing after the flip) would otherwise leave
        them describing the export before: that export sent again would read as unchanged (a 304, the same
        digest) or have its rows kept from their memos, and what the stopped run wrote would stay."""

        def write() -> Any:
            pipe = self.redis.pipeline(transaction=True)
            self._queue_feed_write(pipe, feed_id, memo_fingerprint)
            return pipe.execute()

        self._call("starting a feed's write", write)

    def _queue_feed_write(self, pipe: Any, feed_id: str, memo_fingerprint: str | None) -> None:
        """``begin_feed_write``'s commands, queued on ``pipe`` (a small write's own transaction)."""
        pipe.hdel(self.keys.feed_state(feed_id), *FeedState.VALIDATORS)
        if memo_fingerprint is not None:
            pipe.hset(self.keys.feed_rows(feed_id), "_fp", ROW_MEMOS_SUSPENDED + memo_fingerprint)

    def changed_records(self, feed_id: str, expected: Mapping[str, bytes]) -> set[str]:
        """Which of these records of ``feed_id`` (their ids say the feed: ``feed_of_record``) are not stored as
        ``expected`` (record id -> digest): changed since, or gone. An id of another feed is never this feed's."""
        return self._changed_records(feed_id, expected)

    def check_records(self, feed_id: str, expected: Mapping[str, bytes]) -> tuple[set[str], str | None]:
        """``changed_records``, and the feed's write token when it stood the whole check (else None: a write of the
        feed's records may have come meanwhile, or none ever set one)."""
        token_key = self.keys.feed_meta(feed_id)
        before = self._call("checking stored records", lambda: self.redis.hget(token_key, "w"))
        changed = self._changed_records(feed_id, expected)
        after = self._call("checking stored records", lambda: self.redis.hget(token_key, "w"))
        return changed, _str(after) if after is not None and after == before else None

    def vouch_row_memos(self, feed_id: str, fingerprint: str, token: str) -> None:
        """The feed's row memos (under ``fingerprint``) were checked against its records under the write token
        ``token`` (``check_records``): kept with them, so the next run need not check while it stands."""
        key = self.keys.feed_rows(feed_id)

        def write() -> None:
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    fp = pipe.hget(key, "_fp")
                    if fp is None or _str(fp) != fingerprint:
                        return
                    pipe.multi()
                    pipe.hset(key, "_w", token)
                    pipe.execute()
                except redis.WatchError:  # changed meanwhile: left for the next check
                    return

        self._call("writing row memos", write)

    def _changed_records(self, feed_id: str, expected: Mapping[str, bytes]) -> set[str]:
        own = f"{feed_id}:"
        ids = [rid for rid, digest in expected.items() if rid.startswith(own) and len(digest) == DIGEST_SIZE]
        # another feed's id, or a digest not of the stored form (it matches no stored record): not as expected
        other = set(expected).difference(ids)
        prefix = self.keys.record("")

        def read() -> set[str]:
            out: set[str] = set()
            for piece in staging.pieces(ids, staging.MEMBERS):  # a few milliseconds of Redis each
                found = self._changed(args=[prefix, DIGEST_SIZE, b"".join([expected[rid] for rid in piece]), *piece])
                out.update(piece[int(i) - 1] for i in found)
            return out

        return set(self._call("checking stored records", read)) | other

    # ------------------------------------------------------------------------------ feed health

    def feed_state(self, feed_id: str) -> FeedState:
        raw = self._call("reading feed health", lambda: self.redis.hgetall(self.keys.feed_state(feed_id)))
        return FeedState.from_hash(raw)

    def feed_states(self, feed_ids: Sequence[str]) -> dict[str, FeedState]:
        def read() -> Any:
            pipe = self.redis.pipeline(transaction=False)
            for fid in feed_ids:
                pipe.hgetall(self.keys.feed_state(fid))
            return pipe.execute()

        replies = self._call("reading feed health", read) if feed_ids else []
        return {fid: FeedState.from_hash(raw) for fid, raw in zip(feed_ids, replies, strict=True)}

    def set_feed_state(
        self, feed_id: str, values: FeedState, *, increment: str | None = None, delete: Sequence[str] = ()
    ) -> None:
        """Write the fields ``values`` sets, add 1 to the counter ``increment`` (a ``FeedState`` counter) and
        drop the fields ``delete`` names (``FeedState.ERROR``, ...), in one transaction."""

        def write() -> Any:
            pipe = self.redis.pipeline(transaction=True)
            self._queue_feed_state(pipe, feed_id, values, increment=increment, delete=delete)
            return pipe.execute()

        self._call("writing feed health", write)

    def _queue_feed_state(
        self, pipe: Any, feed_id: str, values: FeedState, *, increment: str | None = None, delete: Sequence[str] = ()
    ) -> None:
        """``set_feed_state``'s commands, queued on ``pipe``."""
        key = self.keys.feed_state(feed_id)
        mapping = values.to_hash()
        if mapping:
            pipe.hset(key, mapping=mapping)
        if increment:
            pipe.hincrby(key, increment, 1)
        if delete:
            pipe.hdel(key, *delete)

    def hold_snapshot(self, feed_id: str, snapshot: bytes) -> None:
        self._call("holding a snapshot", lambda: self.redis.set(self.keys.feed_held(feed_id), snapshot))

    def held_snapshot(self, feed_id: str) -> bytes | None:
        raw = self._call("reading a held snapshot", lambda: self.redis.get(self.keys.feed_held(feed_id)))
        return raw if raw is None or isinstance(raw, bytes) else raw.encode()

    def drop_held_snapshot(self, feed_id: str) -> None:
        self._call("dropping a held snapshot", lambda: self.redis.delete(self.keys.feed_held(feed_id)))

    # ------------------------------------------------------------------------------------ locks

    def lock_held(self, name: str) -> bool:
        return bool(self._call("reading a lock", lambda: self.redis.exists(self.keys.lock(name))))

    def acquire_lock(self, name: str, ttl_seconds: float, owner: str | None = None) -> str | None:
        """A token if we now hold the lock ``name`` (for at most ``ttl_seconds``), else None.

        With ``owner`` (e.g. a task id, the same across redeliveries) the owner takes back a lock it
        still holds from an earlier attempt that died, instead of waiting for it to expire."""
        token = owner or secrets.token_hex(16)
        ok = self._call(
            "taking a lock", lambda: self._lock(keys=[self.keys.lock(name)], args=[token, int(ttl_seconds * 1000)])
        )
        return token if ok else None

    def release_lock(self, name: str, token: str) -> bool:
        """Release only if still ours (a lock that expired and was taken by another run stays)."""
        return bool(self._call("releasing a lock", lambda: self._unlock(keys=[self.keys.lock(name)], args=[token])))

    # ------------------------------------------------------------------------------------ pushes

    def accept_push(
        self,
        feed_id: str,
        event_id: str,
        ingest_id: str,
        record: PushRecord,
        *,
        event_ttl: int = 86400,
        push_ttl: int = 7 * 86400,
    ) -> str | None:
        """Store a push durably under ``ingest_id``, once per (feed, event id).

        Returns None when stored, else the ingest id that already accepted this event id."""
        keys, args = self._push_command(feed_id, event_id, ingest_id, record, event_ttl, push_ttl)
        existing = self._call("storing a push", lambda: self._accept_push(keys=keys, args=args))
        return None if existing in (None, b"", "") else _str(existing)

    def _push_command(
        self, feed_id: str, event_id: str, ingest_id: str, record: PushRecord, event_ttl: int, push_ttl: int
    ) -> tuple[list[str], list[Any]]:
        """accept_push.lua's keys and arguments."""
        args: list[Any] = [ingest_id, event_ttl, push_ttl]
        for k, v in record.to_hash().items():
            args.extend((k, v))
        return [self.keys.push_event(feed_id, event_id), self.keys.push(ingest_id), self.keys.pending_pushes], args

    def count_and_accept_push(
        self,
        client: str,
        window_ms: int,
        allowed: int,
        feed_id: str,
        event_id: str,
        ingest_id: str,
        record: PushRecord,
        *,
        event_ttl: int = 86400,
        push_ttl: int = 7 * 86400,
    ) -> tuple[int | None, str | None]:
        """``count_request`` and ``accept_push`` in one script call (``lua/rate_first.lua`` in front of
        ``lua/accept_push.lua``): a push's one durable write before it is queued. Over ``allowed`` requests in the
        window nothing is stored: (ms until the window ends, None). Else (None, None) when stored, or (None, the
        ingest id that already accepted this event id)."""
        keys, args = self._push_command(feed_id, event_id, ingest_id, record, event_ttl, push_ttl)
        keys.insert(0, self.keys.rate(client))
        args[:0] = [window_ms, allowed]
        reply = self._call("storing a push", lambda: self._rate_accept_push(keys=keys, args=args))
        if isinstance(reply, list):  # {'__limited__', ms}
            return max(0, int(reply[1])), None
        return None, None if reply in (None, b"", "") else _str(reply)

    def forget_push(self, feed_id: str, event_id: str, ingest_id: str) -> None:
        """Undo ``accept_push`` (it could not be queued): the partner may retry with the same event id."""
        self._call("forgetting a push", lambda: self.redis.zrem(self.keys.pending_pushes, ingest_id))
        self._call(
            "forgetting a push",
            lambda: self.redis.delete(self.keys.push_event(feed_id, event_id), self.keys.push(ingest_id)),
        )

    def push_record(self, ingest_id: str) -> PushRecord | None:
        raw = self._call("reading a push", lambda: self.redis.hgetall(self.keys.push(ingest_id)))
        return PushRecord.from_hash(raw) if raw else None

    def beat(self, worker: str, at: datetime, ttl_seconds: int = 90) -> None:
        """Say this worker is alive (for ``ttl_seconds``)."""
        self._call("beating", lambda: self.redis.set(self.keys.heartbeat(worker), at.isoformat(), ex=ttl_seconds))

    def live_workers(self) -> dict[str, str]:
        """Workers whose heartbeat has not expired: name -> when they last beat."""
        prefix = self.keys.heartbeat("")

        def read() -> dict[str, str]:
            names = [_str(k) for k in self.redis.scan_iter(match=prefix + "*", count=200)]
            values = self.redis.mget(names) if names else []
            return {n[len(prefix) :]: _str(v) for n, v in zip(names, values, strict=True) if v is not None}

        return dict(self._call("reading heartbeats", read))

    def stale_pushes(self, before: datetime, limit: int = 500) -> list[str]:
        """Pending pushes last queued or started before ``before`` (nobody finished them)."""
        raw = self._call(
            "reading pending pushes",
            lambda: self.redis.zrangebyscore(self.keys.pending_pushes, "-inf", _ms(before), start=0, num=limit),
        )
        return [_str(i) for i in raw]

    def mark_push_pending(self, ingest_id: str, at: datetime) -> None:
        self._call("marking a push", lambda: self.redis.zadd(self.keys.pending_pushes, {ingest_id: _ms(at)}))

    def push_finished(self, ingest_id: str) -> None:
        self._call("finishing a push", lambda: self.redis.zrem(self.keys.pending_pushes, ingest_id))

    def push_not_applied(self, ingest_id: str, attempt: str, values: PushRecord, *, again_at: datetime | None) -> bool:
        """A push whose application by the delivery ``attempt`` failed, in one script (``lua/push_not_applied.lua``):
        its record takes ``values``; with ``again_at`` it is pending from then and its finished time is dropped (a
        write that failed inside its transaction may have marked it done: the commands after an error in a MULTI still
        run; so may a write whose reply was lost); without, it leaves the pending pushes for good. A push another
        delivery applied meanwhile is left as it is (False)."""
        k = self.keys
        args: list[Any] = [ingest_id, attempt, _ms(again_at) if again_at is not None else ""]
        for key, value in values.to_hash().items():
            args.extend((key, value))
        return bool(
            self._call(
                "recording a push that was not applied",
                lambda: self._push_not_applied(keys=[k.push(ingest_id), k.pending_pushes], args=args),
            )
        )

    def update_push(self, ingest_id: str, values: PushRecord) -> None:
        """Write the fields ``values`` sets."""
        self._call("updating a push", lambda: self.redis.hset(self.keys.push(ingest_id), mapping=values.to_hash()))  # type: ignore[arg-type]

    def begin_push(
        self, ingest_id: str, values: PushRecord, feed_id: str, state: FeedState, at: datetime
    ) -> PushRecord | None:
        """A push's application begins, in one round trip with reading it (``lua/begin_push.lua``): when it is stored
        and not finished, it is pending again from ``at`` (``mark_push_pending``: the sweeper's clock starts again),
        its record takes ``values`` and its feed's health ``state``. The push as it was stored before, None when
        there is none."""
        k = self.keys
        push, health = values.to_hash(), state.to_hash()
        args: list[Any] = [ingest_id, _ms(at), " ".join(PushRecord.DONE), len(push)]
        for key, value in (*push.items(), *health.items()):
            args.extend((key, value))
        raw = self._call(
            "starting a push",
            lambda: self._begin_push(keys=[k.push(ingest_id), k.pending_pushes, k.feed_state(feed_id)], args=args),
        )
        return PushRecord.from_hash(dict(zip(raw[::2], raw[1::2], strict=True))) if raw else None

    def queue_end_push(
        self,
        pipe: Any,
        ingest_id: str,
        values: PushRecord,
        feed_id: str,
        state: FeedState,
        *,
        delete: Sequence[str] = (),
    ) -> None:
        """A push applied, queued on ``pipe`` (``replace_feed``'s ``also``: the push is done in the very transaction
        its data lands in): its record takes ``values``, it leaves the pending pushes (``push_finished``), and its
        feed's health takes ``state`` less the fields ``delete`` names."""
        k = self.keys
        pipe.zrem(k.pending_pushes, ingest_id)
        pipe.hset(k.push(ingest_id), mapping=values.to_hash())
        self._queue_feed_state(pipe, feed_id, state, delete=delete)

    # ----------------------------------------------------------------------------- rate limits

    def count_request(self, client: str, window_ms: int) -> tuple[int, int]:
        """Count one request of ``client`` in a fixed window: (requests so far, ms until the window ends)."""
        n, pttl = self._call("rate limiting", lambda: self._rate(keys=[self.keys.rate(client)], args=[window_ms]))
        return int(n), max(0, int(pttl))

    def count_delivery(self, job: str, ttl_seconds: int = 86400) -> int:
        """Count one start of ``job`` (a task id: the same across retries and redeliveries)."""

        def run() -> Any:
            pipe = self.redis.pipeline(transaction=True)
            pipe.incr(self.keys.deliveries(job))
            pipe.expire(self.keys.deliveries(job), ttl_seconds)
            return pipe.execute()[0]

        return int(self._call("counting deliveries", run))

    # ------------------------------------------------------------------------- operator sessions
    # The operator page's sign-ins (aggregator/api/page.py). A session lives under a digest of its
    # id (Keys.session), so nothing read out of Redis can be replayed as a cookie. The hash holds
    # the operator's name and when the session began; Redis drops it after ``ttl_seconds``.

    def start_operator_session(self, session_id: str, operator: str, created: datetime, ttl_seconds: int) -> None:
        key = self.keys.session(session_id)

        def write() -> Any:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(key, mapping={"operator": operator, "created": created.isoformat()})
            pipe.expire(key, ttl_seconds)
            return pipe.execute()

        self._call("starting a session", write)

    def operator_session(self, session_id: str) -> dict[str, str] | None:
        """The session's fields (operator, created), or None when there is no such session (or it expired)."""
        raw = self._call("reading a session", lambda: self.redis.hgetall(self.keys.session(session_id)))
        return {_str(k): _str(v) for k, v in raw.items()} if raw else None

    def end_operator_session(self, session_id: str) -> bool:
        """Delete the session (sign-out); True when there was one."""
        return bool(self._call("ending a session", lambda: self.redis.delete(self.keys.session(session_id))))
