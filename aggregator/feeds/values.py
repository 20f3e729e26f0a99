"""Small readers of parsed partner data shared by the adapters (hsds.py, smart.py): pure."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit


def text(value: Any) -> str:
    """A scalar as one line of text, its whitespace runs made single spaces; '' for anything else (None,
    booleans, lists, objects)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return " ".join(str(value).split())


def dicts(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a JSON array (other items skipped); a lone object as a list of one; else []."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def basename(url: str) -> str:
    """A document's file name for messages: the last part of the URL's path (else the URL's start)."""
    return PurePosixPath(urlsplit(url).path).name or url[:80]
