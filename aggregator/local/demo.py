"""Demo partners: one local HTTP server speaking every supported format, for ``centers serve --demo``.

Sites come from the real SAMHSA facility list in ``../shared/data`` where present (real names,
addresses and coordinates in five metros), else from the bundled fictional sample. Their
availability is SIMULATED: it changes every five minutes, each report carries its time, and some
partners fall silent, so freshness shows (live, stale, unknown). Every simulated observation says
so in its notes. The real Los Angeles County bed scrape (historical: it reads stale) and the
SMART Scheduling Links example are served as they are when present.

Phone numbers are FICTIONAL: every demo site without one gets a 555-01xx number of its metro's area
code (reserved for fiction), marked "(demo number)"; the real facilities' own numbers are not in the
SAMHSA list. Reports are stamped before the five-minute period they describe starts, never after now.
The sites nearest each metro's centre (ANCHORS) always offer detox, take Medicaid, report open beds
and never fall silent, so the README's headline search (`centers near 02139 --level-of-care detox
--payment medicaid`) finds fresh availability.

A push partner (``demo-push``) takes signed pushes (``centers push demo-push config/push.example.json``);
its secret is in the environment variable DEMO_PUSH_SECRET, which `centers serve` sets and prints.

    format   metro (SAMHSA)   path
    csv      New York         /csv/beds.csv
    json     Chicago          /json/facilities?page=1   (paginated, next links)
    html     Boston           /html/board.html          (a bed board: FULL, Waitlist (3), 2 beds)
    hsds     Seattle          /hsds/services.json       (HSDS 3.1 with service_capacity)
    smart    Denver           /smart/$bulk-publish      (intake appointments; times from now)
    csv      Los Angeles      /la/beds.csv              (the real county scrape, la_county parser)
    push     (any)            POST /v1/feeds/demo-push/records on the API (signed, Standard Webhooks)
"""

from __future__ import annotations

import csv
import html
import io
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aggregator.geography import haversine_mi
from aggregator.local import sample

PERIOD = 300  # seconds between changes of the simulated availability
NOTE = "simulated for the demo; phone numbers are fictional (555-01xx)"
PHONE_NOTE = "demo number"
METROS = {  # format -> (centre, radius in miles, sample metro name, area code of its fictional numbers)
    "csv": ((40.7128, -74.0060), 6.0, "New York", "212"),
    "json": ((41.8781, -87.6298), 8.0, "Chicago", "312"),
    "html": ((42.3601, -71.0589), 6.0, "Cambridge", "617"),
    "hsds": ((47.6062, -122.3321), 10.0, "Seattle", "206"),
    "smart": ((39.7392, -104.9903), 10.0, "Denver", "303"),
}
MAX_SITES = 60  # at most 100: each site of a metro gets its own 555-01xx number
ANCHORS = 3  # the sites nearest each metro's centre: detox, Medicaid, open beds, never silent

#: the demo's push partner: the feed, and the environment variable holding its signing secret
PUSH_FEED = "demo-push"
PUSH_SECRET_ENV = "DEMO_PUSH_SECRET"  # noqa: S105 - the name of a variable, not a secret


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    street: str
    city: str
    state: str
    zip: str
    lat: float
    lon: float
    phone: str = ""
    #: always offers detox, takes Medicaid, reports open beds and never falls silent
    anchor: bool = False


def _samhsa_sites(path: Path) -> list[Site]:
    from aggregator.feeds.mapping import stable_id

    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        Site(
            stable_id((r["name1"], r["street1"], r["zip"])),
            r["name1"],
            r["street1"],
            r["city"],
            r["state"],
            r["zip"].zfill(5),
            float(r["latitude"]),
            float(r["longitude"]),
        )
        for r in rows
        if r["latitude"] and r["longitude"]
    ]


def _bundled_sites() -> list[Site]:
    rows = list(csv.DictReader(io.StringIO(sample.bundled_sample().decode())))
    return [
        Site(
            r["id"],
            r["name"],
            r["street"],
            r["city"],
            r["state"],
            r["zip"],
            float(r["latitude"]),
            float(r["longitude"]),
            r["phone"],
        )
        for r in rows
    ]


