"""Operator page sessions and CSRF, against the session's real Redis, with the app built in process.

The cookie holds a random session id (never the token); its session lives in Redis under a digest
of the id, ends at sign-out or after 12 hours; a change made with the cookie must come from this
origin, and the page's own forms carry a token. Bearer-token calls are not affected.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator.api import create_app
from aggregator.api.common import SESSION_SECONDS
from aggregator.store import Store
from config.registry import parse
from config.settings import Settings
from tests.integration.factories import center

TOKEN = "sessions-operator-token-0123456789"
OTHER_TOKEN = "sessions-other-token-0123456789ab"
BASE = "http://testserver"
EVIL = "https://evil.example"
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)

REGISTRY = """
[[feed]]
id = "beacon"
partner = "Beacon Recovery"
format = "push"
freshness = "6h"
push = { hmac_secret_env = ["BEACON_SECRET"] }
[feed.mapping.fields]
source_id = "id"
name = "name"
state = "state"
postal_code = "zip"
"""


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class App:
    """The API in process: the real store, a clock we move, and the jobs it would have queued."""

    def __init__(self, store: Store, tokens: tuple[tuple[str, str], ...], trust_proxy: str = "false") -> None:
        self.store = store
        self.clock = Clock()
        self.queued: list[tuple[str, list[Any]]] = []
        settings = Settings.from_env(
            {
                "CENTERS_OPERATOR_TOKENS": ",".join(f"{n}:{t}" for n, t in tokens),
                "CENTERS_RATE_LIMIT": "100000",
                "CENTERS_TRUST_PROXY": trust_proxy,
            }
        )
        self.app: FastAPI = create_app(
            settings,
            store,
            registry=parse(tomllib.loads(REGISTRY)),
            enqueue=lambda name, args: self.queued.append((name, list(args))),
            environ={"BEACON_SECRET": "beacon-secret-0123456789abcdef"},
            clock=self.clock,
        )

    def client(self, base_url: str = BASE) -> TestClient:
        return TestClient(self.app, base_url=base_url, follow_redirects=False)


@pytest.fixture
def app(store: Store) -> App:
    store.replace_feed(
        "beacon",
        [center("beacon", "b-1", 42.3651, -71.1040, levels_of_care=["detox"])],
        [],
        now=NOW,
        source="push",
        partial=True,
    )
    store.hold_snapshot("beacon", b'{"held_at": "2026-11-27T14:00:00Z", "centers": [], "availability": []}')
    return App(store, (("dana", TOKEN), ("lee", OTHER_TOKEN)))


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with app.client() as c:
        yield c


def form_token(html: str) -> str:
    found = re.search(r'<input type="hidden" name="csrf" value="([^"]+)">', html)
    assert found, html[:1500]
    return found.group(1)


def sign_in(client: TestClient, token: str = TOKEN, origin: str | None = BASE) -> Any:
    """Open the sign-in form, then post it as the page in a browser would."""
    csrf = form_token(client.get("/operator").text)
    headers = {"origin": origin} if origin is not None else {}
    return client.post("/operator/login", data={"token": token, "csrf": csrf}, headers=headers)


def signed_in(client: TestClient) -> str:
    resp = sign_in(client)
    assert resp.status_code == 303, resp.text
    session = client.cookies.get("operator_session")
    assert session
    return session


def session_keys(store: Store) -> list[bytes]:
    return sorted(store.redis.keys(store.keys.prefix + "session:*"))


def redis_state(store: Store) -> dict[bytes, Any]:
    r = store.redis
    return {k: r.dump(k) for k in sorted(r.keys("*")) if b":rate:" not in k}


# ---------------------------------------------------------------------------------------- sessions


def test_the_cookie_holds_a_session_id_never_the_token(app: App, client: TestClient) -> None:
    resp = sign_in(client)
    assert resp.status_code == 303
    cookies = resp.headers.get_list("set-cookie")
    assert cookies and not any(TOKEN in c for c in cookies)
    [session_cookie] = [c for c in cookies if c.startswith("operator_session=")]
    attributes = {part.strip().lower() for part in session_cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/", f"max-age={SESSION_SECONDS}"} <= attributes
    session = client.cookies["operator_session"]
    assert len(session) >= 43 and session != TOKEN
    # Redis keeps the session under a digest of its id: neither the id nor the token is stored
    [key] = session_keys(app.store)
    assert key.decode().endswith(hashlib.sha256(session.encode()).hexdigest())
    assert app.store.redis.hgetall(key) == {b"operator": b"dana", b"created": NOW.isoformat().encode()}
    assert SESSION_SECONDS - 60 < app.store.redis.ttl(key) <= SESSION_SECONDS
    for k, dumped in redis_state(app.store).items():
        assert session.encode() not in k + dumped and TOKEN.encode() not in k + dumped
    page = client.get("/operator")
    assert page.status_code == 200 and "Signed in as <strong>dana</strong>" in page.text


def test_a_cookie_works_until_sign_out_and_never_after(app: App, client: TestClient) -> None:
    session = signed_in(client)
    page = client.get("/operator")
    assert page.status_code == 200
    assert client.get("/v1/feeds").status_code == 200  # the API takes the page's session for reads
    out = client.post("/operator/logout", data={"csrf": form_token(page.text)}, headers={"origin": BASE})
    assert out.status_code == 303
    assert any(c.startswith('operator_session="";') for c in out.headers.get_list("set-cookie"))
    assert session_keys(app.store) == []  # the session is gone from Redis, not just from the browser
    with app.client() as replay:  # someone who kept a copy of the cookie
        replay.cookies.set("operator_session", session)
        assert replay.get("/operator").status_code == 401
        assert replay.get("/v1/feeds").status_code == 401
        assert replay.post("/v1/feeds/beacon/release", headers={"origin": BASE}).status_code == 401
    assert app.queued == []


def test_an_unknown_or_expired_session_is_refused(app: App, client: TestClient) -> None:
    client.cookies.set("operator_session", "not-a-session-0000000000000000000000000000")
    assert client.get("/operator").status_code == 401
    assert client.get("/v1/feeds").json() == {"error": "unauthorized", "detail": "an operator token is required"}
    client.cookies.clear()
    signed_in(client)
    app.clock.now = NOW + timedelta(seconds=SESSION_SECONDS - 60)
    assert client.get("/v1/feeds").status_code == 200
    app.clock.now = NOW + timedelta(seconds=SESSION_SECONDS + 1)  # a shift later
    assert client.get("/v1/feeds").status_code == 401
    assert client.get("/operator").status_code == 401
    assert session_keys(app.store) == []
    # and when Redis expires it first
    app.clock.now = NOW
    client.cookies.clear()
    signed_in(client)
    [key] = session_keys(app.store)
    app.store.redis.delete(key)
    assert client.get("/v1/feeds").status_code == 401


def test_signing_in_again_replaces_the_session(app: App, client: TestClient) -> None:
    csrf = form_token(client.get("/operator").text)  # two tabs showing the sign-in form
    sessions = []
    for _tab in range(2):
        resp = client.post("/operator/login", data={"token": TOKEN, "csrf": csrf}, headers={"origin": BASE})
        assert resp.status_code == 303
        sessions.append(client.cookies["operator_session"])
    first, second = sessions
    assert first != second
    assert len(session_keys(app.store)) == 1
    with app.client() as replay:
        replay.cookies.set("operator_session", first)
        assert replay.get("/v1/feeds").status_code == 401


def test_a_session_ends_when_its_operator_is_no_longer_configured(app: App, client: TestClient) -> None:
    session = signed_in(client)
    without_dana = App(app.store, (("lee", OTHER_TOKEN),))
    with without_dana.client() as c:
        c.cookies.set("operator_session", session)
        assert c.get("/v1/feeds").status_code == 401


# -------------------------------------------------------------------------------------------- CSRF


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": EVIL},
        {},  # neither Origin nor Referer
        {"origin": "null"},
        {"referer": EVIL + "/page"},
        {"origin": "https://testserver"},  # another scheme is another origin
        {"origin": "http://testserver:8080"},
        {"origin": "http://testserver.evil.example"},
        {"origin": EVIL, "referer": BASE + "/operator"},  # Origin, when sent, is what counts
    ],
)
def test_a_cross_origin_change_with_the_cookie_is_refused(
    app: App, client: TestClient, headers: dict[str, str]
) -> None:
    signed_in(client)
    before = redis_state(app.store)
    release = client.post("/v1/feeds/beacon/release", headers=headers)
    assert release.status_code == 403, release.text
    assert release.json()["error"] == "csrf" and release.json()["detail"]
    report = client.post(
        "/v1/centers/beacon:b-1/reports",
        headers=headers,
        json={"level_of_care": "detox", "status": "available", "beds_available": 4},
    )
    assert report.status_code == 403 and report.json()["error"] == "csrf"
    decision = client.post(
        "/v1/matches/decisions",
        headers=headers,
        json={"record_id": "beacon:b-1", "facility_id": "beacon:b-1", "decision": "different"},
    )
    assert decision.status_code == 403 and decision.json()["error"] == "csrf"
    assert app.queued == []  # nothing was released
    assert redis_state(app.store) == before  # nothing was written
    assert app.store.held_snapshot("beacon") is not None


@pytest.mark.parametrize(
    "headers", [{"origin": BASE}, {"referer": BASE + "/operator?place=02139"}, {"origin": "HTTP://TESTSERVER:80"}]
)
def test_a_same_origin_change_with_the_cookie_goes_through(
    app: App, client: TestClient, headers: dict[str, str]
) -> None:
    signed_in(client)
    resp = client.post("/v1/feeds/beacon/release", headers=headers)
    assert resp.status_code == 202, resp.text
    assert resp.json()["released_by"] == "dana"
    assert app.queued == [("feeds.release", ["beacon", "dana"])]


def test_behind_our_proxy_the_origin_is_the_one_the_browser_used(store: Store) -> None:
    store.hold_snapshot("beacon", b"{}")
    app = App(store, (("dana", TOKEN),), trust_proxy="true")
    with app.client() as client:
        signed_in(client)
        proxied = {"x-forwarded-proto": "https", "x-forwarded-host": "ops.example.org"}
        assert client.post("/v1/feeds/beacon/release", headers={**proxied, "origin": BASE}).status_code == 403
        assert (
            client.post(
                "/v1/feeds/beacon/release", headers={**proxied, "origin": "https://ops.example.org"}
            ).status_code
            == 202
        )
    untrusting = App(store, (("dana", TOKEN),))
    with untrusting.client() as client:
        signed_in(client)
        resp = client.post(
            "/v1/feeds/beacon/release",
            headers={
                "x-forwarded-proto": "https",
                "x-forwarded-host": "ops.example.org",
                "origin": "https://ops.example.org",
            },
        )
        assert resp.status_code == 403  # forwarded headers count only behind our own proxy


@pytest.mark.parametrize("origin", [None, EVIL, "null"])
def test_bearer_calls_are_unaffected(app: App, client: TestClient, origin: str | None) -> None:
    """A bearer token is no ambient credential: no Origin needed, and it wins over a session cookie."""
    headers = {"origin": origin} if origin else {}
    with app.client() as api:
        resp = api.post("/v1/feeds/beacon/release", headers={"authorization": f"Bearer {TOKEN}", **headers})
        assert resp.status_code == 202, resp.text
        assert api.get("/v1/feeds", headers={"authorization": f"Bearer {TOKEN}", **headers}).status_code == 200
    signed_in(client)  # dana's session cookie, and lee's token in the header: the header decides
    resp = client.post("/v1/feeds/beacon/release", headers={"authorization": f"Bearer {OTHER_TOKEN}", **headers})
    assert resp.status_code == 202, resp.text
    wrong = client.post("/v1/feeds/beacon/release", headers={"authorization": "Bearer wrong-0000000000000000"})
    assert wrong.status_code == 401  # a wrong token is not rescued by the cookie
    assert app.queued == [("feeds.release", ["beacon", "dana"]), ("feeds.release", ["beacon", "lee"])]


def test_over_https_the_cookies_are_secure(app: App) -> None:
    with app.client("https://testserver") as client:
        resp = sign_in(client, origin="https://testserver")
        assert resp.status_code == 303
        [cookie] = [c for c in resp.headers.get_list("set-cookie") if c.startswith("operator_session=")]
        assert "secure" in {part.strip().lower() for part in cookie.split(";")}


# ------------------------------------------------------------------------------- the page's own forms


def test_the_page_forms_carry_a_token_tied_to_the_session(app: App, client: TestClient) -> None:
    login_form = client.get("/operator").text
    assert login_form.count('name="csrf"') == 1
    signed_in(client)
    page = client.get("/operator").text
    logout_form = page[page.index('<form method="post" action="/operator/logout">') :]
    assert logout_form.index('name="csrf"') < logout_form.index("</form>")
    with app.client() as other:
        signed_in(other)
        assert form_token(other.get("/operator").text) != form_token(page)


@pytest.mark.parametrize("case", ["no-token", "wrong-token", "another-sessions-token", "evil-origin", "no-origin"])
def test_a_sign_out_without_the_pages_token_is_refused(app: App, client: TestClient, case: str) -> None:
    signed_in(client)
    right = form_token(client.get("/operator").text)
    data: dict[str, str] = {"csrf": right}
    headers = {"origin": BASE}
    if case == "no-token":
        data = {}
    elif case == "wrong-token":
        data = {"csrf": "0" * len(right)}
    elif case == "another-sessions-token":
        with app.client() as other:
            signed_in(other)
            data = {"csrf": form_token(other.get("/operator").text)}
    elif case == "evil-origin":
        headers = {"origin": EVIL}
    else:
        headers = {}
    resp = client.post("/operator/logout", data=data, headers=headers)
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith("text/html")
    assert "Request refused" in resp.text and "Nothing was changed" in resp.text
    assert "set-cookie" not in resp.headers
    assert client.get("/operator").status_code == 200  # still signed in


def test_a_sign_out_from_the_page_in_a_browser_sends_origin_null(app: App, client: TestClient) -> None:
    """The page's no-referrer policy makes a browser send ``Origin: null``: the form token decides."""
    session = signed_in(client)
    token = form_token(client.get("/operator").text)
    assert client.post("/operator/logout", data={}, headers={"origin": "null"}).status_code == 403
    assert client.post("/operator/logout", data={"csrf": token}, headers={"origin": "null"}).status_code == 303
    with app.client() as replay:
        replay.cookies.set("operator_session", session)
        assert replay.get("/operator").status_code == 401


@pytest.mark.parametrize("case", ["evil-origin", "no-origin", "no-form-token", "no-form-cookie"])
def test_a_forged_sign_in_is_refused(app: App, client: TestClient, case: str) -> None:
    """Login CSRF: another site cannot sign a browser in (as whoever's token it holds)."""
    csrf = form_token(client.get("/operator").text)
    data, headers = {"token": TOKEN, "csrf": csrf}, {"origin": BASE}
    if case == "evil-origin":
        headers = {"origin": EVIL}
    elif case == "no-origin":
        headers = {}
    elif case == "no-form-token":
        data = {"token": TOKEN}
    else:
        client.cookies.delete("operator_login", path="/operator")
    resp = client.post("/operator/login", data=data, headers=headers)
    assert resp.status_code == 403, resp.text
    assert "Request refused" in resp.text
    assert not any(c.startswith("operator_session=") for c in resp.headers.get_list("set-cookie"))
    assert session_keys(app.store) == []
    assert client.get("/operator").status_code == 401
