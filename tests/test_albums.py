"""Albums end to end: photos sent together get one combined answer and one keyboard.

The real bot, model and SQLite database against the fake Bot API, with tests/test_bot.py's
fixtures (imported: ruff takes them for unused imports, redefined by the arguments).
"""
# ruff: noqa: F401, F811

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import skimage
from conftest import SHIPPED_MODEL, load_bench
from sqlalchemy import select
from test_bot import (
    ALICE,
    BOB,
    GROUP,
    bot,
    count,
    db,
    feedback_rows,
    handled,
    in_db,
    png_bytes,
    prediction_under,
    ranked_lines,
    reply_to,
    species_buttons,
    tap,
    text_reply,
)

from model_training.albums import CHOSEN, album_answer, combine
from model_training.artifact import load_base_rows
from model_training.classifier import FlowerClassifier
from model_training.model import head_probabilities
from model_training.photos import decode_photo
from storage import Album, Photo, Prediction

pytestmark = pytest.mark.asyncio
ASTRONAUT = Path(skimage.data.__file__).parent / "astronaut.png"
ROOT = Path(__file__).resolve().parents[1]
BROKEN = b"\xff\xd8\xff\xe0 this is no JPEG"


def photos_of(sample_photos: list, species: str) -> list[bytes]:
    return [path.read_bytes() for path, _, name in sample_photos if name == species]


async def only_answer(tg, chat_id: int, mark: int, handled, album: list[dict]) -> dict:
    """The bot's answer to an album, after checking that it sent exactly one."""
    answer = await reply_to(tg, chat_id, mark)
    for message in album:
        await handled.wait(message)
    await asyncio.sleep(0.5)  # a second answer would follow the first within the album's wait
    sent = [c for c in tg.calls()[mark:] if c.method == "sendMessage" and c.ok]
    assert len(sent) == 1, [c.result["text"][:60] for c in sent]
    return answer


def albums(db: Path) -> list[tuple[str, list[int], list[dict]]]:
    """(verdict, prediction ids, left out) of every stored album."""
    return in_db(
        db,
        lambda s: [
            (a.verdict, sorted(p.id for p in a.predictions), a.left_out)
            for a in s.scalars(select(Album).order_by(Album.id))
        ],
    )


async def test_an_album_gets_one_answer_from_all_its_photos(tg, bot, handled, sample_photos, db):
    mark = tg.mark()
    album = tg.user_album(ALICE, photos_of(sample_photos, "sunflower"))
    answer = await only_answer(tg, ALICE, mark, handled, album)
    assert answer["reply_to_message"]["message_id"] == album[0]["message_id"]
    lines = answer["text"].splitlines()
    assert lines[0] == "📷 One answer from 2 photos of one plant."
    assert "I think this is Sunflower." in answer["text"]
    assert species_buttons(tg, answer)[0] == "Sunflower"
    # Each photo keeps its own row and prediction; the album links them.
    assert count(db, Photo) == 2
    [(_, prediction_ids, left_out)] = albums(db)
    assert len(prediction_ids) == 2 and left_out == []
    assert prediction_under(tg, answer) == prediction_ids[0]


async def test_a_tap_labels_every_photo_of_the_album(tg, bot, handled, sample_photos, db):
    mark = tg.mark()
    album = tg.user_album(BOB, photos_of(sample_photos, "rose"))
    answer = await only_answer(tg, BOB, mark, handled, album)
    edited = await tap(tg, answer, "Rose", user=BOB)
    rows = feedback_rows(db)
    [(_, prediction_ids, _)] = albums(db)
    assert sorted(r[1] for r in rows) == prediction_ids  # one row per photo, on its prediction
    assert {(r[0], r[3]) for r in rows} == {(BOB, "rose")}
    # The answer is drawn again from the album, header included, with what was recorded.
    assert edited["text"].splitlines()[0] == "📷 One answer from 2 photos of one plant."
    assert "Recorded: Rose" in edited["text"]


async def test_a_typed_name_labels_every_photo_of_the_album(tg, bot, handled, sample_photos, db):
    mark = tg.mark()
    album = tg.user_album(ALICE, photos_of(sample_photos, "cyclamen"))
    answer = await only_answer(tg, ALICE, mark, handled, album)
    mark = tg.mark()
    tg.press_button(answer, "None of these", user_id=ALICE)
    await reply_to(tg, ALICE, mark)
    assert "Did you mean" in await text_reply(tg, ALICE, "cyclamen")
    confirm = tg.sent_messages(ALICE)[-1]
    await tap(tg, confirm, "Cyclamen", user=ALICE)
    rows = feedback_rows(db)
    assert len(rows) == 2 and {r[3] for r in rows} == {"cyclamen"}


