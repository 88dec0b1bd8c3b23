"""A tap counts only on its own answer: Telegram does not check a button's callback data against
the message it comes from, so a user can send any prediction id from any chat. End to end, with
tests/test_bot.py's fixtures (imported: ruff takes them for unused imports, redefined by the
arguments); tests/test_albums.py checks album answers.
"""
# ruff: noqa: F401, F811

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from fake_telegram import FakeTelegram
from sqlalchemy import select
from test_bot import (
    ALICE,
    BOB,
    GROUP,
    answer_to_photo,
    bot,
    count,
    db,
    feedback_rows,
    handled,
    in_db,
    prediction_under,
    reply_to,
    species_buttons,
    tap,
)

from bot import callbacks
from bot.callbacks import NONE_OF_THESE, NOT_A_FLOWER, Source
from storage import NewSpecies, Prediction
from storage.models import NamingRight, PendingQuestion

pytestmark = pytest.mark.asyncio
OTHER_GROUP = -501
REFUSED = "This button does not belong to this answer"
REFUSED_ES = "Este botón no pertenece a esta respuesta"


def alert(tg: FakeTelegram, query: dict) -> tuple[str | None, bool]:
    """(text, shown as an alert) of the bot's answer to a callback query."""
    [call] = [
        c
        for c in tg.calls("answerCallbackQuery")
        if c.ok and str(c.params["callback_query_id"]) == query["id"]
    ]
    return call.params.get("text"), bool(call.params.get("show_alert"))


async def forged(tg: FakeTelegram, handled, under: dict, data: str, user: int) -> dict:
    """A callback query with `data` from a message that does not carry it, once the bot is done
    with it; the query."""
    query = tg.user_callback(under, data, user_id=user)
    await handled.wait(query)
    return query


def top1(tg: FakeTelegram, message: dict) -> str:
    """The callback data of the first species button under an answer."""
    return tg.keyboard(message)[0][0]["callback_data"]


def data_for(message_data: str, prediction_id: int) -> str:
    """The same button, naming another prediction."""
    tapped = callbacks.parse(message_data)
    return callbacks.encode(tapped.source, prediction_id, tapped.choice)


async def sent_as(db: Path, prediction_id: int) -> tuple[int, int]:
    """(chat, message) stored for the prediction's answer, once the bot has stored it."""
    for _ in range(300):
        row = in_db(db, lambda s: s.get(Prediction, prediction_id))
        if row.answer_message_id is not None:
            return row.answer_chat_id, row.answer_message_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"no answer message stored for prediction {prediction_id}")


def edits_since(tg: FakeTelegram, mark: int) -> list[dict]:
    return [c.params for c in tg.calls()[mark:] if c.method == "editMessageText"]


async def test_a_forged_tap_from_another_private_chat_records_nothing(
    tg, bot, handled, sample_photos, db, caplog
):
    """Bob, in his own chat, names Alice's prediction: an alert, and nothing stored."""
    caplog.set_level(logging.INFO, logger="bot.handlers.feedback")
    alices = await answer_to_photo(tg, ALICE, sample_photos[2][0].read_bytes())
    bobs = await answer_to_photo(tg, BOB, sample_photos[3][0].read_bytes())
    target = prediction_under(tg, alices)
    mark = tg.mark()
    for choice in (callbacks.parse(top1(tg, alices)).choice, NOT_A_FLOWER, NONE_OF_THESE):
        data = callbacks.encode(Source.ANSWER, target, choice)
        query = await forged(tg, handled, bobs, data, BOB)
        assert alert(tg, query) == (REFUSED, True)
    assert feedback_rows(db) == []
    assert count(db, PendingQuestion) == 0 and count(db, NamingRight) == 0
    assert edits_since(tg, mark) == []  # neither answer changed
    assert [c for c in tg.calls()[mark:] if c.method == "sendMessage"] == []  # no "type the name"
    refusals = [r for r in caplog.records if r.getMessage().startswith("tap refused")]
    assert len(refusals) == 3 and all(r.levelno == logging.INFO for r in refusals)
    assert all(f"user {BOB}," in r.getMessage() for r in refusals)
    # Alice's own tap still counts, and Bob's button under his own answer.
    await tap(tg, alices, species_buttons(tg, alices)[0])
    await tap(tg, bobs, "Not a flower", user=BOB)
    assert [(r[0], r[1]) for r in feedback_rows(db)] == [
        (ALICE, target),
        (BOB, prediction_under(tg, bobs)),
    ]


