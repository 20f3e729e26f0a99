"""Partner pushes: who is pushing (signatures and keys), and what the body says. Pure.

Signing follows Standard Webhooks (https://www.standardwebhooks.com): three headers,

    webhook-id         the event id: unique per push; a retry of the same push reuses it
    webhook-timestamp  seconds since the epoch; refused more than 5 minutes from our clock
    webhook-signature  "v1,<base64 HMAC-SHA256(secret, f'{id}.{timestamp}.{raw body}')>",
                       several space-separated signatures allowed (secret rotation)

The secret is the UTF-8 bytes of the value in the partner's environment variable. The simpler
alternative is ``Authorization: Bearer <key>``, with an optional ``Idempotency-Key`` as event id.
Every comparison is constant-time; two secrets or keys may be active at once for rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aggregator.errors import ParseError
from aggregator.feeds import Document
from aggregator.feeds import csv as csv_feed
from aggregator.feeds import json as json_feed
from aggregator.feeds.mapping import RecordMapping
from config.secret import Secret

TOLERANCE_SECONDS = 300
CONTENT_TYPES = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "text/csv": "csv",
}


def sign(secret: bytes, event_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``webhook-signature`` header value a partner sends (also used by our own tests and docs)."""
    mac = hmac.new(secret, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_matches(
    secrets: Iterable[Secret | bytes], event_id: str, timestamp: str, body: bytes, header: str
) -> bool:
    """Does any v1 signature in ``header`` verify with any of ``secrets``? Constant-time per comparison."""
    given: list[bytes] = []
    for part in header.split():
        version, _, value = part.partition(",")
        if version != "v1":
            continue
        try:
            given.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    ok = False
    for secret in secrets:
        key = secret.reveal().encode() if isinstance(secret, Secret) else secret
        expected = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        for g in given:
            ok |= hmac.compare_digest(expected, g)
    return ok


def key_matches(keys: Iterable[Secret], presented: str) -> bool:
    """Is ``presented`` one of ``keys``? Every key is compared, each in constant time."""
    ok = False
    for key in keys:
        ok |= key.matches(presented)
    return ok


#: a number in a header: ASCII digits only, 1 to 12 of them
ASCII_DIGITS = re.compile(r"[0-9]{1,12}")


def timestamp_fresh(timestamp: str, now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    if not ASCII_DIGITS.fullmatch(timestamp):  # str.isdigit() takes '²³', which int() refuses
        return False
    return abs(now - int(timestamp)) <= tolerance


@dataclass(frozen=True)
class PartnerSecrets:
    """A push feed's active secrets and keys, read from the environment at start."""

    feed_id: str
    partner: str
    hmac_secrets: tuple[Secret, ...]
    bearer_keys: tuple[Secret, ...]


def content_kind(content_type: str) -> str | None:
    return CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())


def parse_push(body: bytes, kind: str, mapping: RecordMapping, url: str = "push") -> list[dict[str, Any]]:
    """A pushed body to raw records, through the feed's own mapping.

    JSON: an array of records, or an object whose ``records`` (or the mapping's ``records`` path)
    is that array. NDJSON: one record per line. CSV: a header and rows."""
    if kind == "csv":
        return csv_feed.parse_one(body, mapping)
    if kind == "ndjson":
        return json_feed.parse([Document(url, body)], _with(mapping, records="", ndjson=True))
    if kind == "json":
        records = mapping.records
        if not records:
            stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
            records = "" if stripped.startswith(b"[") else "records"
        return json_feed.parse([Document(url, body)], _with(mapping, records=records))
    raise ParseError(f"unsupported push format {kind!r}")


def _with(mapping: RecordMapping, *, records: str, ndjson: bool = False) -> RecordMapping:
    from dataclasses import replace

    options = {**mapping.options, "ndjson": ndjson} if ndjson else mapping.options
    return replace(mapping, records=records, options=options)


def rejections_by_record(rejections: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in rejections:
        out.setdefault(str(r.get("record") or "(no id)"), []).append(f"{r.get('field')}: {r.get('reason')}")
    return out
