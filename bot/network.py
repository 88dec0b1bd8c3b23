"""Outgoing requests: Telegram's flood limits (PTB's AIORateLimiter) plus retries on network errors.

AIORateLimiter already waits out RetryAfter; a dropped connection or a 5xx from Telegram is
retried here too, with a short backoff. BadRequest is a NetworkError subclass in PTB but means
the request itself is wrong, so it is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter

log = logging.getLogger(__name__)


# Telegram lets one bot send about 30 messages a second across its chats (PTB's default limit).
MESSAGES_PER_SECOND = 30
# Under overload a "next in line" reply is a message more a photo (bot/overload.py): only while
# the bot asks for less than this many a second, so that replies and answers still fit the limit,
# counted over a few seconds: a second's dip at 30 photos/s let replies through that then
# delayed every answer queued at the limit.
ROOM_TO_REPLY_BELOW = 2 * MESSAGES_PER_SECOND // 3
MESSAGES_WINDOW_SECONDS = 5


class RetryingRateLimiter(AIORateLimiter):
    def __init__(
        self,
        network_retries: int = 3,
        backoff_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(overall_max_rate=MESSAGES_PER_SECOND, max_retries=3)
        self.network_retries = network_retries
        self.backoff_seconds = backoff_seconds
        self.clock = clock
        # When each message of the window was asked for. Trimmed when read (once a photo), so
        # bounded for a bot that sends without photos coming in: a full deque means more than
        # the limit a second over the window, whose oldest entries it then need not keep.
        self._asked: deque[float] = deque(maxlen=2 * MESSAGES_PER_SECOND * MESSAGES_WINDOW_SECONDS)

    def messages_per_second(self) -> float:
        """Requests to a chat (what Telegram's limit counts) asked for a second, over the last
        MESSAGES_WINDOW_SECONDS (or since the first of them, at least a second: a burst into a
        quiet bot is not spread over the quiet), whether they went out yet or wait their turn
        here."""
        now = self.clock()
        while self._asked and self._asked[0] < now - MESSAGES_WINDOW_SECONDS:
            self._asked.popleft()
        if not self._asked:
            return 0.0
        return len(self._asked) / max(1.0, now - self._asked[0])

    def room_to_reply(self) -> bool:
        return self.messages_per_second() < ROOM_TO_REPLY_BELOW

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        if data.get("chat_id") is not None:
            self._asked.append(self.clock())
        for attempt in range(self.network_retries + 1):
            try:
                return await super().process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
            except NetworkError as err:
                # A timed-out send may have arrived: retrying could send it twice, so only
                # requests that change nothing are retried after a timeout.
                repeatable = not isinstance(err, TimedOut) or endpoint.startswith("get")
                if isinstance(err, BadRequest) or not repeatable or attempt == self.network_retries:
                    raise
                log.warning("%s failed (%s), retry %d", endpoint, err, attempt + 1)
                await asyncio.sleep(self.backoff_seconds * 2**attempt)
        raise AssertionError("unreachable")
