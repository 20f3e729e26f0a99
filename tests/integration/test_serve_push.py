"""`centers serve` as a newcomer meets it (issue 13, items 10, 11 and 14): the start banner gives the operator
token and the demo push partner's secret; `centers push` of the example file is applied and visible; the
README's push example runs with the service's own dependencies; the headline search answers; a restart
keeps the operator token (file mode 0600), and with CENTERS_OPERATOR_TOKENS set no token file is written."""

from __future__ import annotations

import ast
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.local.redis_process import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "push.example.json"


def readme_push_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("**Partners push**") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@contextmanager
def serving(env: dict[str, str], cwd: Path, *args: str) -> Iterator[tuple[str, str]]:
    """`centers serve` running: (its API's URL, its start banner); stopped with Ctrl-C at the end."""
    out_path = cwd / f"serve-{time.monotonic_ns()}.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator.cli", "serve", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
        try:
            deadline = time.monotonic() + 120
            banner = ""
            while "Logs:" not in banner:
                assert proc.poll() is None, out_path.read_text()
                assert time.monotonic() < deadline, out_path.read_text()
                time.sleep(0.3)
                banner = out_path.read_text()
            m = re.search(r"API:\s+(http://127\.0\.0\.1:\d+)", banner)
            assert m, banner
            yield m.group(1), banner
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail("centers serve did not stop within 60 s of Ctrl-C")
    assert proc.returncode == 0, out_path.read_text()


def wait_until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def centers(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )


def test_the_demo_takes_a_push_keeps_its_token_and_answers_the_headline(tmp_path: Path) -> None:
    data = tmp_path / "var"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CENTERS_", "DEMO_", "PUSH_"))}
    env |= {"CENTERS_DATA_DIR": str(data), "CENTERS_API_PORT": str(port)}
    token_file = data / "operator-token"

    with serving(env, tmp_path) as (api, banner):
        token = re.search(r"Operator page: \S+/operator\s+token: (\S+)", banner)
        secret = re.search(r"Push partner:\s+demo-push\s+secret: (\S+)", banner)
        assert token and secret, banner
        assert token_file.read_text().strip() == token.group(1)
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((data / "demo" / "push-secret").stat().st_mode) == 0o600
        operator = {"authorization": f"Bearer {token.group(1)}"}
        assert httpx.get(f"{api}/v1/feeds", headers=operator, timeout=10).status_code == 200

        # the README's example, as printed there (only its API address changed), with the demo's secret
        code = readme_push_example().replace("http://127.0.0.1:8000", api)
        ran = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "DEMO_PUSH_SECRET": secret.group(1)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("202 "), ran.stdout
        ingest = re.search(r"ing_[0-9a-f]{32}", ran.stdout)
        assert ingest
        wait_until(
            "the README's push applied",
            lambda: httpx.get(f"{api}/v1/ingests/{ingest.group()}", timeout=10).json()["status"] == "done",
        )

        # `centers push`: the URL from CENTERS_API_PORT, the demo's secret from the data folder
        pushed = centers(env, tmp_path, "push", "demo-push", str(EXAMPLE))
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        lines = pushed.stdout.splitlines()
        assert re.match(r"accepted: ingest ing_[0-9a-f]{32} \(\d[\d,]* bytes to feed demo-push", lines[0]), lines
        assert lines[-1] == "done: 2 records, 2 accepted, 0 rejected", lines
        center = httpx.get(f"{api}/v1/centers/demo-push:HH-001", timeout=10).json()
        assert center["name"] == "Harbor House Withdrawal Center (demo)"
        assert [p["number"] for p in center["phones"]] == ["+16175550190"]
        [detox] = [a for a in center["availability"] if a["level_of_care"] == "detox"]
        assert (detox["status"], detox["beds_available"], detox["source"], detox["fresh"]) == (
            "available",
            3,
            "push",
            True,
        )

        # a wrong secret is refused, in one line, with a non-zero exit
        refused = centers(
            {**env, "WRONG": "not-the-secret-0123456789"},
            tmp_path,
            "push",
            "demo-push",
            str(EXAMPLE),
            "--secret-env",
            "WRONG",
        )
        assert refused.returncode == 1
        assert "answered 401: unauthorized: the signature does not verify" in refused.stderr

        # the README's headline search, through the API: the pushed center and fresh demo availability
        def headline() -> list[dict[str, Any]]:
            answer = httpx.get(
                f"{api}/v1/centers/near",
                timeout=10,
                params={"zip": "02139", "level_of_care": "detox", "payment": "medicaid", "radius_mi": 50},
            ).json()
            results = answer.get("results", [])
            pulled = [
                r
                for r in results
                if not r["id"].startswith("demo-push:") and any(a["fresh"] for a in r["availability"])
            ]
            return results if pulled else []

        results = wait_until("fresh demo detox availability near 02139", headline, 90)
        assert "demo-push:HH-001" in {r["id"] for r in results}

    # a restart reuses the token: an operator signed in before stays signed in
    with serving(env, tmp_path, "--no-demo") as (api, banner):
        assert f"token: {token.group(1)}" in banner, banner
        assert httpx.get(f"{api}/v1/feeds", headers=operator, timeout=10).status_code == 200
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    # configured tokens win: no token is issued and no file written
    token_file.unlink()
    configured = {**env, "CENTERS_OPERATOR_TOKENS": "dana:dana-token-0123456789abcdef"}
    with serving(configured, tmp_path, "--no-demo") as (api, banner):
        assert "token:" not in banner, banner
        assert (
            httpx.get(
                f"{api}/v1/feeds", headers={"authorization": "Bearer dana-token-0123456789abcdef"}, timeout=10
            ).status_code
            == 200
        )
    assert not token_file.exists()


def test_the_readme_push_example_needs_only_the_services_dependencies() -> None:
    """The example once imported httpx, a test-only dependency: every import is the standard library's or one
    the service installs."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    installed = {re.split(r"[<>=!;\[ ]", d, maxsplit=1)[0].strip().lower().replace("-", "_") for d in deps}
    tree = ast.parse(readme_push_example())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "requests" in imported
    assert {m for m in imported if m not in sys.stdlib_module_names and m not in installed} == set()
