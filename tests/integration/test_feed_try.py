"""`centers feed try`: a dry run of a partner's sample through the real command, writing nothing;
and the repairs, unmapped terms and dropped values `centers ingest` and `centers feeds` now print."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from aggregator import cli
from tests.conftest import shared_file
from tests.servers import LoopbackServer, Response, json_response

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"

CSV = b"""Facility ID,Facility,Street,City,State,ZIP,Phone,Services,Detox beds open,Updated
MA-1,Harbor House,1 Main St,Cambridge,MA,2139,(617) 555-0100,OTP/MD/DT,3,2026-11-27T09:45:00-05:00
MA-2,Cedar Clinic,20 Elm St,Boston,MA,02118,617-555-0101,RES,0,2026-11-27T09:00:00-05:00
MA-3,No Zip Center,5 Oak St,Boston,MA,,617-555-0102,DT,1,2026-11-27T09:00:00-05:00
MA-2,Cedar Clinic,20 Elm St,Boston,MA,02118,617-555-0101,RES,2,2026-11-27T10:00:00-05:00
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """No Redis, no registry, a data folder of our own, and a working folder that must stay empty."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    isolated: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("REDIS_", "CENTERS_"))}
    isolated.update({"CENTERS_DATA_DIR": str(tmp_path / "var"), "CENTERS_GEOCODER": "none"})
    return isolated


@pytest.fixture
def no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry run must never open the store (nor start a redis-server)."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("feed try opened the store")

    monkeypatch.setattr(cli, "open_store", refuse)
    monkeypatch.setattr("aggregator.local.redis_process.RedisProcess.start", refuse)


@pytest.fixture
def partner() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    yield server
    server.stop()


def centers(*args: str, env: dict[str, str | None]) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)


def one_line_error(result: Result) -> str:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_a_csv_file_shows_columns_a_suggestion_and_what_would_be_kept(
    tmp_path: Path, env: dict[str, str | None], no_store: None
) -> None:
    sample = tmp_path / "partner.csv"
    sample.write_bytes(CSV)
    result = centers("feed", "try", str(sample), env=env)
    assert result.exit_code == 0, result.output
    out = result.stdout
    # the columns with sample values
    assert "Columns (4 rows; sample values):" in out
    assert "Facility ID" in out and "MA-1 | MA-2 | MA-3" in out
    # the suggestion, as TOML to paste
    assert "[feed.mapping.fields]" in out
    assert 'source_id = "Facility ID"' in out
    assert 'levels_of_care = { from = "Services", split = "/" }' in out
    assert 'fields = { beds_available = "Detox beds open" }' in out
    # what an ingest would do
    assert "4 records: 2 would be kept, 2 rejected" in out
    assert "Harbor House: Cambridge, MA 02139; phones +16175550100; levels detox, mat, otp" in out
    assert "postal_code: empty" in out
    assert "ZIP leading zero restored" in out
    assert "repeated ids: 1 record(s)" in out
    assert "verdict: would be applied: accepted 2 of 4 records" in out


def test_json_output_is_one_object(tmp_path: Path, env: dict[str, str | None], no_store: None) -> None:
    sample = tmp_path / "partner.csv"
    sample.write_bytes(CSV)
    result = centers("feed", "try", str(sample), "--format", "csv", "--json", env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["records"] == 4 and data["accepted"] == 2 and data["rejected"] == 2 and data["repeated"] == 1
    assert data["would_fail"] is False
    assert data["mapping_from"] == "suggestion"
    assert data["mapping"]["fields"]["levels_of_care"] == {"from": "Services", "split": "/"}
    [csv_columns] = data["discovery"]["candidates"]
    assert csv_columns["columns"][0] == {
        "ref": "Facility ID",
        "label": "Facility ID",
        "samples": ["MA-1", "MA-2", "MA-3"],
        "filled": 1.0,
    }
    reasons = {r["reason"]: r for r in data["rejected_by_reason"]}
    assert reasons["postal_code: empty"]["records"] == ["MA-3"]
    assert data["repairs"] == [{"what": "ZIP leading zero restored", "count": 1, "records": ["MA-1"]}]
    assert data["examples"][0]["levels_of_care"] == ["detox", "mat", "otp"]
    assert data["suggestion"]["toml"].startswith("[feed.mapping.fields]")


def test_a_json_file_with_a_mapping_file_using_jmespath(
    tmp_path: Path, env: dict[str, str | None], no_store: None
) -> None:
    sample = tmp_path / "facilities.json"
    sample.write_text(
        json.dumps(
            {
                "meta": {"count": 2},
                "results": [
                    {
                        "id": "A1",
                        "name": "Harbor House",
                        "addr": {"street": "1 Main St", "city": "Cambridge", "state": "MA", "zip": "02139"},
                        "contacts": [
                            {"kind": "main", "number": "617-555-0100"},
                            {"kind": "hotline", "number": "617-555-0199"},
                        ],
                        "care": ["Detox", "Peer support"],
                    },
                    {
                        "id": "A2",
                        "name": "Cedar Clinic",
                        "addr": {"street": "20 Elm St", "city": "Boston", "state": "MA", "zip": "02118"},
                        "contacts": [{"kind": "main", "number": "617-555-0101"}],
                        "care": ["IOP"],
                    },
                ],
            }
        )
    )
    mapping = tmp_path / "mapping.toml"
    mapping.write_text("""records = "results"

