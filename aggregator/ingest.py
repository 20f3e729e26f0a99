"""One feed run: raw records -> normalize -> place -> store, with a report of what was kept and why not.

Dependencies (store, clock, geocoder) are passed in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aggregator.geocode import Geocoder, PlacementReport, place_all
from aggregator.model import Availability, Center, Rejection
from aggregator.normalize import FeedContext, normalize_record
from aggregator.store import ReplaceResult, Store
from config.registry import FeedConfig

#: how many rejections are kept verbatim in a report (counts by reason are always complete)
REJECTION_SAMPLE = 50


@dataclass
class IngestReport:
    feed_id: str
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    observations: int = 0
    problems_by_reason: Counter[str] = field(default_factory=Counter)
    rejections: list[Rejection] = field(default_factory=list)
    field_problems: list[Rejection] = field(default_factory=list)
    unmapped: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    stored: ReplaceResult | None = None
    placement: PlacementReport | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "feed_id": self.feed_id,
            "records": self.records,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "observations": self.observations,
            "problems_by_reason": dict(self.problems_by_reason.most_common()),
            "rejections": [r.model_dump() for r in self.rejections],
            "field_problems": [r.model_dump() for r in self.field_problems],
            "unmapped": dict(self.unmapped.most_common(50)),
            "repairs": dict(self.repairs),
            "stored": self.stored.__dict__ if self.stored else None,
            "placement": self.placement.as_dict() if self.placement else None,
        }


def reason_key(r: Rejection) -> str:
    """Group reasons: 'postal_code: ZIP 99999 does not exist' -> 'postal_code: ZIP N does not exist'."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", r.reason)
    text = re.sub(r"-?\d[\d.:\-T+Z ]*", "N ", text)
    field_ = re.sub(r"\.\d+", "", r.field)
    return f"{field_}: {' '.join(text.split())}"


def context_for(feed: FeedConfig, now: datetime) -> FeedContext:
    """What normalization needs to know about a registered feed, at ``now``."""
    return FeedContext(
        feed_id=feed.id, now=now, source=feed.source, timezone=feed.timezone,
        freshness_seconds=feed.freshness_seconds, max_report_age_seconds=feed.max_report_age_seconds,
        limited_threshold=feed.limited_threshold, value_maps=feed.mapping.value_maps,
        default_state=feed.default_state,
    )


def normalize_all(
    raws: Iterable[Mapping[str, Any]], ctx: FeedContext
) -> tuple[list[Center], list[Availability], IngestReport]:
    """Normalize a feed's raw records; duplicates of a source_id keep the first and reject the rest."""
    report = IngestReport(feed_id=ctx.feed_id)
    centers: dict[str, Center] = {}
    observations: list[Availability] = []
    for raw in raws:
        report.records += 1
        result = normalize_record(raw, ctx)
        for fld, terms in result.unmapped.items():
            for t in terms:
                report.unmapped[f"{fld}: {t}"] += 1
        for repair in result.repairs:
            report.repairs[repair] += 1
        if result.center is None:
            _reject(report, result.problems)
            continue
        if result.center.id in centers:
            _reject(report, [Rejection(record=result.source_id, field="source_id",
                                       reason="duplicate of an earlier record in this feed")])
            continue
        centers[result.center.id] = result.center
        observations.extend(result.availability)
        report.accepted += 1
        for p in result.problems:
            report.problems_by_reason[reason_key(p)] += 1
            if len(report.field_problems) < REJECTION_SAMPLE:
                report.field_problems.append(p)
    report.observations = len(observations)
    return list(centers.values()), observations, report


def _reject(report: IngestReport, problems: list[Rejection]) -> None:
    report.rejected += 1
    for p in problems[:1] or [Rejection(field="record", reason="rejected")]:
        report.problems_by_reason[reason_key(p)] += 1
        if len(report.rejections) < REJECTION_SAMPLE:
            report.rejections.append(p)


def apply_snapshot(store: Store, raws: Iterable[Mapping[str, Any]], ctx: FeedContext,
                   geocoder: Geocoder | None = None) -> IngestReport:
    """Normalize, place and store a feed's whole snapshot (atomically replacing the previous one).

    Without a geocoder, centers lacking plausible coordinates are placed at their ZIP centroid."""
    centers, observations, report = normalize_all(raws, ctx)
    centers, report.placement = place_all(centers, geocoder, ctx.now)
    report.stored = store.replace_feed(
        ctx.feed_id, centers, observations, now=ctx.now, source=ctx.source.value
    )
    return report
