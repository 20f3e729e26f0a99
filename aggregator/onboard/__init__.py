"""Onboarding a partner: a dry run of a sample (``centers feed try``) that writes nothing.

Given a sample of a partner's feed (a local file or an http(s) URL) and its format, it shows what is
there (CSV columns, JSON key paths, HTML tables and repeated cards, with sample values), suggests a
mapping from the names it sees (TOML ready to paste under ``[feed.mapping]``), then runs the sample
through the same registry checks, parser and normalization an ingest would, and says what would be
kept, rejected (and why), repaired, left unmapped and dropped, and whether the run would pass the
feed's accepted-share rule. No Redis, no file is written.

Discovery, suggestion and summaries are pure functions of bytes and values; only ``read_first``,
``read_follow_ups``, ``load_mapping_file`` and ``run_trial`` touch files or the network.
"""

from aggregator.onboard.discover import Candidate, Column, Discovery, discover_csv, find_records
from aggregator.onboard.suggest import (
    Suggestion,
    availability_for,
    field_for,
    looks_like_one_line_address,
    mapping_toml,
    split_separator,
    suggest,
)
from aggregator.onboard.suggest import (
    discover_and_rank as discover,
)
from aggregator.onboard.trial import (
    feed_config,
    is_url,
    load_mapping_file,
    quality_lines,
    run_trial,
    share_verdict,
)

__all__ = [
    "Candidate",
    "Column",
    "Discovery",
    "Suggestion",
    "availability_for",
    "discover",
    "discover_csv",
    "feed_config",
    "field_for",
    "find_records",
    "is_url",
    "load_mapping_file",
    "looks_like_one_line_address",
    "mapping_toml",
    "quality_lines",
    "run_trial",
    "share_verdict",
    "split_separator",
    "suggest",
]
