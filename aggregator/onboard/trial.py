"""The dry run: read the sample (the only I/O, with ``load_mapping_file``), evaluate it, and its text."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from aggregator.errors import ConfigError, FetchPermanent
from aggregator.feeds import Document, parser_for
from aggregator.fetch import Fetcher
from aggregator.ingest import (
    IngestReport,
    accepts_enough,
    context_for,
    follow_documents,
    normalize_all,
    reason_key,
)
from aggregator.model import Availability, Center
from aggregator.onboard.discover import SHOWN, Discovery
from aggregator.onboard.suggest import Suggestion, discover_and_rank, mapping_toml, suggest
from config import registry
from config.registry import FeedConfig

#: a dry run reads at most this many documents (the first and its pages, manifest files, tables)
MAX_DOCUMENTS = 20
MAX_BYTES = 20_000_000
TIMEOUT = 30.0
#: the feed id of the trial's FeedConfig (center ids read "try:{source id}")
TRIAL_ID = "try"
#: the placeholder URL a local file is given (follow-ups are resolved in its folder by basename)
FILE_BASE = "http://127.0.0.1/try/"
EXAMPLE_CENTERS = 3


# --------------------------------------------------------------------------------------------------
# Reading the sample (the only I/O, with load_mapping_file)


def is_url(source: str) -> bool:
    return urlsplit(source).scheme.lower() in ("http", "https")


def file_url(path: Path) -> str:
    return FILE_BASE + quote(path.name)


def check_destination(url: str, allow_private: bool) -> None:
    """Refuse a loopback or private address written in the URL itself unless allowed (the fetcher checks
    resolved names and redirects again)."""
    import ipaddress

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise ConfigError(f"{url}: no host")
    try:
        private = not ipaddress.ip_address(host).is_global
    except ValueError:
        private = host == "localhost" or host.endswith(".localhost")
    if private and not allow_private:
        raise ConfigError(f"{url} is a loopback or private address; pass --allow-private to try it")


def read_first(source: str, fmt: str, fetcher: Fetcher | None, *, allow_private: bool = False) -> Document:
    """The sample's first document: a local file, or an http(s) URL fetched as a feed run would."""
    if is_url(source):
        check_destination(source, allow_private)
        if fetcher is None:
            raise ConfigError("no fetcher given for a URL")
        try:
            got = fetcher.get(
                source,
                fmt=fmt,
                max_bytes=MAX_BYTES,
                timeout=TIMEOUT,
                allow_private=allow_private,
                validators=None,
                headers={},
            )
        except FetchPermanent as exc:
            if "refused destination" in str(exc) and not allow_private:
                raise FetchPermanent(
                    f"{source}: refused destination (not a public address); pass --allow-private to try it"
                ) from exc
            raise
        return Document(got.url, got.body, got.content_type)
    if "://" in source:
        raise ConfigError(f"{source}: only http(s) URLs and local files can be tried")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise FetchPermanent(f"{source}: {path.stat().st_size:,} bytes is over the {MAX_BYTES:,}-byte cap")
    return Document(file_url(path), path.read_bytes())


def read_follow_ups(
    feed: FeedConfig, first: Document, source: str, fetcher: Fetcher | None, limit: int = MAX_DOCUMENTS
) -> tuple[list[Document], list[str], list[str]]:
    """The first document and what it leads to (pages, manifest files, tables), as a run would fetch
    them, bounded to ``limit`` documents. A local file's follow-ups are read from its folder by name.

    Returns (documents, failed "url: error", notes)."""
    folder = None if is_url(source) else Path(source).parent

    def fetch(url: str) -> Document:
        if folder is not None:
            path = folder / PurePosixPath(urlsplit(url).path).name
            if not path.is_file():
                raise FetchPermanent(f"no file {path.name} beside {Path(source).name}")
            return Document(url, path.read_bytes())
        assert fetcher is not None
        got = fetcher.get(
            url,
            fmt=feed.format,
            max_bytes=feed.max_bytes,
            timeout=feed.timeout_seconds,
            allow_private=feed.allow_private,
            validators=None,
            headers={},
        )
        return Document(got.url, got.body, got.content_type)

    documents, failed, unread = follow_documents(feed, first, fetch, min(limit, feed.max_pages))
    notes = (
        [f"stopped after {len(documents)} documents (a dry run reads at most {limit}); {unread} more not read"]
        if unread
        else []
    )
    return documents, failed, notes


