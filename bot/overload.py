"""A bounded wait when more photos come than the bot can answer: the backlog of photos taken in
and not yet answered, the rate answers go out at, and what a photo arriving now gets.

The wait a new photo faces is the backlog ahead of it over the rate the bot answers at, measured
online: answers over the time the bot had photos in hand, in the last `window` seconds (busy time,
not wall time, so a quiet minute does not make the bot look slow, and a burst after it is judged
by how fast the bot works). Beyond `one_view_after` seconds photos get the one-view answer (a
quarter of the backbone's work, with cuts of its own: model_training/one_view.py); beyond
`next_in_line_after`, a "many photos right now, yours is next in line" reply at once, and the
answer when its turn comes (NextInLine), unless Telegram's limit on the messages a bot sends is
what holds the answers back: then a reply more would only slow them. Nothing is dropped: every
photo keeps its place in the queue, and a bot told to stop answers the photos it parked first.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import StrEnum

# Fewer photos in hand than this are no overload, however slow the machine: the wait is about
# one answer's time, which "next in line" would only lengthen.
MIN_BACKLOG = 4


class Mode(StrEnum):
    FOUR_VIEWS = "four_views"
    ONE_VIEW = "one_view"  # the one-view answer
    NEXT_IN_LINE = "next_in_line"  # "yours is next in line" first, then the answer


class Backlog:
    def __init__(
        self,
        one_view_after: float,
        next_in_line_after: float,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.one_view_after = one_view_after
        self.next_in_line_after = next_in_line_after
        self.window = window
        self.clock = clock
        self.in_hand = 0  # photos taken in, not yet answered
        self._answered = 0
        self._busy = 0.0  # seconds with at least one photo in hand
        self._since = clock()
        # (time, answered, busy) at each answer within the window, oldest first
        self._marks: deque[tuple[float, int, float]] = deque()
        self._rate: float | None = None  # the last rate measured (photos/s of busy time)

    def _tick(self) -> float:
        now = self.clock()
        if self.in_hand:
            self._busy += now - self._since
        self._since = now
        return now

    def rate(self) -> float | None:
        """Photos answered a second of busy time, over the window; the last one measured when
        the window holds too few answers; None before any."""
        now = self._tick()
        while self._marks and self._marks[0][0] < now - self.window:
            self._marks.popleft()
        if len(self._marks) >= 2:
            _, first_answered, first_busy = self._marks[0]
            busy = self._busy - first_busy
            if busy > 0:
                self._rate = (self._answered - first_answered) / busy
        return self._rate

    def expected_wait(self) -> float:
        """Seconds until a photo arriving now would be answered (0 while unmeasured)."""
        rate = self.rate()
        return 0.0 if not rate else self.in_hand / rate

    def mode(self, one_view: bool, room_to_reply: bool = True) -> Mode:
        """What a photo arriving now gets; `one_view`: whether the model has a one-view answer
        (without one, the next-in-line reply comes as soon as the wait is long);
        `room_to_reply`: whether Telegram's message limit leaves room for a "next in line"
        reply (RetryingRateLimiter.room_to_reply). Without room the bot's messages are what
        is slow: one more a photo would delay every answer, so the photo just waits its turn."""
        wait = self.expected_wait()
        if self.in_hand < MIN_BACKLOG or wait <= self.one_view_after:
            return Mode.FOUR_VIEWS
        if not room_to_reply:
            return Mode.ONE_VIEW if one_view else Mode.FOUR_VIEWS
        if one_view and wait <= self.next_in_line_after:
            return Mode.ONE_VIEW
        return Mode.NEXT_IN_LINE

    def arrive(self, one_view: bool, room_to_reply: bool = True) -> Mode:
        """Count a photo in (until `answered`), and say what it gets."""
        mode = self.mode(one_view, room_to_reply)
        self._tick()
        self.in_hand += 1
        return mode

    def answered(self) -> None:
        now = self._tick()
        self.in_hand -= 1
        self._answered += 1
        self._marks.append((now, self._answered, self._busy))


class NextInLine:
    """Photos told "next in line", parked in the order they came without holding one of
    python-telegram-bot's concurrent update slots (256: a backlog beyond it would hold back
    even the "next in line" replies), and answered as the bot catches up: at most `working`
    of them at once, so each waits its turn here rather than all piling onto the model's
    queue at once."""

    def __init__(self, working: int) -> None:
        self._queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._slots = asyncio.Semaphore(working)
        self._answering: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return self._queue.qsize()

    def park(self, answer: Callable[[], Awaitable[None]]) -> None:
        """`answer()` answers the photo (and handles its own errors)."""
        self._queue.put_nowait(answer)

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="next-in-line")

    async def stop(self) -> None:
        """Answer every photo parked, then stop (once no more updates come in)."""
        await self._queue.join()
        if self._worker:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            answer = await self._queue.get()
            await self._slots.acquire()
            task = asyncio.create_task(self._answer(answer))
            self._answering.add(task)  # a reference, so that the task is not collected
            task.add_done_callback(self._answering.discard)

    async def _answer(self, answer: Callable[[], Awaitable[None]]) -> None:
        try:
            await answer()
        finally:
            self._slots.release()
            self._queue.task_done()
