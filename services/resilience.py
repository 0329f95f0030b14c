"""Circuit breaker and single-flight: the two guards every design puts around a shared dependency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class CircuitOpen(Exception):
    """The breaker is open: the dependency failed recently and is not being called."""


class CircuitBreaker:
    """Closed → (``failure_threshold`` consecutive failures) → open for ``reset_after_s`` → half-open.

    Half-open lets one call through; its success closes the breaker, its failure opens it again.
    While open, callers skip the dependency at once instead of waiting on a timeout each time.
    """

    def __init__(self, name: str, *, failure_threshold: int = 5, reset_after_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_after_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._trial_in_flight = False
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()

    async def call(self, fn: Callable[[], Awaitable[T]], failures: tuple[type[BaseException], ...]) -> T:
        if not self.allow():
            raise CircuitOpen(self.name)
        try:
            result = await fn()
        except failures:
            self.record_failure()
            raise
        except BaseException:
            self._trial_in_flight = False  # not the dependency's fault (cancelled, bad input)
            raise
        self.record_success()
        return result


K = TypeVar("K", bound=Hashable)


class _LeaderCancelled(Exception):
    """The caller doing the work was cancelled; its waiters were not, and try again themselves."""


class SingleFlight(Generic[K, T]):
    """Concurrent calls for the same key share one execution (a cache miss reads the database once)."""

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[T]] = {}
        self.coalesced = 0  # calls that waited on another's result instead of doing the work

    async def do(self, key: K, fn: Callable[[], Awaitable[T]]) -> T:
        while (existing := self._inflight.get(key)) is not None:
            self.coalesced += 1
            try:
                return await asyncio.shield(existing)
            except _LeaderCancelled:
                self.coalesced -= 1  # it did not get a shared result after all
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await fn()
        except asyncio.CancelledError:
            future.set_exception(_LeaderCancelled())
            future.exception()  # retrieved: no warning when nobody waited
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]