def load_mapping_file(path: str | Path) -> dict[str, Any]:
    """What goes under ``[feed.mapping]``: a file of its keys (``records``, ``[fields]``, ...), or one with
    a ``[feed.mapping]`` table (the suggestion as printed), or one ``[[feed]]`` entry."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"mapping file {p}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"mapping file {p} is not UTF-8 text") from None
    feed = data.get("feed")
    if feed is None:
        return data
    if isinstance(feed, list):
        if len(feed) != 1:
            raise ConfigError(f"mapping file {p}: holds {len(feed)} [[feed]] entries; give one")
        feed = feed[0]
    if not isinstance(feed, dict) or not isinstance(feed.get("mapping", {}), dict):
        raise ConfigError(f"mapping file {p}: 'feed' must hold a mapping table ([feed.mapping])")
    unknown = sorted(set(data) - {"feed"})
    if unknown:
        raise ConfigError(f"mapping file {p}: unknown top-level key '{unknown[0]}' beside [feed.mapping]")
    mapping: dict[str, Any] = feed.get("mapping", {})
    return mapping


def feed_config(fmt: str, url: str, mapping: Mapping[str, Any], *, allow_private: bool) -> FeedConfig:
    """The trial's feed, checked by the registry as ``centers check-config`` would."""
    entry: dict[str, Any] = {"id": TRIAL_ID, "format": fmt, "url": url, "mapping": dict(mapping)}
    if allow_private:
        entry["allow_private"] = True
    from aggregator.feeds import PARSERS

    try:
        return registry.parse({"feed": [entry]}, "(feed try)", frozenset(PARSERS)).feeds[0]
    except ConfigError as exc:
        raise ConfigError(
            str(exc)
            .replace(f"feed '{TRIAL_ID}'.mapping", "mapping")
            .replace(f"feed '{TRIAL_ID}': key 'mapping.", "mapping: key '")
        ) from None


# --------------------------------------------------------------------------------------------------
# Evaluation: what an ingest would do with the sample


@dataclass
class Evaluation:
    feed: FeedConfig
    centers: list[Center]
    observations: list[Availability]
    report: IngestReport


def evaluate(feed: FeedConfig, documents: Sequence[Document], now: datetime) -> Evaluation:
    """Parse and normalize as a run would (no placing, no storing)."""
    raws = parser_for(feed.parser or feed.format)(documents, feed.mapping)
    centers, observations, report = normalize_all(raws, context_for(feed, now))
    return Evaluation(feed, centers, observations, report)


def share_verdict(feed: FeedConfig, report: IngestReport) -> tuple[bool, str]:
    """(would fail, why): the run's accepted-share rule (``Pipeline._check_share``) on this sample."""
    if not report.records:
        return True, "the sample holds no records (a run would fail: empty export, or a page of another shape)"
    share = report.accepted / report.records
    ok = accepts_enough(report, feed.min_accepted_share)
    words = (
        f"accepted {report.accepted:,} of {report.records:,} records ({share:.0%}; the feed needs "
        f"{feed.min_accepted_share:.0%}, its min_accepted_share)"
    )
    if ok:
        return False, f"would be applied: {words}"
    return True, f"would FAIL: {words}; the last good data would stay. Main reasons: {report.summary()}"


def rejected_by_reason(report: IngestReport) -> list[dict[str, Any]]:
    """Records rejected, by grouped reason, with a few record ids (field problems of kept records are
    'dropped', not here)."""
    counts = report.problems_by_reason - report.dropped
    examples: dict[str, list[str]] = {}
    previous = None
    for r in report.rejections:
        if r.record == previous:  # a record's further problems, listed beside the reason it was counted under
            continue
        previous = r.record
        ids = examples.setdefault(reason_key(r), [])
        if len(ids) < 5 and r.record and r.record not in ids:
            ids.append(r.record)
    return [{"reason": k, "count": n, "records": examples.get(k, [])} for k, n in counts.most_common()]


#: fields a record cannot be kept without, and what else can give them
_REQUIRED = {"source_id": ("id_from",), "name": (), "state": ("address",), "postal_code": ("address",)}


def hints(feed: FeedConfig, rejected: Sequence[Mapping[str, Any]], records: int) -> list[str]:
    """What to change when a required field is missing from many records and the mapping never names it."""
    out = []
    m = feed.mapping
    for item in rejected:
        fld, _, reason = str(item["reason"]).partition(": ")
        if fld not in _REQUIRED or reason not in ("missing", "empty") or item["count"] * 5 < records:
            continue
        if (
            fld in m.fields
            or fld in m.constants
            or any(m.fields.get(k) for k in _REQUIRED[fld])
            or (fld == "source_id" and m.id_from)
        ):
            continue
        if fld == "source_id":
            out.append(
                "no id column: list the columns that identify a center in id_from = [...] under "
                "[feed.mapping] (a stable id is hashed from them)"
            )
        elif fld == "state":
            out.append(
                'no state in the records: a single-state partner sets default_state = "XX" on its '
                '[[feed]] (here: constants = { state = "XX" } under [feed.mapping])'
            )
        else:
            out.append(f"no {fld} in the records: name its column under [feed.mapping.fields]")
    return out


