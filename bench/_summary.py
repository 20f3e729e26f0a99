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
    """``figures`` to ``path`` (nothing when None); a figure that could not be measured (NaN) is written null."""
    if path is None:
        return
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in figures.items()}
    path.write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n", encoding="utf-8")
