"""What `centers serve` keeps in its data folder (issue 13, item 14) and how it says why the API did not start
(item 12), without starting anything."""

from __future__ import annotations

import stat
from pathlib import Path

from aggregator.local import serve
from config.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_operator_token_is_kept_owner_only_and_reused(tmp_path: Path) -> None:
    settings = Settings()
    first = serve.operator_token(settings, tmp_path)
    assert len(first) >= 16
    path = tmp_path / serve.TOKEN_FILE
    assert path.read_text().strip() == first
    assert mode(path) == 0o600
    assert serve.operator_token(settings, tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [serve.TOKEN_FILE]  # no temporary file left behind


def test_a_token_file_others_could_read_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / serve.TOKEN_FILE
    path.write_text("operator-chosen-token-0123\n")
    path.chmod(0o644)
    assert serve.operator_token(Settings(), tmp_path) == "operator-chosen-token-0123"
    assert mode(path) == 0o600


def test_a_token_file_that_holds_no_token_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / serve.TOKEN_FILE
    path.write_text("short\n")
    token = serve.operator_token(Settings(), tmp_path)
    assert token != "short" and len(token) >= 16
    assert path.read_text().strip() == token and mode(path) == 0o600


def test_deleting_the_file_rotates_the_token(tmp_path: Path) -> None:
    first = serve.operator_token(Settings(), tmp_path)
    (tmp_path / serve.TOKEN_FILE).unlink()
    assert serve.operator_token(Settings(), tmp_path) != first


def test_configured_operator_tokens_win_and_no_file_is_written(tmp_path: Path) -> None:
    settings = Settings.from_env({"CENTERS_OPERATOR_TOKENS": "dana:dana-token-0123456789"})
    assert serve.operator_token(settings, tmp_path) == ""
    assert not (tmp_path / serve.TOKEN_FILE).exists()


def test_the_demo_push_secret_is_kept_the_same_way(tmp_path: Path) -> None:
    secret = serve.kept_secret(tmp_path / serve.PUSH_SECRET_FILE)
    assert serve.kept_secret(tmp_path / serve.PUSH_SECRET_FILE) == secret
    assert mode(tmp_path / serve.PUSH_SECRET_FILE) == 0o600


UVICORN_BIND = """\
INFO:     Started server process [4242]
INFO:     Waiting for application startup.
INFO:     Application startup complete.
ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 8000): address already in use
INFO:     Waiting for application shutdown.
INFO:     Application shutdown complete.
"""


def test_a_failed_bind_is_said_plainly() -> None:
    assert serve.exit_reason(UVICORN_BIND, "127.0.0.1", 8000) == (
        "port 8000 is already in use (address already in use); set CENTERS_API_PORT or pass --port"
    )
    ipv6 = (
        "ERROR:    [Errno 99] error while attempting to bind on address ('::1', 8000, 0, 0): cannot assign "
        "requested address\n"
    )
    assert serve.exit_reason(ipv6, "::1", 8000).startswith(
        "cannot listen on ::1:8000 (cannot assign requested address)"
    )


def test_a_traceback_gives_its_last_line() -> None:
    log = (
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        "aggregator.errors.ConfigError: setting CENTERS_RATE_LIMIT='x': invalid literal for int()\n"
    )
    assert serve.exit_reason(log, "127.0.0.1", 8000) == (
        "aggregator.errors.ConfigError: setting CENTERS_RATE_LIMIT='x': invalid literal for int()"
    )
    assert serve.exit_reason('ERROR:    Error loading ASGI app. Could not import module "x".\n', "h", 1) == (
        'Error loading ASGI app. Could not import module "x".'
    )
    assert serve.exit_reason("\n\n", "h", 1) == "it wrote nothing"
