"""A benchmark's headline figures as JSON (``--summary PATH``), for ``bench/goals.py``, which runs every
benchmark once and sets their figures against issue 14's goals in one table."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def add_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--summary", type=Path, default=None, help="also write the headline figures here as JSON (bench/goals.py)"
    )


def write(path: Path | None, figures: dict[str, Any]) -> None:
    """``figures`` to ``path`` (nothing when None); a figure that could not be measured (NaN) is written null, so
    bench/goals.py reads it "not run"."""
    if path is None:
        return
    path.write_text(json.dumps(_finite(figures), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity, however deep, as None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
