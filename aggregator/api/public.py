"""Public routes: the near-you search and a center by id. No login; rate limited per client."""

from __future__ import annotations

from typing import Annotated, Any, get_origin

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from aggregator import lookup
from aggregator.api.common import (
    RATE_WINDOW_MS,
    ApiError,
    AppState,
    client_address,
    enforce_rate,
    json_response,
    rate_key,
    rate_limited_error,
    require_loaded,
    state_of,
)
from aggregator.api.rendered import answer_bytes, max_age, no_hits, public_center
from aggregator.errors import InvalidQuery, PlaceNotFound, UnknownZip
from aggregator.model import LevelOfCare, Payment, Population

router = APIRouter(tags=["public"])


def rate_limited(request: Request) -> None:
    st = state_of(request)
    enforce_rate(st, client_address(request, st.settings.trust_proxy), st.settings.rate_limit, "requests")


class Availability(BaseModel):
    level_of_care: str
    status: str = Field(description="available, limited, waitlist, full, assessment_required, closed or unknown")
    beds_available: int | None = None
    beds_total: int | None = None
    accepting: str | None = None
    waitlist_size: int | None = None
    appointments_available: int | None = Field(None, description="open intake appointments (not beds)")
    next_appointment_at: str | None = Field(None, description="start of the earliest open appointment, UTC")
    notes: str = ""
    source: str | None = None
    reported_at: str | None = Field(None, description="what the partner asserts, UTC")
    checked_at: str | None = Field(
        None,
        description="when this figure was last fetched and written, UTC; a figure a feed sends unchanged with its "
        "own report time is kept as it stood (the feed's health says when it was last fetched)",
    )
    changed_at: str | None = Field(None, description="when the figures last changed, UTC")
    age_seconds: int | None = Field(None, description="seconds since reported_at")
    fresh: bool = Field(description="false past the feed's freshness window: the status then reads unknown")
    freshness_seconds: int | None = Field(
        None,
        description="the freshness window of this figure's feed (an operator's report: its expiry), in "
        "seconds: the figure reads as live while age_seconds is below it; null with no report",
    )


class CenterResult(BaseModel):
    id: str
    name: str
    distance_mi: float | None = None
    address: dict[str, str]
    latitude: float | None = None
    longitude: float | None = None
    geo_precision: str | None = None
    phones: list[dict[str, str]] = Field(description="number (E.164), role, extension, and source (the feed)")
    website: str = ""
    status: str
    services: dict[str, list[str]]
    source_url: str = ""
    sources: list[dict[str, str | None]] = Field(
        default_factory=list, description="the partner feeds this place is known from, each with its newest report"
    )
    availability: list[Availability]


class NearAnswer(BaseModel):
    origin: dict[str, Any] = Field(description="the search's centre and how it was resolved (zip or coordinates)")
    radius_mi: float
    limit: int
    filters: dict[str, list[str]]
    available_only: bool
    count: int
    results: list[CenterResult]
    hint: dict[str, Any] | None = Field(None, description="on an empty answer: what was searched and what would help")
    notes: list[str]


class ErrorBody(BaseModel):
    error: str
    detail: str
    parameter: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown ZIP code or center"},
    422: {"model": ErrorBody, "description": "a parameter is invalid (named in 'parameter')"},
    429: {"model": ErrorBody, "description": "rate limited; see Retry-After"},
    503: {
        "model": ErrorBody,
        "description": "the store is unreachable (error 'unavailable'), or has not loaded its "
        "first data yet (error 'loading'); see Retry-After",
    },
}


class NearQuery(BaseModel):
    """The near-you search's query parameters: validated in one pydantic-core call (the route's own parse;
    declared to OpenAPI from this model)."""

    lat: float | None = Field(None, ge=-85.05, le=85.05, description="latitude (with lon)")
    lon: float | None = Field(None, ge=-180, le=180, description="longitude (with lat)")
    zip: str | None = Field(None, pattern=r"^\d{5}$", description="5-digit ZIP code (instead of lat/lon)")
    place: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="'City, ST' (resolved offline to the centroid of the city's ZIP codes), a ZIP or 'lat,lon'",
    )
    radius_mi: float = Field(lookup.DEFAULT_RADIUS_MI, gt=0, le=lookup.MAX_RADIUS_MI)
    level_of_care: list[LevelOfCare] = Field(
        [],
        description=f"repeatable; OR within, AND across; at most {lookup.MAX_FILTER_VALUES} values per filter "
        "(422 above)",
    )
    payment: list[Payment] = []
    population: list[Population] = []
    language: list[Annotated[str, Field(pattern=r"^[a-z]{2}$")]] = Field([], description="ISO 639-1 code")
    available_only: bool = Field(False, description="only centers with fresh open availability")
    limit: int = Field(lookup.DEFAULT_LIMIT, ge=1, le=lookup.MAX_LIMIT)


_LISTS = frozenset(name for name, f in NearQuery.model_fields.items() if get_origin(f.annotation) is list)
_SCALARS = frozenset(NearQuery.model_fields) - _LISTS


