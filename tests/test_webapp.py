"""The camera page's POST /webapp/photo (bot/webapp.py) and its init data check (bot/initdata.py):
only what Telegram signed for this bot, lately, is taken; a taken photo is stored and answered
in the chat like one sent there, once per key. The page itself, in headless Chromium, is tested
in tests/test_web.py."""

# ruff: noqa: F401, F811
from __future__ import annotations

import asyncio
import io
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import pytest_asyncio
from conftest import free_port
from fake_telegram import FakeTelegram
from PIL import Image
from test_bot import (
    ALICE,
    BOB,
    TOKEN,
    count,
    feedback_rows,
    handled,
    in_db,
    running,
    settings_for,
    stopped,
)
from test_second_photo import ASK, offered, unsure_model

from bot import callbacks
from bot.initdata import InitDataError, sign, validated_user
from storage import Feedback, IdentificationRequest, Photo, Prediction, WebAppSend
from web.server import serving

OTHER_BOT = "654321:" + "B" * 35
DAY = timedelta(days=1)
SECOND_PHOTO = "📷 Add a photo of the same plant"


@pytest.fixture
def db(tmp_path: Path) -> Path:  # the bot's SQLite file (conftest's `db` is a Database)
    return tmp_path / "bot.sqlite"


def fields_of(init_data: str) -> dict[str, str]:
    return dict(parse_qsl(init_data, keep_blank_values=True))


def signed(fields: dict[str, str], token: str = TOKEN) -> str:
    fields = {name: value for name, value in fields.items() if name != "hash"}
    return urlencode({**fields, "hash": sign(fields, token)})


# -- the init data check ---------------------------------------------------------------------------


def test_init_data_signed_by_the_fake_telegram_is_valid(tg) -> None:
    tg.set_user(ALICE, first_name="Alice", username="alice", language_code="es")
    user = validated_user(tg.webapp_init_data(ALICE), TOKEN, DAY, datetime.now(UTC))
    assert (user.id, user.first_name, user.username, user.language_code) == (
        ALICE,
        "Alice",
        "alice",
        "es",
    )


@pytest.mark.parametrize(
    "change",
    [
        "forged hash",
        "other bot",
        "too old",
        "from the future",
        "tampered user id",
        "no hash",
        "no user",
        "twice",
        "empty",
    ],
)
def test_init_data_not_from_telegram_for_this_bot_lately_is_refused(tg, change: str) -> None:
    now = datetime.now(UTC)
    good = tg.webapp_init_data(ALICE)
    fields = fields_of(good)
    init_data = {
        "forged hash": urlencode({**fields, "hash": "0" * 64}),
        "other bot": tg.webapp_init_data(ALICE, token=OTHER_BOT),
        "too old": tg.webapp_init_data(ALICE, auth_date=int((now - DAY).timestamp()) - 5),
        "from the future": tg.webapp_init_data(ALICE, auth_date=int(now.timestamp()) + 3600),
        "tampered user id": good.replace(f"%22id%22%3A{ALICE}", f"%22id%22%3A{BOB}"),
        "no hash": urlencode({k: v for k, v in fields.items() if k != "hash"}),
        "no user": signed({k: v for k, v in fields.items() if k != "user"}),
        "twice": good + "&auth_date=" + fields["auth_date"],
        "empty": "",
    }[change]
    assert init_data != good
    with pytest.raises(InitDataError):
        validated_user(init_data, TOKEN, DAY, now)


def test_init_data_fuzzed_field_by_field_is_never_accepted(tg) -> None:
    """Every field of good init data changed at random (a character replaced, inserted or
    dropped; the field dropped, duplicated or emptied; a field added): never accepted."""
    rng = random.Random(33)
    now = datetime.now(UTC)
    good = tg.webapp_init_data(ALICE)
    validated_user(good, TOKEN, DAY, now)
    pairs = list(parse_qsl(good, keep_blank_values=True))
    tried = 0
    for _ in range(400):
        changed = [list(pair) for pair in pairs]
        at = rng.randrange(len(changed))
        name, value = changed[at]
        how = rng.choice(["replace", "insert", "drop char", "drop", "twice", "empty", "add"])
        if how in ("replace", "insert", "drop char") and value:
            i = rng.randrange(len(value))
            char = rng.choice('0123456789abcdef{}":,=&%')
            value = {
                "replace": value[:i] + char + value[i + 1 :],
                "insert": value[:i] + char + value[i:],
                "drop char": value[:i] + value[i + 1 :],
            }[how]
            changed[at][1] = value
        elif how == "drop":
            del changed[at]
        elif how == "twice":
            changed.append([name, value])
        elif how == "empty":
            changed[at][1] = ""
        else:
            changed.append([f"extra{rng.randrange(10)}", "1"])
        init_data = urlencode([tuple(pair) for pair in changed])
        if sorted(map(tuple, changed)) == sorted(pairs):
            continue  # a change that changed nothing
        tried += 1
        with pytest.raises(InitDataError):
            validated_user(init_data, TOKEN, DAY, now)
    assert tried > 300


