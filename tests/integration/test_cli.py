"""The `centers` command as a user runs it: a subprocess, its own Redis when none is configured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.local.redis_process import ping
from tests.environment import isolated_env


def centers(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    return isolated_env(CENTERS_DATA_DIR=str(tmp_path / "var"), CENTERS_GEOCODER="none")


def test_near_starts_its_own_redis_and_answers_in_json(clean_env: dict[str, str], tmp_path: Path) -> None:
    loaded = centers("load-sample", "--bundled", env=clean_env)
    assert loaded.returncode == 0, loaded.stderr
    assert "44 centers" in loaded.stdout
    result = centers("near", "02139", "--json", "--level-of-care", "detox", env=clean_env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["origin"]["place"] == "Cambridge, MA"
    assert answer["results"], answer
    assert all("detox" in r["services"]["levels_of_care"] for r in answer["results"])
    distances = [r["distance_mi"] for r in answer["results"]]
    assert distances == sorted(distances)
    # the data persisted in the data folder, and the private redis-server is gone
    assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()
    assert not (tmp_path / "var" / "redis" / "url").exists()


def test_near_prints_a_table(clean_env: dict[str, str]) -> None:
    assert centers("load-sample", "--bundled", env=clean_env).returncode == 0
    result = centers("near", "90013", "--radius", "10", env=clean_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Centers within 10 miles of Los Angeles, CA")
    assert " mi " in lines[1]
    assert "+1213555" in lines[1]


def test_with_redis_url_it_uses_that_redis(redis_url: str, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "REDIS_URL": redis_url, "CENTERS_KEY_PREFIX": "cli-test:"}
    assert centers("load-sample", "--bundled", env=env).returncode == 0
    result = centers("near", "42.3647,-71.1042", "--json", "--limit", "3", env=env)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["results"]) == 3
    assert not (Path(clean_env["CENTERS_DATA_DIR"]) / "redis").exists()
    host, port = redis_url.split("//")[1].split("/")[0].split(":")
    assert ping(host, int(port))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["near", "1 Main St, Springfield, MA"], "enter a ZIP code, 'lat,lon' or 'City, ST' (address search is off)"),
        (["near", "99999"], "ZIP code '99999' does not exist"),
        (["near", "02139", "--payment", "gold"], "payment: 'gold' is not one of"),
    ],
)
def test_errors_are_one_line_and_a_nonzero_exit(clean_env: dict[str, str], args: list[str], message: str) -> None:
    assert centers("load-sample", "--bundled", env=clean_env).returncode == 0
    result = centers(*args, env=clean_env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_config_names_the_feed_and_the_key(clean_env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "feeds.toml"
    broken.write_text(
        '[[feed]]\nid = "ma-beds"\nformat = "csv"\nurl = "https://x.example/b.csv"\n'
        'schedule = "every so often"\n[feed.mapping.fields]\nname = "Name"\n'
    )
    result = centers("check-config", env={**clean_env, "CENTERS_FEEDS_FILE": str(broken)})
    assert result.returncode != 0
    assert "feed 'ma-beds': key 'schedule'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    example = Path(__file__).resolve().parents[2] / "config" / "feeds.example.toml"
    ok = centers("check-config", env={**clean_env, "CENTERS_FEEDS_FILE": str(example)})
    assert ok.returncode == 0, ok.stderr
    assert "feeds ok" in ok.stdout
    assert "MA_BEDS_TOKEN is not set" in ok.stdout  # a warning, not an error


def test_a_wrong_setting_is_one_line(clean_env: dict[str, str]) -> None:
    result = centers("check-config", env={**clean_env, "CENTERS_RATE_LIMIT": "lots"})
    assert result.returncode != 0
    assert "CENTERS_RATE_LIMIT" in result.stderr


def test_ingest_feeds_and_report(clean_env: dict[str, str], tmp_path: Path) -> None:
    from tests.servers import LoopbackServer, Response

    partner = LoopbackServer().start()
    try:
        partner.route(
            "/beds.csv",
            Response(
                200,
                b"ID,Name,State,ZIP,Lat,Lon,Services,Detox beds\nA1,Cambridge Detox,MA,02139,42.365,-71.104,DT,4\n",
                {"Content-Type": "text/csv"},
            ),
        )
        feeds = tmp_path / "feeds.toml"
        feeds.write_text(f'''[[feed]]
id = "beds"
format = "csv"
url = "{partner.url("/beds.csv")}"
allow_private = true
[feed.mapping.fields]
source_id = "ID"
name = "Name"
state = "State"
postal_code = "ZIP"
latitude = "Lat"
longitude = "Lon"
levels_of_care = "Services"
[[feed.mapping.availability]]
constants = {{ level_of_care = "detox" }}
fields = {{ beds_available = "Detox beds" }}
''')
        env = {**clean_env, "CENTERS_FEEDS_FILE": str(feeds)}
        ran = centers("ingest", "beds", env=env)
        assert ran.returncode == 0, ran.stderr
        assert "beds: applied: 1 records, 1 centers, 0 rejected, 1 observations" in ran.stdout
        assert "fetching" in ran.stderr  # progress
        health = centers("feeds", "--json", env=env)
        [feed] = json.loads(health.stdout)
        assert (feed["id"], feed["status"], feed["accepted"]) == ("beds", "ok", 1)
        table = centers("feeds", env=env).stdout
        assert "last checked" in table and "last changed" in table and "never" not in table, table
        reported = centers(
            "report",
            "beds:A1",
            "--level-of-care",
            "detox",
            "--status",
            "full",
            "--beds",
            "0",
            "--expires",
            "2h",
            "--by",
            "dana",
            env=env,
        )
        assert reported.returncode == 0, reported.stderr
        assert "recorded by dana" in reported.stdout
        answer = json.loads(centers("near", "02139", "--json", env=env).stdout)
        [detox] = answer["results"][0]["availability"]
        assert (detox["source"], detox["status"], detox["beds_available"]) == ("operator", "full", 0)
        missing = centers("report", "beds:nope", "--level-of-care", "detox", "--status", "full", env=env)
        assert missing.returncode != 0
        assert "no center 'beds:nope'" in missing.stderr
        unknown = centers("ingest", "nope", env=env)
        assert unknown.returncode != 0
        assert "no feed 'nope'" in unknown.stderr
    finally:
        partner.stop()


def test_matches_lists_undecided_pairs_and_confirm_links_them(redis_url: str, clean_env: dict[str, str]) -> None:
    from datetime import UTC, datetime

    from aggregator.model import Address, Center, GeoPrecision
    from aggregator.store import Store

    env = {**clean_env, "REDIS_URL": redis_url, "CENTERS_KEY_PREFIX": "cli-match:"}
    store = Store.from_url(redis_url, "cli-match:")
    for key in store.redis.scan_iter("cli-match:*"):
        store.redis.delete(key)
    address = Address(address_1="77 Broadway", city="Cambridge", state="MA", postal_code="02142")
    for sid, name, lat in (("m-1", "Broadway Recovery Services", 42.3629), ("m-2", "Kendall Counseling", 42.3650)):
        store.replace_feed(
            "f",
            [
                Center(
                    id=f"f:{sid}",
                    feed_id="f",
                    source_id=sid,
                    name=name,
                    address=address,
                    latitude=lat,
                    longitude=-71.0850,
                    geo_precision=GeoPrecision.FEED,
                )
            ],
            [],
            now=datetime.now(UTC),
            partial=True,
        )
    assert centers("matches", env=env).stdout.strip() == "No pairs waiting for a decision."
    store.redis.hset(
        store.keys.matches,
        "f:m-2|f:m-1",
        b'{"record": "f:m-2", "facility": "f:m-1", "rule": "name", "scores": {"name": 40}}',
    )
    listed = centers("matches", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "f:m-2  Kendall Counseling, 77 Broadway Cambridge" in listed.stdout
    assert "centers matches confirm f:m-2 f:m-1" in listed.stdout
    done = centers("matches", "confirm", "f:m-2", "f:m-1", env=env)
    assert (done.returncode, done.stdout.strip()) == (0, "f:m-2 is now part of f:m-1")
    assert store.facility_of("f:m-2") == "f:m-1"
    missing = centers("matches", "split", "f:nope", "f:m-1", env=env)
    assert missing.returncode != 0 and "no record or facility 'f:nope'" in missing.stderr


def test_push_to_an_api_that_is_not_there_says_so(clean_env: dict[str, str]) -> None:
    from aggregator.local.redis_process import free_port

    example = Path(__file__).resolve().parents[2] / "config" / "push.example.json"
    env = {**clean_env, "PUSH_SECRET": "a-secret-for-nobody"}
    result = centers("push", "demo-push", str(example), "--url", f"http://127.0.0.1:{free_port()}", env=env)
    assert result.returncode == 1
    assert "cannot reach the API at http://127.0.0.1:" in result.stderr and "ConnectionError" in result.stderr
