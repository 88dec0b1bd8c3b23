"""The bot's tables: users, the photos they send, the model's predictions and their feedback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Fixed constraint names: the same on every backend, and SQLite's batch migrations need them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_shape(shape: tuple[int, ...]) -> str:
    return ",".join(str(n) for n in shape)


def parse_shape(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split(","))


# Backbone features are stored as float32 bytes plus their shape: the one encoding, both ways.
def encode_features(features: np.ndarray) -> tuple[bytes, str]:
    array = np.ascontiguousarray(features, dtype=np.float32)
    return array.tobytes(), format_shape(array.shape)


def decode_features(data: bytes, shape: str) -> np.ndarray:
    dims = parse_shape(shape)
    if len(data) != 4 * int(np.prod(dims)):
        raise ValueError(f"{len(data)} bytes are not float32 of shape {dims}")
    return np.frombuffer(data, dtype=np.float32).reshape(dims)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. SQLite keeps no offset, so every value is stored as UTC and
    naive input is refused rather than guessed at."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Tables whose ids the bot hands out (e.g. in feedback buttons) set sqlite_autoincrement,
    so that SQLite, like PostgreSQL, never reuses the id of a deleted row."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


class User(Base):
    __tablename__ = "users"

    # Telegram's user id: ids exceed 32 bits and are never generated here.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    excluded_from_training: Mapped[bool] = mapped_column(default=False)
    # "en" or "es": chosen with /language; None: follow Telegram's language_code.
    language: Mapped[str | None] = mapped_column(String(8))

    photos: Mapped[list[Photo]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    feedback: Mapped[list[Feedback]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class Photo(Base):
    __tablename__ = "photos"
    # Feedback buttons find their photo by message. Not unique: a redelivered update may store
    # the same message twice, and the latest row then stands.
    __table_args__ = (
        Index("ix_photos_chat_id_message_id", "chat_id", "message_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    # sha256 hex of the bytes the user sent, to spot the same photo sent again.
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    # The 224x224 JPEG the model saw, and its backbone features as float32 bytes.
    image: Mapped[bytes] = mapped_column(LargeBinary)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    embedding_shape: Mapped[str] = mapped_column(String(32))  # e.g. "4,1280"
    # The size the photo was sent at (the stored image is 224x224): a small photo stays small.
    width: Mapped[int | None]
    height: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    user: Mapped[User] = relationship(back_populates="photos")
    predictions: Mapped[list[Prediction]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True
    )
    feedback: Mapped[list[Feedback]] = relationship(
        back_populates="photo", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def features(self) -> np.ndarray:
        return decode_features(self.embedding, self.embedding_shape)


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    # [{"species": str, "index": int, "confidence": float}, ...], best first.
    top5: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # What the answer said: sure, not_sure, not_a_flower, too_small (model_training.abstention).
    verdict: Mapped[str | None] = mapped_column(String(16))
    latency_ms: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The message that carries this prediction's buttons, once sent (None: answered before
    # revision 0007, or not sent yet): a tap counts only from that message.
    answer_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    answer_message_id: Mapped[int | None] = mapped_column(BigInteger)

    photo: Mapped[Photo] = relationship(back_populates="predictions")
    feedback: Mapped[list[Feedback]] = relationship(
        back_populates="prediction", cascade="all, delete-orphan", passive_deletes=True
    )


class Feedback(Base):
    __tablename__ = "feedback"
    # One answer per user and photo: a changed mind replaces the earlier answer.
    __table_args__ = (UniqueConstraint("photo_id", "user_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    species_index: Mapped[int | None]
    species: Mapped[str | None] = mapped_column(String(256))
    # A species the model does not know yet, named by users (species holds its name then).
    new_species_id: Mapped[int | None] = mapped_column(ForeignKey("new_species.id"), index=True)
    not_a_flower: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    photo: Mapped[Photo] = relationship(back_populates="feedback")
    prediction: Mapped[Prediction] = relationship(back_populates="feedback")
    user: Mapped[User] = relationship(back_populates="feedback")


class ModelVersion(Base):
    """One trained head in the model registry: its artifact folder and how it fared."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    # Where the folder was written. A version with its files in the database (model_version_files)
    # is read from there into each process's own cache instead (storage/model_files.py).
    path: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), index=True)  # ModelStatus values
    # Before/after scores on base val and test and held-out feedback, and training time.
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]


class ModelFile(Base):
    """One model file's bytes, stored once by their sha256: retrained versions that share a file
    (the backbone, the base rows) share its row."""

    __tablename__ = "model_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)  # bytea on PostgreSQL, BLOB on SQLite


class ModelVersionFile(Base):
    """A version's folder: each file name and the content it holds."""

    __tablename__ = "model_version_files"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("model_files.sha256"), index=True)


