"""Languages: the catalogues are complete and current, numbers and species names follow the
user's language, and the bot, the command line and the web export speak Spanish.

The bot tests use tests/test_bot.py's fixtures (imported: ruff's F811 takes a fixture argument
for a redefinition of the import).
"""
# ruff: noqa: F811

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po
from conftest import ROOT, SHIPPED_MODEL
from sqlalchemy import select
from test_bot import (
    ALICE,
    BOB,
    answer_to_photo,
    bot,  # noqa: F401
    command,
    db,  # noqa: F401
    feedback_rows,
    handled,  # noqa: F401
    in_db,
    prediction_under,
    reply_to,
    running,
    settings_for,
    species_buttons,
    stopped,
    tap,
)
from test_cli import flowerbot

from bot import i18n
from bot.i18n import LANGUAGES, MissingCatalogue, choose_language, translator
from bot.species import known_as, match_species
from model_training.data import read_class_names
from model_training.species_names import NAMES_FILE, species_names, translated
from storage import Prediction, User

LOCALES = ROOT / "bot" / "locales"
TEMPLATE = LOCALES / "messages.pot"
SHIPPED_CLASSES = (SHIPPED_MODEL / "classes.txt").read_text().splitlines()
NBSP = "\u00a0"
PLACEHOLDER = re.compile(r"\{[^}]*\}")


def catalogue(language: str):
    with (LOCALES / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f)


def template_ids(path: Path) -> set[str]:
    with path.open("rb") as f:
        return {message.id for message in read_po(f) if message.id}


# -- the catalogues --------------------------------------------------------------------------


def test_template_lists_every_text_in_the_code(tmp_path) -> None:
    """The committed messages.pot is what `make messages` extracts now: a text added or changed
    in the code without `make messages` fails here."""
    fresh = tmp_path / "messages.pot"
    # The Makefile's extraction (target `messages`).
    argv = ["pybabel", "-q", "extract", "-F", "babel.cfg", "-k", "t", "-o", str(fresh), "."]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        CommandLineInterface().run(argv)
    assert template_ids(fresh) == template_ids(TEMPLATE)


@pytest.mark.parametrize("language", [code for code in LANGUAGES if code != i18n.DEFAULT])
def test_every_text_is_translated(language) -> None:
    """Every text of the template has a translation, not fuzzy, with the same placeholders."""
    translations = catalogue(language)
    for msgid in template_ids(TEMPLATE):
        message = translations.get(msgid)
        assert message is not None and message.string, f"{language}: missing {msgid!r}"
        assert not message.fuzzy, f"{language}: fuzzy {msgid!r}"
        assert sorted(PLACEHOLDER.findall(message.string)) == sorted(PLACEHOLDER.findall(msgid))


