"""The Redis store: the only module that imports redis.

Key names are built here and nowhere else (``Keys``). Layout, under a configurable prefix::

    c:{center_id}          hash  j=center JSON, d=read document [record, [observation...]],
                                 t=index tokens, h=content digest, f=feed id
    a:{center_id}          hash  "{level}|{source}" -> availability observation JSON
    geo                    GEO   located, non-inactive centers
    geo:loc:{level}        GEO   the same, for each level of care (a level filter searches only these)
    ix:{group}:{value}     set   center ids, e.g. ix:loc:detox, ix:pay:medicaid, ix:lang:es
    feed:{feed_id}:m       set   the feed's current centers
    feed:{feed_id}:meta    hash  digest and counts of the last applied snapshot
    feeds                  set   feed ids that have a snapshot
    needs_location         set   centers that could not be placed (kept, listed for operators)
    feed:{feed_id}:state   hash  feed health: last attempt/success/error, counts, validators, digest
    feed:{feed_id}:held    str   a quarantined snapshot waiting for an operator (JSON)
    lock:{name}            str   a lock's token (SET NX PX), e.g. one run per feed at a time
    push:{ingest_id}       hash  a partner push, stored before it is acknowledged, then its result
    push:event:{feed}:{id} str   the ingest that accepted a partner's event id (replay protection)
    rate:{client}          str   requests in the current window (per-client rate limit)
    deliveries:{job}       str   how often a queued job has been started (redelivery cap)
    geocode:c:{digest}     str   a geocoder answer (found or not found), with a time to live
    geocode:retry          zset  center ids to geocode again after an outage (score: when)
    limit:{name}           str   next free slot of a shared rate limit (epoch ms)

Invariants, held by writing each feed snapshot in one MULTI/EXEC transaction: a reader sees a feed
whole-old or whole-new; a GEO member always has its record; index sets hold exactly the tokens in
each record's ``t``. An older observation never overwrites a newer one (``lua/observe.lua``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import orjson
import redis
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from aggregator.errors import StoreUnavailable
from aggregator.model import Availability, Center, CenterStatus

DEFAULT_PREFIX = "cav:"

#: filter groups and their token prefixes
GROUPS = {"levels_of_care": "loc", "payment": "pay", "populations": "pop", "languages": "lang"}


class Keys:
    """Every Redis key name the service uses, in one place."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.geo = prefix + "geo"
        self.feeds = prefix + "feeds"
        self.needs_location = prefix + "needs_location"

    def center(self, center_id: str) -> str:
        return f"{self.prefix}c:{center_id}"

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


def index_tokens(center: Center) -> list[str]:
    """The filter index entries of a center: ``loc:detox``, ``pay:medicaid`` ..."""
    s = center.services
    tokens = [f"loc:{v}" for v in s.levels_of_care]
    tokens += [f"pay:{v}" for v in s.payment]
    tokens += [f"pop:{v}" for v in s.populations]
    tokens += [f"lang:{v}" for v in s.languages]
    return tokens


def observation_field(obs: Availability) -> str:
    return f"{obs.level_of_care.value}|{obs.source.value}"


def observation_json(obs: Availability) -> bytes:
    """The stored form: the model's JSON plus ``rt`` (reported_at, epoch ms) and ``sig``."""
    data = obs.model_dump(mode="json", exclude={"center_id", "changed_at"})
    figures = (
        obs.status.value, obs.beds_available, obs.beds_total,
        obs.accepting.value if obs.accepting else None, obs.waitlist_size, obs.notes,
        obs.appointments_available, obs.next_appointment_at.isoformat() if obs.next_appointment_at else None,
    )
    data["rt"] = _ms(obs.reported_at)
    data["sig"] = hashlib.blake2b(orjson.dumps(figures), digest_size=8).hexdigest()
    return orjson.dumps(data)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _lua(name: str) -> str:
    return resources.files("aggregator").joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")


#: one GEO hit: (center_id, distance_mi, center record, [observation, ...])
RawHit = tuple[str, float, dict[str, Any], list[dict[str, Any]]]


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

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.observations_written)


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
    }
    if url.startswith("redis+sentinel://"):
        hosts, _, rest = url.removeprefix("redis+sentinel://").partition("/")
        service, _, db = rest.partition("/")
        if not hosts or not service:
            raise ValueError("a Sentinel URL is redis+sentinel://host:port[,host:port]/<master name>[/<db>]")
        sentinels = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]) if ":" in h else 26379) for h in hosts.split(",")]
        sentinel = redis.sentinel.Sentinel(sentinels, socket_timeout=timeout, socket_connect_timeout=timeout)
        return sentinel.master_for(service, db=int(db or 0), max_connections=max_connections, **options)
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout, **options)
    return redis.Redis(connection_pool=pool)


