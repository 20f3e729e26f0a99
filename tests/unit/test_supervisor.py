"""`centers serve`'s supervisor: a worker that had consumed is started again at once; one that dies before
it ever consumed (a crash loop) backs off 1, 2, 4 ... 30 s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aggregator.local import serve


class Dead:
    """A worker process that has exited (never a real process: os.killpg on it is refused harmlessly)."""

    pid = 2**22 + 12345  # above the default pid_max: no such process
    returncode = 1

    def poll(self) -> int:
        return self.returncode


class Alive(Dead):
    def poll(self) -> Any:
        return None


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(serve.time, "monotonic", lambda: now[0])
    return now


def delays(supervisor: serve._Supervisor, clock: list[float], healthy: bool, n: int) -> list[float]:
    """Let the worker die n times; the delay the supervisor chose each time."""
    out = []
    for _ in range(n):
        clock[0] += 2  # the new worker lives 2 s
        dead: Any = Dead()
        assert not supervisor.due(dead, healthy=healthy)
        assert supervisor.restart_at is not None
        out.append(supervisor.restart_at - clock[0])
        clock[0] = supervisor.restart_at
        assert supervisor.due(dead, healthy=healthy)  # its wait is over: start it
    return out


def test_backoff_grows_only_for_a_crash_loop(clock: list[float], tmp_path: Path) -> None:
    said: list[str] = []
    supervisor = serve._Supervisor(said.append, tmp_path / "worker.log")
    clock[0] += serve._Supervisor.STABLE_SECONDS + 1  # the first worker ran a while, then died
    assert delays(supervisor, clock, healthy=False, n=1) == [1.0]
    # each new worker dies 2 s after it starts, before it ever consumed: a crash loop
    assert delays(supervisor, clock, healthy=False, n=6) == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    # a worker that had consumed (it beat) and then died is started again at once
    assert delays(supervisor, clock, healthy=True, n=3) == [1.0, 1.0, 1.0]
    assert all("The API stays up." in line for line in said)
    assert supervisor.generation == 10


def test_a_running_worker_is_left_alone(clock: list[float], tmp_path: Path) -> None:
    supervisor = serve._Supervisor(lambda _m: None, tmp_path / "worker.log")
    alive: Any = Alive()
    clock[0] += 3600
    assert not supervisor.due(alive, healthy=True)
    assert supervisor.restart_at is None


def test_the_watch_takes_a_silent_worker_for_hung_only_while_redis_answers(clock: list[float]) -> None:
    watch = serve._Watch({}, None)
    started = clock[0]
    clock[0] += serve.HEARTBEAT_LAPSE + 1
    assert not watch.silent("serve-1-0", started)  # Redis not reached yet: no judgement
    watch.redis_ok = True
    assert watch.silent("serve-1-0", started)
    watch.beating["serve-1-0"] = clock[0] - 5
    assert not watch.silent("serve-1-0", started)
    assert watch.has_beaten("serve-1-0") and not watch.has_beaten("serve-1-1")
