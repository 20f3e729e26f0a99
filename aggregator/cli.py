"""The ``centers`` command: run the service, search, watch feeds, run one now, check configuration,
record a phone report.

Errors are one readable line and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from aggregator import lookup, sample
from aggregator.errors import AggregatorError, ConfigError, InvalidQuery
from aggregator.runtime import redis_url
from aggregator.store import Store
from config import registry as registry_module
from config.registry import Registry
from config.settings import SETTINGS, Settings

if TYPE_CHECKING:
    from aggregator.ingest import IngestReport

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except (AggregatorError, RuntimeError, FileNotFoundError, OSError, KeyError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise click.ClickException(text) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def open_store(settings: Settings) -> Iterator[Store]:
    with redis_url(settings) as url:
        store = Store.from_url(url, settings.key_prefix)
        try:
            yield store
        finally:
            store.redis.connection_pool.disconnect()


def load_registry(settings: Settings) -> Registry:
    path = settings.registry_path()
    if path is None:
        demo = settings.data_path / "demo" / "feeds.toml"
        path = demo if demo.exists() else None
    return registry_module.load(path) if path is not None else Registry(())


def ensure_data(store: Store, now: datetime, echo: Callable[[str], None]) -> None:
    """With nothing loaded yet, load the SAMHSA list where present, else the bundled sample."""
    if store.feed_ids():
        return
    path = sample.shared_samhsa_file()
    if path is not None:
        echo(f"No data yet: loading SAMHSA facilities from {path} ...")
        report = sample.load_samhsa(store, path, now)
    else:
        echo("No data yet: loading the bundled sample (fictional centers, 555-01xx numbers) ...")
        report = sample.load_bundled_sample(store, now)
    echo(f"Loaded {report.accepted} centers ({report.rejected} rejected).")


def write_json(data: Any) -> None:
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
    from aggregator.serve import serve as run

    settings = Settings.from_env()
    run(settings, demo=demo, host=host or settings.api_host, port=settings.api_port if port is None else port,
        echo=click.echo, concurrency=concurrency)


# ------------------------------------------------------------------------------------------ near


@main.command()
@click.argument("place")
@click.option("--radius", "radius_mi", type=float, default=lookup.DEFAULT_RADIUS_MI, show_default=True,
              help="Miles.")
@click.option("--level-of-care", "levels", multiple=True, help="detox, residential, otp, ... (repeatable)")
@click.option("--payment", multiple=True, help="medicaid, private, sliding_scale, ... (repeatable)")
@click.option("--population", multiple=True, help="adults, women, veterans, ... (repeatable)")
@click.option("--language", multiple=True, help="ISO 639-1 code, e.g. es (repeatable)")
@click.option("--available-only", is_flag=True, help="Only centers with fresh open availability.")
@click.option("--limit", type=int, default=lookup.DEFAULT_LIMIT, show_default=True)
@click.option("--public", is_flag=True, help="Show what the public sees (stale figures hidden).")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@friendly_errors
def near(place: str, radius_mi: float, levels: tuple[str, ...], payment: tuple[str, ...],
         population: tuple[str, ...], language: tuple[str, ...], available_only: bool, limit: int,
         public: bool, as_json: bool) -> None:
    """Centers near PLACE: a ZIP code, 'lat,lon' or an address."""
    from aggregator.geocode import Geocoder, GeocoderConfig, origin_for_place

    settings = Settings.from_env()
    now = datetime.now(UTC)
    echo: Callable[[str], None] = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    with open_store(settings) as store:
        config = GeocoderConfig.from_settings(settings)
        geocoder = Geocoder(store, config) if config.enabled else None
        origin = origin_for_place(place, geocoder)
        ensure_data(store, now, echo)
        answer = lookup.near(
            store, origin=origin, radius_mi=radius_mi, levels_of_care=levels, payment=payment,
            populations=population, languages=language, available_only=available_only, limit=limit,
            audience="public" if public else "operator", now=now, helpline=settings.helpline,
        )
    if as_json:
        write_json(answer.as_dict())
        return
    click.echo(render_table(answer))


def _availability_words(levels: list[dict[str, Any]]) -> str:
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
        parts.append(f"{a['level_of_care']}: {figures}, {lookup.age_words(a['age_seconds'])} ago{mark}")
    return "; ".join(parts) or "no availability reported"


def render_table(answer: lookup.NearAnswer) -> str:
    o = answer.origin
    where = o.place or f"{o.latitude:.4f},{o.longitude:.4f}"
    lines = [f"Centers within {answer.radius_mi:g} miles of {where}"
             + (f" ({', '.join(f'{k}: {v}' for k, v in answer.filters.items())})" if answer.filters else "")]
    if not answer.results:
        lines.append(answer.hint["message"] if answer.hint else "No centers found.")
        return "\n".join(lines)
    rows = []
    for h in answer.results:
        c = h.center
        phone = next((p["number"] + (f" x{p['extension']}" if p.get("extension") else "")
                      for p in c.get("phones", []) if p["role"] in ("intake", "main")), "")
        rows.append((f"{h.distance_mi:.1f} mi", c["name"][:44], c["address"]["city"][:18],
                     _availability_words(h.availability), phone))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        lines.append(f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[4]:<12}  {r[3]}")
    lines.extend(answer.notes)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- feeds


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@friendly_errors
def feeds(as_json: bool) -> None:
    """Feed health: held and failing feeds first."""
    from aggregator.health import feed_health

    settings = Settings.from_env()
    reg = load_registry(settings)
    with open_store(settings) as store:
        health = feed_health(reg.feeds, store, datetime.now(UTC))
        workers = store.live_workers()
    if as_json:
        write_json(health)
        return
    click.echo(f"Workers alive: {len(workers)}" + (f" ({', '.join(sorted(workers))})" if workers else
                                                   " (none: feed runs and pushes wait)"))
    if not health:
        click.echo("No feeds configured (CENTERS_FEEDS_FILE or config/feeds.toml).")
        return
    for h in health:
        age = f"data {lookup.age_words(h['data_age_seconds'])} old" if h["data_age_seconds"] is not None else "no data"
        line = (f"{h['status'].upper():<9} {h['id']:<22} {h['format']:<5} {age:<22} "
                f"accepted {h['accepted']}, rejected {h['rejected']}")
        click.echo(line)
        quality = _quality_counts(h)
        if quality:
            click.echo(f"          last run: {quality}")
        if h["held"]:
            click.echo(f"          held: {h['held']['reason']} (release: POST /v1/feeds/{h['id']}/release)")
        if h["last_error"]:
            click.echo(f"          last error ({h['last_error_kind']}, {h['consecutive_failures']} in a row): "
                       f"{h['last_error']}")


@main.command()
@friendly_errors
def check() -> None:
    """Check the stored data's invariants (RELIABILITY.md): exit 1 naming each one broken."""
    from aggregator.invariants import INVARIANTS
    from aggregator.invariants import check as check_invariants

    settings = Settings.from_env()
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

    click.echo(f"{feed_id}: {status}: {r.records} records, {r.accepted} centers, {r.rejected} rejected, "
               f"{r.observations} observations")
    for reason, n in r.problems_by_reason.most_common(8):
        click.echo(f"  {n:>6}  {reason}")
    for line in quality_lines(r.quality(), repeated=r.repeated, failed_documents=r.failed_documents):
        click.echo(line)


