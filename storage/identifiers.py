"""The identifiers' queue: photos whose photographers asked people to name them.

A photo is handed to one identifier at a time, by a claim on its row taken with one conditional
UPDATE (free, expired or already theirs -> theirs), so that bot processes sharing the database
never hand it to two identifiers at once; after an answer the claim is free again and the photo
waits for the next opinion. It is confirmed when two identifiers give the same name (or one
whose word alone is enough), and the name becomes a label for retraining, credited to the first
identifier who gave it. Everything is in the database: a restart loses nothing.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, Select, Update, case, func, or_, select, update
from sqlalchemy.orm import Session

from storage.models import Feedback, Identification, IdentificationRequest, Photo, Prediction
from storage.repository import record_feedback, upsert_insert

# How long a photo handed to an identifier stays theirs alone (an identifier who leaves mid-way
# holds it no longer than this); typing a name takes a minute, looking it up a few more.
CLAIM_EXPIRES = timedelta(minutes=30)
AGREEING = 2  # identifiers who must give the same name (unless one's word alone is enough)


class QueueOrder(StrEnum):
    """Which waiting photo /identify hands out first (bench/active_learning.py measures both)."""

    OLDEST = "oldest"
    LEAST_SURE = "least_sure"  # the lowest top-1 confidence of the answer the photographer saw


@dataclass(frozen=True)
class Name:
    """What an identifier says a photo shows: a known species (index and name), a new species
    (its id and name), or not a flower."""

    species_index: int | None = None
    species: str | None = None
    new_species_id: int | None = None
    not_a_flower: bool = False

    def __post_init__(self) -> None:
        named = (self.species_index is not None) + (self.new_species_id is not None)
        if named + self.not_a_flower != 1 or (named == 1) != (self.species is not None):
            raise ValueError(f"a name is one species (index or new id, with its name): {self}")

    @property
    def key(self) -> tuple[int | None, int | None, bool]:
        return self.species_index, self.new_species_id, self.not_a_flower

    @classmethod
    def of(cls, row: IdentificationRequest | Identification | Feedback) -> Name:
        return cls(row.species_index, row.species, row.new_species_id, row.not_a_flower)


NOT_A_FLOWER = Name(not_a_flower=True)


class Outcome(StrEnum):
    """What became of an identifier's tap."""

    GONE = "gone"  # the photo was withdrawn (/forget) or deleted
    NOT_HANDED = "not_handed"  # not handed to this identifier, or not from its message
    OWN_PHOTO = "own_photo"
    ALREADY_ANSWERED = "already_answered"
    ALREADY_CONFIRMED = "already_confirmed"
    SKIPPED = "skipped"
    RECORDED = "recorded"  # the photo waits for another opinion
    CONFIRMED = "confirmed"  # this answer confirmed the name


@dataclass(frozen=True)
class Identified:
    outcome: Outcome
    request: IdentificationRequest | None = None


def _rowcount(session: Session, statement: Update) -> int:
    options = {"synchronize_session": False}
    return cast(CursorResult[Any], session.execute(statement, execution_options=options)).rowcount


def ask_identifiers(
    session: Session, prediction_id: int, user_id: int, language: str, now: datetime
) -> IdentificationRequest | None:
    """Queue the photo of an answer, asked by its photographer (asking twice queues it once);
    None when the answer is gone or the photo is someone else's."""
    prediction = session.get(Prediction, prediction_id)
    if prediction is None or prediction.photo.user_id != user_id:
        return None
    statement = upsert_insert(session, IdentificationRequest).values(
        photo_id=prediction.photo_id,
        prediction_id=prediction.id,
        language=language,
        confidence=float(prediction.top5[0]["confidence"]),
        asked_at=now,
    )
    session.execute(statement.on_conflict_do_nothing(index_elements=["photo_id"]))
    return session.scalars(
        select(IdentificationRequest).where(IdentificationRequest.photo_id == prediction.photo_id)
    ).one()


