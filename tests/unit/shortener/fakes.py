"""In-memory fakes of the ports in ``shortener/ports.py``, and ``make_service`` to wire them.

Every fake counts its calls in ``calls`` (a Counter by method name) and can be switched
``down`` to raise the exception its real adapter raises when its server is unreachable.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from services.consistency import STALE_OK, ReadConsistency
from shortener import domain
from shortener.config import ShortenerSettings
from shortener.domain import Link, LinkClicked
from shortener.ports import (
    Allowance,
    CacheEntry,
    CacheUnavailable,
    InsertOutcome,
    StoreUnavailable,
)
from shortener.service import ShortenerService


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Row:
    link: Link
    url_digest: bytes
    token_digest: bytes
    clicks: int = 0


class FakeRepo:
    """LinkRepository: rows by code, plus the unique index "one generated link per URL digest"."""

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self.rows: dict[str, Row] = {}
        self.batches: set[str] = set()
        self.leases: list[int] = []
        self.calls: Counter[str] = Counter()
        self.down = False
        self.delay = 0.0  # seconds each get() waits (a slow database)
        self.clock = clock
        self.consistencies: list[ReadConsistency] = []  # what each link-stats read asked for
        self.lsn: str | None = None  # what commit_lsn answers (None: no replicas)

    @property
    def gets(self) -> int:
        return self.calls["get"]

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        self._check(method)

    def _check(self, method: str) -> None:
        if self.down:
            raise StoreUnavailable(f"fake database is down ({method})")

    def add(self, link: Link, token: str = "token", clicks: int = 0) -> None:
        """Seed a row directly (no validation, no uniqueness check), e.g. an already expired link."""
        self.rows[link.code] = Row(link, domain.url_digest(link.url), domain.token_digest(token), clicks)

    def _generated_by_digest(self, url_digest: bytes) -> Row | None:
        for row in self.rows.values():
            if row.url_digest == url_digest and not row.link.custom_alias:
                return row
        return None

    async def get(self, code: str) -> Link | None:
        self.calls["get"] += 1
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow database is slow to fail too
        self._check("get")
        row = self.rows.get(code)
        return replace(row.link, clicks=0) if row else None

    async def get_with_clicks(self, code: str, consistency: ReadConsistency = STALE_OK) -> Link | None:
        self._enter("get_with_clicks")
        self.consistencies.append(consistency)
        row = self.rows.get(code)
        return replace(row.link, clicks=row.clicks) if row else None

    async def insert(self, link: Link, url_digest: bytes, token_digest: bytes) -> InsertOutcome:
        self._enter("insert")
        by_url = None if link.custom_alias else self._generated_by_digest(url_digest)
        if link.code not in self.rows and by_url is None:
            self.rows[link.code] = Row(link, url_digest, token_digest)
            return InsertOutcome(inserted=True)
        if by_url is not None:
            return InsertOutcome(inserted=False, existing_by_url=by_url.link)
        return InsertOutcome(inserted=False, existing_by_code=self.rows[link.code].link)

    async def insert_many(self, rows: list[tuple[Link, bytes, bytes]]) -> set[str]:
        self._enter("insert_many")
        inserted = set()
        for link, url_digest, token_digest in rows:
            taken = link.code in self.rows or (not link.custom_alias and self._generated_by_digest(url_digest))
            if not taken:
                self.rows[link.code] = Row(link, url_digest, token_digest)
                inserted.add(link.code)
        return inserted

    async def commit_lsn(self) -> str | None:
        self._enter("commit_lsn")
        return self.lsn

    async def token_digest(self, code: str) -> bytes | None:
        self._enter("token_digest")
        row = self.rows.get(code)
        return row.token_digest if row else None

    async def delete(self, code: str) -> bool:
        self._enter("delete")
        return self.rows.pop(code, None) is not None

    async def delete_expired_url(self, url_digest: bytes) -> int:
        self._enter("delete_expired_url")
        now = self.clock()
        doomed = [code for code, row in self.rows.items()
                  if row.url_digest == url_digest and not row.link.custom_alias
                  and row.link.expires_at is not None and row.link.expires_at <= now]
        for code in doomed:
            del self.rows[code]
        return len(doomed)

    async def apply_clicks(self, batch: LinkClicked) -> bool:
        self._enter("apply_clicks")
        if batch.batch_id in self.batches:
            return False
        self.batches.add(batch.batch_id)
        for code, n in batch.counts.items():
            if code in self.rows:
                self.rows[code].clicks += n
        return True

    async def record_lease(self, end: int) -> None:
        self._enter("record_lease")
        self.leases.append(end)

    async def max_lease(self) -> int:
        self._enter("max_lease")
        return max(self.leases, default=0)


class FakeCache:
    """LinkCache: entries by code; ``ttls`` keeps the TTL of the last write of each code."""

    def __init__(self) -> None:
        self.entries: dict[str, CacheEntry] = {}
        self.ttls: dict[str, int] = {}
        self.calls: Counter[str] = Counter()
        self.down = False

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        if self.down:
            raise CacheUnavailable(f"fake cache is down ({method})")

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    async def get(self, code: str) -> CacheEntry | None:
        self._enter("get")
        return self.entries.get(code)

    async def put(self, link: Link, ttl_s: int) -> None:
        self._enter("put")
        self.entries[link.code] = CacheEntry(link, found=True)
        self.ttls[link.code] = ttl_s

    async def put_missing(self, code: str, ttl_s: int) -> None:
        self._enter("put_missing")
        self.entries[code] = CacheEntry(None, found=True)
        self.ttls[code] = ttl_s

    async def delete(self, code: str) -> None:
        self._enter("delete")
        self.entries.pop(code, None)
        self.ttls.pop(code, None)


class FakeLimiter:
    """RateLimiter: answers ``wait`` (0 = allowed), and whether the code is cached as missing in
    ``cache`` (the same Redis as the link cache's), and remembers who asked."""

    def __init__(self, wait: float = 0.0, cache: "FakeCache | None" = None) -> None:
        self.wait = wait
        self.cache = cache
        self.down = False
        self.clients: list[str] = []

    async def acquire(self, client: str, code: str | None = None) -> Allowance:
        self.clients.append(client)
        if self.down:
            raise CacheUnavailable("fake limiter is down")
        entry = self.cache.entries.get(code) if self.cache is not None and code is not None else None
        return Allowance(self.wait, cached_missing=entry is not None and entry.link is None)


class FakeClicks:
    """ClickSink: a Counter of clicked codes."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def record(self, code: str) -> None:
        self.counts[code] += 1


class FakeInvalidator:
    """Invalidator: the codes announced, in order."""

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.down = False

    async def invalidated(self, code: str) -> None:
        if self.down:
            raise CacheUnavailable("fake invalidation channel is down")
        self.codes.append(code)


class FakeCounter:
    """CounterSource: consecutive half-open ranges [start, start + size)."""

    def __init__(self, start: int = 0) -> None:
        self.next = start
        self.leases: list[tuple[int, int]] = []
        self.down = False

    async def lease(self, size: int) -> tuple[int, int]:
        if self.down:
            raise CacheUnavailable("fake counter is down")
        lease = (self.next, self.next + size)
        self.next += size
        self.leases.append(lease)
        return lease


@dataclass
class Fakes:
    repo: FakeRepo
    cache: FakeCache
    limiter: FakeLimiter
    clicks: FakeClicks
    invalidator: FakeInvalidator
    counter: FakeCounter


# Every setting the service reads, spelled out so that SHORTENER_* variables in the
# environment cannot change what a test sees.
DEFAULT_SETTINGS: dict[str, object] = dict(
    instance_id="test-1",
    public_url="http://sho.rt",
    own_hosts=["localhost", "127.0.0.1"],
    trusted_proxies=["127.0.0.1"],
    id_scheme="hash",
    code_length=7,
    id_secret="test-secret",
    counter_lease_size=1000,
    max_url_length=2048,
    redirect_status=302,
    cache_enabled=True,
    cache_ttl_s=3600,
    cache_ttl_jitter=0.1,
    negative_ttl_s=30,
    single_flight=True,
    local_cache_size=10_000,
    local_cache_ttl_s=5.0,
    redis_breaker_failures=3,
    redis_breaker_reset_s=60.0,  # long: a test never sees the breaker half-open by accident
    db_breaker_failures=5,
    db_breaker_reset_s=60.0,
    rate_limit_per_minute=600,
    rate_limit_burst=60,
    analytics_enabled=True,
)


def make_settings(**overrides: object) -> ShortenerSettings:
    return ShortenerSettings(**{**DEFAULT_SETTINGS, **overrides})


def make_service(**settings_overrides: object) -> tuple[ShortenerService, Fakes]:
    cache = FakeCache()
    fakes = Fakes(FakeRepo(), cache, FakeLimiter(cache=cache), FakeClicks(), FakeInvalidator(), FakeCounter())
    service = ShortenerService(
        make_settings(**settings_overrides),
        repo=fakes.repo,
        cache=fakes.cache,
        limiter=fakes.limiter,
        clicks=fakes.clicks,
        invalidator=fakes.invalidator,
        counter=fakes.counter,
    )
    return service, fakes


def link(code: str = "abc1234", url: str = "https://example.com/page", *, expires_at: datetime | None = None,
         custom_alias: bool = False) -> Link:
    """A Link created now (for seeding the fake repo)."""
    return Link(code=code, url=url, created_at=utcnow(), expires_at=expires_at, custom_alias=custom_alias)