@main.command()
@click.argument("feed_id")
@friendly_errors
def ingest(feed_id: str) -> None:
    """Run one feed now (ignoring its schedule and max-age), with progress."""
    from aggregator.fetch import Fetcher, new_session
    from aggregator.geocode import Geocoder, GeocoderConfig
    from aggregator.ingest import Pipeline

    settings = Settings.from_env()
    reg = load_registry(settings)
    if feed_id not in reg:
        raise ConfigError(f"no feed {feed_id!r} in the registry ({', '.join(f.id for f in reg.feeds) or 'empty'})")
    feed = reg.get(feed_id)
    if not feed.pulled:
        raise ConfigError(f"feed {feed_id!r} is a push feed: partners send it, nothing to fetch")
    with open_store(settings) as store:
        config = GeocoderConfig.from_settings(settings)
        geocoder = Geocoder(store, config) if config.enabled else None
        pipeline = Pipeline(store, Fetcher(new_session(settings.user_agent)), geocoder=geocoder,
                            environ=dict(os.environ))
        outcome = pipeline.run_locked(feed, force=True, progress=lambda m: click.echo(f"  {m}", err=True))
    if outcome.status == "busy":
        raise RuntimeError(f"feed {feed_id!r} is being run by a worker right now; try again shortly")
    if outcome.status == "failed":
        if outcome.report is not None:  # a run that accepted too few records: what it would have lost
            _echo_report(feed_id, "failed", outcome.report)
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
    settings = Settings.from_env()
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
        click.echo(f"{m['record']}  {rec.get('name', '?')}, {rec.get('address', {}).get('address_1', '')} "
                   f"{rec.get('address', {}).get('city', '')}")
        click.echo(f"  ~ {m['facility']}  {fac.get('name', '?')}, {fac.get('address', {}).get('address_1', '')} "
                   f"{fac.get('address', {}).get('city', '')}")
        click.echo(f"  {m['rule']} ({scores})")
        click.echo(f"  centers matches confirm {m['record']} {m['facility']}   |   "
                   f"centers matches split {m['record']} {m['facility']}")


def _decide(record_id: str, facility_id: str, decision: str) -> None:
    settings = Settings.from_env()
    with open_store(settings) as store:
        try:
            target = store.decide_match(record_id, facility_id, decision, by=os.environ.get("USER", "operator"),
                                        now=datetime.now(UTC))
        except KeyError as exc:
            raise InvalidQuery("record_id", f"no record or facility {exc.args[0]!r}") from None
    click.echo(f"{record_id} is now part of {target}" + (" (kept apart from " + facility_id + ")"
                                                           if decision == "different" else ""))


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
@click.option("--format", "fmt", type=click.Choice(FEED_FORMATS), default=None,
              help="The feed's format (default: from the file's extension).")
