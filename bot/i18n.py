"""The bot's languages: gettext catalogues read by Babel, one Translator per language.

Texts are written in English in the code and marked for extraction (`N_` for module constants,
`t(...)` where they are used); bot/locales/messages.pot lists them and each language has its
catalogue, bot/locales/<code>/LC_MESSAGES/messages.po (docs/languages.md). The bot reads the
.po itself and compiles it in memory, so every kind of install (a checkout, `pip install .`, a
wheel, the Docker image) has what it needs with no build step. It costs about 35 ms once per
process (measured: importing Babel's reader 12 ms, reading and compiling the 86 Spanish texts
16-23 ms), on a start that takes seconds. A handler gets the Translator of the user it
answers and passes it down: updates from many users are handled at once, so there is no
"current language".
"""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

from model_training.species_names import translated

LOCALES = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"
DEFAULT = "en"  # the language the texts are written in: it needs no catalogue
# Each language the bot speaks, by its own name (the /language buttons).
LANGUAGES = {"en": "English", "es": "Español"}


def N_(message: str) -> str:
    """Marks a text for extraction where it is defined; it is translated where it is sent."""
    return message


def display_name(species: str) -> str:
    return species[:1].upper() + species[1:]


class MissingCatalogue(RuntimeError):
    pass


@dataclass(frozen=True)
class Translator:
    language: str
    catalogue: gettext.NullTranslations

    def __call__(self, message: str) -> str:
        return self.catalogue.gettext(message)

    def percent(self, value: float, decimals: int = 0) -> str:
        """87% in English, 87 % in Spanish (with a no-break space); 87,3 % with decimals."""
        pattern = Locale.parse(self.language).percent_formats[None].pattern
        if decimals:
            pattern = pattern.replace("0", "0." + "0" * decimals, 1)
        return format_percent(value, format=pattern, locale=self.language)

    def number(self, value: float, decimals: int = 0) -> str:
        pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
        return format_decimal(value, format=pattern, locale=self.language)

    @property
    def language_name(self) -> str:
        """The language's own name, as in a sentence: "English", "español"."""
        return Locale.parse(self.language).get_display_name(self.language)

    def species(self, name: str) -> str:
        """A class name as shown to this user: translated when the names file has it."""
        return display_name(translated(name, self.language))


ENGLISH = Translator(DEFAULT, gettext.NullTranslations())


def read_catalogue(language: str) -> gettext.GNUTranslations:
    """The language's .po, compiled in memory as `pybabel compile` would (fuzzy texts left
    out). A missing catalogue is an installation error, said clearly instead of answering in
    English."""
    path = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    try:
        with path.open("rb") as po:
            catalogue = read_po(po, locale=language, domain=DOMAIN)
    except OSError as err:
        raise MissingCatalogue(
            f"cannot read the catalogue for {language!r}: {path}: {err.strerror} "
            "(an incomplete installation: install flowerbot again)"
        ) from None
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


@cache
def translator(language: str) -> Translator:
    """The language's Translator; English for a language the bot does not speak."""
    if language not in LANGUAGES:
        language = DEFAULT
    if language == DEFAULT:
        return ENGLISH
    return Translator(language, read_catalogue(language))


def check_catalogues() -> None:
    """At start: every language's catalogue loads (else MissingCatalogue)."""
    for language in LANGUAGES:
        translator(language)


def choose_language(stored: str | None, telegram_code: str | None) -> str:
    """The user's choice (/language), else the language Telegram reports ("es-AR" is Spanish),
    else English."""
    if stored in LANGUAGES:
        return stored
    code = (telegram_code or "").split("-")[0].lower()
    return code if code in LANGUAGES else DEFAULT
