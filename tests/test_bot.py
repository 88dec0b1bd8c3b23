"""End to end: the real python-telegram-bot client, the fake Bot API server, the real model and a
real SQLite database. Each test drives the bot as Telegram users would."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import skimage
from conftest import SHIPPED_MODEL
from fake_telegram import FakeTelegram
from PIL import Image
from sqlalchemy import func, select
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from storage import Database, Feedback, Photo, Prediction

pytestmark = pytest.mark.asyncio

TOKEN = "123456:" + "A" * 35
ADMIN, ALICE, BOB = 1001, 42, 43
GROUP = -500


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as server:
        yield server


def settings_for(tg: FakeTelegram, db_path: Path, **overrides: object) -> Settings:
    return Settings(
        telegram_bot_token=TOKEN,
        database_url=f"sqlite:///{db_path}",
        model_dir=SHIPPED_MODEL,
        admin_ids=str(ADMIN),
        telegram_api_base_url=tg.base_url,
        telegram_file_base_url=tg.base_file_url,
        **overrides,
    )


async def running(settings: Settings) -> Application:
    app = build_application(settings)
    await app.initialize()
    await app.post_init(app)  # run_polling would call it; start() does not
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=1)
    return app


async def stopped(app: Application) -> None:
    await app.updater.stop()
    await app.stop()
    await app.post_shutdown(app)
    await app.shutdown()


@pytest_asyncio.fixture
async def bot(tg: FakeTelegram, tmp_path: Path) -> AsyncIterator[Application]:
    app = await running(settings_for(tg, tmp_path / "bot.sqlite", photos_per_minute=5))
    yield app
    await stopped(app)
    assert tg.unknown_methods == []


def count(db_path: Path, model: type) -> int:
    database = Database(f"sqlite:///{db_path}")
    try:
        with database.session() as session:
            return session.scalar(select(func.count()).select_from(model))
    finally:
        database.dispose()


async def reply_to(tg: FakeTelegram, chat_id: int, after: int, timeout: float = 60) -> dict:
    call = await tg.wait_for("sendMessage", chat_id=chat_id, after=after, timeout=timeout)
    return call.result


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


def png_bytes(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).save(buffer, "PNG")
    return buffer.getvalue()


async def test_photo_gets_top5_reply_with_feedback_buttons(tg, bot, sample_photos, tmp_path):
    path, _, name = sample_photos[0]  # a sunflower
    mark = tg.mark()
    photo = tg.user_photo(ALICE, path.read_bytes())
    reply = await reply_to(tg, ALICE, mark)
    assert reply["reply_to_message"]["message_id"] == photo["message_id"]
    lines = reply["text"].splitlines()
    assert lines[0] == f"🌼 I think this is {name.capitalize()}."
    assert lines[2] == f"1. {name.capitalize()}" and lines[3].endswith("%")
    assert sum(line[:2] in {"1.", "2.", "3.", "4.", "5."} for line in lines) == 5
    buttons = [b["text"] for row in tg.keyboard(reply) for b in row]
    assert buttons[0] == name.capitalize() and buttons[-2:] == ["None of these", "Not a flower"]
    assert all(len(b["callback_data"].encode()) <= 64 for row in tg.keyboard(reply) for b in row)
    assert count(tmp_path / "bot.sqlite", Photo) == 1
    assert count(tmp_path / "bot.sqlite", Prediction) == 1


async def test_feedback_buttons_record_and_change_the_answer(tg, bot, sample_photos, tmp_path):
    path, label, name = sample_photos[2]  # a rose
    mark = tg.mark()
    tg.user_photo(ALICE, path.read_bytes())
    reply = await reply_to(tg, ALICE, mark)
    db = tmp_path / "bot.sqlite"

    mark = tg.mark()
    tg.press_button(reply, name.capitalize())
    await tg.wait_for("editMessageText", chat_id=ALICE, after=mark)
    assert tg.message(ALICE, reply["message_id"])["text"].endswith(
        f"✅ Thanks! Recorded: {name.capitalize()}."
    )
    mark = tg.mark()
    tg.press_button(reply, "Not a flower")  # a second tap replaces the first answer
    await tg.wait_for("editMessageText", chat_id=ALICE, after=mark)
    text = tg.message(ALICE, reply["message_id"])["text"]
    assert text.endswith("✅ Thanks! Recorded: not a flower.") and text.count("✅") == 1
    database = Database(f"sqlite:///{db}")
    with database.session() as session:
        rows = session.scalars(select(Feedback)).all()
        assert [(r.user_id, r.species_index, r.not_a_flower) for r in rows] == [(ALICE, None, True)]
    database.dispose()

    # "None of these", then a typed name with a typo and a plural: confirmed with a button.
    mark = tg.mark()
    tg.press_button(reply, "None of these")
    ask = await reply_to(tg, ALICE, mark)
    assert "Type its name" in ask["text"]
    mark = tg.mark()
    tg.user_text(ALICE, "Rosse")
    confirm = await reply_to(tg, ALICE, mark)
    assert tg.keyboard(confirm)[0][0]["text"] == "Rose"
    mark = tg.mark()
    tg.press_button(confirm, "Rose")
    await tg.wait_for("editMessageText", chat_id=ALICE, after=mark)
    assert tg.message(ALICE, confirm["message_id"])["text"] == "Thanks! Recorded: Rose."
    database = Database(f"sqlite:///{db}")
    with database.session() as session:
        rows = session.scalars(select(Feedback)).all()
        assert [(r.species_index, r.species, r.not_a_flower) for r in rows] == [
            (label, "rose", False)
        ]
    database.dispose()


async def test_image_file_album_and_forwarded_photo_are_all_answered(tg, bot, sample_photos):
    path, _, name = sample_photos[4]
    mark = tg.mark()
    tg.user_document(ALICE, png_bytes(path), file_name="flower.png", mime_type="image/png")
    reply = await reply_to(tg, ALICE, mark)
    assert name.capitalize() in reply["text"].splitlines()[0]

    # An iPhone photo sent as a file arrives as HEIC.
    heic = io.BytesIO()
    Image.open(path).save(heic, "HEIF", quality=90)
    mark = tg.mark()
    tg.user_document(ALICE, heic.getvalue(), file_name="IMG_0001.HEIC", mime_type="image/heic")
    reply = await reply_to(tg, ALICE, mark)
    assert name.capitalize() in reply["text"].splitlines()[0]

    mark = tg.mark()
    album = tg.user_album(BOB, [p.read_bytes() for p, _, _ in sample_photos[6:9]])
    answers = await n_replies(tg, BOB, mark, len(album))
    assert {a["reply_to_message"]["message_id"] for a in answers} == {
        m["message_id"] for m in album
    }

    mark = tg.mark()
    origin = {
        "type": "user",
        "date": 0,
        "sender_user": {"id": 7, "is_bot": False, "first_name": "Eve"},
    }
    tg.user_photo(ALICE, sample_photos[0][0].read_bytes(), forward_origin=origin)
    reply = await reply_to(tg, ALICE, mark)
    assert "Sunflower" in reply["text"].splitlines()[0]


async def test_non_images_and_bad_images_get_a_short_explanation(tg, bot, sample_photos):
    cases = [
        (
            lambda: tg.user_document(
                ALICE, b"%PDF-1.4 ...", file_name="a.pdf", mime_type="application/pdf"
            ),
            "I can only look at photos",
        ),
        (lambda: tg.user_sticker(ALICE), "I can only look at photos"),
        (lambda: tg.user_video(ALICE), "I can only look at photos"),
        (
            lambda: tg.user_document(
                ALICE, sample_photos[0][0].read_bytes()[:1500], file_name="cut.jpg"
            ),
            "damaged or truncated",
        ),
        (lambda: tg.user_document(ALICE, b"", file_name="empty.jpg"), "empty"),
        (
            lambda: tg.user_document(
                ALICE, b"x" * 100, file_name="huge.jpg", file_size=30 * 1024 * 1024
            ),
            "too large for me to download",
        ),
    ]
    for send, expected in cases:
        mark = tg.mark()
        send()
        reply = await reply_to(tg, ALICE, mark)
        assert expected in reply["text"]
        assert "Traceback" not in reply["text"]


async def test_not_a_flower_is_said_instead_of_a_species(tg, bot):
    astronaut = Path(skimage.data.__file__).parent / "astronaut.png"
    mark = tg.mark()
    tg.user_photo(ALICE, png_bytes(astronaut))
    reply = await reply_to(tg, ALICE, mark)
    assert reply["text"].startswith("🌿 This does not look like a flower to me.")


async def test_top5_in_private_and_in_groups(tg, bot, sample_photos):
    mark = tg.mark()
    tg.user_command(ALICE, "top5")
    assert "not sent me a photo yet" in (await reply_to(tg, ALICE, mark))["text"]

    path, _, name = sample_photos[10]
    mark = tg.mark()
    tg.user_photo(ALICE, path.read_bytes())
    first = await reply_to(tg, ALICE, mark)
    mark = tg.mark()
    tg.user_command(ALICE, "top5")
    again = await reply_to(tg, ALICE, mark)
    assert again["text"].splitlines()[:4] == first["text"].splitlines()[:4]

    # In a group an ordinary photo is ignored; /top5 in reply to it, or as its caption, answers.
    mark = tg.mark()
    group_photo = tg.user_photo(GROUP, path.read_bytes(), user_id=BOB)
    tg.user_command(GROUP, "top5", user_id=BOB, reply_to=group_photo)
    reply = await reply_to(tg, GROUP, mark)
    assert name.capitalize() in reply["text"].splitlines()[0]
    await asyncio.sleep(1.0)
    assert len([c for c in tg.calls("sendMessage") if c.params["chat_id"] == GROUP]) == 1
    mark = tg.mark()
    tg.user_photo(GROUP, path.read_bytes(), caption="/top5", user_id=BOB)
    reply = await reply_to(tg, GROUP, mark)
    assert name.capitalize() in reply["text"].splitlines()[0]
    mark = tg.mark()
    tg.user_text(
        GROUP, f"@{tg.bot_user['username']} what is this?", user_id=BOB, reply_to=group_photo
    )
    reply = await reply_to(tg, GROUP, mark)
    assert reply["reply_to_message"]["message_id"] == group_photo["message_id"]
    assert name.capitalize() in reply["text"].splitlines()[0]


async def test_rate_limit_answers_kindly(tg, bot, sample_photos):
    data = sample_photos[0][0].read_bytes()
    mark = tg.mark()
    for _ in range(6):
        tg.user_photo(BOB, data)
    texts = [m["text"] for m in await n_replies(tg, BOB, mark, 6)]
    assert sum("a lot of flowers" in t for t in texts) == 1
    assert sum("I think this is" in t for t in texts) == 5


async def test_privacy_forget_and_admin_commands(tg, bot, sample_photos, tmp_path):
    db = tmp_path / "bot.sqlite"
    for user in (ALICE, BOB):
        mark = tg.mark()
        tg.user_photo(user, sample_photos[0][0].read_bytes())
        reply = await reply_to(tg, user, mark)
        mark = tg.mark()
        tg.press_button(reply, "Sunflower", user_id=user)
        await tg.wait_for("editMessageText", chat_id=user, after=mark)
    assert count(db, Photo) == 2 and count(db, Feedback) == 2

    mark = tg.mark()
    tg.user_command(ALICE, "privacy")
    assert "180 days" in (await reply_to(tg, ALICE, mark))["text"]
    mark = tg.mark()
    tg.user_command(ALICE, "forget")
    assert "deleted 1 photo(s), 1 answer(s)" in (await reply_to(tg, ALICE, mark))["text"]
    assert count(db, Photo) == 1 and count(db, Feedback) == 1  # Bob's stay

    for command in ("stats", "retrain"):
        mark = tg.mark()
        tg.user_command(BOB, command)
        assert "only for the bot's administrators" in (await reply_to(tg, BOB, mark))["text"]
    mark = tg.mark()
    tg.user_command(ADMIN, "stats")
    stats = (await reply_to(tg, ADMIN, mark))["text"]
    assert "Last day: 1 photos from 1 users" in stats
    assert "oxford102-v1: 100% right by feedback (1 of 1)" in stats


async def test_feedback_survives_a_restart(tg, tmp_path, sample_photos):
    settings = settings_for(tg, tmp_path / "bot.sqlite")
    app = await running(settings)
    mark = tg.mark()
    tg.user_photo(ALICE, sample_photos[2][0].read_bytes())
    reply = await reply_to(tg, ALICE, mark)
    mark = tg.mark()
    tg.press_button(reply, "Rose")
    await tg.wait_for("editMessageText", chat_id=ALICE, after=mark)
    await stopped(app)

    app = await running(settings)
    try:
        assert count(tmp_path / "bot.sqlite", Feedback) == 1
        mark = tg.mark()
        tg.user_command(ALICE, "top5")
        assert "Rose" in (await reply_to(tg, ALICE, mark))["text"]
    finally:
        await stopped(app)


async def test_network_errors_are_retried(tg, bot, sample_photos):
    tg.fail_next("sendMessage", times=2, status=502)
    mark = tg.mark()
    tg.user_photo(ALICE, sample_photos[0][0].read_bytes())
    reply = await reply_to(tg, ALICE, mark)
    assert reply["text"].startswith("🌼 I think this is Sunflower.")
    failed = [c for c in tg.calls("sendMessage")[-3:] if not c.ok]
    assert len(failed) == 2
