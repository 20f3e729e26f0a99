"""Fetching partner feeds: the only module that speaks HTTP out (one ``requests.Session``, passed in).

* Time: a connect timeout, a read timeout, and a total deadline checked on every chunk (a partner
  trickling one byte every few seconds cannot hold a worker).
* Size: a cap on the *decompressed* body, checked while streaming (and on Content-Length first).
* Politeness: an honest User-Agent; conditional GET (If-None-Match / If-Modified-Since); the
  server's ``Cache-Control: max-age`` and ``Retry-After`` are returned to the caller to honour.
* Bytes: the raw body goes to the parser; nothing here guesses a charset.
* Destinations: private, loopback, link-local and other non-public addresses are refused unless
  the feed is allow-listed (``allow_private``), checked on the resolved addresses and on the
  connected peer, and again on every redirect (followed by hand, at most 3, never carrying the
  feed's credentials to another host).

requests/urllib3 errors are translated here into ``FetchTransient`` (timeouts, connection errors,
5xx, 408, 429) and ``FetchPermanent`` (other 4xx, refused destination, body over the cap, a
content type that cannot be the feed's format).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from aggregator.errors import FetchPermanent, FetchTransient

MAX_REDIRECTS = 3
CHUNK = 64 * 1024

#: content types that can carry each format (None or a generic binary type is accepted too)
ACCEPTABLE_TYPES: dict[str, tuple[str, ...]] = {
    "json": (
        "application/json",
        "application/geo+json",
        "application/ld+json",
        "application/x-ndjson",
        "application/ndjson",
        "application/fhir+ndjson",
        "application/fhir+json",
        "text/json",
        "text/plain",
        "+json",
    ),
    "csv": (
        "text/csv",
        "text/plain",
        "application/csv",
        "application/vnd.ms-excel",
        "text/tab-separated-values",
        "application/json",
    ),  # HSDS packages mix a datapackage.json in
    "html": ("text/html", "application/xhtml+xml", "text/plain"),
    "hsds": ("application/json", "text/csv", "text/plain", "application/csv", "+json"),
    "smart": (
        "application/json",
        "application/fhir+ndjson",
        "application/x-ndjson",
        "application/ndjson",
        "application/fhir+json",
        "text/plain",
        "+json",
    ),
}
GENERIC_TYPES = ("application/octet-stream", "binary/octet-stream", "")


@dataclass(frozen=True)
class Validators:
    """What a previous fetch told us, for a conditional GET."""

    etag: str = ""
    last_modified: str = ""


@dataclass
class Fetched:
    url: str  # the final URL, after redirects
    status: int
    body: bytes = b""
    content_type: str = ""
    etag: str = ""
    last_modified: str = ""
    max_age: int | None = None
    elapsed: float = 0.0
    redirects: list[str] = field(default_factory=list)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


Resolver = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchTransient(f"cannot resolve {host}: {exc}") from exc
    return sorted({str(info[4][0]) for info in infos})


#: what ``allow_private = true`` allows: loopback and the private ranges (RFC 1918, IPv6 unique local).
#: Link-local (cloud metadata at 169.254.169.254), shared address space (CGNAT, 100.64.0.0/10) and every
#: other non-public range stay refused unless a feed names them: ``allow_private = ["169.254.0.0/16"]``.
PRIVATE_RANGES = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

Allowance = bool | Sequence[str]


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_public(address: str) -> bool:
    ip = _ip(address)
    return ip.is_global and not ip.is_multicast


def allowed_networks(allow: Allowance) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The non-public networks a feed may reach: none, PRIVATE_RANGES (``True``), or those it lists."""
    ranges = PRIVATE_RANGES if allow is True else () if allow is False else tuple(allow)
    return tuple(ipaddress.ip_network(r, strict=False) for r in ranges)


def may_reach(address: str, allow: Allowance) -> bool:
    """Public, or inside a network the feed is allowed to reach."""
    if is_public(address):
        return True
    ip = _ip(address)
    return any(ip in network for network in allowed_networks(allow))