def sites_by_format(shared: Path | None) -> dict[str, list[Site]]:
    samhsa = shared / "samhsa_sud_facilities_geocoded.csv" if shared else None
    everything = _samhsa_sites(samhsa) if samhsa and samhsa.exists() else _bundled_sites()
    out: dict[str, list[Site]] = {}
    for fmt, ((lat, lon), radius, _metro, area_code) in METROS.items():
        unique = {s.id: s for s in everything if haversine_mi(lat, lon, s.lat, s.lon) <= radius}
        nearest = sorted(unique.values(), key=lambda s: (haversine_mi(lat, lon, s.lat, s.lon), s.id))[:MAX_SITES]
        out[fmt] = [
            replace(s, phone=s.phone or demo_phone(area_code, i), anchor=i < ANCHORS) for i, s in enumerate(nearest)
        ]
    return out


def demo_phone(area_code: str, n: int) -> str:
    """A fictional number: 555-0100 to 555-0199 are reserved for fiction in every North American area code."""
    return f"({area_code}) 555-01{n % 100:02d}"


def _phone_cell(site: Site) -> str:
    """The phone as the demo partners write it: the number, marked as a demo number."""
    return f"{site.phone} ({PHONE_NOTE})" if site.phone else ""


def _rng(*parts: object) -> random.Random:
    return random.Random("|".join(map(str, parts)))


def _levels(site: Site) -> list[str]:
    r = _rng("levels", site.id)
    levels = r.sample(["detox", "residential", "outpatient", "iop", "otp"], r.randint(1, 2))
    if site.anchor and "detox" not in levels:
        levels = ["detox", *levels][:2]
    return levels


def _payment(site: Site) -> list[str]:
    r = _rng("pay", site.id)
    payment = r.sample(
        ["Medicaid", "Medicare", "Private health insurance", "Sliding fee", "Cash or self-payment"], r.randint(1, 3)
    )
    if site.anchor and "Medicaid" not in payment:
        payment = ["Medicaid", *payment]
    return payment


def _beds(site: Site, level: str, bucket: int) -> tuple[int, int]:
    total = _rng("total", site.id, level).choice([6, 8, 12, 16, 24])
    choices = [1, 2, 3, 5] if site.anchor and level == "detox" else [0, 0, 0, 1, 2, 3, 5]
    return _rng("beds", site.id, level, bucket).choice(choices), total