# -- the route, end to end -------------------------------------------------------------------------


def jpeg(path: Path, size: int | None = None) -> bytes:
    image = Image.open(path).convert("RGB")
    if size:
        image = image.resize((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def page_answer(index: int, confidence: float = 0.9) -> str:
    return json.dumps(
        {
            "model_version": None,
            "verdict": "sure",
            "top5": [{"index": index, "confidence": confidence}],
        }
    )


async def send(
    port: int, init_data: str, photo: bytes, answer: str, key: str | None = None
) -> httpx.Response:
    """The page's POST, as app.js makes it."""
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            f"http://127.0.0.1:{port}/webapp/photo",
            data={"init_data": init_data, "answer": answer, "key": key or uuid.uuid4().hex},
            files={"photo": ("photo.jpg", photo, "image/jpeg")},
        )


@pytest.fixture
def port() -> int:
    return free_port()


@pytest_asyncio.fixture
async def webapp_bot(tg, db, port):
    app = await running(settings_for(tg, db, health_port=port, max_download_mb=1))
    yield app
    await stopped(app)
    assert tg.unknown_methods == []


@pytest.mark.asyncio
async def test_a_photo_from_the_page_is_answered_in_the_chat_and_its_tap_is_feedback(
    tg, db, port, webapp_bot, sample_photos
) -> None:
    photo_path, index, name = sample_photos[0]
    tg.user_command(ALICE, "start")
    await tg.wait_for("sendMessage", chat_id=ALICE)
    mark = tg.mark()
    key = uuid.uuid4().hex
    started = time.perf_counter()
    response = await send(
        port, tg.webapp_init_data(ALICE), jpeg(photo_path), page_answer(index), key
    )
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False
    assert time.perf_counter() - started < 10
    # The photo (what the model saw) in the chat, and the answer under it with its buttons.
    shown = await tg.wait_for("sendPhoto", chat_id=ALICE, after=mark)
    answer = (await tg.wait_for("sendMessage", chat_id=ALICE, after=mark)).result
    assert answer["reply_to_message"]["message_id"] == shown.result["message_id"]
    assert name.lower() in answer["text"].lower()
    assert count(db, Photo) == count(db, Prediction) == count(db, WebAppSend) == 1
    stored = in_db(db, lambda s: s.query(Photo).one())
    assert (stored.user_id, stored.chat_id, stored.message_id) == (
        ALICE,
        ALICE,
        shown.result["message_id"],
    )
    send_row = in_db(db, lambda s: s.query(WebAppSend).one())
    assert send_row.page_top5 == [{"index": index, "confidence": 0.9}]

    # The same key again (the offline queue, a retry): nothing new stored or sent.
    again = await send(port, tg.webapp_init_data(ALICE), jpeg(photo_path), page_answer(index), key)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert count(db, Photo) == 1
    assert len([c for c in tg.calls("sendPhoto") if c.ok]) == 1

    # A tap on the answer is feedback on the stored prediction, as for a chat photo.
    tap_mark = tg.mark()
    tg.press_button(answer, tg.keyboard(answer)[0][0]["text"], user_id=ALICE)
    await tg.wait_for("editMessageText", chat_id=ALICE, after=tap_mark)
    prediction_id = callbacks.parse(tg.keyboard(answer)[0][0]["callback_data"]).prediction_id
    rows = feedback_rows(db)
    assert [(r[0], r[1]) for r in rows] == [(ALICE, prediction_id)]
    assert count(db, Feedback) == 1

    # /forget takes the send with the photo.
    forget = tg.mark()
    tg.user_command(ALICE, "forget")
    await tg.wait_for("sendMessage", chat_id=ALICE, after=forget)
    assert count(db, Photo) == count(db, WebAppSend) == count(db, Feedback) == 0


@pytest.mark.asyncio
async def test_an_unsure_answer_to_the_page_offers_a_second_photo_and_an_identifier(
    tg, db, port, handled, unsure_model, sample_photos
) -> None:
    """The page's photo is answered in the user's own chat like one sent there: unsure, the
    answer offers "Add a photo of the same plant" and "Ask an identifier" (the tests' settings
    have an admin to ask), and asking puts the page's photo in the identifiers' queue."""
    app = await running(settings_for(tg, db, health_port=port, model_dir=unsure_model), handled)
    try:
        tg.user_command(ALICE, "start")
        await tg.wait_for("sendMessage", chat_id=ALICE)
        mark = tg.mark()
        photo_path, index, _ = sample_photos[0]
        response = await send(
            port, tg.webapp_init_data(ALICE), jpeg(photo_path), page_answer(index)
        )
        assert response.status_code == 200, response.text
        assert response.json()["verdict"] in ("not_sure", "unknown_species")
        answer = (await tg.wait_for("sendMessage", chat_id=ALICE, after=mark)).result
        assert offered(tg, answer) == [[SECOND_PHOTO], [ASK]]
        await handled.wait(tg.press_button(answer, ASK, user_id=ALICE))
        request = in_db(db, lambda s: s.query(IdentificationRequest).one())
        stored = in_db(db, lambda s: s.query(Photo).one())
        assert request.photo_id == stored.id
    finally:
        await stopped(app)


@pytest.mark.asyncio
@pytest.mark.parametrize("change", ["forged", "other bot", "too old", "tampered user", "missing"])
async def test_init_data_not_from_telegram_gets_401_and_stores_nothing(
    tg, db, port, webapp_bot, sample_photos, change: str
) -> None:
    tg.user_command(ALICE, "start")
    tg.user_command(BOB, "start")
    good = tg.webapp_init_data(ALICE)
    init_data = {
        "forged": urlencode({**fields_of(good), "hash": "ab" * 32}),
        "other bot": tg.webapp_init_data(ALICE, token=OTHER_BOT),
        "too old": tg.webapp_init_data(ALICE, auth_date=int(time.time()) - 2 * 86400),
        "tampered user": good.replace(f"%22id%22%3A{ALICE}", f"%22id%22%3A{BOB}"),
        "missing": "",
    }[change]
    photo_path, index, _ = sample_photos[0]
    response = await send(port, init_data, jpeg(photo_path), page_answer(index))
    assert response.status_code == 401
    assert "Telegram" in response.json()["error"]
    assert count(db, Photo) == count(db, WebAppSend) == 0
    assert not [c for c in tg.calls("sendPhoto")]


@pytest.mark.asyncio
async def test_oversize_unreadable_or_incomplete_photos_get_a_clear_error_and_nothing_stored(
    tg, db, port, webapp_bot, sample_photos
) -> None:
    tg.set_user(ALICE, language_code="es")
    tg.user_command(ALICE, "start")
    photo_path, index, _ = sample_photos[0]
    init_data = tg.webapp_init_data(ALICE)
    # max_download_mb=1: a 1.2 MB photo is over the limit.
    noise = Image.frombytes("RGB", (900, 900), random.Random(1).randbytes(900 * 900 * 3))
    big = io.BytesIO()
    noise.save(big, "PNG")
    assert big.tell() > 1024 * 1024
    over = await send(port, init_data, big.getvalue(), page_answer(index))
    assert over.status_code == 413
    assert "1 MB" in over.json()["error"]
    assert over.json()["error"].startswith("Ese archivo")  # in the user's language
    unreadable = await send(port, init_data, b"not an image at all", page_answer(index))
    assert unreadable.status_code == 422
    assert unreadable.json()["error"]
    no_answer = await send(port, init_data, jpeg(photo_path), "{}")
    assert no_answer.status_code == 400
    assert count(db, Photo) == count(db, WebAppSend) == 0
    assert not tg.calls("sendPhoto")
    # The keys refused are free again: the same key with a good photo is answered.
    key = uuid.uuid4().hex
    assert (await send(port, init_data, b"broken", page_answer(index), key)).status_code == 422
    assert (
        await send(port, init_data, jpeg(photo_path), page_answer(index), key)
    ).status_code == 200
    assert count(db, Photo) == 1


@pytest.mark.asyncio
async def test_a_user_who_never_started_the_bot_is_told_to_and_nothing_is_stored(
    tg, db, port, webapp_bot, sample_photos
) -> None:
    photo_path, index, _ = sample_photos[0]
    response = await send(port, tg.webapp_init_data(BOB), jpeg(photo_path), page_answer(index))
    assert response.status_code == 403
    assert "/start" in response.json()["error"]
    assert count(db, Photo) == count(db, WebAppSend) == 0


@pytest.mark.asyncio
async def test_the_same_key_sent_at_once_is_stored_once(
    tg, db, port, webapp_bot, sample_photos
) -> None:
    tg.user_command(ALICE, "start")
    photo_path, index, _ = sample_photos[0]
    key, data = uuid.uuid4().hex, jpeg(photo_path)
    responses = await asyncio.gather(
        *(send(port, tg.webapp_init_data(ALICE), data, page_answer(index), key) for _ in range(4))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}
    assert count(db, Photo) == count(db, WebAppSend) == 1
    assert len([c for c in tg.calls("sendPhoto") if c.ok]) == 1


@pytest.mark.asyncio
async def test_the_menu_button_opens_the_page_when_webapp_url_is_set(tg, db) -> None:
    url = "https://flowers.example/camera/"
    app = await running(settings_for(tg, db, webapp_url=url))
    try:
        assert tg.menu_button() == {"type": "web_app", "text": "📷 Camera", "web_app": {"url": url}}
        mark = tg.mark()
        tg.user_command(ALICE, "start")
        text = (await tg.wait_for("sendMessage", chat_id=ALICE, after=mark)).result["text"]
        assert "📷 Camera" in text and "camera page" in text
    finally:
        await stopped(app)
    other_db = db.parent / "other.sqlite"
    with_none = await running(settings_for(tg, other_db))
    try:
        mark = tg.mark()
        tg.user_command(BOB, "start")
        text = (await tg.wait_for("sendMessage", chat_id=BOB, after=mark)).result["text"]
        assert "camera page" not in text
        assert not tg.calls("setChatMenuButton")[1:]  # only the first bot set it
    finally:
        await stopped(with_none)


@pytest.mark.asyncio
async def test_the_per_user_limit_counts_page_and_chat_photos_together(
    tg, db, port, sample_photos
) -> None:
    app = await running(settings_for(tg, db, health_port=port, photos_per_minute=2))
    try:
        photo_path, index, _ = sample_photos[0]
        mark = tg.mark()
        tg.user_photo(ALICE, jpeg(photo_path))  # one photo in the chat...
        await tg.wait_for("sendMessage", chat_id=ALICE, after=mark)
        init_data = tg.webapp_init_data(ALICE)
        first = await send(port, init_data, jpeg(photo_path), page_answer(index))
        assert first.status_code == 200  # ...one from the page: the limit of 2 is reached
        over = await send(port, init_data, jpeg(photo_path), page_answer(index), key="over")
        assert over.status_code == 429
        assert "wait a minute" in over.json()["error"]
        assert (count(db, Photo), count(db, WebAppSend)) == (2, 1)  # the chat's, the page's
        # The refused photo's key was freed before the page heard back: its next try is
        # refused again for the limit, not told that the photo is being answered.
        again = await send(port, init_data, jpeg(photo_path), page_answer(index), key="over")
        assert again.status_code == 429
    finally:
        await stopped(app)


def test_the_page_server_forwards_webapp_posts_only_when_given_the_bot(tmp_path: Path) -> None:
    """POST /webapp/ is 404 without a bot to forward to, 502 when the bot does not answer (the
    page keeps the photo and tries later), and nothing else takes a POST."""
    closed = free_port()
    for backend, path, status in [
        (None, "/webapp/photo", 404),
        (f"http://127.0.0.1:{closed}", "/webapp/photo", 502),
        (f"http://127.0.0.1:{closed}", "/index.html", 404),
    ]:
        with serving(tmp_path, webapp_backend=backend) as url:
            response = httpx.post(url.rstrip("/") + path, data={"key": "x"}, timeout=10)
        assert response.status_code == status, (backend, path)
