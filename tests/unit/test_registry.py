"""The partner registry: onboarding by configuration; a wrong entry fails at start naming feed and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import ConfigError
from aggregator.feeds import PARSERS
from aggregator.model import Source
from config import registry

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "feeds.example.toml"


def one(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "beds",
        "format": "csv",
        "url": "https://partner.example.org/beds.csv",
        "mapping": {"fields": {"source_id": "ID", "name": "Name"}},
    }
    base.update(kw)
    return {"feed": [base]}


def test_the_example_registry_is_valid_and_covers_every_format() -> None:
    reg = registry.load(EXAMPLE)
    assert {f.format for f in reg.feeds} == {"csv", "json", "html", "hsds", "smart", "push"}
    la = reg.get("la-county-sbat")
    assert (la.parser, la.source, la.timezone, la.freshness_seconds) == (
        "la_county",
        Source.SCRAPE,
        "America/Los_Angeles",
        48 * 3600,
    )
    assert reg.get("pa-beds").source is Source.SCRAPE
    assert reg.get("ma-beds").credentials is not None
    assert reg.get("ma-beds").credentials.env == "MA_BEDS_TOKEN"  # a name, never the secret
    assert reg.get("push-partner").push is not None
    assert [f.id for f in reg.pulled] == ["ma-beds", "oh-api", "pa-beds", "hsds-211", "smart-intake", "la-county-sbat"]


def test_durations_and_sizes() -> None:
    [feed] = registry.parse(one(schedule="90s", freshness="2h", max_bytes="5MB", max_report_age="30d")).feeds
    assert (feed.schedule_seconds, feed.freshness_seconds, feed.max_bytes) == (90, 7200, 5_000_000)
    assert feed.max_report_age_seconds == 30 * 86400


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "Bad Id!"}, "feed 'Bad Id!': key 'id'"),
        ({"format": "xml"}, "feed 'beds': key 'format' must be one of"),
        ({"url": ""}, "feed 'beds': key 'url' is required"),
        ({"url": "ftp://x.org/a"}, "feed 'beds': key 'url' must be http(s)"),
        ({"url": "https://user:pw@x.org/a"}, "must not carry a user name"),
        ({"url": "http://127.0.0.1:6379/"}, "private or loopback address"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "private or loopback address"),
        ({"timezone": "Mars/Olympus"}, "feed 'beds': key 'timezone'"),
        ({"schedule": "often"}, "feed 'beds': key 'schedule'"),
        ({"freshness": "10s"}, "feed 'beds': key 'freshness' must be at least 1 minute"),
        ({"max_bytes": "lots"}, "feed 'beds': key 'max_bytes'"),
        ({"quarantine_share": 2}, "feed 'beds': key 'quarantine_share'"),
        ({"parser": "nope"}, "feed 'beds': key 'parser' 'nope' is not a known parser"),
        ({"source": "operator"}, "feed 'beds': key 'source'"),
        ({"schedul": "5m"}, "feed 'beds': unknown key 'schedul'"),
        ({"allow_private": "yes"}, "feed 'beds': key 'allow_private' must be bool"),
        ({"mapping": {"fields": {"nmae": "Name"}}}, "feed 'beds'.mapping.fields: unknown field 'nmae'"),
        ({"mapping": {}}, "feed 'beds': key 'mapping.fields' is required"),
        (
            {"mapping": {"fields": {"name": "N"}, "availability": [{"fields": {"beds": "B"}}]}},
            "feed 'beds'.mapping.availability[0].fields: unknown field 'beds'",
        ),
        (
            {"mapping": {"fields": {"name": "N"}, "value_maps": {"levels_of_care": {"X": ["spa"]}}}},
            "feed 'beds'.mapping.value_maps.levels_of_care: 'X' maps to unknown value 'spa'",
        ),
        (
            {"mapping": {"fields": {"name": "N"}, "options": {"ndjson": True}}},
            "option 'ndjson' is not read by format 'csv'",
        ),
        ({"format": "push", "url": ""}, "feed 'beds'.push: needs 'hmac_secret_env' or 'bearer_key_env'"),
        ({"credentials": {"header": "Authorization"}}, "feed 'beds'.credentials: key 'env' is required"),
    ],
)
def test_a_wrong_entry_names_the_feed_and_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        registry.parse(one(**change), "feeds.toml", frozenset(PARSERS))
    assert message in str(err.value)


def test_private_destinations_need_an_explicit_allow_list() -> None:
    [feed] = registry.parse(one(url="http://127.0.0.1:8080/beds.csv", allow_private=True)).feeds
    assert feed.allow_private


def test_duplicate_ids_are_refused() -> None:
    data = one()
    data["feed"].append(dict(data["feed"][0]))
    with pytest.raises(ConfigError, match="feed 'beds': key 'id' is used by another feed"):
        registry.parse(data)


def test_a_broken_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text("[[feed]]\nid = 'x'\nformat = \n")
    with pytest.raises(ConfigError, match=str(path)):
        registry.load(path)
    with pytest.raises(ConfigError, match="does not exist"):
        registry.load(tmp_path / "missing.toml")
