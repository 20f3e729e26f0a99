"""Public routes: the near-you search and a center by id. No login; rate limited per client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from aggregator import lookup
from aggregator.api.common import ApiError, client_address, enforce_rate, json_response, require_loaded, state_of
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
    checked_at: str | None = None
    changed_at: str | None = None
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


@router.get(
    "/v1/centers/near",
    response_model=NearAnswer,
    responses=ERRORS,
    summary="Centers near a place, nearest first",
    description="Give `zip`, `place` ('City, ST'), or both `lat` and `lon` (one kind only): otherwise 422 "
    "naming `location`.",
)
def centers_near(
    request: Request,
    lat: Annotated[float | None, Query(ge=-85.05, le=85.05, description="latitude (with lon)")] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180, description="longitude (with lat)")] = None,
    zip: Annotated[str | None, Query(pattern=r"^\d{5}$", description="5-digit ZIP code (instead of lat/lon)")] = None,
    place: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description=("'City, ST' (resolved offline to the centroid of the city's ZIP codes), a ZIP or 'lat,lon'"),
        ),
    ] = None,
    radius_mi: Annotated[float, Query(gt=0, le=lookup.MAX_RADIUS_MI)] = lookup.DEFAULT_RADIUS_MI,
    level_of_care: Annotated[
        list[LevelOfCare],
        Query(
            description=f"repeatable; OR within, AND across; at most {lookup.MAX_FILTER_VALUES} values per filter "
            "(422 above)"
        ),
    ] = [],  # noqa: B006
    payment: Annotated[list[Payment], Query()] = [],  # noqa: B006
    population: Annotated[list[Population], Query()] = [],  # noqa: B006
    language: Annotated[list[Annotated[str, Query(pattern=r"^[a-z]{2}$")]], Query(description="ISO 639-1 code")] = [],  # noqa: B006
    available_only: Annotated[bool, Query(description="only centers with fresh open availability")] = False,
    limit: Annotated[int, Query(ge=1, le=lookup.MAX_LIMIT)] = lookup.DEFAULT_LIMIT,
) -> Response:
    # the rate check runs here, in the endpoint's own worker thread: as a dependency it took one more hop
    # through the thread pool on the busiest route (an invalid query is refused before it is counted)
    rate_limited(request)
    st = state_of(request)
    if (lat is None) != (lon is None):
        raise ApiError(422, "invalid_parameter", "give both lat and lon", parameter="lat" if lat is None else "lon")
    answer = lookup.near(
        st.store,
        latitude=lat,
        longitude=lon,
        zip=zip,
        place=place,
        radius_mi=radius_mi,
        levels_of_care=level_of_care,
        payment=payment,
        populations=population,
        languages=language,
        available_only=available_only,
        limit=limit,
        audience="public",
        now=st.clock(),
        helpline=st.settings.helpline,
    )
    if not answer.results:
        require_loaded(st)  # "no center matched" is only true of a store that has data
    st.metrics.lookup("public", bool(answer.results))
    body = answer.as_dict()
    partners = {f.id: f.partner for f in st.registry.feeds}
    body["results"] = [public_center(r, partners) for r in body["results"]]
    return json_response(body, headers={"Cache-Control": f"public, max-age={st.settings.public_max_age}"})


PUBLIC_FIELDS = (
    "id",
    "name",
    "alternate_name",
    "distance_mi",
    "address",
    "latitude",
    "longitude",
    "geo_precision",
    "phones",
    "website",
    "status",
    "services",
    "source_url",
    "availability",
)


def public_center(record: dict[str, Any], partners: Mapping[str, str]) -> dict[str, Any]:
    """What the public sees of a facility: no internal ids of partners' systems; its sources by partner."""
    out = {k: record[k] for k in PUBLIC_FIELDS if k in record}
    out["sources"] = [
        {
            "feed_id": s["feed_id"],
            "partner": partners.get(s["feed_id"], s["feed_id"]),
            "reported_at": s.get("reported_at"),
        }
        for s in record.get("sources", ())
    ]
    for entry in out.get("availability", ()):
        entry.pop("record", None)
    return out


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
    return json_response(
        public_center(found, {f.id: f.partner for f in st.registry.feeds}),
        headers={"Cache-Control": f"public, max-age={st.settings.public_max_age}"},
    )
