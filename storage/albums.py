"""Albums: photos sent together, answered as one plant.

Each photo keeps its own row and prediction (for retraining, each photo is a labelled example);
the album keeps the combined answer and which of its photos were left out of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.models import Album, AlbumPrediction, Prediction


def add_album(
    session: Session,
    *,
    user_id: int,
    chat_id: int,
    media_group_id: str,
    model_version: str,
    top5: list[dict[str, Any]],
    verdict: str,
    left_out: list[dict[str, Any]],
    latency_ms: float,
    prediction_ids: list[int],
) -> Album:
    album = Album(
        user_id=user_id,
        chat_id=chat_id,
        media_group_id=media_group_id,
        model_version=model_version,
        top5=top5,
        verdict=verdict,
        left_out=left_out,
        latency_ms=latency_ms,
    )
    session.add(album)
    session.flush()
    session.add_all(AlbumPrediction(album_id=album.id, prediction_id=p) for p in prediction_ids)
    session.flush()
    return album


def album_of(session: Session, prediction_id: int) -> Album | None:
    """The album whose answer this prediction is part of, if any."""
    return session.scalar(
        select(Album)
        .join(AlbumPrediction, AlbumPrediction.album_id == Album.id)
        .where(AlbumPrediction.prediction_id == prediction_id)
    )


def latest_album(session: Session, chat_id: int, media_group_id: str) -> Album | None:
    """The newest answer to a chat's album (/top5 may have answered it again since)."""
    return session.scalar(
        select(Album)
        .where(Album.chat_id == chat_id, Album.media_group_id == media_group_id)
        .order_by(Album.id.desc())
        .limit(1)
    )


def answered_together(session: Session, prediction: Prediction) -> list[Prediction]:
    """The predictions one tap labels: the whole album's, or this one alone."""
    album = album_of(session, prediction.id)
    if album is None:
        return [prediction]
    return sorted(album.predictions, key=lambda p: p.id)


def delete_albums_older_than(session: Session, cutoff: datetime) -> int:
    """Retention: albums go with their photos (whose rows delete_older_than removes)."""
    result = session.execute(delete(Album).where(Album.created_at < cutoff))
    return result.rowcount or 0
