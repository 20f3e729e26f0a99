"""The fault matrix: faults injected into the running service, each scenario run RUNS times, with the
invariants (``aggregator.invariants.check``) checked after every run. RELIABILITY.md reports the table
this prints at the end of the session.

Accepted means applied: every push answered 202 is applied within BOUND seconds of the fault ending, and
nothing newer is ever overwritten by something older.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.invariants import check
from tests.faults.matrix import row as matrix_row
from tests.faults.rig import COUNTY_SIZE, TIMINGS, Partner, Rig, county_newest

pytestmark = pytest.mark.slow

RUNS = 5
BOUND = 60.0  # seconds: an accepted push is applied within this of the fault ending
LEASE = float(TIMINGS["CENTERS_LOCK_LEASE_SECONDS"])


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(Path(tmp_path_factory.mktemp("faults"))).start()
    yield r
    r.stop()


def settle(rig: Rig, partner: Partner, generation: int | None, since: float, what: str) -> float:
    """Seconds from ``since`` until every accepted push and the county run are applied, nothing pending."""

    def state() -> dict[str, object]:
        return {
            "pushes done": rig.pushes_done(partner.accepted),
            "county applied": generation is None or rig.county_applied(generation),
            "pending": rig.data.stale_pushes(datetime.now(UTC).replace(year=2100))[:5],
            "county locked": rig.data.lock_held("feed:county"),
            # a run's records are written before its figures and its flip: applied means no write in progress
            "staged writes": [g.decode() for g in rig.data.redis.hkeys(rig.data.keys.staging)],
        }

    def settled() -> bool:
        s = state()
        return bool(
            s["pushes done"]
            and s["county applied"]
            and not s["pending"]
            and not s["county locked"]
            and not s["staged writes"]
        )

    try:
        rig.wait(settled, BOUND + 30, what)
    except AssertionError as exc:
        raise AssertionError(f"{state()}\n{exc}") from None
    return time.monotonic() - since


def invariants(rig: Rig, partner: Partner, generation: int) -> list[str]:
    newest = {**county_newest(generation), **partner.newest}
    return [
        str(v)
        for v in check(
            rig.data,
            now=datetime.now(UTC),
            pushes=partner.accepted,
            newest=newest,
            feed_sizes={"county": COUNTY_SIZE},
            lock_lease_seconds=LEASE,
            quiet=True,
        )
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_redis_restart_during_pushes_and_a_5000_center_run(rig: Rig, sig: signal.Signals) -> None:
    row = matrix_row(
        f"Redis {sig.name} during pushes and a 5,000-center feed run",
        f"{sig.name} to redis-server (data and broker, AOF fsync always) 0-1 s into the run, back 0.5 s later",
    )
    seen = rig.events()
    for _ in range(RUNS):
        rig.wait(rig.steady, 60, "a worker that consumes")
        partner = Partner(rig.api)
        thread = partner.start(40)
        rig.wait(lambda p=partner: p.sent >= 10, 30, "the first pushes")  # type: ignore[misc]
        before = rig.data.feed_state("county").last_attempt
        generation = rig.run_county()
        rig.wait(lambda b=before: rig.data.feed_state("county").last_attempt != b, 30, "the run to start")
        time.sleep(random.uniform(0, 1.0))
        rig.restart_redis(sig)
        back = time.monotonic()
        thread.join(120)
        assert partner.sent == 40, f"the partner could push only {partner.sent} of 40"
        took = settle(rig, partner, generation, back, f"recovery after {sig.name}")
        row.add(partner, took, COUNTY_SIZE, invariants(rig, partner, generation))
    row.notes.update(+(rig.events() - seen))
    row.assert_held(BOUND)


@pytest.mark.parametrize("target", ["main", "pool"])
def test_worker_killed_with_queued_pushes(rig: Rig, target: str) -> None:
    what = "the worker's main process" if target == "main" else "a worker pool child"
    row = matrix_row(
        f"Worker SIGKILL ({'main process' if target == 'main' else 'pool child'}) with queued pushes",
        f"SIGKILL to {what} while 40 pushes are in flight",
    )
    seen = rig.events()
    for _ in range(RUNS):
        rig.wait(rig.steady, 60, "a worker that consumes")  # one replaced by the previous scenario, too
        before_workers = rig.beating() if target == "main" else set()
        partner = Partner(rig.api)
        thread = partner.start(40, pause=0.0)
        rig.wait(lambda p=partner: p.sent >= 5, 30, "the first pushes")  # type: ignore[misc]
        time.sleep(random.uniform(0, 0.5))
        main = rig.worker_main()
        if target == "main":
            main.kill()
        else:
            children = [c for c in main.children() if c.is_running()]
            random.choice(children).kill()
        killed = time.monotonic()
        thread.join(120)
        took = settle(rig, partner, None, killed, f"recovery after killing {what}")
        if target == "main":
            rig.wait(lambda b=before_workers: rig.worker_ready(b), 60, "the restarted worker")  # type: ignore[misc]
        row.add(partner, took, 0, invariants(rig, partner, rig.generation))
    row.notes.update(+(rig.events() - seen))
    row.assert_held(BOUND)
