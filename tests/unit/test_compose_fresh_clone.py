"""`docker compose up` from a fresh clone (issue 13, item 13). No Docker engine here: the file is parsed and
every path it mounts, every variable it needs and the registry it runs are checked against the repository."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from config import registry

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docker-compose.yml").read_text()
#: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(TEXT)
    assert isinstance(data, dict)
    return data


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount; named volumes are left out."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                out.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/", "~")):
            out.append((source, target))
    return out


def with_defaults(value: str) -> str:
    """A value as compose reads it with nothing set in the environment or .env."""
    return INTERPOLATION.sub(lambda m: m.group("arg") or "" if m.group("op") in (":-", "-") else "", value)


def test_a_fresh_clone_needs_no_variable_set() -> None:
    """Every ${VAR} has a default: nothing is required (`${VAR:?...}` would stop `docker compose up`)."""
    for m in INTERPOLATION.finditer(TEXT):
        assert m.group("op") in (":-", "-"), f"${{{m.group('name')}}} has no default: {m.group(0)}"


def test_every_host_path_mounted_exists_in_the_repository(compose: dict[str, Any]) -> None:
    mounted = 0
    for name, service in compose["services"].items():
        for source, _target in bind_mounts(service):
            assert not source.startswith(("/", "~")), f"{name} mounts {source}, outside the repository"
            assert (ROOT / source).exists(), f"{name} mounts {source}, which a fresh clone does not have"
            mounted += 1
        for volume in service.get("volumes", []):
            if isinstance(volume, str) and not volume.startswith((".", "/", "~")):
                assert volume.split(":")[0] in (compose.get("volumes") or {}), f"{name}: {volume} is not declared"
    assert mounted


@pytest.mark.parametrize("service", ["api", "worker", "beat"])
def test_each_service_runs_a_registry_that_exists_and_loads(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    feeds_file = PurePosixPath(with_defaults(spec["environment"]["CENTERS_FEEDS_FILE"]))
    hosts = [
        ROOT / source / feeds_file.relative_to(target)
        for source, target in bind_mounts(spec)
        if feeds_file.is_relative_to(target)
    ]
    assert hosts, f"{service}: CENTERS_FEEDS_FILE={feeds_file} is under no mount"
    [host] = hosts
    assert host.is_file(), host
    reg = registry.load(host)
    assert reg.feeds


def test_the_registry_is_mounted_read_only_and_not_over_the_code(compose: dict[str, Any]) -> None:
    for service in ("api", "worker", "beat"):
        for volume in compose["services"][service].get("volumes", []):
            if isinstance(volume, str) and volume.startswith("."):
                parts = volume.split(":")
                assert parts[-1] == "ro", volume
                assert parts[1] not in ("/app", "/app/config", "/app/aggregator", "/app/workers"), volume


def test_the_image_copies_only_what_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), line
