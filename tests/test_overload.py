"""Under overload: the backlog's measured wait, the one-view answer and its cuts, and a burst of
photos through the fake Bot API that answers every photo exactly once."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHIPPED_MODEL
from fake_telegram import FakeTelegram, polling
from sqlalchemy import select

from bot import network
from bot.app import build_application
from bot.config import Settings
from bot.network import RetryingRateLimiter
from bot.overload import Backlog, Mode, NextInLine
from bot.replies import NEXT_IN_LINE
from model_training.abstention import ONE_VIEW_KEYS, Verdict
from model_training.artifact import METADATA_FILE
from model_training.classifier import FlowerClassifier
from model_training.one_view import (
    add_one_view_cuts,
    one_view_cuts,
    one_view_position,
    scores,
    sure_and_wrong,
    verdicts,
)
from model_training.photos import decode_photo
from storage import Database, Photo

TOKEN = "123456:" + "C" * 35


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_backlog_waits_on_the_rate_measured_while_busy() -> None:
    clock = Clock()
    backlog = Backlog(one_view_after=1.15, next_in_line_after=2.05, window=5.0, clock=clock)
    # Nothing measured yet: however many photos are in hand, the full answer.
    assert [backlog.arrive(one_view=True) for _ in range(30)] == [Mode.FOUR_VIEWS] * 30
    for _ in range(20):  # 20 answers in 2 s with photos in hand: 10 a second
        clock.now += 0.1
        backlog.answered()
    assert backlog.rate() == pytest.approx(10.0)
    assert backlog.expected_wait() == pytest.approx(1.0)  # 10 in hand
    # 10 to 14 photos ahead: 1.0 to 1.4 s
    modes = [backlog.arrive(one_view=True) for _ in range(5)]
    assert modes == [Mode.FOUR_VIEWS] * 2 + [Mode.ONE_VIEW] * 3
    assert backlog.expected_wait() == pytest.approx(1.5)
    assert backlog.mode(one_view=False) == Mode.NEXT_IN_LINE  # no one-view answer: at once
    for _ in range(6):
        backlog.arrive(one_view=True)
    assert backlog.mode(one_view=True) == Mode.NEXT_IN_LINE  # 21 in hand: 2.1 s
    for _ in range(21):
        backlog.answered()
    assert backlog.in_hand == 0


def test_without_room_for_more_messages_no_photo_is_told_next_in_line() -> None:
    """When Telegram's message limit holds the answers back, a "next in line" reply would be
    a message more a photo: the one-view answer (or the full one) in turn instead."""
    clock = Clock()
    backlog = Backlog(one_view_after=0.5, next_in_line_after=1.0, window=5.0, clock=clock)
    for _ in range(40):
        backlog.arrive(one_view=True)
    for _ in range(10):  # 10 a second
        clock.now += 0.1
        backlog.answered()
    assert backlog.expected_wait() == pytest.approx(3.0)
    assert backlog.mode(one_view=True) == Mode.NEXT_IN_LINE
    assert backlog.mode(one_view=True, room_to_reply=False) == Mode.ONE_VIEW
    assert backlog.mode(one_view=False, room_to_reply=False) == Mode.FOUR_VIEWS


@pytest.mark.asyncio
async def test_the_rate_limiter_counts_the_messages_asked_for_in_the_last_seconds() -> None:
    now = Clock()
    limiter = RetryingRateLimiter(clock=now)
    await limiter.initialize()

    async def send() -> bool:
        return True

    async def ask(data: dict) -> None:
        assert await limiter.process_request(send, (), {}, "sendMessage", data, None)

    window = network.MESSAGES_WINDOW_SECONDS
    below = network.ROOM_TO_REPLY_BELOW - 1  # messages a second
    for _ in range(below * window):  # spread over the window
        await ask({"chat_id": 7, "text": "an answer"})
        now.now += 1 / below
    await ask({"file_id": "x"})  # getFile: no chat, not counted by Telegram's limit
    assert limiter.messages_per_second() == pytest.approx(below, rel=0.05)
    assert limiter.room_to_reply()
    above = network.ROOM_TO_REPLY_BELOW + 1
    for _ in range(above * window):  # then a little faster, for a whole window
        await ask({"chat_id": 8, "text": "an answer"})
        now.now += 1 / above
    assert not limiter.room_to_reply()
    now.now += window + 0.01
    assert limiter.messages_per_second() == 0 and limiter.room_to_reply()
    # A burst into a quiet bot counts over the time it took, not over the whole window.
    for _ in range(network.ROOM_TO_REPLY_BELOW):
        await ask({"chat_id": 9, "text": "an answer"})
    now.now += 0.5
    assert limiter.messages_per_second() == network.ROOM_TO_REPLY_BELOW
    assert not limiter.room_to_reply()


def test_few_photos_in_hand_are_no_overload() -> None:
    clock = Clock()
    backlog = Backlog(one_view_after=0.1, next_in_line_after=0.2, window=5.0, clock=clock)
    for _ in range(3):  # one photo a second, alone
        backlog.arrive(one_view=True)
        clock.now += 1
        backlog.answered()
    assert backlog.rate() == pytest.approx(1.0)
    modes = [backlog.arrive(one_view=True) for _ in range(5)]  # waits 0 to 4 s
    assert modes == [Mode.FOUR_VIEWS] * 4 + [Mode.NEXT_IN_LINE]


def test_quiet_time_does_not_slow_the_measured_rate() -> None:
    clock = Clock()
    backlog = Backlog(one_view_after=1.0, next_in_line_after=2.0, window=60.0, clock=clock)
    for _ in range(5):  # one photo at a time, 0.2 s each, 5 s apart
        backlog.arrive(one_view=True)
        clock.now += 0.2
        backlog.answered()
        clock.now += 5
    assert backlog.rate() == pytest.approx(5.0)  # a photo per 0.2 s of work, not per 5.2 s


@pytest.mark.asyncio
async def test_photos_next_in_line_are_answered_in_order_and_all_before_stopping() -> None:
    parked = NextInLine(working=2)
    await parked.start()
    started: list[int] = []
    finished: list[int] = []
    release = asyncio.Event()

    def answer(n: int):
        async def run() -> None:
            started.append(n)
            await release.wait()
            finished.append(n)

        return run

    for n in range(6):
        parked.park(answer(n))
    await asyncio.sleep(0.05)
    assert started == [0, 1]  # two at a time, in order
    assert len(parked) == 3  # the third is taken, waiting for a slot
    release.set()
    await parked.stop()  # returns once every parked photo is answered
    assert started == finished == list(range(6))


@pytest.fixture(scope="module")
def calibration(sample_photos) -> tuple[np.ndarray, np.ndarray]:
    """The sample photos' backbone features of the shipped model's serving views, and their
    species (a stand-in for the calibration photos training passes)."""
    shipped = FlowerClassifier.from_folder(SHIPPED_MODEL)
    images = np.stack([decode_photo(path.read_bytes()).image for path, _, _ in sample_photos])
    return shipped.classify(images)[1], np.array([label for _, label, _ in sample_photos])


@pytest.fixture(scope="module")
def one_view_model(tmp_path_factory, calibration) -> Path:
    """A copy of the shipped model with one-view cuts from the sample photos."""
    folder = tmp_path_factory.mktemp("model") / "one-view"
    shutil.copytree(SHIPPED_MODEL, folder)
    shipped = FlowerClassifier.from_folder(folder)
    features, labels = calibration
    cuts = one_view_cuts(
        shipped.model.head,
        shipped.model.honesty,
        shipped.model.metadata.thresholds,
        features,
        labels,
        np.ones(len(labels), bool),
        one_view_position(shipped.model.views),
    )
    add_one_view_cuts(folder, cuts)
    return folder


def test_one_view_cuts_are_no_less_strict_and_no_less_honest(calibration, one_view_model):
    model = FlowerClassifier.from_folder(one_view_model).model
    thresholds = model.metadata.thresholds
    assert set(ONE_VIEW_KEYS) <= set(thresholds)
    assert thresholds["one_view_unsure_below"] >= thresholds["unsure_below"]
    assert thresholds["one_view_unknown_species_below"] >= thresholds["unknown_species_below"]
    features, labels = calibration
    classifier = FlowerClassifier.from_folder(one_view_model)
    view = one_view_position(model.views)
    four = scores(model.head, model.honesty, features)
    one = scores(model.head, model.honesty, features[:, view : view + 1])
    sure_four = verdicts(classifier.rules, *four) == Verdict.SURE
    sure_one = verdicts(classifier.one_view_rules, *one) == Verdict.SURE
    wrong_four = sure_and_wrong(sure_four, four[0], labels)
    wrong_one = sure_and_wrong(sure_one, one[0], labels)
    assert wrong_one <= wrong_four
    # and a "sure" of one view is wrong no more often than one of four views
    assert wrong_one * sure_four.mean() <= wrong_four * sure_one.mean() + 1e-12


def test_the_one_view_answer_uses_one_view_and_its_own_cuts(sample_photos, one_view_model):
    photos = [decode_photo(path.read_bytes()) for path, _, _ in sample_photos[:4]]
    with_cuts = FlowerClassifier.from_folder(one_view_model)
    assert with_cuts.has_one_view
    one, four = with_cuts.answers(photos, one_view=True), with_cuts.answers(photos)
    assert [a.features.shape for a in one] == [(1, 1280)] * 4
    assert [a.features.shape[0] for a in four] == [len(with_cuts.model.views)] * 4
    view = one_view_position(with_cuts.model.views)
    for answer, four_view in zip(one, four, strict=True):
        np.testing.assert_allclose(answer.features[0], four_view.features[view], atol=1e-3)
        expected = with_cuts.one_view_rules.verdict(
            answer.top5[0].confidence, answer.flower_score, 10**6, answer.species_score
        )
        assert answer.verdict == expected


@pytest.fixture(scope="module")
def older_model(tmp_path_factory) -> Path:
    """A copy of the shipped model without one-view cuts, as folders made before them are."""
    folder = tmp_path_factory.mktemp("model") / "older"
    shutil.copytree(SHIPPED_MODEL, folder)
    metadata = json.loads((folder / METADATA_FILE).read_text())
    for key in ONE_VIEW_KEYS:
        del metadata["thresholds"][key]
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    return folder


def test_the_shipped_model_has_one_view_cuts() -> None:
    assert FlowerClassifier.from_folder(SHIPPED_MODEL).has_one_view


def test_a_folder_without_one_view_cuts_has_no_one_view_answer(sample_photos, older_model):
    older = FlowerClassifier.from_folder(older_model)
    assert not older.has_one_view
    with pytest.raises(ValueError, match="no one-view cuts"):
        older.answers([decode_photo(sample_photos[0][0].read_bytes())], one_view=True)


@pytest.mark.asyncio
@pytest.mark.parametrize("cuts", [True, False], ids=["one-view cuts", "no one-view cuts"])
async def test_an_overload_answers_every_photo_exactly_once(
    sample_photos, older_model, tmp_path, cuts
):
    """A burst of photos from new users, with the overload bounds set so low that the burst
    trips them: some are told "next in line" first, every one is answered once, in full or by
    one view."""
    model = SHIPPED_MODEL if cuts else older_model
    photos = [path.read_bytes() for path, _, _ in sample_photos]
    url = f"sqlite:///{tmp_path}/bot.sqlite"
    with FakeTelegram(token=TOKEN) as tg:
        settings = Settings(
            telegram_bot_token=TOKEN,
            database_url=url,
            model_dir=model,
            telegram_api_base_url=tg.base_url,
            telegram_file_base_url=tg.base_file_url,
            health_port=0,
            one_view_after_seconds=0.0,
            next_in_line_after_seconds=0.05,
        )
        async with polling(build_application(settings)):
            for user in (1, 2, 3):  # the answer rate measured
                tg.user_photo(user, photos[user])
                await tg.wait_for("sendMessage", chat_id=user, timeout=60)
            burst = range(100, 120)
            for user in burst:
                tg.user_photo(user, photos[user % len(photos)])
            for user in burst:
                await tg.wait_for("sendMessage", answer, chat_id=user, timeout=120)
            await asyncio.sleep(0.5)  # nothing more comes
            sent = {user: tg.sent_messages(user) for user in burst}
    database = Database(url)
    with database.session() as session:
        shapes = list(session.scalars(select(Photo.embedding_shape).order_by(Photo.id)))
    database.dispose()
    answers = {
        user: [m for m in messages if "reply_markup" in m] for user, messages in sent.items()
    }
    assert all(len(found) == 1 for found in answers.values()), answers
    held = [user for user, messages in sent.items() if messages[0]["text"] == NEXT_IN_LINE]
    assert held, "the burst never tripped the next-in-line reply"
    assert all(len(sent[user]) == 2 for user in held)  # the reply, then the answer
    assert all(len(sent[user]) == 1 for user in burst if user not in held)
    one_view_answers = shapes.count("1,1280")
    assert len(shapes) == 3 + len(burst)
    if cuts:  # held photos (and any between the bounds) get the one-view answer
        assert one_view_answers >= len(held)
    else:
        assert one_view_answers == 0


def answer(call) -> bool:
    return "reply_markup" in call.params
