"""A second photo of the same plant, end to end: an unsure answer offers "Add a photo of the same
plant" (and, in a row below it, "Ask an identifier": tests/test_identify.py); the photographer's
next photo is combined with the first by the album rule and answered once for both, stored as an
album of two.

The real bot, model and SQLite database against the fake Bot API, with tests/test_bot.py's
fixtures (imported: ruff takes them for unused imports, redefined by the arguments). To get unsure
answers whatever the shipped model's figures, most tests serve it with its "not sure" cut above
any confidence: every photo that is large enough and looks like a flower is then unsure.
"""
# ruff: noqa: F401, F811

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import skimage
from conftest import SHIPPED_MODEL
from fake_telegram import ask_an_identifier, handed_photo
from sqlalchemy import select, update
from test_albums import ASTRONAUT, BROKEN, albums, photos_of
from test_bot import (
    ADMIN,
    ALICE,
    BOB,
    bot,
    count,
    db,
    feedback_rows,
    handled,
    in_db,
    jpeg_with_short_side,
    png_bytes,
    prediction_under,
    ranked_lines,
    reply_to,
    running,
    settings_for,
    stopped,
    tap,
)

from bot import callbacks
from model_training.albums import combine
from model_training.classifier import FlowerClassifier
from storage import IdentificationRequest, PendingQuestion, Photo

pytestmark = pytest.mark.asyncio
BUTTON = "📷 Add a photo of the same plant"
ASK = "🔎 Ask an identifier"  # offered too: the tests' settings have an admin to ask
UNSURE_LINES = ("I am not sure", "a species I do not know yet")


@pytest.fixture
def unsure_model(tmp_path: Path) -> Path:
    """The shipped model, unsure of every species (its "not sure" cut above 100%)."""
    folder = shutil.copytree(SHIPPED_MODEL, tmp_path / "unsure-test")
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["thresholds"]["unsure_below"] = 1.01
    (folder / "metadata.json").write_text(json.dumps({**metadata, "version": "unsure-test"}))
    return folder


@pytest_asyncio.fixture
async def unsure_bot(tg, db, handled, unsure_model):
    app = await running(settings_for(tg, db, model_dir=unsure_model), handled)
    yield app
    await stopped(app)
    assert tg.unknown_methods == []


async def send(tg, user: int, photo: bytes, handled) -> dict:
    """The user sends a photo; the bot's one reply (checked: no second one)."""
    mark = tg.mark()
    sent = tg.user_photo(user, photo)
    reply = await reply_to(tg, user, mark)
    await handled.wait(sent)
    replies = [c for c in tg.calls()[mark:] if c.method == "sendMessage" and c.ok]
    assert len(replies) == 1, [c.result["text"][:60] for c in replies]
    return reply


def offered(tg, message: dict) -> list[list[str]]:
    """The rows under an answer's "None of these" | "Not a flower" row, each as its labels."""
    rows = tg.keyboard(message)
    [last_feedback] = [
        i
        for i, row in enumerate(rows)
        if callbacks.parse(row[0]["callback_data"]).choice == callbacks.NONE_OF_THESE
    ]
    return [[button["text"] for button in row] for row in rows[last_feedback + 1 :]]


async def ask_for_a_second_photo(tg, answer: dict, user: int = ALICE, button: str = BUTTON) -> dict:
    """Tap "Add a photo of the same plant"; the bot's reply."""
    mark = tg.mark()
    tg.press_button(answer, button, user_id=user)
    return await reply_to(tg, answer["chat"]["id"], mark)


def pending(db: Path) -> list[tuple[int, str, int]]:
    return in_db(
        db,
        lambda s: [
            (q.user_id, q.kind, q.prediction_id) for q in s.scalars(select(PendingQuestion))
        ],
    )


