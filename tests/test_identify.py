"""Asking an identifier, end to end through the fake Bot API with the real model and a SQLite
file: a photographer asks under an unsure answer, identifiers name the photo through /identify,
the photographer is told and the name is a label for the next retraining. Forged taps, /forget,
restarts and identifiers at the same moment. tests/test_bot.py's fixtures are imported (ruff
takes them for unused imports, redefined by the arguments)."""
# ruff: noqa: F401, F811

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_asyncio
from conftest import SHARED
from fake_telegram import (
    FakeTelegram,
    answer_to_photo,
    ask_an_identifier,
    handed_photo,
    identify_as,
    reply_to,
)
from sqlalchemy import select
from test_bot import (
    ADMIN,
    ALICE,
    BOB,
    GROUP,
    Handled,
    command,
    count,
    db,
    feedback_rows,
    handled,
    in_db,
    ranked_lines,
    running,
    sent_html,
    settings_for,
    stopped,
)
from test_taps import alert, forged

from bot import callbacks
from model_training.abstention import Verdict
from model_training.photos import decode_photo
from storage import Identification, IdentificationRequest, Photo, labelled_examples

pytestmark = pytest.mark.asyncio
CARA, DAN, EVE = 44, 45, 46  # identifiers (IDENTIFIER_IDS)
ASK = "🔎 Ask an identifier"
TULIPS = SHARED / "data" / "flower_photos" / "tulips"  # no Oxford species: answers are unsure


@pytest.fixture(scope="module")
def unsure_photos(classifier) -> list[bytes]:
    """Photos the shipped model is unsure of (tulips: "maybe a species I do not know")."""
    if not TULIPS.is_dir():
        pytest.skip("no ../shared/data/flower_photos")
    paths = sorted(TULIPS.glob("*.jpg"))[:12]
    data = [path.read_bytes() for path in paths]
    answers = classifier.answers([decode_photo(d) for d in data])
    unsure = [
        d
        for d, a in zip(data, answers, strict=True)
        if a.verdict in (Verdict.NOT_SURE, Verdict.UNKNOWN_SPECIES)
    ]
    assert len(unsure) >= 3
    return unsure


def identifying(tg: FakeTelegram, db: Path, **overrides: object):
    return settings_for(tg, db, identifier_ids=f"{CARA},{DAN},{EVE}", **overrides)


@pytest_asyncio.fixture
async def bot(tg: FakeTelegram, db: Path, handled: Handled):
    app = await running(identifying(tg, db), handled)
    yield app
    await stopped(app)
    assert tg.unknown_methods == []


def buttons(tg: FakeTelegram, message: dict) -> list[str]:
    return [b["text"] for row in tg.keyboard(message) for b in row]


async def asked(tg: FakeTelegram, user: int, photo: bytes) -> tuple[dict, dict]:
    """`user` sends an unsure photo and asks an identifier: (the answer, the reply to asking)."""
    answer = await answer_to_photo(tg, user, photo)
    return answer, await ask_an_identifier(tg, user, answer)


async def pressed(tg: FakeTelegram, handled: Handled, message: dict, text: str, user: int) -> dict:
    """`user` taps the button labelled `text`, once the bot is done with it; the query."""
    query = tg.press_button(message, text, user_id=user)
    await handled.wait(query)
    return query


def queue_rows(db: Path) -> tuple[int, int]:
    return count(db, IdentificationRequest), count(db, Identification)


