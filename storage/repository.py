"""What the bot reads and writes, on plain values. Every function works inside the caller's
session (see Database.session()) and leaves committing to it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar, cast

import numpy as np
from sqlalchemy import CursorResult, Delete, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import (
    Base,
    Feedback,
    Identification,
    IdentificationRequest,
    Photo,
    Prediction,
    User,
    encode_features,
    utcnow,
)

# Upserts need INSERT ... ON CONFLICT, which these two dialects spell the same way.
_UPSERT_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert_insert(session: Session, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that takes ON CONFLICT DO UPDATE / DO NOTHING on the session's database."""
    dialect = session.get_bind().dialect.name
    if dialect not in _UPSERT_INSERTS:
        raise NotImplementedError(f"upserts are written for SQLite and PostgreSQL, not {dialect}")
    return _UPSERT_INSERTS[dialect](model)


T = TypeVar("T", bound=Base)


def _upserted(session: Session, model: type[T], statement: postgresql.Insert | sqlite.Insert) -> T:
    # populate_existing: an instance already in the session takes the row's new values.
    returning = statement.returning(model)
    return session.scalars(returning, execution_options={"populate_existing": True}).one()


def _deleted(session: Session, statement: Delete) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def ensure_user(
    session: Session, user_id: int, username: str | None = None, first_name: str | None = None
) -> User:
    """The user, created on first sight; username and first name follow Telegram's latest."""
    names = {"username": username, "first_name": first_name}
    # SQLAlchemy 2.0 cannot cache an ON CONFLICT statement (it is compiled afresh each time, a
    # third of the storage work of a photo), and every photo calls this: a known user with the
    # same names is read by primary key instead. The upsert keeps creation safe when two
    # processes see a new user at once.
    user = session.get(User, user_id)
    if user is not None and (user.username, user.first_name) == (username, first_name):
        return user
    statement = upsert_insert(session, User).values(id=user_id, **names)
    statement = statement.on_conflict_do_update(index_elements=[User.id], set_=names)
    return _upserted(session, User, statement)


def user_language(session: Session, user_id: int) -> str | None:
    """The language the user chose with /language; None: follow Telegram's language_code."""
    return session.scalar(select(User.language).where(User.id == user_id))


def set_language(session: Session, user_id: int, language: str | None) -> None:
    """Store the user's choice (the user must exist: ensure_user first)."""
    user = session.get(User, user_id)
    if user is None:
        raise LookupError(f"no user {user_id}")
    user.language = language


def add_photo(
    session: Session,
    user_id: int,
    chat_id: int,
    message_id: int,
    content_hash: str,
    image_jpeg: bytes,
    features: np.ndarray,
    size: tuple[int, int] | None = None,
) -> Photo:
    """A photo of a known user (ensure_user first), with its backbone features and the
    (width, height) it was sent at."""
    embedding, embedding_shape = encode_features(features)
    width, height = size or (None, None)
    photo = Photo(
        user_id=user_id,
        chat_id=chat_id,
        message_id=message_id,
        content_hash=content_hash,
        image=image_jpeg,
        embedding=embedding,
        embedding_shape=embedding_shape,
        width=width,
        height=height,
    )
    session.add(photo)
    session.flush()  # the caller needs the id for the prediction and the buttons
    return photo


def add_prediction(
    session: Session,
    photo_id: int,
    model_version: str,
    top5: Iterable[dict[str, Any]],
    latency_ms: float,
    verdict: str | None = None,
) -> Prediction:
    """top5: {"species", "index", "confidence"} best first. Values are converted to plain
    str/int/float, so NumPy scalars are welcome (JSON could not store them)."""
    scores = [
        {
            "species": str(s["species"]),
            "index": int(s["index"]),
            "confidence": float(s["confidence"]),
        }
        for s in top5
    ]
    if not scores:
        raise ValueError("a prediction needs at least one species")
    prediction = Prediction(
        photo_id=photo_id,
        model_version=model_version,
        top5=scores,
        verdict=verdict,
        latency_ms=float(latency_ms),
    )
    session.add(prediction)
    session.flush()
    return prediction