def new_session(user_agent: str) -> requests.Session:
    """The one session feeds are fetched with: our User-Agent, gzip only, no automatic retries."""
    session = requests.Session()
    session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"})
    adapter = requests.adapters.HTTPAdapter(
        max_retries=urllib3.Retry(total=0, connect=1, read=False, redirect=False, status=False)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # no proxy or netrc from the environment: destinations are checked here
    return session


class Fetcher:
    def __init__(
        self, session: requests.Session, *, resolver: Resolver = _resolve, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.session = session
        self._resolve = resolver
        self._clock = clock

    def get(
        self,
        url: str,
        *,
        fmt: str,
        max_bytes: int,
        timeout: float,
        allow_private: Allowance = False,
        validators: Validators | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 5.0,
    ) -> Fetched:
        """GET one document. Raises FetchTransient or FetchPermanent with a readable reason."""
        started = self._clock()
        deadline = started + timeout
        request_headers = dict(headers or {})
        if validators and validators.etag:
            request_headers["If-None-Match"] = validators.etag
        if validators and validators.last_modified:
            request_headers["If-Modified-Since"] = validators.last_modified
        origin_host = urlsplit(url).hostname
        redirects: list[str] = []
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            self._check_destination(current, allow_private)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise FetchTransient(f"{current}: no time left after redirects")
            hop_headers = dict(request_headers)
            if urlsplit(current).hostname != origin_host:
                # never carry a partner's credentials or validators to another host
                hop_headers = {
                    k: v
                    for k, v in hop_headers.items()
                    if k.lower() not in ("authorization", "cookie", "if-none-match", "if-modified-since")
                    and k not in (headers or {})
                }
            try:
                resp = self.session.get(
                    current,
                    headers=hop_headers,
                    stream=True,
                    allow_redirects=False,
                    timeout=(min(connect_timeout, remaining), min(timeout, remaining)),
                )
            except requests.exceptions.Timeout as exc:
                raise FetchTransient(f"{current}: timed out ({exc.__class__.__name__})") from exc
            except requests.exceptions.ConnectionError as exc:
                raise FetchTransient(f"{current}: connection failed: {_short(exc)}") from exc
            except requests.exceptions.RequestException as exc:
                raise FetchPermanent(f"{current}: request refused: {_short(exc)}") from exc
            with resp:
                self._check_peer(resp, current, allow_private)
                if resp.status_code in (301, 302, 303, 307, 308):
                    location = resp.headers.get("Location")
                    if not location:
                        raise FetchPermanent(f"{current}: redirect without a Location")
                    current = urljoin(current, location)
                    redirects.append(current)
                    continue
                return self._finish(
                    resp,
                    url=current,
                    fmt=fmt,
                    max_bytes=max_bytes,
                    started=started,
                    deadline=deadline,
                    redirects=redirects,
                )
        raise FetchPermanent(f"{url}: more than {MAX_REDIRECTS} redirects")

    # ------------------------------------------------------------------------------------------

    def _check_destination(self, url: str, allow_private: Allowance) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchPermanent(f"{url}: only http and https are fetched")
        if parts.username or parts.password:
            raise FetchPermanent(f"{url}: user names and passwords in URLs are refused")
        host = parts.hostname
        if not host:
            raise FetchPermanent(f"{url}: no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = self._resolve(host, port)
        refused = [a for a in addresses if not may_reach(a, allow_private)]
        if not addresses or refused:
            hint = (
                "name its network in allow_private if this is intended; link-local, metadata and CGNAT "
                "ranges are never allowed by allow_private = true"
                if allow_private
                else "allow-list the feed with allow_private = true if this is intended"
            )
            raise FetchPermanent(
                f"{url}: refused destination {', '.join(refused) or host} (not a public address; {hint})"
            )

    def _check_peer(self, resp: requests.Response, url: str, allow_private: Allowance) -> None:
        """The address we actually connected to (defeats DNS rebinding between check and connect)."""
        try:
            sock = resp.raw.connection.sock
            peer = sock.getpeername()[0]
        except (AttributeError, OSError, TypeError):
            return
        if not may_reach(peer, allow_private):
            raise FetchPermanent(f"{url}: refused destination {peer} (connected to a non-public address)")

    def _finish(
        self,
        resp: requests.Response,
        *,
        url: str,
        fmt: str,
        max_bytes: int,
        started: float,
        deadline: float,
        redirects: list[str],
    ) -> Fetched:
        status = resp.status_code
        headers = resp.headers
        result = Fetched(
            url=url,
            status=status,
            etag=headers.get("ETag", ""),
            last_modified=headers.get("Last-Modified", ""),
            content_type=headers.get("Content-Type", ""),
            max_age=_max_age(headers.get("Cache-Control", "")),
            redirects=redirects,
        )
        if status == 304:
            result.elapsed = self._clock() - started
            return result
        if status == 429 or status == 408 or status >= 500:
            raise FetchTransient(f"{url}: HTTP {status}", retry_after=_retry_after(headers.get("Retry-After")))
        if status >= 400 or status < 200 or status == 204:
            raise FetchPermanent(f"{url}: HTTP {status}")
        self._check_type(result.content_type, fmt, url)
        declared = headers.get("Content-Length")
        if declared and declared.isdigit() and not headers.get("Content-Encoding") and int(declared) > max_bytes:
            raise FetchPermanent(f"{url}: body of {int(declared):,} bytes is over the {max_bytes:,}-byte cap")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in resp.iter_content(CHUNK):  # decoded (gunzipped) bytes
                size += len(chunk)
                if size > max_bytes:
                    raise FetchPermanent(f"{url}: body is over the {max_bytes:,}-byte cap (decompressed)")
                chunks.append(chunk)
                if self._clock() > deadline:
                    raise FetchTransient(f"{url}: took longer than the feed's total time limit")
        except requests.exceptions.ChunkedEncodingError as exc:
            raise FetchTransient(f"{url}: body cut short ({_short(exc)})") from exc
        except requests.exceptions.ContentDecodingError as exc:
            raise FetchPermanent(f"{url}: body could not be decompressed ({_short(exc)})") from exc
        except requests.exceptions.ConnectionError as exc:
            raise FetchTransient(f"{url}: connection lost while reading ({_short(exc)})") from exc
        except (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError) as exc:
            raise FetchTransient(f"{url}: timed out while reading") from exc
        if self._clock() > deadline:
            raise FetchTransient(f"{url}: took longer than the feed's total time limit")
        body = b"".join(chunks)
        if declared and declared.isdigit() and not headers.get("Content-Encoding") and len(body) < int(declared):
            raise FetchTransient(f"{url}: body cut short ({len(body)} of {declared} bytes)")
        result.body = body
        result.elapsed = self._clock() - started
        return result

    @staticmethod
    def _check_type(content_type: str, fmt: str, url: str) -> None:
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime in GENERIC_TYPES:
            return
        acceptable = ACCEPTABLE_TYPES.get(fmt, ())
        if any(mime == a or (a.startswith("+") and mime.endswith(a)) for a in acceptable):
            return
        raise FetchPermanent(f"{url}: content type {mime!r} cannot be a {fmt} feed (a login or error page?)")


def _max_age(cache_control: str) -> int | None:
    for part in cache_control.lower().split(","):
        name, _, value = part.strip().partition("=")
        if name == "no-store" or name == "no-cache":
            return None
        if name == "max-age" and value.strip().isdigit():
            return int(value.strip())
    return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "…"


def credentials_header(header: str, env_value: str | None, scheme: str) -> dict[str, str]:
    if not env_value:
        return {}
    return {header: f"{scheme} {env_value}".strip()}


# --------------------------------------------------------------------------------------------------
# A partner's side of a push (`centers push`): our own API, so none of the feed checks above apply.


@dataclass
class Answer:
    status: int
    body: bytes
    reason: str = ""


def exchange(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
    session: requests.Session | None = None,
) -> Answer:
    """One request to the service's own API; raises FetchTransient naming the error when it cannot be reached."""
    try:
        resp = (session or requests).request(method, url, data=body, headers=dict(headers or {}), timeout=timeout)
    except requests.RequestException as exc:
        raise FetchTransient(exc.__class__.__name__) from None
    return Answer(resp.status_code, resp.content, resp.reason or "")
