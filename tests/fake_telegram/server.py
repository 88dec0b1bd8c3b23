"""The fake Bot API server itself: HTTP routes, simulated users and recorded calls.

See the package docstring (``fake_telegram``) for usage and behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import hashlib
import hmac
import html
import http.client
import io
import itertools
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from PIL import Image

JSON = dict[str, Any]

#: Pseudo-method under which file downloads are recorded (and can be made to fail).
DOWNLOAD = "download"
#: Pseudo-method under which webhook delivery attempts are recorded, with params
#: ``{"url", "status", "update_id"}``; ``status`` is 0 when no HTTP answer came.
WEBHOOK = "<webhook>"
#: Telegram lets bots download files up to this size only.
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024
SUPERGROUP_ID_LIMIT = -(10**12)

# PTB form-encodes strings raw and everything else as JSON; these string parameters must not be
# JSON-decoded, or a text such as "42" would turn into a number.
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "action",
        "url",
        "secret_token",
        "file_id",
        "language_code",
    }
)
_ENTITY_RE = re.compile(
    r"(?P<bot_command>(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z][A-Za-z0-9_]{3,31})?)"
    r"|(?P<mention>(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31})"
)
_HTML_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)(?:\s[^>]*)?>")
_HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a"}
    | {"tg-emoji", "code", "pre", "blockquote"}
)
_THUMBNAIL_SIDES = (90, 320, 800)
# Telegram's rule for setWebhook's secret_token.
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Consecutive failed deliveries double the retry delay up to this many times.
_MAX_BACKOFF_DOUBLINGS = 3
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


@dataclass(frozen=True)
class ApiCall:
    """One request the bot made, with the answer it got."""

    method: str
    params: JSON
    files: dict[str, bytes]
    time: float  # time.monotonic() when the answer was ready
    status: int
    result: Any  # the "result" sent back; None for failed calls
    description: str | None  # the error description of failed calls

    @property
    def ok(self) -> bool:
        # API calls answer 200; a webhook receiver may confirm an update with any 2xx.
        return 200 <= self.status < 300


@dataclass(frozen=True)
class StoredFile:
    """A file the server can hand out through getFile and the file URL."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    file_size: int  # may exceed len(data) to simulate big files


@dataclass(frozen=True)
class _Webhook:
    """What setWebhook registered."""

    url: str
    secret_token: str | None
    allowed_updates: tuple[str, ...]  # empty: every type the fake produces
    drop_pending_updates: bool
    max_connections: int


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # Telegram does not follow redirects from a webhook: a 3xx is a wrong response.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxies from the environment: deliveries go straight to the receiver, as in tests it is local.
_WEBHOOK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


class _ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def answer(self) -> JSON:
        answer: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            answer["parameters"] = {"retry_after": self.retry_after}
        return answer


