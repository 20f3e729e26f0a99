"""Real HTTP servers on 127.0.0.1 for tests: partner feeds and a Nominatim-compatible geocoder.

A ``LoopbackServer`` serves programmable routes from a thread and keeps a log of every request
(time of arrival, method, path, query, headers), so tests assert on what really crossed the wire.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    at: float
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (timeouts)
    chunks: list[bytes] | None = None  # stream these, with ``delay`` between them (slowloris)
    truncate_to: int | None = None  # announce the full length but close early


Handler = Callable[[Request], Response]


class LoopbackServer:
    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.log: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    time.monotonic(),
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with server._lock:
                    server.log.append(req)
                    handler = server.routes.get(parts.path)
                resp = handler(req) if handler else Response(404, b"not found")
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._answer(resp)

            def _answer(self, resp: Response) -> None:
                if resp.delay and resp.chunks is None:
                    time.sleep(resp.delay)
                self.send_response(resp.status)
                headers = {"Content-Type": "application/octet-stream", **resp.headers}
                if resp.chunks is not None:
                    headers["Transfer-Encoding"] = "chunked"
                elif "Content-Length" not in headers:
                    headers["Content-Length"] = str(len(resp.body))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command == "HEAD":
                    return
                if resp.chunks is not None:
                    for chunk in resp.chunks:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                        time.sleep(resp.delay)
                    self.wfile.write(b"0\r\n\r\n")
                elif resp.truncate_to is not None:
                    self.wfile.write(resp.body[: resp.truncate_to])
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    self.wfile.write(resp.body)

            do_GET = do_POST = do_HEAD = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, response: Response | Handler) -> None:
        handler = response if callable(response) else (lambda _req, r=response: r)
        with self._lock:
            self.routes[path] = handler

    def requests(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.log if path is None or r.path == path]

    def start(self) -> LoopbackServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    try:
        yield server
    finally:
        server.stop()


def json_response(data: Any, status: int = 200, **headers: str) -> Response:
    return Response(status, json.dumps(data).encode(), {"Content-Type": "application/json", **headers})
