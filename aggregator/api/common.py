"""What every route shares: the application's state, JSON errors, and who is calling."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from aggregator.geocode import Geocoder
from aggregator.push import PartnerSecrets
from aggregator.store import Store
from config.registry import Registry
from config.settings import Settings

if TYPE_CHECKING:
    from aggregator.api.metrics import Metrics


@dataclass
class AppState:
    settings: Settings
    store: Store
    registry: Registry
    enqueue: Callable[[str, Sequence[Any]], None]
    geocoder: Geocoder | None
    clock: Callable[[], datetime]
    secrets: dict[str, PartnerSecrets]
    metrics: Metrics


def state_of(request: Request) -> AppState:
    st: AppState = request.app.state.centers
    return st


class ApiError(Exception):
    """An answer that is an error: raised anywhere in a route, rendered as JSON."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers, self.extra = status, error, detail, headers, extra

    def response(self) -> JSONResponse:
        return problem(self.status, self.error, self.detail, headers=self.headers, **self.extra)


def problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status, headers=headers)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def client_address(request: Request, trust_proxy: bool) -> str:
    if trust_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


def enforce_rate(st: AppState, key: str, limit: int, what: str) -> None:
    """429 with Retry-After once ``key`` has made more than ``limit`` requests this minute."""
    count, remaining_ms = st.store.count_request(key, 60_000)
    if count > limit:
        retry = max(1, (remaining_ms + 999) // 1000)
        raise ApiError(429, "rate_limited", f"more than {limit} {what} a minute; retry in {retry} s",
                       headers={"Retry-After": str(retry)})


def operator_name(request: Request, st: AppState) -> str | None:
    """The operator a request's bearer token (or the operator page's cookie) belongs to, or None."""
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else request.cookies.get("operator_token", "")
    if not token:
        return None
    found = None
    for name, expected in st.settings.operator_tokens:
        if hmac.compare_digest(expected.encode(), token.encode()):
            found = name
    return found


def require_operator(request: Request) -> str:
    name = operator_name(request, state_of(request))
    if name is None:
        raise ApiError(401, "unauthorized", "an operator token is required", headers={"WWW-Authenticate": "Bearer"})
    return name