def near_query(request: Request) -> NearQuery:
    """The query string as ``NearQuery``: a list parameter repeats; of a repeated single one the last counts
    (as FastAPI reads parameters); unknown parameters are ignored. An invalid one: 422 naming it."""
    given: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name in _LISTS:
            given.setdefault(name, []).append(value)
        elif name in _SCALARS:
            given[name] = value
    try:
        return NearQuery.model_validate(given)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        ) from None


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI parameters (``in: query``) for each field of ``model``, its JSON schema inlined."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    out = []
    for name, prop in schema["properties"].items():
        prop = inline(prop)
        description = prop.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out


@router.get(
    "/v1/centers/near",
    response_model=NearAnswer,
    responses=ERRORS,
    summary="Centers near a place, nearest first",
    description="Give `zip`, `place` ('City, ST'), or both `lat` and `lon` (one kind only): otherwise 422 "
    "naming `location`.",
    openapi_extra={"parameters": _query_parameters(NearQuery)},
)
async def centers_near(request: Request) -> Response:
    # The busiest route, kept thin. The query is parsed here in one pydantic-core call (FastAPI's
    # per-parameter validation cost more than the search); the rate check and the search are one script
    # call, awaited on the event loop (no worker-thread hop); a client over its limit costs no search. A
    # query refused after it parsed (lat without lon, an unknown ZIP or city) is counted all the same.
    q = near_query(request)
    st = state_of(request)
    address = client_address(request, st.settings.trust_proxy)
    limit = st.settings.rate_limit
    try:
        if (q.lat is None) != (q.lon is None):
            raise ApiError(
                422, "invalid_parameter", "give both lat and lon", parameter="lat" if q.lat is None else "lon"
            )
        # a place that names no known city is matched against the state's cities: off the event loop
        plan = await run_in_threadpool(_plan, st, q) if q.place is not None else _plan(st, q)
    except (ApiError, InvalidQuery, UnknownZip, PlaceNotFound):
        await run_in_threadpool(enforce_rate, st, address, limit, "requests")  # over the limit: 429 instead
        raise
    retry_ms, found = await st.store.count_and_search_documents(rate_key(address), RATE_WINDOW_MS, limit, plan.search())
    if retry_ms is not None:
        raise rate_limited_error(limit, "requests", retry_ms)
    answer = lookup.answer_near(plan, no_hits(found), "public")  # its results are rendered below
    if not found:  # rare: what would help, and whether the store has data at all (more reads)
        await run_in_threadpool(_empty_answer, st, plan, answer)
        st.metrics.lookup("public", False)
        return json_response(
            answer.as_dict(), headers={"Cache-Control": f"public, max-age={st.settings.public_max_age}"}
        )
    partners = {f.id: f.partner for f in st.registry.feeds}
    now_ms = plan.now.timestamp() * 1000
    results, turn_ms = st.renderer.hits_and_turn(found, now_ms, partners)
    st.metrics.lookup("public", True)
    headers = {"Cache-Control": f"public, max-age={max_age(st.settings.public_max_age, now_ms, turn_ms)}"}
    return Response(answer_bytes(answer, len(found), results), media_type="application/json", headers=headers)


def _plan(st: AppState, q: NearQuery) -> lookup.NearPlan:
    return lookup.plan_near(
        latitude=q.lat,
        longitude=q.lon,
        zip=q.zip,
        place=q.place,
        radius_mi=q.radius_mi,
        levels_of_care=q.level_of_care,
        payment=q.payment,
        populations=q.population,
        languages=q.language,
        available_only=q.available_only,
        limit=q.limit,
        now=st.clock(),
    )


def _empty_answer(st: AppState, plan: lookup.NearPlan, answer: lookup.NearAnswer) -> None:
    require_loaded(st)  # "no center matched" is only true of a store that has data
    lookup.add_hint(st.store, plan, answer, st.settings.helpline)


@router.get(
    "/v1/centers/{center_id}",
    response_model=CenterResult,
    responses=ERRORS,
    dependencies=[Depends(rate_limited)],
    summary="One center by its stable id",
)
def center_by_id(
    request: Request,
    center_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,160}$", max_length=161)],
) -> Response:
    st = state_of(request)
    found = lookup.get_center(st.store, center_id, audience="public", now=st.clock())
    if found is None:
        require_loaded(st)
        raise ApiError(404, "not_found", f"no center {center_id!r}", center_id=center_id)
    # kept no longer than its first fresh figure stays fresh (its age is whole seconds: one more taken off)
    fresh_for = [
        a["freshness_seconds"] - a["age_seconds"] - 1
        for a in found.get("availability", ())
        if a.get("fresh") and a.get("age_seconds") is not None
    ]
    seconds = max(0, min([st.settings.public_max_age, *fresh_for]))
    return json_response(
        public_center(found, {f.id: f.partner for f in st.registry.feeds}),
        headers={"Cache-Control": f"public, max-age={seconds}"},
    )