@pytest.mark.parametrize("language", [code for code in LANGUAGES if code != i18n.DEFAULT])
def test_the_bot_says_what_the_po_says_with_nothing_compiled(language, tmp_path, monkeypatch):
    """The bot reads the .po itself: a folder holding only the .po files (as a fresh checkout
    or a wheel has them) is enough, and a stale compiled .mo beside them is not what it reads."""
    shutil.copytree(LOCALES, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.mo"))
    stale = tmp_path / language / "LC_MESSAGES" / "messages.mo"
    stale.write_bytes(b"not a catalogue")
    monkeypatch.setattr(i18n, "LOCALES", tmp_path)
    i18n.translator.cache_clear()
    try:
        t = translator(language)
        for message in catalogue(language):
            if message.id:
                assert t(message.id) == message.string
    finally:
        i18n.translator.cache_clear()


def test_a_missing_catalogue_stops_the_bot_clearly(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(i18n, "LOCALES", tmp_path)
    i18n.translator.cache_clear()
    try:
        with pytest.raises(MissingCatalogue, match=r"messages\.po: No such file.*install"):
            i18n.check_catalogues()
    finally:
        i18n.translator.cache_clear()


# -- choosing the language; numbers --------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "telegram", "expected"),
    [
        (None, "es", "es"),
        (None, "es-AR", "es"),
        (None, "en-GB", "en"),
        (None, "fr", "en"),
        (None, None, "en"),
        ("en", "es", "en"),  # /language wins over Telegram's language
        ("es", "de", "es"),
    ],
)
def test_language_is_the_stored_choice_else_telegrams(stored, telegram, expected) -> None:
    assert choose_language(stored, telegram) == expected


def test_percentages_and_numbers_follow_the_language() -> None:
    es, en = translator("es"), translator("en")
    assert es.percent(0.873) == f"87{NBSP}%"
    assert es.percent(0.873, 1) == f"87,3{NBSP}%"
    assert en.percent(0.873) == "87%"
    assert en.percent(0.873, 1) == "87.3%"
    assert es.number(12345) == "12.345"
    assert en.number(12345) == "12,345"


# -- species names ---------------------------------------------------------------------------


def test_names_file_rows_are_kaggle104_classes_and_cover_the_shipped_model() -> None:
    text = (ROOT / "model_training" / "classsets" / NAMES_FILE).read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    kaggle = read_class_names("kaggle104")
    indexed = [row for row in rows if row["index"]]
    assert [(int(row["index"]), row["english"]) for row in indexed] == list(enumerate(kaggle))
    assert all(row["spanish"].strip() for row in rows)
    # No name is claimed by two rows, and every class the bot serves has a row.
    keys = [
        name.strip().casefold()
        for row in rows
        for name in [row["english"], *row["alternatives"].split(";")]
        if name.strip()
    ]
    assert len(keys) == len(set(keys))
    assert all(name.casefold() in species_names() for name in SHIPPED_CLASSES)


def test_spanish_names_and_fallbacks() -> None:
    assert translated("sunflower", "es") == "girasol"
    assert translated("mexican aster", "es") == "cosmos"  # the shipped model's spelling
    assert translated("sunflower", "en") == "sunflower"
    assert translated("bolero deep blue", "es") == "bolero deep blue"  # not translated: itself
    assert translated("Edelweiss", "es") == "Edelweiss"  # a species taught by users
    assert translator("es").species("common dandelion") == "Diente de león"


@pytest.mark.parametrize(
    ("typed", "species"),
    [
        ("girasol", "sunflower"),
        ("GIRASOL", "sunflower"),
        ("Diente de leon", "common dandelion"),  # accents optional
        ("diente de león", "common dandelion"),
        ("nenufar", "water lily"),
        ("sunflower", "sunflower"),
    ],
)
def test_a_spanish_name_is_matched_like_an_english_one(typed, species) -> None:
    assert [SHIPPED_CLASSES[i] for i in match_species(typed, SHIPPED_CLASSES)] == [species]
    assert known_as(typed, species)


# -- the bot -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_spanish_user_gets_a_spanish_answer(tg, bot, sample_photos, db) -> None:
    tg.set_user(ALICE, language_code="es")
    reply = await answer_to_photo(tg, ALICE, sample_photos[0][0].read_bytes())  # a sunflower
    lines = reply["text"].splitlines()
    assert lines[0] == "🌼 Creo que es Girasol."
    assert lines[2] == "1. Girasol"
    html = next(c.params["text"] for c in tg.calls("sendMessage") if c.ok and c.result == reply)
    wikipedia = "https://es.wikipedia.org/w/index.php?search=Helianthus+annuus&amp;go=Go"
    assert f'1. <a href="{wikipedia}">Girasol</a>' in html and "en.wikipedia" not in html
    stored = in_db(db, lambda s: s.get(Prediction, prediction_under(tg, reply)).top5)
    confidence = round(stored[0]["confidence"] * 100)
    assert lines[3].endswith(f" {confidence}{NBSP}%")
    assert lines[-1] == "¿He acertado? Toca la especie:"
    assert species_buttons(tg, reply)[0] == "Girasol"
    buttons = [b["text"] for row in tg.keyboard(reply) for b in row]
    assert buttons[-2:] == ["Ninguna de estas", "No es una flor"]
    edited = await tap(tg, reply, "Girasol")
    assert edited["text"].endswith("✅ ¡Gracias! Anotado: Girasol.")
    assert feedback_rows(db)[0][2:] == (SHIPPED_CLASSES.index("sunflower"), "sunflower", False)


@pytest.mark.asyncio
async def test_girasol_typed_after_none_of_these_records_sunflower(
    tg, bot, sample_photos, db
) -> None:
    tg.set_user(BOB, language_code="es-ES")
    reply = await answer_to_photo(tg, BOB, sample_photos[2][0].read_bytes())
    mark = tg.mark()
    tg.press_button(reply, "Ninguna de estas", user_id=BOB)
    assert (await reply_to(tg, BOB, mark))["text"].startswith("¿Qué flor es?")
    mark = tg.mark()
    tg.user_text(BOB, "Girasól")
    confirm = await reply_to(tg, BOB, mark)
    assert confirm["text"] == "¿Te refieres a una de estas?"
    assert [row[0]["text"] for row in tg.keyboard(confirm)] == ["Girasol"]
    edited = await tap(tg, confirm, "Girasol", user=BOB)
    assert edited["text"] == "¡Gracias! Anotado: Girasol."
    assert feedback_rows(db) == [
        (BOB, prediction_under(tg, reply), SHIPPED_CLASSES.index("sunflower"), "sunflower", False)
    ]


@pytest.mark.asyncio
async def test_language_command_switches_and_is_stored(tg, db, handled) -> None:
    settings = settings_for(tg, db)
    app = await running(settings, handled)
    try:
        assert (await command(tg, ALICE, "start")).startswith("Hi!")
        said = await command(tg, ALICE, "language", "es")
        assert said == "Hecho: a partir de ahora te respondo en español."
        assert (await command(tg, ALICE, "start")).startswith("¡Hola!")
        assert (await command(tg, BOB, "start")).startswith("Hi!")  # only Alice switched
        # Commands are described in Spanish to Spanish-speaking Telegram apps.
        described = {c["command"]: c["description"] for c in tg.my_commands(language_code="es")}
        assert described["language"] == "español o inglés"
    finally:
        await stopped(app)
    stored = in_db(db, lambda s: dict(s.execute(select(User.id, User.language)).all()))
    assert stored[ALICE] == "es"

    app = await running(settings, handled)  # a new process reads the stored choice
    try:
        assert (await command(tg, ALICE, "privacy")).startswith("Guardo las fotos")
        # Without an argument: buttons; Telegram's own language does not override the choice.
        tg.set_user(ALICE, language_code="es")
        mark = tg.mark()
        tg.user_command(ALICE, "language")
        offer = await reply_to(tg, ALICE, mark)
        assert [b["text"] for b in tg.keyboard(offer)[0]] == ["English", "Español"]
        edited = await tap(tg, offer, "English")
        assert edited["text"] == "Done: from now on I answer in English."
        assert (await command(tg, ALICE, "start")).startswith("Hi!")
    finally:
        await stopped(app)
    assert in_db(db, lambda s: s.get(User, ALICE).language) == "en"


# -- the web page's export --------------------------------------------------------------------


def test_web_export_writes_the_spanish_names(tmp_path) -> None:
    from model_training.artifact import load_artifact
    from web.export import write_labels

    write_labels(load_artifact(SHIPPED_MODEL), tmp_path, "none")
    names = json.loads((tmp_path / "metadata.json").read_text())["names"]["es"]
    assert len(names) == len(SHIPPED_CLASSES)
    assert names[SHIPPED_CLASSES.index("sunflower")] == "girasol"
    assert names[SHIPPED_CLASSES.index("bolero deep blue")] == "bolero deep blue"


# -- the command line ------------------------------------------------------------------------


def test_identify_in_spanish(tmp_path, sample_photos) -> None:
    good, _, name = sample_photos[0]
    assert name == "sunflower"
    result = flowerbot("identify", "--lang", "es", str(good), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{good}: girasol"
    assert re.fullmatch(rf"  1\. girasol +\d+,\d{NBSP}%", lines[1])
    refused = flowerbot("identify", "--lang", "fr", str(good), cwd=tmp_path)
    assert refused.returncode == 2 and "choose one of en, es" in refused.stderr