class FakeTelegram:
    """A Bot API server on ``host`` (a free port); a context manager, or call start() and stop().

    ``webhook_retry_delay`` is the wait before retrying a failed webhook delivery (it doubles
    for consecutive failures, up to 8 times); ``webhook_timeout`` bounds one delivery.
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        *,
        host: str = "127.0.0.1",
        bot_username: str = "flowerbot_test_bot",
        bot_name: str = "FlowerBot",
        max_poll_wait: float = 1.0,
        webhook_retry_delay: float = 0.2,
        webhook_timeout: float = 5.0,
    ) -> None:
        self.token = token
        self.host = host
        self.bot_user: JSON = {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.max_poll_wait = max_poll_wait
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        # One re-entrant lock guards all state: handler threads and the test both touch it.
        self._cond = threading.Condition()
        self._calls: list[ApiCall] = []
        self._updates: list[JSON] = []
        self._chats: dict[int, JSON] = {}
        self._users: dict[int, JSON] = {}
        self._messages: dict[int, dict[int, JSON]] = {}
        self._files: dict[str, StoredFile] = {}  # by file_id
        self._paths: dict[str, StoredFile] = {}  # by file_path
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._menu_buttons: dict[int | None, JSON] = {}  # by chat id; None: the default
        self._open_callbacks: set[str] = set()
        self._failures: dict[str, deque[tuple[int, int | None]]] = defaultdict(deque)
        self._ids = itertools.count(1)  # update, file, callback and album ids
        self._webhook: _Webhook | None = None
        self._backends: list[str] = []  # balance_webhook's targets; empty: the webhook URL
        self._backend_turn = 0
        self._webhook_failures = 0  # consecutive failed deliveries, for the backoff
        self._retry_at = 0.0  # time.monotonic() before which no delivery is tried
        self._last_error: tuple[int, str] | None = None  # (unix time, message)
        self._stopping = False
        self._methods: dict[str, tuple[str, Callable[[JSON, dict[str, bytes]], Any]]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "logOut": self._true,
                "close": self._true,
                "deleteWebhook": self._delete_webhook,
                "setWebhook": self._set_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "getUpdates": self._get_updates,
                "sendMessage": self._send_message,
                "sendPhoto": self._send_photo,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "setMyCommands": self._set_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "getMyCommands": self._get_my_commands,
                "setChatMenuButton": self._set_chat_menu_button,
                "getChatMenuButton": self._get_chat_menu_button,
                "getFile": self._get_file,
            }.items()
        }
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._delivery: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        self._server = _Server(self)
        # A short poll interval keeps stop() fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        # Idle until a webhook is set and an update is queued.
        self._delivery = threading.Thread(target=self._deliver_forever, daemon=True)
        self._delivery.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()  # releases long polls and the delivery thread
        if self._delivery is not None:
            self._delivery.join()  # at most webhook_timeout when a delivery is under way
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder.base_url``: PTB appends the token, then ``/<method>``."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder.base_file_url``: PTB appends the token and ``/<file_path>``."""
        return f"{self.url}/file/bot"

    # -- webhooks ---------------------------------------------------------------------------

    @property
    def webhook(self) -> JSON | None:
        """What setWebhook registered (url, secret_token, ...), or None while polling."""
        with self._cond:
            if self._webhook is None:
                return None
            return {
                "url": self._webhook.url,
                "secret_token": self._webhook.secret_token,
                "allowed_updates": list(self._webhook.allowed_updates),
                "drop_pending_updates": self._webhook.drop_pending_updates,
                "max_connections": self._webhook.max_connections,
            }

    def balance_webhook(self, backends: Sequence[str] | None) -> None:
        """Puts a load balancer in front of the webhook: deliveries go round-robin to these.

        Each backend is a base URL such as ``http://127.0.0.1:8001``; the registered webhook's
        path and query are appended to it. Every attempt takes the next backend, so a failed
        delivery is retried on the next one. ``None`` or ``[]`` delivers to the webhook URL again.
        """
        for backend in backends or []:
            if urlsplit(backend).scheme not in ("http", "https"):
                raise ValueError(f"a backend must be an http(s) base URL, not {backend!r}")
        with self._cond:
            self._backends = list(backends or [])
            self._backend_turn = 0
            self._cond.notify_all()

    # -- simulated users --------------------------------------------------------------------

    def set_user(
        self,
        user_id: int,
        *,
        first_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> JSON:
        """Changes how a user appears in the updates they cause from now on."""
        fields = {"first_name": first_name, "username": username, "language_code": language_code}
        with self._cond:
            user = self._user(user_id)
            user.update({key: value for key, value in fields.items() if value is not None})
            return copy.deepcopy(user)

    def webapp_init_data(
        self, user_id: int, *, auth_date: int | None = None, token: str | None = None
    ) -> str:
        """What Telegram gives a Mini App the user opens from this bot (Telegram.WebApp.initData):
        the user, when, and the hash Telegram signs them with, from this bot's token (or
        `token`'s: another bot's), as Telegram's "Validating data received via the Mini App"
        describes it."""
        with self._cond:
            user = json.dumps(self._user(user_id), separators=(",", ":"), ensure_ascii=False)
            fields = {
                "query_id": f"AAH{next(self._ids)}",
                "user": user,
                "auth_date": str(int(time.time()) if auth_date is None else auth_date),
            }
        check_string = "\n".join(f"{name}={fields[name]}" for name in sorted(fields))
        key = hmac.new(b"WebAppData", (token or self.token).encode(), hashlib.sha256).digest()
        fields["hash"] = hmac.new(key, check_string.encode(), hashlib.sha256).hexdigest()
        return urlencode(fields)

    def register_file(
        self, data: bytes, *, file_size: int | None = None, folder: str = "files", suffix: str = ""
    ) -> StoredFile:
        """Makes bytes downloadable; ``file_size`` may claim more than ``len(data)``.

        The file path looks like Telegram's: ``<folder>/file_<n><suffix>``.
        """
        with self._cond:
            number = next(self._ids)
            stored = StoredFile(
                file_id=f"file-{number}",
                # The same bytes keep the same unique id, as when a photo is forwarded again.
                file_unique_id=hashlib.sha1(data).hexdigest()[:16],
                file_path=f"{folder}/file_{number}{suffix}",
                data=data,
                file_size=len(data) if file_size is None else file_size,
            )
            self._files[stored.file_id] = stored
            self._paths[stored.file_path] = stored
            return stored

    def user_text(
        self, chat_id: int, text: str, *, user_id: int | None = None, reply_to: JSON | None = None
    ) -> JSON:
        """A text message; commands and @mentions in it get entities as Telegram adds them."""
        return self._user_message(chat_id, _with_entities("text", text), user_id, reply_to)

    def user_command(
        self,
        chat_id: int,
        command: str,
        args: str = "",
        *,
        mention: bool = False,
        user_id: int | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """``/command args``; ``mention`` writes ``/command@botname`` as in group chats."""
        text = "/" + command.removeprefix("/")
        if mention:
            text += f"@{self.bot_user['username']}"
        if args:
            text += f" {args}"
        return self.user_text(chat_id, text, user_id=user_id, reply_to=reply_to)

    def user_photo(
        self,
        chat_id: int,
        data: bytes,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        forward_origin: JSON | None = None,
        user_id: int | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """A photo: PhotoSizes of increasing size, the last one serving ``data`` itself.

        Thumbnails are real downscaled JPEGs when Pillow can decode ``data``.

        ``forward_origin`` is a MessageOrigin, e.g.
        ``{"type": "hidden_user", "sender_user_name": "Ann", "date": 1700000000}``.
        """
        content: JSON = {"photo": self._photo_sizes(data)}
        if caption is not None:
            content |= _with_entities("caption", caption)
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        if forward_origin is not None:
            content["forward_origin"] = forward_origin
        return self._user_message(chat_id, content, user_id, reply_to)

    def user_album(
        self,
        chat_id: int,
        photos: list[bytes],
        *,
        caption: str | None = None,
        user_id: int | None = None,
    ) -> list[JSON]:
        """Photos sent as one album: a message each, one media_group_id, caption on the first."""
        group_id = f"album-{next(self._ids)}"
        return [
            self.user_photo(
                chat_id,
                data,
                caption=caption if index == 0 else None,
                media_group_id=group_id,
                user_id=user_id,
            )
            for index, data in enumerate(photos)
        ]

    def user_document(
        self,
        chat_id: int,
        data: bytes,
        *,
        file_name: str = "photo.jpg",
        mime_type: str = "image/jpeg",
        file_size: int | None = None,
        caption: str | None = None,
        forward_origin: JSON | None = None,
        user_id: int | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """A file sent as a document; ``file_size`` above 20 MB makes getFile refuse it."""
        suffix = PurePosixPath(file_name).suffix
        stored = self.register_file(data, file_size=file_size, folder="documents", suffix=suffix)
        content: JSON = {
            "document": {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": file_name,
                "mime_type": mime_type,
                "file_size": stored.file_size,
            }
        }
        if caption is not None:
            content |= _with_entities("caption", caption)
        if forward_origin is not None:
            content["forward_origin"] = forward_origin
        return self._user_message(chat_id, content, user_id, reply_to)

    def user_sticker(
        self,
        chat_id: int,
        *,
        emoji: str = "🌷",
        user_id: int | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """A regular (static) sticker."""
        stored = self.register_file(
            b"RIFF\0\0\0\0WEBPVP8 fake sticker", folder="stickers", suffix=".webp"
        )
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": stored.file_size,
        }
        return self._user_message(chat_id, {"sticker": sticker}, user_id, reply_to)

    def user_video(
        self,
        chat_id: int,
        data: bytes = b"\0\0\0\x18ftypmp42 fake video",
        *,
        duration: int = 3,
        caption: str | None = None,
        user_id: int | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """A video; the bytes need not be a real video."""
        stored = self.register_file(data, folder="videos", suffix=".mp4")
        content: JSON = {
            "video": {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": 1280,
                "height": 720,
                "duration": duration,
                "mime_type": "video/mp4",
                "file_size": stored.file_size,
            }
        }
        if caption is not None:
            content |= _with_entities("caption", caption)
        return self._user_message(chat_id, content, user_id, reply_to)

    def user_callback(self, message: JSON, data: str, *, user_id: int | None = None) -> JSON:
        """A press on an inline button of ``message`` with ``data``; returns the CallbackQuery."""
        with self._cond:
            stored = self._stored(message["chat"]["id"], message["message_id"])
            chat_id = stored["chat"]["id"]
            query = {
                "id": str(next(self._ids)),
                "from": copy.deepcopy(self._user(self._sender_id(chat_id, user_id))),
                "message": copy.deepcopy(stored),
                "chat_instance": f"instance{chat_id}",
                "data": data,
            }
            self._open_callbacks.add(query["id"])
            self._queue({"callback_query": query})
            return copy.deepcopy(query)

    def press_button(self, message: JSON, text: str, *, user_id: int | None = None) -> JSON:
        """Presses the inline button labelled ``text`` on the current version of ``message``."""
        buttons = [button for row in self.keyboard(message) for button in row]
        for button in buttons:
            if button["text"] == text and "callback_data" in button:
                return self.user_callback(message, button["callback_data"], user_id=user_id)
        labels = [button["text"] for button in buttons]
        raise LookupError(f"no callback button {text!r} on the message; buttons: {labels}")

    # -- inspecting what the bot did ---------------------------------------------------------

    def calls(self, method: str | None = None) -> list[ApiCall]:
        """Every recorded call, or those of one method (failed ones included), oldest first."""
        with self._cond:
            return [call for call in self._calls if method is None or call.method == method]

    def mark(self) -> int:
        """The number of calls so far: pass it as ``after=`` to wait only for newer calls."""
        with self._cond:
            return len(self._calls)

    @property
    def unknown_methods(self) -> list[str]:
        """Methods the bot called that this fake does not implement."""
        with self._cond:
            return [
                call.method
                for call in self._calls
                if call.method.lower() not in self._methods
                and call.method not in (DOWNLOAD, WEBHOOK)
            ]

    def message(self, chat_id: int, message_id: int) -> JSON:
        """The current version of any message (after the bot's edits)."""
        with self._cond:
            return copy.deepcopy(self._stored(chat_id, message_id))

    def sent_messages(self, chat_id: int) -> list[JSON]:
        """The bot's messages in a chat, oldest first, as they look now."""
        with self._cond:
            return [
                copy.deepcopy(message)
                for message in self._messages.get(chat_id, {}).values()
                if message["from"]["id"] == self.bot_user["id"]
            ]

    def keyboard(self, message: JSON) -> list[list[JSON]]:
        """The rows of inline buttons the message has now (empty when it has none)."""
        current = self.message(message["chat"]["id"], message["message_id"])
        return current.get("reply_markup", {}).get("inline_keyboard", [])

    def my_commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """The commands set with setMyCommands for a scope (default scope when None)."""
        with self._cond:
            return copy.deepcopy(self._commands.get(_commands_key(scope, language_code), []))

    def menu_button(self, chat_id: int | None = None) -> JSON:
        """The menu button set with setChatMenuButton for a chat (None: the default one), else
        Telegram's default, the commands list."""
        with self._cond:
            return copy.deepcopy(self._menu_buttons.get(chat_id, {"type": "commands"}))

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        chat_id: int | None = None,
        after: int = 0,
        timeout: float = 10.0,
        include_failed: bool = False,
    ) -> ApiCall:
        """The first successful ``method`` call (from index ``after`` on) that matches.

        Already recorded calls count, so there is no race with a fast bot. Raises AssertionError
        listing the calls of that method when none matches within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while (call := self._find(method, predicate, chat_id, after, include_failed)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(self._no_match(method, timeout))
            await asyncio.sleep(0.01)
        return call

    def wait_for_sync(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        chat_id: int | None = None,
        after: int = 0,
        timeout: float = 10.0,
        include_failed: bool = False,
    ) -> ApiCall:
        """:meth:`wait_for` for code outside an event loop (e.g. a bot run in another thread)."""
        with self._cond:
            call = self._cond.wait_for(
                lambda: self._find(method, predicate, chat_id, after, include_failed), timeout
            )
            if call is None:
                raise AssertionError(self._no_match(method, timeout))
            return call

    # -- trouble -----------------------------------------------------------------------------

    def fail_next(
        self, method: str, times: int = 1, status: int = 502, *, retry_after: int | None = None
    ) -> None:
        """Answers the next ``times`` calls of ``method`` with an HTTP error instead.

        502 reaches PTB as NetworkError; ``status=429, retry_after=N`` as RetryAfter.
        """
        with self._cond:
            self._failures[method.lower()].extend([(status, retry_after)] * times)

    # -- internals: state -------------------------------------------------------------------

    def _user(self, user_id: int) -> JSON:
        return self._users.setdefault(
            user_id,
            {
                "id": user_id,
                "is_bot": False,
                "first_name": f"User{user_id}",
                "username": f"user{user_id}",
                "language_code": "en",
            },
        )

    def _sender_id(self, chat_id: int, user_id: int | None) -> int:
        if user_id is not None:
            return user_id
        if chat_id > 0:
            return chat_id
        raise ValueError("messages in group chats need a user_id")

    def _chat(self, chat_id: int, user: JSON) -> JSON:
        if chat_id > 0:
            chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
            chat["username"] = user["username"]
        else:
            kind = "supergroup" if chat_id <= SUPERGROUP_ID_LIMIT else "group"
            chat = {"id": chat_id, "type": kind, "title": f"Test {kind} {-chat_id}"}
        return self._chats.setdefault(chat_id, chat)

    def _known_chat(self, chat_id: Any) -> JSON:
        if chat_id in self._chats:
            return self._chats[chat_id]
        if isinstance(chat_id, int) and chat_id > 0:
            raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        raise _ApiError(400, "Bad Request: chat not found")

    def _stored(self, chat_id: int, message_id: int) -> JSON:
        try:
            return self._messages[chat_id][message_id]
        except KeyError:
            raise KeyError(f"no message {message_id} in chat {chat_id}") from None

    def _new_message(self, chat: JSON, sender: JSON, content: JSON) -> JSON:
        # Telegram numbers messages per chat, the bot's and the users' alike.
        chat_messages = self._messages.setdefault(chat["id"], {})
        message = {
            "message_id": len(chat_messages) + 1,
            "from": copy.deepcopy(sender),
            "chat": copy.deepcopy(chat),
            "date": int(time.time()),
            **copy.deepcopy(content),
        }
        chat_messages[message["message_id"]] = message
        return message

    def _user_message(
        self, chat_id: int, content: JSON, user_id: int | None, reply_to: JSON | None
    ) -> JSON:
        with self._cond:
            user = self._user(self._sender_id(chat_id, user_id))
            message = self._new_message(self._chat(chat_id, user), user, content)
            if reply_to is not None:
                message["reply_to_message"] = self._quoted(
                    self._stored(reply_to["chat"]["id"], reply_to["message_id"])
                )
            self._queue({"message": message})
            return copy.deepcopy(message)

    def _queue(self, content: JSON) -> None:
        self._updates.append({"update_id": next(self._ids), **copy.deepcopy(content)})
        self._cond.notify_all()

    @staticmethod
    def _quoted(message: JSON) -> JSON:
        # Telegram never nests replies more than one level deep.
        return {
            key: copy.deepcopy(value) for key, value in message.items() if key != "reply_to_message"
        }

    def _photo_sizes(self, data: bytes) -> list[JSON]:
        width, height, thumbnails = _thumbnails(data)
        sizes = [self._photo_size(thumbnail, *size) for thumbnail, size in thumbnails]
        sizes.append(self._photo_size(data, width, height))
        return sizes

    def _photo_size(self, data: bytes, width: int, height: int) -> JSON:
        stored = self.register_file(data, folder="photos", suffix=".jpg")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "width": width,
            "height": height,
        }

    def _find(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None,
        chat_id: int | None,
        after: int,
        include_failed: bool,
    ) -> ApiCall | None:
        with self._cond:
            for call in self._calls[after:]:
                if (
                    call.method == method
                    and (call.ok or include_failed)
                    and (chat_id is None or call.params.get("chat_id") == chat_id)
                    and (predicate is None or predicate(call))
                ):
                    return call
            return None

    def _no_match(self, method: str, timeout: float) -> str:
        seen = [(call.status, call.params) for call in self.calls(method)]
        return f"no matching {method} call within {timeout}s; {method} calls: {seen}"

    # -- internals: webhook delivery (its own thread) -----------------------------------------

    def _deliver_forever(self) -> None:
        """Delivers queued updates to the webhook one at a time, oldest first, until stop()."""
        while True:
            with self._cond:
                job = None
                while not self._stopping and (job := self._next_delivery()) is None:
                    self._cond.wait(self._delivery_wait())
                if job is None:  # stopping
                    return
            webhook, url, update = job
            # Without the lock: the receiving bot calls back into this server meanwhile.
            status, error = _post_update(url, webhook.secret_token, update, self.webhook_timeout)
            with self._cond:
                self._delivered(webhook, url, update, status, error)

    def _next_delivery(self) -> tuple[_Webhook, str, JSON] | None:
        if self._webhook is None or time.monotonic() < self._retry_at:
            return None
        allowed = self._webhook.allowed_updates
        # Updates of types the webhook did not ask for are dropped, never sent.
        while self._updates and allowed and _update_type(self._updates[0]) not in allowed:
            self._updates.pop(0)
        if not self._updates:
            return None
        url = self._webhook.url
        if self._backends:
            backend = self._backends[self._backend_turn % len(self._backends)]
            self._backend_turn += 1
            base, hook = urlsplit(backend), urlsplit(url)
            path = base.path.rstrip("/") + hook.path
            url = urlunsplit((base.scheme, base.netloc, path, hook.query, ""))
        return self._webhook, url, copy.deepcopy(self._updates[0])

    def _delivery_wait(self) -> float | None:
        # Sleep until the retry is due; otherwise until a notify (new update, webhook, stop).
        if self._webhook is not None and self._updates and self._retry_at > time.monotonic():
            return self._retry_at - time.monotonic()
        return None

    def _delivered(
        self, webhook: _Webhook, url: str, update: JSON, status: int, error: str | None
    ) -> None:
        update_id = update["update_id"]
        params: JSON = {"url": url, "status": status, "update_id": update_id}
        if error is None:
            self._updates = [u for u in self._updates if u["update_id"] != update_id]
            self._webhook_failures = 0
            self._retry_at = 0.0
            self._record(WEBHOOK, params, {}, status, update, None)
            return
        # A setWebhook or deleteWebhook meanwhile has reset the error record and the backoff.
        if webhook is self._webhook:
            # Kept for a retry, like Telegram, which keeps trying for a day.
            self._last_error = (int(time.time()), error)
            doublings = min(self._webhook_failures, _MAX_BACKOFF_DOUBLINGS)
            self._retry_at = time.monotonic() + self.webhook_retry_delay * 2**doublings
            self._webhook_failures += 1
        self._record(WEBHOOK, params, {}, status, None, error)

    # -- internals: HTTP entry points (run in server threads) ---------------------------------

    def _api_call(
        self, token: str, method: str, params: JSON, files: dict[str, bytes]
    ) -> tuple[int, JSON]:
        name, handler = self._methods.get(method.lower(), (method, None))
        with self._cond:
            try:
                if token != self.token:
                    raise _ApiError(401, "Unauthorized")
                self._maybe_fail(name)
                if handler is None:
                    raise _ApiError(404, f"Not Found: method {method} is not implemented")
                result = handler(params, files)
            except _ApiError as error:
                self._record(name, params, files, error.status, None, error.description)
                return error.status, error.answer()
            call = self._record(name, params, files, 200, result, None)
            return 200, {"ok": True, "result": call.result}

    def _download(self, token: str, file_path: str) -> tuple[int, bytes]:
        params: JSON = {"file_path": file_path}
        with self._cond:
            stored = self._paths.get(file_path)
            try:
                if token != self.token:
                    raise _ApiError(401, "Unauthorized")
                self._maybe_fail(DOWNLOAD)
                if stored is None:
                    raise _ApiError(404, "Not Found")
            except _ApiError as error:
                self._record(DOWNLOAD, params, {}, error.status, None, error.description)
                return error.status, error.description.encode()
            params["file_id"] = stored.file_id
            self._record(DOWNLOAD, params, {}, 200, len(stored.data), None)
            return 200, stored.data

    def _maybe_fail(self, method: str) -> None:
        if failures := self._failures[method.lower()]:
            status, retry_after = failures.popleft()
            raise _ApiError(status, HTTPStatus(status).phrase, retry_after)

    def _record(
        self,
        method: str,
        params: JSON,
        files: dict[str, bytes],
        status: int,
        result: Any,
        description: str | None,
    ) -> ApiCall:
        call = ApiCall(
            method, params, files, time.monotonic(), status, copy.deepcopy(result), description
        )
        self._calls.append(call)
        self._cond.notify_all()
        return call

    # -- internals: Bot API methods (called with the lock held) ------------------------------

    def _true(self, params: JSON, files: dict[str, bytes]) -> bool:
        return True

    def _get_me(self, params: JSON, files: dict[str, bytes]) -> JSON:
        return copy.deepcopy(self.bot_user)

    def _delete_webhook(self, params: JSON, files: dict[str, bytes]) -> bool:
        self._reset_webhook(None, bool(params.get("drop_pending_updates")))
        return True

    def _set_webhook(self, params: JSON, files: dict[str, bytes]) -> bool:
        url = str(params.get("url") or "")
        secret = params.get("secret_token") or None  # an empty token means none, as in Telegram
        if secret is not None and not _SECRET_TOKEN_RE.fullmatch(secret):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        drop = bool(params.get("drop_pending_updates"))
        if not url:  # Telegram: an empty URL removes the webhook
            self._reset_webhook(None, drop)
            return True
        # Telegram insists on https; plain http is let through since tests run without TLS.
        split = urlsplit(url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise _ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        webhook = _Webhook(
            url=url,
            secret_token=secret,
            allowed_updates=tuple(params.get("allowed_updates") or ()),
            drop_pending_updates=drop,
            max_connections=int(params.get("max_connections") or 40),
        )
        self._reset_webhook(webhook, drop)
        return True

    def _reset_webhook(self, webhook: _Webhook | None, drop_pending_updates: bool) -> None:
        self._webhook = webhook
        if drop_pending_updates:
            self._updates.clear()
        # A new registration is tried at once and starts with a clean error record.
        self._webhook_failures = 0
        self._retry_at = 0.0
        self._last_error = None
        self._cond.notify_all()

    def _get_webhook_info(self, params: JSON, files: dict[str, bytes]) -> JSON:
        info: JSON = {
            "url": self._webhook.url if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook is not None:
            info["max_connections"] = self._webhook.max_connections
            if self._webhook.allowed_updates:
                info["allowed_updates"] = list(self._webhook.allowed_updates)
        if self._last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._last_error
        return info

    def _get_updates(self, params: JSON, files: dict[str, bytes]) -> list[JSON]:
        if self._webhook is not None:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        # An offset confirms every update before it: they are gone for good.
        offset = int(params.get("offset") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = min(float(params.get("timeout") or 0), self.max_poll_wait)
        self._cond.wait_for(lambda: self._updates or self._stopping, timeout)
        return copy.deepcopy(self._updates[: int(params.get("limit") or 100)])

    def _send_message(self, params: JSON, files: dict[str, bytes]) -> JSON:
        text = _displayed(params.get("text", ""), params.get("parse_mode"))
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if _utf16_len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        return self._bot_message(params, {"text": text})

    def _send_photo(self, params: JSON, files: dict[str, bytes]) -> JSON:
        if "photo" in files:
            sizes = self._photo_sizes(files["photo"])
        elif params.get("photo") in self._files:
            stored = self._files[params["photo"]]
            size = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
            sizes = [size | {"file_size": stored.file_size, "width": 1280, "height": 960}]
        else:
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        content: JSON = {"photo": sizes}
        if "caption" in params:
            caption = _displayed(params["caption"], params.get("parse_mode"))
            if _utf16_len(caption) > 1024:
                raise _ApiError(400, "Bad Request: message caption is too long")
            content["caption"] = caption
        return self._bot_message(params, content)

    def _bot_message(self, params: JSON, content: JSON) -> JSON:
        chat = self._known_chat(params.get("chat_id"))
        target = self._reply_target(chat["id"], params)
        markup = _inline_markup(params.get("reply_markup"))
        message = self._new_message(chat, self.bot_user, content)
        if target is not None:
            message["reply_to_message"] = self._quoted(target)
        if markup is not None:
            message["reply_markup"] = markup
        return message

    def _reply_target(self, chat_id: int, params: JSON) -> JSON | None:
        reply = params.get("reply_parameters")
        if reply is None and "reply_to_message_id" in params:
            reply = {"message_id": params["reply_to_message_id"]}
            reply["allow_sending_without_reply"] = params.get("allow_sending_without_reply")
        if reply is None:
            return None
        target = self._messages.get(reply.get("chat_id", chat_id), {}).get(reply["message_id"])
        if target is None and not reply.get("allow_sending_without_reply"):
            raise _ApiError(400, "Bad Request: message to be replied not found")
        return target

    def _edit_message_text(self, params: JSON, files: dict[str, bytes]) -> JSON | bool:
        text = _displayed(params.get("text", ""), params.get("parse_mode"))
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if _utf16_len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        return self._edit(params, {"text": text})

    def _edit_message_reply_markup(self, params: JSON, files: dict[str, bytes]) -> JSON | bool:
        return self._edit(params, {})

    def _edit(self, params: JSON, changes: JSON) -> JSON | bool:
        if "inline_message_id" in params:
            return True  # messages sent via inline mode are not tracked
        message = self._messages.get(params.get("chat_id"), {}).get(params.get("message_id"))
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise _ApiError(400, "Bad Request: message can't be edited")
        # Like Telegram, an edit without reply_markup removes the inline keyboard.
        edited = {k: v for k, v in message.items() if k not in ("reply_markup", "edit_date")}
        edited |= changes
        markup = _inline_markup(params.get("reply_markup"))
        if markup is not None:
            edited["reply_markup"] = markup
        if edited == {k: v for k, v in message.items() if k != "edit_date"}:
            raise _ApiError(400, _NOT_MODIFIED)
        edited["edit_date"] = int(time.time())
        self._messages[message["chat"]["id"]][message["message_id"]] = edited
        return edited

    def _answer_callback_query(self, params: JSON, files: dict[str, bytes]) -> bool:
        query_id = str(params.get("callback_query_id"))
        if query_id not in self._open_callbacks:
            raise _ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self._open_callbacks.remove(query_id)
        return True

    def _send_chat_action(self, params: JSON, files: dict[str, bytes]) -> bool:
        self._known_chat(params.get("chat_id"))
        return True

    def _set_my_commands(self, params: JSON, files: dict[str, bytes]) -> bool:
        key = _commands_key(params.get("scope"), params.get("language_code", ""))
        self._commands[key] = params["commands"]
        return True

    def _delete_my_commands(self, params: JSON, files: dict[str, bytes]) -> bool:
        self._commands.pop(
            _commands_key(params.get("scope"), params.get("language_code", "")), None
        )
        return True

    def _get_my_commands(self, params: JSON, files: dict[str, bytes]) -> list[JSON]:
        key = _commands_key(params.get("scope"), params.get("language_code", ""))
        return self._commands.get(key, [])

    def _set_chat_menu_button(self, params: JSON, files: dict[str, bytes]) -> bool:
        button = params.get("menu_button") or {"type": "default"}
        kind = button.get("type")
        if kind not in ("default", "commands", "web_app"):
            raise _ApiError(400, "Bad Request: unsupported menu button type")
        if kind == "web_app":
            url = (button.get("web_app") or {}).get("url", "")
            # Telegram opens only https pages (the tests' pages are never opened from here).
            if not url.startswith("https://"):
                raise _ApiError(400, "Bad Request: BUTTON_URL_INVALID")
            if not button.get("text"):
                raise _ApiError(400, "Bad Request: menu button text is empty")
        chat_id = params.get("chat_id")
        if chat_id is not None:
            chat_id = self._known_chat(chat_id)["id"]
        if kind == "default":
            self._menu_buttons.pop(chat_id, None)
        else:
            self._menu_buttons[chat_id] = button
        return True

    def _get_chat_menu_button(self, params: JSON, files: dict[str, bytes]) -> JSON:
        chat_id = params.get("chat_id")
        default = self._menu_buttons.get(None, {"type": "commands"})
        return self._menu_buttons.get(chat_id, default) if chat_id is not None else default

    def _get_file(self, params: JSON, files: dict[str, bytes]) -> JSON:
        stored = self._files.get(params.get("file_id", ""))
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if stored.file_size > MAX_DOWNLOAD_SIZE:
            raise _ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }


class _Server(ThreadingHTTPServer):
    def __init__(self, fake: FakeTelegram) -> None:
        super().__init__((fake.host, 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects from api.telegram.org
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keeps test output clean; the calls are recorded instead

    def _handle(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake = self.server.fake
        if path.startswith("/file/bot"):
            token, _, file_path = path.removeprefix("/file/bot").partition("/")
            status, payload = fake._download(token, file_path)
            content_type = "application/octet-stream"
        else:
            token, _, method = path.removeprefix("/bot").partition("/")
            params, files = _parse_request(self.headers.get("Content-Type", ""), body, url.query)
            status, answer = fake._api_call(token, method, params, files)
            payload, content_type = json.dumps(answer).encode(), "application/json"
        # The bot may have given up on the request (e.g. a cancelled long poll) meanwhile.
        with contextlib.suppress(ConnectionError):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        # After stop() a still-polling bot must reconnect (and fail) rather than spin here.
        self.close_connection = self.close_connection or fake._stopping


def _post_update(
    url: str, secret: str | None, update: JSON, timeout: float
) -> tuple[int, str | None]:
    """POSTs one update as Telegram does: the HTTP status (0 without one) and Telegram's error."""
    request = urllib.request.Request(
        url,
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    if secret is not None:
        request.add_header("X-Telegram-Bot-Api-Secret-Token", secret)
    try:
        with _WEBHOOK_OPENER.open(request, timeout=timeout) as response:
            response.read()
            return response.status, None
    except urllib.error.HTTPError as error:  # any answer outside 2xx
        return error.code, f"Wrong response from the webhook: {error.code} {_phrase(error.code)}"
    # HTTPException: a garbled answer; caught so the delivery thread survives it.
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        return 0, _connection_error(reason)


def _connection_error(reason: object) -> str:
    """The last_error_message Telegram shows when no HTTP answer came."""
    if isinstance(reason, ConnectionRefusedError):
        return "Connection refused"
    if isinstance(reason, TimeoutError):  # socket.timeout is the same class
        return "Read timeout expired"
    if isinstance(reason, socket.gaierror):
        return f"Failed to resolve host: {reason.strerror}"
    if isinstance(reason, ConnectionResetError):
        return "Connection reset by peer"
    return str(reason) or type(reason).__name__


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _update_type(update: JSON) -> str:
    return next(key for key in update if key != "update_id")


def _parse_request(content_type: str, body: bytes, query: str) -> tuple[JSON, dict[str, bytes]]:
    """The parameters of a Bot API request, sent as query, JSON, form or multipart."""
    header = Message()
    header["Content-Type"] = content_type or "application/x-www-form-urlencoded"
    params = {name: _decode(name, value) for name, value in parse_qsl(query)}
    files: dict[str, bytes] = {}
    kind = header.get_content_type()
    if kind == "application/json" and body:
        params |= json.loads(body)
    elif kind == "multipart/form-data":
        boundary = str(header.get_param("boundary"))
        for part in body.split(b"--" + boundary.encode())[1:-1]:
            head, _, content = (
                part.removeprefix(b"\r\n").removesuffix(b"\r\n").partition(b"\r\n\r\n")
            )
            headers = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
            name = str(headers.get_param("name", header="content-disposition"))
            if headers.get_filename() is None:
                params[name] = _decode(name, content.decode())
            else:
                files[name] = content
    else:
        params |= {name: _decode(name, value) for name, value in parse_qsl(body.decode())}
    return params, files


def _decode(name: str, value: str) -> Any:
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. "@channelname" or a file_id


def _utf16_len(text: str) -> int:
    # Telegram counts lengths and entity offsets in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


def _with_entities(field: str, text: str) -> JSON:
    """``{field: text}`` plus the bot_command and mention entities Telegram would detect."""
    entities = [
        {
            "type": match.lastgroup,
            "offset": _utf16_len(text[: match.start()]),
            "length": _utf16_len(match.group()),
        }
        for match in _ENTITY_RE.finditer(text)
    ]
    content: JSON = {field: text}
    if entities:
        content["entities" if field == "text" else f"{field}_entities"] = entities
    return content


def _displayed(text: str, parse_mode: str | None) -> str:
    """The text a user sees; HTML is validated like Telegram does."""
    if parse_mode is None or parse_mode.upper() != "HTML":
        return text
    open_tags: list[str] = []
    pieces = []
    position = 0
    for match in _HTML_TAG_RE.finditer(text):
        pieces.append(text[position : match.start()])
        position = match.end()
        closing, tag = match.group(1), match.group(2).lower()
        if tag not in _HTML_TAGS:
            raise _ApiError(
                400, f'Bad Request: can\'t parse entities: Unsupported start tag "{tag}"'
            )
        if not closing:
            open_tags.append(tag)
        elif not open_tags or open_tags.pop() != tag:
            raise _ApiError(400, f'Bad Request: can\'t parse entities: Unmatched end tag "{tag}"')
    pieces.append(text[position:])
    plain = "".join(pieces)
    if "<" in plain:
        raise _ApiError(400, 'Bad Request: can\'t parse entities: unescaped "<"')
    if open_tags:
        raise _ApiError(
            400,
            f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag "
            f'"{open_tags[-1]}"',
        )
    return html.unescape(plain)


def _inline_markup(markup: JSON | None) -> JSON | None:
    """The inline keyboard a message keeps; other keyboards are not part of the message."""
    if not markup or "inline_keyboard" not in markup:
        return None
    for row in markup["inline_keyboard"]:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode()) <= 64:
                raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup


def _commands_key(scope: JSON | None, language_code: str) -> tuple[str, str]:
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code


# Telegram makes a photo's smaller sizes on its own servers, once per upload; the benchmarks send
# the same few photos thousands of times, and decoding and resizing each again here took half
# of this server's CPU, on the cores the bot under test runs on.
@functools.lru_cache(maxsize=64)
def _thumbnails(data: bytes) -> tuple[int, int, tuple[tuple[bytes, tuple[int, int]], ...]]:
    """The photo's size and its smaller sizes (JPEG bytes, (width, height)), smallest first."""
    width, height, image = _decoded(data)
    thumbnails = []
    for side in (s for s in _THUMBNAIL_SIDES if s < max(width, height)):
        scale = side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        thumbnails.append((_thumbnail(image, size), size))
    return width, height, tuple(thumbnails)


def _decoded(data: bytes) -> tuple[int, int, Image.Image | None]:
    """The photo's size and a copy small enough to make thumbnails from quickly."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image.draft("RGB", (_THUMBNAIL_SIDES[-1], _THUMBNAIL_SIDES[-1]))
            return width, height, image.convert("RGB")
    except OSError:
        return 1280, 960, None  # arbitrary test bytes: pretend they are a photo


def _thumbnail(image: Image.Image | None, size: tuple[int, int]) -> bytes:
    if image is None:
        return f"thumbnail {size}".encode()  # distinct bytes for each size
    buffer = io.BytesIO()
    image.resize(size).save(buffer, format="JPEG")
    return buffer.getvalue()
