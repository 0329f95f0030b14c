"""The outbox as the relay sees it, one shard at a time; and the gauges the worker reports.

One relay at a time per shard: it holds a session advisory lock on a connection of its own to
that shard, which also LISTENs for the ``NOTIFY`` that every statement adding events sends (at
its commit), so the relay sleeps while nothing happens and wakes within a millisecond when
something does. A second relay stands by; when the leader's connection dies, PostgreSQL releases
the lock. So events of one order leave in the order they were written.

A batch is read, published, and deleted once Kafka acknowledged it, the delete riding on the
statement that reads the next batch (one statement a batch while events flow; the last batch's
rows are deleted on the next quiet poll): a crash in between publishes it again (at least once;
the consumers drop duplicates by event id). Only the shards that notified are read; all of them
on the fallback poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from services.clients.postgres import UNREACHABLE, dsn, within_deadline
from shop.adapters.shards import ShardRouter
from shop.adapters.sql_orders import OUTBOX_CHANNEL
from shop.ports import ShardUnavailable

RELAY_LOCK = 727_403
# The batch published last time deleted, and the next one read, in one statement ($1 the ids done).
_NEXT = ("WITH done AS (DELETE FROM outbox WHERE id = ANY($1::bigint[])) "
         "SELECT id, topic, order_id, payload::text AS payload FROM outbox WHERE id <> ALL($1::bigint[]) "
         "ORDER BY id LIMIT $2")
_DELETE = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
_GAUGES = ("SELECT (SELECT count(*) FROM outbox) AS backlog, "
           "(SELECT count(*) FROM reservations WHERE status = 'held') AS held")


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    order_id: int
    payload: bytes


Publish = Callable[[list[OutboxRow]], Awaitable[None]]


class SqlOutbox:
    def __init__(self, router: ShardRouter, publish_timeout_s: float = 10.0) -> None:
        self._router = router
        self._timeout_s = publish_timeout_s
        self._leaders: dict[str, asyncpg.Connection] = {}  # server URL -> the connection holding its lock
        self._published: dict[str, list[int]] = {}  # server URL -> ids published, not yet deleted
        self.notified: set[str] = set()  # servers whose statements added events since they were read
        self._wake = asyncio.Event()

    async def close(self) -> None:
        for conn in self._leaders.values():
            conn.terminate()  # releases the locks at once; a polite close could hang on a dead server
        self._leaders.clear()

    async def _lead(self, url: str) -> asyncpg.Connection | None:
        conn = self._leaders.get(url)
        if conn is not None and not conn.is_closed():
            return conn
        self._leaders.pop(url, None)
        deadline = self._router.pool(0).timeout_s
        try:
            conn = await asyncio.wait_for(asyncpg.connect(dsn(url), timeout=deadline), deadline * 2)
        except (asyncpg.PostgresError, *UNREACHABLE) as exc:
            raise ShardUnavailable(str(exc)[:200] or type(exc).__name__) from exc
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK, timeout=deadline):
                conn.terminate()
                return None  # another relay leads this shard
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._notified(url))
            conn.add_termination_listener(lambda *_: self._notified(url))
        except (asyncpg.PostgresError, *UNREACHABLE) as exc:
            conn.terminate()
            raise ShardUnavailable(str(exc)[:200] or type(exc).__name__) from exc
        self._leaders[url] = conn
        self._published.pop(url, None)  # a new leader reads from the start: what was published comes again
        self._notified(url)  # rows may have come while no one listened
        return conn

    def _notified(self, url: str) -> None:
        self.notified.add(url)
        self._wake.set()

    def url(self, shard: int) -> str:
        return self._router.map.shards[shard]

    async def relay(self, shard: int, limit: int, publish: Publish) -> int:
        """Publish one batch of ``shard``'s outbox (deleting the one before); 0 when it was empty or
        another relay leads it."""
        url = self.url(shard)
        self.notified.discard(url)

        async def q() -> int:
            conn = await self._lead(url)
            if conn is None:
                return 0
            done = self._published.pop(url, [])
            rows = [OutboxRow(r["id"], r["topic"], r["order_id"], r["payload"].encode())
                    for r in await conn.fetch(_NEXT, done, limit)]
            if rows:
                await publish(rows)
                self._published[url] = [r.id for r in rows]
            return len(rows)

        try:
            # The deadline covers Kafka's acks too: a hung broker must not pin the shard's lock forever.
            return await within_deadline(q, self._timeout_s, ShardUnavailable)
        except ShardUnavailable:
            conn = self._leaders.pop(url, None)
            if conn is not None:
                conn.terminate()
            raise

    async def tidy(self) -> None:
        """Delete what was published and is still in the outbox (events stopped coming for now)."""
        for url, ids in list(self._published.items()):
            conn = self._leaders.get(url)
            if conn is None or conn.is_closed():
                self._published.pop(url, None)
                continue
            try:
                await asyncio.wait_for(conn.execute(_DELETE, ids), self._timeout_s)
            except (asyncpg.PostgresError, *UNREACHABLE) as exc:
                raise ShardUnavailable(str(exc)[:200] or type(exc).__name__) from exc
            self._published.pop(url, None)

    async def wait(self, timeout_s: float) -> None:
        """Until a statement added events (a notification) or ``timeout_s`` passed."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    async def gauges(self, shard: int) -> tuple[int, int]:
        """(outbox rows waiting, reservations held) on one shard, in one statement."""
        row = await self._router.fetchrow(shard, _GAUGES)
        return row["backlog"], row["held"]
