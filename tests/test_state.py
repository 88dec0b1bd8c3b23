"""State shared by bot processes (storage/state.py), on SQLite and PostgreSQL: pending questions
with an expiry, the per-user photo limit, and the deployment's generated settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session
from test_storage import ALICE, BOB, NOW, photo, predicted

from storage import (
    Database,
    ask,
    close_question,
    ensure_user,
    forget_user,
    instance_setting,
    pending_question,
    take_photo_slot,
    take_question,
)


def test_a_question_is_answerable_until_it_expires_and_the_latest_one_wins(db: Database) -> None:
    with db.session() as session:
        first = predicted(session, photo(session, ALICE, 1), 3, 1)
        second = predicted(session, photo(session, ALICE, 2), 4, 1)
        ask(session, ALICE, "species_name", first.id, NOW + timedelta(hours=1))
        ask(session, ALICE, "species_name", second.id, NOW + timedelta(hours=1))
    with db.session() as session:  # a new session: what another process would read
        question = pending_question(session, ALICE, NOW + timedelta(minutes=59))
        assert question is not None
        assert (question.kind, question.prediction_id) == ("species_name", second.id)
        assert pending_question(session, ALICE, NOW + timedelta(hours=1)) is None  # expired
        assert pending_question(session, BOB, NOW) is None


@pytest.mark.parametrize("drop", [close_question, forget_user], ids=["closed", "user forgotten"])
def test_closing_the_question_or_forgetting_the_user_drops_it(
    db: Database, drop: Callable[[Session, int], object]
) -> None:
    with db.session() as session:
        prediction = predicted(session, photo(session, ALICE, 1), 3)
        ask(session, ALICE, "species_name", prediction.id, NOW + timedelta(hours=1))
    with db.session() as session:
        drop(session, ALICE)
    with db.session() as session:
        assert pending_question(session, ALICE, NOW) is None


def test_a_question_is_taken_once_expired_or_not_and_only_of_its_kind(db: Database) -> None:
    """A second photo takes its question (bot/handlers/photos.py): once; an expired one too (the
    photo says so); never a question of another kind. Naming a photo closes only its own."""
    with db.session() as session:
        first = predicted(session, photo(session, ALICE, 1), 3)
        second = predicted(session, photo(session, ALICE, 2), 4)
        ask(session, ALICE, "species_name", first.id, NOW + timedelta(hours=1))
    with db.session() as session:
        assert take_question(session, ALICE, "second_photo") is None
        assert pending_question(session, ALICE, NOW) is not None  # left as it was
        ask(session, ALICE, "second_photo", second.id, NOW - timedelta(minutes=1))
    with db.session() as session:
        taken = take_question(session, ALICE, "second_photo")
    assert taken is not None and taken.prediction_id == second.id
    assert taken.expires_at < NOW
    with db.session() as session:
        assert take_question(session, ALICE, "second_photo") is None
        ask(session, ALICE, "second_photo", second.id, NOW + timedelta(minutes=10))
        close_question(session, ALICE, first.id)  # about another prediction: kept
        assert pending_question(session, ALICE, NOW) is not None
        close_question(session, ALICE, second.id)
        assert pending_question(session, ALICE, NOW) is None


def test_the_photo_limit_counts_a_sliding_minute_per_user(db: Database) -> None:
    with db.session() as session:
        ensure_user(session, ALICE)
        ensure_user(session, BOB)
    second = timedelta(seconds=1)

    def take(user: int, at: timedelta) -> bool:
        with db.session() as session:
            return take_photo_slot(session, user, NOW + at, per_minute=3)

    assert [take(ALICE, i * second) for i in range(4)] == [True, True, True, False]
    assert take(BOB, 3 * second)  # another user's minute is their own
    assert not take(ALICE, 59 * second)
    assert take(ALICE, 60 * second)  # the first photo has left the window
    assert not take(ALICE, 60 * second)  # the minute is full again


def test_two_processes_cannot_both_take_the_last_photo_slot(db: Database) -> None:
    """Many threads, each with its own connection, race for 5 slots: exactly 5 get one."""
    with db.session() as session:
        ensure_user(session, ALICE)
    results: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        other = Database(db.url.render_as_string(hide_password=False))
        with other.session() as session:
            taken = take_photo_slot(session, ALICE, NOW, per_minute=5)
        other.dispose()
        with lock:
            results.append(taken)

    threads = [threading.Thread(target=race) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True] * 5


def test_an_instance_setting_is_made_once_and_then_kept(db: Database) -> None:
    made: list[str] = []

    def make() -> str:
        made.append(f"value-{len(made)}")
        return made[-1]

    with db.session() as session:
        first = instance_setting(session, "webhook_secret", make)
    with db.session() as session:
        again = instance_setting(session, "webhook_secret", make)
    assert first == again == "value-0"
