"""The demo partners' documents (issue 13, item 11): every site has a fictional phone number marked as a
demo number, no report is stamped after now, the sites nearest each metro offer detox and take Medicaid,
and the registry has a push partner. Pure: the documents are built with a fixed clock, nothing is served."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from aggregator.local import demo
from aggregator.local.demo import ANCHORS, PERIOD, PUSH_FEED, PUSH_SECRET_ENV, DemoPartners
from config import registry
from tests.conftest import SHARED_DATA

DEMO_PHONE = re.compile(r"^\(\d{3}\) 555-01\d\d \(demo number\)$")
BUCKET_START = 1_900_000_200  # a multiple of PERIOD
assert BUCKET_START % PERIOD == 0


def sources() -> list[Path | None]:
    return [None, SHARED_DATA] if SHARED_DATA.is_dir() else [None]


@pytest.fixture(params=sources(), ids=lambda p: "shared" if p else "bundled")
def partners(request: pytest.FixtureRequest) -> Iterator[DemoPartners]:
    p = DemoPartners(request.param)  # never started: the documents are built directly
    yield p
    p.httpd.server_close()


def at(partners: DemoPartners, t: float) -> DemoPartners:
    partners.clock = lambda: t
    return partners


def csv_rows(partners: DemoPartners) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(partners.csv_feed().decode())))


def json_facilities(partners: DemoPartners) -> list[dict[str, object]]:
    out, page = [], 1
    while True:
        doc = json.loads(partners.json_page(page))
        out += doc["data"]["facilities"]
        if not doc["links"]["next"]:
            return out
        page += 1


def html_rows(partners: DemoPartners) -> list[list[str]]:
    soup = BeautifulSoup(partners.html_board(), "html.parser")
    return [[td.get_text() for td in tr.find_all("td")] for tr in soup.select("table#beds tbody tr")]


def test_every_demo_site_has_a_fictional_phone_marked_as_a_demo_number(partners: DemoPartners) -> None:
    at(partners, BUCKET_START)
    for fmt, sites in partners.sites.items():
        assert sites, fmt
        numbers = [s.phone for s in sites]
        assert all(re.fullmatch(r"\(\d{3}\) 555-01\d\d", n) for n in numbers), (fmt, numbers)
    assert {r["Phone"] for r in csv_rows(partners)} and all(DEMO_PHONE.match(r["Phone"]) for r in csv_rows(partners))
    assert all(DEMO_PHONE.match(str(f["phone"])) for f in json_facilities(partners))
    assert all(DEMO_PHONE.match(row[4]) for row in html_rows(partners))
    for service in json.loads(partners.hsds_page())["contents"]:
        [phone] = service["service_at_locations"][0]["location"]["phones"]
        assert re.fullmatch(r"\(\d{3}\) 555-01\d\d", phone["number"]) and phone["description"] == "demo number"
    for line in partners.smart_file("locations").decode().splitlines():
        [telecom] = json.loads(line)["telecom"]
        assert re.fullmatch(r"\(\d{3}\) 555-01\d\d", telecom["value"])


def test_the_real_facilities_get_distinct_numbers_in_their_metro(partners: DemoPartners) -> None:
    for fmt, sites in partners.sites.items():
        numbers = [s.phone for s in sites]
        assert len(set(numbers)) == len(numbers), fmt


@pytest.mark.parametrize("offset", [0, 1, 59, 60, 120, 239, 240, 241, 299])
def test_no_report_is_stamped_after_now(partners: DemoPartners, offset: int) -> None:
    now = BUCKET_START + offset
    at(partners, now)
    limit = datetime.fromtimestamp(now, UTC)
    stamps = [datetime.strptime(r["Updated"], "%m/%d/%Y %I:%M %p UTC").replace(tzinfo=UTC) for r in csv_rows(partners)]
    stamps += [datetime.fromisoformat(str(b["as_of"])) for f in json_facilities(partners) for b in f["beds"]]  # type: ignore[attr-defined]
    stamps += [datetime.strptime(row[7], "%Y-%m-%d %H:%M UTC").replace(tzinfo=UTC) for row in html_rows(partners)]
    stamps += [
        datetime.fromisoformat(c["updated"])
        for s in json.loads(partners.hsds_page())["contents"]
        for c in s["capacities"]
    ]
    assert stamps
    assert max(stamps) <= limit


def test_a_document_is_the_same_all_through_its_period(partners: DemoPartners) -> None:
    """Reports stamped before their period starts: a feed fetched twice in one period reads unchanged."""
    first = at(partners, BUCKET_START + 1).csv_feed(), partners.html_board(), partners.json_page(1)
    assert (at(partners, BUCKET_START + PERIOD - 1).csv_feed(), partners.html_board(), partners.json_page(1)) == first


def test_the_sites_nearest_each_metro_offer_detox_take_medicaid_and_report(partners: DemoPartners) -> None:
    for bucket in range(BUCKET_START // PERIOD, BUCKET_START // PERIOD + 60):
        at(partners, bucket * PERIOD + 7)
        for sites in partners.sites.values():
            for site in sites[:ANCHORS]:
                assert site.anchor
                assert "detox" in demo._levels(site)
                assert "Medicaid" in demo._payment(site)
                assert not demo._silent(site, bucket)
                assert demo._beds(site, "detox", bucket)[0] > 0
        board = html_rows(partners)
        anchors = [row for row in board if row[0] in {s.name for s in partners.sites["html"][:ANCHORS]}]
        assert anchors
        assert all("Medicaid" in row[8] and row[5].endswith("beds") for row in anchors), anchors


def test_the_registry_has_a_push_partner_with_a_secret_from_the_environment(
    partners: DemoPartners, tmp_path: Path
) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(partners.registry_toml())
    reg = registry.load(path)
    feed = reg.get(PUSH_FEED)
    assert feed.format == "push" and feed.push is not None
    assert feed.push.hmac_secret_env == (PUSH_SECRET_ENV,)
    assert "payment" in reg.get("demo-html").mapping.fields
    # the example a partner pushes is read by this feed's mapping
    example = json.loads((Path(__file__).resolve().parents[2] / "config" / "push.example.json").read_text())
    assert {"id", "name", "zip", "services", "payment", "detox_beds"} <= set(example[0])
    assert set(example[0]) - {"notes"} <= set(feed.mapping.fields.values()) | {
        ref for a in feed.mapping.availability for ref in a.fields.values()
    }