async def test_forged_name_buttons_record_nothing(tg, bot, handled, sample_photos, db):
    """The typed-name and new-species buttons count only for the user who tapped "None of
    these" under the answer: Bob forging them on Alice's prediction gets the alert (in his
    language), even after naming his own photo."""
    tg.set_user(BOB, language_code="es-ES")
    alices = await answer_to_photo(tg, ALICE, sample_photos[2][0].read_bytes())
    target = prediction_under(tg, alices)
    mark = tg.mark()
    tg.press_button(alices, "None of these")
    await reply_to(tg, ALICE, mark)
    mark = tg.mark()
    tg.user_text(ALICE, "Tulips")
    offer = await reply_to(tg, ALICE, mark)  # "Siam tulip", then the new species "Tulip"
    [species_id] = in_db(db, lambda s: s.scalars(select(NewSpecies.id)).all())
    bobs = await answer_to_photo(tg, BOB, sample_photos[3][0].read_bytes())
    mark = tg.mark()
    tg.press_button(bobs, "Ninguna de estas", user_id=BOB)
    await reply_to(tg, BOB, mark)
    for data in (
        callbacks.encode(Source.TYPED_NAME, target, 3),
        callbacks.encode(Source.NEW_SPECIES, target, species_id),
    ):
        query = await forged(tg, handled, bobs, data, BOB)
        assert alert(tg, query) == (REFUSED_ES, True)
    assert feedback_rows(db) == []
    # Alice's offer still records what she chose.
    edited = await tap(tg, offer, "Record “Tulip” as a new species")
    assert edited["text"] == "Thanks! Recorded as a new species: Tulip."
    assert feedback_rows(db) == [(ALICE, target, None, "Tulip", False)]


async def test_a_tap_on_an_answer_from_another_group_is_refused(
    tg, bot, handled, sample_photos, db
):
    mark = tg.mark()
    tg.user_photo(GROUP, sample_photos[2][0].read_bytes(), caption="/top5", user_id=BOB)
    in_group = await reply_to(tg, GROUP, mark)
    mark = tg.mark()
    tg.user_photo(OTHER_GROUP, sample_photos[3][0].read_bytes(), caption="/top5", user_id=ALICE)
    elsewhere = await reply_to(tg, OTHER_GROUP, mark)
    target = prediction_under(tg, in_group)
    mark = tg.mark()
    query = await forged(tg, handled, elsewhere, data_for(top1(tg, elsewhere), target), ALICE)
    assert alert(tg, query) == (REFUSED, True)
    assert feedback_rows(db) == []
    assert edits_since(tg, mark) == []
    # In the group itself any member may label the photo: Bob who sent it, and Alice.
    await tap(tg, in_group, "Rose", user=BOB)
    await tap(tg, in_group, "Not a flower", user=ALICE)
    assert [(r[0], r[1], r[3]) for r in feedback_rows(db)] == [
        (BOB, target, "rose"),
        (ALICE, target, None),
    ]


async def test_a_group_member_names_the_photo_in_a_private_chat(tg, bot, sample_photos, db):
    """ "None of these" under a group's answer, then the name typed to the bot in private: the
    confirming button, in Alice's private chat, counts for the group's photo."""
    mark = tg.mark()
    tg.user_photo(GROUP, sample_photos[2][0].read_bytes(), caption="/top5", user_id=BOB)
    answer = await reply_to(tg, GROUP, mark)
    mark = tg.mark()
    tg.press_button(answer, "None of these", user_id=ALICE)
    assert "Type its name" in (await reply_to(tg, GROUP, mark))["text"]
    mark = tg.mark()
    tg.user_text(ALICE, "Rosse")
    confirm = await reply_to(tg, ALICE, mark)
    assert prediction_under(tg, confirm) == prediction_under(tg, answer)
    edited = await tap(tg, confirm, "Rose", user=ALICE)
    assert edited["text"] == "Thanks! Recorded: Rose."
    assert [(r[0], r[1], r[3]) for r in feedback_rows(db)] == [
        (ALICE, prediction_under(tg, answer), "rose")
    ]


async def test_a_tap_counts_only_under_the_answer_that_carries_it(
    tg, bot, handled, sample_photos, db
):
    """/top5 repeats Alice's last answer as a new message with its own prediction: each
    prediction's buttons count under their own message only, in the same chat too."""
    first = await answer_to_photo(tg, ALICE, sample_photos[2][0].read_bytes())
    mark = tg.mark()
    tg.user_command(ALICE, "top5")
    again = await reply_to(tg, ALICE, mark)
    old, new = prediction_under(tg, first), prediction_under(tg, again)
    assert await sent_as(db, old) == (ALICE, first["message_id"])
    assert await sent_as(db, new) == (ALICE, again["message_id"])
    for under, named in ((first, new), (again, old)):
        query = await forged(tg, handled, under, data_for(top1(tg, under), named), ALICE)
        assert alert(tg, query) == (REFUSED, True)
    assert feedback_rows(db) == []
    await tap(tg, again, "Rose")
    assert [(r[0], r[1], r[3]) for r in feedback_rows(db)] == [(ALICE, new, "rose")]