def _open_to(identifier_id: int) -> Select[tuple[IdentificationRequest]]:
    """Waiting photos this identifier may name: not their own, not answered (or skipped) yet."""
    answered = select(Identification.request_id).where(
        Identification.identifier_id == identifier_id
    )
    return (
        select(IdentificationRequest)
        .join(Photo, Photo.id == IdentificationRequest.photo_id)
        .where(
            IdentificationRequest.confirmed_at.is_(None),
            Photo.user_id != identifier_id,
            IdentificationRequest.id.not_in(answered),
        )
    )


def waiting_for(session: Session, identifier_id: int) -> int:
    """How many photos wait for this identifier (held by others for now included)."""
    subquery = _open_to(identifier_id).subquery()
    return session.scalar(select(func.count()).select_from(subquery)) or 0


def claim_next(
    session: Session,
    identifier_id: int,
    now: datetime,
    order: QueueOrder = QueueOrder.OLDEST,
    batch: int = 10,
) -> IdentificationRequest | None:
    """Hand the next waiting photo to this identifier: the one they already hold, else the
    first in `order` that nobody holds. The conditional UPDATE decides when two processes go
    for the same row (PostgreSQL re-checks its WHERE after the other's commit; SQLite has one
    writer): the loser moves on to the next."""
    held = IdentificationRequest.claimed_by == identifier_id
    free = or_(
        IdentificationRequest.claimed_by.is_(None),
        IdentificationRequest.claim_expires_at <= now,
        held,
    )
    ordering = [case((held, 0), else_=1)]
    if order == QueueOrder.LEAST_SURE:
        ordering.append(IdentificationRequest.confidence)
    ordering += [IdentificationRequest.asked_at, IdentificationRequest.id]
    candidates = session.scalars(
        _open_to(identifier_id).where(free).order_by(*ordering).limit(batch)
    )
    for candidate in candidates.all():
        taken = _rowcount(
            session,
            update(IdentificationRequest)
            .where(
                IdentificationRequest.id == candidate.id,
                IdentificationRequest.confirmed_at.is_(None),
                free,
            )
            # No message yet: the photo is being sent (see handed_as).
            .values(
                claimed_by=identifier_id,
                claim_expires_at=now + CLAIM_EXPIRES,
                claim_message_id=None,
            ),
        )
        if taken:
            session.refresh(candidate)
            return candidate
    return None


def handed_as(
    session: Session, request_id: int, identifier_id: int, message_id: int | None
) -> None:
    """The message (in the identifier's private chat) whose buttons answer their claim: the
    photo, later the offer of names for a typed name. Taps count only from there, once it is
    stored; None while it is being sent, when a tap from the identifier's own chat counts (the
    bot handles updates concurrently, so a quick tap can come before the message id is
    stored)."""
    _rowcount(
        session,
        update(IdentificationRequest)
        .where(
            IdentificationRequest.id == request_id,
            IdentificationRequest.claimed_by == identifier_id,
        )
        .values(claim_message_id=message_id),
    )


def held_by(
    session: Session, request_id: int, identifier_id: int, message_id: int
) -> IdentificationRequest | None:
    """The waiting photo, if this identifier holds it and the tap comes from its message (or
    that message is being sent: see handed_as)."""
    request = session.get(IdentificationRequest, request_id)
    if request is None or request.confirmed_at is not None:
        return None
    mine = request.claimed_by == identifier_id
    return request if mine and request.claim_message_id in (None, message_id) else None


def claim_of(session: Session, identifier_id: int) -> IdentificationRequest | None:
    """The waiting photo this identifier holds (claim_next hands one at a time), if any."""
    return session.scalar(
        select(IdentificationRequest).where(
            IdentificationRequest.claimed_by == identifier_id,
            IdentificationRequest.confirmed_at.is_(None),
        )
    )


