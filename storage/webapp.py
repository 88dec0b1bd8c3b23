"""Photos sent from the camera page inside Telegram: each claimed once by its key, then tied to
the prediction stored for it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.models import WebAppSend
from storage.repository import ensure_user, upsert_insert


def claim_send(
    session: Session,
    user_id: int,
    names: tuple[str | None, str | None],
    key: str,
    page_top5: list[dict[str, Any]],
    page_verdict: str | None,
) -> int | None:
    """The new send's id, or None when this user already sent this key (it is being answered or
    was answered). The unique (user, key) decides between two requests at once: ON CONFLICT DO
    NOTHING, so the loser learns it without an error to recover from. `names`: the user's
    username and first name, as ensure_user takes them."""
    ensure_user(session, user_id, *names)
    statement = (
        upsert_insert(session, WebAppSend)
        .values(user_id=user_id, key=key, page_top5=page_top5, page_verdict=page_verdict)
        .on_conflict_do_nothing(index_elements=[WebAppSend.user_id, WebAppSend.key])
        .returning(WebAppSend.id)
    )
    return session.scalar(statement)


def sent_prediction(session: Session, user_id: int, key: str) -> int | None:
    """The prediction stored for the user's key: None while it is being answered."""
    query = select(WebAppSend.prediction_id).where(
        WebAppSend.user_id == user_id, WebAppSend.key == key
    )
    return session.scalar(query)


def send_stored(session: Session, send_id: int, prediction_id: int) -> None:
    session.get_one(WebAppSend, send_id).prediction_id = prediction_id


def release_send(session: Session, send_id: int) -> None:
    """Gives the key back if nothing was stored for it: the page may send it again. A send whose
    prediction is stored keeps its key (its answer may have failed to go out: not stored twice)."""
    unstored = (WebAppSend.id == send_id, WebAppSend.prediction_id.is_(None))
    session.execute(delete(WebAppSend).where(*unstored))
