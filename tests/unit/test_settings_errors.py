"""A setting that cannot be read is named with its reason, and never quoted when it may hold a secret."""

from __future__ import annotations

import pytest

from aggregator.errors import ConfigError
from config.settings import Settings

SECRET = "averylongsecrettoken123"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CENTERS_OPERATOR_TOKENS": f"alice:{SECRET}, bob:short"}, "CENTERS_OPERATOR_TOKENS"),
        ({"CENTERS_GEOCODER_OPTIONS": f'{{"api_key": "{SECRET}"'}, "CENTERS_GEOCODER_OPTIONS"),
    ],
)
def test_an_unreadable_secret_setting_is_named_not_quoted(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert named in str(err.value) and SECRET not in str(err.value)
    assert err.value.__cause__ is None  # the parser's own message (which may quote it) is not chained either


def test_an_unreadable_plain_setting_is_quoted_with_its_reason() -> None:
    with pytest.raises(ConfigError, match="CENTERS_SWEEP_SECONDS='soon'"):
        Settings.from_env({"CENTERS_SWEEP_SECONDS": "soon"})
