"""Helpline operators: feed health, releasing a held run, "called, confirmed" reports, their search.

Every route needs an operator bearer token (``CENTERS_OPERATOR_TOKENS``); without a valid one the
answer is 401 and nothing else.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from aggregator import lookup
from aggregator.api.common import ApiError, AppState, json_response, require_loaded, require_operator, state_of
from aggregator.errors import GeocoderTransient, PlaceNotFound
from aggregator.geocode import origin_for_place
from aggregator.health import feed_health, hold_obsolete
from aggregator.model import Availability, AvailabilityStatus, LevelOfCare, Payment, Population, Source
from workers import names

router = APIRouter(
    tags=["operators"],
    dependencies=[Depends(require_operator)],
    responses={401: {"description": "no valid operator token"}, 503: {}},
)


class Report(BaseModel):
    """What a center said on the phone."""

    model_config = ConfigDict(extra="forbid")
    level_of_care: LevelOfCare
    status: AvailabilityStatus
    beds_available: int | None = Field(None, ge=0, le=10_000)
    beds_total: int | None = Field(None, ge=0, le=10_000)
    waitlist_size: int | None = Field(None, ge=0, le=10_000)
    notes: str = Field("", max_length=500, description="e.g. who at the center confirmed it")
    expires_in_minutes: int = Field(240, ge=5, le=7 * 24 * 60, description="how long the report may show as live")


@router.get("/v1/feeds", summary="Health of every feed, held and failing first")
def feeds(request: Request) -> Response:
    st = state_of(request)
    return json_response(
        {
            "feeds": feed_health(st.registry.feeds, st.store, st.clock()),
            "needs_location": st.store.needs_location()[:500],
        }
    )


class MatchDecision(BaseModel):
    """An operator's word on a pair the matcher could not decide."""

    model_config = ConfigDict(extra="forbid")
    record_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,160}$", description="a feed record's id")
    facility_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,160}$")
    decision: Literal["same", "different"] = Field(description="same: one place; different: keep them apart")


@router.get("/v1/matches", summary="Pairs the matcher could not decide, for an operator")
def matches(request: Request) -> Response:
    return json_response({"matches": state_of(request).store.pending_matches()})


@router.post("/v1/matches/decisions", summary="Confirm (same) or split (different) a pair; it sticks")
def decide(request: Request, body: MatchDecision, operator: Annotated[str, Depends(require_operator)]) -> Response:
    st = state_of(request)
    try:
        facility = st.store.decide_match(body.record_id, body.facility_id, body.decision, by=operator, now=st.clock())
    except KeyError as exc:
        raise ApiError(404, "not_found", f"no record or facility {exc.args[0]!r}") from exc
    return json_response({"record_id": body.record_id, "facility_id": facility, "decision": body.decision})


@router.post("/v1/feeds/{feed_id}/release", status_code=202, summary="Let a held run through")
def release(
    request: Request,
    feed_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")],
    operator: Annotated[str, Depends(require_operator)],
) -> Response:
    st = state_of(request)
    if feed_id not in st.registry:
        raise ApiError(404, "unknown_feed", f"no feed {feed_id!r}")
    held = st.store.feed_state(feed_id)
    if st.store.held_snapshot(feed_id) is None:
        raise ApiError(409, "not_held", f"feed {feed_id!r} has no held run")
    obsolete = hold_obsolete(held, held.held_at)
    if obsolete:
        raise ApiError(409, "obsolete_hold", obsolete)
    try:
        st.enqueue(names.RELEASE_FEED, [feed_id, operator])
    except Exception as exc:
        raise ApiError(
            503, "unavailable", "could not queue the release; try again", headers={"Retry-After": "5"}
        ) from exc
    return json_response({"feed_id": feed_id, "status": "queued", "released_by": operator}, status=202)


