"""Every string of the public page is in the message catalogues, translated into Spanish, and the templates
hold no literal text: what the page says comes from aggregator/locale/{en,es}/LC_MESSAGES/messages.po."""

from __future__ import annotations

import io
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from aggregator.i18n import LANGUAGES, po_text, translations

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "aggregator" / "api" / "templates"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted() -> set[str | tuple[str, str]]:
    """The messages the code and templates use, as `pybabel extract -F babel.cfg -k N_` finds them."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str | tuple[str, str]] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else (message[0], message[1]))
    return found


def catalogue(language: str) -> dict[str | tuple[str, str], str | tuple[str, ...]]:
    cat = read_po(io.StringIO(po_text(language)), locale=language)
    return {(m.id if isinstance(m.id, str) else tuple(m.id)): m.string for m in cat if m.id}  # type: ignore[misc]


def test_the_code_and_templates_use_only_catalogued_messages_and_the_catalogues_have_no_others() -> None:
    used = extracted()
    assert len(used) > 80
    template = {
        (m.id if isinstance(m.id, str) else tuple(m.id))
        for m in read_po((ROOT / "aggregator" / "locale" / "messages.pot").open())
        if m.id
    }
    assert used == template, "run pybabel extract (see aggregator/i18n.py)"
    for language in LANGUAGES:
        assert set(catalogue(language)) == used, language


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_with_the_same_placeholders(language: str) -> None:
    for msgid, msgstr in catalogue(language).items():
        ids = (msgid,) if isinstance(msgid, str) else msgid
        strings = (msgstr,) if isinstance(msgstr, str) else msgstr
        assert all(s.strip() for s in strings), f"{language}: no translation of {msgid!r}"
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for s in strings:
            assert set(PLACEHOLDER.findall(s)) == wanted, f"{language}: placeholders of {msgid!r}: {s!r}"


def test_spanish_is_spanish() -> None:
    es, en = translations("es"), translations("en")
    assert es.gettext("Call to check") == "Llame para confirmar"
    assert es.ngettext("%(num)d minute", "%(num)d minutes", 20) % {"num": 20} == "20 minutos"
    assert es.ngettext("%(num)d minute", "%(num)d minutes", 1) % {"num": 1} == "1 minuto"
    assert en.gettext("Call to check") == "Call to check"
    same = [k for k, v in catalogue("es").items() if isinstance(k, str) and k == v]
    assert set(same) <= {"Medicaid", "Medicare"}, same  # names, the same in both languages


class _Text(HTMLParser):
    """Text nodes and human-readable attributes of a template, with its Jinja expressions and tags removed."""

    HUMAN = frozenset({"aria-label", "title", "placeholder", "alt", "content", "data-finding", "data-failed"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script_or_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script_or_style = tag in ("script", "style")
        named = dict(attrs)
        if tag == "meta" and named.get("name") in ("viewport", "referrer"):
            return  # machine-readable values
        for name, value in attrs:
            if name in self.HUMAN and value and value.strip():
                self.found.append(f"{tag}[{name}]={value!r}")

    def handle_endtag(self, tag: str) -> None:
        self._in_script_or_style = False

    def handle_data(self, data: str) -> None:
        if data.strip() and not self._in_script_or_style:
            self.found.append(data.strip())


def literal_text(source: str) -> list[str]:
    bare = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", "", source, flags=re.S)
    parser = _Text()
    parser.feed(bare)
    return parser.found


def test_the_literal_text_check_finds_text() -> None:
    assert literal_text('<p>{{ _("Hi") }}</p><p title="Hello">{{ x }} there</p>') == ["p[title]='Hello'", "there"]
    assert literal_text('<p class="x">{{ _("Hi") }}</p> <meta name="viewport" content="width=device-width">') == []


def test_templates_hold_no_literal_text() -> None:
    pages = sorted(TEMPLATES.glob("find*.html"))
    assert pages
    for page in pages:
        source = page.read_text()
        assert "{% trans" not in source, "use {{ _('...') }}: the catalogue holds every string"
        found = literal_text(source)
        assert found == [], f"{page.name}: literal text outside the catalogue: {found}"


def test_the_catalogues_ship_with_the_package() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = data["tool"]["setuptools"]["package-data"]["aggregator"]
    assert "locale/*/LC_MESSAGES/*.po" in package_data
    assert any(d.lower().startswith("babel") for d in data["project"]["dependencies"])
    assert not list((ROOT / "aggregator" / "locale").rglob("*.mo"))  # compiled in memory: none to go stale
