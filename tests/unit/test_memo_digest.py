"""Row memos are labelled with the normalizing code a process loaded, not with files changed on disk since."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _digest(after_import: str) -> str:
    code = f"import pathlib\nimport aggregator.ingest as m\n{after_import}\nprint(m._code_digest())\n"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def test_a_release_landing_on_disk_after_the_import_does_not_relabel_the_memos() -> None:
    """A worker's child forked after an upgrade landed, before the worker restarted, runs the old code: its memos
    must carry the old code's digest, or the new code would trust them after the restart."""
    loaded = _digest("")
    changed = _digest("pathlib.Path.read_bytes = lambda self: b'a release changed this file on disk'")
    assert len(loaded) == 32 and changed == loaded
