"""End to end: the real python-telegram-bot client, the fake Bot API server, the real model and a
real SQLite database. Each test drives the bot as Telegram users would and checks one behaviour.

tests/test_retrain.py imports ADMIN, ALICE, BOB, TOKEN, reply_to, running and stopped from here.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
import skimage
from conftest import SHIPPED_MODEL, TOKEN
from fake_telegram import (
    FakeTelegram,
    answer_to_photo,
    record_new_species,
    reply_to,
    start_polling,
    stop_polling,
    tap,
    type_a_name,
)
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import Application, ContextTypes, TypeHandler

from bot import callbacks
from bot.app import build_application
from bot.config import Settings
from bot.replies import VERDICT_LINES
from model_training.abstention import Verdict
from model_training.classifier import FlowerClassifier
from model_training.photos import decode_photo
from storage import Database, Feedback, ModelStatus, Photo, Prediction, add_version

pytestmark = pytest.mark.asyncio

ADMIN, ALICE, BOB = 1001, 42, 43
GROUP = -500
SHIPPED_VERSION = json.loads((SHIPPED_MODEL / "metadata.json").read_text())["version"]
T = TypeVar("T")


# -- the bot under test --------------------------------------------------------------------------


class Handled:
    """The updates the bot has finished with.

    Registered as the last handler group: PTB runs an update's groups one after the other, the
    error handler included, so an update appears here only once the bot is done with it. The bot
    sets concurrent_updates, so a reply to a later message does not prove that an earlier one was
    processed; this does.
    """

    GROUP = 1_000

    def __init__(self) -> None:
        self._done: set[tuple[Any, ...]] = set()

    async def record(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.callback_query is not None:
            self._done.add(("query", update.callback_query.id))
        elif update.effective_message is not None:
            message = update.effective_message
            self._done.add(("message", message.chat_id, message.message_id))

    async def wait(self, sent: dict, timeout: float = 60) -> None:
        """Until the bot is done with a message or a button press the test sent."""
        if "data" in sent:  # a CallbackQuery
            key: tuple[Any, ...] = ("query", sent["id"])
        else:
            key = ("message", sent["chat"]["id"], sent["message_id"])
        for _ in range(round(timeout / 0.02)):
            if key in self._done:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the bot did not finish with {key} within {timeout}s")


def settings_for(tg: FakeTelegram, db_path: Path, **overrides: object) -> Settings:
    return Settings(
        telegram_bot_token=TOKEN,
        database_url=f"sqlite:///{db_path}",
        admin_ids=str(ADMIN),
        telegram_api_base_url=tg.base_url,
        telegram_file_base_url=tg.base_file_url,
        **{"health_port": 0, "model_dir": SHIPPED_MODEL, **overrides},
    )


async def running(settings: Settings, handled: Handled | None = None) -> Application:
    app = build_application(settings)
    if handled is not None:
        app.add_handler(TypeHandler(Update, handled.record), group=Handled.GROUP)
    await start_polling(app)
    return app


async def stopped(app: Application) -> None:
    await stop_polling(app)


@asynccontextmanager
async def bot_running(settings: Settings) -> AsyncIterator[Application]:
    """One bot process, stopped however the block ends: the restart tests run two in turn."""
    app = await running(settings)
    try:
        yield app
    finally:
        await stopped(app)


@pytest.fixture
def handled() -> Handled:
    return Handled()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "bot.sqlite"


@pytest_asyncio.fixture
async def bot(tg: FakeTelegram, db: Path, handled: Handled) -> AsyncIterator[Application]:
    app = await running(settings_for(tg, db, photos_per_minute=5), handled)
    yield app
    await stopped(app)
    assert tg.unknown_methods == []


# -- helpers ---------------------------------------------------------------------------------------


def in_db(db_path: Path, work: Callable[[Session], T]) -> T:
    """Run work in a session of the bot's database (committed), as another process would."""
    database = Database(f"sqlite:///{db_path}")
    try:
        with database.session() as session:
            return work(session)
    finally:
        database.dispose()


def count(db_path: Path, model: type) -> int:
    return in_db(db_path, lambda s: s.scalar(select(func.count()).select_from(model)))


