"""The HTTP API: ``create_app(settings, store, ...)`` builds it; uvicorn (or gunicorn with uvicorn
workers) serves it.

Three kinds of callers: the public (no login: near-you search, a center by id), partners pushing
their records (signed or keyed, one partner per feed), and helpline operators (bearer token: feed
health, releasing a held run, "called, confirmed" reports, the operator page). Every error is JSON
naming the problem; nothing returns a stack trace; while Redis is down every endpoint answers 503.
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aggregator import access_log, geography
from aggregator.api import docs, find, metrics, operators, ops, page, public, push_routes
from aggregator.api.common import ApiError, AppState, problem
from aggregator.errors import InvalidQuery, StoreUnavailable, UnknownZip
from aggregator.geocode import Geocoder
from aggregator.push import PartnerSecrets
from aggregator.store import Store
from config.registry import Registry
from config.secret import Secret
from config.settings import Settings

log = logging.getLogger(__name__)

#: the lookup's filter groups by the query parameter a caller wrote
_QUERY_NAMES = {"levels_of_care": "level_of_care", "populations": "population", "languages": "language"}

Enqueue = Callable[[str, Sequence[Any]], None]


def partner_secrets(registry: Registry, environ: Mapping[str, str]) -> dict[str, PartnerSecrets]:
    """Each push feed's active HMAC secrets and bearer keys, from the environment variables it names."""
    out = {}
    for feed in registry.feeds:
        if feed.push is None:
            continue
        secrets = tuple(Secret(environ[name]) for name in feed.push.hmac_secret_env if environ.get(name))
        keys = tuple(Secret(environ[name]) for name in feed.push.bearer_key_env if environ.get(name))
        out[feed.id] = PartnerSecrets(feed.id, feed.partner, secrets, keys)
    return out


def create_app(
    settings: Settings,
    store: Store,
    *,
    registry: Registry,
    enqueue: Enqueue,
    geocoder: Geocoder | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    app = FastAPI(
        docs_url=None,
        redoc_url=None,  # docs.install serves /docs from the package: no CDN
        title="Center availability",
        version="1.0",
        description="Which treatment centers near here can take someone right now? Public search, partner "
        "pushes and the helpline operators' view.",
        openapi_tags=[
            {"name": "public", "description": "Near-you search; no login."},
            {"name": "partners", "description": "Partners push their records (signed or keyed)."},
            {"name": "operators", "description": "Helpline operators (bearer token)."},
            {"name": "operations", "description": "Health, readiness, metrics."},
        ],
    )
    env = os.environ if environ is None else environ
    state = AppState(
        settings=settings,
        store=store,
        registry=registry,
        enqueue=enqueue,
        geocoder=geocoder,
        clock=clock,
        secrets=partner_secrets(registry, env),
        metrics=metrics.Metrics(store, registry),
    )
    app.state.centers = state
    geography.zip_place("02139")  # load the ZIP table now, not on the first search

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET"],
            allow_headers=["*"],
            max_age=600,
        )

    app.add_middleware(metrics.TimingMiddleware, metrics=state.metrics)

    # outermost: one line per request, no client address, the place searched cut (aggregator/access_log.py)
    access_log.ensure_handler()
    app.add_middleware(access_log.AccessLogMiddleware)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StoreUnavailable)
    async def store_down(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("store unavailable: %s", exc)
        return problem(
            503, "unavailable", "the availability store is unreachable; try again shortly", headers={"Retry-After": "5"}
        )

    @app.exception_handler(UnknownZip)
    async def unknown_zip(_request: Request, exc: UnknownZip) -> JSONResponse:
        return problem(404, "unknown_zip", exc.reason, zip=exc.zip_code)

    @app.exception_handler(InvalidQuery)
    async def invalid_query(_request: Request, exc: InvalidQuery) -> JSONResponse:
        return problem(422, "invalid_parameter", exc.reason, parameter=_QUERY_NAMES.get(exc.parameter, exc.parameter))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("request",), "msg": "invalid"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body", "header")]
        parameter = ".".join(loc) or "request"
        return problem(
            422,
            "invalid_parameter",
            f"{parameter}: {first.get('msg')}",
            parameter=parameter,
            errors=[
                {"parameter": ".".join(str(p) for p in e.get("loc", ())[1:]) or "request", "detail": e.get("msg")}
                for e in errors[:10]
            ],
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "error")
        return problem(exc.status_code, code, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        # where it happened, never what it said: an exception's message may hold the place someone searched
        frames = traceback.extract_tb(exc.__traceback__)
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames[-6:]))
        log.error("unexpected error %s: %s at %s", incident, type(exc).__name__, where)
        return problem(500, "internal_error", f"something went wrong on our side (incident {incident})")

    app.include_router(public.router)
    app.include_router(push_routes.router)
    app.include_router(operators.router)
    app.include_router(page.router)
    app.include_router(find.router)
    app.include_router(ops.router)
    docs.install(app)
    return app
