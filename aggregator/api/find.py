"""The public "Check Availability at a Center Near You" page, and the button that opens it.

``GET /find`` (English) and ``GET /es/find`` (Spanish): a server-rendered search for people on a phone.
A ZIP code or a city and state (offline, never a geocoder), or the browser's location (a small optional
script asks for it only when "Use my location" is pressed, and sends it rounded to 3 decimals, about
100 m); filters for level of care, payment and "can take someone now"; a radius. The answer is in the
first HTML response: nearest first, per level of care the status the public may see (past its freshness
window: "Call to check" with when it was last confirmed) with its age in words, a tap-to-call phone and a
directions link per center, and the helpline's number always in view. An empty answer offers the
lookup's hint as links (a wider radius, without a filter) and the helpline. Without JavaScript it is a
plain form GET.

Privacy: no cookies, ``Referrer-Policy: no-referrer``, a Content-Security-Policy that lets the page load
nothing but its own stylesheet and script, ``Cache-Control: no-store`` on the page (a shared phone's
back button or disk cache keeps no search), and the access log (``aggregator.access_log``) keeps no
client address and cuts the place searched. Static files are served by this app under names carrying
their content hash, cacheable for a year.

Every string comes from the message catalogues (``aggregator.i18n``); templates hold no literal text.

``GET /embed/button.js``: a partner page's ``<script>`` that puts the button (a plain link to ``/find``)
where it stands; no cookies, no tracking, nothing loaded from anywhere else.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from babel.numbers import format_decimal
from babel.support import Translations
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from aggregator import geography, lookup
from aggregator.api.common import ApiError, client_address, enforce_rate, require_loaded, state_of
from aggregator.errors import InvalidQuery, PlaceNotFound, StoreUnavailable, UnknownZip
from aggregator.i18n import LANGUAGES, N_, translations
from aggregator.model import LevelOfCare, Payment

router = APIRouter(include_in_schema=False)

PATHS = {"en": "/find", "es": "/es/find"}
LANGUAGE_NAMES = {"en": "English", "es": "Español"}  # each in its own language: not translated
RADII = (10, 25, 50, 100)
DEFAULT_RADIUS = 25
LIMIT = 10
MAX_PLACE = 100

#: what the page may load: its own stylesheet and script, nothing else; it may be framed by a partner
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors *"
)
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "geolocation=(self), camera=(), microphone=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
ASSET_MAX_AGE = 365 * 86400

LEVEL_LABELS = {
    LevelOfCare.DETOX: N_("Detox (withdrawal management)"),
    LevelOfCare.RESIDENTIAL: N_("Residential treatment"),
    LevelOfCare.INPATIENT: N_("Inpatient (hospital)"),
    LevelOfCare.PHP: N_("Partial hospitalization"),
    LevelOfCare.IOP: N_("Intensive outpatient"),
    LevelOfCare.OUTPATIENT: N_("Outpatient"),
    LevelOfCare.OTP: N_("Opioid treatment program (methadone)"),
    LevelOfCare.MAT: N_("Medication for addiction treatment"),
    LevelOfCare.RECOVERY_HOUSING: N_("Recovery housing"),
    LevelOfCare.CRISIS: N_("Crisis care"),
    LevelOfCare.TELEHEALTH: N_("Telehealth"),
}
PAYMENT_LABELS = {
    Payment.MEDICAID: N_("Medicaid"),
    Payment.MEDICARE: N_("Medicare"),
    Payment.PRIVATE: N_("Private insurance"),
    Payment.SELF_PAY: N_("Self-pay"),
    Payment.SLIDING_SCALE: N_("Sliding-scale fees"),
    Payment.FREE: N_("Free of charge"),
    Payment.VA: N_("Veterans Affairs (VA)"),
    Payment.MILITARY: N_("Military insurance (TRICARE)"),
    Payment.STATE_FUNDED: N_("State-funded"),
    Payment.IHS: N_("Indian Health Service"),
    Payment.PAYMENT_ASSISTANCE: N_("Payment assistance"),
}
#: fresh statuses: (words, kind for styling, a symbol beside the words: the words carry the meaning)
STATUS_WORDS = {
    "available": (N_("Open"), "open", "✓"),
    "limited": (N_("Limited space"), "open", "✓"),
    "waitlist": (N_("Waitlist"), "wait", "⏳"),
    "full": (N_("Full"), "no", "✕"),
    "assessment_required": (N_("Assessment first"), "wait", "⏳"),
    "closed": (N_("Closed"), "no", "✕"),
    "unknown": (N_("Call to check"), "unknown", "?"),
}
FILTER_NAMES = {"levels_of_care": N_("level of care"), "payment": N_("payment")}


# ------------------------------------------------------------------------------------ templates and assets


def _environment(language: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


_ENVIRONMENTS: dict[str, jinja2.Environment] = {}


def environment(language: str) -> jinja2.Environment:
    if language not in _ENVIRONMENTS:
        _ENVIRONMENTS[language] = _environment(language)
    return _ENVIRONMENTS[language]


@dataclass(frozen=True)
class Asset:
    name: str  # with its content hash: find.3f2a9c1b.css
    body: bytes
    media_type: str
    etag: str


def _asset(stem: str, suffix: str, media_type: str) -> Asset:
    body = resources.files("aggregator").joinpath(f"api/static/{stem}.{suffix}").read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:12]
    return Asset(f"{stem}.{digest}.{suffix}", body, media_type, f'"{digest}"')


ASSETS = {
    a.name: a
    for a in (_asset("find", "css", "text/css; charset=utf-8"), _asset("find", "js", "text/javascript; charset=utf-8"))
}
CSS_URL = "/static/" + next(n for n in ASSETS if n.endswith(".css"))
JS_URL = "/static/" + next(n for n in ASSETS if n.endswith(".js"))


@router.get("/static/{name}")
def static_asset(name: str, request: Request) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise ApiError(404, "not_found", "no such file")
    headers = {
        "Cache-Control": f"public, max-age={ASSET_MAX_AGE}, immutable",
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


# ------------------------------------------------------------------------------------------- words


def tel_href(number: str, extension: str = "") -> str:
    """'1-800-662-4357' -> 'tel:+18006624357'; '+16175550101' -> 'tel:+16175550101'."""
    digits = re.sub(r"\D", "", number)
    if number.strip().startswith("+") or (len(digits) == 11 and digits.startswith("1")):
        href = "tel:+" + digits
    elif len(digits) == 10:
        href = "tel:+1" + digits
    else:
        href = "tel:" + digits
    ext = re.sub(r"\D", "", extension or "")
    return href + (f";ext={ext}" if ext else "")


def phone_words(number: str) -> str:
    """'+16175550142' -> '(617) 555-0142'; other numbers as they are."""
    m = re.fullmatch(r"\+1(\d{3})(\d{3})(\d{4})", number)
    return f"({m.group(1)}) {m.group(2)}-{m.group(3)}" if m else number


def age_words(seconds: int, t: Translations) -> str:
    """A data age in words of the reader's language: 'a few seconds', '20 minutes', '3 hours', '2 days'."""
    seconds = max(0, int(seconds))
    if seconds < 10:
        return t.gettext("a few seconds")
    if seconds < 90:
        return t.ngettext("%(num)d second", "%(num)d seconds", seconds) % {"num": seconds}
    if seconds < 5400:
        n = round(seconds / 60)
        return t.ngettext("%(num)d minute", "%(num)d minutes", n) % {"num": n}
    if seconds < 2 * 86400:
        n = round(seconds / 3600)
        return t.ngettext("%(num)d hour", "%(num)d hours", n) % {"num": n}
    n = round(seconds / 86400)
    return t.ngettext("%(num)d day", "%(num)d days", n) % {"num": n}


