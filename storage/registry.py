"""The model registry and the retraining lock, on plain values (no Keras here)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session

from storage.models import Feedback, ModelVersion, RetrainLock, utcnow
from storage.repository import upsert_insert

LOCK_ID = 1


class ModelStatus(StrEnum):
    SERVING = "serving"
    CANDIDATE = "candidate"  # passed the gate; promoted in the same transaction
    REJECTED = "rejected"  # failed the gate; kept with its report
    RETIRED = "retired"  # served once; /rollback can bring it back


def add_version(
    session: Session, version: str, path: str, status: ModelStatus, metrics: dict[str, Any]
) -> ModelVersion:
    row = ModelVersion(version=version, path=path, status=status, metrics=metrics)
    session.add(row)
    session.flush()
    return row


def register_first_version(
    session: Session, version: str, path: str, metrics: dict[str, Any]
) -> ModelVersion:
    """On a registry with no serving model, record `version` and serve it. Two processes doing
    this at once on PostgreSQL: the second waits on the unique version, inserts nothing, and
    finds the first one's serving row."""
    statement = upsert_insert(session, ModelVersion).values(
        version=version, path=path, status=ModelStatus.CANDIDATE, metrics=metrics
    )
    session.execute(statement.on_conflict_do_nothing(index_elements=["version"]))
    serving = serving_version(session) or promote(session, version)
    assert serving is not None  # inserted above, or already there
    return serving


def get_version(session: Session, version: str) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.version == version))


def serving_version(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.status == ModelStatus.SERVING))


def list_versions(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def promote(session: Session, version: str) -> ModelVersion | None:
    """Make `version` the one serving model; the previous one retires. One transaction (the
    caller's), so every reader sees either the old serving model or the new one."""
    row = get_version(session, version)
    if row is None:
        return None
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.status == ModelStatus.SERVING, ModelVersion.id != row.id)
        .values(status=ModelStatus.RETIRED)
    )
    row.status = ModelStatus.SERVING
    row.promoted_at = utcnow()
    return row


def take_lock(session: Session, owner: str, now: datetime, ttl: timedelta) -> bool:
    """Atomically take the retraining lock if it is free or its holder's time has run out."""
    result = session.execute(
        update(RetrainLock)
        .where(
            RetrainLock.id == LOCK_ID,
            or_(RetrainLock.expires_at.is_(None), RetrainLock.expires_at < now),
        )
        .values(owner=owner, expires_at=now + ttl)
    )
    return cast(CursorResult[Any], result).rowcount == 1


def release_lock(session: Session, owner: str, seen_feedback_id: int | None = None) -> None:
    """Free the lock if still ours; a finished run also moves the new-labels mark."""
    values: dict[str, Any] = {"owner": None, "expires_at": None}
    if seen_feedback_id is not None:
        values["last_feedback_id"] = seen_feedback_id
    session.execute(
        update(RetrainLock)
        .where(RetrainLock.id == LOCK_ID, RetrainLock.owner == owner)
        .values(**values)
    )


def lock_holder(session: Session) -> str | None:
    return session.scalar(select(RetrainLock.owner).where(RetrainLock.id == LOCK_ID))


def newest_label_id(session: Session) -> int:
    labelled = select(func.max(Feedback.id)).where(Feedback.species_index.is_not(None))
    return session.scalar(labelled) or 0


def new_labels_since_last_run(session: Session) -> int:
    mark = select(RetrainLock.last_feedback_id).where(RetrainLock.id == LOCK_ID).scalar_subquery()
    return session.scalar(
        select(func.count())
        .select_from(Feedback)
        .where(Feedback.species_index.is_not(None), Feedback.id > mark)
    )
