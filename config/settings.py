"""Settings: the environment, read once, cast strictly. A wrong value fails at start naming the key.

Every setting, its default and meaning is listed in ``SETTINGS`` (the README's table is this list).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aggregator.errors import ConfigError
from config.secret import MASK, Secret


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number (0 for any free port)")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _csv_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _tokens(text: str) -> tuple[tuple[str, Secret], ...]:
    """'alice:t0k3n, t0k3n2' -> (("alice", Secret("t0k3n")), ("operator", Secret("t0k3n2"))); tokens of 16+
    characters."""
    out = []
    for part in _csv_list(text):
        name, sep, token = part.partition(":")
        if not sep:
            name, token = "operator", part
        if len(token) < 16:
            raise ValueError("each operator token must be at least 16 characters")
        out.append((name.strip() or "operator", Secret(token.strip())))
    return tuple(out)


def redact_url(url: str) -> str:
    """A URL fit to show: its password (redis://:pw@host, redis://user:pw@host) masked."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:{MASK}@{host}").geturl()


#: geocoder options whose values are credentials (api_key, token, client_secret, password, ...)
_SECRET_OPTION = ("key", "token", "secret", "password", "credential")


def _shown(name: str, value: Any) -> Any:
    """A setting's value as ``repr(Settings)`` shows it: secrets masked, URL passwords masked."""
    if name in ("redis_url", "broker_url"):
        return redact_url(value)
    if name == "geocoder_options":
        return {k: MASK if any(w in k.lower() for w in _SECRET_OPTION) else v for k, v in value.items()}
    return value


#: settings whose text may hold a secret: an error about them never quotes it
_SECRET_SETTINGS = frozenset({"operator_tokens", "geocoder_options", "redis_url", "broker_url"})


def _invalid(name: str, env: str, raw: object, exc: Exception) -> str:
    """The error for a setting that cannot be read: its text and the reason, except for a setting that may hold
    a secret (tokens, API keys, a URL's password), where only a URL's form with its password masked is shown."""
    if name not in _SECRET_SETTINGS:
        return f"setting {env}={raw!r}: {exc}"
    if name in ("redis_url", "broker_url") and isinstance(raw, str):
        return f"setting {env}={redact_url(raw)!r} cannot be read as a URL"
    return f"setting {env} cannot be read ({type(exc).__name__}; not quoted here: it holds secrets). Expected: " + (
        "'name:token, name:token' with tokens of 16 characters or more"
        if name == "operator_tokens"
        else "a JSON object of geocoder options"
    )


@dataclass(frozen=True)
class TrustedProxies:
    """Which proxies in front of the API may say who the client is (CENTERS_TRUST_PROXY).

    ``hops``: that many proxies of ours each append the address they saw to X-Forwarded-For, so the
    client is the hops-th entry from the right (entries further left are the client's own claims).
    ``networks``: addresses of our proxies; walking X-Forwarded-For from the right, starting at the
    connecting peer, the first address that is not one of them is the client. With neither, the
    connecting peer is the client and X-Forwarded-For is ignored."""

    hops: int = 0
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.hops or self.networks)

    def _trusted(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in n for n in self.networks)

    def client(self, peer: str, forwarded: str) -> str:
        """The client's address; never a value the client alone chose (a malformed entry: the peer)."""
        entries = [e.strip() for e in forwarded.split(",")] if forwarded else []
        if self.hops:
            if len(entries) < self.hops:
                return peer  # our proxies always add their entry: this header did not pass through them
            candidate = entries[-self.hops]
        elif self.networks:
            if not self._trusted(peer):
                return peer
            candidate = peer
            for entry in reversed(entries):
                candidate = entry
                if not self._trusted(entry):
                    break
        else:
            return peer
        return candidate if _ip(candidate) is not None else peer


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _proxies(text: str) -> TrustedProxies:
    t = text.strip().lower()
    if t in ("", "0", "false", "no", "off"):
        return TrustedProxies()
    if t in ("true", "yes", "on"):
        return TrustedProxies(hops=1)
    if t.isascii() and t.isdigit():
        hops = int(t)
        if hops > 10:
            raise ValueError("at most 10 proxy hops")
        return TrustedProxies(hops=hops)
    networks = []
    for part in _csv_list(text):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"{part!r} is not an address or network ({exc}); use false, a hop count, "
                "or proxy addresses such as 10.0.0.5,10.1.0.0/16"
            ) from None
    return TrustedProxies(networks=tuple(networks))


