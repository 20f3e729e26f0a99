"""Secrets never show: settings' repr, `centers settings`, the logs of the API and of a feed run.

Recognizable secrets are set in the environment, the code paths that read and use them are run, and no
output or log line may contain them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from aggregator.api import create_app
from aggregator.cli import main
from aggregator.errors import FetchTransient
from aggregator.push import sign
from aggregator.store import Store
from aggregator.wiring import pipeline_for
from config import registry
from config.secret import MASK, Secret
from config.settings import Settings, redact_url

OPERATOR = "OPERATOR-TOKEN-sekrit-4c7d1e"
HMAC = "PUSH-HMAC-sekrit-9a8b7c6d5e"
KEY = "PUSH-BEARER-sekrit-1f2e3d4c"
REDIS_PASSWORD = "REDIS-PW-sekrit-77aa"
GEOCODER_KEY = "GEOCODER-KEY-sekrit-42"
FEED_TOKEN = "FEED-CREDENTIAL-sekrit-5150"
ALL = (OPERATOR, HMAC, KEY, REDIS_PASSWORD, GEOCODER_KEY, FEED_TOKEN)

REGISTRY = {
    "feed": [
        {
            "id": "harbor",
            "format": "push",
            "freshness": "6h",
            "push": {"hmac_secret_env": ["HARBOR_SECRET"], "bearer_key_env": ["HARBOR_KEY"]},
            "mapping": {"fields": {"source_id": "id", "name": "name", "state": "state", "postal_code": "zip"}},
        },
        {
            "id": "beds",
            "format": "csv",
            "url": "http://127.0.0.1:9/beds.csv",
            "allow_private": True,
            "credentials": {"header": "Authorization", "env": "BEDS_TOKEN", "scheme": "Bearer"},
            "mapping": {"fields": {"source_id": "id", "name": "name", "state": "state", "postal_code": "zip"}},
        },
    ]
}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "CENTERS_OPERATOR_TOKENS": f"dana:{OPERATOR}",
        "HARBOR_SECRET": HMAC,
        "HARBOR_KEY": KEY,
        "BEDS_TOKEN": FEED_TOKEN,
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6399/0",
        "CENTERS_GEOCODER_OPTIONS": json.dumps({"api_key": GEOCODER_KEY, "country_codes": "us"}),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def hidden(text: str) -> None:
    for secret in ALL:
        assert secret not in text, f"a secret ({secret[:12]}...) shows in: {text[:2000]}"


def test_a_secret_shows_only_when_revealed() -> None:
    secret = Secret("s3cret-value")
    assert repr(secret) == str(secret) == f"{secret}" == MASK
    assert "s3cret" not in repr({"token": secret, "pair": ("dana", secret)})
    assert secret.reveal() == "s3cret-value" and secret.matches("s3cret-value") and not secret.matches("s3cret")
    assert secret == Secret("s3cret-value") and secret != Secret("other") and not Secret("")
    assert redact_url("redis://:pw@host:6379/0") == f"redis://:{MASK}@host:6379/0"
    assert redact_url("redis://user:pw@host/1") == f"redis://user:{MASK}@host/1"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


def test_settings_show_no_secret(environ: dict[str, str]) -> None:
    settings = Settings.from_env()
    assert [(n, t.reveal()) for n, t in settings.operator_tokens] == [("dana", OPERATOR)]
    assert settings.geocoder_options["api_key"] == GEOCODER_KEY  # the geocoder gets the value itself
    hidden(repr(settings))
    hidden(str(settings))
    assert "country_codes" in repr(settings) and "127.0.0.1:6399" in repr(settings)
    direct = Settings(operator_tokens=(("lee", OPERATOR),))  # type: ignore[arg-type]  # text is kept as a Secret
    hidden(repr(direct))
    assert direct.operator_tokens[0][1].matches(OPERATOR)


def test_centers_settings_shows_no_secret(environ: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0 and "CENTERS_OPERATOR_TOKENS" in result.output
    hidden(result.output)


def test_the_api_and_a_feed_run_log_no_secret(
    environ: dict[str, str], store: Store, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.from_env()
    reg = registry.parse(REGISTRY)
    queued: list[tuple[str, Any]] = []
    caplog.set_level(logging.DEBUG)
    app = create_app(settings, store, registry=reg, enqueue=lambda name, args: queued.append((name, args)))
    with TestClient(app) as client:
        seen = [
            client.get("/v1/feeds", headers={"Authorization": f"Bearer {OPERATOR}"}),
            client.get("/v1/feeds", headers={"Authorization": f"Bearer {OPERATOR}x"}),
        ]
        body = json.dumps([{"id": "h-1", "name": "Harbor House", "state": "MA", "zip": "02139"}]).encode()
        stamp = str(int(time.time()))
        for secret in (HMAC, HMAC + "x"):
            seen.append(
                client.post(
                    "/v1/feeds/harbor/records",
                    content=body,
                    headers={
                        "content-type": "application/json",
                        "webhook-id": f"evt-{len(seen)}",
                        "webhook-timestamp": stamp,
                        "webhook-signature": sign(secret.encode(), f"evt-{len(seen)}", stamp, body),
                    },
                )
            )
        for key in (KEY, KEY + "x"):
            seen.append(
                client.post(
                    "/v1/feeds/harbor/records",
                    content=body,
                    headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
                )
            )
    assert [r.status_code for r in seen] == [200, 401, 202, 401, 202, 401]
    for response in seen:
        hidden(response.text)
        hidden(json.dumps(dict(response.headers)))
    # a feed run that uses its credential and fails: its error and the logs do not carry the credential
    offline = dataclasses.replace(settings, geocoder="none")  # the run needs no geocoder
    with pytest.raises(FetchTransient) as failed:  # nobody listens there: the task would retry
        pipeline_for(offline, store).run(reg.get("beds"), force=True)
    hidden(str(failed.value))
    hidden(json.dumps(store.feed_state("beds").to_hash(), default=str))
    hidden(caplog.text)
    hidden(" ".join(repr(r.args) for r in caplog.records))
    out, err = capfd.readouterr()  # the access log (stderr) and anything printed
    assert "/v1/feeds/harbor/records" in err
    hidden(out + err)
