"""Outgoing requests: Telegram's flood limits (PTB's AIORateLimiter) plus retries on network errors.

AIORateLimiter already waits out RetryAfter; a dropped connection or a 5xx from Telegram is
retried here too, with a short backoff. BadRequest is a NetworkError subclass in PTB but means
the request itself is wrong, so it is never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter

log = logging.getLogger(__name__)


class RetryingRateLimiter(AIORateLimiter):
    def __init__(self, network_retries: int = 3, backoff_seconds: float = 0.5) -> None:
        super().__init__(max_retries=3)
        self.network_retries = network_retries
        self.backoff_seconds = backoff_seconds

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
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