@click.option("--mapping", "mapping_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A TOML file of what goes under [feed.mapping] (default: the suggested mapping).")
@click.option("--allow-private", is_flag=True, help="Allow a loopback or private address (a test server).")
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
@friendly_errors
def feed_try(source: str, fmt: str | None, mapping_path: str | None, allow_private: bool, as_json: bool) -> None:
    """A dry run of a partner's sample: its columns, a suggested mapping, and what an ingest would keep,
    reject, repair, leave unmapped and drop. Writes nothing."""
    from aggregator import onboard
    from aggregator.fetch import Fetcher, new_session

    fmt = fmt or _format_from_name(source)
    fetcher = Fetcher(new_session(Settings.from_env().user_agent)) if onboard.is_url(source) else None
    result = onboard.run_trial(source, fmt, now=datetime.now(UTC), fetcher=fetcher, mapping_file=mapping_path,
                               allow_private=allow_private, show=None if as_json else click.echo)
    if as_json:
        write_json(result)


_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json", ".ndjson": "json",
               ".jsonl": "json", ".html": "html", ".htm": "html"}


def _format_from_name(source: str) -> str:
    from urllib.parse import urlsplit

    suffix = Path(urlsplit(source).path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ConfigError(f"cannot tell the format of {source!r}: give --format "
                               f"({'|'.join(FEED_FORMATS)})")
    return _EXTENSIONS[suffix]


@main.command("check-config")
@friendly_errors
def check_config() -> None:
    """Validate the settings and the partner registry; say what is wrong."""
    settings = Settings.from_env()
    path = settings.registry_path()
    if path is None:
        click.echo("settings: ok; no partner registry (CENTERS_FEEDS_FILE or config/feeds.toml): "
                   "`centers serve` will run the demo")
        return
    reg = registry_module.load(path)
    missing = []
    for feed in reg.feeds:
        names = [feed.credentials.env] if feed.credentials else []
        if feed.push:
            names += [*feed.push.hmac_secret_env, *feed.push.bearer_key_env]
        missing += [f"feed '{feed.id}': environment variable {n} is not set" for n in names if not os.environ.get(n)]
    click.echo(f"settings: ok; registry {path}: {len(reg.feeds)} feeds ok "
               f"({', '.join(sorted({f.format for f in reg.feeds}))})")
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
def report(center_id: str, level: str, status: str, beds: int | None, total: int | None, waitlist: int | None,
           expires: str, by: str | None, notes: str) -> None:
    """Record what a center said on the phone (its own source, 'operator', with an expiry)."""
    from pydantic import ValidationError

    from aggregator.model import Availability, Source

    settings = Settings.from_env()
    seconds = registry_module.duration(expires, "--expires")
    now = datetime.now(UTC)
    try:
        obs = Availability.model_validate({
            "center_id": center_id, "level_of_care": level, "source": Source.OPERATOR, "status": status,
            "beds_available": beds, "beds_total": total, "waitlist_size": waitlist, "notes": notes,
            "reported_at": now, "checked_at": now, "freshness_seconds": seconds,
            "reported_by": by or os.environ.get("USER", "operator")})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidQuery(".".join(str(p) for p in first["loc"]) or "report", first["msg"]) from None
    with open_store(settings) as store:
        written, _stale = store.record_observations([obs])
    if not written:
        raise InvalidQuery("center_id", f"no center {center_id!r}")
    until = (now + timedelta(seconds=seconds)).astimezone().strftime("%H:%M %Z")
    click.echo(f"{center_id}: {level} {status}" + (f", {beds} beds" if beds is not None else "")
               + f" recorded by {obs.reported_by}; shown as live until {until}")


@main.command("load-sample")
@click.option("--samhsa", "samhsa_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Path to samhsa_sud_facilities_geocoded.csv (default: ../shared/data if present).")
@click.option("--bundled", is_flag=True, help="Load the bundled fictional sample instead.")
@friendly_errors
def load_sample(samhsa_path: str | None, bundled: bool) -> None:
    """Load the SAMHSA facility list, or the bundled sample, as a feed snapshot."""
    settings = Settings.from_env()
    now = datetime.now(UTC)
    with open_store(settings) as store:
        path = None if bundled else (Path(samhsa_path) if samhsa_path else sample.shared_samhsa_file())
        result = (sample.load_samhsa(store, path, now) if path else sample.load_bundled_sample(store, now))
    click.echo(f"{result.feed_id}: {result.records} records, {result.accepted} centers, "
               f"{result.rejected} rejected, {result.observations} availability observations")
    for reason, n in result.problems_by_reason.most_common(10):
        click.echo(f"  {n:>6}  {reason}")


@main.command()
def settings() -> None:
    """List every setting, its environment variable, default and meaning."""
    for spec in SETTINGS.values():
        click.echo(f"{spec.env:<32} default {spec.default or '(empty)'!r}\n    {spec.help}")


if __name__ == "__main__":  # pragma: no cover
    main()

