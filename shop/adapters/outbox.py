"""The outbox as the relay sees it, one shard at a time; and the gauges the worker reports.

One relay at a time per shard (a transaction-level advisory lock, tried, never waited for), so
events of one order leave in the order they were written. The batch's rows are deleted in the
same transaction that read them, after Kafka acknowledged them: a crash in between publishes
them again (at least once; the consumers drop duplicates by event id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.clients.postgres import within_deadline
from shop.adapters.shards import ShardRouter
from shop.domain import ShardUnavailable

RELAY_LOCK = 727_403
_LOCK = text(f"SELECT pg_try_advisory_xact_lock({RELAY_LOCK})")
_BATCH = text("SELECT id, topic, order_id, payload::text AS payload FROM outbox ORDER BY id LIMIT :n")
_DELETE = text("DELETE FROM outbox WHERE id = ANY(CAST(:ids AS bigint[]))")
_BACKLOG = text("SELECT count(*) FROM outbox")
_HELD = text("SELECT count(*) FROM reservations WHERE status = 'held'")


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

    async def relay(self, shard: int, limit: int, publish: Publish) -> int:
        """Publish and delete one batch of ``shard``'s outbox; 0 when empty or another relay has it."""
        async def q() -> int:
            async with self._router.engine(shard).begin() as conn:
                if not (await conn.execute(_LOCK)).scalar():
                    return 0
                rows = [OutboxRow(r.id, r.topic, r.order_id, r.payload.encode())
                        for r in (await conn.execute(_BATCH, {"n": limit})).all()]
                if rows:
                    await publish(rows)
                    await conn.execute(_DELETE, {"ids": [r.id for r in rows]})
                return len(rows)

        # The deadline covers Kafka's acks too: a hung broker must not pin the shard's lock forever.
        return await within_deadline(q, self._timeout_s, ShardUnavailable)

    async def gauges(self, shard: int) -> tuple[int, int]:
        """(outbox rows waiting, reservations held) on one shard."""
        async def q(conn: AsyncConnection) -> tuple[int, int]:
            return (await conn.execute(_BACKLOG)).scalar_one(), (await conn.execute(_HELD)).scalar_one()

        return await self._router.read(shard, q)