def example_center(center: Center, observations: Sequence[Availability]) -> dict[str, Any]:
    return {
        "id": center.id,
        "name": center.name,
        "city": center.address.city,
        "state": center.address.state,
        "postal_code": center.address.postal_code,
        "phones": [p.number if p.role == "main" else f"{p.number} ({p.role})" for p in center.phones],
        "levels_of_care": [str(v) for v in center.services.levels_of_care],
        "availability": [
            f"{o.level_of_care}: {o.status}" + (f" {o.beds_available} beds" if o.beds_available is not None else "")
            for o in observations
            if o.center_id == center.id
        ],
    }


def summary(ev: Evaluation) -> dict[str, Any]:
    r = ev.report
    would_fail, verdict = share_verdict(ev.feed, r)
    quality = r.quality()
    rejected = rejected_by_reason(r)
    return {
        "records": r.records,
        "accepted": r.accepted,
        "rejected": r.rejected,
        "observations": r.observations,
        "repeated": r.repeated,
        "examples": [example_center(c, ev.observations) for c in ev.centers[:EXAMPLE_CENTERS]],
        "rejected_by_reason": rejected,
        "hints": hints(ev.feed, rejected, r.records),
        "repairs": quality["repairs"],
        "unmapped": quality["unmapped"],
        "dropped": quality["dropped"],
        "accepted_share": round(r.accepted / r.records, 4) if r.records else 0.0,
        "min_accepted_share": ev.feed.min_accepted_share,
        "would_fail": would_fail,
        "verdict": verdict,
    }


# --------------------------------------------------------------------------------------------------
# The whole trial, and its text


