"""The ``centers`` command: search near a place, load data, and (later) run the service.

Errors are one readable line and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

import click
import orjson

from aggregator import lookup, sample
from aggregator.errors import AggregatorError, InvalidQuery
from aggregator.runtime import redis_url
from aggregator.store import Store
from config.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except (AggregatorError, RuntimeError, FileNotFoundError, OSError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def open_store(settings: Settings) -> Iterator[Store]:
    with redis_url(settings) as url:
        store = Store.from_url(url, settings.key_prefix)
        try:
            yield store
        finally:
            store.redis.connection_pool.disconnect()


def ensure_data(store: Store, now: datetime, echo: Callable[[str], None]) -> None:
    """With no feed loaded yet, load the SAMHSA list where present, else the bundled sample."""
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


@click.group()
def main() -> None:
    """Treatment center availability: which centers near here can take someone right now?"""


_COORDS = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")


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
    """Centers near PLACE: a ZIP code or 'lat,lon'."""
    settings = Settings.from_env()
    location: dict[str, Any]
    if m := _COORDS.match(place):
        location = {"latitude": float(m.group(1)), "longitude": float(m.group(2))}
    elif re.fullmatch(r"\s*\d{5}(-\d{4})?\s*", place):
        location = {"zip": place.strip()}
    else:
        raise InvalidQuery("place", f"{place!r} is not a ZIP code or 'lat,lon'")
    now = datetime.now(UTC)
    echo: Callable[[str], None] = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    with open_store(settings) as store:
        ensure_data(store, now, echo)
        answer = lookup.near(
            store, **location, radius_mi=radius_mi, levels_of_care=levels, payment=payment,
            populations=population, languages=language, available_only=available_only, limit=limit,
            audience="public" if public else "operator", now=now, helpline=settings.helpline,
        )
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(answer.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
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
        if a["waitlist_size"]:
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
        phone = next((p["number"] for p in c.get("phones", []) if p["role"] in ("intake", "main")), "")
        rows.append((f"{h.distance_mi:.1f} mi", c["name"][:44], c["address"]["city"][:18],
                     _availability_words(h.availability), phone))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        lines.append(f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[4]:<12}  {r[3]}")
    lines.extend(answer.notes)
    return "\n".join(lines)


@main.command("load-sample")
@click.option("--samhsa", "samhsa_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Path to samhsa_sud_facilities_geocoded.csv (default: ../shared/data if present).")
@click.option("--bundled", is_flag=True, help="Load the bundled fictional sample instead.")
@friendly_errors
def load_sample(samhsa_path: str | None, bundled: bool) -> None:
    """Load the SAMHSA facility list, or the bundled sample, as a feed snapshot."""
    from pathlib import Path

    settings = Settings.from_env()
    now = datetime.now(UTC)
    with open_store(settings) as store:
        path = None if bundled else (Path(samhsa_path) if samhsa_path else sample.shared_samhsa_file())
        report = (sample.load_samhsa(store, path, now) if path
                  else sample.load_bundled_sample(store, now))
    click.echo(f"{report.feed_id}: {report.records} records, {report.accepted} centers, "
               f"{report.rejected} rejected, {report.observations} availability observations")
    for reason, n in report.problems_by_reason.most_common(10):
        click.echo(f"  {n:>6}  {reason}")


if __name__ == "__main__":  # pragma: no cover
    main()