def feedback_rows(db_path: Path) -> list[tuple]:
    """(user, prediction, species index, species, not a flower) of every feedback row."""
    return in_db(
        db_path,
        lambda s: [
            (r.user_id, r.prediction_id, r.species_index, r.species, r.not_a_flower)
            for r in s.scalars(select(Feedback).order_by(Feedback.id))
        ],
    )


def prediction(db_path: Path, prediction_id: int) -> tuple[str, str | None]:
    """(model version, verdict) of a stored prediction."""
    row = in_db(db_path, lambda s: s.get(Prediction, prediction_id))
    return row.model_version, row.verdict


async def n_replies(tg: FakeTelegram, chat_id: int, after: int, n: int) -> list[dict]:
    """The bot's next n messages to a chat (they may come in any order)."""
    for _ in range(600):
        sent = [
            c.result
            for c in tg.calls()[after:]
            if c.method == "sendMessage" and c.ok and c.params["chat_id"] == chat_id
        ]
        if len(sent) >= n:
            return sent
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {len(sent)} of {n} replies to chat {chat_id}")


async def command(tg: FakeTelegram, user: int, name: str, args: str = "") -> str:
    """A command in the user's private chat; the text of the bot's reply."""
    mark = tg.mark()
    tg.user_command(user, name, args)
    return (await reply_to(tg, user, mark))["text"]


async def text_reply(tg: FakeTelegram, user: int, text: str) -> str:
    """A text message in the user's private chat; the text of the bot's reply."""
    mark = tg.mark()
    tg.user_text(user, text)
    return (await reply_to(tg, user, mark))["text"]


def prediction_under(tg: FakeTelegram, message: dict) -> int:
    """The prediction every feedback button under an answer names."""
    ids = {
        callbacks.parse(button["callback_data"]).prediction_id
        for row in tg.keyboard(message)
        for button in row
    }
    assert len(ids) == 1, ids
    return ids.pop()


def species_buttons(tg: FakeTelegram, message: dict) -> list[str]:
    """An answer's species buttons: one a row, above "None of these" | "Not a flower"."""
    rows = tg.keyboard(message)
    feedback_row = next(i for i, row in enumerate(rows) if len(row) == 2)
    return [row[0]["text"] for row in rows[:feedback_row]]


def sent_html(tg: FakeTelegram, message: dict) -> str:
    """The HTML the bot sent for a message (the stored message holds the text a user sees)."""
    calls = tg.calls("sendMessage")
    return next(c.params["text"] for c in calls if c.ok and c.result == message)


def ranked_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:2] in {"1.", "2.", "3.", "4.", "5."}]