class RetrainLock(Base):
    """The single row that makes retraining exclusive across processes.

    Taken by one conditional UPDATE (free or expired -> ours), so a crashed holder blocks others
    only until its expiry. `last_feedback_id` is the newest label the last finished run saw.
    """

    __tablename__ = "retrain_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
    last_feedback_id: Mapped[int] = mapped_column(Integer, default=0)


class PendingQuestion(Base):
    """A question the bot asked a user and is waiting to hear back on ("type the name" after
    "None of these"): in the database, so a restart or another bot process still knows it."""

    __tablename__ = "pending_questions"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    kind: Mapped[str] = mapped_column(String(32))  # what is asked, e.g. "species_name"
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime]


class NamingRight(Base):
    """A user who tapped "None of these" under an answer, and so may name its photo: the
    typed-name and new-species buttons (in the user's private chat, not under the answer)
    count only for them."""

    __tablename__ = "naming_rights"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class PhotoRequest(Base):
    """When a user sent a photo: the per-user rate limit counts these, across bot processes."""

    __tablename__ = "photo_requests"
    __table_args__ = (Index("ix_photo_requests_user_id_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    at: Mapped[datetime]


class InstanceSetting(Base):
    """Values one deployment makes for itself and all its processes share (the webhook secret)."""

    __tablename__ = "instance_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024))


class NewSpecies(Base):
    """A species users named after "None of these" that the model does not know: a candidate
    until an admin (or enough users) approves it, or merged into another spelling."""

    __tablename__ = "new_species"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # what the buttons carry
    key: Mapped[str] = mapped_column(String(128), unique=True)  # species.normalise(name)
    name: Mapped[str] = mapped_column(String(128))  # as first typed, tidied
    status: Mapped[str] = mapped_column(String(16), default="candidate")  # NewSpeciesStatus
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("new_species.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_at: Mapped[datetime | None]


class Album(Base):
    """Photos sent together (one Telegram media group) answered as one plant: the combined
    top-5 and verdict, and each photo's own prediction (album_predictions)."""

    __tablename__ = "albums"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # what the buttons carry
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    media_group_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    top5: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    verdict: Mapped[str] = mapped_column(String(16))
    # The photos left out of the combination and why: [{"position": 2, "reason": "..."}].
    left_out: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    latency_ms: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    predictions: Mapped[list[Prediction]] = relationship(secondary="album_predictions")


class AlbumPrediction(Base):
    __tablename__ = "album_predictions"

    album_id: Mapped[int] = mapped_column(
        ForeignKey("albums.id", ondelete="CASCADE"), primary_key=True
    )
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class IdentificationRequest(Base):
    """A photo its photographer asked the bot's identifiers to name (after an unsure answer):
    waiting until identifiers agree on a name (confirmed_at), then that name. The claim is who
    the photo is handed to now, and the message that carries their buttons: one identifier at
    a time, until the claim expires (an identifier who walks away holds nothing for long)."""

    __tablename__ = "identification_requests"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # what the buttons carry
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), unique=True)
    # The answer the photographer asked from: its top-5 are the identifier's buttons.
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), index=True
    )
    language: Mapped[str] = mapped_column(String(8))  # the photographer's, for the name's message
    confidence: Mapped[float]  # the answer's top-1 confidence
    asked_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    claimed_by: Mapped[int | None] = mapped_column(BigInteger)
    claim_expires_at: Mapped[datetime | None]
    claim_message_id: Mapped[int | None] = mapped_column(BigInteger)
    confirmed_at: Mapped[datetime | None] = mapped_column(index=True)
    species_index: Mapped[int | None]
    species: Mapped[str | None] = mapped_column(String(256))
    new_species_id: Mapped[int | None] = mapped_column(ForeignKey("new_species.id"))
    not_a_flower: Mapped[bool] = mapped_column(default=False)

    photo: Mapped[Photo] = relationship()
    prediction: Mapped[Prediction] = relationship()


class Identification(Base):
    """One identifier's answer on a queued photo: a name, "not a flower", or a skip. Once per
    photo and identifier."""

    __tablename__ = "identifications"
    __table_args__ = (UniqueConstraint("request_id", "identifier_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("identification_requests.id", ondelete="CASCADE")
    )
    identifier_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    species_index: Mapped[int | None]
    species: Mapped[str | None] = mapped_column(String(256))
    new_species_id: Mapped[int | None] = mapped_column(ForeignKey("new_species.id"))
    not_a_flower: Mapped[bool] = mapped_column(default=False)
    skipped: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebAppSend(Base):
    """A photo sent from the camera page inside Telegram (bot/webapp.py), by the key the page
    gave it: the same key twice is stored once. The page's own answer is kept beside the
    server's (`prediction_id`), which is the one stored and answered."""

    __tablename__ = "webapp_sends"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    # None while it is being identified and answered; then the stored prediction.
    prediction_id: Mapped[int | None] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), index=True
    )
    page_top5: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    page_verdict: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
