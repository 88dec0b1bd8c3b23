"""A user's steps through the bot, for the tests and the benchmarks that drive it: send something,
wait for the bot's reply, press a button and wait for the message it edits."""

from __future__ import annotations

from typing import Any

from fake_telegram.server import JSON, FakeTelegram


async def reply_to(tg: FakeTelegram, chat_id: int, after: int, timeout: float = 60) -> JSON:
    """The bot's first message to `chat_id` from call index `after` on."""
    call = await tg.wait_for("sendMessage", chat_id=chat_id, after=after, timeout=timeout)
    return call.result


async def answer_to_photo(tg: FakeTelegram, user: int, data: bytes, **kwargs: Any) -> JSON:
    """The user sends a photo in their private chat; the bot's answer."""
    mark = tg.mark()
    tg.user_photo(user, data, **kwargs)
    return await reply_to(tg, user, mark)


async def tap(
    tg: FakeTelegram, message: JSON, button: str, user: int | None = None, timeout: float = 30
) -> JSON:
    """Press a button (as `user`; in a private chat, default its user) and wait for the message
    it edits; the message as it looks then."""
    chat_id = message["chat"]["id"]
    mark = tg.mark()
    tg.press_button(message, button, user_id=user)
    await tg.wait_for("editMessageText", chat_id=chat_id, after=mark, timeout=timeout)
    return tg.message(chat_id, message["message_id"])


async def type_a_name(
    tg: FakeTelegram, user: int, answer: JSON, typed: str, timeout: float = 60
) -> JSON:
    """Under an answer the user taps "None of these" and types a flower's name; the bot's reply
    to the name (the species it matches, or the offer to record a new one)."""
    mark = tg.mark()
    tg.press_button(answer, "None of these", user_id=user)
    await reply_to(tg, user, mark, timeout)  # "Which flower is it? ..."
    mark = tg.mark()
    tg.user_text(user, typed)
    return await reply_to(tg, user, mark, timeout)


async def record_new_species(
    tg: FakeTelegram, user: int, photo: bytes, typed: str, timeout: float = 60
) -> None:
    """The user sends a photo, names it with a name the model does not know and records it as a
    new species (the offer's last button); `timeout` for each step."""
    mark = tg.mark()
    tg.user_photo(user, photo)
    answer = await reply_to(tg, user, mark, timeout)
    offer = await type_a_name(tg, user, answer, typed, timeout)
    await tap(tg, offer, tg.keyboard(offer)[-1][0]["text"], user, timeout)


async def ask_an_identifier(tg: FakeTelegram, user: int, answer: JSON, timeout: float = 30) -> JSON:
    """Under an unsure answer the photographer taps "🔎 Ask an identifier"; the bot's reply."""
    mark = tg.mark()
    tg.press_button(answer, "🔎 Ask an identifier", user_id=user)
    return await reply_to(tg, answer["chat"]["id"], mark, timeout)


async def handed_photo(tg: FakeTelegram, identifier: int, timeout: float = 30) -> JSON:
    """An identifier sends /identify; the photo the bot hands them, with its buttons."""
    mark = tg.mark()
    tg.user_command(identifier, "identify")
    call = await tg.wait_for("sendPhoto", chat_id=identifier, after=mark, timeout=timeout)
    return call.result


async def identify_as(
    tg: FakeTelegram, identifier: int, handed: JSON, button: str, timeout: float = 30
) -> JSON:
    """The identifier taps `button` under a photo handed to them; the bot's reply to it."""
    mark = tg.mark()
    tg.press_button(handed, button, user_id=identifier)
    return await reply_to(tg, identifier, mark, timeout)
