"""What every route shares: the application's state, JSON errors, and who is calling.

Who is calling: an operator proves it with a bearer token (``Authorization: Bearer``, API calls and
scripts) or with the operator page's session cookie. The cookie holds a random session id, never a
token; the session lives in Redis (only a digest of its id is stored), for 12 hours at most, and
ends at sign-out. A change (any method but GET, HEAD, OPTIONS, TRACE) made with the cookie must come
from this server's own origin: its ``Origin`` (or, without one, its ``Referer``) must name this server,
else 403 ``{"error": "csrf"}``. Bearer calls carry no ambient credential and are not checked.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from aggregator.api.rendered import HitRenderer
from aggregator.geocode import Geocoder
from aggregator.health import loading_reason
from aggregator.push import PartnerSecrets
from aggregator.store import Store
from config.registry import Registry
from config.settings import Settings, TrustedProxies

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
    #: the public near-you answer's hits as JSON, shaped once per stored document (``api.rendered``)
    renderer: HitRenderer = field(default_factory=HitRenderer)


def state_of(request: Request) -> AppState:
    st: AppState = request.app.state.centers
    return st


class ApiError(Exception):
    """An answer that is an error: raised anywhere in a route, rendered as JSON."""

    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers, self.extra = status, error, detail, headers, extra

    def response(self) -> JSONResponse:
        return problem(self.status, self.error, self.detail, headers=self.headers, **self.extra)


def problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status, headers=headers)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def client_address(request: Request, proxies: TrustedProxies) -> str:
    """The client's address: the connecting peer, or what the configured proxies say it is."""
    peer = request.client.host if request.client else "unknown"
    return proxies.client(peer, request.headers.get("x-forwarded-for", ""))


def rate_key(key: str) -> str:
    """A rate-limit key as stored: hashed, 32 characters whatever the client sent."""
    return hashlib.blake2b(key.encode(errors="replace"), digest_size=16).hexdigest()


#: the rate limit's window: a client's requests are counted per minute
RATE_WINDOW_MS = 60_000


def enforce_rate(st: AppState, key: str, limit: int, what: str) -> None:
    """429 with Retry-After once ``key`` has made more than ``limit`` requests this minute. Keys are
    hashed: a Redis key is bounded whatever a client sends."""
    count, remaining_ms = st.store.count_request(rate_key(key), RATE_WINDOW_MS)
    if count > limit:
        raise rate_limited_error(limit, what, remaining_ms)


