"""Partners push their records: verified, stored durably, queued, then acknowledged (202).

Order of checks: the feed exists and takes pushes (404); the body is not too large (413) and of a
type we read (415); the caller is this feed's partner (401 if unknown, 403 if it is another
partner); the timestamp is within 5 minutes (401); the partner is within its rate (429 with
Retry-After); the event id is new (409, with the ingest that took it). Only then is the body stored
in Redis and the ingest task queued; if either fails the answer is 503 and nothing is kept, so the
partner can retry with the same event id.
"""

from __future__ import annotations

import re
import secrets as secrets_module
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel

from aggregator.api.common import (
    RATE_WINDOW_MS,
    ApiError,
    AppState,
    json_response,
    rate_key,
    rate_limited_error,
    state_of,
)
from aggregator.push import (
    ASCII_DIGITS,
    content_kind,
    key_matches,
    rejections_by_record,
    signature_matches,
    timestamp_fresh,
)
from aggregator.store import PushRecord
from workers import names

router = APIRouter(tags=["partners"])

_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class Accepted(BaseModel):
    ingest_id: str
    status: str
    status_url: str


class IngestStatus(BaseModel):
    ingest_id: str
    feed_id: str
    status: str
    received_at: str | None = None
    finished_at: str | None = None
    records: int | None = None
    accepted: int | None = None
    rejected: int | None = None
    rejections_by_record: dict[str, list[str]] = {}
    error: str | None = None


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and ASCII_DIGITS.fullmatch(declared) and int(declared) > limit:
        raise ApiError(413, "too_large", f"body of {int(declared):,} bytes is over the {limit:,}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"body is over the {limit:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _caller(st: AppState, feed_id: str, request: Request, body: bytes) -> str:
    """The event id of an authenticated push to ``feed_id``; raises 401/403 otherwise."""
    h = request.headers
    own = st.secrets[feed_id]
    others = [s for fid, s in st.secrets.items() if fid != feed_id and s.partner != own.partner]
    if "webhook-signature" in h:
        event_id, timestamp = h.get("webhook-id", ""), h.get("webhook-timestamp", "")
        if not _EVENT_ID.match(event_id):
            raise ApiError(401, "unauthorized", "webhook-id is missing or malformed")
        if not timestamp_fresh(timestamp, st.clock().timestamp()):
            raise ApiError(401, "unauthorized", "webhook-timestamp is missing or more than 5 minutes from now")
        signature = h["webhook-signature"]
        if signature_matches(own.hmac_secrets, event_id, timestamp, body, signature):
            return event_id
        if any(signature_matches(o.hmac_secrets, event_id, timestamp, body, signature) for o in others):
            raise ApiError(403, "forbidden", f"your credentials do not allow writing feed {feed_id!r}")
        raise ApiError(401, "unauthorized", "the signature does not verify")
    auth = h.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        key = auth[7:].strip()
        event_id = h.get("idempotency-key") or secrets_module.token_hex(16)
        if not _EVENT_ID.match(event_id):
            raise ApiError(401, "unauthorized", "Idempotency-Key is malformed")
        if key and key_matches(own.bearer_keys, key):
            return event_id
        if key and any(key_matches(o.bearer_keys, key) for o in others):
            raise ApiError(403, "forbidden", f"your credentials do not allow writing feed {feed_id!r}")
        raise ApiError(401, "unauthorized", "the key is not valid")
    raise ApiError(
        401,
        "unauthorized",
        "sign the push (webhook-* headers) or send Authorization: Bearer",
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.post(
    "/v1/feeds/{feed_id}/records",
    status_code=202,
    response_model=Accepted,
    summary="Push records (JSON array, NDJSON or CSV), mapped by the feed's configuration",
    responses={401: {}, 403: {}, 404: {}, 409: {}, 413: {}, 415: {}, 429: {}, 503: {}},
)
async def push_records(
    request: Request, feed_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
) -> Response:
    st = state_of(request)
    if feed_id not in st.secrets:
        raise ApiError(404, "unknown_feed", f"feed {feed_id!r} does not take pushes")
    body = await _body(request, st.settings.push_max_bytes)
    kind = content_kind(request.headers.get("content-type", ""))
    if kind is None:
        raise ApiError(415, "unsupported_media_type", "send application/json, application/x-ndjson or text/csv")
    event_id = _caller(st, feed_id, request, body)
    ingest_id = "ing_" + secrets_module.token_hex(16)
    now = st.clock()
    limit = st.settings.push_rate_limit
    # the feed's rate counted and the push stored in one round trip: over the limit, nothing is stored
    retry_ms, existing = st.store.count_and_accept_push(
        rate_key(f"push:{feed_id}"),
        RATE_WINDOW_MS,
        limit,
        feed_id,
        event_id,
        ingest_id,
        PushRecord(
            feed_id=feed_id,
            event_id=event_id,
            kind=kind,
            body=body,
            status="queued",
            received_at=now.isoformat().replace("+00:00", "Z"),
            bytes=str(len(body)),
        ),
    )
    if retry_ms is not None:
        st.metrics.push(feed_id, "rate_limited")
        raise rate_limited_error(limit, "pushes to this feed", retry_ms)
    if existing is not None:
        st.metrics.push(feed_id, "replayed")
        raise ApiError(
            409,
            "replayed_event",
            f"event {event_id!r} was already accepted",
            ingest_id=existing,
            status_url=f"/v1/ingests/{existing}",
        )
    try:
        st.enqueue(names.INGEST_PUSH, [feed_id, ingest_id])
    except Exception as exc:  # the queue is down: keep nothing, so a retry with this event id works
        st.store.forget_push(feed_id, event_id, ingest_id)
        st.metrics.push(feed_id, "unqueued")
        raise ApiError(
            503,
            "unavailable",
            f"could not queue the push ({exc.__class__.__name__}); retry with the same event id",
            headers={"Retry-After": "5"},
        ) from exc
    st.metrics.push(feed_id, "accepted")
    return json_response(
        {"ingest_id": ingest_id, "status": "queued", "status_url": f"/v1/ingests/{ingest_id}"}, status=202
    )


@router.get(
    "/v1/ingests/{ingest_id}",
    response_model=IngestStatus,
    responses={404: {}, 503: {}},
    summary="What became of a push: counts and the rejection reasons by record",
)
def ingest_status(request: Request, ingest_id: Annotated[str, Path(pattern=r"^ing_[0-9a-f]{32}$")]) -> Response:
    st = state_of(request)
    record = st.store.push_record(ingest_id)
    if record is None:
        raise ApiError(404, "not_found", f"no ingest {ingest_id!r} (ingests are kept for 7 days)")
    rejections: list[dict[str, Any]] = orjson.loads(record.rejections) if record.rejections is not None else []
    return json_response(
        {
            "ingest_id": ingest_id,
            "feed_id": record.feed_id,
            "status": record.status,
            "received_at": record.received_at,
            "finished_at": record.finished_at,
            "records": record.records,
            "accepted": record.accepted,
            "rejected": record.rejected,
            "rejections_by_record": rejections_by_record(rejections),
            "error": record.error,
        }
    )
