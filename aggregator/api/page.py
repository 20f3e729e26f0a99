"""The operator page: server-rendered HTML that works without JavaScript.

``GET /operator`` shows, to a signed-in operator, a search bar (ZIP, 'City, ST', 'lat,lon', or an address when a
geocoder is configured; radius, max results, "can take someone now"; the other filters folded under
"More filters" so that results show without scrolling on a laptop), the results nearest first with
each level of care's status and how fresh it is (operators see stale figures, clearly marked), and the
health of every feed (last checked, last changed). While the store has not loaded its first data an
empty search says so (503), never "no centers". Without a valid operator token the answer is 401 with
a sign-in form and nothing else.

Sessions are server-side. ``POST /operator/login`` checks the token (in constant time) and starts a
session in Redis under a digest of a random id; the HttpOnly, SameSite=Strict cookie (Secure over
https) holds that id, never the token. A session ends 12 hours after sign-in or at ``POST
/operator/logout``, which deletes it in Redis, so the old cookie stops working.

Cross-site request forgery: every form that posts carries a token (hidden field ``csrf``) checked
against the cookie: the session's own token (``common.csrf_token``) for sign-out, and for the
sign-in form, which has no session yet, a random one kept in a short cookie of its own. The request
must also come from this origin (``common.check_same_origin``); ``Origin: null`` is let through
with a valid form token, because a browser sends it for a form on a no-referrer page such as these.
A refused post is a 403 page, and nothing changes.

Every value that comes from a partner is escaped by Jinja (autoescape on for every template), and the
Content-Security-Policy allows no script at all.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from aggregator import lookup
from aggregator.api.common import (
    MAX_SESSION_ID,
    MAX_TOKEN,
    SESSION_COOKIE,
    SESSION_SECONDS,
    ApiError,
    AppState,
    authenticate,
    check_same_origin,
    is_https,
    operator_of,
    state_of,
    token_owner,
)
from aggregator.api.operators import operator_search
from aggregator.errors import InvalidQuery, StoreUnavailable, UnknownZip
from aggregator.health import feed_health, parse_when
from aggregator.model import LevelOfCare, Payment, Population

router = APIRouter(tags=["operators"], include_in_schema=False)

COOKIE = SESSION_COOKIE  # the session id; the session itself is in Redis
COOKIE_MAX_AGE = SESSION_SECONDS  # one shift
LEGACY_COOKIE = "operator_token"  # held the raw token before sessions: cleared wherever it is seen
LOGIN_COOKIE = "operator_login"  # the sign-in form's token (there is no session yet)
LOGIN_COOKIE_MAX_AGE = 3600
FORM_FIELD = "csrf"  # the hidden field of every form that posts
DEFAULT_RADIUS_MI = 50.0
DEFAULT_LIMIT = 20

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every template, whatever its extension: partner data is never trusted
    trim_blocks=True,
    lstrip_blocks=True,
)

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
    "php": "PHP (partial hospitalization)",
    "iop": "IOP (intensive outpatient)",
    "otp": "OTP (opioid treatment program)",
    "mat": "MAT (medication for addiction)",
    "va": "VA",
    "ihs": "IHS (Indian Health Service)",
    "lgbtq": "LGBTQ+",
    "self_pay": "Self-pay",
    "co_occurring": "Co-occurring disorders",
    "deaf_hard_of_hearing": "Deaf / hard of hearing",
    "state_funded": "State-funded",
    "ok": "OK",
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


def _render(
    request: Request, name: str, context: dict[str, Any], status: int, headers: dict[str, str], form_token: str = ""
) -> HTMLResponse:
    html = _env.get_template(name).render(
        {"request": request, **context, "form_field": FORM_FIELD, "form_token": form_token}
    )
    return HTMLResponse(html, status_code=status, headers=headers)


def _cookie(
    response: Response, request: Request, name: str, value: str | None, max_age: int = 0, path: str = "/"
) -> None:
    """Set (or, with no value, clear) an HttpOnly, SameSite=Strict cookie; Secure over https."""
    secure = is_https(request, state_of(request).settings.trust_proxy)
    if value is None:
        response.delete_cookie(name, path=path, httponly=True, samesite="strict", secure=secure)
    else:
        response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="strict", secure=secure)


def _login_page(request: Request, status: int, message: str = "") -> Response:
    """The sign-in form, with its form token (kept in the sign-in cookie, reused while it is valid)."""
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", token):
        token = secrets.token_urlsafe(32)
    response = _render(
        request,
        "login.html",
        {"message": message},
        status,
        {**SECURITY_HEADERS, "WWW-Authenticate": 'Bearer realm="operators"'},
        form_token=token,
    )
    _cookie(response, request, LOGIN_COOKIE, token, LOGIN_COOKIE_MAX_AGE, path="/operator")
    if LEGACY_COOKIE in request.cookies:
        _cookie(response, request, LEGACY_COOKIE, None)
    return response


_REFUSED = _env.from_string(
    '{% extends "base.html" %}{% block title %}Refused{% endblock %}{% block body %}<main>'
    '<section class="panel"><h1>Request refused</h1><p class="message error" role="alert">{{ message }}</p>'
    '<p>Nothing was changed. <a href="/operator">Open the operator page</a> and try again from there.</p>'
    "</section></main>{% endblock %}"
)


def _refused(request: Request, message: str, status: int = 403) -> Response:
    """403: a post that did not come from our own page (cross-site request forgery), as a page."""
    return HTMLResponse(_REFUSED.render(request=request, message=message), status_code=status, headers=SECURITY_HEADERS)


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form's text fields; None when the body is not a form."""
    try:
        form = await request.form(max_files=0, max_fields=10)
    except Exception:
        return None
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _token_matches(form: dict[str, str] | None, expected: str) -> bool:
    sent = (form or {}).get(FORM_FIELD, "")
    return bool(expected) and len(sent) <= MAX_TOKEN and hmac.compare_digest(sent.encode(), expected.encode())


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

    def parse(self, address_search: bool = True) -> dict[str, Any]:
        """Keyword arguments for ``operator_search``; raises InvalidQuery naming the field."""
        if not self.place:
            raise InvalidQuery(
                "place",
                "enter a ZIP code, 'City, ST', 'lat,lon' or an address"
                if address_search
                else "enter a ZIP code, 'City, ST' or 'lat,lon'",
            )
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
        return {
            "place": self.place,
            "radius_mi": radius,
            "limit": limit,
            "available_only": self.available_only,
            "level_of_care": self.selected["level_of_care"],
            "payment": self.selected["payment"],
            "population": self.selected["population"],
            "language": languages,
        }

    def form(self) -> dict[str, Any]:
        chosen = [label(v) for name, _, _ in GROUPS for v in self.selected[name]]
        if self.language_text:
            chosen.append(f"language {self.language_text}")
        return {
            "place": self.place,
            "radius_mi": self.radius_text or f"{DEFAULT_RADIUS_MI:g}",
            "limit": self.limit_text or str(DEFAULT_LIMIT),
            "language": self.language_text,
            "available_only": self.available_only,
            "selected": self.selected,
            "chosen": chosen,
        }