def record_feedback(
    session: Session,
    photo_id: int,
    prediction_id: int,
    user_id: int,
    species_index: int | None = None,
    species: str | None = None,
    not_a_flower: bool = False,
    new_species_id: int | None = None,
) -> Feedback:
    """The user's answer about a photo, replacing any earlier one of theirs on it.

    A known species is named by index and name together, a new one (storage.new_species) by its
    id and name; "not a flower" names none; nothing at all means "wrong, but I don't know
    what it is"."""
    named = species_index is not None or new_species_id is not None
    if named != (species is not None) or (species_index is not None and new_species_id):
        raise ValueError("give the name together with either species_index or new_species_id")
    if not_a_flower and named:
        raise ValueError("not_a_flower contradicts a named species")
    now = utcnow()
    answer = {
        "prediction_id": prediction_id,
        "species_index": species_index,
        "species": species,
        "new_species_id": new_species_id,
        "not_a_flower": not_a_flower,
        "updated_at": now,
    }
    # One atomic statement: a double-tapped button must not fail on the unique constraint.
    statement = upsert_insert(session, Feedback).values(
        photo_id=photo_id, user_id=user_id, created_at=now, **answer
    )
    statement = statement.on_conflict_do_update(
        index_elements=[Feedback.photo_id, Feedback.user_id], set_=answer
    )
    return _upserted(session, Feedback, statement)


def last_photo(session: Session, user_id: int) -> Photo | None:
    return session.scalar(
        select(Photo).where(Photo.user_id == user_id).order_by(Photo.id.desc()).limit(1)
    )


def photo_by_message(session: Session, chat_id: int, message_id: int) -> Photo | None:
    return session.scalar(
        select(Photo)
        .where(Photo.chat_id == chat_id, Photo.message_id == message_id)
        .order_by(Photo.id.desc())
        .limit(1)
    )


def prediction_by_id(session: Session, prediction_id: int) -> Prediction | None:
    """The answer a feedback button was under (None once its photo is deleted)."""
    return session.get(Prediction, prediction_id)


def answer_sent_as(session: Session, prediction_id: int, chat_id: int, message_id: int) -> None:
    """Remember the message that carries the prediction's buttons (see tapped_on_its_answer)."""
    prediction = session.get(Prediction, prediction_id)
    if prediction is not None:  # deleted meanwhile (/forget): nothing left to tap
        prediction.answer_chat_id, prediction.answer_message_id = chat_id, message_id


def tapped_on_its_answer(prediction: Prediction, chat_id: int, message_id: int) -> bool:
    """Whether a button naming this prediction was tapped under its own answer message.

    Telegram does not check callback data against the buttons of the message it comes from, so
    anyone can send any prediction id; only the message is Telegram's word. A prediction with no
    message stored (answered before revision 0007, or its answer is being sent right now) is
    held to the chat its photo was sent in."""
    if prediction.answer_message_id is None:
        return prediction.photo.chat_id == chat_id
    return (prediction.answer_chat_id, prediction.answer_message_id) == (chat_id, message_id)


def forget_user(session: Session, user_id: int) -> dict[str, int]:
    """Delete the user and everything of theirs: their photos (with embeddings), the
    predictions and anyone's feedback on those photos, and their feedback on other photos; the
    photos they asked identifiers about leave the queue with everyone's answers on them, and
    their own answers as an identifier go too."""
    their_photos = select(Photo.id).where(Photo.user_id == user_id)
    their_requests = select(IdentificationRequest.id).where(
        IdentificationRequest.photo_id.in_(their_photos)
    )
    statements = {
        "identifications": delete(Identification).where(
            or_(
                Identification.identifier_id == user_id,
                Identification.request_id.in_(their_requests),
            )
        ),
        "asked": delete(IdentificationRequest).where(
            IdentificationRequest.photo_id.in_(their_photos)
        ),
        "feedback": delete(Feedback).where(
            or_(Feedback.user_id == user_id, Feedback.photo_id.in_(their_photos))
        ),
        "predictions": delete(Prediction).where(Prediction.photo_id.in_(their_photos)),
        "photos": delete(Photo).where(Photo.user_id == user_id),
        "users": delete(User).where(User.id == user_id),
    }
    return {table: _deleted(session, statement) for table, statement in statements.items()}


def delete_older_than(session: Session, cutoff: datetime) -> int:
    """Retention: delete photos stored before cutoff; their predictions and feedback go with
    them through ON DELETE CASCADE. Returns the number of photos deleted."""
    return _deleted(session, delete(Photo).where(Photo.created_at < cutoff))