async def test_album_answer_taps_count_only_under_it(tg, bot, handled, sample_photos, db):
    """Bob sends the album answer's button data from his own chat: refused, nothing stored. Under
    the answer, and under its /top5 repeat, Alice's taps label the album's photos."""
    mark = tg.mark()
    album = tg.user_album(ALICE, photos_of(sample_photos, "rose"))
    answer = await only_answer(tg, ALICE, mark, handled, album)
    mark = tg.mark()
    tg.user_command(BOB, "start")
    elsewhere = await reply_to(tg, BOB, mark)
    query = tg.user_callback(elsewhere, tg.keyboard(answer)[0][0]["callback_data"], user_id=BOB)
    await handled.wait(query)
    [answered] = [
        c.params
        for c in tg.calls("answerCallbackQuery")
        if str(c.params["callback_query_id"]) == query["id"]
    ]
    assert answered["text"] == "This button does not belong to this answer"
    assert answered["show_alert"] is True
    assert feedback_rows(db) == []
    named = in_db(db, lambda s: s.get(Prediction, prediction_under(tg, answer)))
    assert (named.answer_chat_id, named.answer_message_id) == (ALICE, answer["message_id"])
    await tap(tg, answer, "Rose", user=ALICE)
    assert len(feedback_rows(db)) == 2
    mark = tg.mark()
    tg.user_command(ALICE, "top5", reply_to=album[0])
    again = await reply_to(tg, ALICE, mark)
    await tap(tg, again, "Rose", user=ALICE)
    rows = feedback_rows(db)
    assert sorted(r[1] for r in rows) == albums(db)[1][1]  # the repeat's own predictions
    assert {(r[0], r[3]) for r in rows} == {(ALICE, "rose")}


async def test_a_broken_photo_is_named_and_left_out(tg, bot, handled, sample_photos, db):
    roses = photos_of(sample_photos, "rose")
    mark = tg.mark()
    album = tg.user_album(ALICE, [roses[0], BROKEN, roses[1]])
    answer = await only_answer(tg, ALICE, mark, handled, album)
    lines = answer["text"].splitlines()
    assert lines[:2] == [
        "📷 One answer from 2 photos of one plant.",
        "Photo 2 left out: I could not read it.",
    ]
    assert "I think this is Rose." in answer["text"]
    assert count(db, Photo) == 2
    assert albums(db)[0][2] == [{"position": 2, "reason": "unreadable"}]


async def test_a_spanish_user_gets_the_album_answer_in_spanish(tg, bot, handled, sample_photos):
    tg.set_user(BOB, language_code="es")
    roses = photos_of(sample_photos, "rose")
    mark = tg.mark()
    album = tg.user_album(BOB, [roses[0], BROKEN, roses[1]])
    answer = await only_answer(tg, BOB, mark, handled, album)
    assert answer["text"].splitlines()[:2] == [
        "📷 Una respuesta a partir de 2 fotos de una planta.",
        "Foto 2 excluida: no he podido leerla.",
    ]
    assert "Creo que es Rosa." in answer["text"]


async def test_a_photo_that_is_no_flower_is_left_out(tg, bot, handled, sample_photos, db):
    daisies = photos_of(sample_photos, "oxeye daisy")
    mark = tg.mark()
    album = tg.user_album(ALICE, [*daisies, png_bytes(ASTRONAUT)])
    answer = await only_answer(tg, ALICE, mark, handled, album)
    assert answer["text"].splitlines()[:2] == [
        "📷 One answer from 2 photos of one plant.",
        "Photo 3 left out: it does not look like a flower.",
    ]
    assert "I think this is Oxeye daisy." in answer["text"]
    # Stored all the same, each photo with its own verdict: the astronaut's says "not a flower".
    classifier = bot.bot_data["services"].identifier.classifier
    own = [classifier.identify(photo).verdict.value for photo in daisies]
    verdicts = in_db(db, lambda s: [p.verdict for p in s.scalars(select(Prediction))])
    assert sorted(verdicts) == sorted(["not_a_flower", *own])
    assert "not_a_flower" not in own


