"""`centers serve` says why it cannot start (issue 13, item 12): a busy port is named before anything starts,
and an API that exits during start-up is reported with the reason it wrote, on the one line the CLI prints."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.local import serve
from tests.environment import isolated_env


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = isolated_env()
    return {**env, "CENTERS_DATA_DIR": str(tmp_path / "var"), **extra}


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_busy_port_is_named_before_anything_starts(tmp_path: Path, busy_port: int) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aggregator.cli", "serve", "--port", str(busy_port)],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out
    assert out.stderr.strip() == (
        f"Error: port {busy_port} is already in use (address already in use); set CENTERS_API_PORT or pass --port"
    ), out
    assert not (tmp_path / "var" / "redis").exists()  # nothing was started


def test_the_port_from_the_environment_is_checked_too(tmp_path: Path, busy_port: int) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aggregator.cli", "serve"],
        env=clean_env(tmp_path, CENTERS_API_PORT=str(busy_port)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out
    assert f"port {busy_port} is already in use" in out.stderr


def test_an_api_that_exits_during_start_up_says_why(tmp_path: Path, busy_port: int, redis_url: str) -> None:
    """The port taken between the check and the API's own bind: the API's last error line is the reason."""
    log = tmp_path / "api.log"
    log.write_text("ERROR:    an earlier run's last words\n")
    offset = log.stat().st_size
    env = clean_env(tmp_path, REDIS_URL=redis_url, CENTERS_GEOCODER="none")
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "aggregator.api.main:build",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(busy_port),
        "--log-level",
        "warning",
    ]
    with serve._child(args, env, log, "api") as api, pytest.raises(RuntimeError) as raised:
        serve._wait_ready(
            f"http://127.0.0.1:{busy_port}", api, log, 120, log_offset=offset, host="127.0.0.1", port=busy_port
        )
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        f"the API exited during start-up: port {busy_port} is already in use (address "
        "already in use); set CENTERS_API_PORT or pass --port"
    ), (message, log.read_text())
    assert str(log) in message
    assert "earlier run" not in message
