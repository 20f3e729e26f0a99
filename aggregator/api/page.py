"""The operator page: server-rendered HTML that works without JavaScript.

``GET /operator`` shows, to a signed-in operator, a search form (ZIP, 'lat,lon' or an address, with
filters), the results nearest first with each level of care's status and how fresh it is (operators
see stale figures, clearly marked), and the health of every feed. Without a valid operator token the
answer is 401 with a sign-in form and nothing else. ``POST /operator/login`` checks a token and keeps
it in an HttpOnly, SameSite=Strict cookie; ``POST /operator/logout`` clears it.

Every value that comes from a partner is escaped by Jinja (autoescape on for every template), and the
Content-Security-Policy allows no script at all.
"""

from __future__ import annotations

import hmac
import math
import re
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import QueryParams

from aggregator import lookup
from aggregator.api.common import ApiError, AppState, operator_name, state_of
from aggregator.api.operators import operator_search
from aggregator.errors import InvalidQuery, StoreUnavailable, UnknownZip
from aggregator.health import feed_health, parse_when
from aggregator.model import LevelOfCare, Payment, Population

router = APIRouter(tags=["operators"], include_in_schema=False)

COOKIE = "operator_token"
COOKIE_MAX_AGE = 12 * 3600  # one shift
MAX_TOKEN = 512
DEFAULT_RADIUS_MI = 50.0
DEFAULT_LIMIT = 20

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every template, whatever its extension: partner data is never trusted
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)

#: no script may run on these pages; styles are inline; forms post to this origin only
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

_ABBREVIATIONS = {
    "php": "PHP (partial hospitalization)", "iop": "IOP (intensive outpatient)",
    "otp": "OTP (opioid treatment program)", "mat": "MAT (medication for addiction)", "va": "VA",
    "ihs": "IHS (Indian Health Service)", "lgbtq": "LGBTQ+", "self_pay": "Self-pay",
    "co_occurring": "Co-occurring disorders", "deaf_hard_of_hearing": "Deaf / hard of hearing",
    "state_funded": "State-funded", "ok": "OK",
}


def label(value: str) -> str:
    """'sliding_scale' -> 'Sliding scale'; abbreviations spelled out."""
    if value in _ABBREVIATIONS:
        return _ABBREVIATIONS[value]
    return value.replace("_", " ").capitalize()


def phone_words(number: str) -> str:
    """'+16175550142' -> '(617) 555-0142'; other numbers as they are."""
    m = re.fullmatch(r"\+1(\d{3})(\d{3})(\d{4})", number)
    return f"({m.group(1)}) {m.group(2)}-{m.group(3)}" if m else number


def when_words(text: str | None) -> str:
    """'2026-11-27T09:07:46.806255Z' -> '2026-11-27 09:07 UTC'."""
    when = parse_when(text)
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else (text or "")


_env.filters["label"] = label
_env.filters["when"] = when_words
_env.filters["phone"] = phone_words
_env.globals["age_words"] = lookup.age_words

GROUPS: tuple[tuple[str, str, type[StrEnum]], ...] = (
    ("level_of_care", "Level of care", LevelOfCare),
    ("payment", "Payment", Payment),
    ("population", "Population", Population),
)


def token_owner(st: AppState, token: str) -> str | None:
    """The operator a token belongs to, compared in constant time against every configured token."""
    found = None
    for name, expected in st.settings.operator_tokens:
        if hmac.compare_digest(expected.encode(), token.encode()):
            found = name
    return found


def _https(request: Request, trust_proxy: bool) -> bool:
    if request.url.scheme == "https":
        return True
    return trust_proxy and request.headers.get("x-forwarded-proto", "").split(",")[0].strip() == "https"


def _login_page(request: Request, status: int, message: str = "") -> Response:
    return templates.TemplateResponse(
        request, "login.html", {"message": message}, status_code=status,
        headers={**SECURITY_HEADERS, "WWW-Authenticate": 'Bearer realm="operators"'})


# ------------------------------------------------------------------------------------------ search


class _Search:
    """The search form's values as typed (to refill the form) and as parsed (to search)."""

    def __init__(self, q: QueryParams) -> None:
        self.place = q.get("place", "").strip()
        self.radius_text = q.get("radius_mi", "").strip()
        self.limit_text = q.get("limit", "").strip()
        self.selected = {name: list(dict.fromkeys(q.getlist(name))) for name, _, _ in GROUPS}
        self.language_text = " ".join(q.getlist("language")).strip()
        self.available_only = q.get("available_only", "") in ("on", "true", "1", "yes")
        self.submitted = "place" in q

    def parse(self) -> dict[str, Any]:
        """Keyword arguments for ``operator_search``; raises InvalidQuery naming the field."""
        if not self.place:
            raise InvalidQuery("place", "enter a ZIP code, 'lat,lon' or an address")
        if len(self.place) > 200:
            raise InvalidQuery("place", "must be at most 200 characters")
        radius = DEFAULT_RADIUS_MI
        if self.radius_text:
            try:
                radius = float(self.radius_text)
            except ValueError:
                raise InvalidQuery("radius_mi", "must be a number of miles") from None
            if not math.isfinite(radius) or not 0 < radius <= lookup.MAX_RADIUS_MI:
                raise InvalidQuery("radius_mi", f"must be more than 0 and at most {lookup.MAX_RADIUS_MI:g} miles")
        limit = DEFAULT_LIMIT
        if self.limit_text:
            try:
                limit = int(self.limit_text)
            except ValueError:
                raise InvalidQuery("limit", "must be a whole number") from None
            if not 1 <= limit <= lookup.MAX_LIMIT:
                raise InvalidQuery("limit", f"must be from 1 to {lookup.MAX_LIMIT}")
        languages = [code.lower() for code in re.split(r"[\s,;]+", self.language_text) if code]
        return {"place": self.place, "radius_mi": radius, "limit": limit, "available_only": self.available_only,
                "level_of_care": self.selected["level_of_care"], "payment": self.selected["payment"],
                "population": self.selected["population"], "language": languages}

    def form(self) -> dict[str, Any]:
        return {"place": self.place, "radius_mi": self.radius_text or f"{DEFAULT_RADIUS_MI:g}",
                "limit": self.limit_text or str(DEFAULT_LIMIT), "language": self.language_text,
                "available_only": self.available_only, "selected": self.selected}