async def test_the_second_photo_gets_one_answer_for_both(
    tg, unsure_bot, handled, sample_photos, db
):
    rose, sunflower = photos_of(sample_photos, "rose")[0], photos_of(sample_photos, "sunflower")[0]
    first = await send(tg, ALICE, rose, handled)
    assert any(line in first["text"] for line in UNSURE_LINES)
    assert offered(tg, first) == [[BUTTON], [ASK]]  # each a row of its own, under the feedback
    asked = await ask_for_a_second_photo(tg, first)
    assert "within 10 minutes" in asked["text"] and "closer" in asked["text"]
    assert pending(db) == [(ALICE, "second_photo", prediction_under(tg, first))]

    mark = tg.mark()
    second_message = tg.user_photo(ALICE, sunflower)
    both = await reply_to(tg, ALICE, mark)
    await handled.wait(second_message)
    assert both["reply_to_message"]["message_id"] == second_message["message_id"]
    assert both["text"].splitlines()[0] == "📷 One answer from 2 photos of one plant."
    assert offered(tg, both) == []  # an album's answer: neither
    assert pending(db) == []
    # Stored as an album: the first photo's new prediction and the second photo's own.
    [(_, prediction_ids, left_out)] = albums(db)
    assert len(prediction_ids) == 2 and left_out == []
    assert prediction_under(tg, both) == prediction_ids[0]
    assert count(db, Photo) == 2
    # The album rule on the two photos as the model sees them: the first one as stored.
    classifier = unsure_bot.bot_data["services"].identifier.classifier
    stored_first = in_db(db, lambda s: s.scalars(select(Photo).order_by(Photo.id)).first().image)
    expected = combine(
        np.stack([classifier.identify(p).probabilities for p in (stored_first, sunflower)])
    )
    best = [classifier.class_names[i].capitalize() for i in np.argsort(-expected)[:5]]
    assert [line.split(". ", 1)[1] for line in ranked_lines(both["text"])] == best
    assert {"Rose", "Sunflower"} <= set(best[:2])

    # Its buttons label both photos, as an album's do.
    edited = await tap(tg, both, "Rose")
    assert edited["text"].splitlines()[0] == "📷 One answer from 2 photos of one plant."
    rows = feedback_rows(db)
    assert sorted(r[1] for r in rows) == prediction_ids
    assert {(r[0], r[3]) for r in rows} == {(ALICE, "rose")}
    # The question is answered: the next photo is a plant of its own.
    third = await send(tg, ALICE, rose, handled)
    assert not third["text"].startswith("📷") and offered(tg, third) == [[BUTTON], [ASK]]
    assert len(albums(db)) == 1


async def test_only_unsure_answers_offer_a_second_photo(
    tg, unsure_bot, handled, sample_photos, unsure_model
):
    """Not under a photo too small or not a flower (each says what to send instead), nor under an
    album's answer."""
    rose = sample_photos[0][0]
    small_side = FlowerClassifier.from_folder(unsure_model).rules.min_photo_side // 2
    small = await send(tg, ALICE, jpeg_with_short_side(rose, small_side), handled)
    assert "too small" in small["text"]
    astronaut = await send(tg, ALICE, png_bytes(ASTRONAUT), handled)
    assert "does not look like a flower" in astronaut["text"]
    mark = tg.mark()
    tg.user_album(ALICE, photos_of(sample_photos, "rose"))
    album = await reply_to(tg, ALICE, mark)
    assert album["text"].startswith("📷 One answer from 2 photos")
    for answer in (small, astronaut, album):
        assert BUTTON not in [b["text"] for row in tg.keyboard(answer) for b in row]


async def test_a_sure_answer_offers_no_second_photo(tg, bot, handled, sample_photos, classifier):
    sure = next(
        path
        for path, _, _ in sample_photos
        if classifier.identify(path.read_bytes()).verdict == "sure"
    )
    answer = await send(tg, ALICE, sure.read_bytes(), handled)
    assert "I think this is" in answer["text"]
    assert BUTTON not in [b["text"] for row in tg.keyboard(answer) for b in row]


async def test_another_users_tap_asks_nothing(tg, unsure_bot, handled, sample_photos, db):
    """Bob presses Alice's button (and sends its data from his own chat): refused, no question
    is opened, and neither Alice's nor Bob's next photo is combined with hers."""
    rose = photos_of(sample_photos, "rose")[0]
    answer = await send(tg, ALICE, rose, handled)
    query = tg.press_button(answer, BUTTON, user_id=BOB)
    await handled.wait(query)
    data = next(
        b["callback_data"] for row in tg.keyboard(answer) for b in row if b["text"] == BUTTON
    )
    assert callbacks.parse(data).choice == callbacks.SECOND_PHOTO
    bobs_answer = await send(tg, BOB, rose, handled)
    forged = tg.user_callback(bobs_answer, data, user_id=BOB)
    await handled.wait(forged)
    alerts = {
        str(c.params["callback_query_id"]): c.params.get("text")
        for c in tg.calls("answerCallbackQuery")
    }
    assert alerts[query["id"]] == "Only the person who sent the photo can add another one."
    assert alerts[forged["id"]] == "This button does not belong to this answer"
    assert pending(db) == []
    for user in (ALICE, BOB):
        alone = await send(tg, user, rose, handled)
        assert not alone["text"].startswith("📷")
    assert albums(db) == [] and feedback_rows(db) == []


