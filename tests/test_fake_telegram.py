"""The fake Bot API server speaks well enough for the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise

import pytest
import pytest_asyncio
from conftest import free_port
from fake_telegram import DOWNLOAD, JSON, WEBHOOK, FakeTelegram
from PIL import Image
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageEntity,
    Update,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

pytestmark = pytest.mark.asyncio

BIG_FILE = 25 * 1024 * 1024


def _jpeg(width: int = 1000, height: int = 750) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


# -- a tiny bot -------------------------------------------------------------------------------


async def _remember(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    context.bot_data.setdefault("updates", []).append(update)


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Shout", callback_data="shout")]])
    text = " ".join(context.args or []) or "(nothing)"
    await update.message.reply_text(text, reply_markup=keyboard, do_quote=True)


async def _shout(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.message is not None
    await query.answer("Shouting")
    await query.edit_message_text(str(getattr(query.message, "text", "")).upper())


async def _photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    assert message is not None
    await message.reply_chat_action(ChatAction.TYPING)
    data = await (await message.photo[-1].get_file()).download_as_bytearray()
    origin = " (forwarded)" if message.forward_origin else ""
    await message.reply_text(f"{len(data)} bytes{origin}", do_quote=True)


async def _top5(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    target = update.message.reply_to_message
    sizes = len(target.photo) if target else 0
    await update.message.reply_text(f"top5 of a photo with {sizes} sizes")


async def _mentioned(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.effective_user is not None
    await update.message.reply_text(f"hi {update.effective_user.first_name}")


def _application(tg: FakeTelegram) -> Application:
    """A PTB Application talking to the fake server that remembers every update it gets: the
    polling bot and the webhook bots start from the same one."""
    application = (
        Application.builder()
        .token(tg.token)
        .base_url(tg.base_url)
        .base_file_url(tg.base_file_url)
        .build()
    )
    application.add_handler(TypeHandler(Update, _remember), group=-1)
    return application


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest_asyncio.fixture
async def app(tg: FakeTelegram) -> AsyncIterator[Application]:
    application = _application(tg)
    application.add_handler(CommandHandler("echo", _echo))
    application.add_handler(CommandHandler("top5", _top5))
    application.add_handler(CallbackQueryHandler(_shout))
    application.add_handler(MessageHandler(filters.PHOTO, _photo))
    application.add_handler(MessageHandler(filters.Entity(MessageEntity.MENTION), _mentioned))
    async with application:
        await application.bot.set_my_commands(
            [BotCommand("echo", "Repeat after me"), BotCommand("top5", "Five best guesses")]
        )
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0, timeout=1)
        yield application
        await application.updater.stop()
        await application.stop()
    assert tg.unknown_methods == []


# -- through a polling Application --------------------------------------------------------------


async def test_command_reply_is_recorded_with_realistic_message(
    tg: FakeTelegram, app: Application
) -> None:
    assert tg.calls("getMe")[0].ok
    assert [command["command"] for command in tg.my_commands()] == ["echo", "top5"]

    command = tg.user_command(42, "echo", "hello world")
    assert command["entities"] == [{"type": "bot_command", "offset": 0, "length": 5}]

    reply = await tg.wait_for("sendMessage", chat_id=42)
    assert reply.params["text"] == "hello world"
    assert reply.params["reply_parameters"]["message_id"] == command["message_id"]
    assert reply.result["message_id"] == command["message_id"] + 1
    assert reply.result["from"]["username"] == "flowerbot_test_bot"
    assert reply.result["chat"] == {
        "id": 42,
        "type": "private",
        "first_name": "User42",
        "username": "user42",
    }
    assert reply.result["reply_to_message"]["text"] == "/echo hello world"
    assert tg.keyboard(reply.result) == [[{"text": "Shout", "callback_data": "shout"}]]


async def test_button_press_edits_the_message(tg: FakeTelegram, app: Application) -> None:
    tg.user_command(42, "echo", "quiet please")
    reply = await tg.wait_for("sendMessage", chat_id=42)

    query = tg.press_button(reply.result, "Shout")
    answer = await tg.wait_for("answerCallbackQuery")
    assert answer.params["callback_query_id"] == query["id"]
    assert answer.params["text"] == "Shouting"
    edit = await tg.wait_for("editMessageText", chat_id=42)
    assert edit.params["message_id"] == reply.result["message_id"]

    edited = tg.message(42, reply.result["message_id"])
    assert edited["text"] == "QUIET PLEASE"
    assert "edit_date" in edited
    assert tg.keyboard(edited) == []  # an edit without reply_markup drops the keyboard
    assert [message["text"] for message in tg.sent_messages(42)] == ["QUIET PLEASE"]
    with pytest.raises(LookupError, match="Shout"):
        tg.press_button(edited, "Shout")


async def test_photos_are_downloaded_in_full(tg: FakeTelegram, app: Application) -> None:
    data = _jpeg(1000, 750)
    photo = tg.user_photo(42, data, caption="what is this?")
    assert [size["width"] for size in photo["photo"]] == [90, 320, 800, 1000]
    assert photo["photo"][-1]["file_size"] == len(data)

    reply = await tg.wait_for("sendMessage", chat_id=42)
    assert reply.params["text"] == f"{len(data)} bytes"
    assert (await tg.wait_for("sendChatAction", chat_id=42)).params["action"] == "typing"
    assert tg.calls(DOWNLOAD)[-1].params["file_id"] == photo["photo"][-1]["file_id"]

    origin = {"type": "hidden_user", "sender_user_name": "Ann", "date": 1_700_000_000}
    tg.user_photo(42, data, forward_origin=origin)
    first, second = _jpeg(640, 480), _jpeg(480, 640)
    album = tg.user_album(42, [first, second], caption="two of them")
    assert album[0]["media_group_id"] == album[1]["media_group_id"]
    assert album[0]["caption"] == "two of them"
    assert "caption" not in album[1]

    await tg.wait_for(
        "sendMessage",
        lambda call: call.params["reply_parameters"]["message_id"] == album[1]["message_id"],
    )
    assert [call.params["text"] for call in tg.calls("sendMessage")] == [
        f"{len(data)} bytes",
        f"{len(data)} bytes (forwarded)",
        f"{len(first)} bytes",
        f"{len(second)} bytes",
    ]


async def test_other_media_reach_ptb_as_valid_objects(tg: FakeTelegram, app: Application) -> None:
    tg.set_user(42, first_name="Ann", language_code="de")
    tg.user_sticker(42)
    tg.user_video(42, duration=7)
    tg.user_document(42, b"%PDF-1.4 fake", file_name="big.pdf", mime_type="application/pdf")
    tg.user_document(42, b"tiny", file_size=BIG_FILE)
    tg.user_text(42, "just words")
    tg.user_command(42, "echo", "done")
    # Updates are handled in order, so once /echo is answered the others were seen.
    await tg.wait_for("sendMessage", chat_id=42)

    sticker, video, pdf, big, text, _ = [update.message for update in app.bot_data["updates"]]
    assert sticker.sticker.emoji == "🌷"
    assert (video.video.width, video.video.mime_type) == (1280, "video/mp4")
    assert (pdf.document.file_name, pdf.document.mime_type) == ("big.pdf", "application/pdf")
    assert big.document.file_size == BIG_FILE
    assert (text.text, text.entities) == ("just words", ())
    assert (text.from_user.first_name, text.from_user.language_code) == ("Ann", "de")


async def test_group_commands_mentions_and_replies(tg: FakeTelegram, app: Application) -> None:
    photo = tg.user_photo(-100, _jpeg(), user_id=7)
    assert photo["chat"]["type"] == "group"
    assert photo["from"]["id"] == 7
    await tg.wait_for("sendMessage", chat_id=-100)

    mark = tg.mark()  # the photo's reply is older than this
    command = tg.user_command(-100, "top5", mention=True, user_id=7, reply_to=photo)
    assert command["text"] == "/top5@flowerbot_test_bot"
    assert command["entities"][0]["length"] == len(command["text"])
    assert command["reply_to_message"]["message_id"] == photo["message_id"]
    reply = await tg.wait_for("sendMessage", chat_id=-100, after=mark)
    assert reply.params["text"] == "top5 of a photo with 4 sizes"

    mention = tg.user_text(-100, "so @flowerbot_test_bot, what is it?", user_id=8)
    assert mention["entities"] == [{"type": "mention", "offset": 3, "length": 19}]
    hello = await tg.wait_for("sendMessage", lambda call: call.params["text"].startswith("hi"))
    assert hello.params["text"] == "hi User8"

    assert tg.user_text(-(10**12) - 5, "x", user_id=7)["chat"]["type"] == "supergroup"
    with pytest.raises(ValueError, match="user_id"):
        tg.user_text(-100, "who am I?")


async def test_polling_survives_a_failed_get_updates(tg: FakeTelegram, app: Application) -> None:
    tg.fail_next("getUpdates", status=502)
    failed = await tg.wait_for("getUpdates", lambda call: not call.ok, include_failed=True)
    assert failed.status == 502

    tg.user_command(42, "echo", "still here")
    reply = await tg.wait_for("sendMessage", chat_id=42)
    assert reply.params["text"] == "still here"


# -- through a bare Bot --------------------------------------------------------------------------


async def test_long_poll_honours_offset_and_wakes_up_for_updates() -> None:
    with FakeTelegram(max_poll_wait=5) as tg:
        bot = Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url)
        async with bot:
            tg.user_text(42, "one")
            [update] = await bot.get_updates(timeout=0)
            assert update.message is not None and update.message.text == "one"
            assert len(await bot.get_updates(timeout=0)) == 1  # not confirmed by an offset yet

            started = time.monotonic()
            poll = asyncio.create_task(bot.get_updates(offset=update.update_id + 1, timeout=5))
            await asyncio.sleep(0.2)
            tg.user_text(42, "two")
            [second] = await poll
            assert second.message is not None and second.message.text == "two"
            assert time.monotonic() - started < 3  # woken up, not timed out after 5 s
            assert tg.calls("getUpdates")[-1].params == {
                "offset": update.update_id + 1,
                "timeout": 5,
            }


async def test_failures_and_realistic_refusals(tg: FakeTelegram) -> None:
    async with Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as bot:
        tg.user_text(42, "hello")  # the bot may only write to chats it knows

        tg.fail_next("sendMessage", status=502)
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(42, "first try")
        await bot.send_message(42, "second try")
        assert [call.status for call in tg.calls("sendMessage")] == [502, 200]
        assert tg.wait_for_sync("sendMessage", chat_id=42).params["text"] == "second try"

        tg.fail_next("sendMessage", status=429, retry_after=3)
        with pytest.raises(RetryAfter, match="Retry in 3"):
            await bot.send_message(42, "too fast")

        with pytest.raises(Forbidden, match="initiate conversation"):
            await bot.send_message(777, "we never met")
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(-5, "no such group")
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await bot.send_message(42, "<b>unclosed", parse_mode=ParseMode.HTML)
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await bot.send_message(42, "I <3 roses", parse_mode=ParseMode.HTML)
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            markup = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
            await bot.send_message(42, "too much data", reply_markup=markup)

        sent = await bot.send_message(42, "<b>Rose</b> &amp; lily", parse_mode=ParseMode.HTML)
        assert sent.text == "Rose & lily"
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_text("Rose & lily", chat_id=42, message_id=sent.message_id)
        with pytest.raises(BadRequest, match="Query is too old"):
            await bot.answer_callback_query("12345")

        with pytest.raises(EndPointNotFound):
            await bot.do_api_request("fooBar")
        assert tg.unknown_methods == ["fooBar"]

        await bot.set_webhook("https://example.invalid/hook")
        assert (await bot.get_webhook_info()).url == "https://example.invalid/hook"
        with pytest.raises(Conflict):
            await bot.get_updates(timeout=0)
        await bot.delete_webhook(drop_pending_updates=True)
        assert await bot.get_updates(timeout=0) == ()
        assert await bot.log_out()


async def test_keyboards_and_commands_can_change(tg: FakeTelegram) -> None:
    async with Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as bot:
        tg.user_command(42, "start")
        one = InlineKeyboardMarkup([[InlineKeyboardButton("One", callback_data="1")]])
        two = InlineKeyboardMarkup(
            [
                [InlineKeyboardButton("Two", callback_data="2")],
                [InlineKeyboardButton("Three", callback_data="3")],
            ]
        )
        sent = await bot.send_message(42, "pick", reply_markup=one)
        await bot.edit_message_reply_markup(42, sent.message_id, reply_markup=two)
        keyboard = tg.keyboard(tg.sent_messages(42)[0])
        assert [[button["text"] for button in row] for row in keyboard] == [["Two"], ["Three"]]
        query = tg.press_button(tg.sent_messages(42)[0], "Three")
        assert (query["data"], query["message"]["text"]) == ("3", "pick")
        await bot.edit_message_reply_markup(42, sent.message_id)
        assert tg.keyboard(tg.sent_messages(42)[0]) == []

        await bot.set_my_commands([BotCommand("start", "Hello")], language_code="de")
        assert [c.command for c in await bot.get_my_commands(language_code="de")] == ["start"]
        assert tg.my_commands(language_code="de") == [{"command": "start", "description": "Hello"}]
        assert await bot.delete_my_commands(language_code="de")
        assert await bot.get_my_commands(language_code="de") == ()


async def test_files_uploads_and_failing_downloads(tg: FakeTelegram) -> None:
    async with Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as bot:
        big = tg.user_document(42, b"tiny", file_size=BIG_FILE)
        with pytest.raises(BadRequest, match="File is too big"):
            await bot.get_file(big["document"]["file_id"])

        photo = tg.user_photo(42, _jpeg(1000, 750))
        thumbnail = await bot.get_file(photo["photo"][0]["file_id"])
        data = await thumbnail.download_as_bytearray()
        assert Image.open(io.BytesIO(data)).size == (90, 68)

        tg.fail_next(DOWNLOAD, status=502)
        with pytest.raises(NetworkError):
            await thumbnail.download_as_bytearray()
        assert await thumbnail.download_as_bytearray() == data

        # sendPhoto with bytes goes out as multipart/form-data.
        upload = _jpeg(200, 100)
        sent = await bot.send_photo(42, upload, caption="<i>mine</i>", parse_mode=ParseMode.HTML)
        call = tg.calls("sendPhoto")[-1]
        assert call.files["photo"] == upload
        assert call.params["caption"] == "<i>mine</i>"
        assert (sent.caption, [size.width for size in sent.photo]) == ("mine", [90, 200])
        again = await bot.send_photo(42, sent.photo[-1].file_id)
        assert again.photo[-1].file_unique_id == sent.photo[-1].file_unique_id

        with pytest.raises(AssertionError, match="no matching sendMessage call"):
            await tg.wait_for("sendMessage", timeout=0.1)


# -- webhooks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Received:
    path: str
    headers: Message
    update: JSON


class _Receiver:
    """A tiny webhook receiver: records each POST and answers the scripted statuses, then 200."""

    def __init__(self, statuses: Sequence[int] = ()) -> None:
        self.statuses = deque(statuses)
        self.received: list[_Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(_Received(self.path, self.headers, json.loads(body)))
                status = receiver.statuses.popleft() if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def update_ids(self) -> list[int]:
        return [request.update["update_id"] for request in self.received]

    def __enter__(self) -> _Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextlib.asynccontextmanager
async def _webhook_bot(
    tg: FakeTelegram, name: str = "bot", *, webhook_url: str | None = None
) -> AsyncIterator[tuple[Application, str]]:
    """A PTB Application fed by its own webhook server; yields it with its base URL."""

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(f"{name}: {' '.join(context.args or [])}")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    application = _application(tg)
    application.add_handler(CommandHandler("echo", answer))
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_webhook(
            listen="127.0.0.1",
            port=port,
            url_path="hook",
            webhook_url=webhook_url or f"{base}/hook",
            secret_token="s3cret",
        )
        yield application, base
        if application.updater.running:
            await application.updater.stop()
        await application.stop()
    assert tg.unknown_methods == []


async def test_webhook_delivers_updates_to_a_ptb_application(tg: FakeTelegram) -> None:
    async with _webhook_bot(tg) as (app, base):
        info = await app.bot.get_webhook_info()
        assert (info.url, info.pending_update_count, info.max_connections) == (
            f"{base}/hook",
            0,
            40,
        )
        assert info.last_error_message is None
        assert tg.webhook is not None and tg.webhook["secret_token"] == "s3cret"

        command = tg.user_command(42, "echo", "via webhook")
        reply = await tg.wait_for("sendMessage", chat_id=42)
        assert reply.params["text"] == "bot: via webhook"
        delivery = await tg.wait_for(WEBHOOK)
        assert delivery.params["url"] == f"{base}/hook"
        assert delivery.params["status"] == 200
        assert delivery.result["message"]["message_id"] == command["message_id"]
        assert [update.update_id for update in app.bot_data["updates"]] == [
            delivery.params["update_id"]
        ]
        assert tg.calls("getUpdates") == []  # it came by webhook, not by polling
        assert (await app.bot.get_webhook_info()).pending_update_count == 0
        with pytest.raises(Conflict):
            await app.bot.get_updates(timeout=0)


async def test_wrong_secret_is_refused_and_recorded(tg: FakeTelegram) -> None:
    async with _webhook_bot(tg) as (app, base):
        await app.bot.set_webhook(f"{base}/hook", secret_token="wrong")
        tg.user_command(42, "echo", "let me in")
        refused = await tg.wait_for(WEBHOOK, include_failed=True)
        assert (refused.status, refused.result) == (403, None)  # PTB's server says 403

        info = await app.bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 403 Forbidden"
        assert info.last_error_date is not None
        assert abs(info.last_error_date.timestamp() - time.time()) < 60
        assert info.pending_update_count == 1
        assert tg.calls("sendMessage") == []

        # The update was kept: with the right secret it arrives, and the error is cleared.
        await app.bot.set_webhook(f"{base}/hook", secret_token="s3cret")
        reply = await tg.wait_for("sendMessage", chat_id=42)
        assert reply.params["text"] == "bot: let me in"
        accepted = await tg.wait_for(WEBHOOK)
        assert accepted.params["update_id"] == refused.params["update_id"]
        info = await app.bot.get_webhook_info()
        assert (info.pending_update_count, info.last_error_message) == (0, None)


async def test_refused_deliveries_are_retried_in_order() -> None:
    with (
        FakeTelegram(webhook_retry_delay=0.2) as tg,
        _Receiver(statuses=[500, 403, 302]) as receiver,
    ):
        async with Bot(tg.token, base_url=tg.base_url) as bot:
            assert await bot.set_webhook(f"{receiver.url}/hook?bot=1", secret_token="abc_DEF-12")
            first = tg.user_text(42, "one")
            tg.user_text(42, "two")
            await tg.wait_for(WEBHOOK, lambda call: call.result["message"]["text"] == "two")
            info = await bot.get_webhook_info()

        deliveries = tg.calls(WEBHOOK)
        assert [call.status for call in deliveries] == [500, 403, 302, 200, 200]
        ids = [call.params["update_id"] for call in deliveries]
        assert ids[:4] == [ids[0]] * 4 and ids[4] > ids[0]  # the second waited for the first
        assert receiver.update_ids() == ids
        assert receiver.received[0].update["message"]["message_id"] == first["message_id"]
        assert receiver.received[4].update["message"]["text"] == "two"
        for request in receiver.received:
            assert request.path == "/hook?bot=1"
            assert request.headers["X-Telegram-Bot-Api-Secret-Token"] == "abc_DEF-12"
            assert request.headers["Content-Type"] == "application/json"
        # The wait doubles after each consecutive failure: 0.2 s, 0.4 s, 0.8 s.
        gaps = [later.time - earlier.time for earlier, later in pairwise(deliveries)]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8
        assert gaps[3] < 0.2  # no wait after a success
        assert info.pending_update_count == 0
        # Telegram keeps showing the last error after later successes.
        assert info.last_error_message == "Wrong response from the webhook: 302 Found"


async def test_load_balancer_alternates_between_two_ptb_applications(tg: FakeTelegram) -> None:
    public = "https://bot.example.org/hook"  # what both bot processes register
    async with (
        _webhook_bot(tg, "A", webhook_url=public) as (a, base_a),
        _webhook_bot(tg, "B", webhook_url=public) as (b, base_b),
    ):
        tg.balance_webhook([base_a, base_b])
        for number in range(4):
            mark = tg.mark()
            tg.user_command(42, "echo", f"n{number}")
            # One at a time, so the two bots cannot answer out of order.
            await tg.wait_for("sendMessage", chat_id=42, after=mark)

        assert [call.params["text"] for call in tg.calls("sendMessage")] == [
            "A: n0",
            "B: n1",
            "A: n2",
            "B: n3",
        ]
        assert [call.params["url"] for call in tg.calls(WEBHOOK)] == [
            f"{base_a}/hook",
            f"{base_b}/hook",
        ] * 2
        assert len(a.bot_data["updates"]) == len(b.bot_data["updates"]) == 2


async def test_load_balancer_retries_on_the_next_backend() -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    with (
        FakeTelegram(webhook_retry_delay=0.05) as tg,
        _Receiver() as one,
        _Receiver() as two,
    ):
        async with Bot(tg.token, base_url=tg.base_url) as bot:
            await bot.set_webhook("https://bot.example.org/hook?x=1")
            tg.balance_webhook([dead, one.url, two.url])
            for text in ("a", "b", "c"):
                tg.user_text(42, text)
            await tg.wait_for(WEBHOOK, lambda call: call.result["message"]["text"] == "c")
            info = await bot.get_webhook_info()

        deliveries = [
            (call.params["url"], call.status, call.params["update_id"])
            for call in tg.calls(WEBHOOK)
        ]
        ids = one.update_ids() + two.update_ids()
        u1, u2, u3 = sorted(ids)
        assert deliveries == [
            (f"{dead}/hook?x=1", 0, u1),
            (f"{one.url}/hook?x=1", 200, u1),
            (f"{two.url}/hook?x=1", 200, u2),
            (f"{dead}/hook?x=1", 0, u3),
            (f"{one.url}/hook?x=1", 200, u3),
        ]
        assert [r.update["message"]["text"] for r in one.received] == ["a", "c"]
        assert [r.update["message"]["text"] for r in two.received] == ["b"]
        assert [r.path for r in one.received + two.received] == ["/hook?x=1"] * 3
        assert tg.calls(WEBHOOK)[0].description == "Connection refused"
        assert info.last_error_message == "Connection refused"
        assert info.pending_update_count == 0


async def test_delete_webhook_returns_to_polling() -> None:
    with FakeTelegram(webhook_retry_delay=0.05) as tg, _Receiver(statuses=[500] * 1000) as down:
        async with Bot(tg.token, base_url=tg.base_url) as bot:
            await bot.set_webhook(f"{down.url}/hook")
            tg.user_text(42, "one")
            tg.user_text(42, "two")
            await tg.wait_for(WEBHOOK, lambda call: call.status == 500, include_failed=True)
            assert await bot.delete_webhook()
            attempts = len(tg.calls(WEBHOOK))
            assert (await bot.get_webhook_info()).url == ""
            updates = await bot.get_updates(timeout=0)  # kept for polling
            assert [u.message.text for u in updates if u.message] == ["one", "two"]
            await asyncio.sleep(0.3)
            assert len(tg.calls(WEBHOOK)) == attempts  # delivery stopped

            await bot.set_webhook(f"{down.url}/hook")
            tg.user_text(42, "three")
            await bot.delete_webhook(drop_pending_updates=True)
            assert await bot.get_updates(timeout=0) == ()

            tg.user_text(42, "four")
            await bot.set_webhook(f"{down.url}/hook", drop_pending_updates=True)
            assert (await bot.get_webhook_info()).pending_update_count == 0
            await bot.set_webhook("")  # an empty URL removes the webhook too
            tg.user_text(42, "five")
            [update] = await bot.get_updates(timeout=0)
            assert update.message is not None and update.message.text == "five"


async def test_ptb_switches_from_webhook_to_polling(tg: FakeTelegram) -> None:
    async with _webhook_bot(tg) as (app, _):
        assert app.updater is not None
        await app.updater.stop()
        await app.updater.start_polling(poll_interval=0, timeout=1)  # calls deleteWebhook
        tg.user_command(42, "echo", "polled")
        reply = await tg.wait_for("sendMessage", chat_id=42)
        assert reply.params["text"] == "bot: polled"
        assert tg.calls("deleteWebhook")[-1].ok
        assert tg.calls(WEBHOOK) == []
        assert tg.webhook is None
        await app.updater.stop()


async def test_webhook_refusals(tg: FakeTelegram) -> None:
    async with Bot(tg.token, base_url=tg.base_url) as bot:
        for secret in ("has space", "x" * 257, "ünïcode", "semi;colon"):
            with pytest.raises(BadRequest, match="Secret token contains unallowed characters"):
                await bot.set_webhook("https://bot.example.org/hook", secret_token=secret)
        with pytest.raises(BadRequest, match=r"(?i)an https url must be provided"):
            await bot.set_webhook("ftp://bot.example.org/hook")
        assert tg.webhook is None  # nothing was registered

        longest = "aZ0_-" * 51 + "x"
        assert await bot.set_webhook(
            "https://bot.example.org/hook",
            secret_token=longest,
            allowed_updates=["message"],
            max_connections=3,
        )
        assert tg.webhook == {
            "url": "https://bot.example.org/hook",
            "secret_token": longest,
            "allowed_updates": ["message"],
            "drop_pending_updates": False,
            "max_connections": 3,
        }
        info = await bot.get_webhook_info()
        assert (info.max_connections, info.allowed_updates) == (3, ("message",))
    with pytest.raises(ValueError, match="http"):
        tg.balance_webhook(["127.0.0.1:8001"])


async def test_allowed_updates_filter_webhook_deliveries() -> None:
    with FakeTelegram() as tg, _Receiver() as receiver:
        async with Bot(tg.token, base_url=tg.base_url) as bot:
            await bot.set_webhook(f"{receiver.url}/hook", allowed_updates=["callback_query"])
            tg.user_text(42, "hi")  # dropped: only callback queries are wanted
            sent = await bot.send_message(42, "pick")
            query = tg.user_callback(sent.to_dict(), "x")
            delivery = await tg.wait_for(WEBHOOK)
            assert (await bot.get_webhook_info()).pending_update_count == 0
        assert delivery.result["callback_query"]["id"] == query["id"]
        assert [r.update.keys() - {"update_id"} for r in receiver.received] == [{"callback_query"}]


async def test_host_sets_the_listening_address() -> None:
    # All of 127/8 is loopback on Linux, so another address shows the host is really used.
    with FakeTelegram(host="127.0.0.2") as tg:
        assert tg.url.startswith("http://127.0.0.2:")
        assert tg.base_url == f"{tg.url}/bot"
        async with Bot(tg.token, base_url=tg.base_url) as bot:
            assert (await bot.get_me()).username == "flowerbot_test_bot"