FIELD_NAMES = {
    "place": "Place", "radius_mi": "Radius", "limit": "Max results", "levels_of_care": "Level of care",
    "payment": "Payment", "populations": "Population", "languages": "Language", "lat": "Latitude",
    "lon": "Longitude", "zip": "ZIP code", "location": "Place",
}


def _error_message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ApiError):
        return exc.status, exc.detail
    if isinstance(exc, UnknownZip):
        return 404, exc.reason
    if isinstance(exc, InvalidQuery):
        return 422, f"{FIELD_NAMES.get(exc.parameter, exc.parameter)}: {exc.reason}"
    return 503, "The availability store is unreachable; try again in a few seconds."


def _availability(entry: dict[str, Any]) -> dict[str, Any]:
    """One level of care, with the words of its freshness badge."""
    age = entry.get("age_seconds")
    if age is None:
        badge, kind = "no report", "none"
    elif entry.get("fresh"):
        badge, kind = f"live · {lookup.age_words(age)} ago", "live"
    else:
        badge, kind = f"STALE · last confirmed {lookup.age_words(age)} ago", "stale"
    return {**entry, "badge": badge, "badge_kind": kind}


def _result(hit: dict[str, Any], partners: dict[str, str]) -> dict[str, Any]:
    address = hit.get("address") or {}
    street = ", ".join(p for p in (address.get("address_1", ""), address.get("address_2", "")) if p)
    town = " ".join(p for p in (address.get("city", "") + ("," if address.get("city") else ""),
                                address.get("state", ""), address.get("postal_code", "")) if p)
    feed_id = str(hit.get("feed_id", ""))
    sources = hit.get("sources") or [{"id": hit.get("id", ""), "feed_id": feed_id}]
    return {**hit, "street": street, "town": town, "partner": partners.get(feed_id, feed_id),
            "source_list": [{**s, "partner": partners.get(s["feed_id"], s["feed_id"])} for s in sources],
            "availability": [_availability(a) for a in hit.get("availability", [])]}


def _feed_rows(st: AppState, now: datetime) -> list[dict[str, Any]]:
    rows = feed_health(st.registry.feeds, st.store, now)
    for row in rows:
        for key in ("last_success", "last_error_at", "last_attempt"):
            when = parse_when(row.get(key))
            row[key + "_ago"] = lookup.age_words(max(0, int((now - when).total_seconds()))) if when else None
    return rows


@router.get("/operator", response_class=Response)
def operator_page(request: Request) -> Response:
    st = state_of(request)
    operator = operator_name(request, st)
    if operator is None:
        return _login_page(request, 401)
    now = st.clock()
    search = _Search(request.query_params)
    status, message, answer = 200, "", None
    if search.submitted:
        try:
            answer = operator_search(st, **search.parse())
        except (ApiError, InvalidQuery, StoreUnavailable) as exc:
            status, message = _error_message(exc)
    feeds: list[dict[str, Any]] | None = None
    feeds_error = ""
    try:
        feeds = _feed_rows(st, now)
    except StoreUnavailable:
        feeds_error = "Feed health is unavailable: the availability store is unreachable."
        status = 503 if status == 200 else status
    matches: list[dict[str, Any]] = []
    if not feeds_error:
        try:
            matches = st.store.pending_matches(limit=50)
        except StoreUnavailable:
            matches = []
    partners = {f.id: f.partner for f in st.registry.feeds}
    context = {
        "operator": operator, "form": search.form(), "groups": GROUPS, "message": message,
        "answer": answer.as_dict() if answer else None,
        "results": [_result(h.as_dict(), partners) for h in answer.results] if answer else [],
        "feeds": feeds, "feeds_error": feeds_error, "helpline": st.settings.helpline, "matches": matches,
        "now": now.strftime("%Y-%m-%d %H:%M UTC"),
    }
    return templates.TemplateResponse(request, "operator.html", context, status_code=status,
                                      headers=SECURITY_HEADERS)


@router.post("/operator/login", response_class=Response)
async def login(request: Request) -> Response:
    st = state_of(request)
    try:
        form = await request.form(max_files=0, max_fields=10)
    except Exception:  # a body that is not a form: the same answer as a wrong token
        return _login_page(request, 400, "Enter your operator token.")
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    if not token:
        return _login_page(request, 401, "Enter your operator token.")
    if len(token) > MAX_TOKEN or token_owner(st, token) is None:
        return _login_page(request, 401, "That token was not accepted.")
    response = RedirectResponse("/operator", status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True, samesite="strict",
                        secure=_https(request, st.settings.trust_proxy))
    return response


@router.post("/operator/logout", response_class=Response)
def logout(request: Request) -> Response:
    st = state_of(request)
    response = RedirectResponse("/operator", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=_https(request, st.settings.trust_proxy))
    return response