[fields]
source_id = "id"
name = "name"
address_1 = "addr.street"
city = "addr.city"
state = "addr.state"
postal_code = "addr.zip"
phone = "contacts[?kind=='main'] | [0].number"
hotline_phone = "contacts[?kind=='hotline'] | [0].number"
levels_of_care = "care"
""")
    result = centers("feed", "try", str(sample), "--mapping", str(mapping), "--json", env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mapping_from"] == str(mapping)
    assert data["accepted"] == 2
    first = data["examples"][0]
    assert first["phones"] == ["+16175550100", "+16175550199 (hotline)"]
    assert data["examples"][1]["phones"] == ["+16175550101"]
    assert data["unmapped"] == [{"what": "levels_of_care: Peer support", "count": 1, "records": ["A1"]}]
    # the key paths were shown all the same
    keys = [c["ref"] for c in data["discovery"]["candidates"][0]["columns"]]
    assert "contacts[*].number" in keys and "addr.zip" in keys

    text = centers("feed", "try", str(sample), "--mapping", str(mapping), env=env)
    assert f"Mapping from {mapping}." in text.stdout
    assert "Suggested mapping" not in text.stdout
    assert "terms left unmapped:" in text.stdout


def test_an_http_url_with_its_next_pages(partner: LoopbackServer, env: dict[str, str | None], no_store: None) -> None:
    for page in ("page1.json", "page2.json"):
        body = json.loads((FIXTURES / "json_paginated" / page).read_text())
        partner.route(f"/api/{page}", json_response(body))
    url = partner.url("/api/page1.json")
    result = centers("feed", "try", url, "--allow-private", "--json", env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["url"].split("?")[0] for d in data["documents"]] == [url, partner.url("/api/page2.json")]
    assert data["mapping"]["next_page"] == "links.next"
    assert data["records"] == 5 and data["accepted"] == 4
    assert data["observations"] >= 5  # the programs list became availability
    assert len(partner.requests("/api/page1.json")) == 1
    assert partner.requests()[0].headers["user-agent"].startswith("center-availability/")


def test_a_loopback_url_needs_allow_private(
    partner: LoopbackServer, env: dict[str, str | None], no_store: None
) -> None:
    partner.route("/beds.csv", Response(200, CSV, {"Content-Type": "text/csv"}))
    result = centers("feed", "try", partner.url("/beds.csv"), env=env)
    assert "pass --allow-private" in one_line_error(result)
    assert partner.requests() == []


def test_it_writes_nothing(tmp_path: Path, env: dict[str, str | None], no_store: None) -> None:
    folder = tmp_path / "package"
    shutil.copytree(FIXTURES / "hsds_csv", folder)
    before = sorted(p.name for p in folder.iterdir())
    result = centers("feed", "try", str(folder / "datapackage.json"), "--format", "hsds", env=env)
    assert result.exit_code == 0, result.output
    assert "Dry run (12 documents" in result.stdout  # the package's tables, read beside it
    assert "3 records: 3 would be kept" in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == before
    assert not (tmp_path / "var").exists()  # no embedded Redis, no data folder
    assert list(Path.cwd().iterdir()) == []


def test_errors_are_one_line(tmp_path: Path, env: dict[str, str | None], no_store: None) -> None:
    sample = tmp_path / "partner.csv"
    sample.write_bytes(CSV)
    bad = tmp_path / "bad.toml"
    bad.write_text('[fields]\nnam = "Facility"\n')
    assert "mapping.fields: unknown field 'nam'" in one_line_error(
        centers("feed", "try", str(sample), "--mapping", str(bad), env=env)
    )
    missing = tmp_path / "missing-column.toml"
    missing.write_text('[fields]\nsource_id = "Facility ID"\nname = "Name of facility"\n')
    assert "CSV columns missing: 'Name of facility'" in one_line_error(
        centers("feed", "try", str(sample), "--mapping", str(missing), env=env)
    )
    assert "cannot tell the format" in one_line_error(centers("feed", "try", str(bad), env=env))
    assert "no such file" in one_line_error(centers("feed", "try", str(tmp_path / "nope.csv"), env=env))
    opaque = tmp_path / "opaque.csv"
    opaque.write_bytes(b"c1,c2\nx,y\n")
    result = centers("feed", "try", str(opaque), env=env)
    assert "no column was recognized" in one_line_error(result)
    assert "c1" in result.stdout  # the columns were shown before the error


@pytest.mark.shared_data
def test_the_samhsa_list_is_mapped_by_its_names(env: dict[str, str | None], no_store: None) -> None:
    path = shared_file("samhsa_sud_facilities_geocoded.csv")
    result = centers("feed", "try", str(path), "--json", env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mapping"]["fields"] == {
        "name": "name1",
        "alternate_name": "name2",
        "address_1": "street1",
        "address_2": "street2",
        "city": "city",
        "state": "state",
        "postal_code": "zip",
        "latitude": "latitude",
        "longitude": "longitude",
    }
    assert data["mapping"]["id_from"]
    assert data["records"] > 14_000
    assert data["accepted"] / data["records"] > 0.95
    assert data["would_fail"] is False


# ------------------------------------------------------------------------ ingest and feeds output

REGISTRY = """[[feed]]
id = "try-ma"
format = "csv"
url = "{url}"
allow_private = true

