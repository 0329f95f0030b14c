"""The outbox table as the relay sees it: leadership, wake-ups and batches (PostgreSQL).

Leadership is a session-level advisory lock held on the relay's own connection: relays
started for redundancy stand by, and when the leader's connection dies PostgreSQL releases the
lock and one of them takes over. The same connection LISTENs for the ``pg_notify`` each
db-first send issues, so the relay wakes within a millisecond instead of a polling interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from messaging.adapters.sql import NOTIFY_CHANNEL, _Sql, message_from
from messaging.ports import OutboxBatch, StoreUnavailable
from services.clients.postgres import UNREACHABLE

RELAY_LOCK = 727_102  # any constant; the same for every relay of this database
# Rows still in flight are left out by id, not by a high-water mark: ids are taken at insert and
# transactions commit out of id order (across conversations), so "id > the last one published"
# would skip a row that committed late. Within a conversation the last_seq row lock makes id,
# seq and commit order the same.
_CLAIM = text(
    "SELECT o.id, m.conversation_id, m.seq, m.message_id, m.sender, m.body, m.sent_at "
    "FROM message_outbox o JOIN messages m ON m.conversation_id = o.conversation_id AND m.seq = o.seq "
    "WHERE NOT (o.id = ANY(CAST(:busy AS bigint[]))) ORDER BY o.id LIMIT :n"
)
_DONE = text("DELETE FROM message_outbox WHERE id = ANY(CAST(:ids AS bigint[]))")


class PgOutbox(_Sql):
    name = "outbox-leader"
    critical = False

    def __init__(self, engine: Callable[[], AsyncEngine], dsn: str, deadline_s: float) -> None:
        super().__init__(engine, deadline_s)
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._leading = False
        self._wake = asyncio.Event()

    async def start(self) -> None:
        pass  # the connection is opened by lead(), so a relay starts while PostgreSQL is down

    async def stop(self) -> None:
        await self._drop()

    def health_checks(self) -> dict:
        return {}

    async def _drop(self) -> None:
        conn, self._conn, self._leading = self._conn, None, False
        if conn is not None and not conn.is_closed():
            conn.terminate()  # releases the lock at once; a polite close could hang on a dead server

    async def lead(self) -> bool:
        try:
            if self._conn is None or self._conn.is_closed():
                self._leading = False
                self._conn = await asyncpg.connect(self._dsn, timeout=self._deadline_s)
                await self._conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
                self._conn.add_termination_listener(lambda *_: self._wake.set())
            if not self._leading:
                self._leading = bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK,
                                                               timeout=self._deadline_s))
            else:
                await self._conn.fetchval("SELECT 1", timeout=self._deadline_s)
        except (*UNREACHABLE, asyncpg.PostgresError) as exc:
            await self._drop()
            raise StoreUnavailable(str(exc)[:200]) from exc
        return self._leading

    async def wait(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    async def claim(self, limit: int, busy: Sequence[int] = ()) -> OutboxBatch:
        async def q() -> OutboxBatch:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_CLAIM, {"n": limit, "busy": list(busy)})).all()
            return OutboxBatch([r.id for r in rows], [message_from(r) for r in rows])

        return await self._run(q)

    async def done(self, ids: Sequence[int]) -> None:
        async def q() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(_DONE, {"ids": list(ids)})

        await self._run(q)
