"""A large write in bounded steps: how one recorded transaction is cut into short ones.

``Store.replace_feed`` writes a feed's snapshot as one MULTI/EXEC while it is small. A large one (a
100,000-record push, a national feed's first load) would hold Redis for seconds, and every public
search with it. It is recorded instead (the same commands, in the same order) and run as a *staged*
generation (``lua/visible.lua`` says what readers see meanwhile):

1. every facility the write will change is masked: readers keep seeing it as it was;
2. the recorded commands run in transactions of bounded cost (``plan``), each far under 50 ms of
   Redis time; script calls that name many centers are cut into several calls;
3. the flip: one short transaction makes the whole snapshot visible at once;
4. the clean-up: removals from the GEO and filter indexes (deferred: until the flip a reader must
   still find what leaves) and the masks are dropped, a bounded batch at a time.

This module is the pure part: which recorded command goes where, and how each is cut. It knows key
names only as the caller passes them, and imports no client library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: a recorded pipeline call: method name, positional arguments, keyword arguments
Op = tuple[str, tuple[Any, ...], dict[str, Any]]

#: cost of one transaction: script items (a center composed, an observation written) count 1 each,
#: set and GEO members 1/20 each, any other command 1. 100 keeps a transaction to a few milliseconds.
BUDGET = 100
SCRIPT_ITEMS = 100
MEMBERS = 2000


@dataclass(frozen=True)
class Scripts:
    """The recorded scripts' sources (told apart by identity) and the key names that matter here."""

    observe: str
    compose: str
    prune: str
    prefix: str
    geo: str
    members: str
    feeds: str
    meta: str


@dataclass
class Staged:
    """A recorded write, cut up. ``chunks``: transactions in order, each a list of (op, kind) where kind
    names a script whose replies are summed ("observe": [written, stale], "prune": removed) or is ""."""

    chunks: list[list[tuple[Op, str]]] = field(default_factory=list)
    #: feed members added before the write (the set is a superset until the clean-up: a write that dies
    #: half-way leaves every record it may have written listed, so the next run removes what it should)
    members_added: list[str] = field(default_factory=list)
    #: index removals deferred past the flip: "{key without prefix}\t{facility}"
    deferred: list[str] = field(default_factory=list)
    #: facilities leaving the main GEO index: hidden from readers from the flip until the clean-up
    hide: list[str] = field(default_factory=list)
    #: written by the flip itself
    meta: dict[str, Any] = field(default_factory=dict)
    #: the feed joins the list of feeds (before the write) or leaves it (after the flip)
    add_feed: bool = False
    drop_feed: bool = False


def pieces(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _prune_groups(argv: Sequence[Any]) -> list[tuple[Any, ...]]:
    """prune.lua's per-center argument groups: n_levels, level... (each center's key is in KEYS)"""
    groups, i = [], 0
    while i < len(argv):
        n = int(argv[i])
        groups.append(tuple(argv[i : i + 1 + n]))
        i += 1 + n
    return groups


def cut(op: Op, scripts: Scripts, budget: float = BUDGET) -> list[tuple[Op, str, float]]:
    """One recorded command as one or more commands, each within ``budget``: (op, kind, cost)."""
    name, args, kwargs = op
    items = max(1, min(SCRIPT_ITEMS, int(budget)))
    members = max(1, min(MEMBERS, int(budget * 20)))
    if name == "eval":
        src, numkeys, *rest = args
        keys, argv = rest[: int(numkeys)], rest[int(numkeys) :]
        # each unit: (its keys, its arguments); a piece carries its units' keys and the script's head
        if src is scripts.observe:
            head, kind = argv[:3], "observe"
            units = [((key,), tuple(argv[3 + 2 * i : 5 + 2 * i])) for i, key in enumerate(keys)]
        elif src is scripts.compose:
            head, kind = argv[:1], ""
            units = [((key,), ()) for key in keys]
        elif src is scripts.prune:
            head, kind = argv[:2], "prune"
            units = [((key,), group) for key, group in zip(keys, _prune_groups(argv[2:]), strict=True)]
        else:
            return [(op, "", 1.0)]
        return [
            (
                (
                    "eval",
                    (src, len(piece), *[key for u in piece for key in u[0]], *head, *[x for u in piece for x in u[1]]),
                    {},
                ),
                kind,
                float(len(piece)),
            )
            for piece in pieces(units, items)
        ]
    if name in ("sadd", "srem", "zrem") and len(args) > 1 + members:
        key, *names = args
        return [((name, (key, *piece), kwargs), "", len(piece) / 20) for piece in pieces(names, members)]
    if name == "geoadd":
        key, values = args[0], list(args[1])
        return [(("geoadd", (key, list(piece)), kwargs), "", len(piece) / 60) for piece in pieces(values, 3 * members)]
    if name in ("sadd", "srem", "zrem"):
        return [(op, "", max(1.0, (len(args) - 1) / 20))]
    return [(op, "", 1.0)]


def plan(ops: Sequence[Op], scripts: Scripts, *, budget: float = BUDGET) -> Staged:
    """Sort a recorded replace into a staged write. Commands keep their order; the feed's members, the
    list of feeds, its meta and index removals are handled around the flip instead (see ``Staged``)."""
    staged = Staged()
    current: list[tuple[Op, str]] = []
    spent = 0.0
    ix = scripts.prefix + "ix:"
    geo_level = scripts.geo + ":loc:"
    for op in ops:
        name, args, kwargs = op
        key = args[0] if args else None
        if key == scripts.members:
            if name == "sadd":
                staged.members_added.extend(args[1:])
            continue  # "srem": the clean-up removes the members that left (Store knows which)
        if key == scripts.feeds:
            staged.add_feed, staged.drop_feed = name == "sadd", name == "srem"
            continue
        if key == scripts.meta and name == "hset":
            staged.meta = dict(kwargs.get("mapping", {}))
            continue
        if name == "zrem" and (key == scripts.geo or str(key).startswith(geo_level)):
            short = str(key)[len(scripts.prefix) :]
            staged.deferred.extend(f"{short}\t{m}" for m in args[1:])
            if key == scripts.geo:
                staged.hide.extend(args[1:])
            continue
        if name == "srem" and str(key).startswith(ix):
            short = str(key)[len(scripts.prefix) :]
            staged.deferred.extend(f"{short}\t{m}" for m in args[1:])
            continue
        for piece, kind, cost in cut(op, scripts, budget):
            if current and spent + cost > budget:
                staged.chunks.append(current)
                current, spent = [], 0.0
            current.append((piece, kind))
            spent += cost
    if current:
        staged.chunks.append(current)
    return staged
