"""A bounded wait when more photos come than the bot can answer: the backlog of photos taken in
and not yet answered, the rate answers go out at, and what a photo arriving now gets.

The wait a new photo faces is the backlog ahead of it over the rate the bot answers at, measured
online: answers over the time the bot had photos in hand, in the last `window` seconds (busy time,
not wall time, so a quiet minute does not make the bot look slow, and a burst after it is judged
by how fast the bot works). Beyond `one_view_after` seconds photos get the one-view answer (a
quarter of the backbone's work, with cuts of its own: model_training/one_view.py); beyond
`next_in_line_after`, a "many photos right now, yours is next in line" reply at once, and the
answer when its turn comes. Nothing is dropped: every photo keeps its place in the queue.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

    def mode(self, one_view: bool) -> Mode:
        """What a photo arriving now gets; `one_view`: whether the model has a one-view answer
        (without one, the next-in-line reply comes as soon as the wait is long)."""
        wait = self.expected_wait()
        if self.in_hand < MIN_BACKLOG or wait <= self.one_view_after:
            return Mode.FOUR_VIEWS
        if one_view and wait <= self.next_in_line_after:
            return Mode.ONE_VIEW
        return Mode.NEXT_IN_LINE

    @contextmanager
    def photo(self, one_view: bool) -> Iterator[Mode]:
        """Count a photo in while its block runs (its answer is sent inside), and say what it
        gets."""
        mode = self.mode(one_view)
        self._tick()
        self.in_hand += 1
        try:
            yield mode
        finally:
            now = self._tick()
            self.in_hand -= 1
            self._answered += 1
            self._marks.append((now, self._answered, self._busy))
