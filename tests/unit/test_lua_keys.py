"""The Lua scripts that build key names from the store's prefix build them as ``Keys`` does.

Scripts receive in KEYS the keys known on the client (observe.lua and prune.lua each center's ``a:{id}``,
compose.lua and mask.lua each facility's ``c:{id}``); what they reach from there, and the searches (near.lua,
get.lua, visible.lua, doc.lua, cleanup.lua), derive from ids they read: a record's facility, a facility's
members, ``prefix .. 'c:' .. id`` (cleanup.lua's ``prefix .. key`` joins names staging.plan cut from keys the
store built). Each such expression in their source is read here and must name a key
shape ``Keys`` builds (``c:{}``, ``stage:{}:m``, ``masks``, ...), so a key renamed on one side only fails."""

from __future__ import annotations

import inspect
import re
from importlib import resources

from aggregator.store import Keys

PREFIX = "P:"
HOLE = "\x00"  # stands for any part the script or a Keys method fills in

#: a key built from the prefix: ``prefix .. 'literal'`` (or ``ARGV[1] .. 'literal'``), then more pieces
_BUILT = re.compile(
    r"""(?:\bprefix|ARGV\[1\])\s*\.\.\s*'([^']*)'"""
    r"""((?:\s*\.\.\s*(?:'[^']*'|[A-Za-z_][\w.]*(?:\[[^\]]*\])?(?:\([^()]*\))?))*)"""
)
_PIECE = re.compile(r"""\.\.\s*('([^']*)'|[A-Za-z_][\w.]*(?:\[[^\]]*\])?(?:\([^()]*\))?)""")


def lua_shapes() -> dict[str, set[str]]:
    """Every key shape a script builds from its prefix: shape -> scripts (HOLE where a value goes)."""
    found: dict[str, set[str]] = {}
    for entry in resources.files("aggregator").joinpath("lua").iterdir():
        if not entry.name.endswith(".lua"):
            continue
        source = "\n".join(line.split("--", 1)[0] for line in entry.read_text(encoding="utf-8").splitlines())
        for m in _BUILT.finditer(source):
            shape = m.group(1)
            for piece in _PIECE.finditer(m.group(2)):
                shape += piece.group(2) if piece.group(2) is not None else HOLE
            found.setdefault(shape, set()).add(entry.name)
    return found


def keys_shapes() -> list[re.Pattern[str]]:
    """The key names ``Keys`` builds, without the prefix, as patterns (a method's arguments match anything)."""
    keys = Keys(PREFIX)
    names: list[str] = []
    for name, member in vars(Keys).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            names.append(getattr(keys, name))
        elif inspect.isfunction(member):
            params = list(inspect.signature(member).parameters)[1:]
            if name == "session" or name == "geo_keys":
                continue  # a digest of its argument; a list
            names.append(getattr(keys, name)(*[HOLE] * len(params)))
    names += [keys.geo, keys.feeds, keys.needs_location]
    return [
        re.compile(re.escape(n.removeprefix(PREFIX)).replace(re.escape(HOLE), ".+").replace(HOLE, ".+")) for n in names
    ]


def test_the_scripts_build_keys_as_keys_does() -> None:
    shapes = lua_shapes()
    patterns = keys_shapes()
    # the reading finds the keys every script family builds (a parser gone blind would pass anything)
    assert {
        f"c:{HOLE}",
        f"a:{HOLE}",
        f"r:{HOLE}",
        f"ix:{HOLE}",
        "masks",
        "staging",
        "geo",
        f"stage:{HOLE}:hide",
        f"stage:{HOLE}:{HOLE}",
    } <= set(shapes), sorted(shapes)
    unknown = {
        shape.replace(HOLE, "{}"): sorted(scripts)
        for shape, scripts in shapes.items()
        if not any(p.fullmatch(shape.replace(HOLE, "x")) for p in patterns)
    }
    assert not unknown, f"keys built in Lua that Keys does not build: {unknown}"


def test_a_misspelt_key_is_caught() -> None:
    patterns = keys_shapes()
    assert not any(p.fullmatch("fac:x") for p in patterns)
    assert any(p.fullmatch("stage:x:m") for p in patterns)
    assert any(p.fullmatch("geo:loc:x") for p in patterns)
