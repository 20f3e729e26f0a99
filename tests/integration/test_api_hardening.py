"""The API against a client that lies in its headers: a real uvicorn process on 127.0.0.1 behind one
(simulated) proxy hop. Every header the API reads is parsed strictly (no 5xx whatever its value), the
rate limit cannot be dodged with a forged X-Forwarded-For, and rate-limit keys stay small."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aggregator.push import sign
from tests.environment import isolated_env
from tests.integration.api_server import ApiServer

PREFIX = "hard:"
SECRET = "hardening-secret-0123456789abcdef"
KEY = "hardening-bearer-key-0123456789ab"
REGISTRY = """
[[feed]]
id = "harbor"
format = "push"
freshness = "6h"
push = { hmac_secret_env = ["HARBOR_SECRET"], bearer_key_env = ["HARBOR_KEY"] }
[feed.mapping.fields]
source_id = "id"
name = "name"
state = "state"
postal_code = "zip"
"""
#: every request header the API reads
HEADERS = (
    "authorization",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "idempotency-key",
    "content-type",
    "x-forwarded-for",
    "x-forwarded-proto",
    "cookie",
    "origin",
    "referer",
)


def server_env(redis_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    feeds = tmp / "feeds.toml"
    feeds.write_text(REGISTRY)
    env = isolated_env()
    base = redis_url.rsplit("/", 1)[0]
    env.update(
        {
            "REDIS_URL": f"{base}/6",
            "CENTERS_BROKER_URL": f"{base}/7",
            "CENTERS_KEY_PREFIX": PREFIX,
            "CENTERS_FEEDS_FILE": str(feeds),
            "CENTERS_GEOCODER": "none",
            "CENTERS_DATA_DIR": str(tmp),
            "HARBOR_SECRET": SECRET,
            "HARBOR_KEY": KEY,
            "CENTERS_OPERATOR_TOKENS": "ops:hardening-operator-token-0123",
            **extra,
        }
    )
    return env


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple[ApiServer, redis.Redis]]:
    tmp = tmp_path_factory.mktemp("hardening")
    server = ApiServer(server_env(redis_url, tmp, CENTERS_TRUST_PROXY="1", CENTERS_RATE_LIMIT="5"), tmp).start()
    client = redis.Redis.from_url(server.env["REDIS_URL"])
    client.flushdb()
    yield server, client
    server.stop()
    client.flushdb()
    client.close()


def test_a_forged_x_forwarded_for_does_not_dodge_the_rate_limit(behind_proxy: tuple[ApiServer, redis.Redis]) -> None:
    server, _ = behind_proxy
    codes = []
    with server.client() as c:
        for _ in range(8):
            # the client rotates what it claims; our proxy appends the address it really saw
            forged = ".".join(str(secrets.randbelow(250) + 1) for _ in range(4))
            codes.append(
                c.get(
                    "/v1/centers/near", params={"zip": "02139"}, headers={"X-Forwarded-For": f"{forged}, 198.51.100.7"}
                ).status_code
            )
    assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3, codes


def test_rate_limit_keys_are_hashed_and_bounded(behind_proxy: tuple[ApiServer, redis.Redis]) -> None:
    server, data = behind_proxy
    with server.client() as c:
        c.get("/v1/centers/near", params={"zip": "02139"}, headers={"X-Forwarded-For": "x" * 8000})
    keys = [k for k in data.scan_iter(match=f"{PREFIX}rate:*")]
    assert keys and max(len(k) for k in keys) <= len(PREFIX) + len("rate:") + 32, keys[:3]


def signed_headers(timestamp: str, body: bytes) -> dict[str, str]:
    event = f"evt-{time.monotonic_ns()}"
    return {
        "webhook-id": event,
        "webhook-timestamp": timestamp,
        "content-type": "application/json",
        "webhook-signature": sign(SECRET.encode(), event, timestamp, body),
    }


def test_a_non_ascii_digit_timestamp_is_refused_cleanly(behind_proxy: tuple[ApiServer, redis.Redis]) -> None:
    server, _ = behind_proxy
    body = b'[{"id": "h-1", "name": "Harbor", "state": "MA", "zip": "02139"}]'
    with server.client() as c:
        for stamp in ("\u00b2\u00b3", "\u0661\u0662\u0663"):  # superscript and Arabic-Indic digits pass isdigit()
            headers = signed_headers(stamp, body)
            raw = {k: v.encode("utf-8") for k, v in headers.items()}
            resp = c.post("/v1/feeds/harbor/records", content=body, headers=raw)
            assert resp.status_code == 401, resp.text
            assert "webhook-timestamp" in resp.json()["detail"]
        # the connection is still good for the next request
        assert c.get("/healthz").status_code == 200


#: any value a client can put on the wire: visible ASCII and obs-text (0x80-0xFF), inner spaces
header_values = st.lists(st.sampled_from([*range(0x20, 0x7F), *range(0x80, 0x100)]), max_size=300).map(
    lambda xs: bytes(xs).strip(b" ")
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(HEADERS), value=header_values, route=st.sampled_from(["push", "near", "feeds", "page"]))
@example(name="webhook-timestamp", value="²³".encode(), route="push")
@example(name="x-forwarded-for", value=b"\xff\xfe, ::1, 999.1.1.1", route="near")
@example(name="content-type", value=b"application/json; charset=\xe9", route="push")
def test_no_header_value_gets_a_server_error(
    behind_proxy: tuple[ApiServer, redis.Redis], name: str, value: bytes, route: str
) -> None:
    server, _ = behind_proxy
    body = b'[{"id": "h-1", "name": "Harbor", "state": "MA", "zip": "02139"}]'
    headers: dict[str, bytes] = {}
    if route == "push":
        headers = {k: v.encode() for k, v in signed_headers(str(int(time.time())), body).items()}
    elif route in ("feeds", "page"):
        headers = {"authorization": b"Bearer hardening-operator-token-0123"}
    headers[name] = value
    method, path = {
        "push": ("POST", "/v1/feeds/harbor/records"),
        "near": ("GET", "/v1/centers/near?zip=02139"),
        "feeds": ("GET", "/v1/feeds"),
        "page": ("POST", "/operator/logout"),
    }[route]
    with httpx.Client(base_url=server.url, timeout=10) as c:
        resp = c.request(method, path, headers=headers, content=body if method == "POST" else None)
    assert resp.status_code < 500, (name, value, route, resp.status_code, resp.text[:300])