async def test_the_answer_combines_the_photos_probabilities(tg, bot, handled, sample_photos, db):
    """The album's top-5 is the combination of its photos' own probabilities, by the chosen
    rule: here a rose and a sunflower, whose combination names both among the first."""
    photos = [photos_of(sample_photos, "rose")[0], photos_of(sample_photos, "sunflower")[0]]
    classifier = bot.bot_data["services"].identifier.classifier
    expected = combine(np.stack([classifier.identify(p).probabilities for p in photos]))
    mark = tg.mark()
    album = tg.user_album(ALICE, photos)
    answer = await only_answer(tg, ALICE, mark, handled, album)
    best = [classifier.class_names[i].capitalize() for i in np.argsort(-expected)[:5]]
    shown = [line.split(". ", 1)[1] for line in ranked_lines(answer["text"])]
    assert shown == best
    assert {"Rose", "Sunflower"} <= set(shown[:2])


async def test_top5_in_reply_to_any_photo_of_an_album_answers_the_album(
    tg, bot, handled, sample_photos, db
):
    mark = tg.mark()
    album = tg.user_album(ALICE, [*photos_of(sample_photos, "passion flower"), BROKEN])
    await only_answer(tg, ALICE, mark, handled, album)
    mark = tg.mark()
    tg.user_command(ALICE, "top5", reply_to=album[1])
    again = await reply_to(tg, ALICE, mark)
    assert again["text"].splitlines()[:2] == [
        "📷 One answer from 2 photos of one plant.",
        "Photo 3 left out: I could not read it.",
    ]
    assert "Passion flower" in again["text"]
    stored = albums(db)
    assert len(stored) == 2 and len(stored[1][1]) == 2
    assert set(stored[0][1]).isdisjoint(stored[1][1])  # the new answer's own predictions
    assert prediction_under(tg, again) == stored[1][1][0]


async def test_the_rate_limit_counts_photos_not_albums(tg, bot, handled, sample_photos, db):
    """The bot fixture allows 5 photos a minute: the second album of 3 gets its first 2."""
    photos = photos_of(sample_photos, "common dandelion") + photos_of(sample_photos, "rose")[:1]
    mark = tg.mark()
    first = tg.user_album(BOB, photos)
    await only_answer(tg, BOB, mark, handled, first)
    mark = tg.mark()
    second = tg.user_album(BOB, photos)
    answer = await only_answer(tg, BOB, mark, handled, second)
    lines = answer["text"].splitlines()
    assert lines[0] == "📷 One answer from 2 photos of one plant."
    assert len([line for line in lines if "over the limit of photos a minute" in line]) == 1
    assert count(db, Photo) == 5


async def test_a_group_album_is_answered_only_when_asked(tg, bot, handled, sample_photos):
    photos = photos_of(sample_photos, "sunflower")
    mark = tg.mark()
    quiet = tg.user_album(GROUP, photos, user_id=ALICE)
    for message in quiet:
        await handled.wait(message)
    await asyncio.sleep(1.5)  # past the album's wait
    assert [c for c in tg.calls()[mark:] if c.method == "sendMessage"] == []
    asked = tg.user_album(GROUP, photos, caption="/top5", user_id=ALICE)
    answer = await only_answer(tg, GROUP, mark, handled, asked)
    assert answer["text"].splitlines()[0] == "📷 One answer from 2 photos of one plant."


async def test_the_album_benchmark_at_a_small_scale(sample_photos, monkeypatch):
    """bench/albums.py's measurements on the shipped model's base held-out rows (no feature
    extraction) and two sample photos; the full run is `python bench/albums.py`."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # as when the script runs: bot_load
    bench = load_bench("albums")
    classifier = FlowerClassifier.from_folder(SHIPPED_MODEL)
    base = load_base_rows(SHIPPED_MODEL)
    probs = head_probabilities(classifier.artifact.head, base.heldout_x.astype(np.float32))
    by_size = {k: bench.grouped_top1(probs, base.heldout_y, k, 5, 0) for k in (1, 2, 3)}
    assert 0.85 < by_size[1][CHOSEN] < by_size[2][CHOSEN] <= by_size[3][CHOSEN]

    photos = photos_of(sample_photos, "sunflower")
    crops = bench.crop_pairs(photos[:1])
    assert len(crops) == 2
    assert all(decode_photo(c).width < decode_photo(photos[0]).width for c in crops)
    album = album_answer(classifier, classifier.answers([decode_photo(c) for c in crops]))
    assert album.top5[0].species == "sunflower" and album.used == [0, 1]

    median = await bench.latencies(SHIPPED_MODEL, photos, rounds=1, wait=0.3)
    assert median["album"] > 0.3  # an album is answered only after its quiet time
    assert median["alone"] > 0
