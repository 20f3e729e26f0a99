"""How a recorded write is cut into bounded transactions (aggregator/staging.py), without Redis."""

from __future__ import annotations

from aggregator import staging

OBSERVE, COMPOSE, PRUNE = "-- observe", "-- compose", "-- prune"
S = staging.Scripts(
    observe=OBSERVE,
    compose=COMPOSE,
    prune=PRUNE,
    prefix="p:",
    geo="p:geo",
    members="p:feed:f:m",
    feeds="p:feeds",
    meta="p:feed:f:meta",
)


def flat(staged: staging.Staged) -> list[staging.Op]:
    return [op for chunk in staged.chunks for op, _ in chunk]


def test_a_script_call_naming_many_centers_is_cut_at_whole_items() -> None:
    triples = [x for i in range(1000) for x in (f"c{i}", "detox|pull", f'{{"n":{i}}}')]
    pieces = staging.cut(("eval", (OBSERVE, 0, "p:", 123, *triples), {}), S)
    assert len(pieces) == 1000 // staging.SCRIPT_ITEMS
    for (name, args, _), kind, cost in pieces:
        assert name == "eval" and kind == "observe" and args[:4] == (OBSERVE, 0, "p:", 123)
        assert (len(args) - 4) % 3 == 0 and cost == (len(args) - 4) / 3 <= staging.SCRIPT_ITEMS
    assert [x for (_, args, _), _, _ in pieces for x in args[4:]] == triples


def test_prune_groups_are_never_split() -> None:
    groups = [(f"c{i}", i % 3, *[f"l{j}" for j in range(i % 3)]) for i in range(700)]
    argv = [x for g in groups for x in g]
    pieces = staging.cut(("eval", (PRUNE, 0, "p:", "pull", *argv), {}), S)
    rebuilt = []
    for (_, args, _), kind, _ in pieces:
        assert kind == "prune" and args[2:4] == ("p:", "pull")
        rebuilt.extend(staging._prune_groups(args[4:]))
    assert rebuilt == groups


def test_the_plan_keeps_order_bounds_each_transaction_and_defers_what_readers_must_still_find() -> None:
    ops: list[staging.Op] = [
        ("delete", ("p:r:old",), {}),
        ("hset", ("p:r:a",), {"mapping": {"j": b"{}"}}),
        ("delete", ("p:feed:f:m",), {}),
        ("sadd", ("p:feed:f:m", "a", "b"), {}),
        ("sadd", ("p:feeds", "f"), {}),
        ("hset", ("p:feed:f:meta",), {"mapping": {"centers": 2}}),
        ("srem", ("p:ix:pay:medicaid", "old", "x"), {}),
        ("sadd", ("p:ix:pay:medicaid", *[f"n{i}" for i in range(5000)]), {}),
        ("zrem", ("p:geo", "old"), {}),
        ("zrem", ("p:geo:loc:detox", "x"), {}),
        ("geoadd", ("p:geo", [v for i in range(5000) for v in (1.0, 2.0, f"n{i}")]), {}),
        ("eval", (COMPOSE, 0, "p:", *[f"n{i}" for i in range(1000)]), {}),
    ]
    staged = staging.plan(ops, S, budget=100)
    assert staged.members_added == ["a", "b"] and staged.add_feed and not staged.drop_feed
    assert staged.meta == {"centers": 2}
    assert sorted(staged.deferred) == sorted(
        ["ix:pay:medicaid\told", "ix:pay:medicaid\tx", "geo\told", "geo:loc:detox\tx"]
    )
    assert staged.hide == ["old"]
    for chunk in staged.chunks:
        assert sum(cost for op, _ in chunk for _, _, cost in staging.cut(op, S, 100)) <= 100
    out = flat(staged)
    assert [o[0] for o in out[:2]] == ["delete", "hset"]
    added = [m for name, args, _ in out if name == "sadd" for m in args[1:]]
    assert added == [f"n{i}" for i in range(5000)]
    composed = [x for name, args, _ in out if name == "eval" for x in args[3:]]
    assert composed == [f"n{i}" for i in range(1000)]
    assert not any(args and args[0] in ("p:feed:f:m", "p:feeds", "p:feed:f:meta") for _, args, _ in out)
