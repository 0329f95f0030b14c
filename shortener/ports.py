"""The shortener's ports: what the use cases need from storage, cache, limiter and analytics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.consistency import STALE_OK, ReadConsistency
from services.errors import DependencyUnavailable
from shortener.domain import Link, LinkClicked


@dataclass(frozen=True)
class InsertOutcome:
    """What an insert found: ``inserted``, or the row that blocked it (same code or same URL)."""

    inserted: bool
    existing_by_code: Link | None = None
    existing_by_url: Link | None = None


class LinkRepository(Protocol):
    async def get(self, code: str) -> Link | None: ...

    async def get_with_clicks(self, code: str, consistency: ReadConsistency = STALE_OK) -> Link | None: ...

    async def commit_lsn(self) -> str | None:
        """The WAL position a read can wait for to see every write so far (None: reads are not routed)."""
        ...

    async def insert(self, link: Link, url_digest: bytes, token_digest: bytes) -> InsertOutcome: ...

    async def insert_many(self, rows: list[tuple[Link, bytes, bytes]]) -> set[str]:
        """Bulk import of ``(link, url digest, token digest)``; the codes inserted (taken ones skipped)."""
        ...

    async def token_digest(self, code: str) -> bytes | None: ...

    async def delete(self, code: str) -> bool: ...

    async def delete_expired_url(self, url_digest: bytes) -> int: ...

    async def apply_clicks(self, batch: LinkClicked) -> bool:
        """Add a batch's counts once; False when the batch was applied before (a redelivery)."""
        ...

    async def record_lease(self, end: int) -> None: ...

    async def max_lease(self) -> int: ...


@dataclass(frozen=True)
class CacheEntry:
    link: Link | None  # None with found=True means "known not to exist" (negative cache)
    found: bool


class LinkCache(Protocol):
    async def get(self, code: str) -> CacheEntry | None:
        """None on a miss."""
        ...

    async def put(self, link: Link, ttl_s: int) -> None: ...

    async def put_missing(self, code: str, ttl_s: int) -> None: ...

    async def delete(self, code: str) -> None: ...


@dataclass(frozen=True)
class Allowance:
    wait_s: float  # 0: allowed; else the seconds until a token is available
    cached_missing: bool = False  # the code asked about sits in the cache as "no such link"


class RateLimiter(Protocol):
    async def acquire(self, client: str, code: str | None = None) -> Allowance:
        """Take a token for ``client`` and, in the same round trip, whether ``code`` is cached as
        missing (a create then has a stale "not found" to forget; otherwise it has nothing to)."""
        ...


class CounterSource(Protocol):
    async def lease(self, size: int) -> tuple[int, int]:
        """A half-open range [start, end) of counter values for this instance alone."""
        ...


class ClickSink(Protocol):
    def record(self, code: str) -> None:
        """Count a click without waiting on anything (a redirect never waits on analytics)."""
        ...


class Invalidator(Protocol):
    async def invalidated(self, code: str) -> None:
        """Tell every instance to drop ``code`` from its in-process cache."""
        ...


class StoreUnavailable(DependencyUnavailable):
    dependency = "postgresql"


class CacheUnavailable(DependencyUnavailable):
    dependency = "redis"
