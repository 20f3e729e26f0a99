"""Operations: liveness, readiness (Redis reachable), Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from aggregator.api.common import json_response, problem, state_of
from aggregator.errors import StoreUnavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", summary="Ready to answer: Redis is reachable", responses={503: {}})
def readyz(request: Request) -> Response:
    store = state_of(request).store
    try:
        store.ping()
        workers = store.live_workers()
    except StoreUnavailable:
        return problem(503, "unavailable", "the availability store is unreachable", headers={"Retry-After": "5"})
    # searches are served without a worker; pushes and feed runs wait for one: say how many are alive
    return json_response({"status": "ready", "workers": len(workers),
                          "note": "" if workers else "no worker is alive: pushes and feed runs wait for one"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(state_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
