"""A small in-process LRU with a TTL, for the hottest keys (no network hop at all).

A TTL of ``math.inf`` keeps what never goes stale (a conversation's members) until it is the
least recently used.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class LocalCache(Generic[V]):
    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def get(self, key: str) -> tuple[bool, V | None]:
        """(True, value) on a fresh hit, (False, None) otherwise."""
        item = self._data.get(key)
        if item is None:
            return False, None
        expires, value = item
        if self._clock() >= expires:
            del self._data[key]
            return False, None
        self._data.move_to_end(key)
        return True, value

    def put(self, key: str, value: V, ttl_s: float | None = None) -> None:
        if not self.enabled:
            return
        self._data[key] = (self._clock() + (self.ttl_s if ttl_s is None else min(ttl_s, self.ttl_s)), value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def discard(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