@router.post("/v1/centers/{center_id}/reports", status_code=201, summary="Record what a center said on the phone")
def report(
    request: Request,
    center_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,160}$")],
    body: Report,
    operator: Annotated[str, Depends(require_operator)],
) -> Response:
    st = state_of(request)
    now = st.clock()
    try:
        obs = Availability(
            center_id=center_id,
            level_of_care=body.level_of_care,
            source=Source.OPERATOR,
            status=body.status,
            beds_available=body.beds_available,
            beds_total=body.beds_total,
            waitlist_size=body.waitlist_size,
            notes=body.notes,
            reported_at=now,
            checked_at=now,
            freshness_seconds=int(timedelta(minutes=body.expires_in_minutes).total_seconds()),
            reported_by=operator,
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_parameter", str(exc).splitlines()[-1], parameter="body") from exc
    written, _stale = st.store.record_observations([obs])
    if not written:
        raise ApiError(404, "not_found", f"no center {center_id!r}", center_id=center_id)
    center = lookup.get_center(st.store, center_id, audience="operator", now=now)
    return json_response({"center": center, "report": obs.model_dump(mode="json")}, status=201)


def resolve_place(st: AppState, place: str) -> lookup.Origin:
    """An operator's place (see geocode.origin_for_place); address search being down is a 503."""
    try:
        return origin_for_place(place, st.geocoder)
    except GeocoderTransient as exc:
        raise ApiError(
            503,
            "geocoder_unavailable",
            "address search is unavailable right now; use a ZIP code",
            headers={"Retry-After": "10"},
        ) from exc
    except PlaceNotFound as exc:
        raise ApiError(404, "place_not_found", exc.reason, place=exc.place) from exc


def operator_search(
    st: AppState,
    *,
    place: str,
    radius_mi: float,
    level_of_care: list[Any],
    payment: list[Any],
    population: list[Any],
    language: list[str],
    available_only: bool,
    limit: int,
) -> lookup.NearAnswer:
    origin = resolve_place(st, place)
    answer = lookup.near(
        st.store,
        origin=origin,
        radius_mi=radius_mi,
        levels_of_care=level_of_care,
        payment=payment,
        populations=population,
        languages=language,
        available_only=available_only,
        limit=limit,
        audience="operator",
        now=st.clock(),
        helpline=st.settings.helpline,
    )
    if not answer.results:
        require_loaded(st)  # 503 loading: an empty answer from a store with no data yet says nothing
    st.metrics.lookup("operator", bool(answer.results))
    return answer


@router.get("/v1/operator/centers/near", summary="Operators' search: any place, last figures kept (marked stale)")
def operator_near(
    request: Request,
    place: Annotated[
        str,
        Query(min_length=1, max_length=200, description="ZIP, 'lat,lon' or (with a geocoder configured) an address"),
    ],
    radius_mi: Annotated[float, Query(gt=0, le=lookup.MAX_RADIUS_MI)] = 50.0,
    level_of_care: Annotated[list[LevelOfCare], Query()] = [],  # noqa: B006
    payment: Annotated[list[Payment], Query()] = [],  # noqa: B006
    population: Annotated[list[Population], Query()] = [],  # noqa: B006
    language: Annotated[list[Annotated[str, Query(pattern=r"^[a-z]{2}$")]], Query()] = [],  # noqa: B006
    available_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=lookup.MAX_LIMIT)] = 20,
) -> Response:
    st = state_of(request)
    answer = operator_search(
        st,
        place=place,
        radius_mi=radius_mi,
        level_of_care=level_of_care,
        payment=payment,
        population=population,
        language=language,
        available_only=available_only,
        limit=limit,
    )
    return json_response(answer.as_dict())


@router.get("/v1/operator/centers/{center_id}", summary="One facility as operators see it, with why each source joined")
def operator_center(
    request: Request, center_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,160}$")]
) -> Response:
    st = state_of(request)
    found = lookup.get_center(st.store, center_id, audience="operator", now=st.clock())
    if found is None:
        require_loaded(st)
        raise ApiError(404, "not_found", f"no center {center_id!r}", center_id=center_id)
    partners = {f.id: f.partner for f in st.registry.feeds}
    for source in found.get("sources", ()):
        source["partner"] = partners.get(source["feed_id"], source["feed_id"])
        source["link"] = st.store.link_explanation(source["id"])
    return json_response(found)
