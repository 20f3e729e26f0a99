"""Feed health for operators: every feed's last attempt, success and error, counts, data age.

Held (quarantined) feeds come first, then failing (the last run failed, or accepted too few of its
records to be applied), partial (some of its files could not be fetched; the rest was applied) and
stale ones, then the rest. Each feed carries its last run's repairs, unmapped terms and dropped
values, with example records, so nothing is lost without a word.

Two times say how current a feed is: ``last_checked``, the last run that succeeded whether or not the
partner's data had changed (a 304, an unchanged export, a held run included), and ``last_changed``, the
last run that changed data (applied a snapshot or a push; ``last_success``, kept under that name too).

``loading_reason``: whether the store is still waiting for its first data (no feed ever applied), so
that an empty answer is not taken for "nothing is near".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aggregator.store import FeedState, Store
from config.registry import FeedConfig

_ORDER = {"held": 0, "failing": 1, "partial": 2, "stale": 3, "never_run": 4, "ok": 5}


def parse_when(text: str | None) -> datetime | None:
    """A stored ISO time ('...Z') back to a datetime; None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _json(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def hold_obsolete(state: FeedState, held_at: str | None) -> str:
    """Why a held run may no longer be released (a newer run was applied since it was held), or ''."""
    held, applied = parse_when(held_at), parse_when(state.last_success)
    if held is not None and applied is not None and applied > held:
        return (
            f"the run held at {held_at} is older than the run applied at {state.last_success}; "
            "releasing it would put older data over newer"
        )
    return ""


def last_checked(state: FeedState) -> str | None:
    """The last run that succeeded, changed or not: ``last_checked``, or, for state written before runs
    recorded it, the last applied run (an applied run was checked too)."""
    checked, changed = state.last_checked or None, state.last_success or None
    if checked and changed:
        a, b = parse_when(checked), parse_when(changed)
        if a is not None and b is not None and b > a:
            return changed
    return checked or changed


def loading_reason(feeds: Sequence[FeedConfig], store: Store) -> str:
    """Why the store cannot answer yet, or '' once it can.

    The signal: no feed has ever been applied (no ``feed:{id}:meta`` with ``replaced_at``, which every
    applied snapshot and push writes, a staged one at its flip) while a scheduled feed is configured, so
    its first run is on its way. An empty answer then would say "no center near here" of a store that
    does not know yet. Push-only registries never wait (their data comes when partners push, through this
    API). The check costs a few reads: callers make it only for an empty answer and for /readyz."""
    pulled = [f for f in feeds if f.pulled and f.enabled]
    if not pulled:
        return ""
    for feed_id in [*sorted(store.feed_ids()), *(f.id for f in feeds)]:
        if store.feed_meta(feed_id).get("replaced_at"):
            return ""
    states = store.feed_states([f.id for f in pulled])
    failed = [f.id for f in pulled if states.get(f.id, FeedState()).last_error_at]
    reason = (
        f"the store is loading: no feed has been applied yet ({len(pulled)} scheduled "
        f"{'feed' if len(pulled) == 1 else 'feeds'}; the first runs fetch them)"
    )
    if failed:
        reason += (
            f"; the first run failed for {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''} (see feed health)"
        )
    return reason


def feed_health(feeds: Sequence[FeedConfig], store: Store, now: datetime) -> list[dict[str, Any]]:
    states = store.feed_states([f.id for f in feeds])
    out = []
    for feed in feeds:
        s = states.get(feed.id, FeedState())
        newest = parse_when(s.newest_data_at)
        age = max(0, int((now - newest).total_seconds())) if newest else None
        failures = s.consecutive_failures or 0
        held = {"reason": s.held_reason, "at": s.held_at} if s.held_reason else None
        stale = age is None or age > feed.freshness_seconds
        if held:
            status = "held"
        elif failures:
            status = "failing"
        elif not s.last_success:
            status = "never_run"
        elif s.last_outcome == "partial":
            status = "partial"
        elif stale:
            status = "stale"
        else:
            status = "ok"
        out.append(
            {
                "id": feed.id,
                "partner": feed.partner,
                "format": feed.format,
                "source": feed.source.value,
                "url": feed.url,
                "enabled": feed.enabled,
                "schedule_seconds": feed.schedule_seconds,
                "freshness_seconds": feed.freshness_seconds,
                "status": status,
                "stale": stale,
                "held": held,
                "last_attempt": s.last_attempt,
                "last_success": s.last_success,
                "last_checked": last_checked(s),
                "last_changed": s.last_success or None,
                "last_outcome": s.last_outcome,
                "last_error": s.last_error,
                "last_error_kind": s.last_error_kind,
                "last_error_at": s.last_error_at,
                "consecutive_failures": failures,
                "records": s.records or 0,
                "accepted": s.accepted or 0,
                "rejected": s.rejected or 0,
                "observations": s.observations or 0,
                "problems_by_reason": _json(s.problems_by_reason, {}),
                "rejections": _json(s.rejections, []),
                "quality": _json(s.quality, {"repairs": [], "unmapped": [], "dropped": []}),
                "repeated": s.repeated or 0,
                "busy_refusals": s.busy_refusals or 0,
                "last_busy_at": s.last_busy_at,
                "hold_discarded": s.hold_discarded or None,
                "failed_documents": _json(s.failed_documents, []),
                "last_run": {
                    "records": s.run_records or 0,
                    "accepted": s.run_accepted or 0,
                    "rejected": s.run_rejected or 0,
                },
                "newest_data_at": s.newest_data_at or None,
                "data_age_seconds": age,
            }
        )
    out.sort(key=lambda h: (_ORDER[h["status"]], h["id"]))
    return out
