"""A fake Telegram Bot API server for end-to-end tests with the real python-telegram-bot client.

The server listens on 127.0.0.1 (a free port) in a background thread, answers the Bot API methods
a bot uses, lets a test act as Telegram users (messages, photos, button presses) and records every
call the bot makes so the test can wait for and inspect them. It is a package under ``tests/``
that ``pip install -e .`` installs, so tests and benchmarks import it as
``from fake_telegram import FakeTelegram`` without touching ``sys.path``::

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
* ``getUpdates`` blocks for at most ``max_poll_wait`` seconds and wakes at once for a new update
  or :meth:`FakeTelegram.stop`, so polling bots react fast and shut down fast.
"""

from fake_telegram.server import (
    DOWNLOAD,
    JSON,
    MAX_DOWNLOAD_SIZE,
    SUPERGROUP_ID_LIMIT,
    ApiCall,
    FakeTelegram,
    StoredFile,
)

__all__ = [
    "DOWNLOAD",
    "JSON",
    "MAX_DOWNLOAD_SIZE",
    "SUPERGROUP_ID_LIMIT",
    "ApiCall",
    "FakeTelegram",
    "StoredFile",
]