def run_trial(
    source: str,
    fmt: str,
    *,
    now: datetime,
    fetcher: Fetcher | None = None,
    mapping_file: str | Path | None = None,
    allow_private: bool = False,
    show: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Read the sample, show what is in it, suggest (or load) a mapping, and run it as an ingest would,
    writing nothing. ``show`` receives the text as it is known (the columns before a later error)."""
    say = show or (lambda _text: None)
    first = read_first(source, fmt, fetcher, allow_private=allow_private)
    discovery = discover_and_rank(fmt, first.body)
    suggestion = suggest(fmt, discovery)
    say("\n".join(discovery_lines(source, fmt, first, discovery)))
    if mapping_file is not None:
        mapping = load_mapping_file(mapping_file)
        say(f"Mapping from {mapping_file}.")
    else:
        mapping = suggestion.mapping
        say("\n".join(suggestion_lines(fmt, suggestion)))
        if fmt in ("csv", "json", "html") and not mapping.get("fields"):
            raise ConfigError(
                "no column was recognized: write the mapping from the columns above and pass --mapping FILE"
            )
    url = source if is_url(source) else file_url(Path(source))
    feed = feed_config(fmt, url, mapping, allow_private=allow_private or not is_url(source))
    documents, failed, notes = read_follow_ups(feed, first, source, fetcher)
    ev = evaluate(feed, documents, now)
    ev.report.failed_documents = failed
    result = {
        "source": source,
        "format": fmt,
        "documents": [
            {"url": d.url if is_url(source) else _local_name(d.url), "bytes": len(d.body)} for d in documents
        ],
        "failed_documents": failed,
        "notes": notes,
        "discovery": discovery.as_dict(),
        "suggestion": suggestion.as_dict(),
        "mapping_from": str(mapping_file)
        if mapping_file is not None
        else "none (a standard format)"
        if fmt in ("hsds", "smart")
        else "suggestion",
        "mapping": mapping,
        **summary(ev),
    }
    say("\n".join(result_lines(result)))
    return result


def _local_name(url: str) -> str:
    return PurePosixPath(urlsplit(url).path).name


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def discovery_lines(source: str, fmt: str, first: Document, discovery: Discovery) -> list[str]:
    lines = [f"Sample: {source} ({fmt}, {len(first.body):,} bytes; nothing is written)"]
    for c in discovery.candidates:
        if c.kind == "csv":
            lines.append(f"Columns ({c.count:,} rows; sample values):")
        elif c.kind == "json":
            lines.append(
                f"Records: {c.records or 'the document itself'} ({c.count:,} records); key paths in the first records:"
            )
        elif c.kind == "table":
            lines.append(f"Table {c.records!r}: {c.count:,} rows; header: {' | '.join(c.headers) or '(none)'}")
        elif c.kind == "cards":
            lines.append(f"Cards {c.records!r}: {c.count:,} elements; parts:")
        else:
            lines.append("No records found.")
        width = min(28, max((len(col.ref) for col in c.columns), default=0))
        for col in c.columns[:40]:
            samples = " | ".join(_short(v) for v in col.samples[:SHOWN]) or "(empty)"
            filled = f"  [{col.filled / col.seen:.0%} filled]" if col.seen and col.filled < col.seen else ""
            label = f" ({col.label})" if c.kind == "table" else ""
            lines.append(f"  {col.ref:<{width}}{label}  {samples}{filled}")
        if len(c.columns) > 40:
            lines.append(f"  ... and {len(c.columns) - 40} more")
    lines += [f"Note: {n}" for n in discovery.notes]
    return lines


def suggestion_lines(fmt: str, suggestion: Suggestion) -> list[str]:
    if fmt in ("hsds", "smart"):
        return [
            "",
            f"Mapping: none needed for {fmt} (options such as states or level_of_care go under "
            "[feed.mapping.options]; pass --mapping FILE to try them).",
        ]
    if not suggestion.mapping.get("fields"):
        return ["", "Suggested mapping: no column name was recognized."]
    text = mapping_toml(suggestion.mapping, suggestion.not_mapped)
    return [
        "",
        "Suggested mapping (paste under the partner's [[feed]]; or save it to a file, edit it and "
        "rerun with --mapping FILE):",
        "",
        *("  " + line if line else "" for line in text.splitlines()),
    ]


def quality_lines(
    quality: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    repeated: int = 0,
    failed_documents: Sequence[str] = (),
    indent: str = "  ",
    limit: int = 8,
) -> list[str]:
    """Repairs made, terms left unmapped, values dropped (with example records), repeated ids and
    documents that could not be fetched, as lines (for ``feed try`` and ``ingest``)."""
    lines: list[str] = []
    for kind, title in (
        ("repairs", "repairs made"),
        ("unmapped", "terms left unmapped"),
        ("dropped", "values dropped from kept records"),
    ):
        items = list(quality.get(kind) or [])
        if not items:
            continue
        lines.append(f"{indent}{title}:")
        for item in items[:limit]:
            records = list(item.get("records") or [])
            eg = f"  (e.g. {', '.join(records[:3])})" if records else ""
            lines.append(f"{indent}  {item.get('count', 0):>6}  {item.get('what', '')}{eg}")
        if len(items) > limit:
            lines.append(f"{indent}  ... and {len(items) - limit} more")
    if repeated:
        lines.append(
            f"{indent}repeated ids: {repeated} record(s) repeated an earlier record's id "
            "(the newest report of each id is kept)"
        )
    if failed_documents:
        lines.append(f"{indent}documents that could not be fetched ({len(failed_documents)}; a partial run):")
        lines += [f"{indent}  {d}" for d in failed_documents[:limit]]
    return lines


def result_lines(result: Mapping[str, Any]) -> list[str]:
    docs = result["documents"]
    lines = [
        "",
        f"Dry run ({len(docs)} document{'s' if len(docs) != 1 else ''}, "
        f"{sum(d['bytes'] for d in docs):,} bytes; mapping: {result['mapping_from']}):",
        f"  {result['records']:,} records: {result['accepted']:,} would be kept, {result['rejected']:,} "
        f"rejected, {result['observations']:,} availability observations",
    ]
    for ex in result["examples"]:
        where = ", ".join(x for x in (ex["city"], f"{ex['state']} {ex['postal_code']}") if x)
        lines.append(
            f"    {ex['name']}: {where}; phones {', '.join(ex['phones']) or '-'}; "
            f"levels {', '.join(ex['levels_of_care']) or '-'}"
            + (f"; {', '.join(ex['availability'])}" if ex["availability"] else "")
        )
    if result["rejected_by_reason"]:
        lines.append("  rejected, by reason:")
        for item in result["rejected_by_reason"][:10]:
            eg = f"  (e.g. {', '.join(item['records'][:3])})" if item["records"] else ""
            lines.append(f"    {item['count']:>6}  {item['reason']}{eg}")
    lines += quality_lines(
        {k: result[k] for k in ("repairs", "unmapped", "dropped")},
        repeated=result["repeated"],
        failed_documents=result["failed_documents"],
    )
    lines += [f"  note: {n}" for n in result["notes"]]
    lines += [f"  hint: {h}" for h in result["hints"]]
    lines.append(f"  verdict: {result['verdict']}")
    return lines
