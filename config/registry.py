"""The partner registry: one ``[[feed]]`` table per partner feed, in TOML.

Onboarding a partner in a known format is configuration only. Every key is checked at start; an
error names the feed and the key. Secrets are never in the file, only the names of the environment
variables that hold them. See ``config/feeds.example.toml`` for every key with an example.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aggregator.errors import ConfigError, ParseError
from aggregator.feeds.mapping import (
    AVAILABILITY_FIELDS,
    DEFAULT_NULL_VALUES,
    RECORD_FIELDS,
    SPLIT_FIELDS,
    AvailabilityMapping,
    RecordMapping,
)
from aggregator.model import LevelOfCare, Payment, Population, Source

if TYPE_CHECKING:
    from config.settings import Settings

FORMATS = ("csv", "json", "html", "hsds", "smart", "push")
DEFAULT_SOURCE = {"html": Source.SCRAPE, "push": Source.PUSH}
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)\s*$", re.I)
_VOCAB = {"levels_of_care": LevelOfCare, "payment": Payment, "populations": Population}


@dataclass(frozen=True)
class Credentials:
    """An HTTP header whose value comes from an environment variable (never the file)."""

    header: str
    env: str
    scheme: str = ""


@dataclass(frozen=True)
class PushAuth:
    """How a partner authenticates pushes: HMAC secrets and/or bearer keys, by env var name.

    Two names may be listed for rotation; any of them verifies."""

    hmac_secret_env: tuple[str, ...] = ()
    bearer_key_env: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedConfig:
    id: str
    partner: str
    format: str
    url: str = ""
    schedule_seconds: int = 900
    freshness_seconds: int = 86400
    timezone: str = "UTC"
    source: Source = Source.PULL
    credentials: Credentials | None = None
    push: PushAuth | None = None
    parser: str = ""
    mapping: RecordMapping = field(default_factory=RecordMapping)
    #: the non-public networks this feed may reach (``allow_private``): () none; true gives
    #: ``aggregator.fetch.PRIVATE_RANGES``; link-local, metadata and CGNAT only when listed
    allow_private: tuple[str, ...] = ()
    max_bytes: int = 20_000_000
    max_pages: int = 50
    timeout_seconds: float = 30.0
    quarantine_share: float = 0.3
    #: a run accepting less than this share of its records fails (the last good data stays)
    min_accepted_share: float = 0.5
    #: rank of this feed's word on a facility's identity (name, address, website): higher wins
    authority: int = 0
    max_report_age_seconds: int | None = None
    limited_threshold: int = 2
    default_state: str | None = None
    enabled: bool = True

    @property
    def pulled(self) -> bool:
        return self.format != "push"


@dataclass(frozen=True)
class Registry:
    feeds: tuple[FeedConfig, ...]
    path: str = ""

    def get(self, feed_id: str) -> FeedConfig:
        for f in self.feeds:
            if f.id == feed_id:
                return f
        raise KeyError(feed_id)

    def __contains__(self, feed_id: object) -> bool:
        return any(f.id == feed_id for f in self.feeds)

    @property
    def pulled(self) -> tuple[FeedConfig, ...]:
        return tuple(f for f in self.feeds if f.pulled and f.enabled)


def duration(text: object, where: str) -> int:
    """'30s', '5m', '2h', '1d' (or a number of seconds) -> seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool) and text > 0:
        return int(text)
    m = _DURATION.match(str(text))
    if not m:
        raise ConfigError(f"{where}: {text!r} is not a duration such as '30s', '15m', '2h' or '1d'")
    seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{where}: must be positive")
    return int(seconds)


