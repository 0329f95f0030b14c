"""PostgreSQL through SQLAlchemy 2 async with asyncpg: one engine per server (shard)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.resources import HealthCheck

T = TypeVar("T")
UNREACHABLE = (OperationalError, PoolTimeout, OSError, asyncio.TimeoutError, ConnectionError)


def _swallow(task: asyncio.Task) -> None:
    """Retrieve the abandoned operation's outcome, so that asyncio does not log it as unhandled."""
    if not task.cancelled():
        task.exception()


async def within_deadline(fn: Callable[[], Awaitable[T]], deadline_s: float, unavailable: type[Exception]) -> T:
    """Run a database operation with one deadline for all of it; ``unavailable`` when PostgreSQL
    did not answer in time or could not be reached.

    One deadline for the whole operation (pool checkout, pre-ping, query, commit): each step has
    its own timeout, and three of them in a row is not "fail fast". The operation races the
    deadline instead of asyncio.wait_for, which would also wait for the cancelled operation to
    clean up (a rollback on a hung server has a timeout of its own); the cleanup finishes in the
    background and the caller gets its answer now.
    """
    task = asyncio.ensure_future(fn())
    try:
        done, _ = await asyncio.wait({task}, timeout=deadline_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_swallow)
        raise unavailable(f"no answer from PostgreSQL within {deadline_s}s")
    try:
        return task.result()
    except UNREACHABLE as exc:
        raise unavailable(str(exc)[:200]) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise unavailable(str(exc)[:200]) from exc
        raise


def asyncpg_url(url: str) -> str:
    """``postgresql://...`` as users write it, turned into the driver URL SQLAlchemy wants."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a URL: {url!r}")
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


class DeadlineSql:
    """Base of a design's SQL adapter: its engine (a callable, since the engine exists only once the
    lifespan started it) and :func:`within_deadline` around every operation, raising the design's
    own ``unavailable`` error."""

    unavailable: type[Exception] = ConnectionError

    def __init__(self, engine: Callable[[], AsyncEngine], deadline_s: float = 1.0) -> None:
        self._get_engine = engine
        self._deadline_s = deadline_s

    @property
    def _engine(self) -> AsyncEngine:
        return self._get_engine()

    async def _run(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await within_deadline(fn, self._deadline_s, self.unavailable)


class PostgresShards:
    def __init__(
        self,
        urls: list[str],
        *,
        timeout_s: float,
        pool_size: int = 10,
        max_overflow: int = 10,
        critical: bool = False,
    ) -> None:
        if not urls:
            raise ValueError("at least one PostgreSQL URL is needed")
        self.name = "postgres"
        self.critical = critical
        self._urls = [asyncpg_url(u) for u in urls]
        self._timeout_s = timeout_s
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._engines: list[AsyncEngine] = []

    @property
    def count(self) -> int:
        return len(self._urls)

    def engine(self, shard: int = 0) -> AsyncEngine:
        if not self._engines:
            raise RuntimeError("PostgresShards used before start()")
        return self._engines[shard]

    @property
    def engines(self) -> list[AsyncEngine]:
        return list(self._engines)

    async def start(self) -> None:
        self._engines = [
            create_async_engine(
                url,
                pool_size=self._pool_size,
                max_overflow=self._max_overflow,
                pool_timeout=self._timeout_s,
                pool_pre_ping=True,
                connect_args={"timeout": self._timeout_s, "command_timeout": self._timeout_s},
            )
            for url in self._urls
        ]

    async def stop(self) -> None:
        for engine in self._engines:
            await engine.dispose()
        self._engines = []

    def pool_use(self) -> list[tuple[int, int]]:
        """(connections checked out, pool size) per shard, read without I/O."""
        return [(engine.pool.checkedout(), engine.pool.size()) for engine in self._engines]

    async def _select_one(self, shard: int) -> None:
        async with self.engine(shard).connect() as conn:
            await conn.execute(text("SELECT 1"))

    def health_checks(self) -> dict[str, HealthCheck]:
        return {f"postgres-{i}": partial(self._select_one, i) for i in range(self.count)}
