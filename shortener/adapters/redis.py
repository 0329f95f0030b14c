"""Cache, rate limiter, counter leases and cross-instance invalidation on Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.logging import get_logger
from services.ratelimit import TOKEN_BUCKET_TAKE
from services.tasks import BackgroundLoop
from shortener.domain import Link
from shortener.ports import Allowance, CacheEntry, CacheUnavailable, LinkRepository

log = get_logger(__name__)
_DOWN = (RedisError, OSError, asyncio.TimeoutError)
_NEGATIVE = b"-"
INVALIDATION_CHANNEL = "link-invalidated"


def _key(code: str) -> str:
    return f"link:{code}"


def _ts(value: datetime | None) -> str:
    return "" if value is None else f"{value.timestamp():.6f}"


def _dt(value: bytes) -> datetime | None:
    return datetime.fromtimestamp(float(value), timezone.utc) if value else None


def encode(link: Link) -> bytes:
    return b"\t".join([_ts(link.expires_at).encode(), _ts(link.created_at).encode(),
                       b"1" if link.custom_alias else b"0", link.url.encode()])


def decode(code: str, raw: bytes) -> Link:
    expires, created, alias, url = raw.split(b"\t", 3)
    return Link(code=code, url=url.decode(), created_at=_dt(created) or datetime.now(timezone.utc),
                expires_at=_dt(expires), custom_alias=alias == b"1")


class RedisLinkCache:
    def __init__(self, redis: Callable[[], Redis]) -> None:
        self._redis = redis

    async def get(self, code: str) -> CacheEntry | None:
        try:
            raw = await self._redis().get(_key(code))
        except _DOWN as exc:
            raise CacheUnavailable(str(exc)) from exc
        if raw is None:
            return None
        if raw == _NEGATIVE:
            return CacheEntry(None, found=True)
        return CacheEntry(decode(code, raw), found=True)

    async def put(self, link: Link, ttl_s: int) -> None:
        if link.expires_at is not None:
            # Keep the entry until shortly after expiry so that the 410 is served from cache too.
            remaining = int((link.expires_at - datetime.now(timezone.utc)).total_seconds()) + 60
            ttl_s = max(1, min(ttl_s, remaining))
        try:
            await self._redis().set(_key(link.code), encode(link), ex=ttl_s)
        except _DOWN as exc:
            raise CacheUnavailable(str(exc)) from exc

    async def put_missing(self, code: str, ttl_s: int) -> None:
        try:
            await self._redis().set(_key(code), _NEGATIVE, ex=ttl_s)
        except _DOWN as exc:
            raise CacheUnavailable(str(exc)) from exc

    async def delete(self, code: str) -> None:
        try:
            await self._redis().delete(_key(code))
        except _DOWN as exc:
            raise CacheUnavailable(str(exc)) from exc


# The kit's token bucket (KEYS[1]) and, in the same round trip, whether the code about to be
# created (KEYS[2]) sits in the cache as "no such link".
_ADMIT = TOKEN_BUCKET_TAKE + """
return {tostring(wait), redis.call('GET', KEYS[2]) == ARGV[3] and 1 or 0}
"""


class RedisRateLimiter:
    """The kit's token bucket per client address, one script with the create's cache check; Redis
    trouble becomes the port's CacheUnavailable."""

    def __init__(self, redis: Callable[[], Redis], per_minute: int, burst: int) -> None:
        self._redis = redis
        self._rate = per_minute / 60.0
        self._burst = burst
        self._script = None

    async def acquire(self, client: str, code: str | None = None) -> Allowance:
        redis = self._redis()
        if self._script is None:
            self._script = redis.register_script(_ADMIT)
        try:
            wait, missing = await self._script(keys=[f"ratelimit:{client}", _key(code or "")],
                                               args=[self._rate, self._burst, _NEGATIVE], client=redis)
        except _DOWN as exc:
            raise CacheUnavailable(str(exc)) from exc
        return Allowance(float(wait), bool(int(missing)) and code is not None)


# INCRBY only when the counter exists: a Redis that lost its state must not restart from zero.
LEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""
COUNTER_KEY = "counter:links"


class RedisCounterSource:
    """Counter ranges from Redis; every range's end is also written to PostgreSQL, where a
    restarted (empty) Redis resumes counting. The links' primary key still catches the rare
    overlap (a range handed out just before Redis lost it), which then counts as a collision."""

    def __init__(self, redis: Callable[[], Redis], repo: LinkRepository) -> None:
        self._redis = redis
        self._repo = repo

    async def lease(self, size: int) -> tuple[int, int]:
        redis = self._redis()
        try:
            end = int(await redis.eval(LEASE, 1, COUNTER_KEY, size))
            if end < 0:
                watermark = await self._repo.max_lease()
                await redis.set(COUNTER_KEY, watermark, nx=True)
                log.warning("counter_reseeded", watermark=watermark)
                end = int(await redis.eval(LEASE, 1, COUNTER_KEY, size))
        except _DOWN as exc:
            raise CacheUnavailable(str(exc)) from exc
        await self._repo.record_lease(end)
        return end - size, end


class RedisInvalidator:
    """Publishes deleted codes; every instance's listener drops them from its local cache."""

    def __init__(self, redis: Callable[[], Redis]) -> None:
        self._redis = redis

    async def invalidated(self, code: str) -> None:
        try:
            await self._redis().publish(INVALIDATION_CHANNEL, code)
        except _DOWN as exc:
            raise CacheUnavailable(str(exc)) from exc


class InvalidationListener(BackgroundLoop):
    """A background subscription that survives Redis restarts (it resubscribes)."""

    transient = _DOWN

    def __init__(self, redis: Callable[[], Redis], on_code: Callable[[str], None], on_reconnect: Callable[[], None]) -> None:
        super().__init__("invalidation-listener")
        self._redis = redis
        self._on_code = on_code
        self._on_reconnect = on_reconnect

    async def step(self) -> None:
        async with self._redis().pubsub() as pubsub:
            await pubsub.subscribe(INVALIDATION_CHANNEL)
            # Messages published while we were away are gone: drop the whole local cache.
            self._on_reconnect()
            while True:
                # Poll with a timeout: a blocking listen() would trip the pool's short
                # socket timeout and reconnect (and clear the cache) every quarter second.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    self._on_code(message["data"].decode())
