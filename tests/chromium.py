"""Headless Chromium for the page tests: one way to start it (Debian's chromium and chromedriver)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def start_chrome(
    profile: Path,
    *,
    window: tuple[int, int] = (1366, 768),
    javascript: bool = True,
    hide_scrollbars: bool = False,
    script_timeout: float = 5,
    log: Path | None = None,
) -> Any:
    """A headless Chromium driven by Selenium, its profile in ``profile``; skips the test where Chromium is absent."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(
            f"headless Chromium needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium "
            f"chromium-driver); CI installs them"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        *(["--hide-scrollbars"] if hide_scrollbars else []),
        f"--window-size={window[0]},{window[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    service = Service(executable_path=str(CHROMEDRIVER), **({"log_output": str(log)} if log else {}))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(script_timeout)
    return driver
