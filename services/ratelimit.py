"""Token buckets: in Redis, shared by every instance (the shortener's create limit), and in a
process's memory (messaging's send limit, kept by each gateway for the users connected to it).

The Redis bucket is one Lua script, so a check-and-take is atomic across instances; its clock is
Redis's (``TIME``), so instances' clocks do not matter.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

# The bucket's take, leaving the seconds to wait in ``wait``: a script of its own (TOKEN_BUCKET), or
# the first half of a design's script that does more in the same round trip.
TOKEN_BUCKET_TAKE = """
redis.replicate_commands()
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + (now - ts) / 1000 * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
"""
TOKEN_BUCKET = TOKEN_BUCKET_TAKE + "return tostring(wait)\n"


class LimiterUnavailable(Exception):
    """Redis could not be asked; the caller decides whether to fail open or closed."""


class TokenBucket:
    """``acquire(key)`` takes a token and returns 0, or returns the seconds until one is free."""

    def __init__(self, redis: Callable[[], Redis], *, per_second: float, burst: int, prefix: str) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self._redis = redis
        self._rate = per_second
        self._burst = burst
        self._prefix = prefix
        self._script = None

    async def acquire(self, key: str) -> float:
        redis = self._redis()
        if self._script is None:
            self._script = redis.register_script(TOKEN_BUCKET)
        try:
            wait = await self._script(keys=[f"{self._prefix}:{key}"], args=[self._rate, self._burst], client=redis)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise LimiterUnavailable(str(exc)) from exc
        return float(wait)


class LocalTokenBucket:
    """The same bucket in this process's memory, for limits that need no agreement between
    instances (a gateway's limit on the connections it holds): no round trip. At most ``max_keys``
    buckets are kept; the least recently used go first (a forgotten key starts full again)."""

    def __init__(self, *, per_second: float, burst: int, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self._rate = per_second
        self._burst = float(burst)
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def acquire(self, key: str) -> float:
        """Take a token and return 0, or return the seconds until one is free (taking none)."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self._rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait
