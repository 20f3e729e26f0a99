"""Test session fixtures: a real redis-server started on a free port for this session only."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.local.redis_process import RedisProcess
from aggregator.store import Store

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_file(name: str) -> Path:
    """A file of ../shared/data, or a skip saying it is absent (a clone outside the workplace)."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared data {path} is absent; this test reads real public data from it")
    return path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"), persistent=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisProcess) -> str:
    return redis_server.url


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    s = Store.from_url(redis_url)
    s.redis.flushdb()
    yield s
    s.redis.connection_pool.disconnect()


ROWS_DIR = "CENTERS_TEST_FAULT_ROWS"


def pytest_configure(config: pytest.Config) -> None:
    """Where test processes (pytest-xdist workers) leave their fault-matrix rows for the table; and a state
    folder of each process's own, so the `centers serve` a test starts is never found by the user's CLI (nor
    a user's running service by a test)."""
    if not hasattr(config, "workerinput") and ROWS_DIR not in os.environ:
        os.environ[ROWS_DIR] = tempfile.mkdtemp(prefix="fault-rows-")
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="centers-test-state-")


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests.faults.matrix import ROWS, dump

    workerinput = getattr(session.config, "workerinput", None)
    if workerinput is not None and ROWS and os.environ.get(ROWS_DIR):
        dump(Path(os.environ[ROWS_DIR]) / f"{workerinput['workerid']}.json")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault matrix's table (RELIABILITY.md), when fault scenarios ran."""
    from tests.faults.matrix import ROWS, load, summary

    if hasattr(terminalreporter.config, "workerinput"):
        return  # a worker: the controller prints the table
    folder = os.environ.get(ROWS_DIR)
    if folder and Path(folder).is_dir():
        for path in sorted(Path(folder).glob("*.json")):
            load(path)
        shutil.rmtree(folder, ignore_errors=True)
    if ROWS:
        terminalreporter.section("fault matrix (RELIABILITY.md)")
        summary(terminalreporter.write_line)
