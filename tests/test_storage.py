"""storage: the same checks on a SQLite file and, when FLOWERBOT_TEST_POSTGRES_URL names a server
(see .ci/postgres.sh), on PostgreSQL, each test in a fresh database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import delete, func, inspect, select, text, update
from sqlalchemy.orm import Session

from storage import (
    Album,
    Confusion,
    Database,
    Feedback,
    ModelAccuracy,
    ModelFile,
    ModelStatus,
    NewSpecies,
    Photo,
    Prediction,
    User,
    add_album,
    add_new_species,
    add_photo,
    add_prediction,
    add_version,
    album_of,
    allow_naming,
    answer_sent_as,
    answered_together,
    approve,
    claim_send,
    count_labelled_examples,
    delete_albums_older_than,
    delete_older_than,
    ensure_user,
    forget_user,
    has_model_files,
    iter_labelled_examples,
    iter_labelled_jpegs,
    labelled_examples,
    last_photo,
    latest_album,
    may_name,
    photo_by_message,
    prediction_by_id,
    record_feedback,
    release_send,
    send_stored,
    sent_prediction,
    set_excluded,
    stats,
    store_model_files,
    tapped_on_its_answer,
    write_model_files,
)
from storage.db import MIGRATIONS
from storage.models import Base, decode_features, encode_features

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SHAPE = (4, 1280)
ALICE, BOB = 10_000_000_001, 20_000_000_002  # beyond 32 bits, like real Telegram ids


def embedding(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(SHAPE, dtype=np.float32)


def top5(*indexes: int) -> list[dict[str, Any]]:
    return [
        {"species": f"species {i}", "index": i, "confidence": 0.5 / (rank + 1)}
        for rank, i in enumerate(indexes)
    ]


def photo(session: Session, user_id: int, message_id: int, age: timedelta = timedelta()) -> Photo:
    """A stored photo `age` before NOW, of a user who may be new."""
    ensure_user(session, user_id, f"user{user_id}")
    stored = add_photo(
        session,
        user_id,
        user_id,
        message_id,
        f"{message_id:064x}",
        b"jpeg",
        embedding(message_id),
        (640, 480),
    )
    stored.created_at = NOW - age
    return stored


def predicted(session: Session, stored: Photo, *indexes: int, version: str = "v1") -> Prediction:
    return add_prediction(session, stored.id, version, top5(*indexes), 40.0)


def answer(session: Session, prediction: Prediction, user_id: int, index: int | None) -> Feedback:
    name = None if index is None else f"species {index}"
    return record_feedback(
        session,
        prediction.photo_id,
        prediction.id,
        user_id,
        index,
        name,
        not_a_flower=index is None,
    )


def name_it(session: Session, user: int, message_id: int, species: NewSpecies) -> None:
    """`user` photographs something and labels it with the new species (test_new_species.py
    names species this way too)."""
    prediction = predicted(session, photo(session, user, message_id), 3)
    record_feedback(
        session,
        prediction.photo_id,
        prediction.id,
        user,
        species=species.name,
        new_species_id=species.id,
    )


def counts(session: Session) -> dict[str, int]:
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (User, Photo, Prediction, Feedback)
    }


def test_migrations_create_the_schema_the_models_describe(db: Database) -> None:
    with db.engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert tables == {
        "alembic_version",
        "users",
        "photos",
        "predictions",
        "feedback",
        "model_versions",
        "retrain_lock",
        "pending_questions",
        "photo_requests",
        "instance_settings",
        "new_species",
        "albums",
        "album_predictions",
        "naming_rights",
        "model_files",
        "model_version_files",
        "identification_requests",
        "identifications",
        "webapp_sends",
    }
    assert differences == []
    with db.engine.connect() as connection:
        columns = {
            table: {c["name"]: c for c in inspect(connection).get_columns(table)}
            for table in ("photos", "predictions")
        }
    # Migrations 0003 and 0007: nullable, since rows stored before them did not record them.
    nullable = [("photos", "width"), ("photos", "height"), ("predictions", "verdict")]
    nullable += [("predictions", "answer_chat_id"), ("predictions", "answer_message_id")]
    for table, name in nullable:
        assert columns[table][name]["nullable"], (table, name)
    assert "shape" not in columns["photos"]
    db.upgrade()  # at head already: a no-op, as on every bot start


def migrate(database: Database, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def store_rows_at_0002(database: Database, features: np.ndarray) -> None:
    """A user, a photo, its prediction and feedback, written with the schema of revision 0002."""
    database.upgrade("0002")
    created = "2026-05-01 12:00:00+00:00"
    rows = [
        (
            "INSERT INTO users (id, created_at, excluded_from_training)"
            " VALUES (:user, :created, false)",
            {},
        ),
        (
            "INSERT INTO photos (id, user_id, chat_id, message_id, content_hash, image,"
            " embedding, embedding_shape, created_at)"
            " VALUES (1, :user, :user, 5, :hash, :image, :embedding, '4,1280', :created)",
            {"hash": "cd" * 32, "image": b"jpeg", "embedding": features.tobytes()},
        ),
        (
            "INSERT INTO predictions (id, photo_id, model_version, top5, latency_ms, created_at)"
            " VALUES (1, 1, 'v0', :top5, 9.5, :created)",
            {"top5": '[{"species": "rose", "index": 73, "confidence": 0.5}]'},
        ),
        (
            "INSERT INTO feedback (id, photo_id, prediction_id, user_id, species_index, species,"
            " not_a_flower, created_at, updated_at)"
            " VALUES (1, 1, 1, :user, 73, 'rose', false, :created, :created)",
            {},
        ),
    ]
    with database.engine.begin() as connection:
        for sql, values in rows:
            connection.execute(text(sql), {"user": ALICE, "created": created, **values})


ONE_ROW_EACH = {"users": 1, "photos": 1, "predictions": 1, "feedback": 1}  # store_rows_at_0002's


def row_counts(database: Database) -> dict[str, int]:
    with database.engine.connect() as connection:
        return {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("users", "photos", "predictions", "feedback")
        }


@pytest.fixture
def upgraded(url: str) -> Iterator[Database]:
    """A database that got its rows at revision 0002 and was then upgraded: the migration tests
    below start from it."""
    database = Database(url)
    store_rows_at_0002(database, embedding(7))
    database.upgrade()
    yield database
    database.dispose()


def test_rows_stored_before_0003_survive_it_without_verdict_or_size(upgraded: Database) -> None:
    assert row_counts(upgraded) == ONE_ROW_EACH
    with upgraded.session() as session:
        stored = session.get(Photo, 1)
        assert stored is not None
        assert (stored.message_id, stored.width, stored.height) == (5, None, None)
        np.testing.assert_array_equal(stored.features, embedding(7))
        prediction = prediction_by_id(session, 1)
        assert prediction is not None
        assert (prediction.model_version, prediction.verdict) == ("v0", None)
        assert prediction.top5 == [{"species": "rose", "index": 73, "confidence": 0.5}]
        (example,) = labelled_examples(session)
        assert (example.photo_id, example.user_id, example.species_index) == (1, ALICE, 73)


def test_downgrading_0003_drops_its_columns_and_keeps_every_row(upgraded: Database) -> None:
    with upgraded.session() as session:
        prediction = prediction_by_id(session, 1)
        assert prediction is not None
        prediction.verdict = "sure"
        prediction.photo.width, prediction.photo.height = 800, 600
    migrate(upgraded, "0002", down=True)
    with upgraded.engine.connect() as connection:
        assert "verdict" not in {c["name"] for c in inspect(connection).get_columns("predictions")}
        photo_columns = {c["name"] for c in inspect(connection).get_columns("photos")}
        assert not {"width", "height"} & photo_columns
    assert row_counts(upgraded) == ONE_ROW_EACH


def test_answers_stored_before_0007_keep_their_rows_and_no_message(upgraded: Database) -> None:
    with upgraded.session() as session:
        prediction = prediction_by_id(session, 1)
        assert prediction is not None
        assert (prediction.answer_chat_id, prediction.answer_message_id) == (None, None)
        # No message stored: a tap is held to the photo's chat (Alice's private chat).
        assert tapped_on_its_answer(prediction, ALICE, 999)
        assert not tapped_on_its_answer(prediction, BOB, 999)
        answer_sent_as(session, 1, ALICE, 6)
        allow_naming(session, ALICE, 1)
    migrate(upgraded, "0006", down=True)
    with upgraded.engine.connect() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("predictions")}
        assert not {"answer_chat_id", "answer_message_id"} & columns
        assert "naming_rights" not in inspect(connection).get_table_names()
    assert row_counts(upgraded) == ONE_ROW_EACH


def test_upgrade_does_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    database = Database(f"sqlite:///{tmp_path / 'elsewhere.sqlite'}")
    database.upgrade()
    with database.session() as session:
        assert ensure_user(session, ALICE).id == ALICE
    database.dispose()


def test_sqlite_uses_wal_and_enforces_foreign_keys(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'wal.sqlite'}")
    database.upgrade()
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        # 1: NORMAL, the log synced at checkpoints rather than at every commit.
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    database.dispose()
    # WAL is a property of the file: a plain connection sees it too.
    with sqlite3.connect(tmp_path / "wal.sqlite") as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_rows_round_trip_with_their_values(db: Database) -> None:
    features = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    scores = [{"species": "rose", "index": np.int64(73), "confidence": np.float32(0.75)}]
    with db.session() as session:
        user = ensure_user(session, ALICE, "alice", "Alice")
        stored = add_photo(
            session, ALICE, -100123, 42, "ab" * 32, b"\xff\xd8jpeg", features, size=(4032, 3024)
        )
        bare = add_photo(session, ALICE, -100123, 43, "cd" * 32, b"jpeg", features[:1])
        prediction = add_prediction(session, stored.id, "2026.06", scores, 12.5, verdict="sure")
        unjudged = add_prediction(session, bare.id, "2026.06", scores, 3.0)
        feedback = record_feedback(session, stored.id, prediction.id, ALICE, 73, "rose")
        ids = stored.id, prediction.id, feedback.id, bare.id, unjudged.id
        assert user.created_at.tzinfo is not None
    with db.session() as session:
        user = session.get(User, ALICE)
        assert user is not None
        assert (user.username, user.first_name, user.excluded_from_training) == (
            "alice",
            "Alice",
            False,
        )
        stored = session.get(Photo, ids[0])
        assert stored is not None
        assert (stored.user_id, stored.chat_id, stored.message_id) == (ALICE, -100123, 42)
        assert (stored.content_hash, stored.image, stored.embedding_shape) == (
            "ab" * 32,
            b"\xff\xd8jpeg",
            "4,1280",
        )
        assert stored.features.dtype == np.float32
        np.testing.assert_array_equal(stored.features, features)
        assert (stored.width, stored.height) == (4032, 3024)
        bare = session.get(Photo, ids[3])
        assert bare is not None
        assert (bare.width, bare.height, bare.embedding_shape) == (None, None, "1,1280")
        np.testing.assert_array_equal(bare.features, features[:1])
        assert stored.created_at.tzinfo == UTC
        assert abs(stored.created_at - datetime.now(UTC)) < timedelta(minutes=1)
        prediction = session.get(Prediction, ids[1])
        assert prediction is not None
        assert prediction.top5 == [{"species": "rose", "index": 73, "confidence": 0.75}]
        assert (prediction.model_version, prediction.latency_ms) == ("2026.06", 12.5)
        assert prediction.verdict == "sure"
        unjudged = session.get(Prediction, ids[4])
        assert unjudged is not None and unjudged.verdict is None
        feedback = session.get(Feedback, ids[2])
        assert feedback is not None
        assert (feedback.photo_id, feedback.prediction_id, feedback.user_id) == (
            ids[0],
            ids[1],
            ALICE,
        )
        assert (feedback.species_index, feedback.species, feedback.not_a_flower) == (
            73,
            "rose",
            False,
        )


def test_ensure_user_keeps_the_row_and_follows_name_changes(db: Database) -> None:
    with db.session() as session:
        created = ensure_user(session, ALICE, "alice", "Alice").created_at
        set_excluded(session, ALICE, True)
    with db.session() as session:
        user = ensure_user(session, ALICE, "alice_b", "Alice B")
        assert (user.username, user.first_name, user.created_at) == ("alice_b", "Alice B", created)
        assert user.excluded_from_training  # an admin's decision outlives renames
        assert counts(session)["users"] == 1


def test_lookups_find_the_latest_row(db: Database) -> None:
    with db.session() as session:
        first, second = photo(session, ALICE, 1), photo(session, ALICE, 2)
        photo(session, BOB, 3)
        redelivered = photo(session, ALICE, 2)  # the same message stored again
        old, new = predicted(session, second, 1), predicted(session, second, 2)
        assert last_photo(session, ALICE) is redelivered
        assert photo_by_message(session, ALICE, 1) is first
        assert photo_by_message(session, ALICE, 2) is redelivered
        assert photo_by_message(session, BOB, 1) is None
        assert last_photo(session, 404) is None
        assert prediction_by_id(session, old.id) is old
        assert prediction_by_id(session, new.id) is new
        assert prediction_by_id(session, new.id + 1000) is None
        gone = old.id
    with db.session() as session:
        delete_older_than(session, NOW + timedelta(days=1))  # every photo, so every prediction
    with db.session() as session:
        assert prediction_by_id(session, gone) is None


def test_a_second_answer_replaces_the_first(db: Database) -> None:
    with db.session() as session:
        prediction = predicted(session, photo(session, ALICE, 1), 5, 6)
        first = answer(session, prediction, ALICE, 5)
        first_id, created = first.id, first.created_at
    with db.session() as session:
        second = answer(session, prediction, ALICE, 6)
        assert (second.id, second.created_at) == (first_id, created)
        assert (second.species_index, second.species, second.not_a_flower) == (
            6,
            "species 6",
            False,
        )
        assert second.updated_at > created
    with db.session() as session:
        answer(session, prediction, ALICE, None)
        rows = session.scalars(select(Feedback)).all()
        assert [(f.species_index, f.species, f.not_a_flower) for f in rows] == [(None, None, True)]


def test_feedback_must_be_consistent(db: Database) -> None:
    with db.session() as session:
        prediction = predicted(session, photo(session, ALICE, 1), 5)
        with pytest.raises(ValueError, match="together"):
            record_feedback(session, prediction.photo_id, prediction.id, ALICE, 5, None)
        with pytest.raises(ValueError, match="contradicts"):
            record_feedback(session, prediction.photo_id, prediction.id, ALICE, 5, "x", True)
        with pytest.raises(ValueError, match="at least one"):
            add_prediction(session, prediction.photo_id, "v1", [], 1.0)


def test_features_encoding_is_float32_bytes_and_their_shape() -> None:
    features = np.arange(6, dtype=np.float64).reshape(2, 3) / 4
    data, shape = encode_features(features)
    assert (len(data), shape) == (24, "2,3")
    assert data == features.astype(np.float32).tobytes()
    decoded = decode_features(data, shape)
    assert decoded.dtype == np.float32 and decoded.shape == (2, 3)
    np.testing.assert_array_equal(decoded, features)
    with pytest.raises(ValueError, match="float32"):
        decode_features(b"\0" * 8, "3")


def test_feedback_survives_reopening_the_database(url: str) -> None:
    first = Database(url)
    first.upgrade()
    with first.session() as session:
        prediction = predicted(session, photo(session, ALICE, 1), 5)
        answer(session, prediction, ALICE, 7)
    first.dispose()
    reopened = Database(url)
    reopened.upgrade()
    with reopened.session() as session:
        feedback = session.scalars(select(Feedback)).one()
        assert (feedback.user_id, feedback.species_index, feedback.species) == (
            ALICE,
            7,
            "species 7",
        )
    reopened.dispose()


def test_a_failed_session_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as session:
        photo(session, ALICE, 1)
        raise RuntimeError
    with db.session() as session:
        assert counts(session) == {"users": 0, "photos": 0, "predictions": 0, "feedback": 0}


def alice_and_bob(session: Session) -> None:
    """Alice: two photos, one answered by her and by Bob. Bob: one photo, answered by Alice
    and by him. Every photo has two predictions."""
    ensure_user(session, BOB)
    for user_id, message_id in ((ALICE, 1), (ALICE, 2), (BOB, 3)):
        stored = photo(session, user_id, message_id)
        predicted(session, stored, 1)
        prediction = predicted(session, stored, 2)
        if message_id != 2:
            answer(session, prediction, ALICE, 2)
            answer(session, prediction, BOB, 3)


def test_forget_user_removes_everything_of_theirs_and_nothing_else(db: Database) -> None:
    with db.session() as session:
        alice_and_bob(session)
    with db.session() as session:
        deleted = forget_user(session, ALICE)
    # Her feedback on Bob's photo goes; so does Bob's feedback on her photo, which is gone.
    assert deleted == {
        "identifications": 0,
        "asked": 0,
        "feedback": 3,
        "predictions": 4,
        "photos": 2,
        "users": 1,
    }
    with db.session() as session:
        assert counts(session) == {"users": 1, "photos": 1, "predictions": 2, "feedback": 1}
        assert session.scalars(select(Photo.user_id)).all() == [BOB]
        assert session.scalars(select(Feedback.user_id)).all() == [BOB]
        assert forget_user(session, ALICE) == {
            "identifications": 0,
            "asked": 0,
            "feedback": 0,
            "predictions": 0,
            "photos": 0,
            "users": 0,
        }


@pytest.mark.parametrize("how", ["orm", "sql"])
def test_deleting_a_user_cascades(db: Database, how: str) -> None:
    with db.session() as session:
        alice_and_bob(session)
    with db.session() as session:
        if how == "orm":
            alice = session.get(User, ALICE)
            assert alice is not None
            assert len(alice.photos) == 2  # loaded, so the ORM deletes these itself
            session.delete(alice)
        else:  # the database's ON DELETE CASCADE alone
            session.execute(delete(User).where(User.id == ALICE))
    with db.session() as session:
        assert counts(session) == {"users": 1, "photos": 1, "predictions": 2, "feedback": 1}


def test_retention_deletes_only_old_photos(db: Database) -> None:
    with db.session() as session:
        for message_id, days in ((1, 40), (2, 31), (3, 29), (4, 0)):
            stored = photo(session, ALICE, message_id, timedelta(days=days))
            answer(session, predicted(session, stored, 1), ALICE, 1)
    with db.session() as session:
        assert delete_older_than(session, NOW - timedelta(days=30)) == 2
    with db.session() as session:
        assert session.scalars(select(Photo.message_id).order_by(Photo.id)).all() == [3, 4]
        assert counts(session) == {"users": 1, "photos": 2, "predictions": 2, "feedback": 2}
        assert delete_older_than(session, NOW - timedelta(days=30)) == 0


def test_stats_on_a_small_data_set(db: Database) -> None:
    """Seven photos from three users over ten days; five answered, one of them twice."""
    carol = 30_000_000_003
    answered = [  # user, age in hours, model, top-1, the user's answer (None: not a flower)
        (ALICE, 1, "v1", 1, 1),
        (ALICE, 5, "v1", 1, 2),
        (BOB, 30, "v1", 3, 2),
        (BOB, 50, "v2", 1, 1),
        (carol, 100, "v2", 4, None),
    ]
    with db.session() as session:
        predictions = []
        for message_id, (user_id, hours, version, top1, chosen) in enumerate(answered):
            stored = photo(session, user_id, message_id, timedelta(hours=hours))
            predictions.append(predicted(session, stored, top1, 9, version=version))
            answer(session, predictions[-1], user_id, chosen)
        # Bob agrees with Alice on her second photo: confusions count answers, not photos.
        answer(session, predictions[1], BOB, 2)
        for message_id, hours in ((10, 200), (11, 240)):
            predicted(session, photo(session, carol, message_id, timedelta(hours=hours)), 1)
    with db.session() as session:
        report = stats(session, NOW)
    assert (report.photos_last_day, report.users_last_day) == (2, 1)
    assert (report.photos_last_week, report.users_last_week) == (5, 3)
    assert report.feedback_rate == pytest.approx(5 / 7)
    assert report.accuracy == {"v1": ModelAccuracy(4, 1), "v2": ModelAccuracy(1, 1)}
    assert report.accuracy["v1"].rate == 0.25
    assert report.confusions == [
        Confusion("species 1", "species 2", 2),
        Confusion("species 3", "species 2", 1),
    ]
    assert report.not_a_flower == 1


def test_stats_of_an_empty_database(db: Database) -> None:
    with db.session() as session:
        report = stats(session, NOW)
    assert (report.photos_last_week, report.feedback_rate, report.not_a_flower) == (0, 0.0, 0)
    assert (report.accuracy, report.confusions) == ({}, [])


def test_labelled_examples_honour_exclusion(db: Database) -> None:
    carol = 30_000_000_003
    with db.session() as session:
        alice_and_bob(session)  # photos 1..3; labels: Alice 2, Bob 3
        stored = photo(session, carol, 4)
        answer(session, predicted(session, stored, 1), carol, None)  # names no species
        ids = session.scalars(select(Photo.id).order_by(Photo.id)).all()
    with db.session() as session:
        examples = labelled_examples(session)
        assert [(e.photo_id, e.user_id, e.species_index) for e in examples] == [
            (ids[0], ALICE, 2),
            (ids[0], BOB, 3),
            (ids[2], ALICE, 2),
            (ids[2], BOB, 3),
        ]
        assert examples[0].features.shape == SHAPE
        np.testing.assert_array_equal(examples[0].features, embedding(1))
        np.testing.assert_array_equal(examples[2].features, embedding(3))
        assert [e.photo_id for e in labelled_examples(session, since_id=ids[0])] == [ids[2]] * 2
        assert set_excluded(session, BOB, True)
        assert not set_excluded(session, 404, True)
    with db.session() as session:
        # Bob's labels go, and so does Alice's label on Bob's photo.
        examples = labelled_examples(session)
        assert [(e.photo_id, e.user_id) for e in examples] == [(ids[0], ALICE)]
        set_excluded(session, BOB, False)
    with db.session() as session:
        assert len(labelled_examples(session)) == 4


def test_labelled_examples_are_counted_and_streamed(db: Database) -> None:
    """iter_labelled_examples reads in chunks of 1000 (yield_per): more labels than that come
    back as labelled_examples lists them, and count_labelled_examples counts the same rows."""
    carol = 30_000_000_003
    n = 1_050
    with db.session() as session:
        assert count_labelled_examples(session) == 0
        assert list(iter_labelled_examples(session)) == []
        for user_id in (ALICE, BOB, carol):
            ensure_user(session, user_id)
        for k in range(n):
            user_id = (ALICE, BOB, carol)[k % 3]
            small = np.full((2, 3), k, np.float32)  # small features keep 1,050 photos quick
            stored = add_photo(session, user_id, user_id, k, f"{k:064x}", b"", small)
            prediction = predicted(session, stored, 1)
            index = None if k % 7 == 0 else k % 5  # every 7th answer names no species
            answer(session, prediction, user_id, index)
        ids = session.scalars(select(Photo.id).order_by(Photo.id)).all()
    named = [k for k in range(n) if k % 7]
    with db.session() as session:
        streamed = iter_labelled_examples(session)
        assert isinstance(streamed, Iterator) and not isinstance(streamed, list)
        streamed = list(streamed)
        listed = labelled_examples(session)
        assert count_labelled_examples(session) == len(streamed) == len(listed) == len(named)
        assert [(e.photo_id, e.user_id, e.species_index) for e in streamed] == [
            (e.photo_id, e.user_id, e.species_index) for e in listed
        ]
        assert [e.photo_id for e in streamed] == [ids[k] for k in named]  # oldest first
        assert [e.species_index for e in streamed] == [k % 5 for k in named]
        for example, k in zip(streamed, named, strict=True):
            np.testing.assert_array_equal(example.features, np.full((2, 3), k, np.float32))
        later = ids[n // 2]
        assert count_labelled_examples(session, since_id=later) == len(
            list(iter_labelled_examples(session, since_id=later))
        )
        assert count_labelled_examples(session, since_id=later) == sum(
            1 for k in named if ids[k] > later
        )
        assert set_excluded(session, BOB, True)
    with db.session() as session:
        kept = [k for k in named if (ALICE, BOB, carol)[k % 3] != BOB]
        assert count_labelled_examples(session) == len(kept)
        assert [e.photo_id for e in iter_labelled_examples(session)] == [ids[k] for k in kept]


def an_album(session: Session, user_id: int, *predictions: Prediction, age: timedelta) -> int:
    album = add_album(
        session,
        user_id=user_id,
        chat_id=user_id,
        media_group_id="g1",
        model_version="v1",
        top5=top5(3, 1),
        verdict="sure",
        left_out=[{"position": 3, "reason": "unreadable"}],
        latency_ms=1000.0,
        prediction_ids=[p.id for p in predictions],
    )
    album.created_at = NOW - age
    return album.id


def test_a_tap_counts_only_from_the_message_its_answer_was_sent_as(db: Database) -> None:
    with db.session() as session:
        sent = predicted(session, photo(session, ALICE, 1), 3)
        sending = predicted(session, photo(session, ALICE, 2), 3)
        answer_sent_as(session, sent.id, ALICE, 7)
        answer_sent_as(session, 10_000, ALICE, 8)  # a prediction deleted meanwhile: no error
    with db.session() as session:
        stored = prediction_by_id(session, sent.id)
        assert stored is not None
        assert (stored.answer_chat_id, stored.answer_message_id) == (ALICE, 7)
        assert tapped_on_its_answer(stored, ALICE, 7)
        assert not tapped_on_its_answer(stored, ALICE, 8)  # another message of the chat
        assert not tapped_on_its_answer(stored, BOB, 7)  # the same message id elsewhere
        unsent = prediction_by_id(session, sending.id)
        assert unsent is not None
        assert tapped_on_its_answer(unsent, ALICE, 9)  # no message yet: the photo's chat
        assert not tapped_on_its_answer(unsent, BOB, 9)


def test_naming_rights_are_per_user_and_go_with_user_and_photo(db: Database) -> None:
    with db.session() as session:
        alices = predicted(session, photo(session, ALICE, 1), 3)
        old = predicted(session, photo(session, ALICE, 2, age=timedelta(days=40)), 3)
        bobs = predicted(session, photo(session, BOB, 3), 3)
        for prediction in (alices, old, bobs):
            allow_naming(session, ALICE, prediction.id)
        allow_naming(session, ALICE, alices.id)  # "None of these" tapped twice
        allow_naming(session, BOB, alices.id)
    with db.session() as session:
        assert may_name(session, ALICE, alices.id) and may_name(session, BOB, alices.id)
        assert not may_name(session, BOB, bobs.id)
        assert delete_older_than(session, NOW - timedelta(days=30)) == 1
    with db.session() as session:
        assert not may_name(session, ALICE, old.id)
        forget_user(session, BOB)  # his photo goes, and his right to name hers
    with db.session() as session:
        assert may_name(session, ALICE, alices.id)
        assert not may_name(session, BOB, alices.id) and not may_name(session, ALICE, bobs.id)


def test_an_album_links_its_photos_predictions(db: Database) -> None:
    with db.session() as session:
        first = predicted(session, photo(session, ALICE, 1), 3)
        second = predicted(session, photo(session, ALICE, 2), 1)
        alone = predicted(session, photo(session, ALICE, 3), 1)
        album_id = an_album(session, ALICE, first, second, age=timedelta())
    with db.session() as session:
        album = album_of(session, second.id)
        assert album is not None and album.id == album_id
        assert album.left_out == [{"position": 3, "reason": "unreadable"}]
        assert album_of(session, alone.id) is None
        prediction = prediction_by_id(session, first.id)
        assert [p.id for p in answered_together(session, prediction)] == [first.id, second.id]
        lone = prediction_by_id(session, alone.id)
        assert [p.id for p in answered_together(session, lone)] == [alone.id]
        assert latest_album(session, ALICE, "g1").id == album_id
        assert latest_album(session, BOB, "g1") is None


def test_albums_go_with_their_user_and_with_retention(db: Database) -> None:
    with db.session() as session:
        old = predicted(session, photo(session, ALICE, 1, age=timedelta(days=200)), 3)
        new = predicted(session, photo(session, BOB, 2), 3)
        an_album(session, ALICE, old, age=timedelta(days=200))
        an_album(session, BOB, new, age=timedelta())
    with db.session() as session:
        assert delete_albums_older_than(session, NOW - timedelta(days=180)) == 1
        assert session.scalars(select(Album.user_id)).all() == [BOB]
    with db.session() as session:
        forget_user(session, BOB)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Album)) == 0


def model_folder(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_model_files_round_trip_and_shared_content_is_stored_once(
    db: Database, tmp_path: Path
) -> None:
    base = np.random.default_rng(0).bytes(300_000)  # what retrained versions share
    first = model_folder(tmp_path / "v1", {"head.weights.h5": b"head 1", "base.npz": base})
    second = model_folder(tmp_path / "v2", {"head.weights.h5": b"head 2", "base.npz": base})
    with db.session() as session:
        v1 = add_version(session, "v1", str(first), ModelStatus.SERVING, {})
        v2 = add_version(session, "v2", str(second), ModelStatus.CANDIDATE, {})
        v0 = add_version(session, "v0", "/elsewhere", ModelStatus.RETIRED, {})
        assert store_model_files(session, v1, first) == len(base) + 6
        assert store_model_files(session, v2, second) == 6  # only the new head
        assert store_model_files(session, v2, second) == 0  # again: nothing new
        assert session.scalar(select(func.count()).select_from(ModelFile)) == 3
        assert [has_model_files(session, v) for v in (v0, v1, v2)] == [False, True, True]
    with db.session() as session:
        out = tmp_path / "fetched"
        out.mkdir()
        assert write_model_files(session, v2, out) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        "head.weights.h5": b"head 2",
        "base.npz": base,
    }


def test_a_damaged_model_file_is_refused(db: Database, tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "v1", {"head.weights.h5": b"head"})
    with db.session() as session:
        row = add_version(session, "v1", str(folder), ModelStatus.SERVING, {})
        store_model_files(session, row, folder)
        session.execute(update(ModelFile).values(data=b"bit rot"))
    with (
        db.session() as session,
        pytest.raises(ValueError, match=r"v1: head\.weights\.h5 is damaged"),
    ):
        write_model_files(session, row, tmp_path)


def test_labelled_photos_for_export_count_labellers_and_honour_exclusion(db: Database) -> None:
    carol = 30_000_000_003
    with db.session() as session:
        alice_and_bob(session)  # photos 1 and 3 named 2 by Alice and 3 by Bob; photo 2 none
        stored = photo(session, carol, 4)
        prediction = predicted(session, stored, 5, version="v2")
        answer(session, prediction, carol, 5)
        answer(session, prediction, ALICE, 5)
        answer(session, prediction, BOB, None)  # not a flower: no species
        tulip, blob = add_new_species(session, "tulip", "Tulip"), add_new_species(session, "b", "B")
        approve(session, tulip, NOW)
        for species, message_id in ((tulip, 5), (blob, 6)):  # approved, and a mere candidate
            name_it(session, carol, message_id, species)
        ids = session.scalars(select(Photo.id).order_by(Photo.id)).all()

    def exported() -> list[tuple[int, str, int, str, bytes]]:
        with db.session() as session:
            return [tuple(row) for row in iter_labelled_jpegs(session)]

    # One row per photo and species named, with the version of the answer labelled.
    assert exported() == [
        (ids[0], "species 2", 1, "v1", b"jpeg"),
        (ids[0], "species 3", 1, "v1", b"jpeg"),
        (ids[2], "species 2", 1, "v1", b"jpeg"),
        (ids[2], "species 3", 1, "v1", b"jpeg"),
        (ids[3], "species 5", 2, "v2", b"jpeg"),
        (ids[4], "tulip", 1, "v1", b"jpeg"),
    ]
    with db.session() as session:
        set_excluded(session, BOB, True)
    # Bob's labels and his photo go; Alice's label on it too.
    assert [(row[0], row[1], row[2]) for row in exported()] == [
        (ids[0], "species 2", 1),
        (ids[3], "species 5", 2),
        (ids[4], "tulip", 1),
    ]


def test_a_webapp_key_is_claimed_once_and_freed_only_while_nothing_is_stored(db: Database) -> None:
    top = [{"index": 3, "confidence": 0.9}]
    with db.session() as session:
        first = claim_send(session, 7, ("user7", "Seven"), "key-1", top, "sure")
        assert first is not None
        assert claim_send(session, 7, ("user7", "Seven"), "key-1", top, "sure") is None
        # Another user's same key is theirs.
        assert claim_send(session, 8, (None, "Eight"), "key-1", top, None) is not None
        assert sent_prediction(session, 7, "key-1") is None  # claimed, not yet stored
        release_send(session, first)
        again = claim_send(session, 7, ("user7", "Seven"), "key-1", top, "sure")
        assert again is not None
        prediction = predicted(session, photo(session, 7, 1), 3)
        send_stored(session, again, prediction.id)
        release_send(session, again)  # stored: the key stays taken
        assert sent_prediction(session, 7, "key-1") == prediction.id
        assert claim_send(session, 7, ("user7", "Seven"), "key-1", top, "sure") is None
        # The photo's retention (or /forget) takes the send with it.
        assert delete_older_than(session, NOW + timedelta(days=1)) == 1
        assert sent_prediction(session, 7, "key-1") is None
        assert claim_send(session, 7, ("user7", "Seven"), "key-1", top, "sure") is not None