def _silent(site: Site, bucket: int) -> bool:
    """One site in seven stops reporting for a while: its data ages into 'unknown'. Anchors never do."""
    return not site.anchor and _rng("silent", site.id, bucket // 6).random() < 1 / 7


class DemoPartners:
    """The demo partners' HTTP server (a thread of ``centers serve``)."""

    def __init__(self, shared: Path | None, clock: Callable[[], float] = time.time) -> None:
        self.sites = sites_by_format(shared)
        self.clock = clock
        self.la_scrape = (shared / "la_county_sud_bed_availability_2025-08-14.csv") if shared else None
        if self.la_scrape is not None and not self.la_scrape.exists():
            self.la_scrape = None
        self.report_times: dict[str, float] = {}  # site id -> when it last reported
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="demo-partners")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> DemoPartners:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---------------------------------------------------------------------------- the documents

    def _now(self) -> tuple[datetime, int]:
        t = self.clock()
        return datetime.fromtimestamp(t, UTC), int(t // PERIOD)

    def _reported(self, site: Site, bucket: int) -> datetime:
        """When the figures of ``bucket`` were reported: in the four minutes before it started, so never after
        now (and the same all through the bucket, so an unchanged document stays unchanged)."""
        if _silent(site, bucket):
            bucket = (bucket // 6) * 6 - 1  # last report before it fell silent
        return datetime.fromtimestamp(bucket * PERIOD - _rng("at", site.id).randint(0, 240), UTC)

    def csv_feed(self) -> bytes:
        _now, bucket = self._now()
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(
            [
                "ID",
                "Name",
                "Street",
                "City",
                "State",
                "ZIP",
                "Lat",
                "Lon",
                "Phone",
                "Services",
                "Payment",
                "Detox open",
                "Detox total",
                "Residential open",
                "Residential total",
                "Updated",
                "Notes",
            ]
        )
        for s in self.sites["csv"]:
            levels = _levels(s)
            d = _beds(s, "detox", bucket) if "detox" in levels else ("", "")
            r = _beds(s, "residential", bucket) if "residential" in levels else ("", "")
            w.writerow(
                [
                    s.id,
                    s.name,
                    s.street,
                    s.city,
                    s.state,
                    s.zip,
                    s.lat,
                    s.lon,
                    _phone_cell(s),
                    "; ".join(levels),
                    "; ".join(_payment(s)),
                    *d,
                    *r,
                    self._reported(s, bucket).strftime("%m/%d/%Y %I:%M %p UTC"),
                    NOTE,
                ]
            )
        return out.getvalue().encode()

    def json_page(self, page: int, per_page: int = 20) -> bytes:
        _now, bucket = self._now()
        sites = self.sites["json"]
        chunk = sites[(page - 1) * per_page : page * per_page]
        facilities = []
        for s in chunk:
            beds = []
            for level in _levels(s):
                open_, total = _beds(s, level, bucket)
                beds.append(
                    {
                        "program": level,
                        "open": open_,
                        "capacity": total,
                        "as_of": self._reported(s, bucket).isoformat(),
                        "note": NOTE,
                    }
                )
            facilities.append(
                {
                    "id": s.id,
                    "name": s.name,
                    "address": {"street": s.street, "city": s.city, "state": s.state, "zip": s.zip},
                    "location": {"lat": s.lat, "lng": s.lon},
                    "phone": _phone_cell(s),
                    "services": _levels(s),
                    "payment": _payment(s),
                    "beds": beds,
                }
            )
        more = page * per_page < len(sites)
        return json.dumps(
            {"data": {"facilities": facilities}, "links": {"next": f"facilities?page={page + 1}" if more else None}}
        ).encode()

    def html_board(self) -> bytes:
        _now, bucket = self._now()
        rows = []
        for s in self.sites["html"]:
            cells = []
            for level in ("detox", "residential"):
                if level not in _levels(s):
                    cells.append("N/A")
                    continue
                open_, _total = _beds(s, level, bucket)
                waiting = _rng("wait", s.id, level, bucket).randint(0, 6)
                cells.append(f"{open_} beds" if open_ else (f"Waitlist ({waiting})" if waiting else "FULL"))
            rows.append(
                f"<tr><td><a href='/html/site/{s.id}'>{html.escape(s.name)}</a></td><td>{html.escape(s.street)}</td>"
                f"<td>{html.escape(s.city)}</td><td>{s.zip}</td><td>{html.escape(_phone_cell(s))}</td>"
                f"<td>{cells[0]}</td><td>{cells[1]}</td>"
                f"<td>{self._reported(s, bucket).strftime('%Y-%m-%d %H:%M')} UTC</td>"
                f"<td>{html.escape('; '.join(_payment(s)))}</td></tr>"
            )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Demo bed board</title></head><body>"
            f"<p>{NOTE}</p><table id='beds'><thead><tr><th>Program</th><th>Street</th><th>City</th><th>ZIP</th>"
            "<th>Phone</th><th>Detox</th><th>Residential</th><th>Updated</th><th>Payment</th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table></body></html>"
        ).encode()

    def hsds_page(self) -> bytes:
        _now, bucket = self._now()
        services = []
        for s in self.sites["hsds"]:
            level = _levels(s)[0]
            open_, total = _beds(s, level, bucket)
            services.append(
                {
                    "id": f"svc-{s.id}",
                    "name": f"{level.title()} program",
                    "status": "active",
                    "description": f"{level} treatment ({NOTE})",
                    "organization": {"id": f"org-{s.id}", "name": s.name},
                    "cost_options": [{"id": f"cost-{s.id}-{i}", "option": p} for i, p in enumerate(_payment(s))],
                    "capacities": [
                        {
                            "id": f"cap-{s.id}",
                            "available": open_,
                            "maximum": total,
                            "unit": {"name": "Bed"},
                            "updated": self._reported(s, bucket).isoformat(),
                            "description": NOTE,
                        }
                    ],
                    "service_at_locations": [
                        {
                            "id": f"sal-{s.id}",
                            "location": {
                                "id": f"loc-{s.id}",
                                "location_type": "physical",
                                "name": s.name,
                                "latitude": s.lat,
                                "longitude": s.lon,
                                "phones": [{"number": s.phone, "description": PHONE_NOTE}] if s.phone else [],
                                "addresses": [
                                    {
                                        "address_1": s.street,
                                        "city": s.city,
                                        "state_province": s.state,
                                        "postal_code": s.zip,
                                        "country": "US",
                                        "address_type": "physical",
                                    }
                                ],
                            },
                        }
                    ],
                }
            )
        return json.dumps(
            {"total_items": len(services), "total_pages": 1, "page_number": 1, "contents": services}
        ).encode()

    def smart_manifest(self) -> bytes:
        now, _bucket = self._now()
        return json.dumps(
            {
                "transactionTime": now.isoformat().replace("+00:00", "Z"),
                "request": f"{self.base}/smart/$bulk-publish",
                "error": [],
                "output": [
                    {"type": t, "url": f"{self.base}/smart/{t.lower()}s.ndjson"}
                    for t in ("Location", "Schedule", "Slot")
                ],
            }
        ).encode()

    def smart_file(self, kind: str) -> bytes:
        now, bucket = self._now()
        lines = []
        for s in self.sites["smart"]:
            if kind == "locations":
                lines.append(
                    {
                        "resourceType": "Location",
                        "id": s.id[:64],
                        "name": s.name,
                        "telecom": [{"system": "phone", "value": s.phone}] if s.phone else [],
                        "address": {"line": [s.street], "city": s.city, "state": s.state, "postalCode": s.zip},
                        "position": {"latitude": s.lat, "longitude": s.lon},
                    }
                )
            elif kind == "schedules":
                lines.append(
                    {
                        "resourceType": "Schedule",
                        "id": f"sch-{s.id}"[:64],
                        "actor": [{"reference": f"Location/{s.id[:64]}"}],
                    }
                )
            else:
                r = _rng("slots", s.id, bucket)
                for i in range(4):
                    start = now + timedelta(hours=4 * i + r.randint(1, 3))
                    lines.append(
                        {
                            "resourceType": "Slot",
                            "id": f"slot-{s.id}-{i}"[:64],
                            "schedule": {"reference": f"Schedule/sch-{s.id}"[:73]},
                            "status": "free" if r.random() < 0.4 else "busy",
                            "start": start.isoformat().replace("+00:00", "Z"),
                            "end": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
                        }
                    )
        return "\n".join(json.dumps(x) for x in lines).encode() + b"\n"

    # -------------------------------------------------------------------------------- serving

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        partners = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # http.server's name for it
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                routes: dict[str, tuple[str, Callable[[], bytes]]] = {
                    "/csv/beds.csv": ("text/csv", partners.csv_feed),
                    "/json/facilities": (
                        "application/json",
                        lambda: partners.json_page(int((query.get("page") or ["1"])[0] or 1)),
                    ),
                    "/html/board.html": ("text/html; charset=utf-8", partners.html_board),
                    "/hsds/services.json": ("application/json", partners.hsds_page),
                    "/smart/$bulk-publish": ("application/json", partners.smart_manifest),
                    "/smart/locations.ndjson": ("application/fhir+ndjson", lambda: partners.smart_file("locations")),
                    "/smart/schedules.ndjson": ("application/fhir+ndjson", lambda: partners.smart_file("schedules")),
                    "/smart/slots.ndjson": ("application/fhir+ndjson", lambda: partners.smart_file("slots")),
                }
                if partners.la_scrape is not None:
                    la = partners.la_scrape
                    routes["/la/beds.csv"] = ("text/csv", la.read_bytes)
                found = routes.get(parts.path)
                if found is None:
                    self.send_error(404)
                    return
                kind, make = found
                body = make()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    # ------------------------------------------------------------------------------ registry

    def registry_toml(self) -> str:
        """The demo's partner registry: ``demo_feeds.toml`` (and ``demo_la_county.toml`` when the real LA County
        scrape is at hand) with this server's address, the demo note and the push partner's names filled in
        (``@BASE@``, ``@NOTE@``, ``@PUSH_FEED@``, ``@PUSH_SECRET_ENV@``)."""
        here = resources.files("aggregator.local")
        text = here.joinpath("demo_feeds.toml").read_text(encoding="utf-8")
        if self.la_scrape is not None:
            text += "\n" + here.joinpath("demo_la_county.toml").read_text(encoding="utf-8")
        for token, value in (
            ("@BASE@", self.base),
            ("@NOTE@", NOTE),
            ("@PUSH_FEED@", PUSH_FEED),
            ("@PUSH_SECRET_ENV@", PUSH_SECRET_ENV),
        ):
            text = text.replace(token, value)
        return text
