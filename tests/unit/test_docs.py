"""The README stays true: every setting the code reads is documented there."""

from __future__ import annotations

from pathlib import Path

from config.settings import SETTINGS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    missing = [spec.env for spec in SETTINGS.values() if f"| `{spec.env}` |" not in README]
    assert missing == []


def test_every_documented_setting_exists() -> None:
    documented = {
        line.split("`")[1] for line in README.splitlines() if line.startswith("| `") and line.split("`")[1].isupper()
    }
    assert documented <= {spec.env for spec in SETTINGS.values()}
