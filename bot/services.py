"""What the handlers share: settings, the model behind its batcher, the database, rate limits."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import TypeVar

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session
from telegram import User

from bot.config import Settings
from bot.inference import BatchingIdentifier
from bot.network import RetryingRateLimiter
from bot.overload import Backlog, NextInLine
from storage import Database, PendingQuestion, ensure_user, take_photo_slot, take_question

T = TypeVar("T")


@dataclass(frozen=True)
class Admission:
    """Whether a user may send a photo now, and their /language choice (None: Telegram's),
    read in the same transaction: a photo's answer needs no database read of its own for the
    language."""

    allowed: bool
    language: str | None
    # The user's open question of the kind asked for, taken (closed) in the same transaction.
    asked: PendingQuestion | None = None


@dataclass
class Services:
    settings: Settings
    identifier: BatchingIdentifier
    database: Database
    backlog: Backlog
    next_in_line: NextInLine
    limiter: RetryingRateLimiter  # the Bot API's rate limiter: how many messages go out
    # The retraining child process while one runs (bot/retraining.py).
    retrain_process: BaseProcess | None = None
    # The database's own threads, so that its work never queues behind photos' decoding in
    # asyncio's shared pool. SQLite writes one transaction at a time (the others sleep in its
    # busy handler and retry): one thread. A server database: a few.
    _db_threads: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        sqlite = self.database.url.get_backend_name() == "sqlite"
        self._db_threads = ThreadPoolExecutor(1 if sqlite else 4, thread_name_prefix="database")

    def close(self) -> None:
        """After the last update: the database's threads, then its connections."""
        self._db_threads.shutdown()
        self.database.dispose()

    @property
    def species(self) -> list[str]:
        return self.identifier.classifier.class_names

    async def admit_photo(self, user: User, question: str | None = None) -> Admission:
        """The per-user limit on photos a minute, counted in the database so that it holds
        across bot processes. PTB's AIORateLimiter only throttles what the bot sends (Telegram's
        flood limits); nothing in PTB limits what one user sends in. With `question`, the
        user's open question of that kind is taken too (storage.take_question): one
        transaction a photo instead of two."""

        def take_slot(session: Session) -> Admission:
            stored = ensure_user(session, user.id, user.username, user.first_name)
            asked = None if question is None else take_question(session, user.id, question)
            now = datetime.now(UTC)
            allowed = take_photo_slot(session, user.id, now, self.settings.photos_per_minute)
            return Admission(allowed, stored.language, asked)

        return await self.db(take_slot)

    async def db(self, work: Callable[[Session], T]) -> T:
        """Run a unit of database work in a thread and commit it before returning."""

        def in_session() -> T:
            with self.database.session() as session:
                return work(session)

        return await asyncio.get_running_loop().run_in_executor(self._db_threads, in_session)


def jpeg_bytes(image: np.ndarray) -> bytes:
    """The 224x224 photo as stored: what the model saw, small enough to keep."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
