"""The project's error tree.

Every dependency's exceptions (redis, requests, geopy, ...) are translated into these in exactly one
module, with ``raise ... from exc``, so callers decide by type, never by message::

    AggregatorError
    ├── TransientError            worth retrying later: the same call may succeed
    │   ├── StoreUnavailable      Redis unreachable, timed out, read-only, out of memory
    │   ├── FetchTransient        partner timeout, connection refused, 5xx, 429
    │   └── GeocoderTransient     geocoder timed out, unavailable, rate limited
    └── PermanentError            retrying the same input gives the same answer
        ├── InvalidValue          one field of one record is unusable (field + reason)
        ├── InvalidQuery          a lookup was asked something impossible (parameter + reason)
        │   ├── UnknownZip        a ZIP code that does not exist
        │   └── PlaceNotFound     an operator's free-text place the geocoder could not find
        ├── ConfigError           settings or partner registry are wrong (feed + key)
        ├── FetchPermanent        404, 401, refused destination, body over the cap, wrong type
        ├── ParseError            the feed's bytes do not match its format or mapping
        ├── GeocoderPermanent     the geocoder refused the query or our credentials
        └── RunRejected           a feed run accepted too few of its records to be applied

``TransientError.retry_after`` carries a server's hint (seconds) where one was given.
"""

from __future__ import annotations

from typing import Any


class AggregatorError(Exception):
    """Base of every error this project raises on purpose."""

    kind = "error"


class TransientError(AggregatorError):
    """The same call may succeed later; Celery retries these with backoff."""

    kind = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(AggregatorError):
    """Retrying the same input gives the same answer; never retried automatically."""

    kind = "permanent"


class StoreUnavailable(TransientError):
    kind = "store_unavailable"


class FetchTransient(TransientError):
    kind = "fetch_transient"


class GeocoderTransient(TransientError):
    kind = "geocoder_transient"


class InvalidValue(PermanentError, ValueError):
    """One field of one record cannot be used. ``field`` names it, ``reason`` says why."""

    kind = "invalid_value"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidQuery(PermanentError, ValueError):
    """A lookup parameter is impossible (``parameter`` + ``reason``)."""

    kind = "invalid_query"

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


class UnknownZip(InvalidQuery):
    kind = "unknown_zip"

    def __init__(self, zip_code: str) -> None:
        super().__init__("zip", f"ZIP code {zip_code!r} does not exist")
        self.zip_code = zip_code


class PlaceNotFound(InvalidQuery):
    kind = "place_not_found"

    def __init__(self, place: str) -> None:
        super().__init__("place", f"no US place found for {place!r}")
        self.place = place


class ConfigError(PermanentError):
    """Settings or the partner registry are wrong; the message names the feed and the key."""

    kind = "config"


class FetchPermanent(PermanentError):
    kind = "fetch_permanent"


class ParseError(PermanentError):
    kind = "parse"


class GeocoderPermanent(PermanentError):
    kind = "geocoder_permanent"


class RunRejected(PermanentError):
    """A feed run that accepted nothing, or less than the feed's ``min_accepted_share``: not applied.

    ``report`` is the run's ingest report (its reasons go to feed health)."""

    kind = "rejected"

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report
