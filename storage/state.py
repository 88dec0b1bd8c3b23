"""What every bot process must see the same way: pending questions, the photo rate limit and the
deployment's own settings. In the database rather than in one process's memory, so a restart
or a second process behind the same webhook carries on where the first left off."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from storage.models import InstanceSetting, NamingRight, PendingQuestion, PhotoRequest, User
from storage.repository import upsert_insert

RATE_WINDOW = timedelta(minutes=1)


def ask(
    session: Session, user_id: int, kind: str, prediction_id: int, expires_at: datetime
) -> None:
    """Remember that `user_id` was asked `kind` about a prediction (replacing any earlier
    question: only the latest one can be answered)."""
    values = {"kind": kind, "prediction_id": prediction_id, "expires_at": expires_at}
    statement = upsert_insert(session, PendingQuestion).values(user_id=user_id, **values)
    session.execute(statement.on_conflict_do_update(index_elements=["user_id"], set_=values))


def pending_question(session: Session, user_id: int, now: datetime) -> PendingQuestion | None:
    """The user's open question, unless it has expired."""
    question = session.get(PendingQuestion, user_id)
    return question if question is not None and question.expires_at > now else None


def take_question(session: Session, user_id: int, kind: str) -> PendingQuestion | None:
    """Close the user's question of this kind and return it, expired or not (the caller says
    which); None when there is none, or when another process took it first: a question is
    answered once."""
    question = session.get(PendingQuestion, user_id)
    if question is None or question.kind != kind:
        return None
    taken = session.execute(
        delete(PendingQuestion).where(
            PendingQuestion.user_id == user_id,
            PendingQuestion.kind == kind,
            PendingQuestion.prediction_id == question.prediction_id,
        )
    )
    return question if taken.rowcount else None


def close_question(session: Session, user_id: int, prediction_id: int | None = None) -> None:
    """Close the user's question; with `prediction_id`, only one about that prediction."""
    about = [] if prediction_id is None else [PendingQuestion.prediction_id == prediction_id]
    session.execute(delete(PendingQuestion).where(PendingQuestion.user_id == user_id, *about))


def allow_naming(session: Session, user_id: int, prediction_id: int) -> None:
    """The user tapped "None of these" under this answer: they may name its photo (the user
    must exist). Kept after the question closes: the buttons that confirm a name come later."""
    statement = upsert_insert(session, NamingRight).values(
        user_id=user_id, prediction_id=prediction_id
    )
    session.execute(statement.on_conflict_do_nothing(index_elements=["user_id", "prediction_id"]))


def may_name(session: Session, user_id: int, prediction_id: int) -> bool:
    return session.get(NamingRight, (user_id, prediction_id)) is not None


def take_photo_slot(session: Session, user_id: int, now: datetime, per_minute: int) -> bool:
    """Count a photo against the user's limit; False when the last minute is already full.

    The user's row is locked first (SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer
    anyway), so two processes cannot both take the last slot. The user must exist.
    """
    session.execute(select(User.id).where(User.id == user_id).with_for_update())
    session.execute(
        delete(PhotoRequest).where(
            PhotoRequest.user_id == user_id, PhotoRequest.at <= now - RATE_WINDOW
        )
    )
    recent = session.scalar(
        select(func.count()).select_from(PhotoRequest).where(PhotoRequest.user_id == user_id)
    )
    if (recent or 0) >= per_minute:
        return False
    session.add(PhotoRequest(user_id=user_id, at=now))
    return True


def instance_setting(session: Session, key: str, make: Callable[[], str]) -> str:
    """The deployment's value for `key`, made by `make()` the first time. Two processes starting
    together both get the one that was stored first."""
    statement = upsert_insert(session, InstanceSetting).values(key=key, value=make())
    session.execute(statement.on_conflict_do_nothing(index_elements=["key"]))
    return session.scalars(select(InstanceSetting.value).where(InstanceSetting.key == key)).one()
