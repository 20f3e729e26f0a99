"""House rules import-linter cannot check (the import rules themselves are `lint-imports`, pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: the pure core: what it knows comes in through arguments, never from the environment
CORE = [
    "aggregator/model.py",
    "aggregator/normalize.py",
    "aggregator/vocabulary.py",
    "aggregator/geography.py",
    "aggregator/feeds",
    "aggregator/push.py",
]


def _core_files() -> list[Path]:
    files: list[Path] = []
    for name in CORE:
        path = ROOT / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def environment_reads(source: str) -> list[str]:
    """Where ``source`` reads the environment: os.environ, os.getenv, os.environb, os.putenv (also imported
    by name, or through an alias of os)."""
    tree = ast.parse(source)
    os_names = {"os"} | {
        a.asname for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names if a.name == "os" and a.asname
    }
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
            and node.attr in ("environ", "environb", "getenv", "getenvb", "putenv")
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [
                f"line {node.lineno}: from os import {a.name}"
                for a in node.names
                if a.name in ("environ", "environb", "getenv", "getenvb", "putenv")
            ]
    return found


def test_the_scan_finds_every_way_of_reading_the_environment() -> None:
    assert environment_reads("import os\nx = os.environ['A']\n")
    assert environment_reads("import os as _os\nx = _os.getenv('A')\n")
    assert environment_reads("from os import environ\n")
    assert not environment_reads("import os\nos.replace('a', 'b')\n")


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_reads_no_environment(path: Path) -> None:
    assert _core_files(), "no core module found"
    reads = environment_reads(path.read_text(encoding="utf-8"))
    assert not reads, (
        f"{path.relative_to(ROOT)} reads the environment ({'; '.join(reads)}): settings come "
        "in from the edge (config/settings.py), as arguments"
    )
