"""The outbox as the relay sees it: leadership, and the rows the gateways did not publish.

A gateway publishes each message it stored right after its commit and deletes the outbox rows
in batches once Kafka has them; a row still there after ``outbox_stale_s`` belongs to a gateway
that died in between (or could not reach Redis or Kafka). The relay sweeps those.

Leadership is a session-level advisory lock held on the relay's own connection: relays started
for redundancy stand by, and when the leader's connection dies PostgreSQL releases the lock and
one of them takes over. The sweep runs on that connection, so each sweep also proves it alive.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from messaging.adapters.sql import message_from
from messaging.ports import OutboxBatch, StoreUnavailable
from services.clients.postgres import UNREACHABLE

RELAY_LOCK = 727_102  # any constant; the same for every relay of this database
# Rows still in flight are left out by id: ids are taken at insert and transactions commit out
# of id order (across conversations), so "id > the last one published" would skip a row that
# committed late. Within a conversation the last_seq row lock makes id, seq and commit order the same.
_STALE = (
    "SELECT o.id, m.conversation_id, m.seq, m.message_id, m.sender, m.body, m.sent_at "
    "FROM message_outbox o JOIN messages m ON m.conversation_id = o.conversation_id AND m.seq = o.seq "
    "WHERE o.created_at < now() - make_interval(secs => $3) AND NOT (o.id = ANY($1::bigint[])) "
    "ORDER BY o.id LIMIT $2"
)
_DONE = "DELETE FROM message_outbox WHERE id = ANY($1::bigint[])"


class PgOutbox:
    name = "outbox-leader"
    critical = False

    def __init__(self, dsn: str, deadline_s: float) -> None:
        self._deadline_s = deadline_s
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._leading = False

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

    async def _on_leader(self, fn):
        try:
            return await fn(self._conn)
        except (*UNREACHABLE, asyncpg.PostgresError) as exc:
            await self._drop()
            raise StoreUnavailable(str(exc)[:200] or type(exc).__name__) from exc

    async def lead(self) -> bool:
        if self._leading and self._conn is not None and not self._conn.is_closed():
            return True
        try:
            if self._conn is None or self._conn.is_closed():
                self._leading = False
                self._conn = await asyncpg.connect(self._dsn, timeout=self._deadline_s)
        except (*UNREACHABLE, asyncpg.PostgresError) as exc:
            await self._drop()
            raise StoreUnavailable(str(exc)[:200] or type(exc).__name__) from exc
        self._leading = bool(await self._on_leader(
            lambda c: c.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK, timeout=self._deadline_s)))
        return self._leading

    async def stale(self, limit: int, older_than_s: float, busy: Sequence[int] = ()) -> OutboxBatch:
        rows = await self._on_leader(lambda c: c.fetch(_STALE, list(busy), limit, older_than_s,
                                                       timeout=self._deadline_s))
        return OutboxBatch([r["id"] for r in rows], [message_from(r) for r in rows])

    async def done(self, ids: Sequence[int]) -> None:
        await self._on_leader(lambda c: c.execute(_DONE, list(ids), timeout=self._deadline_s))