class Store:
    """Centers, availability and feed snapshots in Redis. Pass a client in (no globals)."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self._near = client.register_script(_lua("near"))
        prelude = _lua("doc")
        self._observe_src = prelude + _lua("observe")
        self._prune_src = prelude + _lua("prune")
        self._compose_src = prelude + _lua("compose")
        self._ratelimit = client.register_script(_lua("ratelimit"))
        self._accept_push = client.register_script(_lua("accept_push"))
        self._rate = client.register_script(
            "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "
            "return {n, redis.call('PTTL', KEYS[1])}")
        self._lock = client.register_script(
            "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end "
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
            "return 0")
        self._unlock = client.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0")

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX, **kwargs: Any) -> Store:
        return cls(connect(url, **kwargs), prefix)

    # ----------------------------------------------------------------------------------- errors

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except redis.exceptions.NoScriptError:
            raise
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError) as exc:
            raise StoreUnavailable(f"Redis unavailable while {what}: {exc}") from exc
        except redis.ResponseError as exc:
            if str(exc).startswith(("OOM", "READONLY", "MISCONF", "LOADING", "MASTERDOWN")):
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
    ) -> list[RawHit]:
        """Nearest-first centers within ``radius_mi`` passing the filters, in one round trip.

        ``groups``: index tokens, OR within a group and AND across groups. With ``available_only``
        a center needs a fresh available/limited observation (at one of ``levels``, if given).
        ``level_filter``: only centers offering one of ``levels`` (searched in their own indexes)."""
        args: list[Any] = [
            self.keys.prefix, repr(longitude), repr(latitude), repr(radius_mi), limit,
            _ms(now), 1 if available_only else 0, repr(first_radius_mi), len(groups),
        ]
        for group in groups:
            args.append(len(group))
            args.extend(group)
        args.append(len(levels))
        args.extend(levels)
        keys = [self.keys.geo_level(lv) for lv in levels] if level_filter and levels else [self.keys.geo]
        raw = self._call("searching", lambda: self._evalsha(self._near, keys, args))
        hits: list[RawHit] = []
        for i in range(0, len(raw), 3):
            record, observations = orjson.loads(raw[i + 2])
            hits.append((raw[i].decode(), float(raw[i + 1]), record, observations))
        return hits

    def _evalsha(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA straight through the client (the hot path), loading the script if Redis lost it."""
        try:
            return self.redis.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return script(keys=keys, args=args)

    def get_center(self, center_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A center's record and its observations (as stored), or None."""
        doc = self._call("reading a center", lambda: self.redis.hget(self.keys.center(center_id), "d"))
        if doc is None:
            return None
        record, observations = orjson.loads(doc)
        return record, observations

    def _members(self, key: str) -> set[str]:
        return {_str(m) for m in self._call("reading a set", lambda: self.redis.smembers(key))}

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
    ) -> ReplaceResult:
        """Make ``centers`` the feed's whole snapshot, atomically and idempotently.

        Centers that left the feed leave every index; unchanged centers are not rewritten; the
        feed's own observations (``source``) for levels a center no longer reports are dropped.
        One MULTI/EXEC: a concurrent reader sees the old snapshot or the new one, never a mix.
        ``partial``: an update of some centers (a partner's push): nothing else is removed."""
        new = {c.id: c for c in centers}
        obs = list(observations)
        for c in new.values():
            if c.feed_id != feed_id:
                raise ValueError(f"center {c.id} does not belong to feed {feed_id}")
        k = self.keys
        members_key = k.feed_members(feed_id)
        with self._translated(f"replacing feed {feed_id}"), self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(members_key, k.feed_meta(feed_id))
                    result = self._queue_replace(pipe, feed_id, new, obs, now, source, partial)
                    replies = pipe.execute()
                    break
                except redis.WatchError:
                    continue
        if obs:
            # replies: ..., observe {written, stale}, [prune count]
            ob_reply = replies[-2] if source else replies[-1]
            result.observations_written, result.observations_stale = int(ob_reply[0]), int(ob_reply[1])
            if source:
                result.observations_pruned = int(replies[-1])
        return result

    def _queue_replace(
        self,
        pipe: Any,
        feed_id: str,
        new: dict[str, Center],
        obs: list[Availability],
        now: datetime,
        source: str | None,
        partial: bool,
    ) -> ReplaceResult:
        k = self.keys
        all_ids = {_str(m) for m in pipe.smembers(k.feed_members(feed_id))}
        old_ids = sorted(all_ids & set(new)) if partial else sorted(all_ids)
        old: dict[str, tuple[bytes | None, set[str]]] = {}
        if old_ids:
            reader = self.redis.pipeline(transaction=False)
            for cid in old_ids:
                reader.hmget(k.center(cid), "h", "t")
            for cid, (digest, tokens) in zip(old_ids, reader.execute(), strict=True):
                old[cid] = (digest, set(tokens.decode().split()) if tokens else set())

        result = ReplaceResult()
        index_add: dict[str, list[str]] = defaultdict(list)
        index_rem: dict[str, list[str]] = defaultdict(list)
        geo_add: dict[str, list[Any]] = defaultdict(list)
        geo_rem: dict[str, list[str]] = defaultdict(list)
        pipe.multi()
        for cid in sorted(set(old) - set(new)):
            result.removed += 1
            for t in old[cid][1]:
                index_rem[t].append(cid)
            for key in k.geo_keys(old[cid][1]):
                geo_rem[key].append(cid)
            pipe.delete(k.center(cid), k.availability(cid))
        located_ok: list[str] = []
        recomposed: list[str] = []
        for cid, center in new.items():
            record = center.model_dump_json().encode()
            digest = hashlib.blake2b(record, digest_size=16).hexdigest().encode()
            tokens = index_tokens(center)
            indexed = center.status is not CenterStatus.INACTIVE
            prev = old.get(cid)
            if center.latitude is None:
                result.needs_location.append(cid)
            if prev is not None and prev[0] == digest:
                result.unchanged += 1
                continue
            if prev is None:
                result.added += 1
            else:
                result.updated += 1
            prev_tokens = prev[1] if prev else set()
            want = set(tokens) if indexed else set()
            for t in want - prev_tokens:
                index_add[t].append(cid)
            for t in prev_tokens - want:
                index_rem[t].append(cid)
            pipe.hset(k.center(cid), mapping={"j": record, "h": digest, "t": " ".join(sorted(want)),
                                              "f": feed_id})
            recomposed.append(cid)
            located = center.latitude is not None and center.longitude is not None
            new_geo = set(k.geo_keys(want)) if located and indexed else set()
            for key in set(k.geo_keys(prev_tokens)) - new_geo:
                geo_rem[key].append(cid)
            if new_geo:
                for key in new_geo:
                    geo_add[key].extend((center.longitude, center.latitude, cid))
                located_ok.append(cid)
            else:
                geo_rem[k.geo].append(cid)
        for t, ids in index_rem.items():
            pipe.srem(k.index(t), *ids)
        for t, ids in index_add.items():
            pipe.sadd(k.index(t), *ids)
        for key, ids in geo_rem.items():
            pipe.zrem(key, *ids)
        for key, members in geo_add.items():
            for i in range(0, len(members), 3 * 2000):
                pipe.geoadd(key, members[i : i + 3 * 2000])
        removed = sorted(set(old) - set(new))
        if removed:
            pipe.srem(k.needs_location, *removed)
        if located_ok:
            pipe.srem(k.needs_location, *located_ok)
        if result.needs_location:
            pipe.sadd(k.needs_location, *result.needs_location)
        if not partial:
            pipe.delete(k.feed_members(feed_id))
        if new:
            pipe.sadd(k.feed_members(feed_id), *sorted(new))
            pipe.sadd(k.feeds, feed_id)
        elif not partial:
            pipe.srem(k.feeds, feed_id)
        pipe.hset(k.feed_meta(feed_id), mapping={
            "centers": len(all_ids | set(new)) if partial else len(new), "replaced_at": now.isoformat(),
        })
        if recomposed:
            pipe.eval(self._compose_src, 0, k.prefix, *recomposed)
        if obs:
            args: list[Any] = [k.prefix]
            for o in obs:
                if o.center_id in new:
                    args.extend((o.center_id, observation_field(o), observation_json(o)))
            pipe.eval(self._observe_src, 0, *args)
            if source:
                prune: list[Any] = [k.prefix, source]
                levels: dict[str, list[str]] = defaultdict(list)
                for o in obs:
                    levels[o.center_id].append(o.level_of_care.value)
                for cid in new:
                    lv = levels.get(cid, [])
                    prune.extend((cid, len(lv), *lv))
                pipe.eval(self._prune_src, 0, *prune)
        elif source and new:
            prune = [k.prefix, source]
            for cid in new:
                prune.extend((cid, 0))
            pipe.eval(self._prune_src, 0, *prune)
        return result

    def record_observations(self, observations: Iterable[Availability]) -> tuple[int, int]:
        """Upsert observations of existing centers (push, operator reports): (written, stale).

        Observations of unknown centers are not written."""
        obs = list(observations)
        if not obs:
            return 0, 0
        k = self.keys

        def run() -> tuple[int, int]:
            exists = self.redis.pipeline(transaction=False)
            for o in obs:
                exists.exists(k.center(o.center_id))
            known = [o for o, e in zip(obs, exists.execute(), strict=True) if e]
            if not known:
                return 0, 0
            args: list[Any] = [k.prefix]
            for o in known:
                args.extend((o.center_id, observation_field(o), observation_json(o)))
            written, stale = self.redis.eval(self._observe_src, 0, *args)
            return int(written), int(stale)

        return self._call("recording observations", run)

    # ------------------------------------------------------------------------ geocoding support

    def cached_answers(self, digests: Sequence[str]) -> list[bytes | None]:
        """Cached geocoder answers for these digests (None where nothing is cached)."""
        if not digests:
            return []
        keys = [self.keys.geocode_answer(d) for d in digests]
        return list(self._call("reading the geocode cache", lambda: self.redis.mget(keys)))

    def cache_answer(self, digest: str, answer: bytes, ttl_seconds: int) -> None:
        self._call("writing the geocode cache",
                   lambda: self.redis.set(self.keys.geocode_answer(digest), answer, ex=ttl_seconds))

    def reserve_slot(self, name: str, interval_ms: int, defer_ms: int = 0) -> int:
        """Reserve the next slot of the shared limit ``name``; returns milliseconds to wait first.

        ``defer_ms`` pushes every process's next slot back (a server asked us to slow down)."""
        return int(self._call("rate limiting", lambda: self._ratelimit(keys=[self.keys.limit(name)],
                                                                        args=[interval_ms, defer_ms])))

    def queue_geocode_retry(self, center_ids: Iterable[str], due: datetime) -> int:
        ids = list(center_ids)
        if not ids:
            return 0
        score = due.timestamp()
        return int(self._call("queueing geocode retries",
                              lambda: self.redis.zadd(self.keys.geocode_retry, {i: score for i in ids})))

    def due_geocode_retries(self, now: datetime, limit: int = 100) -> list[str]:
        raw = self._call("reading geocode retries", lambda: self.redis.zrangebyscore(
            self.keys.geocode_retry, "-inf", now.timestamp(), start=0, num=limit))
        return [_str(m) for m in raw]

    def pending_geocode_retries(self) -> list[str]:
        raw = self._call("reading geocode retries",
                         lambda: self.redis.zrange(self.keys.geocode_retry, 0, -1))
        return [_str(m) for m in raw]

    def drop_geocode_retries(self, center_ids: Iterable[str]) -> None:
        ids = list(center_ids)
        if ids:
            self._call("clearing geocode retries", lambda: self.redis.zrem(self.keys.geocode_retry, *ids))

    def update_location(self, center: Center) -> bool:
        """Rewrite one stored center whose location changed (a geocode retry succeeded).

        Only if it is still the stored version's feed member; keeps the GEO index, the
        needs-location list and the read document in step, in one transaction."""
        k = self.keys
        record = center.model_dump_json().encode()
        digest = hashlib.blake2b(record, digest_size=16).hexdigest().encode()

        def run() -> bool:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.watch(k.center(center.id))
                if not pipe.sismember(k.feed_members(center.feed_id), center.id):
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.hset(k.center(center.id), mapping={"j": record, "h": digest})
                if center.latitude is not None and center.longitude is not None and (
                        center.status is not CenterStatus.INACTIVE):
                    for key in k.geo_keys(index_tokens(center)):
                        pipe.geoadd(key, (center.longitude, center.latitude, center.id))
                    pipe.srem(k.needs_location, center.id)
                pipe.eval(self._compose_src, 0, k.prefix, center.id)
                try:
                    pipe.execute()
                except redis.WatchError:
                    return False
                return True

        return self._call("updating a location", run)

    def stored_records(self, center_ids: Sequence[str]) -> dict[str, bytes]:
        """The stored records of these centers (those that exist), in one round trip."""
        if not center_ids:
            return {}

        def read() -> Any:
            pipe = self.redis.pipeline(transaction=False)
            for cid in center_ids:
                pipe.hget(self.keys.center(cid), "j")
            return pipe.execute()

        return {cid: raw for cid, raw in zip(center_ids, self._call("reading centers", read), strict=True)
                if raw is not None}

    # ------------------------------------------------------------------------------ feed health

    def feed_state(self, feed_id: str) -> dict[str, str]:
        raw = self._call("reading feed health", lambda: self.redis.hgetall(self.keys.feed_state(feed_id)))
        return {_str(k): _str(v) for k, v in raw.items()}

    def feed_states(self, feed_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        def read() -> Any:
            pipe = self.redis.pipeline(transaction=False)
            for fid in feed_ids:
                pipe.hgetall(self.keys.feed_state(fid))
            return pipe.execute()

        replies = self._call("reading feed health", read) if feed_ids else []
        return {fid: {_str(k): _str(v) for k, v in raw.items()} for fid, raw in zip(feed_ids, replies, strict=True)}

    def set_feed_state(self, feed_id: str, values: Mapping[str, str | int | float], *,
                       increment: str | None = None, delete: Sequence[str] = ()) -> None:
        def write() -> Any:
            pipe = self.redis.pipeline(transaction=True)
            if values:
                pipe.hset(self.keys.feed_state(feed_id), mapping=dict(values))  # type: ignore[arg-type]
            if increment:
                pipe.hincrby(self.keys.feed_state(feed_id), increment, 1)
            if delete:
                pipe.hdel(self.keys.feed_state(feed_id), *delete)
            return pipe.execute()

        self._call("writing feed health", write)

    def hold_snapshot(self, feed_id: str, snapshot: bytes) -> None:
        self._call("holding a snapshot", lambda: self.redis.set(self.keys.feed_held(feed_id), snapshot))

    def held_snapshot(self, feed_id: str) -> bytes | None:
        raw = self._call("reading a held snapshot", lambda: self.redis.get(self.keys.feed_held(feed_id)))
        return raw if raw is None or isinstance(raw, bytes) else raw.encode()

    def drop_held_snapshot(self, feed_id: str) -> None:
        self._call("dropping a held snapshot", lambda: self.redis.delete(self.keys.feed_held(feed_id)))

    # ------------------------------------------------------------------------------------ locks

    def acquire_lock(self, name: str, ttl_seconds: float, owner: str | None = None) -> str | None:
        """A token if we now hold the lock ``name`` (for at most ``ttl_seconds``), else None.

        With ``owner`` (e.g. a task id, the same across redeliveries) the owner takes back a lock it
        still holds from an earlier attempt that died, instead of waiting for it to expire."""
        token = owner or secrets.token_hex(16)
        ok = self._call("taking a lock", lambda: self._lock(keys=[self.keys.lock(name)],
                                                             args=[token, int(ttl_seconds * 1000)]))
        return token if ok else None

    def release_lock(self, name: str, token: str) -> bool:
        """Release only if still ours (a lock that expired and was taken by another run stays)."""
        return bool(self._call("releasing a lock", lambda: self._unlock(keys=[self.keys.lock(name)], args=[token])))

    # ------------------------------------------------------------------------------------ pushes

    def accept_push(self, feed_id: str, event_id: str, ingest_id: str, fields: Mapping[str, bytes | str],
                    *, event_ttl: int = 86400, push_ttl: int = 7 * 86400) -> str | None:
        """Store a push durably under ``ingest_id``, once per (feed, event id).

        Returns None when stored, else the ingest id that already accepted this event id."""
        args: list[Any] = [ingest_id, event_ttl, push_ttl]
        for k, v in fields.items():
            args.extend((k, v))
        existing = self._call("storing a push", lambda: self._accept_push(
            keys=[self.keys.push_event(feed_id, event_id), self.keys.push(ingest_id)], args=args))
        return None if existing in (None, b"", "") else _str(existing)

    def forget_push(self, feed_id: str, event_id: str, ingest_id: str) -> None:
        """Undo ``accept_push`` (it could not be queued): the partner may retry with the same event id."""
        self._call("forgetting a push", lambda: self.redis.delete(self.keys.push_event(feed_id, event_id),
                                                                    self.keys.push(ingest_id)))

    def push_record(self, ingest_id: str) -> dict[str, bytes] | None:
        raw = self._call("reading a push", lambda: self.redis.hgetall(self.keys.push(ingest_id)))
        return {_str(k): v for k, v in raw.items()} if raw else None

    def update_push(self, ingest_id: str, values: Mapping[str, str | int]) -> None:
        self._call("updating a push", lambda: self.redis.hset(self.keys.push(ingest_id),
                                                              mapping=dict(values)))  # type: ignore[arg-type]

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
