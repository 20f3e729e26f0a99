"""The access log keeps no client address and no searched place: a ZIP code cut to 3 digits, coordinates
dropped, a city cut to its state, unknown parameters' values redacted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from aggregator.access_log import AccessLogMiddleware, line, logger, redact_place, redact_query, redact_zip


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        ("zip=02139", "zip=021xx"),
        ("zip=02139-1234&radius_mi=10", "zip=021xx&radius_mi=10"),
        ("zip=2139", "zip=(redacted)"),
        ("lat=42.3651&lon=-71.1043", ""),
        ("latitude=42.3&longitude=-71.1&lng=-71.1&level_of_care=detox", "level_of_care=detox"),
        ("place=02139&payment=medicaid&payment=sliding_scale", "place=021xx&payment=medicaid&payment=sliding_scale"),
        ("place=Cambridge%2C+MA", "place=(city),MA"),
        ("place=saint+louis+missouri", "place=(city),MO"),
        ("place=42.36%2C-71.10&available_only=on", "available_only=on"),
        ("place=1+Main+St%2C+Springfield", "place=(redacted)"),
        ("place=&level_of_care=", "place=&level_of_care="),
        ("token=secret-value&q=02139", "token=(redacted)&q=021xx"),
        ("level_of_care=" + "x" * 100, "level_of_care=" + "x" * 40),
    ],
)
def test_redact_query(query: str, logged: str) -> None:
    assert redact_query(query) == logged


def test_redactions() -> None:
    assert redact_zip("90013") == "900xx"
    assert redact_place(" 42.1 , -71.2 ") is None
    assert redact_place("Boston, MA") == "(city),MA"
    assert line("GET", "/find", "place=02139&lat=1&lon=2", 200, 0.0123) == "GET /find?place=021xx 200 12ms"
    assert line("GET", "/v1/centers/near", "lat=42.1&lon=-71.2", 200, 0.001) == "GET /v1/centers/near 200 1ms"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[list[str]]:
    handler = Lines()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_the_middleware_writes_one_line_per_request_without_the_client(lines: list[str]) -> None:
    def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/find", ok), Route("/healthz", ok), Route("/boom", boom)])
    app.add_middleware(AccessLogMiddleware)
    headers = {"X-Forwarded-For": "203.0.113.9", "User-Agent": "phone", "Referer": "https://partner.example/a"}

    async def requests() -> list[int]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("198.51.100.23", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://find.test") as client:
            return [
                (await client.get("/find?place=02139&lat=42.36&lon=-71.10", headers=headers)).status_code,
                (await client.get("/healthz")).status_code,  # probes are not logged
                (await client.get("/boom")).status_code,
            ]

    assert asyncio.run(requests()) == [200, 200, 500]
    assert len(lines) == 2, lines
    assert lines[0].startswith("GET /find?place=021xx 200 ") and lines[0].endswith("ms")
    assert lines[1].startswith("GET /boom 500 ")
    text = "\n".join(lines)
    for secret in ("198.51.100.23", "203.0.113.9", "phone", "partner.example", "02139", "42.36", "71.10"):
        assert secret not in text
