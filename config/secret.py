"""``Secret``: a token, key or HMAC secret that never shows itself.

Its ``repr`` and ``str`` are ``**********``, so a secret inside settings, a dataclass, a log line or a
traceback's locals prints masked. The value comes out only through ``reveal()``, written where it is
needed (signing, a request header), or is compared with ``matches`` in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

MASK = "**********"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        self._value = value.decode() if isinstance(value, bytes) else value

    def reveal(self) -> str:
        """The value itself: only where it is used (a signature, a header), never to show or log."""
        return self._value

    def matches(self, presented: str | bytes) -> bool:
        """Is ``presented`` this secret? Their SHA-256 digests are compared in constant time, so neither the
        content nor the length of the secret shows in how long the answer takes."""
        given = presented.encode() if isinstance(presented, str) else presented
        return hmac.compare_digest(hashlib.sha256(self._value.encode()).digest(), hashlib.sha256(given).digest())

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __format__(self, _spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> Any:  # pickles are not logs: a copied Secret keeps its value
        return Secret, (self._value,)
