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
    keys = [f"p:a:c{i}" for i in range(1000)]
    pairs = [x for i in range(1000) for x in ("detox|pull", f'{{"n":{i}}}')]
    pieces = staging.cut(("eval", (OBSERVE, 1000, *keys, "p:", 123, "own", *pairs), {}), S)
    assert len(pieces) == 1000 // staging.SCRIPT_ITEMS
    got_keys, got_pairs = [], []
    for (name, args, _), kind, cost in pieces:
        n = args[1]
        assert name == "eval" and kind == "observe" and args[0] == OBSERVE
        assert args[2 + n : 5 + n] == ("p:", 123, "own")  # every piece carries the head: prefix, order, mode
        assert cost == n <= staging.SCRIPT_ITEMS and len(args) - 5 - n == 2 * n
        got_keys.extend(args[2 : 2 + n])
        got_pairs.extend(args[5 + n :])
    assert (got_keys, got_pairs) == (keys, pairs)  # each observation's key stays with its field and JSON


def test_prune_groups_are_never_split() -> None:
    groups = [(i % 3, *[f"l{j}" for j in range(i % 3)]) for i in range(700)]
    keys = [f"p:a:c{i}" for i in range(700)]
    argv = [x for g in groups for x in g]
    pieces = staging.cut(("eval", (PRUNE, 700, *keys, "p:", "pull", *argv), {}), S)
    rebuilt, rekeyed = [], []
    for (_, args, _), kind, _ in pieces:
        n = args[1]
        assert kind == "prune" and args[2 + n : 4 + n] == ("p:", "pull")
        rekeyed.extend(args[2 : 2 + n])
        rebuilt.extend(staging._prune_groups(args[4 + n :]))
    assert (rekeyed, rebuilt) == (keys, groups)


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
        ("eval", (COMPOSE, 1000, *[f"p:c:n{i}" for i in range(1000)], "p:"), {}),
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
    composed = [x for name, args, _ in out if name == "eval" for x in args[2 : 2 + args[1]]]
    assert composed == [f"p:c:n{i}" for i in range(1000)]
    assert all(args[2 + args[1] :] == ("p:",) for name, args, _ in out if name == "eval")
    assert not any(args and args[0] in ("p:feed:f:m", "p:feeds", "p:feed:f:meta") for _, args, _ in out)
