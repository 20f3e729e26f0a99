"""Operations: liveness, readiness (Redis reachable and the first data loaded), Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from aggregator.api.common import LOADING_RETRY_SECONDS, json_response, problem, state_of
from aggregator.errors import StoreUnavailable
from aggregator.health import loading_reason

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    summary="Ready to answer: Redis is reachable and the first data is loaded",
    responses={
        503: {
            "description": "error 'unavailable' (Redis unreachable) or 'loading' (no feed "
            "applied yet), with Retry-After"
        }
    },
)
def readyz(request: Request) -> Response:
    st = state_of(request)
    try:
        st.store.ping()
        workers = st.store.live_workers()
        loading = loading_reason(st.registry.feeds, st.store)
    except StoreUnavailable:
        return problem(503, "unavailable", "the availability store is unreachable", headers={"Retry-After": "5"})
    # searches are served without a worker; pushes and feed runs wait for one: say how many are alive
    note = "" if workers else "no worker is alive: pushes and feed runs wait for one"
    if loading:
        return json_response(
            {"error": "loading", "detail": loading, "status": "loading", "workers": len(workers), "note": note},
            status=503,
            headers={"Retry-After": str(LOADING_RETRY_SECONDS)},
        )
    return json_response({"status": "ready", "workers": len(workers), "note": note})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(state_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