def rate_limited_error(limit: int, what: str, remaining_ms: int) -> ApiError:
    """The 429 answer, asking the client to wait until its window ends."""
    retry = max(1, (remaining_ms + 999) // 1000)
    return ApiError(
        429,
        "rate_limited",
        f"more than {limit} {what} a minute; retry in {retry} s",
        headers={"Retry-After": str(retry)},
    )


#: how long a caller is asked to wait while the store loads its first data
LOADING_RETRY_SECONDS = 30


def require_loaded(st: AppState) -> None:
    """503 ``loading`` (with Retry-After) while no feed has ever been applied: an empty answer then is
    not "nothing near here". Call it for an empty answer only: a store with any result is loaded."""
    reason = loading_reason(st.registry.feeds, st.store)
    if reason:
        raise ApiError(
            503, "loading", f"{reason}; try again in a minute", headers={"Retry-After": str(LOADING_RETRY_SECONDS)}
        )


# --------------------------------------------------------------- operators: tokens, sessions, CSRF

#: the operator page's cookie: a session id (never a token), its session kept in Redis
SESSION_COOKIE = "operator_session"
SESSION_SECONDS = 12 * 3600  # one shift: a session ends this long after sign-in, or at sign-out
MAX_SESSION_ID = 128  # secrets.token_urlsafe(32) is 43 characters; longer cookies are not ours
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Operator:
    """A signed-in operator; ``session`` is the page's session id when the cookie proved it, None for a token."""

    name: str
    session: str | None = None

    @property
    def csrf(self) -> str:
        """The session's form token (hidden in the page's forms): empty for a bearer token."""
        return csrf_token(self.session) if self.session else ""


def csrf_token(session_id: str) -> str:
    """A session's form token: an HMAC keyed by the session id, which only the server and the HttpOnly
    cookie know, so another site can neither read nor forge it."""
    return hmac.new(session_id.encode(), b"operator page form", hashlib.sha256).hexdigest()


#: the longest token looked at (a longer one is refused unread: no work for a megabyte of "token")
MAX_TOKEN = 512


def token_owner(st: AppState, token: str) -> str | None:
    """The operator a token belongs to, compared in constant time against every configured token: the one
    operator-token check (bearer header, the operator page's sign-in)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    found = None
    for name, expected in st.settings.operator_tokens:
        if expected.matches(token):
            found = name
    return found


def is_https(request: Request, trust_proxy: object) -> bool:
    """Served over https: directly, or (only behind our own proxy) as X-Forwarded-Proto says."""
    if request.url.scheme == "https":
        return True
    return bool(trust_proxy) and request.headers.get("x-forwarded-proto", "").split(",")[0].strip() == "https"


def url_origin(url: str) -> str | None:
    """'HTTPS://Example.org:443/x' -> 'https://example.org'; None unless an http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def own_origin(request: Request, trust_proxy: object) -> str | None:
    """This server's origin as the browser sees it: the Host header, with the scheme of ``is_https``
    (and, only behind our own proxy, X-Forwarded-Host)."""
    host = request.headers.get("host", "")
    if trust_proxy:
        host = request.headers.get("x-forwarded-host", "").split(",")[0].strip() or host
    return url_origin(f"{'https' if is_https(request, trust_proxy) else 'http'}://{host}") if host else None


def check_same_origin(request: Request, st: AppState, *, opaque_ok: bool = False) -> None:
    """403 ``csrf`` unless the request's Origin (or, without one, its Referer) is this server's origin.

    A request with neither header is refused too (browsers send Origin on every POST). ``opaque_ok``
    lets ``Origin: null`` through: a browser sends it for a form on a page with a no-referrer policy,
    such as the operator page; the caller must then check the form's token (``csrf_token``)."""
    origin, referer = request.headers.get("origin"), request.headers.get("referer")
    if origin is None and referer is None:
        raise ApiError(
            403,
            "csrf",
            "a change made with the operator page's session must come from the page (no Origin or Referer header)",
        )
    if origin is not None and origin.strip() == "null":
        if opaque_ok:
            return
        raise ApiError(
            403, "csrf", "a change made with the operator page's session must come from the page (Origin: null)"
        )
    header, value = ("Origin", origin) if origin is not None else ("Referer", referer or "")
    expected = own_origin(request, st.settings.trust_proxy)
    if expected is None or url_origin(value) != expected:
        raise ApiError(403, "csrf", f"cross-origin request refused: the {header} is not {expected or 'this server'}")


def authenticate(request: Request, st: AppState) -> Operator | None:
    """Who is calling: a bearer token's operator (the header wins), else the operator of the page's
    session cookie if that session exists, is under 12 hours old and its operator is still configured.
    No CSRF check: see ``operator_of``."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        name = token_owner(st, auth[7:].strip())
        return Operator(name) if name else None
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if not session_id or len(session_id) > MAX_SESSION_ID:
        return None
    session = st.store.operator_session(session_id)
    if session is None:
        return None
    name = session.get("operator", "")
    try:
        age = (st.clock() - datetime.fromisoformat(session.get("created", ""))).total_seconds()
    except (TypeError, ValueError):
        age = math.inf
    if age > SESSION_SECONDS or name not in {n for n, _ in st.settings.operator_tokens}:
        st.store.end_operator_session(session_id)
        return None
    return Operator(name, session_id)


def operator_of(request: Request, st: AppState) -> Operator | None:
    """``authenticate``, and for a change made with the session cookie the same-origin check (403 csrf)."""
    who = authenticate(request, st)
    if who is not None and who.session is not None and request.method.upper() not in SAFE_METHODS:
        check_same_origin(request, st)
    return who


def operator_name(request: Request, st: AppState) -> str | None:
    """The operator a request's bearer token (or the operator page's session cookie) belongs to, or None.

    Raises ApiError 403 ``csrf`` for a cross-origin change made with the cookie."""
    who = operator_of(request, st)
    return who.name if who else None


def require_operator(request: Request) -> str:
    name = operator_name(request, state_of(request))
    if name is None:
        raise ApiError(401, "unauthorized", "an operator token is required", headers={"WWW-Authenticate": "Bearer"})
    return name
