"""The identifiers' queue in storage (storage/identifiers.py), on SQLite and, when
FLOWERBOT_TEST_POSTGRES_URL is set, PostgreSQL: asking, handing out, answers, confirmation."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select
from test_storage import ALICE, BOB, NOW, answer, photo, predicted

from storage import (
    Database,
    Feedback,
    Identification,
    IdentificationRequest,
    Name,
    Outcome,
    QueueOrder,
    agreed_labels,
    ask_identifiers,
    claim_next,
    confirmed_name,
    ensure_user,
    forget_user,
    handed_as,
    held_by,
    iter_labelled_examples,
    queue_stats,
    record_identification,
    waiting_for,
)
from storage.identifiers import CLAIM_EXPIRES

CARA, DAN, EVE = 30_000_000_003, 40_000_000_004, 50_000_000_005
ROSE = Name(species_index=3, species="species 3")
LILY = Name(species_index=5, species="species 5")


def asked(db: Database, user: int, message_id: int, *indexes: int, age: int = 0) -> int:
    """`user` sends a photo answered with `indexes` and asks identifiers, `age` minutes ago: the
    request's id."""
    with db.session() as session:
        prediction = predicted(session, photo(session, user, message_id), *indexes)
        when = NOW - timedelta(minutes=age)
        request = ask_identifiers(session, prediction.id, user, "en", when)
        assert request is not None
        return request.id


def hand(db: Database, identifier: int, message_id: int, order=QueueOrder.OLDEST) -> int | None:
    """/identify: the request handed to `identifier`, shown in message `message_id`."""
    with db.session() as session:
        ensure_user(session, identifier)
        request = claim_next(session, identifier, NOW, order)
        if request is None:
            return None
        handed_as(session, request.id, identifier, message_id)
        return request.id


def say(
    db: Database, request_id: int, identifier: int, message_id: int, name: Name | None, **kw
) -> Outcome:
    with db.session() as session:
        ensure_user(session, identifier)
        result = record_identification(session, request_id, identifier, message_id, name, NOW, **kw)
        return result.outcome