def record_identification(
    session: Session,
    request_id: int,
    identifier_id: int,
    message_id: int,
    name: Name | None,
    now: datetime,
    alone_confirms: bool = False,
) -> Identified:
    """An identifier's answer (None: skip) from the message the photo was handed to them in.

    Counts once per photo and identifier, only from the identifier the photo is handed to (the
    user must exist: ensure_user first). When it makes AGREEING identical names, or
    `alone_confirms`, the name is confirmed and recorded as a label."""
    request = session.get(IdentificationRequest, request_id)
    if request is None:
        return Identified(Outcome.GONE)
    if request.confirmed_at is not None:
        return Identified(Outcome.ALREADY_CONFIRMED, request)
    if request.photo.user_id == identifier_id:
        return Identified(Outcome.OWN_PHOTO, request)
    # Releasing the claim is the check that it was this identifier's: one statement, so a
    # claim that expired and went to someone else meanwhile is not theirs any more.
    released = _rowcount(
        session,
        update(IdentificationRequest)
        .where(
            IdentificationRequest.id == request_id,
            IdentificationRequest.claimed_by == identifier_id,
            or_(
                IdentificationRequest.claim_message_id == message_id,
                IdentificationRequest.claim_message_id.is_(None),  # being sent: see handed_as
            ),
            IdentificationRequest.confirmed_at.is_(None),
        )
        .values(claimed_by=None, claim_expires_at=None, claim_message_id=None),
    )
    if not released:
        return Identified(Outcome.NOT_HANDED, request)
    said = asdict(name) if name is not None else {}  # a skip names nothing
    statement = upsert_insert(session, Identification).values(
        request_id=request_id,
        identifier_id=identifier_id,
        skipped=name is None,
        created_at=now,
        **said,
    )
    inserted = session.execute(
        statement.on_conflict_do_nothing(index_elements=["request_id", "identifier_id"])
    )
    if not cast(CursorResult[Any], inserted).rowcount:
        return Identified(Outcome.ALREADY_ANSWERED, request)
    if name is None:
        return Identified(Outcome.SKIPPED, request)
    answers = session.scalars(
        select(Identification)
        .where(Identification.request_id == request_id, Identification.skipped.is_(False))
        .order_by(Identification.created_at, Identification.id)
    ).all()
    agreeing = [answer for answer in answers if Name.of(answer).key == name.key]
    if not (alone_confirms or len(agreeing) >= AGREEING):
        return Identified(Outcome.RECORDED, request)
    request.confirmed_at = now
    request.species_index, request.species = name.species_index, name.species
    request.new_species_id, request.not_a_flower = name.new_species_id, name.not_a_flower
    record_feedback(
        session,
        photo_id=request.photo_id,
        prediction_id=request.prediction_id,
        user_id=agreeing[0].identifier_id,
        species_index=name.species_index,
        species=name.species,
        not_a_flower=name.not_a_flower,
        new_species_id=name.new_species_id,
    )
    return Identified(Outcome.CONFIRMED, request)


def confirmed_name(session: Session, photo_id: int) -> Name | None:
    """The name identifiers confirmed for a photo, if they have."""
    request = session.scalar(
        select(IdentificationRequest).where(
            IdentificationRequest.photo_id == photo_id,
            IdentificationRequest.confirmed_at.is_not(None),
        )
    )
    return None if request is None else Name.of(request)


def agreed_labels(session: Session, user_id: int) -> int:
    """How many of the user's labels, given before identifiers confirmed a name, were that
    name: how some users become identifiers by themselves (IDENTIFIER_MIN_AGREED)."""
    confirmed = IdentificationRequest
    statement = (
        select(func.count(Feedback.id))
        .join(confirmed, confirmed.photo_id == Feedback.photo_id)
        .where(
            Feedback.user_id == user_id,
            confirmed.confirmed_at.is_not(None),
            Feedback.updated_at < confirmed.confirmed_at,
            Feedback.not_a_flower == confirmed.not_a_flower,
            or_(
                Feedback.species_index == confirmed.species_index,
                Feedback.new_species_id == confirmed.new_species_id,
                Feedback.not_a_flower.is_(True),
            ),
        )
    )
    return session.scalar(statement) or 0


@dataclass(frozen=True)
class QueueStats:
    waiting: int
    confirmed: int
    median_to_name: timedelta | None  # from asking to the confirmed name


def queue_stats(session: Session) -> QueueStats:
    rows = session.execute(
        select(IdentificationRequest.asked_at, IdentificationRequest.confirmed_at)
    ).all()
    waited = [named - asked for asked, named in rows if named is not None]
    median = statistics.median(waited) if waited else None
    return QueueStats(len(rows) - len(waited), len(waited), median)