def miles_words(miles: float, t: Translations, language: str) -> str:
    """'1.2 miles', '1 mile', '1,2 millas'; never '0 miles' (a center next door reads 0.1)."""
    value = max(0.1, round(miles, 1))
    shown = format_decimal(value, format="#,##0.#", locale=language)
    return t.ngettext("%(miles)s mile", "%(miles)s miles", 1 if value == 1 else 2) % {"miles": shown}


def availability_words(entry: Mapping[str, Any], t: Translations) -> dict[str, str]:
    """One level of care as the public reads it: explicit words for the status, the figures only while
    fresh, and the age ("confirmed 20 minutes ago"; stale or never reported: "Call to check")."""
    _, ngettext = t.gettext, t.ngettext
    level = entry.get("level_of_care", "")
    label = LEVEL_LABELS.get(level)
    out = {"level": t.gettext(label) if label else level.replace("_", " ").capitalize(), "detail": ""}
    age = entry.get("age_seconds")
    if age is None:
        words, kind, symbol = STATUS_WORDS["unknown"]
        return {**out, "status": _(words), "kind": kind, "symbol": symbol, "age": _("No recent report")}
    if not entry.get("fresh"):
        words, kind, symbol = STATUS_WORDS["unknown"]
        return {
            **out,
            "status": _(words),
            "kind": kind,
            "symbol": symbol,
            "age": _("last confirmed %(age)s ago") % {"age": age_words(age, t)},
        }
    status = str(entry.get("status") or "unknown")
    words, kind, symbol = STATUS_WORDS.get(status, STATUS_WORDS["unknown"])
    details = []
    beds = entry.get("beds_available")
    if status in ("available", "limited") and isinstance(beds, int) and beds > 0:
        details.append(ngettext("%(num)d bed open", "%(num)d beds open", beds) % {"num": beds})
    appointments = entry.get("appointments_available")
    if status in ("available", "limited") and isinstance(appointments, int) and appointments > 0:
        details.append(
            ngettext("%(num)d intake appointment open", "%(num)d intake appointments open", appointments)
            % {"num": appointments}
        )
    waiting = entry.get("waitlist_size")
    if status == "waitlist" and isinstance(waiting, int) and waiting > 0:
        details.append(ngettext("%(num)d person waiting", "%(num)d people waiting", waiting) % {"num": waiting})
    if entry.get("accepting") == "existing_only":
        details.append(_("current clients only"))
    elif entry.get("accepting") == "no" and status in ("available", "limited"):
        details.append(_("not taking new clients"))
    return {
        **out,
        "status": _(words),
        "kind": kind,
        "symbol": symbol,
        "detail": ", ".join(details),
        "age": _("confirmed %(age)s ago") % {"age": age_words(age, t)},
    }