async def test_a_photo_after_the_question_expired_is_answered_alone(
    tg, unsure_bot, handled, sample_photos, db
):
    rose = photos_of(sample_photos, "rose")[0]
    first = await send(tg, ALICE, rose, handled)
    await ask_for_a_second_photo(tg, first)

    def expire(session) -> None:
        past = datetime.now(UTC) - timedelta(seconds=1)
        session.execute(update(PendingQuestion).values(expires_at=past))

    in_db(db, expire)
    late = await send(tg, ALICE, rose, handled)
    assert late["text"].splitlines()[0].startswith("⏱ Too long has passed")
    assert any(line in late["text"] for line in UNSURE_LINES)
    assert offered(tg, late) == [[BUTTON], [ASK]]  # this photo may be asked about again
    assert albums(db) == [] and pending(db) == []


async def test_naming_the_photo_closes_the_question(tg, unsure_bot, handled, sample_photos, db):
    """Asked for a second photo, the user taps the species instead: the next photo is another
    plant, answered alone."""
    rose = photos_of(sample_photos, "rose")[0]
    first = await send(tg, ALICE, rose, handled)
    await ask_for_a_second_photo(tg, first)
    edited = await tap(tg, first, "Rose")
    # Named: no second photo is offered any more; identifiers may still be asked.
    assert "Recorded: Rose" in edited["text"] and offered(tg, edited) == [[ASK]]
    assert pending(db) == []
    alone = await send(tg, ALICE, rose, handled)
    assert not alone["text"].startswith("📷") and albums(db) == []


async def test_a_second_photo_that_is_no_flower_is_left_out(
    tg, unsure_bot, handled, sample_photos, db
):
    first = await send(tg, ALICE, photos_of(sample_photos, "rose")[0], handled)
    await ask_for_a_second_photo(tg, first)
    both = await send(tg, ALICE, png_bytes(ASTRONAUT), handled)
    assert both["text"].splitlines()[:2] == [
        "📷 One answer from 1 photo of one plant.",
        "Photo 2 left out: it does not look like a flower.",
    ]
    [(_, prediction_ids, left_out)] = albums(db)
    assert len(prediction_ids) == 2
    assert left_out == [{"position": 2, "reason": "not_a_flower"}]


async def test_an_unreadable_second_photo_keeps_the_question_and_a_restart_too(
    tg, handled, sample_photos, db, unsure_model
):
    """A broken file is named and the bot goes on waiting; another bot process (a restart) takes
    the next photo and combines it with the first."""
    roses = photos_of(sample_photos, "rose")
    settings = settings_for(tg, db, model_dir=unsure_model)
    first_process = await running(settings, handled)
    try:
        first = await send(tg, ALICE, roses[0], handled)
        await ask_for_a_second_photo(tg, first)
        broken = await send(tg, ALICE, BROKEN, handled)
    finally:
        await stopped(first_process)
    assert "I could not read that image" in broken["text"]
    assert "still waiting for another photo" in broken["text"]
    assert pending(db) == [(ALICE, "second_photo", prediction_under(tg, first))]
    second_process = await running(settings, handled)
    try:
        both = await send(tg, ALICE, roses[1], handled)
    finally:
        await stopped(second_process)
    assert both["text"].splitlines()[0] == "📷 One answer from 2 photos of one plant."
    assert len(albums(db)) == 1 and pending(db) == []


async def test_a_spanish_user_is_asked_in_spanish(tg, unsure_bot, handled, sample_photos):
    tg.set_user(BOB, language_code="es")
    answer = await send(tg, BOB, photos_of(sample_photos, "rose")[0], handled)
    button = "📷 Añadir una foto de la misma planta"
    assert offered(tg, answer) == [[button], ["🔎 Preguntar a un identificador"]]
    asked = await ask_for_a_second_photo(tg, answer, BOB, button)
    assert "10 minutos" in asked["text"]


async def test_asking_an_identifier_and_adding_a_photo_go_together(
    tg, unsure_bot, handled, sample_photos, db
):
    """Under one unsure answer Alice taps both: the first photo waits for identifiers, and her
    next photo is still combined with it."""
    rose, sunflower = photos_of(sample_photos, "rose")[0], photos_of(sample_photos, "sunflower")[0]
    first = await send(tg, ALICE, rose, handled)
    asked = await ask_an_identifier(tg, ALICE, first)
    assert "/forget withdraws it" in asked["text"]
    assert offered(tg, first) == [[BUTTON], [ASK]]  # asking records no name: both stay
    await ask_for_a_second_photo(tg, first)
    both = await send(tg, ALICE, sunflower, handled)
    assert both["text"].splitlines()[0] == "📷 One answer from 2 photos of one plant."
    assert len(albums(db)) == 1 and pending(db) == []
    queued = in_db(
        db, lambda s: [r.prediction_id for r in s.scalars(select(IdentificationRequest))]
    )
    assert queued == [prediction_under(tg, first)]
    handed = await handed_photo(tg, ADMIN)
    assert handed["caption"].endswith("Photos waiting: 1.")
