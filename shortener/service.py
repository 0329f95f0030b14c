"""The shortener's use cases: shorten, resolve (the hot path), read, delete."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from services.consistency import STALE_OK, ReadConsistency
from services.errors import Conflict, Forbidden, NotFound, RateLimited, Unavailable
from services.local_cache import LocalCache
from services.logging import get_logger
from services.resilience import CircuitBreaker, CircuitOpen, SingleFlight
from shortener import domain
from shortener.config import ShortenerSettings
from shortener.domain import Link, LinkCreated, ShortenUrl
from shortener.ports import (
    Allowance,
    CacheUnavailable,
    ClickSink,
    CounterSource,
    Invalidator,
    LinkCache,
    LinkRepository,
    RateLimiter,
    StoreUnavailable,
)

log = get_logger(__name__)
MAX_CODE_ATTEMPTS = 8
_MISSING = object()  # the local cache's "known not to exist"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Stats:
    """Plain counters on the hot path (cheaper than metric objects); exported at scrape time."""

    local_hits: int = 0
    redis_hits: int = 0
    misses: int = 0
    db_reads: int = 0
    cache_errors: int = 0
    collisions: int = 0
    rate_limited: int = 0
    limiter_errors: int = 0


class CounterCodes:
    """Counter values leased in ranges (one round trip per range), turned into non-sequential codes."""

    def __init__(self, source: CounterSource, lease_size: int, obfuscator: domain.CounterObfuscator) -> None:
        self._source = source
        self._lease_size = lease_size
        self._obfuscator = obfuscator
        self._next = 0
        self._end = 0

    async def next_code(self) -> str:
        if self._next >= self._end:
            self._next, self._end = await self._source.lease(self._lease_size)
        value = self._next
        self._next += 1
        return self._obfuscator.code(value)


class ShortenerService:
    def __init__(
        self,
        settings: ShortenerSettings,
        repo: LinkRepository,
        cache: LinkCache,
        limiter: RateLimiter,
        clicks: ClickSink,
        invalidator: Invalidator,
        counter: CounterSource | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.cache = cache
        self.limiter = limiter
        self.clicks = clicks
        self.invalidator = invalidator
        self.clock = clock
        self.stats = Stats()
        # "Cache off" means every cache: Redis and the in-process one.
        self.local: LocalCache[object] = LocalCache(settings.local_cache_size if settings.cache_enabled else 0,
                                                    settings.local_cache_ttl_s)
        self.redis_breaker = CircuitBreaker("redis", failure_threshold=settings.redis_breaker_failures,
                                            reset_after_s=settings.redis_breaker_reset_s)
        self.db_breaker = CircuitBreaker("postgres", failure_threshold=settings.db_breaker_failures,
                                         reset_after_s=settings.db_breaker_reset_s)
        self._flight: SingleFlight[str, Link | None] = SingleFlight()
        # Codes deleted while Redis could not be told; retried until it can, ignored in Redis until then.
        self.pending_invalidations: set[str] = set()
        self._own_hosts = settings.all_own_hosts
        self._counter = (
            CounterCodes(counter, settings.counter_lease_size,
                         domain.CounterObfuscator(settings.id_secret.get_secret_value().encode(), settings.code_length))
            if counter is not None else None
        )

    @property
    def coalesced(self) -> int:
        """Lookups that waited for another's database read instead of reading themselves."""
        return self._flight.coalesced

    # --- the hot path ------------------------------------------------------------------------

    async def resolve(self, code: str) -> Link:
        """The link behind ``code``, through the local cache, Redis, then PostgreSQL."""
        hit, value = self.local.get(code)
        if hit:
            self.stats.local_hits += 1
            return self._live(code, value)
        if self.settings.cache_enabled and self.redis_breaker.allow():
            try:
                entry = await self.cache.get(code)
                self.redis_breaker.record_success()
            except CacheUnavailable:
                self.redis_breaker.record_failure()
                self.stats.cache_errors += 1
                entry = None
            if entry is not None and code not in self.pending_invalidations:
                self.stats.redis_hits += 1
                self.local.put(code, entry.link if entry.found and entry.link else _MISSING)
                return self._live(code, entry.link)
        self.stats.misses += 1
        if self.settings.single_flight:
            link = await self._flight.do(code, lambda: self._load(code))
        else:
            link = await self._load(code)
        self.local.put(code, link if link is not None else _MISSING, None if link else self.settings.negative_ttl_s)
        return self._live(code, link)

    def _live(self, code: str, value: object) -> Link:
        if value is None or value is _MISSING:
            raise NotFound(f"no link with code {code!r}", code="link_not_found")
        assert isinstance(value, Link)
        if value.expires_at is not None:  # most links never expire: no clock read on their hot path
            value.require_live(self.clock())
        return value

    async def _load(self, code: str) -> Link | None:
        link = await self._db(lambda: self.repo.get(code))
        self.stats.db_reads += 1
        if self.settings.cache_enabled and self.redis_breaker.allow():
            try:
                if link is None:
                    await self.cache.put_missing(code, self.settings.negative_ttl_s)
                else:
                    await self.cache.put(link, self._ttl())
                self.redis_breaker.record_success()
            except CacheUnavailable:
                self.redis_breaker.record_failure()
                self.stats.cache_errors += 1
        return link

    def _ttl(self) -> int:
        """TTL with jitter, so that keys cached together do not all expire together."""
        base = self.settings.cache_ttl_s
        return max(1, int(base * (1 + random.uniform(-self.settings.cache_ttl_jitter, self.settings.cache_ttl_jitter))))

    async def _db(self, fn):
        try:
            return await self.db_breaker.call(fn, (StoreUnavailable,))
        except (CircuitOpen, StoreUnavailable):
            raise Unavailable("the link database is unavailable; retry shortly", retry_after_s=2,
                              code="database_unavailable") from None

    def clicked(self, code: str) -> None:
        if self.settings.analytics_enabled:
            self.clicks.record(code)

    # --- writes ------------------------------------------------------------------------------

    async def shorten(self, cmd: ShortenUrl, client: str) -> LinkCreated:
        """A new link: validated, its code chosen, then one Redis round trip (the client's token, and
        whether the code sits in a cache as "not found") and one INSERT. Only a code that some cache
        holds as missing (an alias probed before it existed, a link deleted and created again) costs
        the forgetting as well."""
        url = domain.validate_url(cmd.url, self._own_hosts, self.settings.max_url_length)
        expires_in = domain.validate_expiry(cmd.expires_in)
        alias = domain.validate_alias(cmd.alias) if cmd.alias is not None else None
        code = alias or await self._next_code(url, 0)
        allowance = await self._limit(client, code)
        now = self.clock()
        expires_at = now + expires_in if expires_in else None
        token = domain.new_delete_token()
        token_digest, url_digest = domain.token_digest(token), domain.url_digest(url)
        if alias is not None:
            link = Link(alias, url, now, expires_at, custom_alias=True)
            outcome = await self._db(lambda: self.repo.insert(link, url_digest, token_digest))
            if not outcome.inserted:
                raise Conflict(f"alias {cmd.alias!r} is taken", code="alias_taken")
            return await self._created(link, token, allowance.cached_missing)
        for attempt in range(MAX_CODE_ATTEMPTS):
            if attempt:
                code = await self._next_code(url, attempt)
            if code.lower() in domain.RESERVED:
                continue
            link = Link(code, url, now, expires_at)
            outcome = await self._db(lambda: self.repo.insert(link, url_digest, token_digest))
            if outcome.inserted:
                # A code other than the one asked about: whether a cache holds it is unknown.
                return await self._created(link, token, allowance.cached_missing or attempt > 0)
            if outcome.existing_by_url is not None:
                existing = outcome.existing_by_url
                if not existing.expired(now):
                    return LinkCreated(existing, None, created=False)
                await self._db(lambda: self.repo.delete_expired_url(url_digest))
                await self._forget(existing.code)
                continue
            self.stats.collisions += 1
        raise Unavailable("no free code found; retry", code="code_space_busy")

    async def _next_code(self, url: str, attempt: int) -> str:
        scheme = self.settings.id_scheme
        if scheme == "hash":
            return domain.hash_code(url, attempt, self.settings.code_length)
        if scheme == "random":
            return domain.random_code(self.settings.code_length)
        assert self._counter is not None, "counter scheme needs a CounterSource"
        try:
            return await self._counter.next_code()
        except (CacheUnavailable, StoreUnavailable):
            raise Unavailable("the ID allocator (Redis) is unavailable; retry shortly", code="ids_unavailable") from None

    async def _created(self, link: Link, token: str, cached_missing: bool) -> LinkCreated:
        self.local.discard(link.code)  # this instance's own "not found", if it had one: no I/O
        if cached_missing:  # a negative cache entry from an earlier probe: forget it everywhere
            await self._forget(link.code)
        return LinkCreated(link, token, created=True)

    async def _limit(self, client: str, code: str) -> Allowance:
        try:
            allowance = await self.limiter.acquire(client, code)
        except CacheUnavailable:
            # Fail open: a Redis outage must not stop creates; the breach is counted. Whether the
            # code is cached as missing is unknown, so it is forgotten to be safe.
            self.stats.limiter_errors += 1
            return Allowance(0.0, cached_missing=True)
        if allowance.wait_s > 0:
            self.stats.rate_limited += 1
            raise RateLimited(f"too many links created from {client}; retry in {allowance.wait_s:.1f}s",
                              retry_after_s=allowance.wait_s)
        return allowance

    async def get_link(self, code: str, consistency: ReadConsistency = STALE_OK) -> Link:
        link = await self._db(lambda: self.repo.get_with_clicks(code, consistency))
        if link is None:
            raise NotFound(f"no link with code {code!r}", code="link_not_found")
        return link

    async def read_token(self) -> str | None:
        """What a client may send back to read its own write from a replica (read-your-writes): the
        primary's WAL position now; None without replicas, or when the primary cannot say, since the
        write itself has succeeded and a token is an option, not part of it."""
        try:
            return await self.repo.commit_lsn()
        except StoreUnavailable:
            return None

    async def delete(self, code: str, token: str) -> None:
        digest = await self._db(lambda: self.repo.token_digest(code))
        if digest is None:
            raise NotFound(f"no link with code {code!r}", code="link_not_found")
        if not domain.token_matches(token, digest):
            raise Forbidden("the delete token does not match this link", code="bad_delete_token")
        await self._db(lambda: self.repo.delete(code))
        await self._forget(code)

    async def _forget(self, code: str) -> None:
        """Drop ``code`` from every cache: this instance's, Redis, and the other instances'."""
        self.local.discard(code)
        try:
            await self.cache.delete(code)
            await self.invalidator.invalidated(code)
            self.pending_invalidations.discard(code)
        except CacheUnavailable:
            # A hung (not dead) Redis would keep the stale entry; retry_invalidations() tells it
            # later. Other instances' local copies expire within local_cache_ttl_s.
            self.stats.cache_errors += 1
            self.pending_invalidations.add(code)
            log.warning("cache_invalidation_deferred", code=code)

    async def retry_invalidations(self) -> None:
        for code in list(self.pending_invalidations):
            await self._forget(code)
