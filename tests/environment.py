"""The environment every subprocess a test starts begins from."""

from __future__ import annotations

import os


def isolated_env(**extra: str) -> dict[str, str]:
    """This process's environment without REDIS_* and CENTERS_* settings (a developer's own Redis or registry
    never reaches a test's processes), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CENTERS_"))}
    env.update(extra)
    return env