def directions_href(center: Mapping[str, Any]) -> str:
    """A plain maps URL (opens the phone's maps app or the maps site); the place, nothing about the reader."""
    lat, lon = center.get("latitude"), center.get("longitude")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        destination = f"{lat:.6f},{lon:.6f}"
    else:
        destination = ", ".join(p for p in (street_line(center), town_line(center)) if p)
    return "https://www.google.com/maps/dir/?api=1&destination=" + quote(destination, safe=",")


def street_line(center: Mapping[str, Any]) -> str:
    address = center.get("address") or {}
    return ", ".join(p for p in (address.get("address_1", ""), address.get("address_2", "")) if p)


def town_line(center: Mapping[str, Any]) -> str:
    address = center.get("address") or {}
    city = address.get("city", "")
    return " ".join(
        p for p in (city + ("," if city else ""), address.get("state", ""), address.get("postal_code", "")) if p
    )


def center_view(hit: Mapping[str, Any], t: Translations, language: str, level: str = "") -> dict[str, Any]:
    phones = sorted(hit.get("phones") or [], key=lambda p: {"intake": 0, "main": 1}.get(p.get("role", ""), 2))
    calls = []
    for phone in phones[:2]:
        number = phone.get("number", "")
        if not number:
            continue
        words = phone_words(number)
        text = (
            t.gettext("Call intake %(number)s") if phone.get("role") == "intake" else t.gettext("Call %(number)s")
        ) % {"number": words}
        calls.append({"href": tel_href(number, phone.get("extension", "")), "text": text})
    levels = [availability_words(a, t) | {"code": a.get("level_of_care", "")} for a in hit.get("availability", [])]
    if level:
        levels.sort(key=lambda v: v["code"] != level)  # the level searched for first
    distance = hit.get("distance_mi")
    return {
        "id": hit.get("id", ""),
        "name": hit.get("name", ""),
        "address": ", ".join(p for p in (street_line(hit), town_line(hit)) if p),
        "distance": miles_words(distance, t, language) if isinstance(distance, int | float) else "",
        "calls": calls,
        "directions": directions_href(hit),
        "levels": levels,
    }