def size(text: object, where: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ConfigError(f"{where}: {text!r} is not a size such as '10MB'")
    return int(float(m.group(1)) * {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}[m.group(2).lower()])


class _Table:
    """A TOML table read strictly: every key used is checked, unknown keys are errors."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: must be a table")
        self.data = dict(data)
        self.where = where
        self.used: set[str] = set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.where}: key '{key}' is required")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            names = " or ".join(k.__name__ for k in _as_tuple(kind))
            raise ConfigError(f"{self.where}: key '{key}' must be {names}, not {type(value).__name__}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self.where}: unknown key '{unknown[0]}'")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _str_map(data: Any, where: str, allowed: frozenset[str] | None = None) -> dict[str, str]:
    t = _Table(data, where)
    out: dict[str, str] = {}
    for key in list(t.data):
        if allowed is not None and key not in allowed:
            raise ConfigError(f"{where}: unknown field '{key}' (known: {', '.join(sorted(allowed))})")
        out[key] = t.get(key, str)
    return out


def _availability(data: Any, where: str) -> AvailabilityMapping:
    t = _Table(data, where)
    fields = _str_map(t.get("fields", dict, {}), f"{where}.fields", AVAILABILITY_FIELDS)
    constants = _str_map(t.get("constants", dict, {}), f"{where}.constants", AVAILABILITY_FIELDS)
    t.done()
    if not fields and not constants:
        raise ConfigError(f"{where}: needs 'fields' or 'constants'")
    return AvailabilityMapping(fields=fields, constants=constants)


def _is_state_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) and len(x) == 2 and x.isupper() for x in v)


#: the options each format reads, and how to check a value: (test, what it must be)
OPTIONS: dict[str, dict[str, tuple[Any, str]]] = {
    "csv": {"delimiter": (lambda v: isinstance(v, str) and len(v) == 1, "one character")},
    "json": {"ndjson": (lambda v: isinstance(v, bool), "true or false")},
    "html": {
        "encoding": (lambda v: isinstance(v, str) and v, "an encoding name"),
        "rowspan": (lambda v: v == "carry", '"carry" (continuation rows join the row they continue)'),
        "skip_rows": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a whole number >= 0"),
    },
    "hsds": {},
    "smart": {
        "rebase": (lambda v: isinstance(v, bool), "true or false"),
        "states": (_is_state_list, 'a list of 2-letter state codes, e.g. ["MA"]'),
        "level_of_care": (
            lambda v: v in LevelOfCare._value2member_map_,
            f"one of {', '.join(m.value for m in LevelOfCare)}",
        ),
    },
}


def _check_options(fmt: str, options: Mapping[str, Any], where: str) -> None:
    known = OPTIONS.get(fmt, {})
    for key, value in options.items():
        if key not in known:
            names = ", ".join(known) or "none"
            raise ConfigError(f"{where}: option '{key}' is not read by format '{fmt}' (its options: {names})")
        test, what = known[key]
        if not test(value):
            raise ConfigError(f"{where}: option '{key}' must be {what}, not {value!r}")


def _fields(data: Any, where: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """``name = "Column"`` or ``name = { from = "Column", split = "/" }`` (split: one or a list of separators)."""
    t = _Table(data, where)
    fields: dict[str, str] = {}
    splits: dict[str, tuple[str, ...]] = {}
    for key in list(t.data):
        if key not in RECORD_FIELDS:
            raise ConfigError(f"{where}: unknown field '{key}' (known: {', '.join(sorted(RECORD_FIELDS))})")
        value = t.get(key, (str, dict))
        if isinstance(value, str):
            fields[key] = value
            continue
        ft = _Table(value, f"{where}.{key}")
        unknown = sorted(set(ft.data) - {"from", "split"})
        if unknown:
            raise ConfigError(f"{where}.{key}: unknown key '{unknown[0]}' (a field table has 'from' and 'split')")
        fields[key] = ft.get("from", str, required=True)
        split = ft.get("split", (str, list), required=True)
        separators = (split,) if isinstance(split, str) else tuple(split)
        if not separators or not all(isinstance(x, str) and x for x in separators):
            raise ConfigError(f"{where}.{key}: key 'split' must be a separator such as \"/\" or a list of them")
        if key not in SPLIT_FIELDS:
            raise ConfigError(
                f"{where}.{key}: only list and phone fields can be split ({', '.join(sorted(SPLIT_FIELDS))})"
            )
        ft.done()
        splits[key] = separators
    return fields, splits


def _mapping(data: Any, where: str) -> RecordMapping:
    t = _Table(data, where)
    fields, splits = _fields(t.get("fields", dict, {}), f"{where}.fields")
    constants_t = _Table(t.get("constants", dict, {}), f"{where}.constants")
    constants: dict[str, Any] = {}
    for key in list(constants_t.data):
        if key not in RECORD_FIELDS:
            raise ConfigError(f"{where}.constants: unknown field '{key}'")
        constants[key] = constants_t.get(key, (str, list))
    id_from = t.get("id_from", list, [])
    if not all(isinstance(x, str) for x in id_from):
        raise ConfigError(f"{where}: key 'id_from' must be a list of strings")
    availability = tuple(
        _availability(a, f"{where}.availability[{i}]") for i, a in enumerate(t.get("availability", list, []))
    )
    item = t.get("availability_list", dict)
    availability_list, availability_item = "", None
    if item is not None:
        it = _Table(item, f"{where}.availability_list")
        availability_list = it.get("path", str, required=True)
        availability_item = _availability(
            {"fields": it.get("fields", dict, {}), "constants": it.get("constants", dict, {})},
            f"{where}.availability_list",
        )
        it.done()
    value_maps: dict[str, dict[str, tuple[str, ...]]] = {}
    vm = _Table(t.get("value_maps", dict, {}), f"{where}.value_maps")
    for group in list(vm.data):
        if group not in _VOCAB:
            raise ConfigError(f"{where}.value_maps: unknown group '{group}' (known: {', '.join(_VOCAB)})")
        entries = _Table(vm.get(group, dict), f"{where}.value_maps.{group}")
        value_maps[group] = {}
        for term in list(entries.data):
            values = entries.get(term, (str, list))
            values = [values] if isinstance(values, str) else values
            for v in values:
                if v not in _VOCAB[group]._value2member_map_:
                    raise ConfigError(f"{where}.value_maps.{group}: '{term}' maps to unknown value '{v}'")
            value_maps[group][term] = tuple(values)
    identifiers = _str_map(t.get("identifiers", dict, {}), f"{where}.identifiers")
    for system in identifiers:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,39}", system):
            raise ConfigError(
                f"{where}.identifiers: system {system!r} must be a short lower-case name, e.g. samhsa, npi, license-ma"
            )
    options = t.get("options", dict, {})
    null_values = t.get("null_values", list, list(DEFAULT_NULL_VALUES))
    if not all(isinstance(x, str) for x in null_values):
        raise ConfigError(f'{where}: key \'null_values\' must be a list of strings, e.g. ["NA", "-"]')
    mapping = RecordMapping(
        records=t.get("records", str, ""),
        fields=fields,
        constants=constants,
        id_from=tuple(id_from),
        availability=availability,
        availability_list=availability_list,
        availability_item=availability_item,
        value_maps=value_maps,
        splits=splits,
        identifiers=identifiers,
        null_values=tuple(null_values),
        next_page=t.get("next_page", str, ""),
        options=dict(options),
    )
    t.done()
    return mapping


def _feed(data: Any, index: int, known_parsers: frozenset[str]) -> FeedConfig:
    raw_id = data.get("id") if isinstance(data, Mapping) else None
    where = f"feed '{raw_id}'" if isinstance(raw_id, str) else f"feed #{index + 1}"
    t = _Table(data, where)
    feed_id = t.get("id", str, required=True)
    if not _ID.match(feed_id):
        raise ConfigError(f"{where}: key 'id' must be 1-64 of a-z 0-9 _ . - (it is part of every center id)")
    fmt = t.get("format", str, required=True)
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: key 'format' must be one of {', '.join(FORMATS)}, not {fmt!r}")
    url = t.get("url", str, "")
    allow_private = _allowance(t.get("allow_private", (bool, list), False), f"{where}: key 'allow_private'")
    if fmt != "push":
        if not url:
            raise ConfigError(f"{where}: key 'url' is required for format '{fmt}'")
        _check_url(url, f"{where}: key 'url'", allow_private)
    tz = t.get("timezone", str, "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: key 'timezone' {tz!r} is not an IANA time zone") from None
    source_text = t.get("source", str, DEFAULT_SOURCE.get(fmt, Source.PULL).value)
    if source_text not in Source._value2member_map_ or source_text == Source.OPERATOR:
        raise ConfigError(f"{where}: key 'source' must be pull, scrape or push")
    creds = t.get("credentials", dict)
    credentials = None
    if creds is not None:
        ct = _Table(creds, f"{where}.credentials")
        credentials = Credentials(
            ct.get("header", str, "Authorization"), ct.get("env", str, required=True), ct.get("scheme", str, "")
        )
        ct.done()
    push = None
    push_t = t.get("push", dict)
    if fmt == "push":
        pt = _Table(push_t or {}, f"{where}.push")
        push = PushAuth(tuple(pt.get("hmac_secret_env", list, [])), tuple(pt.get("bearer_key_env", list, [])))
        pt.done()
        if not push.hmac_secret_env and not push.bearer_key_env:
            raise ConfigError(f"{where}.push: needs 'hmac_secret_env' or 'bearer_key_env' (env var names)")
    elif push_t is not None:
        raise ConfigError(f"{where}: key 'push' is only for format 'push'")
    parser = t.get("parser", str, "")
    if parser and parser not in known_parsers:
        known = ", ".join(sorted(known_parsers))
        raise ConfigError(f"{where}: key 'parser' {parser!r} is not a known parser ({known})")
    share = t.get("quarantine_share", (int, float), 0.3)
    if not 0 < share <= 1:
        raise ConfigError(f"{where}: key 'quarantine_share' must be within (0, 1]")
    min_share = t.get("min_accepted_share", (int, float), 0.5)
    if not 0 <= min_share <= 1:
        raise ConfigError(f"{where}: key 'min_accepted_share' must be within [0, 1]")
    max_age = t.get("max_report_age", (str, int))
    config = FeedConfig(
        id=feed_id,
        partner=t.get("partner", str, feed_id),
        format=fmt,
        url=url,
        schedule_seconds=duration(t.get("schedule", (str, int), "15m"), f"{where}: key 'schedule'"),
        freshness_seconds=duration(t.get("freshness", (str, int), "24h"), f"{where}: key 'freshness'"),
        timezone=tz,
        source=Source(source_text),
        credentials=credentials,
        push=push,
        parser=parser,
        mapping=(mapping := _mapping(t.get("mapping", dict, {}), f"{where}.mapping")),
        allow_private=allow_private,
        max_bytes=size(t.get("max_bytes", (str, int), "20MB"), f"{where}: key 'max_bytes'"),
        max_pages=t.get("max_pages", int, 50),
        timeout_seconds=float(t.get("timeout", (int, float), 30)),
        quarantine_share=float(share),
        min_accepted_share=float(min_share),
        authority=t.get("authority", int, 0),
        max_report_age_seconds=duration(max_age, f"{where}: key 'max_report_age'") if max_age else None,
        limited_threshold=t.get("limited_threshold", int, 2),
        default_state=t.get("default_state", str),
        enabled=t.get("enabled", bool, True),
    )
    t.done()
    if not parser:
        _check_options(fmt, mapping.options, f"{where}.mapping.options")
    if fmt in ("json", "push") and not parser:
        _check_references(mapping, f"{where}.mapping")
    if config.freshness_seconds < 60:
        raise ConfigError(f"{where}: key 'freshness' must be at least 1 minute")
    if fmt in ("csv", "json", "html", "push") and not parser and not config.mapping.fields:
        raise ConfigError(f"{where}: key 'mapping.fields' is required for format '{fmt}' (or a 'parser')")
    return config


def _check_references(mapping: RecordMapping, where: str) -> None:
    """Every JSON reference must be a JMESPath expression (or an older dotted path), checked at start."""
    from aggregator.feeds.json import expression

    refs = [(f"fields.{k}", v) for k, v in mapping.fields.items()]
    refs += [
        (f"availability[{i}].fields.{k}", v) for i, m in enumerate(mapping.availability) for k, v in m.fields.items()
    ]
    if mapping.availability_list:
        refs.append(("availability_list.path", mapping.availability_list))
    if mapping.availability_item is not None:
        refs += [(f"availability_list.fields.{k}", v) for k, v in mapping.availability_item.fields.items()]
    refs += [("id_from", v) for v in mapping.id_from]
    refs += [(f"identifiers.{k}", v) for k, v in mapping.identifiers.items()]
    if mapping.next_page:
        refs.append(("next_page", mapping.next_page))
    for key, ref in refs:
        try:
            expression(ref)
        except ParseError as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None


def _allowance(value: bool | list[Any], where: str) -> tuple[str, ...]:
    """``allow_private``: true (loopback and the private ranges), false, or a list of networks."""
    from aggregator.fetch import PRIVATE_RANGES

    if value is True:
        return PRIVATE_RANGES
    if value is False:
        return ()
    out = []
    for item in value:
        try:
            out.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            raise ConfigError(f"{where}: {item!r} is not an address or network such as '10.1.2.0/24'") from None
    return tuple(out)


def _check_url(url: str, where: str, allow_private: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where} must be http(s), not {parts.scheme or 'empty'!r}")
    if parts.username or parts.password:
        raise ConfigError(f"{where} must not carry a user name or password (use 'credentials')")
    host = parts.hostname or ""
    if not host:
        raise ConfigError(f"{where} has no host")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return
    if not ip.is_global and not any(ip in ipaddress.ip_network(n) for n in allow_private):
        raise ConfigError(
            f"{where} points at a private or loopback address that allow_private does not list "
            "(true allows loopback and private ranges; name others, e.g. ['100.64.0.0/10'])"
        )


def load_or_empty(path: str | Path | None) -> Registry:
    """The registry at ``path``, or the empty registry when there is none: how every process loads it
    (``for_settings``; `centers` commands choose the path first, then call this)."""
    return load(path) if path is not None else Registry(())


def for_settings(settings: Settings) -> Registry:
    """The configured registry: CENTERS_FEEDS_FILE, else config/feeds.toml when present, else empty."""
    return load_or_empty(settings.registry_path())


def load(path: str | Path, known_parsers: frozenset[str] | None = None) -> Registry:
    """Read and validate a registry file. Raises ConfigError naming the feed and the key."""
    from aggregator.feeds import PARSERS

    known = known_parsers if known_parsers is not None else frozenset(PARSERS)
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"partner registry {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"partner registry {p}: {exc}") from None
    return parse(data, str(p), known)


def parse(data: Mapping[str, Any], path: str = "", known_parsers: frozenset[str] = frozenset()) -> Registry:
    unknown = sorted(set(data) - {"feed"})
    if unknown:
        raise ConfigError(f"partner registry {path}: unknown top-level key '{unknown[0]}' (use [[feed]])")
    feeds_raw = data.get("feed", [])
    if not isinstance(feeds_raw, list):
        raise ConfigError(f"partner registry {path}: 'feed' must be an array of tables ([[feed]])")
    feeds = [_feed(f, i, known_parsers) for i, f in enumerate(feeds_raw)]
    seen: set[str] = set()
    for f in feeds:
        if f.id in seen:
            raise ConfigError(f"feed '{f.id}': key 'id' is used by another feed")
        seen.add(f.id)
    return Registry(tuple(feeds), path)