#: the folded filters ("More filters"), by the names InvalidQuery gives them: opened when one is wrong
FOLDED = frozenset({"levels_of_care", "payment", "populations", "languages"})


def address_search_on(st: AppState) -> bool:
    """Whether the page can search an address: a geocoder is configured (CENTERS_GEOCODER is not none)."""
    return st.geocoder is not None and st.geocoder.enabled


FIELD_NAMES = {
    "place": "Place",
    "radius_mi": "Radius",
    "limit": "Max results",
    "levels_of_care": "Level of care",
    "payment": "Payment",
    "populations": "Population",
    "languages": "Language",
    "lat": "Latitude",
    "lon": "Longitude",
    "zip": "ZIP code",
    "location": "Place",
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
    town = " ".join(
        p
        for p in (
            address.get("city", "") + ("," if address.get("city") else ""),
            address.get("state", ""),
            address.get("postal_code", ""),
        )
        if p
    )
    feed_id = str(hit.get("feed_id", ""))
    sources = hit.get("sources") or [{"id": hit.get("id", ""), "feed_id": feed_id}]
    return {
        **hit,
        "street": street,
        "town": town,
        "partner": partners.get(feed_id, feed_id),
        "source_list": [{**s, "partner": partners.get(s["feed_id"], s["feed_id"])} for s in sources],
        "availability": [_availability(a) for a in hit.get("availability", [])],
    }


def _feed_rows(st: AppState, now: datetime) -> list[dict[str, Any]]:
    rows = feed_health(st.registry.feeds, st.store, now)
    for row in rows:
        for key in ("last_success", "last_checked", "last_changed", "last_error_at", "last_attempt"):
            when = parse_when(row.get(key))
            row[key + "_ago"] = lookup.age_words(max(0, int((now - when).total_seconds()))) if when else None
    return rows


@router.get("/operator", response_class=Response)
def operator_page(request: Request) -> Response:
    st = state_of(request)
    try:
        who = operator_of(request, st)
    except StoreUnavailable:
        return _login_page(request, 503, "The availability store is unreachable; try again in a few seconds.")
    if who is None:
        response = _login_page(request, 401)
        if COOKIE in request.cookies:
            _cookie(response, request, COOKIE, None)  # its session is gone (expired, signed out): drop it
        return response
    operator = who.name
    now = st.clock()
    search = _Search(request.query_params)
    status, message, answer, open_filters = 200, "", None, False
    address_search = address_search_on(st)
    if search.submitted:
        try:
            answer = operator_search(st, **search.parse(address_search))
        except (ApiError, InvalidQuery, StoreUnavailable) as exc:
            status, message = _error_message(exc)
            open_filters = isinstance(exc, InvalidQuery) and exc.parameter in FOLDED
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
        "operator": operator,
        "form": search.form(),
        "groups": GROUPS,
        "message": message,
        "address_search": address_search,
        "open_filters": open_filters,
        "answer": answer.as_dict() if answer else None,
        "results": [_result(h.as_dict(), partners) for h in answer.results] if answer else [],
        "feeds": feeds,
        "feeds_error": feeds_error,
        "helpline": st.settings.helpline,
        "matches": matches,
        "now": now.strftime("%Y-%m-%d %H:%M UTC"),
    }
    response = _render(request, "operator.html", context, status, SECURITY_HEADERS, form_token=who.csrf)
    if LEGACY_COOKIE in request.cookies:
        _cookie(response, request, LEGACY_COOKIE, None)
    return response