def _scheme(text: str) -> str:
    if text not in ("http", "https"):
        raise ValueError("must be http or https")
    return text


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text or "{}")
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


def _redis_url(text: str) -> str:
    if text and not text.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://", "sentinel://")):
        raise ValueError("must start with redis://, rediss://, unix:// or redis+sentinel://")
    return text


def _use_cache_folder(env: Mapping[str, str]) -> None:
    """The ZIP table's folder, $XDG_CACHE_HOME/centers when that is an absolute path, told to geography (the
    core reads no environment; its default is ~/.cache/centers)."""
    base = env.get("XDG_CACHE_HOME") or ""
    if os.path.isabs(base):
        from aggregator import geography

        geography.use_cache_folder(Path(base) / "centers")


#: the User-Agent sent to partner feeds and the geocoder unless CENTERS_USER_AGENT names the deployment
DEFAULT_USER_AGENT = "center-availability/0.1 (helpline capacity aggregator)"


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    cast: Callable[[str], Any]
    help: str


SETTINGS: dict[str, Setting] = {
    "redis_url": Setting(
        "REDIS_URL", "", _redis_url, "Redis for data, queue and caches. Empty: `centers` starts its own redis-server."
    ),
    "broker_url": Setting(
        "CENTERS_BROKER_URL",
        "",
        _redis_url,
        "Celery broker. Empty: REDIS_URL's server, database 1 (data stays in its own).",
    ),
    "data_dir": Setting("CENTERS_DATA_DIR", "var", str, "Folder for the embedded Redis's data and append-only file."),
    "key_prefix": Setting("CENTERS_KEY_PREFIX", "cav:", str, "Prefix of every Redis key the service writes."),
    "feeds_file": Setting(
        "CENTERS_FEEDS_FILE", "", str, "Partner registry (TOML). Empty: config/feeds.toml if present, else the demo."
    ),
    "helpline": Setting("CENTERS_HELPLINE", "1-800-662-4357", str, "Phone number offered when a search finds nothing."),
    "user_agent": Setting(
        "CENTERS_USER_AGENT",
        DEFAULT_USER_AGENT,
        str,
        "User-Agent sent to partner feeds and the geocoder (identify your deployment).",
    ),
    "operator_tokens": Setting(
        "CENTERS_OPERATOR_TOKENS",
        "",
        _tokens,
        "Operator bearer tokens, comma-separated, each 'name:token' (name shown in "
        "reports) or a bare token. Empty: operator endpoints refuse everyone.",
    ),
    "cors_origins": Setting(
        "CENTERS_CORS_ORIGINS",
        "",
        _csv_list,
        "Origins allowed to call the public API from a browser, comma-separated ('*' for any).",
    ),
    "rate_limit": Setting(
        "CENTERS_RATE_LIMIT", "120", _positive_int, "Public requests per client per minute before 429."
    ),
    "trust_proxy": Setting(
        "CENTERS_TRUST_PROXY",
        "false",
        _proxies,
        "Proxies allowed to name the client in X-Forwarded-For: false (none), a number of "
        "hops (true = 1), or your proxies' addresses/networks, comma-separated.",
    ),
    "push_rate_limit": Setting(
        "CENTERS_PUSH_RATE_LIMIT", "600", _positive_int, "Pushes per partner feed per minute before 429."
    ),
    "push_max_bytes": Setting("CENTERS_PUSH_MAX_BYTES", "5000000", _positive_int, "Largest push body (413 above)."),
    "public_max_age": Setting(
        "CENTERS_PUBLIC_MAX_AGE",
        "10",
        _positive_int,
        "Cache-Control max-age, seconds, of public search answers (at most: never past the moment a figure shown "
        "turns stale).",
    ),
    "api_host": Setting("CENTERS_API_HOST", "127.0.0.1", str, "Address `centers serve` binds the HTTP API to."),
    "api_port": Setting("CENTERS_API_PORT", "8000", _port, "Port of the HTTP API (0: a free port)."),
    "sweep_seconds": Setting(
        "CENTERS_SWEEP_SECONDS",
        "15",
        _positive_float,
        "How often every worker and `centers serve` look for accepted pushes and due runs nobody finished.",
    ),
    "stranded_seconds": Setting(
        "CENTERS_STRANDED_SECONDS",
        "30",
        _positive_float,
        "A push still queued or processing this long after it was last queued or "
        "started is queued again; so is a run that started this long ago, never "
        "finished and holds no lock.",
    ),
    "lock_lease_seconds": Setting(
        "CENTERS_LOCK_LEASE_SECONDS",
        "60",
        _positive_float,
        "Lease of a feed run's lock, renewed while the run lives: a run killed "
        "with its worker or by a Redis restart frees its feed within it.",
    ),
    "geocoder": Setting(
        "CENTERS_GEOCODER",
        "nominatim",
        str,
        "geopy geocoder name (nominatim, photon, pelias, ...); 'none': ZIP centroids only.",
    ),
    "geocoder_domain": Setting(
        "CENTERS_GEOCODER_DOMAIN",
        "nominatim.openstreetmap.org",
        str,
        "Geocoder host (a self-hosted Nominatim, e.g. nominatim.internal:8080).",
    ),
    "geocoder_scheme": Setting("CENTERS_GEOCODER_SCHEME", "https", _scheme, "http or https."),
    "geocoder_timeout": Setting("CENTERS_GEOCODER_TIMEOUT", "5", _positive_float, "Seconds per request."),
    "geocoder_min_interval": Setting(
        "CENTERS_GEOCODER_MIN_INTERVAL",
        "1.0",
        _positive_float,
        "Seconds between geocoder requests across all processes (public Nominatim allows 1 per second).",
    ),
    "geocoder_max_per_run": Setting(
        "CENTERS_GEOCODER_MAX_PER_RUN",
        "200",
        _positive_int,
        "Geocoder requests one feed run may make; the rest are queued.",
    ),
    "geocoder_options": Setting(
        "CENTERS_GEOCODER_OPTIONS",
        "{}",
        _json_object,
        "JSON object of extra keyword arguments for the geopy geocoder (api_key ...).",
    ),
}