def rows(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_only_the_photographer_asks_and_asking_twice_queues_once(db: Database) -> None:
    first = asked(db, ALICE, 1, 3, 5)
    with db.session() as session:
        prediction_id = session.get(IdentificationRequest, first).prediction_id
        assert ask_identifiers(session, prediction_id, BOB, "en", NOW) is None
        again = ask_identifiers(session, prediction_id, ALICE, "es", NOW)
        assert again.id == first and again.language == "en"
        assert ask_identifiers(session, 999_999, ALICE, "en", NOW) is None
    assert rows(db, IdentificationRequest) == 1


def test_oldest_first_never_ones_own_and_one_identifier_at_a_time(db: Database) -> None:
    older = asked(db, ALICE, 1, 3, age=10)
    newer = asked(db, BOB, 2, 3, age=5)
    assert hand(db, ALICE, 100) == newer  # her own photo is never handed to her
    assert hand(db, CARA, 200) == older
    assert hand(db, DAN, 300) is None  # Alice holds Bob's photo, Cara holds Alice's
    assert hand(db, CARA, 201) == older  # /identify again: the one she holds, in a new message
    with db.session() as session:
        assert waiting_for(session, CARA) == 2 and waiting_for(session, ALICE) == 1


def test_least_sure_first_when_asked_so(db: Database) -> None:
    asked(db, ALICE, 1, 3, 5, age=10)  # top-1 confidence 0.5
    with db.session() as session:
        prediction = predicted(session, photo(session, BOB, 2), 3, 5)
        prediction.top5 = [{**s, "confidence": 0.2} for s in prediction.top5]
        session.flush()
        less_sure = ask_identifiers(session, prediction.id, BOB, "en", NOW).id
    assert hand(db, CARA, 100, QueueOrder.LEAST_SURE) == less_sure


def test_an_expired_claim_goes_to_the_next_identifier(db: Database) -> None:
    request_id = asked(db, ALICE, 1, 3)
    assert hand(db, CARA, 100) == request_id
    with db.session() as session:
        later = claim_next(session, DAN, NOW + CLAIM_EXPIRES + timedelta(seconds=1))
        assert later is not None and later.id == request_id
        handed_as(session, request_id, DAN, 300)
    # Cara's answer from her old message no longer counts; Dan's does.
    assert say(db, request_id, CARA, 100, ROSE) == Outcome.NOT_HANDED
    assert say(db, request_id, DAN, 300, ROSE) == Outcome.RECORDED


def test_taps_count_only_from_the_message_and_identifier_it_was_handed_to(db: Database) -> None:
    request_id = asked(db, ALICE, 1, 3)
    other = asked(db, BOB, 2, 3)
    assert hand(db, CARA, 100) == request_id
    assert say(db, request_id, CARA, 999, ROSE) == Outcome.NOT_HANDED  # another message
    assert say(db, other, CARA, 100, ROSE) == Outcome.NOT_HANDED  # another queue entry's id
    assert say(db, request_id, DAN, 100, ROSE) == Outcome.NOT_HANDED  # not handed to Dan
    assert say(db, request_id, ALICE, 100, ROSE) == Outcome.OWN_PHOTO
    assert say(db, 424_242, CARA, 100, ROSE) == Outcome.GONE
    assert rows(db, Identification) == 0
    with db.session() as session:
        assert held_by(session, request_id, CARA, 100) is not None
        assert held_by(session, request_id, CARA, 999) is None
    assert say(db, request_id, CARA, 100, ROSE) == Outcome.RECORDED
    # The claim went with the answer: the same tap again records nothing more.
    assert say(db, request_id, CARA, 100, LILY) == Outcome.NOT_HANDED
    assert hand(db, CARA, 101) == other  # never the same photo twice


def test_a_tap_before_the_message_is_stored_counts_from_the_holder_only(db: Database) -> None:
    """The bot handles updates concurrently: a tap on the handed photo can come before its
    message id is stored. It counts from the identifier who holds the photo, whatever the
    message, until the message is stored; a claim taken over from an expired one starts so."""
    request_id = asked(db, ALICE, 1, 3)
    with db.session() as session:
        claim_next(session, CARA, NOW)
        assert held_by(session, request_id, CARA, 100) is not None
        assert held_by(session, request_id, DAN, 100) is None
    assert say(db, request_id, DAN, 100, ROSE) == Outcome.NOT_HANDED
    assert say(db, request_id, CARA, 100, ROSE) == Outcome.RECORDED
    with db.session() as session:
        claim_next(session, DAN, NOW)
        handed_as(session, request_id, DAN, 300)
        later = claim_next(session, EVE, NOW + CLAIM_EXPIRES + timedelta(seconds=1))
        assert later is not None and later.claim_message_id is None
    assert say(db, request_id, DAN, 300, ROSE) == Outcome.NOT_HANDED  # no longer his
    assert say(db, request_id, EVE, 500, LILY) == Outcome.RECORDED


def test_two_agreeing_identifiers_confirm_and_the_first_is_the_labeller(db: Database) -> None:
    request_id = asked(db, ALICE, 1, 3, 5, age=90)
    assert hand(db, CARA, 100) == request_id
    assert say(db, request_id, CARA, 100, ROSE) == Outcome.RECORDED
    with db.session() as session:
        assert (
            confirmed_name(session, session.get(IdentificationRequest, request_id).photo_id) is None
        )
    assert hand(db, DAN, 200) == request_id
    assert say(db, request_id, DAN, 200, ROSE) == Outcome.CONFIRMED
    with db.session() as session:
        request = session.get(IdentificationRequest, request_id)
        assert confirmed_name(session, request.photo_id) == ROSE
        labels = [(e.photo_id, e.user_id, e.species_index) for e in iter_labelled_examples(session)]
        assert labels == [(request.photo_id, CARA, 3)]
        stats = queue_stats(session)
    assert (stats.waiting, stats.confirmed, stats.median_to_name) == (0, 1, timedelta(minutes=90))
    assert hand(db, EVE, 300) is None


def test_disagreement_goes_to_a_third(db: Database) -> None:
    request_id = asked(db, ALICE, 1, 3, 5)
    for identifier, message_id, name in ((CARA, 100, ROSE), (DAN, 200, LILY)):
        assert hand(db, identifier, message_id) == request_id
        assert say(db, request_id, identifier, message_id, name) == Outcome.RECORDED
    assert hand(db, EVE, 300) == request_id
    assert say(db, request_id, EVE, 300, LILY) == Outcome.CONFIRMED
    with db.session() as session:
        assert [f.user_id for f in session.scalars(select(Feedback))] == [DAN]


def test_a_skip_is_no_opinion_and_one_trusted_identifier_may_confirm_alone(db: Database) -> None:
    request_id = asked(db, ALICE, 1, 3)
    assert hand(db, CARA, 100) == request_id
    assert say(db, request_id, CARA, 100, None) == Outcome.SKIPPED
    assert hand(db, CARA, 101) is None  # skipped: not handed to her again
    assert hand(db, DAN, 200) == request_id
    not_a_flower = Name(not_a_flower=True)
    assert say(db, request_id, DAN, 200, not_a_flower, alone_confirms=True) == Outcome.CONFIRMED
    with db.session() as session:
        request = session.get(IdentificationRequest, request_id)
        assert confirmed_name(session, request.photo_id) == not_a_flower
        assert [f.not_a_flower for f in session.scalars(select(Feedback))] == [True]


def test_forgetting_withdraws_the_photo_and_its_answers(db: Database) -> None:
    request_id = asked(db, ALICE, 1, 3)
    kept = asked(db, BOB, 2, 3)
    assert hand(db, CARA, 100) == request_id
    assert say(db, request_id, CARA, 100, ROSE) == Outcome.RECORDED
    assert hand(db, CARA, 101) == kept
    assert say(db, kept, CARA, 101, ROSE) == Outcome.RECORDED
    assert hand(db, DAN, 200) == request_id
    with db.session() as session:
        deleted = forget_user(session, ALICE)
    assert (deleted["asked"], deleted["identifications"]) == (1, 1)
    assert say(db, request_id, DAN, 200, ROSE) == Outcome.GONE  # withdrawn while Dan held it
    with db.session() as session:
        forget_user(session, CARA)  # an identifier who leaves takes their answers along
    assert (rows(db, IdentificationRequest), rows(db, Identification)) == (1, 0)


def test_labels_that_agreed_with_confirmed_names_are_counted(db: Database) -> None:
    request_id = asked(db, ALICE, 1, 3)
    with db.session() as session:
        request = session.get(IdentificationRequest, request_id)
        ensure_user(session, EVE)
        ensure_user(session, BOB)
        answer(session, request.prediction, EVE, 3)  # Eve (in a group) named it before
        answer(session, request.prediction, BOB, 5)  # Bob named something else
        for feedback in session.scalars(select(Feedback)):
            feedback.updated_at = NOW - timedelta(minutes=1)
    for identifier, message_id in ((CARA, 100), (DAN, 200)):
        assert hand(db, identifier, message_id) == request_id
        say(db, request_id, identifier, message_id, ROSE)
    with db.session() as session:
        assert agreed_labels(session, EVE) == 1
        assert agreed_labels(session, BOB) == 0
        assert agreed_labels(session, CARA) == 0  # her label came with the confirmation


def test_processes_asking_at_once_never_get_the_same_photo(url: str) -> None:
    """Six identifiers, each through its own engine (as separate bot processes would), ask for a
    photo at the same moment while three wait: three get one each, all different."""
    identifiers = [CARA, DAN, EVE, 60_000_000_006, 70_000_000_007, 80_000_000_008]
    databases = [Database(url) for _ in identifiers]
    databases[0].upgrade()
    try:
        waiting = {asked(databases[0], ALICE, message_id, 3) for message_id in (1, 2, 3)}
        for identifier in identifiers:
            with databases[0].session() as session:
                ensure_user(session, identifier)
        start = threading.Barrier(len(identifiers))
        got: list[int | None] = [None] * len(identifiers)

        def identify(position: int) -> None:
            start.wait()
            with databases[position].session() as session:
                request = claim_next(session, identifiers[position], NOW)
                got[position] = None if request is None else request.id

        threads = [threading.Thread(target=identify, args=(i,)) for i in range(len(identifiers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        handed = [request_id for request_id in got if request_id is not None]
        assert sorted(handed) == sorted(waiting)
    finally:
        for database in databases:
            database.dispose()
