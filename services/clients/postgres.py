"""PostgreSQL through SQLAlchemy 2 async with asyncpg: one engine per server (shard)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.resources import HealthCheck


def asyncpg_url(url: str) -> str:
    """``postgresql://...`` as users write it, turned into the driver URL SQLAlchemy wants."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a URL: {url!r}")
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


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
