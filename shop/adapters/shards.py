"""The shard router: an engine per PostgreSQL server, the cached shard map, and fenced writes.

Every instance caches the map and asks the first server for its version every
``shard_map_poll_s``; a new version is loaded whole. A stale cache is harmless for writes: each
write transaction starts with ``shop_fence(bucket)`` on the server the map names, which refuses
when that server is moving the bucket ("moving": wait and retry) or no longer holds it ("moved":
reload the map and retry). So a write can never land on a server that gave the bucket away.
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.clients.postgres import asyncpg_url, within_deadline
from services.logging import get_logger
from services.resources import HealthCheck
from shop.config import ShopSettings
from shop.domain import ShardUnavailable
from shop.sharding import ShardMap

T = TypeVar("T")
log = get_logger(__name__)

_MAP = text("SELECT version, shards, assignment FROM shard_map ORDER BY version DESC LIMIT 1")
_VERSION = text("SELECT max(version) FROM shard_map")
_FENCE = text("SELECT shop_fence(:b)")


class Fenced(Exception):
    def __init__(self, verdict: str) -> None:
        super().__init__(verdict)
        self.verdict = verdict


def map_from_row(row) -> ShardMap:
    shards = row.shards if isinstance(row.shards, list) else orjson.loads(row.shards)
    assignment = row.assignment if isinstance(row.assignment, list) else orjson.loads(row.assignment)
    return ShardMap(row.version, tuple(shards), tuple(assignment))


class ShardRouter:
    name = "shards"
    # One shard down is a partial outage, not a reason for the balancer to drop every instance:
    # users on the other shards keep shopping, so readiness says "degraded" and stays in rotation.
    critical = False

    def __init__(self, settings: ShopSettings, *, watch: bool = True) -> None:
        self._settings = settings
        self._first = str(settings.database_urls[0])
        self._deadline_s = settings.database_timeout_s
        self._engines: dict[str, AsyncEngine] = {}
        self._map: ShardMap | None = None
        self._watch = watch
        self._task: asyncio.Task | None = None
        self.map_reloads = 0
        self.fenced_writes = 0
        self.queries: Tally = Tally()  # transactions per shard index, for per-shard rates

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._engine_for(self._first)
        try:
            await self.reload()
        except ShardUnavailable as exc:  # start anyway; readiness says the shards are down
            log.warning("shard_map_unavailable", error=str(exc))
        if self._watch:
            self._task = asyncio.create_task(self._poll(), name="shard-map-poll")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for engine in self._engines.values():
            await engine.dispose()
        self._engines.clear()

    def _engine_for(self, url: str) -> AsyncEngine:
        if url not in self._engines:
            self._engines[url] = create_async_engine(
                asyncpg_url(url), pool_size=self._settings.db_pool_size,
                max_overflow=self._settings.db_max_overflow, pool_timeout=self._deadline_s, pool_pre_ping=True,
                connect_args={"timeout": self._deadline_s, "command_timeout": self._deadline_s})
        return self._engines[url]

    # --- the map -------------------------------------------------------------------------
    @property
    def map(self) -> ShardMap:
        if self._map is None:
            raise ShardUnavailable("the shard map could not be read from the first PostgreSQL server yet")
        return self._map

    def shard_count(self) -> int:
        return len(self.map.shards)

    async def reload(self) -> ShardMap:
        async def q() -> ShardMap | None:
            async with self._engine_for(self._first).connect() as conn:
                row = (await conn.execute(_MAP)).first()
            return map_from_row(row) if row else None

        loaded = await within_deadline(q, self._deadline_s, ShardUnavailable)
        if loaded is None:
            raise ShardUnavailable("no shard map: run the shop's migrations (python -m shop.migrate)")
        if self._map is None or loaded.version != self._map.version:
            self._map = loaded
            self.map_reloads += 1
            log.info("shard_map_loaded", version=loaded.version, shards=len(loaded.shards))
        return loaded

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._settings.shard_map_poll_s)
            try:
                async def q() -> int | None:
                    async with self._engine_for(self._first).connect() as conn:
                        return (await conn.execute(_VERSION)).scalar()

                version = await within_deadline(q, self._deadline_s, ShardUnavailable)
                if self._map is None or version != self._map.version:
                    await self.reload()
            except ShardUnavailable as exc:
                log.warning("shard_map_poll_failed", error=str(exc)[:200])

    # --- reads and writes ------------------------------------------------------------------
    def engine(self, shard: int) -> AsyncEngine:
        return self._engine_for(self.map.shards[shard])

    async def read(self, shard: int, fn: Callable[[AsyncConnection], Awaitable[T]],
                   deadline_s: float | None = None) -> T:
        self.queries[shard] += 1

        async def q() -> T:
            async with self.engine(shard).connect() as conn:
                return await fn(conn)

        return await within_deadline(q, deadline_s or self._deadline_s, ShardUnavailable)

    async def write(self, bucket: int, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``fn`` in a transaction on the server holding ``bucket``, behind the fence; a bucket
        on the move is waited for up to ``moving_bucket_wait_s``, then 503."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._settings.moving_bucket_wait_s
        while True:
            shard = self.map.shard_of_bucket(bucket)
            self.queries[shard] += 1

            async def q() -> T:
                async with self.engine(shard).begin() as conn:
                    verdict = (await conn.execute(_FENCE, {"b": bucket})).scalar()
                    if verdict != "ok":
                        raise Fenced(verdict)
                    return await fn(conn)

            try:
                return await within_deadline(q, self._deadline_s, ShardUnavailable)
            except Fenced as fenced:
                self.fenced_writes += 1
                if loop.time() >= give_up:
                    raise ShardUnavailable(f"bucket {bucket} is being moved to another shard; retry shortly",
                                           retry_after_s=1.0) from None
                if fenced.verdict == "moved":
                    await self.reload()  # the map moved on; until it shows it, do not spin
                await asyncio.sleep(0.02)

    # --- observability ---------------------------------------------------------------------
    def pool_use(self) -> list[tuple[int, int]]:
        if self._map is None:
            return []
        return [(e.pool.checkedout(), e.pool.size()) for e in (self._engine_for(u) for u in self._map.shards)]

    def health_checks(self) -> dict[str, HealthCheck]:
        shards = self._map.shards if self._map else (self._first,)

        def check(url: str) -> HealthCheck:
            async def select_one() -> None:
                async with self._engine_for(url).connect() as conn:
                    await conn.execute(text("SELECT 1"))
            return select_one

        return {f"postgres-{i}": check(url) for i, url in enumerate(shards)}
