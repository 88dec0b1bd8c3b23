"""What the handlers share: settings, the model behind its batcher, the database, rate limits."""

from __future__ import annotations

import asyncio
import io
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import TypeVar

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.inference import BatchingIdentifier
from storage import Database

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    identifier: BatchingIdentifier
    database: Database
    # Photo times per user for the sliding-window limit. PTB's AIORateLimiter only throttles what
    # the bot sends (Telegram's flood limits); nothing in PTB limits what one user sends in.
    # The retraining child process while one runs (bot/retraining.py).
    retrain_process: BaseProcess | None = None
    _recent: defaultdict[int, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    @property
    def species(self) -> list[str]:
        return self.identifier.classifier.class_names

    def allow_photo(self, user_id: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        recent = self._recent[user_id]
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) >= self.settings.photos_per_minute:
            return False
        recent.append(now)
        return True

    async def db(self, work: Callable[[Session], T]) -> T:
        """Run a unit of database work in a thread and commit it before returning."""

        def in_session() -> T:
            with self.database.session() as session:
                return work(session)

        return await asyncio.to_thread(in_session)


def jpeg_bytes(image: np.ndarray) -> bytes:
    """The 224x224 photo as stored: what the model saw, small enough to keep."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