[feed.mapping.fields]
source_id = "Facility ID"
name = "Facility"
address_1 = "Street"
city = "City"
state = "State"
postal_code = "ZIP"
phone = "Phone"
levels_of_care = {{ from = "Services", split = "/" }}
reported_at = "Updated"

[feed.mapping.value_maps.levels_of_care]
"RES" = ["residential"]
"""


@pytest.fixture
def ingest_env(
    tmp_path: Path, env: dict[str, str | None], redis_url: str, partner: LoopbackServer
) -> dict[str, str | None]:
    registry = tmp_path / "feeds.toml"
    registry.write_text(REGISTRY.format(url=partner.url("/beds.csv")))
    return {
        **env,
        "REDIS_URL": redis_url,
        "CENTERS_KEY_PREFIX": f"feed-try-{tmp_path.name}:",
        "CENTERS_FEEDS_FILE": str(registry),
    }


def test_ingest_and_feeds_print_repairs_unmapped_terms_dropped_values_and_repeats(
    ingest_env: dict[str, str | None], partner: LoopbackServer
) -> None:
    body = CSV + b"MA-5,Odd Codes,1 Elm St,Boston,MA,02118,fax only,XYZ/DT,1,2026-11-27T09:00:00-05:00\n"
    partner.route("/beds.csv", Response(200, body, {"Content-Type": "text/csv"}))
    result = centers("ingest", "try-ma", env=ingest_env)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "try-ma: applied: 5 records, 3 centers, 2 rejected" in out
    assert "repairs made:" in out and "ZIP leading zero restored  (e.g. MA-1)" in out
    assert "terms left unmapped:" in out and "levels_of_care: XYZ  (e.g. MA-5)" in out
    assert "values dropped from kept records:" in out
    assert "repeated ids: 1 record(s)" in out

    feeds = centers("feeds", env=ingest_env)
    assert feeds.exit_code == 0, feeds.output
    assert "last run: 1 repairs, 2 unmapped terms, 1 dropped values, 1 repeated ids" in feeds.stdout


def test_a_failed_ingest_prints_what_it_would_have_lost_before_the_error(
    ingest_env: dict[str, str | None], partner: LoopbackServer
) -> None:
    rows = b"".join(
        b"MA-%d,Center %d,1 Main St,Boston,,,617-555-0100,DT,1,2026-11-27T09:00:00-05:00\n" % (i, i)
        for i in range(10, 20)
    )
    partner.route(
        "/beds.csv",
        Response(
            200,
            CSV.splitlines(keepends=True)[0] + CSV.splitlines(keepends=True)[1] + rows,
            {"Content-Type": "text/csv"},
        ),
    )
    result = centers("ingest", "try-ma", env=ingest_env)
    assert result.exit_code != 0
    error = result.stderr.strip().splitlines()[-1]  # after the progress lines
    assert error.startswith("Error: try-ma: accepted 1 of 11 records")
    assert "try-ma: failed: 11 records, 1 centers, 10 rejected" in result.stdout
    assert "state: empty" in result.stdout
    assert "ZIP leading zero restored" in result.stdout