@dataclass(frozen=True, repr=False)
class Settings:
    redis_url: str = ""
    broker_url: str = ""
    data_dir: str = "var"
    key_prefix: str = "cav:"
    feeds_file: str = ""
    helpline: str = "1-800-662-4357"
    user_agent: str = DEFAULT_USER_AGENT
    operator_tokens: tuple[tuple[str, Secret], ...] = ()
    cors_origins: tuple[str, ...] = ()
    rate_limit: int = 120
    trust_proxy: TrustedProxies = field(default_factory=TrustedProxies)
    push_rate_limit: int = 600
    push_max_bytes: int = 5_000_000
    public_max_age: int = 10
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    sweep_seconds: float = 15.0
    stranded_seconds: float = 30.0
    lock_lease_seconds: float = 60.0
    geocoder: str = "nominatim"
    geocoder_domain: str = "nominatim.openstreetmap.org"
    geocoder_scheme: str = "https"
    geocoder_timeout: float = 5.0
    geocoder_min_interval: float = 1.0
    geocoder_max_per_run: int = 200
    geocoder_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            spec = SETTINGS[f.name]
            raw = env.get(spec.env, spec.default)
            try:
                values[f.name] = spec.cast(raw)
            except (ValueError, TypeError) as exc:
                raise ConfigError(_invalid(f.name, spec.env, raw, exc)) from None
        _use_cache_folder(env)
        return cls(**values)

    def __post_init__(self) -> None:
        # tokens given as text (a test, a tool) are kept as Secrets like the environment's
        tokens = tuple((name, t if isinstance(t, Secret) else Secret(t)) for name, t in self.operator_tokens)
        object.__setattr__(self, "operator_tokens", tokens)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={_shown(f.name, getattr(self, f.name))!r}" for f in fields(self))
        return f"Settings({shown})"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def broker(self) -> str:
        """The broker URL: CENTERS_BROKER_URL, else database 1 of REDIS_URL's server."""
        if self.broker_url:
            return self.broker_url
        if not self.redis_url:
            raise ConfigError("setting REDIS_URL is required to run workers (`centers serve` starts its own)")
        base, _, db = self.redis_url.rpartition("/")
        if base.endswith(("redis:/", "rediss:/")) or not db.isdigit():
            return self.redis_url.rstrip("/") + "/1"
        return f"{base}/{int(db) + 1}"

    def registry_path(self) -> Path | None:
        """The partner registry: CENTERS_FEEDS_FILE, else config/feeds.toml when present."""
        if self.feeds_file:
            return Path(self.feeds_file)
        default = Path("config") / "feeds.toml"
        return default if default.exists() else None
