"""Message catalogues of the public pages (``/find``, ``/es/find``, the embeddable button).

Every string the public sees is a message of ``aggregator/locale/{lang}/LC_MESSAGES/messages.po``
(English msgids; ``messages.pot`` is the template, extracted with ``pybabel extract -F babel.cfg``).
The ``.po`` files are the source of truth and are compiled in memory when first used (Babel), so a
fresh ``pip install -e .`` or a wheel needs no build step and no ``.mo`` file can go stale.

Refresh after changing strings::

    pybabel extract -F babel.cfg -k N_ -o aggregator/locale/messages.pot .
    pybabel update -i aggregator/locale/messages.pot -d aggregator/locale
"""

from __future__ import annotations

import functools
import io
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Marks a string for extraction where it is defined; it is translated where it is shown."""
    return message


def po_text(language: str) -> str:
    return resources.files("aggregator").joinpath(f"locale/{language}/LC_MESSAGES/{DOMAIN}.po").read_text("utf-8")


@functools.cache
def translations(language: str) -> Translations:
    """The catalogue of ``language`` (one of LANGUAGES), compiled from its .po file once per process."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalogue for {language!r}; one of {', '.join(LANGUAGES)}")
    catalog = read_po(io.StringIO(po_text(language)), locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)
