"""Usage and accuracy figures for the admin, from stored photos and feedback."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from storage.identifiers import QueueStats, queue_stats
from storage.models import Feedback, Photo, Prediction


def _count(session: Session, statement: Select[tuple[int]]) -> int:
    return session.scalar(statement) or 0


@dataclass(frozen=True)
class ModelAccuracy:
    judged: int  # feedback naming a species
    correct: int  # of which the model's top-1 was that species

    @property
    def rate(self) -> float:
        return self.correct / self.judged


@dataclass(frozen=True)
class Confusion:
    predicted: str  # the model's top-1
    chosen: str  # the species the user named instead
    count: int


@dataclass(frozen=True)
class Stats:
    photos_last_day: int
    photos_last_week: int
    users_last_day: int
    users_last_week: int
    # The rest covers every stored photo (retention bounds how far back that goes).
    feedback_rate: float  # photos with any feedback / photos
    accuracy: dict[str, ModelAccuracy]  # by model version
    confusions: list[Confusion]  # most frequent first
    not_a_flower: int
    identifiers: QueueStats  # the photos users asked identifiers to name


def _activity(session: Session, now: datetime, window: timedelta) -> tuple[int, int]:
    """Photos and distinct users in (now - window, now]."""
    in_window = Photo.created_at > now - window, Photo.created_at <= now
    photos = _count(session, select(func.count(Photo.id)).where(*in_window))
    users = _count(session, select(func.count(distinct(Photo.user_id))).where(*in_window))
    return photos, users


def _judged(session: Session, top: int) -> tuple[dict[str, ModelAccuracy], list[Confusion]]:
    """Compares each species-naming feedback with the top-1 of the prediction it answered."""
    judged: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    confused: Counter[tuple[str, str]] = Counter()
    rows = session.execute(
        select(Prediction.model_version, Prediction.top5, Feedback.species_index, Feedback.species)
        .join(Feedback.prediction)
        .where(Feedback.species_index.is_not(None))
    )
    for version, top5, species_index, species in rows:
        judged[version] += 1
        if top5[0]["index"] == species_index:
            correct[version] += 1
        else:
            confused[top5[0]["species"], species] += 1
    accuracy = {version: ModelAccuracy(n, correct[version]) for version, n in judged.items()}
    # Ties broken by name, so the order never depends on the database's row order.
    ranked = sorted(confused.items(), key=lambda pair: (-pair[1], pair[0]))[:top]
    return accuracy, [Confusion(predicted, chosen, n) for (predicted, chosen), n in ranked]


def stats(session: Session, now: datetime, top_confusions: int = 10) -> Stats:
    photos_day, users_day = _activity(session, now, timedelta(days=1))
    photos_week, users_week = _activity(session, now, timedelta(days=7))
    photos = _count(session, select(func.count(Photo.id)))
    with_feedback = _count(session, select(func.count(distinct(Feedback.photo_id))))
    accuracy, confusions = _judged(session, top_confusions)
    return Stats(
        photos_last_day=photos_day,
        photos_last_week=photos_week,
        users_last_day=users_day,
        users_last_week=users_week,
        feedback_rate=with_feedback / photos if photos else 0.0,
        accuracy=accuracy,
        confusions=confusions,
        not_a_flower=_count(session, select(func.count(Feedback.id)).where(Feedback.not_a_flower)),
        identifiers=queue_stats(session),
    )
