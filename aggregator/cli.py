"""The ``centers`` command: run the service, search, watch feeds, run one now, check configuration,
record a phone report.

Errors are one readable line and a non-zero exit code, never a traceback.

Commands find a running ``centers serve`` wherever they are run (its service file, see local/runtime.py) and
use its Redis and registry; with none running they start a private Redis for their own duration, and
say so on stderr. Heavy modules (the store, the lookup, pydantic models) are imported inside the
commands that need them, so ``centers --help`` and a search stay quick.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from aggregator.errors import AggregatorError, ConfigError, InvalidQuery
from config.settings import SETTINGS, Settings

if TYPE_CHECKING:
    from aggregator import lookup
    from aggregator.ingest import IngestReport
    from aggregator.local.runtime import Service
    from aggregator.store import Store
    from config.registry import Registry

#: lookup.DEFAULT_RADIUS_MI and lookup.DEFAULT_LIMIT, here so that `--help` needs no lookup (a test
#: checks they agree)
DEFAULT_RADIUS_MI = 25.0
DEFAULT_LIMIT = 10

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except BrokenPipeError:  # `centers feeds | head`: the reader left; nothing to say
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(0) from None
        except (AggregatorError, RuntimeError, FileNotFoundError, OSError, KeyError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise click.ClickException(text) from None

    return wrapper  # type: ignore[return-value]


#: the running `centers serve` a command found (runtime.for_cli), per process
_FOUND: dict[str, Service | None] = {}


def cli_settings() -> Settings:
    """The environment's settings, completed from a running `centers serve` when one is found (its Redis,
    data folder, registry, key prefix), with the data folder made absolute."""
    from aggregator.local.runtime import for_cli

    settings, _FOUND["service"] = for_cli(Settings.from_env())
    return settings


def private_store_notice(folder: Path) -> None:
    click.echo(
        f"centers: no running `centers serve` found: using a private Redis with the data in {folder} "
        "(start `centers serve`, or set REDIS_URL or CENTERS_DATA_DIR)",
        err=True,
    )


@contextlib.contextmanager
def _no_pydantic_plugins() -> Iterator[None]:
    """Import the models without pydantic's plugin search: building the first model reads the entry points
    of every installed package (about 0.08 s of a search); this project uses no pydantic plugin. A
    PYDANTIC_DISABLE_PLUGINS the user set is left as it is."""
    if "PYDANTIC_DISABLE_PLUGINS" in os.environ:
        yield
        return
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    try:
        yield
    finally:
        os.environ.pop("PYDANTIC_DISABLE_PLUGINS", None)


def _freeze_heap() -> None:
    """The heavy imports are done: exempt what they built from the garbage collector, which would otherwise
    walk it all again at exit (about 0.1 s of a search). Only in a `centers` process of its own (the
    console script or ``python -m aggregator.cli``), never inside a test runner."""
    import gc

    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if Path(sys.argv[0]).name == "centers" or getattr(spec, "name", None) == "aggregator.cli":
        gc.freeze()


@contextlib.contextmanager
def open_store(settings: Settings) -> Iterator[Store]:
    from aggregator.local.runtime import redis_url

    with _no_pydantic_plugins():
        from aggregator.store import Store
    _freeze_heap()
    with redis_url(settings, notice=private_store_notice) as url:
        store = Store.from_url(url, settings.key_prefix)
        try:
            yield store
        finally:
            store.redis.connection_pool.disconnect()


def load_registry(settings: Settings) -> Registry:
    from config import registry as registry_module

    path = settings.registry_path() if settings.feeds_file or _FOUND.get("service") is None else None
    if path is None:
        demo = settings.data_path / "demo" / "feeds.toml"
        path = demo if demo.exists() else None
    return registry_module.load_or_empty(path)


def ensure_data(store: Store, now: datetime, echo: Callable[[str], None]) -> None:
    """With nothing loaded yet, load the SAMHSA list where present, else the bundled sample. Never into a
    running `centers serve`'s Redis: its data is its feeds' (a service just started has not fetched yet)."""
    if _FOUND.get("service") is not None or store.feed_ids():
        return
    from aggregator.local import sample

    path = sample.shared_samhsa_file()
    if path is not None:
        echo(f"No data yet: loading SAMHSA facilities from {path} ...")
        report = sample.load_samhsa(store, path, now)
    else:
        echo("No data yet: loading the bundled sample (fictional centers, 555-01xx numbers) ...")
        report = sample.load_bundled_sample(store, now)
    echo(f"Loaded {report.accepted} centers ({report.rejected} rejected).")


def write_json(data: Any) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


@click.group()
def main() -> None:
    """Treatment center availability: which centers near here can take someone right now?"""


# ----------------------------------------------------------------------------------------- serve


@main.command()
@click.option("--demo/--no-demo", default=None, help="Run the demo partners (default: when no registry is set).")
@click.option("--host", default=None, help="Address for the HTTP API (default CENTERS_API_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port for the HTTP API (default CENTERS_API_PORT, 8000).")
@click.option("--concurrency", type=int, default=2, show_default=True, help="Worker processes.")
@friendly_errors
def serve(demo: bool | None, host: str | None, port: int | None, concurrency: int) -> None:
    """Run everything: Redis (unless REDIS_URL is set), a worker with its schedule, and the HTTP API."""
    from aggregator.local.serve import serve as run

    settings = Settings.from_env()
    run(
        settings,
        demo=demo,
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        echo=click.echo,
        concurrency=concurrency,
    )


# ------------------------------------------------------------------------------------------ near


@main.command()
@click.argument("place")
@click.option("--radius", "radius_mi", type=float, default=DEFAULT_RADIUS_MI, show_default=True, help="Miles.")
@click.option("--level-of-care", "levels", multiple=True, help="detox, residential, otp, ... (repeatable)")
@click.option("--payment", multiple=True, help="medicaid, private, sliding_scale, ... (repeatable)")
@click.option("--population", multiple=True, help="adults, women, veterans, ... (repeatable)")
@click.option("--language", multiple=True, help="ISO 639-1 code, e.g. es (repeatable)")
@click.option("--available-only", is_flag=True, help="Only centers with fresh open availability.")
@click.option("--limit", type=int, default=DEFAULT_LIMIT, show_default=True)
@click.option("--public", is_flag=True, help="Show what the public sees (stale figures hidden).")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@friendly_errors
def near(
    place: str,
    radius_mi: float,
    levels: tuple[str, ...],
    payment: tuple[str, ...],
    population: tuple[str, ...],
    language: tuple[str, ...],
    available_only: bool,
    limit: int,
    public: bool,
    as_json: bool,
) -> None:
    """Centers near PLACE: a ZIP code, 'lat,lon', 'City, ST' (e.g. 'Cambridge, MA') or an address."""
    with _no_pydantic_plugins():
        from aggregator import lookup

    settings = cli_settings()
    now = datetime.now(UTC)
    echo: Callable[[str], None] = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    # everything that can be judged offline is judged before any Redis is found or started
    origin = lookup.offline_origin(place)
    lookup._filters({"levels_of_care": levels, "payment": payment, "populations": population, "languages": language})
    if origin is None and settings.geocoder in ("", "none"):
        if (city := lookup.split_city_state(place)) is not None:
            lookup.resolve_city(*city)  # raises, naming the city and close names
        raise InvalidQuery("place", "enter a ZIP code, 'lat,lon' or 'City, ST' (address search is off)")
    with open_store(settings) as store:
        if origin is None:
            origin = _geocoded_origin(place, store, settings)
        ensure_data(store, now, echo)
        answer = lookup.near(
            store,
            origin=origin,
            radius_mi=radius_mi,
            levels_of_care=levels,
            payment=payment,
            populations=population,
            languages=language,
            available_only=available_only,
            limit=limit,
            audience="public" if public else "operator",
            now=now,
            helpline=settings.helpline,
        )
        if not answer.results:  # "nothing matched" is only true of a store that has data
            from aggregator.health import loading_reason

            if loading := loading_reason(load_registry(settings).feeds, store):
                raise click.ClickException(f"no answer yet: {loading}")
    if as_json:
        write_json(answer.as_dict())
        return
    click.echo(render_table(answer))


ADDRESS_SEARCH_DOWN = "address search is unavailable (no geocoder reachable); try a ZIP code or 'City, ST'"


def _geocoded_origin(place: str, store: Store, settings: Settings) -> lookup.Origin:
    """An address through the cached, rate-limited geocoder: asked once (an operator on a call does not
    wait through retries), and its outage said in one line."""
    from aggregator import lookup
    from aggregator.errors import GeocoderTransient, PlaceNotFound
    from aggregator.geocode import origin_for_place
    from aggregator.wiring import geocoder_for

    try:
        return origin_for_place(place, geocoder_for(settings, store, retries=0))
    except GeocoderTransient:
        raise click.ClickException(ADDRESS_SEARCH_DOWN) from None
    except PlaceNotFound:
        if (city := lookup.split_city_state(place)) is not None:
            lookup.resolve_city(*city)  # raises, naming the city and close names
        raise


def _availability_words(levels: list[dict[str, Any]]) -> list[str]:
    from aggregator.lookup import age_words

    parts = []
    for a in levels:
        if a["reported_at"] is None:
            continue
        figures = a["status"]
        if a["beds_available"] is not None:
            figures += f" {a['beds_available']} beds"
        if a.get("appointments_available") is not None:
            figures += f" {a['appointments_available']} appointments"
            if a.get("next_appointment_at"):
                figures += f" (next {a['next_appointment_at']})"
        if a.get("waitlist_size"):
            figures += f" ({a['waitlist_size']} waiting)"
        mark = "" if a["fresh"] else " STALE"
        parts.append(f"{a['level_of_care']}: {figures}, {age_words(a['age_seconds'])} ago{mark}")
    return parts or ["no availability reported"]


#: widest a wrapped column grows before its text wraps
NAME_WIDTH = 34
CITY_WIDTH = 16
#: a name column narrows down to this to give the availability column room
MIN_NAME_WIDTH = 20
#: availability goes beside the other columns when its longest entry (up to this) fits there, else on
#: lines of its own below them
MAX_AVAILABILITY_WIDTH = 60


def render_table(answer: lookup.NearAnswer, width: int | None = None) -> str:
    """One row per center: distance, id (for `centers report`), name, city, phone, availability per level.
    Long names, cities and availability wrap onto the row's next lines instead of being cut; ``width``
    (default: the terminal's; COLUMNS, else 160, when not a terminal) bounds the lines where it can."""
    import shutil
    import textwrap

    width = max(60, width or shutil.get_terminal_size((160, 24)).columns)
    o = answer.origin
    where = o.place or f"{o.latitude:.4f},{o.longitude:.4f}"
    lines = [
        f"Centers within {answer.radius_mi:g} miles of {where}"
        + (f" ({', '.join(f'{k}: {v}' for k, v in answer.filters.items())})" if answer.filters else "")
    ]
    if not answer.results:
        lines.append(answer.hint["message"] if answer.hint else "No centers found.")
        return "\n".join(lines)
    rows = []
    for h in answer.results:
        c = h.center
        phone = next(
            (
                p["number"] + (f" x{p['extension']}" if p.get("extension") else "")
                for p in c.get("phones", [])
                if p["role"] in ("intake", "main")
            ),
            "",
        )
        rows.append(
            (
                f"{h.distance_mi:.1f} mi",
                h.id,
                " ".join(str(c.get("name") or "").split()),
                " ".join(str((c.get("address") or {}).get("city") or "").split()),
                phone,
                _availability_words(h.availability),
            )
        )
    w_dist, w_id, w_phone = (max(len(r[i]) for r in rows) for i in (0, 1, 4))
    w_name = min(NAME_WIDTH, max(len(r[2]) for r in rows))
    w_city = min(CITY_WIDTH, max(len(r[3]) for r in rows))
    fixed = w_dist + w_id + w_name + w_city + w_phone + 2 * 5
    # names wrap sooner rather than availability: give it room for its longest part where names can spare it
    need = min(MAX_AVAILABILITY_WIDTH, max(len(part) for r in rows for part in r[5]))
    spare = max(0, min(need - (width - fixed), w_name - MIN_NAME_WIDTH))
    beside = width - fixed + spare >= need
    if beside:
        w_name, fixed = w_name - spare, fixed - spare
    elif fixed - 2 > width:  # a narrow terminal: names wrap sooner (ids never wrap: they are copied)
        w_name = max(MIN_NAME_WIDTH, w_name - (fixed - 2 - width))
    w_avail = width - fixed if beside else width - w_dist - 2

    def wrap(text: str, w: int, indent: str = "") -> list[str]:
        return textwrap.wrap(text, w, subsequent_indent=indent, break_on_hyphens=False) or [""]

    for dist, cid, name, city, phone, parts in rows:
        avail = [line for part in parts for line in wrap(part, w_avail, "  ")]
        cells = [[dist], [cid], wrap(name, w_name), wrap(city, w_city), [phone]]
        if beside:
            cells.append(avail)
        for i in range(max(len(col) for col in cells)):
            cell = [col[i] if i < len(col) else "" for col in cells]
            text = (
                f"{cell[0]:>{w_dist}}  {cell[1]:<{w_id}}  {cell[2]:<{w_name}}  {cell[3]:<{w_city}}  "
                f"{cell[4]:<{w_phone}}" + (f"  {cell[5]}" if beside else "")
            )
            lines.append(text.rstrip())
        if not beside:
            lines.extend(" " * (w_dist + 2) + line for line in avail)
    lines.extend(answer.notes)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- feeds


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@friendly_errors
def feeds(as_json: bool) -> None:
    """Feed health: held and failing feeds first."""
    from aggregator.health import feed_health
    from aggregator.lookup import age_words

    settings = cli_settings()
    reg = load_registry(settings)
    with open_store(settings) as store:
        health = feed_health(reg.feeds, store, datetime.now(UTC))
        workers = store.live_workers()
    if as_json:
        write_json(health)
        return
    click.echo(
        f"Workers alive: {len(workers)}"
        + (f" ({', '.join(sorted(workers))})" if workers else " (none: feed runs and pushes wait)")
    )
    if not health:
        click.echo(
            "No feeds configured (CENTERS_FEEDS_FILE or config/feeds.toml"
            + (f"; the running service's registry: {settings.feeds_file or 'none'}" if _FOUND.get("service") else "")
            + ")."
        )
        return
    for h in health:
        age = f"data {age_words(h['data_age_seconds'])} old" if h["data_age_seconds"] is not None else "no data"
        line = (
            f"{h['status'].upper():<9} {h['id']:<22} {h['format']:<5} {age:<22} "
            f"accepted {h['accepted']}, rejected {h['rejected']}"
        )
        click.echo(line)
        now = datetime.now(UTC)
        checked, changed = (_ago(h.get(f), now) for f in ("last_checked", "last_changed"))
        click.echo(f"          last checked {checked}, last changed {changed}")
        quality = _quality_counts(h)
        if quality:
            click.echo(f"          last run: {quality}")
        if h["held"]:
            click.echo(f"          held: {h['held']['reason']} (release: POST /v1/feeds/{h['id']}/release)")
        if h["last_error"]:
            click.echo(
                f"          last error ({h['last_error_kind']}, {h['consecutive_failures']} in a row): "
                f"{h['last_error']}"
            )


def _ago(iso: str | None, now: datetime) -> str:
    from aggregator.lookup import age_words

    if not iso:
        return "never"
    return f"{age_words(int((now - datetime.fromisoformat(iso)).total_seconds()))} ago"


@main.command()
@friendly_errors
def check() -> None:
    """Check the stored data's invariants (RELIABILITY.md): exit 1 naming each one broken."""
    from aggregator.invariants import INVARIANTS
    from aggregator.invariants import check as check_invariants

    settings = cli_settings()
    with open_store(settings) as store:
        found = check_invariants(store, now=datetime.now(UTC), lock_lease_seconds=settings.lock_lease_seconds)
    for violation in found:
        click.echo(str(violation))
    if found:
        raise click.ClickException(f"{len(found)} invariant violation(s)")
    click.echo(f"All {len(INVARIANTS)} invariants hold: {', '.join(INVARIANTS)}.")


def _quality_counts(h: dict[str, Any]) -> str:
    """'12 repairs, 3 unmapped terms, 5 dropped values, 2 repeated ids, 1 document not fetched', or ''."""
    quality = h.get("quality") or {}
    parts = []
    for kind, words in (("repairs", "repairs"), ("unmapped", "unmapped terms"), ("dropped", "dropped values")):
        total = sum(int(item.get("count") or 0) for item in quality.get(kind) or [])
        if total:
            parts.append(f"{total} {words}")
    if h.get("repeated"):
        parts.append(f"{h['repeated']} repeated ids")
    failed = h.get("failed_documents") or []
    if failed:
        parts.append(f"{len(failed)} document{'s' if len(failed) != 1 else ''} not fetched")
    return ", ".join(parts)


def _echo_report(feed_id: str, status: str, r: IngestReport) -> None:
    """A run's counts, main reasons, repairs, unmapped terms, dropped values, repeats and failed documents."""
    from aggregator.onboard import quality_lines

    click.echo(
        f"{feed_id}: {status}: {r.records} records, {r.accepted} centers, {r.rejected} rejected, "
        f"{r.observations} observations"
    )
    for reason, n in r.problems_by_reason.most_common(8):
        click.echo(f"  {n:>6}  {reason}")
    for line in quality_lines(r.quality(), repeated=r.repeated, failed_documents=r.failed_documents):
        click.echo(line)


@main.command()
@click.argument("feed_id")
@friendly_errors
def ingest(feed_id: str) -> None:
    """Run one feed now (ignoring its schedule and max-age), with progress."""
    from aggregator.ingest import RunStatus
    from aggregator.wiring import pipeline_for

    settings = cli_settings()
    reg = load_registry(settings)
    if feed_id not in reg:
        raise ConfigError(f"no feed {feed_id!r} in the registry ({', '.join(f.id for f in reg.feeds) or 'empty'})")
    feed = reg.get(feed_id)
    if not feed.pulled:
        raise ConfigError(f"feed {feed_id!r} is a push feed: partners send it, nothing to fetch")
    with open_store(settings) as store:
        pipeline = pipeline_for(settings, store)
        outcome = pipeline.run_locked(feed, force=True, progress=lambda m: click.echo(f"  {m}", err=True))
    if outcome.status is RunStatus.BUSY:
        raise RuntimeError(f"feed {feed_id!r} is being run by a worker right now; try again shortly")
    if outcome.status is RunStatus.FAILED:
        if outcome.report is not None:  # a run that accepted too few records: what it would have lost
            _echo_report(feed_id, outcome.status, outcome.report)
        raise RuntimeError(f"{feed_id}: {outcome.error}")
    if outcome.report is None:
        click.echo(f"{feed_id}: {outcome.status}")
    else:
        _echo_report(feed_id, outcome.status, outcome.report)


FEED_FORMATS = ("csv", "json", "html", "hsds", "smart")


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a list.")
@click.pass_context
@friendly_errors
def matches(ctx: click.Context, as_json: bool) -> None:
    """Pairs the matcher could not decide: confirm or split them (decisions stick across runs)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = cli_settings()
    with open_store(settings) as store:
        pending = store.pending_matches()
    if as_json:
        write_json(pending)
        return
    if not pending:
        click.echo("No pairs waiting for a decision.")
        return
    for m in pending:
        rec = m["record_center"] or {}
        fac = m["facility_center"] or {}
        scores = ", ".join(f"{k} {v:g}" for k, v in m.get("scores", {}).items())
        click.echo(
            f"{m['record']}  {rec.get('name', '?')}, {rec.get('address', {}).get('address_1', '')} "
            f"{rec.get('address', {}).get('city', '')}"
        )
        click.echo(
            f"  ~ {m['facility']}  {fac.get('name', '?')}, {fac.get('address', {}).get('address_1', '')} "
            f"{fac.get('address', {}).get('city', '')}"
        )
        click.echo(f"  {m['rule']} ({scores})")
        click.echo(
            f"  centers matches confirm {m['record']} {m['facility']}   |   "
            f"centers matches split {m['record']} {m['facility']}"
        )


def _decide(record_id: str, facility_id: str, decision: str) -> None:
    settings = cli_settings()
    with open_store(settings) as store:
        try:
            target = store.decide_match(
                record_id, facility_id, decision, by=os.environ.get("USER", "operator"), now=datetime.now(UTC)
            )
        except KeyError as exc:
            raise InvalidQuery("record_id", f"no record or facility {exc.args[0]!r}") from None
    click.echo(
        f"{record_id} is now part of {target}"
        + (" (kept apart from " + facility_id + ")" if decision == "different" else "")
    )


@matches.command("confirm")
@click.argument("record_id")
@click.argument("facility_id")
@friendly_errors
def matches_confirm(record_id: str, facility_id: str) -> None:
    """The record and the facility are one place."""
    _decide(record_id, facility_id, "same")


@matches.command("split")
@click.argument("record_id")
@click.argument("facility_id")
@friendly_errors
def matches_split(record_id: str, facility_id: str) -> None:
    """The record and the facility are different places."""
    _decide(record_id, facility_id, "different")


@main.group()
def feed() -> None:
    """Onboard partner feeds: try a sample before it goes in the registry."""


@feed.command("try")
@click.argument("source", metavar="URL_OR_FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FEED_FORMATS),
    default=None,
    help="The feed's format (default: from the file's extension).",
)
@click.option(
    "--mapping",
    "mapping_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A TOML file of what goes under [feed.mapping] (default: the suggested mapping).",
)
@click.option("--allow-private", is_flag=True, help="Allow a loopback or private address (a test server).")
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
@friendly_errors
def feed_try(source: str, fmt: str | None, mapping_path: str | None, allow_private: bool, as_json: bool) -> None:
    """A dry run of a partner's sample: its columns, a suggested mapping, and what an ingest would keep,
    reject, repair, leave unmapped and drop. Writes nothing."""
    from aggregator import onboard
    from aggregator.wiring import fetcher_for

    settings = Settings.from_env()
    fmt = fmt or _format_from_name(source)
    fetcher = fetcher_for(settings) if onboard.is_url(source) else None
    result = onboard.run_trial(
        source,
        fmt,
        now=datetime.now(UTC),
        fetcher=fetcher,
        mapping_file=mapping_path,
        allow_private=allow_private,
        show=None if as_json else click.echo,
    )
    if as_json:
        write_json(result)


_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".json": "json",
    ".ndjson": "json",
    ".jsonl": "json",
    ".html": "html",
    ".htm": "html",
}


def _format_from_name(source: str) -> str:
    from urllib.parse import urlsplit

    suffix = Path(urlsplit(source).path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ConfigError(f"cannot tell the format of {source!r}: give --format ({'|'.join(FEED_FORMATS)})")
    return _EXTENSIONS[suffix]


@main.command("check-config")
@friendly_errors
def check_config() -> None:
    """Validate the settings and the partner registry; say what is wrong."""
    from config import registry as registry_module

    settings = Settings.from_env()
    path = settings.registry_path()
    if path is None:
        click.echo(
            "settings: ok; no partner registry (CENTERS_FEEDS_FILE or config/feeds.toml): "
            "`centers serve` will run the demo"
        )
        return
    reg = registry_module.load(path)
    missing = []
    for feed in reg.feeds:
        names = [feed.credentials.env] if feed.credentials else []
        if feed.push:
            names += [*feed.push.hmac_secret_env, *feed.push.bearer_key_env]
        missing += [f"feed '{feed.id}': environment variable {n} is not set" for n in names if not os.environ.get(n)]
    click.echo(
        f"settings: ok; registry {path}: {len(reg.feeds)} feeds ok ({', '.join(sorted({f.format for f in reg.feeds}))})"
    )
    for m in missing:
        click.echo(f"warning: {m}")


@main.command()
@click.argument("center_id")
@click.option("--level-of-care", "level", required=True, help="detox, residential, ...")
@click.option("--status", required=True, help="available, limited, waitlist, full, assessment_required, closed")
@click.option("--beds", type=int, default=None, help="Beds available, as told on the phone.")
@click.option("--total", type=int, default=None, help="Beds in all.")
@click.option("--waitlist", type=int, default=None, help="People waiting.")
@click.option("--expires", default="4h", show_default=True, help="How long it may show as live: 30m, 4h, 1d.")
@click.option("--by", "by", default=None, help="Who took the call (default: $USER).")
@click.option("--notes", default="", help="e.g. who at the center confirmed it.")
@friendly_errors
def report(
    center_id: str,
    level: str,
    status: str,
    beds: int | None,
    total: int | None,
    waitlist: int | None,
    expires: str,
    by: str | None,
    notes: str,
) -> None:
    """Record what a center said on the phone (its own source, 'operator', with an expiry)."""
    from pydantic import ValidationError

    from aggregator.model import Availability, Source
    from config import registry as registry_module

    settings = cli_settings()
    seconds = registry_module.duration(expires, "--expires")
    now = datetime.now(UTC)
    try:
        obs = Availability.model_validate(
            {
                "center_id": center_id,
                "level_of_care": level,
                "source": Source.OPERATOR,
                "status": status,
                "beds_available": beds,
                "beds_total": total,
                "waitlist_size": waitlist,
                "notes": notes,
                "reported_at": now,
                "checked_at": now,
                "freshness_seconds": seconds,
                "reported_by": by or os.environ.get("USER", "operator"),
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidQuery(".".join(str(p) for p in first["loc"]) or "report", first["msg"]) from None
    with open_store(settings) as store:
        written, _stale = store.record_observations([obs])
    if not written:
        raise InvalidQuery("center_id", f"no center {center_id!r}")
    until = (now + timedelta(seconds=seconds)).astimezone().strftime("%H:%M %Z")
    click.echo(
        f"{center_id}: {level} {status}"
        + (f", {beds} beds" if beds is not None else "")
        + f" recorded by {obs.reported_by}; shown as live until {until}"
    )


@main.command("load-sample")
@click.option(
    "--samhsa",
    "samhsa_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Path to samhsa_sud_facilities_geocoded.csv (default: ../shared/data if present).",
)
@click.option("--bundled", is_flag=True, help="Load the bundled fictional sample instead.")
@friendly_errors
def load_sample(samhsa_path: str | None, bundled: bool) -> None:
    """Load the SAMHSA facility list, or the bundled sample, as a feed snapshot."""
    from aggregator.local import sample

    settings = cli_settings()
    now = datetime.now(UTC)
    with open_store(settings) as store:
        path = None if bundled else (Path(samhsa_path) if samhsa_path else sample.shared_samhsa_file())
        result = sample.load_samhsa(store, path, now) if path else sample.load_bundled_sample(store, now)
    click.echo(
        f"{result.feed_id}: {result.records} records, {result.accepted} centers, "
        f"{result.rejected} rejected, {result.observations} availability observations"
    )
    for reason, n in result.problems_by_reason.most_common(10):
        click.echo(f"  {n:>6}  {reason}")


@main.command()
def settings() -> None:
    """List every setting, its environment variable, default and meaning."""
    for spec in SETTINGS.values():
        click.echo(f"{spec.env:<32} default {spec.default or '(empty)'!r}\n    {spec.help}")


# ------------------------------------------------------------------------------------------ push

_PUSH_CONTENT_TYPES = {
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
}


@main.command("push")
@click.argument("feed_id", metavar="FEED")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--url",
    "api_url",
    default=None,
    help="The API's base URL (default http://CENTERS_API_HOST:CENTERS_API_PORT: a local `centers serve`).",
)
@click.option(
    "--secret-env",
    default="PUSH_SECRET",
    show_default=True,
    help="Environment variable holding the feed's signing secret (the demo's: read from the data folder when unset).",
)
@click.option("--key-env", default=None, help="Send `Authorization: Bearer` with the key in this variable instead.")
@click.option("--content-type", default=None, help="Default from FILE's name: .json, .ndjson/.jsonl, .csv.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait until it is applied.")
@friendly_errors
def push(
    feed_id: str,
    file: Path,
    api_url: str | None,
    secret_env: str,
    key_env: str | None,
    content_type: str | None,
    timeout: float,
) -> None:
    """Push FILE to feed FEED as its partner does: signed (Standard Webhooks, or a bearer key) and POSTed to the
    API; then wait until it is applied and print what was accepted and rejected."""
    import time
    import uuid

    from aggregator.errors import FetchTransient
    from aggregator.fetch import exchange
    from aggregator.push import sign

    settings = cli_settings()  # a running `centers serve`: its API and data folder
    base = (api_url or _push_default_api(settings, _FOUND.get("service"))).rstrip("/")
    kind = content_type or _PUSH_CONTENT_TYPES.get(file.suffix.lower())
    if kind is None:
        raise click.ClickException(
            f"cannot tell the content type of {file.name}: give --content-type "
            "(application/json, application/x-ndjson, text/csv)"
        )
    body = file.read_bytes()
    event_id = f"push-{uuid.uuid4()}"
    headers = {"content-type": kind, "user-agent": "centers-push/0.1"}
    if key_env:
        key = os.environ.get(key_env, "")
        if not key:
            raise click.ClickException(f"environment variable {key_env} is not set (the feed's push key)")
        headers |= {"authorization": f"Bearer {key}", "idempotency-key": event_id}
    else:
        secret = os.environ.get(secret_env, "") or _push_demo_secret(settings, feed_id)
        if not secret:
            raise click.ClickException(
                f"environment variable {secret_env} is not set (the feed's signing secret; "
                "name another with --secret-env)"
            )
        timestamp = str(int(time.time()))
        headers |= {
            "webhook-id": event_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": sign(secret.encode(), event_id, timestamp, body),
        }
    try:
        resp = exchange("POST", f"{base}/v1/feeds/{feed_id}/records", body=body, headers=headers)
    except FetchTransient as exc:
        raise click.ClickException(
            f"cannot reach the API at {base} ({exc}): is `centers serve` running? Give its address with --url"
        ) from None
    if resp.status != 202:
        raise click.ClickException(f"{base} answered {resp.status}: {_push_problem(resp)}")
    ingest_id = json.loads(resp.body)["ingest_id"]
    click.echo(f"accepted: ingest {ingest_id} ({len(body):,} bytes to feed {feed_id}, event {event_id})")
    status: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while status.get("status") not in ("done", "failed"):
        if time.monotonic() > deadline:
            raise click.ClickException(
                f"ingest {ingest_id} is still {status.get('status', 'queued')} after "
                f"{timeout:.0f} s; see {base}/v1/ingests/{ingest_id}"
            )
        time.sleep(0.5)
        with contextlib.suppress(FetchTransient, ValueError):
            answer = exchange("GET", f"{base}/v1/ingests/{ingest_id}", timeout=10)
            if answer.status == 200:
                status = json.loads(answer.body)
    click.echo(
        f"{status['status']}: {status.get('records') or 0} records, {status.get('accepted') or 0} accepted, "
        f"{status.get('rejected') or 0} rejected"
    )
    for record, reasons in (status.get("rejections_by_record") or {}).items():
        click.echo(f"  rejected {record}: {'; '.join(reasons)}")
    if status["status"] == "failed":
        raise click.ClickException(f"ingest {ingest_id} failed: {status.get('error') or 'see the reasons above'}")


def _push_default_api(settings: Settings, service: Service | None) -> str:
    """CENTERS_API_HOST/PORT when set, else the running `centers serve`'s API, else the defaults."""
    explicit = os.environ.get("CENTERS_API_HOST") or os.environ.get("CENTERS_API_PORT")
    if not explicit and service is not None and service.api_url:
        return service.api_url
    host = settings.api_host if settings.api_host not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    if not settings.api_port:
        raise click.ClickException("CENTERS_API_PORT is 0 (any free port): give the API's address with --url")
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.api_port}"


def _push_demo_secret(settings: Settings, feed_id: str) -> str:
    """The demo push partner's secret, as `centers serve` keeps it in the data folder ('' for other feeds)."""
    from aggregator.local.demo import PUSH_FEED
    from aggregator.local.serve import PUSH_SECRET_FILE

    path = settings.data_path / PUSH_SECRET_FILE
    return path.read_text().strip() if feed_id == PUSH_FEED and path.is_file() else ""


def _push_problem(resp: Any) -> str:
    """What the API said, from its JSON error ({error, detail}) or the start of its body."""
    text = resp.body.decode(errors="replace")
    try:
        data = json.loads(text)
        return f"{data['error']}: {data['detail']}" if isinstance(data, dict) and "detail" in data else text[:300]
    except ValueError:
        return text[:300] or resp.reason


if __name__ == "__main__":  # pragma: no cover
    main()
