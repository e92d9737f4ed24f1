"""The bot's clock: what time it is and how to wait, so tests can move time.

`SystemClock` is the wall clock. `ManualClock` stands still until `advance()` moves it;
everything waiting on it (scheduled jobs: merge windows, bake-ins, watches) wakes when
its time comes. Scheduled jobs live in the queue (`Delivery.not_before`), so a restart
loses none of them: the clock only says when they are due.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""

    async def sleep(self, seconds: float) -> None:
        """Wait until `now()` has moved on by `seconds`."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock for tests: `now()` changes only through `advance()` or `set()`."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._moved: asyncio.Condition | None = None

    def now(self) -> float:
        return self._now

    def _condition(self) -> asyncio.Condition:
        if self._moved is None:
            self._moved = asyncio.Condition()
        return self._moved

    async def sleep(self, seconds: float) -> None:
        target = self._now + max(0.0, seconds)
        moved = self._condition()
        async with moved:
            await moved.wait_for(lambda: self._now >= target)

    async def advance(self, seconds: float) -> None:
        await self.set(self._now + seconds)

    async def set(self, when: float) -> None:
        self._now = max(self._now, when)
        moved = self._condition()
        async with moved:
            moved.notify_all()
        await asyncio.sleep(0)  # let sleepers see it
