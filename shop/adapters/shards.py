"""The shard router: a pool per PostgreSQL server, the cached shard map, and fenced writes.

Every instance caches the map. It is told of a new version by ``NOTIFY shop_shard_map`` (the
reshard sends it with each map it saves) on a connection of its own to the first server, and
reloads it whole; it also reloads when that connection comes back (notifications sent meanwhile
are lost) and, as a last resort, every ``shard_map_poll_s``. A stale cache is harmless for
writes: each write calls ``shop_fence(bucket)`` on the server the map names, which refuses when
that server is moving the bucket ("moving": wait and retry) or no longer holds it ("moved":
reload the map and retry). So a write can never land on a server that gave the bucket away.

A fenced write is one statement: the fence is its first CTE, every change it makes is guarded by
the fence's verdict, and its result carries the verdict (:data:`FENCE`, :data:`FENCED`). In
autocommit the fence's lock is held exactly as long as the write's own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson

from services.clients.postgres import UNREACHABLE, PgPool, dsn
from services.clients.read_routing import ReadRouter, read_router
from services.consistency import FROM_PRIMARY, ReadConsistency
from services.logging import get_logger
from services.resources import HealthCheck
from shop.config import ShopSettings
from shop.ports import ShardUnavailable
from shop.sharding import ShardMap

T = TypeVar("T")
log = get_logger(__name__)

MAP_CHANNEL = "shop_shard_map"
_MAP = "SELECT version, shards::text AS shards, assignment::text AS assignment FROM shard_map ORDER BY version DESC LIMIT 1"
_VERSION = "SELECT max(version) FROM shard_map"
# The first CTE of every fenced write ($1 is the bucket), and the guard of each change it makes.
FENCE = "fence AS (SELECT shop_fence($1::integer) AS verdict)"
FENCED = "(SELECT verdict FROM fence) = 'ok'"
VERDICT = "(SELECT verdict FROM fence) AS verdict"


class Fenced(Exception):
    def __init__(self, verdict: str) -> None:
        super().__init__(verdict)
        self.verdict = verdict


def map_from_row(row: Any) -> ShardMap:
    shards, assignment = row["shards"], row["assignment"]
    shards = orjson.loads(shards) if isinstance(shards, (str, bytes)) else shards
    assignment = orjson.loads(assignment) if isinstance(assignment, (str, bytes)) else assignment
    return ShardMap(row["version"], tuple(shards), tuple(assignment))


class ShardRouter:
    name = "shards"
    # One shard down is a partial outage, not a reason for the balancer to drop every instance:
    # users on the other shards keep shopping, so readiness says "degraded" and stays in rotation.
    critical = False

    def __init__(self, settings: ShopSettings, *, watch: bool = True, pool_size: int | None = None) -> None:
        self._settings = settings
        self._first = str(settings.database_urls[0])
        self._deadline_s = settings.database_timeout_s
        self._pool_size = pool_size or settings.db_pool_size + settings.db_max_overflow
        self._pools: dict[str, PgPool] = {}
        self._readers: dict[str, ReadRouter] = {}  # per server: its replicas, when its URL lists any
        self._map: ShardMap | None = None
        self._watch = watch
        self._task: asyncio.Task | None = None
        self._listener: asyncpg.Connection | None = None
        self._changed = asyncio.Event()
        self.map_reloads = 0
        self.fenced_writes = 0
        self.queries: Tally = Tally()  # statements (or transactions) per shard index, for per-shard rates

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self._pool_for(self._first)
        try:
            await self.reload()
        except ShardUnavailable as exc:  # start anyway; readiness says the shards are down
            log.warning("shard_map_unavailable", error=str(exc))
        if self._watch:
            self._task = asyncio.create_task(self._follow(), name="shard-map-follow")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._listener is not None:
            self._listener.terminate()
            self._listener = None
        for pool in [*self._pools.values(), *self._readers.values()]:
            await pool.stop()
        self._pools.clear()
        self._readers.clear()

    async def _pool_for(self, url: str) -> PgPool:
        pool = self._pools.get(url)
        if pool is None:
            pool = PgPool(url, timeout_s=self._deadline_s, max_size=self._pool_size, name="shard",
                          unavailable=ShardUnavailable)
            self._pools[url] = pool
            await pool.start()
            reader = self._readers[url] = read_router(pool, self._settings, max_size=self._pool_size)
            await reader.start()  # no connection until a read asks for one
        return pool

    # --- the map -------------------------------------------------------------------------
    @property
    def map(self) -> ShardMap:
        if self._map is None:
            raise ShardUnavailable("the shard map could not be read from the first PostgreSQL server yet")
        return self._map

    def shard_count(self) -> int:
        return len(self.map.shards)

    async def reload(self) -> ShardMap:
        row = await (await self._pool_for(self._first)).fetchrow(_MAP)
        if row is None:
            raise ShardUnavailable("no shard map: run the shop's migrations (python -m shop.migrate)")
        loaded = map_from_row(row)
        if self._map is None or loaded.version != self._map.version:
            for url in loaded.shards:
                await self._pool_for(url)
            self._map = loaded
            self.map_reloads += 1
            log.info("shard_map_loaded", version=loaded.version, shards=len(loaded.shards))
        return loaded

    async def _listen(self) -> None:
        """(Re)open the connection that hears of new maps; reload, since what was said meanwhile is lost."""
        if self._listener is not None and not self._listener.is_closed():
            return
        conn = await asyncio.wait_for(asyncpg.connect(dsn(self._first), timeout=self._deadline_s), self._deadline_s * 2)
        await conn.add_listener(MAP_CHANNEL, lambda *_: self._changed.set())
        conn.add_termination_listener(lambda *_: self._changed.set())
        self._listener = conn
        self._changed.set()

    async def _follow(self) -> None:
        while True:
            try:
                await self._listen()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self._settings.shard_map_poll_s)
                self._changed.clear()
                await self.reload()
            except (ShardUnavailable, asyncpg.PostgresError, *UNREACHABLE) as exc:
                log.warning("shard_map_follow_failed", error=str(exc)[:200])
                if self._listener is not None:
                    self._listener.terminate()
                    self._listener = None
                await asyncio.sleep(1.0)

    # --- reads and writes ------------------------------------------------------------------
    def _url(self, shard: int) -> str:
        """The shard's server; refused while it has no pool (a map loads once every server it names has one)."""
        url = self.map.shards[shard]
        if url not in self._pools:
            raise ShardUnavailable(f"no connection pool for shard {shard} yet")
        return url

    def _pool(self, shard: int) -> PgPool:
        return self._pools[self._url(shard)]

    def pool(self, shard: int) -> PgPool:
        return self._pool(shard)

    async def read(self, shard: int, fn: Callable[[asyncpg.Connection], Awaitable[T]],
                   deadline_s: float | None = None) -> T:
        self.queries[shard] += 1
        return await self._pool(shard).run(fn, deadline_s=deadline_s)

    async def fetch(self, shard: int, sql: str, *args: Any, deadline_s: float | None = None,
                    consistency: ReadConsistency = FROM_PRIMARY) -> list:
        """Rows from the shard's primary, or from one of its replicas when ``consistency`` allows it."""
        self.queries[shard] += 1
        return await self._reader(shard).read(lambda c: c.fetch(sql, *args), consistency, deadline_s=deadline_s)

    async def fetchrow(self, shard: int, sql: str, *args: Any,
                       consistency: ReadConsistency = FROM_PRIMARY) -> asyncpg.Record | None:
        self.queries[shard] += 1
        return await self._reader(shard).read(lambda c: c.fetchrow(sql, *args), consistency)

    def _reader(self, shard: int) -> ReadRouter:
        return self._readers[self._url(shard)]  # the same refusals as a primary's read

    def readers(self) -> list[ReadRouter]:
        return list(self._readers.values())

    async def commit_lsn(self, shard: int) -> str | None:
        """The shard's read-your-writes token (None when it has no replica)."""
        return await self._reader(shard).commit_lsn()

    async def fenced(self, bucket: int, sql: str, *args: Any) -> asyncpg.Record:
        """One fenced statement (``$1`` is the bucket, its result has a ``verdict`` column) on the
        server holding ``bucket``; a bucket on the move is waited for up to ``moving_bucket_wait_s``."""
        async def once(conn: asyncpg.Connection) -> asyncpg.Record:
            row = await conn.fetchrow(sql, bucket, *args)
            if row["verdict"] != "ok":
                raise Fenced(row["verdict"])
            return row

        return await self._fenced_retry(bucket, once, transaction=False)

    async def write(self, bucket: int, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``fn`` in a transaction that starts with the fence, on the server holding ``bucket``: for the
        rare writes of several statements (a retried checkout's key); the hot ones use :meth:`fenced`."""
        async def once(conn: asyncpg.Connection) -> T:
            verdict = await conn.fetchval("SELECT shop_fence($1::integer)", bucket)
            if verdict != "ok":
                raise Fenced(verdict)
            return await fn(conn)

        return await self._fenced_retry(bucket, once, transaction=True)

    async def _fenced_retry(self, bucket: int, once, *, transaction: bool):
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._settings.moving_bucket_wait_s
        while True:
            shard = self.map.shard_of_bucket(bucket)
            self.queries[shard] += 1
            try:
                return await self._pool(shard).run(once, transaction=transaction)
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
        return [self._pools[u].in_use() if u in self._pools else (0, self._pool_size) for u in self._map.shards]

    def health_checks(self) -> dict[str, HealthCheck]:
        shards = self._map.shards if self._map else (self._first,)

        def check(url: str) -> HealthCheck:
            async def select_one() -> None:
                pool = await self._pool_for(url)
                if not pool.recently_ok():
                    await pool.fetchval("SELECT 1")
            return select_one

        return {f"postgres-{i}": check(url) for i, url in enumerate(shards)}
