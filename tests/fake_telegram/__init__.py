"""A fake Telegram Bot API server for end-to-end tests with the real python-telegram-bot client.

The server listens on ``host`` (127.0.0.1 unless given, e.g. the Docker bridge address 172.17.0.1
so a container can reach it; ``url`` and ``base_url`` then use it) on a free port in a background
thread, answers the Bot API methods a bot uses, lets a test act as Telegram users (messages,
photos, button presses) and records every call the bot makes so the test can wait for and inspect
them. It is a package under ``tests/`` that ``pip install -e .`` installs, so tests and
benchmarks import it as ``from fake_telegram import FakeTelegram`` without touching
``sys.path``::

    with FakeTelegram() as tg:
        app = (
            Application.builder()
            .token(tg.token)
            .base_url(tg.base_url)
            .base_file_url(tg.base_file_url)
            .build()
        )
        ...  # add handlers, then `async with app`, start() and updater.start_polling(timeout=1)
        photo = tg.user_photo(42, jpeg_bytes, caption="what is it?")
        reply = await tg.wait_for("sendMessage", chat_id=42)
        assert reply.params["reply_parameters"]["message_id"] == photo["message_id"]
        tg.press_button(reply.result, "Top 5")
        await tg.wait_for("editMessageText", chat_id=42)
        assert "Rose" in tg.message(42, reply.result["message_id"])["text"]

Behaviour worth knowing:

* Chats become known when a user writes in them; the bot sending to an unknown chat gets the real
  errors (403 "bot can't initiate conversation with a user" or 400 "chat not found").
  Chat ids > 0 are private chats, < 0 groups, <= -10**12 supergroups. Group messages need
  ``user_id``; every message in a group reaches the bot (as with privacy mode off).
* ``parse_mode="HTML"`` is checked like Telegram does (supported tags, balanced, no bare ``<``);
  the stored message then holds the plain text a user sees, ``ApiCall.params`` the raw HTML.
  Other parse modes are stored verbatim.
* Realistic refusals: text over 4096 characters, captions over 1024, callback data over
  64 bytes, edits that change nothing ("message is not modified"), answering a callback query
  twice, ``getFile`` for files over 20 MB ("file is too big"). PTB drops the "Bad Request: "
  prefix and capitalises, so match e.g. ``BadRequest, match="File is too big"``.
* To show the bot ignored a message, send a command after it and wait for that reply: PTB
  handles updates in order unless ``concurrent_updates`` is set.
* File downloads are recorded as calls of the pseudo-method :data:`DOWNLOAD`, so they can be
  awaited and made to fail like API methods.
* Mini Apps: :meth:`FakeTelegram.webapp_init_data` is the init data Telegram would give a Mini
  App a user opens from this bot, signed with the bot's token as Telegram signs it (or another
  token's); ``setChatMenuButton``/``getChatMenuButton`` keep the menu button
  (:meth:`FakeTelegram.menu_button`), a web app's URL https only, as in Telegram.
* ``getUpdates`` blocks for at most ``max_poll_wait`` seconds and wakes at once for a new update
  or :meth:`FakeTelegram.stop`, so polling bots react fast and shut down fast.

Webhooks work as in Telegram, e.g. with PTB's ``updater.start_webhook(listen="127.0.0.1",
port=port, url_path="hook", webhook_url=f"http://127.0.0.1:{port}/hook", secret_token="s3cret")``:

* ``setWebhook`` stores url, secret_token, allowed_updates, drop_pending_updates and
  max_connections (see :attr:`FakeTelegram.webhook`). Unlike Telegram it accepts ``http://``
  URLs besides ``https://`` (tests run without TLS); other schemes get Telegram's 400. A secret
  token must be 1-256 characters of ``A-Z a-z 0-9 _ -`` (else 400 "secret token contains
  unallowed characters"); an empty one means none. An empty URL removes the webhook.
* While a webhook is set, ``getUpdates`` answers 409 and one delivery thread POSTs the queued
  updates to it one at a time, oldest first (whatever ``max_connections`` says: a later update
  waits until the earlier one is accepted), as JSON with ``X-Telegram-Bot-Api-Secret-Token``
  when a secret was set. Updates of types outside a non-empty ``allowed_updates`` are dropped.
* A 2xx answer confirms an update. Anything else (redirects included) or a connection error
  keeps it and retries it after ``webhook_retry_delay`` seconds (0.2 by default), doubling for
  consecutive failures up to 8 times that; ``getWebhookInfo`` then shows Telegram's
  ``last_error_date`` and ``last_error_message`` ("Wrong response from the webhook: 403
  Forbidden", "Connection refused", ...) next to ``pending_update_count``. A new ``setWebhook``
  or ``deleteWebhook`` clears the error and retries at once. The reply body is ignored (no
  method calls in the webhook answer).
* ``deleteWebhook`` stops delivery: pending updates wait for ``getUpdates`` unless
  ``drop_pending_updates`` is set (which ``setWebhook`` honours too).
* :meth:`FakeTelegram.balance_webhook` puts a round-robin load balancer in front of several bot
  processes: each delivery attempt goes to the next backend base URL plus the registered URL's
  path and query, so a failed delivery is retried on the next backend.
* Every delivery attempt is recorded as a call of the pseudo-method :data:`WEBHOOK` with params
  ``{"url", "status", "update_id"}`` (status 0 when no HTTP answer came) and the delivered update
  as ``result`` when it was accepted; await them with ``wait_for(WEBHOOK, ...)``
  (``include_failed=True`` for refused ones).
"""

from fake_telegram.polling import polling, start_polling, stop_polling
from fake_telegram.server import (
    DOWNLOAD,
    JSON,
    MAX_DOWNLOAD_SIZE,
    SUPERGROUP_ID_LIMIT,
    WEBHOOK,
    ApiCall,
    FakeTelegram,
    StoredFile,
)
from fake_telegram.steps import (
    answer_to_photo,
    ask_an_identifier,
    handed_photo,
    identify_as,
    record_new_species,
    reply_to,
    tap,
    type_a_name,
)

__all__ = [
    "DOWNLOAD",
    "JSON",
    "MAX_DOWNLOAD_SIZE",
    "SUPERGROUP_ID_LIMIT",
    "WEBHOOK",
    "ApiCall",
    "FakeTelegram",
    "StoredFile",
    "answer_to_photo",
    "ask_an_identifier",
    "handed_photo",
    "identify_as",
    "polling",
    "record_new_species",
    "reply_to",
    "start_polling",
    "stop_polling",
    "tap",
    "type_a_name",
]
