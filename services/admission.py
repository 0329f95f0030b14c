"""Admission control: at most N operations at once, the rest wait a bounded time, then 429.

A burst larger than a service can run at once must queue, not time out deep inside as if a
dependency were down: a checkout that waits its turn for a database connection past the
database's own deadline reads as "no answer from PostgreSQL", a 503, while PostgreSQL is fine.
Here the wait happens at the door, bounded by a time chosen from the operation's service time,
and whoever cannot get in within it is told to come back (429 with Retry-After), which is the
truth: the service is busy, not broken.

Sizing: by Little's law, ``limit`` ≈ the throughput wanted × the operation's time in the service
(200 checkouts/s × 40 ms = 8 in flight); a little more absorbs jitter. ``wait_s`` is how long a
caller may queue: a few service times is a wait people accept; past it, they are better told.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.errors import RateLimited


class Admission:
    def __init__(self, limit: int, wait_s: float, what: str = "requests") -> None:
        if limit < 1 or wait_s < 0:
            raise ValueError("admission needs a limit of at least 1 and a wait of at least 0")
        self.limit = limit
        self.wait_s = wait_s
        self._what = what
        self._slots = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.waiting = 0
        self.refused = 0

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one of the slots for the block; RateLimited when none frees up within ``wait_s``."""
        if self._slots.locked():
            self.waiting += 1
            try:
                async with asyncio.timeout(self.wait_s):
                    await self._slots.acquire()
            except TimeoutError:
                self.refused += 1
                raise RateLimited(f"too many {self._what} at once ({self.limit} running, none finished within "
                                  f"{self.wait_s:g}s); retry shortly", retry_after_s=max(1.0, self.wait_s),
                                  code="busy") from None
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()