def _start_session(st: AppState, operator: str, previous: str) -> str:
    """A new session (its id: the cookie's value); the one the browser had before, if any, ends."""
    if previous and len(previous) <= MAX_SESSION_ID:
        st.store.end_operator_session(previous)  # a new session id at every sign-in
    session_id = secrets.token_urlsafe(32)
    st.store.start_operator_session(session_id, operator, st.clock(), SESSION_SECONDS)
    return session_id


@router.post("/operator/login", response_class=Response)
async def login(request: Request) -> Response:
    st = state_of(request)
    try:
        check_same_origin(request, st, opaque_ok=True)  # login CSRF: no signing someone in as another
    except ApiError as exc:
        return _refused(request, exc.detail)
    form = await _form(request)
    if form is None:  # a body that is not a form: the same answer as a wrong token
        return _login_page(request, 400, "Enter your operator token.")
    if not _token_matches(form, request.cookies.get(LOGIN_COOKIE, "")):
        return _refused(request, "This sign-in form has expired or did not come from the operator page.")
    token = form.get("token", "").strip()
    if not token:
        return _login_page(request, 401, "Enter your operator token.")
    name = token_owner(st, token)
    if name is None:
        return _login_page(request, 401, "That token was not accepted.")
    try:
        session_id = await run_in_threadpool(_start_session, st, name, request.cookies.get(COOKIE, ""))
    except StoreUnavailable:
        return _login_page(request, 503, "The availability store is unreachable; try again in a few seconds.")
    response = RedirectResponse("/operator", status_code=303, headers=SECURITY_HEADERS)
    _cookie(response, request, COOKIE, session_id, COOKIE_MAX_AGE)  # the sign-in cookie stays (other tabs)
    if LEGACY_COOKIE in request.cookies:
        _cookie(response, request, LEGACY_COOKIE, None)
    return response


@router.post("/operator/logout", response_class=Response)
async def logout(request: Request) -> Response:
    """End the session in Redis (the cookie stops working) and clear the cookie."""
    st = state_of(request)
    form = await _form(request)
    try:
        who = await run_in_threadpool(authenticate, request, st)
        if who is not None and who.session is not None:
            try:
                check_same_origin(request, st, opaque_ok=True)
            except ApiError as exc:
                return _refused(request, exc.detail)
            if not _token_matches(form, who.csrf):
                return _refused(request, "This sign-out did not come from the operator page.")
            await run_in_threadpool(st.store.end_operator_session, who.session)
    except StoreUnavailable:
        return _refused(
            request,
            "The availability store is unreachable, so the session could not be ended; try again in a few seconds.",
            status=503,
        )
    response = RedirectResponse("/operator", status_code=303, headers=SECURITY_HEADERS)
    _cookie(response, request, COOKIE, None)
    if LEGACY_COOKIE in request.cookies:
        _cookie(response, request, LEGACY_COOKIE, None)
    return response
