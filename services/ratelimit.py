"""Token buckets: in Redis, shared by every instance (the shortener's create limit), and in a
process's memory (messaging's send limit, kept by each gateway for the users connected to it).

The Redis bucket is Lua, the first half of a design's script (:data:`TOKEN_BUCKET_TAKE`), so a
check-and-take is atomic across instances and rides with whatever else that call asks; its clock
is Redis's (``TIME``), so instances' clocks do not matter.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

# The bucket's take (KEYS[1], ARGV[1] tokens per second, ARGV[2] burst), leaving the seconds to
# wait in ``wait`` (0: taken) for the rest of the script.
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


class LocalTokenBucket:
    """The same bucket in this process's memory, for limits that need no agreement between
    instances (a gateway's limit on the users connected to it): no round trip. At most ``max_keys``
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