async def test_asked_named_by_two_identifiers_told_and_learnt(
    tg, bot, db, handled, unsure_photos, sample_photos
):
    sure = await answer_to_photo(tg, ALICE, sample_photos[0][0].read_bytes())
    assert ASK not in buttons(tg, sure)
    mark = tg.mark()
    photo = tg.user_photo(ALICE, unsure_photos[0])
    answer = await reply_to(tg, ALICE, mark)
    assert buttons(tg, answer)[-1] == ASK
    reply = await ask_an_identifier(tg, ALICE, answer)
    assert "not your name" in reply["text"] and "/forget" in reply["text"]

    handed = await handed_photo(tg, CARA)
    assert handed["caption"].endswith("Photos waiting: 1.")
    offered = buttons(tg, handed)
    top5 = [line.split(". ", 1)[1] for line in ranked_lines(answer["text"])]
    assert offered == [*top5, "Another species", "Not a flower", "Skip"]
    chosen = offered[1]
    said = await identify_as(tg, CARA, handed, chosen)
    assert said["text"] == f"Thanks! Recorded: {chosen}."
    assert buttons(tg, handed) == []  # answered: its buttons are gone
    # The photographer hears nothing yet: one identifier is not enough.
    assert tg.sent_messages(ALICE)[-1]["message_id"] == reply["message_id"]

    mark = tg.mark()
    await identify_as(tg, DAN, await handed_photo(tg, DAN), chosen)
    told = await reply_to(tg, ALICE, mark)
    assert told["text"] == f"🔎 Identifiers have named your photo: {chosen}."
    assert told["reply_to_message"]["message_id"] == photo["message_id"]
    assert 'href="https://en.wikipedia.org/' in sent_html(tg, told)

    def labels(session):
        photo_id = session.scalar(select(IdentificationRequest.photo_id))
        return [(e.photo_id == photo_id, e.user_id) for e in labelled_examples(session)]

    assert in_db(db, labels) == [(True, CARA)]  # the next retraining's rows
    again = await ask_an_identifier(tg, ALICE, answer)  # asked again: the name again
    assert again["text"] == told["text"]
    assert "1 named" in await command(tg, ADMIN, "stats")

    # Her own later tap of another name does not overwrite the confirmed one.
    rows = feedback_rows(db)
    query = await pressed(tg, handled, answer, top5[0] if top5[0] != chosen else top5[2], ALICE)
    text, shown = alert(tg, query)
    assert shown and text == f"Identifiers have named this photo: {chosen}. That name stays."
    assert feedback_rows(db) == rows


async def test_forged_taps_record_nothing(tg, bot, db, handled, unsure_photos):
    await asked(tg, ALICE, unsure_photos[0])
    bob_answer, _ = await asked(tg, BOB, unsure_photos[1])
    await asked(tg, EVE, unsure_photos[2])  # Eve is an identifier too
    ids = in_db(db, lambda s: s.scalars(select(IdentificationRequest.id).order_by("id")).all())
    alices, eves = ids[0], ids[2]
    handed = await handed_photo(tg, CARA)
    first = callbacks.parse_identify(tg.keyboard(handed)[0][0]["callback_data"])
    another = next(request_id for request_id in ids if request_id != first.request_id)
    refused = "This button does not belong to this answer"
    # Another queue entry's id, from her own message.
    query = await forged(
        tg, handled, handed, callbacks.encode_identify(another, first.choice), CARA
    )
    assert alert(tg, query) == (refused, True)
    # A user who is no identifier, from a message in his own chat.
    data = callbacks.encode_identify(alices, first.choice)
    query = await forged(tg, handled, bob_answer, data, BOB)
    assert alert(tg, query) == ("Sorry, that is only for the bot's identifiers.", True)
    assert "only for the bot's identifiers" in await command(tg, BOB, "identify")
    # Eve, through /identify, is handed neither her own photo nor the one Cara holds, and
    # cannot name her own by its id.
    theirs = await handed_photo(tg, EVE)
    tapped = callbacks.parse_identify(tg.keyboard(theirs)[0][0]["callback_data"])
    assert tapped.request_id not in (eves, first.request_id)
    query = await forged(tg, handled, theirs, callbacks.encode_identify(eves, first.choice), EVE)
    assert alert(tg, query) == ("You cannot name your own photo here.", True)
    assert queue_rows(db) == (3, 0)
    assert feedback_rows(db) == []


async def test_the_queue_survives_a_restart(tg, db, handled, unsure_photos):
    first = await running(identifying(tg, db), handled)
    try:
        await asked(tg, ALICE, unsure_photos[0])
        handed = await handed_photo(tg, CARA)
        chosen = buttons(tg, handed)[0]
        await identify_as(tg, CARA, handed, chosen)
    finally:
        await stopped(first)
    second = await running(identifying(tg, db), handled)
    try:
        mark = tg.mark()
        await identify_as(tg, DAN, await handed_photo(tg, DAN), chosen)
        told = await reply_to(tg, ALICE, mark)
        assert told["text"] == f"🔎 Identifiers have named your photo: {chosen}."
    finally:
        await stopped(second)


async def test_forget_while_queued_withdraws_the_photo(tg, bot, db, handled, unsure_photos):
    assert "ask an identifier about" in await command(tg, ALICE, "privacy")
    await asked(tg, ALICE, unsure_photos[0])
    handed = await handed_photo(tg, CARA)
    await command(tg, ALICE, "forget")
    assert queue_rows(db) == (0, 0)
    query = await pressed(tg, handled, handed, buttons(tg, handed)[0], CARA)
    assert alert(tg, query) == ("Its photographer has withdrawn this photo.", True)
    assert queue_rows(db) == (0, 0) and count(db, Photo) == 0
    assert await command(tg, CARA, "identify") == "No photos are waiting for you now. Thank you!"


async def test_two_identifiers_at_once_get_the_photo_one_after_the_other(
    tg, bot, db, unsure_photos
):
    await asked(tg, ALICE, unsure_photos[0])
    mark = tg.mark()
    tg.user_command(CARA, "identify")
    tg.user_command(DAN, "identify")
    photos = [c.params["chat_id"] for c in await sent_to(tg, "sendPhoto", mark, 1)]
    texts = await sent_to(tg, "sendMessage", mark, 1)
    [holder] = photos
    other = DAN if holder == CARA else CARA
    assert texts[0].params["chat_id"] == other
    assert texts[0].result["text"] == "No photos are waiting for you now. Thank you!"
    handed = tg.calls("sendPhoto")[-1].result
    await identify_as(tg, holder, handed, "Skip")
    later = await handed_photo(tg, other)
    assert buttons(tg, later)[-1] == "Skip"


async def sent_to(tg: FakeTelegram, method: str, after: int, n: int) -> list:
    for _ in range(400):
        calls = [c for c in tg.calls()[after:] if c.method == method and c.ok]
        if len(calls) >= n:
            return calls
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {n} {method}")


async def test_a_typed_name_with_markup_is_a_new_species(tg, bot, db, unsure_photos):
    await asked(tg, ALICE, unsure_photos[0])
    typed = "Wild <tulip> & Co"
    for identifier in (CARA, DAN):
        handed = await handed_photo(tg, identifier)
        question = await identify_as(tg, identifier, handed, "Another species")
        assert "Type its name" in question["text"]
        mark = tg.mark()
        tg.user_text(identifier, typed)
        offer = await reply_to(tg, identifier, mark)
        assert f"“{typed}”" in offer["text"]
        mark = tg.mark()
        said = await identify_as(tg, identifier, offer, buttons(tg, offer)[-1])
    told = await reply_to(tg, ALICE, mark)
    assert told["text"] == "🔎 Identifiers have named your photo: Wild tulip co."
    assert "&lt;" not in sent_html(tg, told) and "<tulip>" not in sent_html(tg, told)
    assert said["text"] == "Thanks! Recorded: Wild tulip co."


async def test_one_trusted_identifier_confirms_alone_when_set(tg, db, handled, unsure_photos):
    app = await running(identifying(tg, db, identifier_alone_confirms=True), handled)
    try:
        await asked(tg, ALICE, unsure_photos[0])
        mark = tg.mark()
        await identify_as(tg, CARA, await handed_photo(tg, CARA), "Not a flower")
        told = await reply_to(tg, ALICE, mark)
        assert told["text"] == "🔎 Identifiers say your photo does not show a flower."
        # An admin is an identifier, but not one whose word alone is enough.
        assert (
            await command(tg, ADMIN, "identify") == "No photos are waiting for you now. Thank you!"
        )
    finally:
        await stopped(app)


async def test_in_a_group_only_the_photographer_asks_and_agreeing_users_become_identifiers(
    tg, db, handled, unsure_photos
):
    """IDENTIFIER_MIN_AGREED=1: Bob named Alice's group photo before the identifiers agreed with
    him, so he may /identify from then on. The name is posted in the group, in reply to it."""
    app = await running(identifying(tg, db, identifier_min_agreed=1), handled)
    try:
        mark = tg.mark()
        photo = tg.user_photo(GROUP, unsure_photos[0], caption="/top5", user_id=ALICE)
        answer = await reply_to(tg, GROUP, mark)
        query = await pressed(tg, handled, answer, ASK, BOB)
        assert alert(tg, query) == ("Only the person who sent this photo can ask about it.", True)
        assert "only for the bot's identifiers" in await command(tg, BOB, "identify")
        await ask_an_identifier(tg, ALICE, answer)
        handed = await handed_photo(tg, CARA)
        chosen = buttons(tg, handed)[2]
        await pressed(tg, handled, answer, chosen, BOB)  # Bob's label, in the group
        await identify_as(tg, CARA, handed, chosen)
        mark = tg.mark()
        await identify_as(tg, DAN, await handed_photo(tg, DAN), chosen)
        told = await reply_to(tg, GROUP, mark)
        assert told["text"] == f"🔎 Identifiers have named your photo: {chosen}."
        assert told["reply_to_message"]["message_id"] == photo["message_id"]
        assert await command(tg, BOB, "identify") == "No photos are waiting for you now. Thank you!"
    finally:
        await stopped(app)