# ------------------------------------------------------------------------------------------- search


@dataclass
class FindQuery:
    """The form as typed (to refill it) and what it asks for."""

    place: str = ""
    latitude: float | None = None
    longitude: float | None = None
    level: str = ""
    payment: str = ""
    available_only: bool = False
    radius: int = DEFAULT_RADIUS
    submitted: bool = False
    errors: list[str] = field(default_factory=list)

    def params(self, **change: Any) -> dict[str, str]:
        """This search's query parameters, with some changed (None drops one)."""
        out: dict[str, Any] = {}
        if self.latitude is not None and self.longitude is not None:
            out.update(lat=f"{self.latitude:.3f}", lon=f"{self.longitude:.3f}")
        else:
            out["place"] = self.place
        out.update(level_of_care=self.level, payment=self.payment, radius_mi=str(self.radius))
        if self.available_only:
            out["available_only"] = "on"
        out.update(change)
        return {k: v for k, v in out.items() if v}


def _coordinate(text: str, bound: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return round(value, 3) if math.isfinite(value) and -bound <= value <= bound else None


def parse_query(q: QueryParams) -> FindQuery:
    query = FindQuery()
    query.place = " ".join(q.get("place", "").split())[:MAX_PLACE]
    lat_text, lon_text = q.get("lat", "").strip(), q.get("lon", "").strip()
    query.submitted = "place" in q or bool(lat_text or lon_text)
    if lat_text or lon_text:
        query.latitude, query.longitude = _coordinate(lat_text, 85.05), _coordinate(lon_text, 180.0)
        if query.latitude is None or query.longitude is None:
            query.latitude = query.longitude = None
            query.errors.append("location")
        else:
            query.place = ""
    level = q.get("level_of_care", "")
    if level in LevelOfCare._value2member_map_:
        query.level = level
    payment = q.get("payment", "")
    if payment in Payment._value2member_map_:
        query.payment = payment
    query.available_only = q.get("available_only", "") in ("on", "true", "1", "yes")
    try:
        radius = int(float(q.get("radius_mi", DEFAULT_RADIUS)))
    except ValueError:
        radius = DEFAULT_RADIUS
    query.radius = min(RADII, key=lambda r: abs(r - radius))
    return query


def _resolve(query: FindQuery) -> lookup.Origin:
    if query.latitude is not None and query.longitude is not None:
        return lookup.resolve_coordinates(query.latitude, query.longitude)
    if not query.place:
        raise InvalidQuery("place", "empty")
    return lookup.resolve_place(query.place)  # a ZIP code, a city and state, or 'lat,lon'; offline


def _search(st: Any, query: FindQuery) -> lookup.NearAnswer:
    answer = lookup.near(
        st.store,
        origin=_resolve(query),
        radius_mi=float(query.radius),
        levels_of_care=[query.level] if query.level else [],
        payment=[query.payment] if query.payment else [],
        available_only=query.available_only,
        limit=LIMIT,
        audience="public",
        now=st.clock(),
        helpline=st.settings.helpline,
    )
    if not answer.results:
        require_loaded(st)
    st.metrics.lookup("public", bool(answer.results))
    return answer


def origin_words(origin: lookup.Origin, t: Translations) -> str:
    if origin.resolved_from == "coordinates":
        return t.gettext("your location")
    place = re.sub(r"\s*\(.*\)$", "", origin.place or "")
    if origin.resolved_from == "zip" and origin.zip:
        return t.gettext("ZIP code %(zip)s (%(place)s)") % {"zip": origin.zip, "place": place}
    return place


def hint_view(
    hint: Mapping[str, Any],
    query: FindQuery,
    path: str,
    t: Translations,
    language: str,
) -> list[dict[str, str]]:
    """The lookup's suggestions as sentences, each with a link that makes the change."""
    out = []
    for s in hint.get("suggestions", ()):
        miles = miles_words(float(s.get("nearest_mi") or 0), t, language)
        change = s.get("change")
        if change == "wider_radius":
            radius = int(s.get("radius_mi", 100))
            text = t.gettext("Within %(radius)s miles, the nearest center is %(miles)s away.") % {
                "radius": radius,
                "miles": miles,
            }
            link, params = (
                t.gettext("Search within %(radius)s miles") % {"radius": radius},
                query.params(radius_mi=str(radius)),
            )
        elif change == "include_unconfirmed_availability":
            text = t.gettext("Not only centers confirmed open now: the nearest is %(miles)s away.") % {"miles": miles}
            link, params = t.gettext("Show all centers"), query.params(available_only=None)
        elif change == "drop_filter":
            name = FILTER_NAMES.get(str(s.get("filter")))
            if name is None:
                continue
            text = t.gettext("Without the %(filter)s filter, the nearest is %(miles)s away.") % {
                "filter": t.gettext(name),
                "miles": miles,
            }
            drop = {"level_of_care": None} if s.get("filter") == "levels_of_care" else {"payment": None}
            link, params = t.gettext("Search without it"), query.params(**drop)
        elif change == "drop_all_filters":
            text = t.gettext("Without any filter, the nearest is %(miles)s away.") % {"miles": miles}
            link, params = (
                t.gettext("Search without filters"),
                query.params(level_of_care=None, payment=None, available_only=None),
            )
        else:
            continue
        out.append({"text": text, "link": link, "href": f"{path}?{urlencode(params)}"})
    return out


def _error(exc: Exception, t: Translations, query: FindQuery) -> tuple[int, str, list[str]]:
    """(status, message, 'did you mean' places) for a search that could not be answered."""
    if isinstance(exc, UnknownZip):
        return (
            404,
            t.gettext("We do not know the ZIP code %(zip)s. Check it, or enter a city and state.")
            % {"zip": exc.zip_code},
            [],
        )
    if isinstance(exc, PlaceNotFound):
        parts = lookup.split_city_state(query.place)
        alike = geography.similar_cities(*parts) if parts else []
        return (
            404,
            t.gettext("We could not find %(place)s. Check the spelling, or enter a ZIP code.") % {"place": query.place},
            [f"{city}, {parts[1]}" for city in alike[:3]] if parts else [],
        )
    if isinstance(exc, InvalidQuery):
        if exc.parameter in ("lat", "lon", "location"):
            return 422, t.gettext("We could not use that location. Enter a ZIP code instead."), []
        if not query.place:
            return 422, t.gettext("Enter a ZIP code or a city and state to search."), []
        return 422, t.gettext("Enter a 5-digit ZIP code, or a city and state such as “Cambridge, MA”."), []
    if isinstance(exc, ApiError) and exc.status == 429:
        return 429, t.gettext("Too many searches in a minute. Wait a moment and try again, or call the helpline."), []
    if isinstance(exc, ApiError) and exc.error == "loading":
        return 503, t.gettext("Availability is still loading. Try again in a minute, or call the helpline."), []
    return 503, t.gettext("We cannot check availability right now. Please call the helpline."), []


def _page(request: Request, language: str) -> Response:
    st = state_of(request)
    t = translations(language)
    path = PATHS[language]
    query = parse_query(request.query_params)
    status, message, suggestions_places = 200, "", list[str]()
    answer: lookup.NearAnswer | None = None
    headers = dict(PAGE_HEADERS)
    if query.submitted:
        try:
            enforce_rate(st, client_address(request, st.settings.trust_proxy), st.settings.rate_limit, "requests")
            if query.errors:
                raise InvalidQuery("location", "unreadable")
            answer = _search(st, query)
        except (ApiError, InvalidQuery, UnknownZip, PlaceNotFound, StoreUnavailable) as exc:
            status, message, suggestions_places = _error(exc, t, query)
            if isinstance(exc, ApiError) and exc.headers and "Retry-After" in exc.headers:
                headers["Retry-After"] = exc.headers["Retry-After"]
    results = [center_view(h.as_dict(), t, language, query.level) for h in answer.results] if answer else []
    other = "es" if language == "en" else "en"
    where = origin_words(answer.origin, t) if answer else ""
    keep = query.params() if query.submitted else {}
    context = {
        "lang": language,
        "query": query,
        "answer": answer,
        "results": results,
        "message": message,
        "did_you_mean": [{"text": p, "href": f"{path}?{urlencode(query.params(place=p))}"} for p in suggestions_places],
        "where": where,
        "title": (
            t.gettext("Centers near %(place)s: check availability") % {"place": where}
            if answer
            else t.gettext(BUTTON_TEXT)
        ),
        "hints": hint_view(answer.hint, query, path, t, language) if answer and answer.hint else [],
        "helpline": st.settings.helpline,
        "helpline_tel": tel_href(st.settings.helpline),
        "path": path,
        "css_url": CSS_URL,
        "js_url": JS_URL,
        "other_lang": other,
        "other_lang_name": LANGUAGE_NAMES[other],
        "other_lang_url": PATHS[other] + (f"?{urlencode(keep)}" if keep else ""),
        "levels": [(v.value, t.gettext(label)) for v, label in LEVEL_LABELS.items()],
        "payments": [(v.value, t.gettext(label)) for v, label in PAYMENT_LABELS.items()],
        "radii": [(r, t.gettext("Within %(radius)s miles") % {"radius": r}) for r in RADII],
    }
    html = environment(language).get_template("find.html").render(context)
    headers["Content-Language"] = language
    return HTMLResponse(html, status_code=status, headers=headers)


@router.get("/find", response_class=HTMLResponse)
async def find_page(request: Request) -> Response:
    return await run_in_threadpool(_page, request, "en")


@router.get("/es/find", response_class=HTMLResponse)
async def find_page_es(request: Request) -> Response:
    return await run_in_threadpool(_page, request, "es")


# ------------------------------------------------------------------------------------ the embeddable button

BUTTON_TEXT = N_("Check Availability at a Center Near You")


def button_script() -> bytes:
    texts = {lang: translations(lang).gettext(BUTTON_TEXT) for lang in LANGUAGES}
    script = (
        environment("en")
        .get_template("find_button.js")
        .render(
            texts=jinja2.utils.markupsafe.Markup(json.dumps(texts, ensure_ascii=True)),
            paths=jinja2.utils.markupsafe.Markup(json.dumps(PATHS)),
        )
    )
    return script.encode()


@router.get("/embed/button.js")
def embed_button() -> Response:
    """The button for a partner's page: ``<script src="https://HOST/embed/button.js" data-lang="es" async>``
    puts a link to /find (or /es/find) where the script stands. It sets no cookie, sends nothing, loads
    nothing; the link sends no referrer."""
    body = button_script()
    return Response(
        body,
        media_type="text/javascript; charset=utf-8",
        headers={
            "Cache-Control": "public, max-age=86400",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",
            "Access-Control-Allow-Origin": "*",
            "ETag": '"' + hashlib.sha256(body).hexdigest()[:12] + '"',
        },
    )
