"""The public near-you answer as JSON bytes, each hit's shaping done once per stored document.

A hit's public JSON is decided by three things: the read document Redis returned for it in this request (the
composed record and its observations, as stored), which of its figures are fresh at this moment, and, within
that, only the distance and each figure's age. ``HitRenderer`` keeps, for the documents it saw last, the JSON
the ordinary path makes of them (``lookup``'s shaping and ``public_center``, run once), with the distance and
the ages left as holes. A request judges every figure's freshness anew (``_Rendered.mask``), shapes the
document again when the judgement differs from the kept one, and fills the holes. Nothing is answered that was
not read from Redis in the same request: a document whose figures or record changed is other bytes, so a new
entry (entries are keyed by the center and a 128-bit BLAKE2b digest of the document's bytes); an entry only
saves decoding and shaping bytes already seen.

The work it saves is most of a near request's own (decoding ten documents, judging and shaping them, then
serializing the answer): see BENCHMARKS.md, "HTTP".
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from aggregator import lookup
from aggregator.store import DocumentHits, SearchHits, read_doc

#: what the public sees of a facility, in this order
PUBLIC_FIELDS = (
    "id",
    "name",
    "alternate_name",
    "distance_mi",
    "address",
    "latitude",
    "longitude",
    "geo_precision",
    "phones",
    "website",
    "status",
    "services",
    "source_url",
    "availability",
)


def public_center(record: dict[str, Any], partners: Mapping[str, str]) -> dict[str, Any]:
    """What the public sees of a facility: no internal ids of partners' systems; its sources by partner."""
    out = {k: record[k] for k in PUBLIC_FIELDS if k in record}
    out["sources"] = [
        {
            "feed_id": s["feed_id"],
            "partner": partners.get(s["feed_id"], s["feed_id"]),
            "reported_at": s.get("reported_at"),
        }
        for s in record.get("sources", ())
    ]
    for entry in out.get("availability", ()):
        entry.pop("record", None)
    return out


#: what the kept documents may take in the API process, counted as their JSON parts, ``ENTRY_OVERHEAD`` each and
#: ``FIGURE_OVERHEAD`` a figure: the least recently used go first. A facility with a few figures takes about 3.9 KB:
#: some 17,000 are kept (the answers around 1,700 places). Where searches sweep more places than that in turn, each
#: is a first sight again (it then costs about 1.15x shaping anew).
KEPT_BYTES = 64 * 1024 * 1024
#: what an entry takes beside its bytes (the objects holding them; measured with tracemalloc: about 1.3 KB)
ENTRY_OVERHEAD = 1_500
#: and for each figure of its document: its expiry (an int and its slot) and its slot in the freshness mask (about
#: 52 bytes, measured with tracemalloc). Uncounted, a facility of 200 records and 2,200 figures held about 6x what
#: its parts counted
FIGURE_OVERHEAD = 64
#: a document larger than this (a facility of very many records) is shaped per request, never kept
KEPT_DOCUMENT_MAX = 256 * 1024

#: stand-ins written where the distance and the ages go (negative: no real distance or age is)
_DISTANCE = -7_777_777.25
_AGE = -900_000_000
_DISTANCE_HOLE = b'"distance_mi":' + orjson.dumps(_DISTANCE)
#: a hole's fill: None for the distance, else the epoch ms the figure was reported at (its age's origin)
Fill = int | None


