"""docker-compose.yml cannot be run here (no Docker engine); its structure is checked against the code."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import SETTINGS, Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_services_are_redis_api_worker_and_one_beat(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"redis", "api", "worker", "beat"}
    assert compose["services"]["beat"]["deploy"]["replicas"] == 1


def test_redis_is_append_only_on_a_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert redis["healthcheck"]["test"][-1] == "ping"


def test_the_api_command_names_the_real_app_factory(compose: dict[str, Any]) -> None:
    command = compose["services"]["api"]["command"]
    assert command[:3] == ["gunicorn", "-k", "uvicorn.workers.UvicornWorker"]
    target = command[-1]
    module, _, call = target.partition(":")
    assert call.endswith("()")
    assert callable(getattr(importlib.import_module(module), call[:-2]))
    dockerfile_cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    assert target in dockerfile_cmd
    assert "/readyz" in " ".join(compose["services"]["api"]["healthcheck"]["test"])


def test_worker_and_beat_run_the_celery_app_with_its_queues(compose: dict[str, Any]) -> None:
    from workers.celery_app import create_app

    for name, role in (("worker", "worker"), ("beat", "beat")):
        command = compose["services"][name]["command"]
        assert command[:3] == ["celery", "-A", "workers.celery_app"]
        assert command[3] == role
    module = importlib.import_module("workers.celery_app")
    assert callable(module.create_app)
    app = create_app(Settings(redis_url="redis://redis:6379/0"))
    routed = {route["queue"] for route in app.conf.task_routes.values()}
    command = compose["services"]["worker"]["command"]
    assert set(command[command.index("-Q") + 1].split(",")) == routed
    assert "-s" in compose["services"]["beat"]["command"]


def test_every_environment_variable_is_a_setting_the_code_reads(compose: dict[str, Any]) -> None:
    known = {spec.env for spec in SETTINGS.values()}
    for name in ("api", "worker", "beat"):
        env = compose["services"][name]["environment"]
        assert "REDIS_URL" in env
        assert set(env) <= known, set(env) - known
    assert compose["services"]["api"]["environment"]["REDIS_URL"].startswith("redis://redis:6379/")


def test_no_secret_is_written_in_the_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if "TOKEN" in line or "SECRET" in line:
            assert "${" in line, line


def test_services_wait_for_a_healthy_redis(compose: dict[str, Any]) -> None:
    for name in ("api", "worker", "beat"):
        assert compose["services"][name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert shlex.join(compose["services"][name]["command"])
