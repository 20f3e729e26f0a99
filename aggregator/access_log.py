"""The privacy-preserving access log: one line per request, with no client address and no searched place.

People search this service for addiction treatment near where they are: a ZIP code, a city or their
browser's coordinates next to an IP address is sensitive health information. So the log line of a
request is::

    2026-12-06T10:15:02Z GET /find?place=021xx&level_of_care=detox 200 12ms

* never the client's address (nor ``X-Forwarded-For``, the user agent, the referrer or cookies);
* a ZIP code (``zip``, or a ``place`` that is one) cut to its first 3 digits: ``zip=021xx``;
* coordinates (``lat``, ``lon``, ``lng``, ``latitude``, ``longitude``, and a ``place`` written as
  "lat,lon") dropped entirely, the parameter's name too;
* a city (``place=Cambridge, MA``) cut to its state: ``place=(city),MA``; any other ``place``: ``(redacted)``;
* the filters (``level_of_care``, ``payment``, ...) as sent, each value cut to 40 characters; any other
  parameter keeps its name only: ``token=(redacted)``;
* probes (``/healthz``, ``/readyz``, ``/metrics``) are not logged.

Lines go to the logger ``aggregator.access`` (INFO), which writes to the process's stderr unless
the embedding program configured handlers for it: under ``centers serve`` that is the API's log file
(``{CENTERS_DATA_DIR}/logs/api.log``). uvicorn's own access log (which writes the client address and the
raw query string) is switched off with ``--no-access-log`` where this project starts uvicorn; under gunicorn
it is off unless ``--access-logfile`` is given.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from aggregator.lookup import split_city_state

logger = logging.getLogger("aggregator.access")

#: query parameters that are coordinates: dropped, name and value
COORDINATE_KEYS = frozenset({"lat", "lon", "lng", "long", "latitude", "longitude", "ll", "coords", "coordinates"})
#: parameters that say nothing about where someone is: kept as sent (cut to MAX_VALUE characters)
SAFE_KEYS = frozenset(
    {"level_of_care", "payment", "population", "language", "available_only", "radius_mi", "limit", "lang"}
)
ZIP_KEYS = frozenset({"zip", "postal_code", "zipcode"})
PLACE_KEYS = frozenset({"place", "q", "address", "city", "location"})
#: paths polled by probes and scrapers: not logged
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_VALUE = 40
MAX_PATH = 200
REDACTED = "(redacted)"

_ZIP = re.compile(r"\s*(\d{3})\d{2}(?:-\d{4})?\s*")
_COORDINATES = re.compile(r"\s*[-+]?\d+(?:\.\d+)?\s*[, ]\s*[-+]?\d+(?:\.\d+)?\s*")


def redact_zip(value: str) -> str:
    """'02139' -> '021xx'; anything that is not a ZIP code: '(redacted)'."""
    m = _ZIP.fullmatch(value)
    return f"{m.group(1)}xx" if m else REDACTED


def redact_place(value: str) -> str | None:
    """A typed place as the log may keep it: a ZIP cut to 3 digits, a city cut to its state, coordinates
    None (dropped), anything else '(redacted)'."""
    if _ZIP.fullmatch(value):
        return redact_zip(value)
    if _COORDINATES.fullmatch(value):
        return None
    try:
        parts = split_city_state(value[:200])
    except Exception:  # a log line never fails a request
        parts = None
    return f"(city),{parts[1]}" if parts else REDACTED


def redact_query(query: str) -> str:
    """The query string as the access log writes it (see the module docstring)."""
    out = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        name = key.strip().lower()
        if name in COORDINATE_KEYS:
            continue
        kept: str | None
        if not value:
            kept = ""
        elif name in ZIP_KEYS:
            kept = redact_zip(value)
        elif name in PLACE_KEYS:
            kept = redact_place(value)
        elif name in SAFE_KEYS:
            kept = value[:MAX_VALUE]
        else:
            kept = REDACTED
        if kept is None:
            continue
        out.append(f"{quote(key[:MAX_VALUE], safe='_')}={quote(kept, safe='()_,-.')}")
    return "&".join(out)


def line(method: str, path: str, query: str, status: int, seconds: float) -> str:
    target = quote(path[:MAX_PATH], safe="/:_-.~")
    redacted = redact_query(query) if query else ""
    return f"{method} {target}{'?' + redacted if redacted else ''} {status} {round(seconds * 1000)}ms"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is written (never a stream closed since)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _UtcFormatter(logging.Formatter):
    _last: tuple[int, str] = (-1, "")  # the last second formatted (lines come many a second), as one value

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        last = self._last
        if last[0] != second:
            last = self._last = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return last[1]


def ensure_handler() -> None:
    """Unless the embedding program configured the access logger, write its lines to stderr (the API's log)."""
    if logger.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(_UtcFormatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the root logger may be configured with formats that add more


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def observed(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, done: Callable[[int, float], None]
) -> None:
    """Run ``app`` for an HTTP request, then call ``done`` with the status the client got (500 when the app
    raised before answering) and the seconds it took."""
    started = time.perf_counter()
    status = 500

    async def sending(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    try:
        await app(scope, receive, sending)
    finally:
        done(status, time.perf_counter() - started)


class AccessLogMiddleware:
    """ASGI middleware writing one redacted line per HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in QUIET_PATHS:
            await self.app(scope, receive, send)
            return

        def write(status: int, seconds: float) -> None:
            try:
                if logger.isEnabledFor(logging.INFO):
                    query = scope.get("query_string", b"").decode("latin-1")
                    text = line(scope.get("method", "-"), scope.get("path", ""), query, status, seconds)
                    # the record made directly: logger.info would look up its caller's file and line, a
                    # fifth of this middleware's cost on the busiest route, for fields the line never shows
                    logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, "%s", (text,), None))
            except Exception:  # noqa: S110 - a log line never fails a request
                pass

        await observed(self.app, scope, receive, send, write)