def png_bytes(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_with_short_side(path: Path, short_side: int) -> bytes:
    image = Image.open(path).convert("RGB")
    width, height = image.size
    scale = short_side / min(width, height)
    size = (
        (short_side, round(height * scale))
        if width <= height
        else (round(width * scale), short_side)
    )
    buffer = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def serving_classifier(app: Application) -> FlowerClassifier:
    """The model the bot serves; its rules come from its metadata thresholds (else defaults:
    abstention.MIN_PHOTO_SIDE for the minimum photo side)."""
    return app.bot_data["services"].identifier.classifier


def min_photo_side(app: Application) -> int:
    return serving_classifier(app).rules.min_photo_side


# -- answers to photos -----------------------------------------------------------------------------


async def test_photo_is_answered_with_top5_and_feedback_buttons(tg, bot, sample_photos, db):
    path, _, name = sample_photos[0]  # a sunflower
    mark = tg.mark()
    photo = tg.user_photo(ALICE, path.read_bytes())
    reply = await reply_to(tg, ALICE, mark)
    assert reply["reply_to_message"]["message_id"] == photo["message_id"]
    lines = reply["text"].splitlines()
    assert lines[0] == f"🌼 I think this is {name.capitalize()}."
    assert lines[2] == f"1. {name.capitalize()}" and lines[3].endswith("%")
    assert len(ranked_lines(reply["text"])) == 5
    # Each species links to its English Wikipedia article (model_training/taxonomy.py).
    html = sent_html(tg, reply)
    wikipedia = "https://en.wikipedia.org/w/index.php?search=Helianthus+annuus&amp;go=Go"
    assert f'1. <a href="{wikipedia}">{name.capitalize()}</a>' in html
    assert html.count('<a href="https://en.wikipedia.org/') == 5
    buttons = [b["text"] for row in tg.keyboard(reply) for b in row]
    assert buttons[0] == name.capitalize() and buttons[-2:] == ["None of these", "Not a flower"]
    assert len(buttons) == 7
    assert all(len(b["callback_data"].encode()) <= 64 for row in tg.keyboard(reply) for b in row)


async def test_answer_is_stored_with_its_verdict(tg, bot, sample_photos, db):
    path, _, _ = sample_photos[0]
    reply = await answer_to_photo(tg, ALICE, path.read_bytes())
    assert count(db, Photo) == 1 and count(db, Prediction) == 1
    assert prediction(db, prediction_under(tg, reply)) == (SHIPPED_VERSION, Verdict.SURE)
    width, height = Image.open(path).size
    assert in_db(db, lambda s: [(p.width, p.height) for p in s.scalars(select(Photo))]) == [
        (width, height)
    ]


async def test_image_file_is_answered(tg, bot, sample_photos):
    path, _, name = sample_photos[4]
    mark = tg.mark()
    tg.user_document(ALICE, png_bytes(path), file_name="flower.png", mime_type="image/png")
    reply = await reply_to(tg, ALICE, mark)
    assert name.capitalize() in reply["text"].splitlines()[0]


async def test_heic_file_is_answered(tg, bot, sample_photos):
    """An iPhone photo sent as a file arrives as HEIC."""
    path, _, name = sample_photos[4]
    heic = io.BytesIO()
    Image.open(path).save(heic, "HEIF", quality=90)
    mark = tg.mark()
    tg.user_document(ALICE, heic.getvalue(), file_name="IMG_0001.HEIC", mime_type="image/heic")
    reply = await reply_to(tg, ALICE, mark)
    assert name.capitalize() in reply["text"].splitlines()[0]


async def test_forwarded_photo_is_answered(tg, bot, sample_photos):
    origin = {
        "type": "user",
        "date": 0,
        "sender_user": {"id": 7, "is_bot": False, "first_name": "Eve"},
    }
    reply = await answer_to_photo(
        tg, ALICE, sample_photos[0][0].read_bytes(), forward_origin=origin
    )
    assert reply["text"].splitlines()[0] == "🌼 I think this is Sunflower."


BAD_INPUTS: dict[str, tuple[Callable[[FakeTelegram, bytes], object], str]] = {
    "pdf": (
        lambda tg, _: tg.user_document(
            ALICE, b"%PDF-1.4 ...", file_name="a.pdf", mime_type="application/pdf"
        ),
        "I can only look at photos",
    ),
    "sticker": (lambda tg, _: tg.user_sticker(ALICE), "I can only look at photos"),
    "video": (lambda tg, _: tg.user_video(ALICE), "I can only look at photos"),
    "truncated": (
        lambda tg, jpeg: tg.user_document(ALICE, jpeg[:1500], file_name="cut.jpg"),
        "damaged or truncated",
    ),
    "empty": (lambda tg, _: tg.user_document(ALICE, b"", file_name="empty.jpg"), "empty"),
    "over 20 MB": (
        lambda tg, _: tg.user_document(
            ALICE, b"x" * 100, file_name="huge.jpg", file_size=30 * 1024 * 1024
        ),
        "too large for me to download",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
async def test_bad_input_gets_a_short_explanation(tg, bot, sample_photos, db, case):
    send, expected = BAD_INPUTS[case]
    mark = tg.mark()
    send(tg, sample_photos[0][0].read_bytes())
    reply = await reply_to(tg, ALICE, mark)
    assert expected in reply["text"]
    assert "Traceback" not in reply["text"]
    assert count(db, Photo) == 0


async def test_sixth_photo_in_a_minute_is_refused_kindly(tg, bot, sample_photos):
    data = sample_photos[0][0].read_bytes()
    mark = tg.mark()
    for _ in range(6):  # the bot fixture allows 5 a minute
        tg.user_photo(BOB, data)
    texts = [m["text"] for m in await n_replies(tg, BOB, mark, 6)]
    assert sum("a lot of flowers" in t for t in texts) == 1
    assert sum("I think this is" in t for t in texts) == 5


async def test_network_errors_are_retried(tg, bot, sample_photos):
    tg.fail_next("sendMessage", times=2, status=502)
    reply = await answer_to_photo(tg, ALICE, sample_photos[0][0].read_bytes())
    assert reply["text"].startswith("🌼 I think this is Sunflower.")
    failed = [c for c in tg.calls("sendMessage")[-3:] if not c.ok]
    assert len(failed) == 2


# -- verdicts --------------------------------------------------------------------------------------


async def test_not_a_flower_is_said_instead_of_a_species(tg, bot, db):
    astronaut = Path(skimage.data.__file__).parent / "astronaut.png"
    reply = await answer_to_photo(tg, ALICE, png_bytes(astronaut))
    assert reply["text"].startswith("🌿 This does not look like a flower to me.")
    assert prediction(db, prediction_under(tg, reply))[1] == Verdict.NOT_A_FLOWER


async def test_small_photo_is_answered_too_small_not_not_a_flower(tg, bot, sample_photos, db):
    """Shrunk below the minimum side, a flower's features drift away from every species; the
    answer must blame the size rather than call the flower "not a flower"."""
    classifier = serving_classifier(bot)
    short_side = classifier.rules.min_photo_side * 5 // 8  # 100 px for the default 160
    shrunk = [jpeg_with_short_side(path, short_side) for path, _, _ in sample_photos[:16]]
    answers = await asyncio.to_thread(classifier.answers, [decode_photo(d) for d in shrunk])
    # One whose features alone would make it "not a flower".
    small = next(
        data
        for data, answer in zip(shrunk, answers, strict=True)
        if answer.flower_score < classifier.rules.not_a_flower_below
    )

    reply = await answer_to_photo(tg, ALICE, small)
    assert reply["text"].splitlines()[0] == VERDICT_LINES[Verdict.TOO_SMALL]
    assert len(ranked_lines(reply["text"])) == 5
    assert len(species_buttons(tg, reply)) == 5
    assert prediction(db, prediction_under(tg, reply))[1] == Verdict.TOO_SMALL
    assert in_db(db, lambda s: [min(p.width, p.height) for p in s.scalars(select(Photo))]) == [
        short_side
    ]


async def test_photo_at_the_minimum_size_is_not_too_small(tg, bot, sample_photos, db):
    path, _, _ = sample_photos[0]
    reply = await answer_to_photo(tg, ALICE, jpeg_with_short_side(path, min_photo_side(bot)))
    assert reply["text"].splitlines()[0] != VERDICT_LINES[Verdict.TOO_SMALL]
    assert prediction(db, prediction_under(tg, reply))[1] != Verdict.TOO_SMALL


async def test_top5_of_a_small_photo_is_still_too_small(tg, bot, sample_photos, db):
    """/top5 answers again from the stored 224x224 square, but at the size the photo was sent."""
    small = jpeg_with_short_side(sample_photos[0][0], min_photo_side(bot) * 5 // 8)
    await answer_to_photo(tg, ALICE, small)
    mark = tg.mark()
    tg.user_command(ALICE, "top5")
    again = await reply_to(tg, ALICE, mark)
    assert again["text"].splitlines()[0] == VERDICT_LINES[Verdict.TOO_SMALL]
    assert prediction(db, prediction_under(tg, again))[1] == Verdict.TOO_SMALL


# -- /top5 in a private chat -----------------------------------------------------------------------


async def test_top5_before_any_photo_says_so(tg, bot):
    assert "not sent me a photo yet" in await command(tg, ALICE, "top5")


async def test_top5_alone_repeats_last_answer(tg, bot, sample_photos):
    first = await answer_to_photo(tg, ALICE, sample_photos[10][0].read_bytes())
    mark = tg.mark()
    tg.user_command(ALICE, "top5")
    again = await reply_to(tg, ALICE, mark)
    # Answered again from the stored 224x224 square: the verdict and the top-1 stay the same.
    assert again["text"].splitlines()[:4] == first["text"].splitlines()[:4]
    assert species_buttons(tg, again)[0] == species_buttons(tg, first)[0]


async def test_top5_again_stores_its_own_prediction(tg, bot, sample_photos, db):
    first = await answer_to_photo(tg, ALICE, sample_photos[10][0].read_bytes())
    mark = tg.mark()
    tg.user_command(ALICE, "top5")
    again = await reply_to(tg, ALICE, mark)
    assert count(db, Photo) == 1 and count(db, Prediction) == 2
    stored = in_db(db, lambda s: {p.id for p in s.scalars(select(Prediction))})
    assert {prediction_under(tg, first), prediction_under(tg, again)} == stored


# -- feedback --------------------------------------------------------------------------------------


async def test_feedback_button_records_species(tg, bot, sample_photos, db):
    path, label, name = sample_photos[2]  # a rose
    reply = await answer_to_photo(tg, ALICE, path.read_bytes())
    edited = await tap(tg, reply, name.capitalize())
    assert edited["text"].endswith(f"✅ Thanks! Recorded: {name.capitalize()}.")
    assert edited["text"].splitlines()[0] == reply["text"].splitlines()[0]  # the answer stays
    assert feedback_rows(db) == [(ALICE, prediction_under(tg, reply), label, name, False)]


async def test_second_tap_replaces_first_answer(tg, bot, sample_photos, db):
    path, _, name = sample_photos[2]
    reply = await answer_to_photo(tg, ALICE, path.read_bytes())
    await tap(tg, reply, name.capitalize())
    edited = await tap(tg, reply, "Not a flower")
    assert edited["text"].endswith("✅ Thanks! Recorded: not a flower.")
    assert edited["text"].count("✅") == 1
    assert feedback_rows(db) == [(ALICE, prediction_under(tg, reply), None, None, True)]


async def test_same_button_tapped_twice_is_harmless(tg, bot, handled, sample_photos, db):
    """The second tap changes nothing; the bot must not fail on Telegram's "message is not
    modified" (which the fake server answers to an edit that changes nothing)."""
    path, label, name = sample_photos[2]
    reply = await answer_to_photo(tg, ALICE, path.read_bytes())
    first = await tap(tg, reply, name.capitalize())
    mark = tg.mark()
    press = tg.press_button(reply, name.capitalize())
    await handled.wait(press)
    assert tg.message(ALICE, reply["message_id"])["text"] == first["text"]
    sent = [c.params["text"] for c in tg.calls()[mark:] if c.method == "sendMessage"]
    assert sent == []  # no apology
    answered = {c.params["callback_query_id"] for c in tg.calls("answerCallbackQuery") if c.ok}
    assert press["id"] in answered
    assert feedback_rows(db) == [(ALICE, prediction_under(tg, reply), label, name, False)]


async def test_none_of_these_then_typed_name_is_confirmed(tg, bot, sample_photos, db):
    path, label, _ = sample_photos[2]
    reply = await answer_to_photo(tg, ALICE, path.read_bytes())
    mark = tg.mark()
    tg.press_button(reply, "None of these")
    assert "Type its name" in (await reply_to(tg, ALICE, mark))["text"]
    mark = tg.mark()
    tg.user_text(ALICE, "Rosse")  # a typo
    confirm = await reply_to(tg, ALICE, mark)
    assert tg.keyboard(confirm)[0][0]["text"] == "Rose"
    assert prediction_under(tg, confirm) == prediction_under(tg, reply)
    edited = await tap(tg, confirm, "Rose")
    assert edited["text"] == "Thanks! Recorded: Rose."
    assert feedback_rows(db) == [(ALICE, prediction_under(tg, reply), label, "rose", False)]


async def test_a_name_not_in_the_list_is_offered_as_a_new_species(tg, bot, sample_photos, db):
    reply = await answer_to_photo(tg, ALICE, sample_photos[2][0].read_bytes())
    offer = await type_a_name(tg, ALICE, reply, "Tulips")
    # "siam tulip" (a Curcuma) is offered, and below it the new species.
    assert offer["text"] == "Did you mean one of these?"
    assert [row[0]["text"] for row in tg.keyboard(offer)] == [
        "Siam tulip",
        "Record “Tulip” as a new species",
    ]
    button = tg.keyboard(offer)[-1][0]
    assert feedback_rows(db) == []  # nothing recorded before the tap
    edited = await tap(tg, offer, button["text"])
    assert edited["text"] == "Thanks! Recorded as a new species: Tulip."
    assert feedback_rows(db) == [(ALICE, prediction_under(tg, reply), None, "Tulip", False)]
    # Bob misspells it: offered the same species, not a new one.
    other = await answer_to_photo(tg, BOB, sample_photos[3][0].read_bytes())
    offer = await type_a_name(tg, BOB, other, "tulp")
    assert tg.keyboard(offer)[-1][0]["text"] == "Record “Tulip” as a new species"
    await tap(tg, offer, "Record “Tulip” as a new species", user=BOB)
    species = await command(tg, ADMIN, "species")
    assert "Tulip: 2 photo(s) from 2 user(s) (candidate)" in species


async def test_a_name_matching_nothing_is_offered_only_as_new(tg, bot, sample_photos, db):
    reply = await answer_to_photo(tg, ALICE, sample_photos[2][0].read_bytes())
    mark = tg.mark()
    tg.press_button(reply, "None of these")
    await reply_to(tg, ALICE, mark)
    offer_text = await text_reply(tg, ALICE, "Qwertyuiop")
    assert offer_text.startswith("I do not know a species called “Qwertyuiop”")
    assert await text_reply(tg, ALICE, "123") == "Please type a flower's name (up to 60 letters)."
    assert feedback_rows(db) == []


async def test_admin_approves_and_merges_new_species(tg, bot, sample_photos, db):
    for user, typed, photo in ((ALICE, "tulip", 2), (BOB, "freesia", 3)):
        await record_new_species(tg, user, sample_photos[photo][0].read_bytes(), typed)
    assert "No new species is called “Lily”" in await command(tg, ADMIN, "addspecies", "Lily")
    assert "Usage: /addspecies" in await command(tg, ADMIN, "addspecies", "")
    assert "Sorry" in await command(tg, ALICE, "addspecies", "Tulip")  # not an admin
    merged = await command(tg, ADMIN, "addspecies", "Freesia = Tulip")
    assert merged == "Merged: “Freesia” is now counted as Tulip."
    assert await command(tg, ADMIN, "addspecies", "tulips") == (
        "Approved: Tulip. The next retraining adds it if its photos are learnt well enough."
    )
    species = await command(tg, ADMIN, "species")
    assert "Tulip: 2 photo(s) from 2 user(s) (approved)" in species
    assert "Freesia" not in species


async def test_the_name_question_survives_a_restart(tg, db, handled, sample_photos):
    """Asked for the name by one bot process, typed to the next one: still recorded."""
    path, label, _ = sample_photos[2]
    first = await running(settings_for(tg, db), handled)
    reply = await answer_to_photo(tg, ALICE, path.read_bytes())
    mark = tg.mark()
    tg.press_button(reply, "None of these")
    assert "Type its name" in (await reply_to(tg, ALICE, mark))["text"]
    await stopped(first)
    second = await running(settings_for(tg, db), handled)
    try:
        mark = tg.mark()
        tg.user_text(ALICE, "rose")
        confirm = await reply_to(tg, ALICE, mark)
        assert tg.keyboard(confirm)[0][0]["text"] == "Rose"
        await tap(tg, confirm, "Rose")
    finally:
        await stopped(second)
    assert feedback_rows(db) == [(ALICE, prediction_under(tg, reply), label, "rose", False)]


async def test_text_without_a_photo_gets_a_hint(tg, bot):
    assert "Send me a photo of a flower" in await text_reply(tg, ALICE, "hello")


# -- feedback and model versions -------------------------------------------------------------------


async def answers_before_and_after_a_new_version(
    tg: FakeTelegram, db: Path, tmp_path: Path, photo: bytes
) -> tuple[dict, dict]:
    """Answer A to a photo from the shipped model; then v2-test starts serving (/rollback) and
    /top5 gives answer B from it."""
    answer_a = await answer_to_photo(tg, ALICE, photo)
    folder = tmp_path / "v2-test"
    shutil.copytree(SHIPPED_MODEL, folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "version": "v2-test"}))
    in_db(db, lambda s: add_version(s, "v2-test", str(folder), ModelStatus.CANDIDATE, {}))
    assert await command(tg, ADMIN, "rollback", "v2-test") == "Now serving v2-test."
    mark = tg.mark()
    tg.user_command(ALICE, "top5")
    answer_b = await reply_to(tg, ALICE, mark)
    assert prediction(db, prediction_under(tg, answer_a))[0] == SHIPPED_VERSION
    assert prediction(db, prediction_under(tg, answer_b))[0] == "v2-test"
    return answer_a, answer_b


async def test_feedback_belongs_to_the_answer_shown_after_a_new_version(
    tg, bot, sample_photos, db, tmp_path
):
    answer_a, _ = await answers_before_and_after_a_new_version(
        tg, db, tmp_path, sample_photos[0][0].read_bytes()
    )
    top1 = species_buttons(tg, answer_a)[0]
    await tap(tg, answer_a, top1)  # on the old answer, after the new one was shown
    [row] = feedback_rows(db)
    assert row[1] == prediction_under(tg, answer_a)
    assert prediction(db, row[1])[0] == SHIPPED_VERSION
    stats = await command(tg, ADMIN, "stats")
    assert f"{SHIPPED_VERSION}: 100% right by feedback (1 of 1)" in stats
    assert "v2-test" not in stats


async def test_feedback_on_the_new_versions_answer_counts_for_it(
    tg, bot, sample_photos, db, tmp_path
):
    _, answer_b = await answers_before_and_after_a_new_version(
        tg, db, tmp_path, sample_photos[0][0].read_bytes()
    )
    await tap(tg, answer_b, species_buttons(tg, answer_b)[0])
    [row] = feedback_rows(db)
    assert row[1] == prediction_under(tg, answer_b)
    assert prediction(db, row[1])[0] == "v2-test"
    stats = await command(tg, ADMIN, "stats")
    assert "v2-test: 100% right by feedback (1 of 1)" in stats
    assert SHIPPED_VERSION not in stats


# -- groups ----------------------------------------------------------------------------------------


async def test_group_photo_without_mention_is_ignored(tg, bot, handled, sample_photos):
    path = sample_photos[10][0]
    ignored = tg.user_photo(GROUP, path.read_bytes(), user_id=BOB)
    answered = tg.user_photo(GROUP, path.read_bytes(), caption="/top5", user_id=BOB)
    reply = await reply_to(tg, GROUP, after=0)
    await handled.wait(ignored)
    await handled.wait(answered)
    assert [m["message_id"] for m in tg.sent_messages(GROUP)] == [reply["message_id"]]
    assert reply["reply_to_message"]["message_id"] == answered["message_id"]


async def test_group_photo_captioned_top5_is_answered(tg, bot, sample_photos):
    path, _, name = sample_photos[10]
    mark = tg.mark()
    photo = tg.user_photo(GROUP, path.read_bytes(), caption="/top5", user_id=BOB)
    reply = await reply_to(tg, GROUP, mark)
    assert reply["reply_to_message"]["message_id"] == photo["message_id"]
    assert name.capitalize() in reply["text"].splitlines()[0]


async def test_group_photo_mentioning_the_bot_in_its_caption_is_answered(tg, bot, sample_photos):
    path, _, name = sample_photos[10]
    mark = tg.mark()
    caption = f"@{tg.bot_user['username']} which one is this?"
    tg.user_photo(GROUP, path.read_bytes(), caption=caption, user_id=BOB)
    reply = await reply_to(tg, GROUP, mark)
    assert name.capitalize() in reply["text"].splitlines()[0]


async def test_group_top5_in_reply_to_a_photo_answers_it(tg, bot, handled, sample_photos):
    path, _, name = sample_photos[10]
    photo = tg.user_photo(GROUP, path.read_bytes(), user_id=BOB)
    top5 = tg.user_command(GROUP, "top5", user_id=BOB, reply_to=photo)
    reply = await reply_to(tg, GROUP, after=0)
    assert reply["reply_to_message"]["message_id"] == photo["message_id"]
    assert name.capitalize() in reply["text"].splitlines()[0]
    await handled.wait(photo)
    await handled.wait(top5)
    assert len(tg.sent_messages(GROUP)) == 1  # the photo itself got no answer of its own


async def test_group_mention_in_reply_to_a_photo_answers_it(tg, bot, handled, sample_photos):
    path, _, name = sample_photos[10]
    photo = tg.user_photo(GROUP, path.read_bytes(), user_id=BOB)
    mention = f"@{tg.bot_user['username']} what is this?"
    asked = tg.user_text(GROUP, mention, user_id=BOB, reply_to=photo)
    reply = await reply_to(tg, GROUP, after=0)
    assert reply["reply_to_message"]["message_id"] == photo["message_id"]
    assert name.capitalize() in reply["text"].splitlines()[0]
    await handled.wait(photo)
    await handled.wait(asked)
    assert len(tg.sent_messages(GROUP)) == 1  # the photo itself got no answer of its own


async def test_group_top5_alone_asks_for_a_reply_to_a_photo(tg, bot):
    mark = tg.mark()
    tg.user_command(GROUP, "top5", user_id=BOB)
    assert "Reply /top5 to a photo" in (await reply_to(tg, GROUP, mark))["text"]


# -- general commands, privacy, admin --------------------------------------------------------------


async def test_start_explains_what_to_do(tg, bot):
    text = await command(tg, ALICE, "start")
    assert "Send me a photo of a flower" in text and "I know 102 species" in text


async def test_privacy_says_how_long_photos_are_kept(tg, bot):
    assert "180 days" in await command(tg, ALICE, "privacy")


async def test_forget_deletes_the_users_data_and_no_one_elses(tg, bot, sample_photos, db):
    for user in (ALICE, BOB):
        reply = await answer_to_photo(tg, user, sample_photos[0][0].read_bytes())
        await tap(tg, reply, "Sunflower", user=user)
    assert count(db, Photo) == 2 and count(db, Feedback) == 2

    assert "deleted 1 photo(s), 1 answer(s)" in await command(tg, ALICE, "forget")
    assert in_db(db, lambda s: [p.user_id for p in s.scalars(select(Photo))]) == [BOB]
    assert [row[0] for row in feedback_rows(db)] == [BOB]


@pytest.mark.parametrize("name", ["stats", "retrain", "models", "rollback", "exclude"])
async def test_admin_commands_are_refused_to_others(tg, bot, name):
    assert "only for the bot's administrators" in await command(tg, BOB, name)


async def test_stats_reports_activity_and_accuracy_by_feedback(tg, bot, sample_photos):
    reply = await answer_to_photo(tg, ALICE, sample_photos[0][0].read_bytes())
    await tap(tg, reply, "Sunflower")
    stats = await command(tg, ADMIN, "stats")
    assert "Last day: 1 photos from 1 users" in stats
    assert f"{SHIPPED_VERSION}: 100% right by feedback (1 of 1)" in stats


# -- restarts --------------------------------------------------------------------------------------


async def test_feedback_survives_a_restart(tg, sample_photos, db):
    settings = settings_for(tg, db)
    async with bot_running(settings):
        reply = await answer_to_photo(tg, ALICE, sample_photos[2][0].read_bytes())
        await tap(tg, reply, "Rose")
    async with bot_running(settings):
        assert "(1 of 1)" in await command(tg, ADMIN, "stats")


async def test_button_from_before_a_restart_still_records(tg, sample_photos, db):
    settings = settings_for(tg, db)
    async with bot_running(settings):
        reply = await answer_to_photo(tg, ALICE, sample_photos[2][0].read_bytes())
    async with bot_running(settings):
        edited = await tap(tg, reply, "Rose")
        assert edited["text"].endswith("✅ Thanks! Recorded: Rose.")
        assert [row[1] for row in feedback_rows(db)] == [prediction_under(tg, reply)]


async def test_top5_after_a_restart_repeats_the_last_answer(tg, sample_photos, db):
    settings = settings_for(tg, db)
    async with bot_running(settings):
        await answer_to_photo(tg, ALICE, sample_photos[2][0].read_bytes())
    async with bot_running(settings):
        assert "Rose" in (await command(tg, ALICE, "top5")).splitlines()[0]
    assert tg.unknown_methods == []
