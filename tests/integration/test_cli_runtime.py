"""`centers` commands find a running `centers serve` wherever they are run (issue 13: run from another
folder, `centers near` started a private Redis in ./var and `centers feeds` said "No feeds configured").

A stand-in for `centers serve` holds `runtime.redis_url(settings, announce=True)` open, as serve does,
with its own private redis-server; the commands run from another folder with neither REDIS_URL nor
CENTERS_DATA_DIR set. The service file lives under a per-test XDG_STATE_HOME."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from aggregator.local import runtime
from aggregator.local.redis_process import free_port
from config.settings import Settings
from tests.environment import isolated_env

REGISTRY = """[[feed]]
id = "harbor-beds"
format = "csv"
url = "https://partner.example/beds.csv"
[feed.mapping.fields]
source_id = "ID"
name = "Name"
"""

#: what `centers serve` does with its Redis, and the API URL and registry it announces once the API is up
STAND_IN = """
import signal, sys, time
from aggregator.local import runtime
from config.settings import Settings

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with runtime.redis_url(Settings.from_env(), announce=True) as url:
    runtime.announce(api_url="http://127.0.0.1:8123", feeds_file=sys.argv[1])
    print(url, flush=True)
    while True:
        time.sleep(0.2)
"""


def centers(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    env = isolated_env()
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env["CENTERS_GEOCODER"] = "none"
    return env


class StandIn:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url


@pytest.fixture
def service(tmp_path: Path, base_env: dict[str, str]) -> Iterator[StandIn]:
    """A running service: data in {tmp}/project/var, started from {tmp}/project, a registry of one feed."""
    project = tmp_path / "project"
    project.mkdir()
    registry = project / "feeds.toml"
    registry.write_text(REGISTRY)
    env = {**base_env, "CENTERS_KEY_PREFIX": "svc:"}
    proc = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, str(registry)], env=env, cwd=project, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("redis://"), url
    try:
        yield StandIn(proc, url)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_commands_in_another_folder_use_the_running_service(
    service: StandIn, base_env: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    [path] = (tmp_path / "state" / "centers").glob("serve-*.json")
    described = json.loads(path.read_text())
    assert described["redis_url"] == service.url
    assert described["data_dir"] == str((tmp_path / "project" / "var").resolve())  # absolute
    assert described["feeds_file"] == str(tmp_path / "project" / "feeds.toml")
    assert (described["api_url"], described["pid"], described["key_prefix"]) == (
        "http://127.0.0.1:8123",
        service.proc.pid,
        "svc:",
    )

    # a search never loads sample data into a running service (it has not fetched its feeds yet)
    # and, before its first feed is applied, says it is loading rather than "no center near here"
    empty = centers("near", "02139", "--json", env=base_env, cwd=elsewhere)
    assert empty.returncode != 0 and empty.stdout == ""
    assert "no answer yet: the store is loading" in empty.stderr, empty.stderr
    assert "No data yet" not in empty.stderr
    loaded = centers("load-sample", "--bundled", env=base_env, cwd=elsewhere)
    assert loaded.returncode == 0, loaded.stderr
    answer = centers("near", "02139", "--json", env=base_env, cwd=elsewhere)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["results"]
    assert "private Redis" not in answer.stderr
    assert not (elsewhere / "var").exists()  # no private Redis, no data folder here
    feeds = centers("feeds", env=base_env, cwd=elsewhere)
    assert feeds.returncode == 0, feeds.stderr
    assert "harbor-beds" in feeds.stdout
    assert "No feeds configured" not in feeds.stdout
    # the data went to the service's Redis, under its key prefix
    from aggregator.store import Store

    store = Store.from_url(service.url, "svc:")
    try:
        assert "sample" in store.feed_ids()
    finally:
        store.redis.connection_pool.disconnect()


def test_a_stale_service_file_is_ignored_and_the_private_store_is_said_loudly(
    service: StandIn, base_env: dict[str, str], tmp_path: Path
) -> None:
    [path] = (tmp_path / "state" / "centers").glob("serve-*.json")
    described = json.loads(path.read_text())
    redis_pid = _redis_server_pid(service.proc.pid)
    service.proc.kill()  # no clean-up: the file stays; its Redis (an orphan now) still answers
    service.proc.wait(10)
    try:
        assert path.exists()
        assert runtime.running_services({"XDG_STATE_HOME": str(tmp_path / "state")}) == []
        assert path.exists()  # its Redis still answers: kept, but not used
    finally:
        os.kill(redis_pid, signal.SIGTERM)
        _wait_gone(redis_pid)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = centers("near", "02139", "--json", env=base_env, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    [notice] = [line for line in result.stderr.splitlines() if "private Redis" in line]
    assert str((elsewhere / "var").resolve()) in notice
    assert "no running `centers serve` found" in notice
    assert (elsewhere / "var" / "redis").is_dir()
    assert described["redis_url"] == service.url
    assert not path.exists()  # its process gone and its Redis too: tidied away


def _wait_gone(pid: int) -> None:
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(15)


def _redis_server_pid(parent: int) -> int:
    import psutil

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for child in psutil.Process(parent).children(recursive=True):
            if "redis-server" in " ".join(child.cmdline()):
                return int(child.pid)
        time.sleep(0.05)
    raise AssertionError("the stand-in's redis-server was not found")


# ---------------------------------------------------------------------------------------------- for_cli


def _write(state: Path, pid: int, **fields: object) -> Path:
    folder = state / "centers"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"serve-{pid}.json"
    path.write_text(
        json.dumps(
            {
                "pid": pid,
                "redis_url": "redis://127.0.0.1:1/0",
                "data_dir": "/srv/centers/var",
                "started_at": time.time(),
                **fields,
            }
        )
    )
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_for_cli_adopts_a_live_service_and_ignores_stale_ones(redis_url: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state), "HOME": str(tmp_path)}
    dead = _write(state, _dead_pid(), redis_url=f"redis://127.0.0.1:{free_port()}/0")
    _write(state, os.getpid(), redis_url=f"redis://127.0.0.1:{free_port()}/0")  # alive, but no Redis answers
    settings, found = runtime.for_cli(Settings(), env)
    assert found is None
    assert settings.redis_url == ""
    assert settings.data_dir == str(Path("var").resolve())  # made absolute
    assert not dead.exists()  # both signs of a dead service: its file is tidied away

    live = _write(
        state,
        os.getppid(),
        redis_url=redis_url,
        data_dir=str(tmp_path / "svc"),
        feeds_file=str(tmp_path / "svc" / "feeds.toml"),
        key_prefix="svc:",
    )
    settings, found = runtime.for_cli(Settings(), env)
    assert found is not None and found.path == live
    assert (settings.redis_url, settings.data_dir, settings.feeds_file, settings.key_prefix) == (
        redis_url,
        str(tmp_path / "svc"),
        str(tmp_path / "svc" / "feeds.toml"),
        "svc:",
    )
    # what the environment sets explicitly wins; a data folder of its own means another service
    settings, found = runtime.for_cli(
        Settings(feeds_file="mine.toml", key_prefix="k:"), {**env, "CENTERS_KEY_PREFIX": "k:"}
    )
    assert (settings.redis_url, settings.feeds_file, settings.key_prefix) == (redis_url, "mine.toml", "k:")
    settings, found = runtime.for_cli(
        Settings(data_dir=str(tmp_path / "other")), {**env, "CENTERS_DATA_DIR": str(tmp_path / "other")}
    )
    assert found is None and settings.redis_url == ""
    settings, found = runtime.for_cli(
        Settings(data_dir=str(tmp_path / "svc")), {**env, "CENTERS_DATA_DIR": str(tmp_path / "svc")}
    )
    assert found is not None and settings.redis_url == redis_url
    settings, found = runtime.for_cli(Settings(redis_url="redis://127.0.0.1:2/0"), env)
    assert found is None and settings.redis_url == "redis://127.0.0.1:2/0"


def test_a_demo_service_without_a_registry_file_yet_is_found_by_its_demo_registry(
    redis_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    demo = tmp_path / "svc" / "demo" / "feeds.toml"
    demo.parent.mkdir(parents=True)
    demo.write_text(REGISTRY)
    _write(state, os.getppid(), redis_url=redis_url, data_dir=str(tmp_path / "svc"))
    settings, _ = runtime.for_cli(Settings(), {"XDG_STATE_HOME": str(state)})
    assert settings.feeds_file == str(demo)


def test_the_service_file_lives_while_the_block_runs(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = tmp_path / "state" / "centers" / f"serve-{os.getpid()}.json"
    settings = replace(Settings(), redis_url=redis_url, data_dir=str(tmp_path / "var"))
    with runtime.redis_url(settings, announce=True) as url:
        assert url == redis_url
        assert json.loads(path.read_text())["redis_url"] == redis_url
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        runtime.announce(api_url="http://127.0.0.1:8000", feeds_file=tmp_path / "f.toml")
        described = json.loads(path.read_text())
        assert (described["api_url"], described["feeds_file"]) == ("http://127.0.0.1:8000", str(tmp_path / "f.toml"))
    assert not path.exists()
    with runtime.redis_url(settings) as url:  # other commands keep no file
        assert not path.exists()


def test_state_dir_follows_xdg() -> None:
    assert runtime.state_dir({"XDG_STATE_HOME": "/x/state", "HOME": "/home/u"}) == Path("/x/state/centers")
    assert runtime.state_dir({"HOME": "/home/u"}) == Path("/home/u/.local/state/centers")
    assert runtime.state_dir({"XDG_STATE_HOME": "relative", "HOME": "/home/u"}) == Path("/home/u/.local/state/centers")