class _Rendered:
    """One document: when each of its figures stops being fresh, and its public JSON for one judgement."""

    __slots__ = ("expiries", "fills", "mask_of", "parts", "size")

    def __init__(self, expiries: tuple[float, ...]) -> None:
        self.expiries = expiries
        self.mask_of: tuple[bool, ...] | None = None
        self.parts: list[bytes] = []
        self.fills: list[Fill] = []
        self.size = 0

    def mask(self, now_ms: float) -> tuple[bool, ...]:
        """Which figures are fresh at ``now_ms`` (a float: ``HitRenderer.hits`` makes it one), as ``lookup``
        judges them (reported_at + window > now)."""
        return tuple(map(now_ms.__lt__, self.expiries))

    def fill(self, out: list[bytes], distance: float, now_ms: float, ages: dict[int, bytes]) -> None:
        """This hit's JSON onto ``out``: the parts, the holes filled (``ages``: those already written)."""
        parts = self.parts
        out.append(parts[0])
        for i, fill in enumerate(self.fills, 1):
            if fill is None:
                out.append(orjson.dumps(round(distance, 2)))
            else:
                age = ages.get(fill)
                if age is None:  # as lookup._view computes it
                    age = ages[fill] = str(int(now_ms - fill) // 1000 if now_ms > fill else 0).encode()
                out.append(age)
            out.append(parts[i])


def _shape(
    center_id: str, doc: bytes, now_ms: float, partners: Mapping[str, str]
) -> tuple[tuple[float, ...], list[bytes], list[Fill]] | None:
    """The document shaped at ``now_ms`` by the ordinary path, as JSON cut at its holes; None when the holes
    cannot be told apart from the rest (a record carrying a field named like one), so the caller shapes it
    per request instead."""
    center, observations = read_doc(doc)
    expiries = tuple(o["rt"] + o["freshness_seconds"] * 1000 for o in observations)
    reported = {id(o): o["rt"] for o in observations}  # lookup shapes each observation in place: its view
    hit = lookup._hit((center_id, _DISTANCE, center, observations), now_ms, "public")
    public = public_center(hit.as_dict(), partners)
    holes = [(_DISTANCE_HOLE, None)]
    for i, entry in enumerate(public.get("availability", ())):
        rt = reported.get(id(entry))
        if rt is not None and "age_seconds" in entry:
            entry["age_seconds"] = _AGE - i
            holes.append((b'"age_seconds":%d' % (_AGE - i), rt))
    data = orjson.dumps(public)
    # a hole's text cannot occur inside a JSON string (its quotes would be escaped there); each is written once
    found = []
    for hole, fill in holes:
        pos = data.find(hole)
        if pos < 0 or data.find(hole, pos + 1) >= 0:
            return None
        found.append((pos, hole, fill))
    found.sort()
    parts: list[bytes] = []
    fills: list[Fill] = []
    at = 0
    for pos, hole, fill in found:
        cut = pos + hole.index(b":") + 1
        parts.append(data[at:cut])
        fills.append(fill)
        at = pos + len(hole)
    parts.append(data[at:])
    return expiries, parts, fills


class HitRenderer:
    """The public JSON of near-you hits (see the module docstring), for one API process and its partners.

    What is kept is bounded (``KEPT_BYTES``, the least recently used go first); a lock keeps the bookkeeping
    whole should a route run in worker threads."""

    def __init__(self, kept_bytes: int = KEPT_BYTES) -> None:
        self.kept_bytes = kept_bytes
        self.size = 0  # what the kept entries take, as KEPT_BYTES counts it
        self._docs: OrderedDict[tuple[str, bytes], _Rendered] = OrderedDict()
        self._partners: dict[str, str] = {}
        self._lock = threading.Lock()
        self.shaped = 0  # documents shaped (a first sight, or a judgement that changed): for tests and metrics

    def __len__(self) -> int:
        return len(self._docs)

    def _keep(self, key: tuple[str, bytes], entry: _Rendered) -> None:
        """Count ``entry``'s new parts, then let the least recently used go until all fits."""
        self.size -= entry.size
        entry.size = len(key[0]) + sum(map(len, entry.parts)) + ENTRY_OVERHEAD + FIGURE_OVERHEAD * len(entry.expiries)
        self.size += entry.size
        while self.size > self.kept_bytes and self._docs:
            _, gone = self._docs.popitem(last=False)
            self.size -= gone.size

    def hits(self, found: DocumentHits, now_ms: float, partners: Mapping[str, str]) -> list[bytes]:
        """The hits' public JSON, nearest first, judged at ``now_ms``, as parts of a JSON array's items
        (commas included): ``answer_bytes`` joins them."""
        return self.hits_and_turn(found, now_ms, partners)[0]

    def hits_and_turn(
        self, found: DocumentHits, now_ms: float, partners: Mapping[str, str]
    ) -> tuple[list[bytes], float]:
        """``hits``, and the first moment after ``now_ms`` (epoch ms) at which a figure of theirs turns stale, so
        the answer may read otherwise (``math.inf`` when none will): a cache must not keep it past then."""
        turn = math.inf
        out: list[bytes] = []
        ages: dict[int, bytes] = {}
        docs = self._docs
        now_ms = float(now_ms)  # compared with each figure's expiry by float.__lt__ (an int's says NotImplemented)
        with self._lock:
            if partners != self._partners:  # a partner renamed: every kept text names the old one
                docs.clear()
                self.size = 0
                self._partners = dict(partners)
            for center_id, distance, doc in found:
                if out:
                    out.append(b",")
                key = (center_id, hashlib.blake2b(doc, digest_size=16).digest())  # the document, not kept
                entry = docs.get(key)
                if entry is not None:
                    for e in entry.expiries:  # _next_turn, inline: the busiest path
                        if now_ms < e < turn:
                            turn = e
                    docs.move_to_end(key)
                    if entry.mask(now_ms) == entry.mask_of:
                        entry.fill(out, distance, now_ms, ages)
                        continue
                shaped = _shape(center_id, doc, now_ms, self._partners) if len(doc) <= KEPT_DOCUMENT_MAX else None
                self.shaped += 1
                if shaped is None:
                    text, expiries = _shaped_now(center_id, distance, doc, now_ms, self._partners)
                    turn = min(turn, _next_turn(expiries, now_ms))
                    out.append(text)
                    continue
                if entry is None:  # (a kept entry's figures were counted in the turn above)
                    turn = min(turn, _next_turn(shaped[0], now_ms))
                    entry = docs[key] = _Rendered(shaped[0])
                entry.mask_of, entry.parts, entry.fills = entry.mask(now_ms), shaped[1], shaped[2]
                entry.fill(out, distance, now_ms, ages)
                self._keep(key, entry)
        return out, turn


def _next_turn(expiries: Sequence[float], now_ms: float) -> float:
    """The first of ``expiries`` after ``now_ms`` (``math.inf`` when none is)."""
    turn = math.inf
    for e in expiries:
        if now_ms < e < turn:
            turn = e
    return turn


def _shaped_now(
    center_id: str, distance: float, doc: bytes, now_ms: float, partners: Mapping[str, str]
) -> tuple[bytes, tuple[float, ...]]:
    center, observations = read_doc(doc)
    expiries = tuple(o["rt"] + o["freshness_seconds"] * 1000 for o in observations)  # before they are reshaped
    hit = lookup._hit((center_id, distance, center, observations), now_ms, "public")
    return orjson.dumps(public_center(hit.as_dict(), partners)), expiries


def max_age(default: int, now_ms: float, turn_ms: float) -> int:
    """A public answer's ``Cache-Control`` max-age: ``default`` seconds, but never past the moment a figure it
    shows turns stale (``turn_ms``: a browser or a proxy keeping it longer would show that figure as live)."""
    if turn_ms == math.inf:
        return default
    return max(0, min(default, int((turn_ms - now_ms) // 1000)))


def answer_bytes(answer: lookup.NearAnswer, count: int, results: Sequence[bytes]) -> bytes:
    """``answer`` (its results left empty) as the API's JSON, with ``count`` results made of ``results``
    (``HitRenderer.hits``)."""
    body = answer.as_dict()
    body["count"] = count
    data = orjson.dumps(body)
    at = data.index(b'"results":[]') + len(b'"results":[')  # a key: inside a string its quotes are escaped
    return b"".join((data[:at], *results, data[at:]))


def no_hits(found: DocumentHits) -> SearchHits:
    """An empty ``SearchHits`` that says whether the search stopped early, as ``found`` does."""
    hits = SearchHits()
    hits.stopped = found.stopped
    return hits
