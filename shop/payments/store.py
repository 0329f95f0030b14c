"""Charges on PostgreSQL (SQLAlchemy Core text queries, asyncpg), every operation under one deadline.

Recording is ``INSERT ... ON CONFLICT (key) DO NOTHING`` and then a read of the key: when two
requests race on one key, the database lets exactly one insert, the other waits for it to commit
and then reads the winner's row. The read is a second statement on purpose: under READ COMMITTED it
takes a fresh snapshot, which sees the winner; a CTE in the same statement would not.
"""

from __future__ import annotations

from sqlalchemy import text

from services.clients.postgres import DeadlineSql
from services.errors import Unavailable
from shop.payments.domain import ChargeRow, ChargeStatus

_COLUMNS = "key, reference, amount_cents, status, created_at"
_INSERT = text(
    "INSERT INTO payments.charges (key, reference, amount_cents, status) "
    f"VALUES (:key, :reference, :amount, :status) ON CONFLICT (key) DO NOTHING RETURNING {_COLUMNS}"
)
_GET = text(f"SELECT {_COLUMNS} FROM payments.charges WHERE key = :key")
_STATS = text("SELECT status, count(*) AS n, coalesce(sum(amount_cents), 0) AS cents "
              "FROM payments.charges GROUP BY status")


class StoreUnavailable(Unavailable):
    """PostgreSQL did not answer in time or could not be reached (503: the caller retries)."""

    code = "store_unavailable"


def _row(row) -> ChargeRow:
    return ChargeRow(key=row.key, reference=row.reference, amount_cents=int(row.amount_cents),
                     status=row.status, created_at=row.created_at)


def _list_query(status: ChargeStatus | None, after_key: str | None):
    # Conditions built here rather than "(:p IS NULL OR ...)": asyncpg cannot type a bare NULL
    # parameter, and the planner uses the index only for the conditions actually present.
    where = []
    if status is not None:
        where.append("status = :status")
    if after_key is not None:
        where.append("key > :after")
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    return text(f"SELECT {_COLUMNS} FROM payments.charges {clause}ORDER BY key LIMIT :n")


class SqlCharges(DeadlineSql):
    unavailable = StoreUnavailable

    async def record(self, key: str, reference: str, amount: int, status: ChargeStatus) -> tuple[ChargeRow, bool]:
        """The charge under ``key``, and whether this call created it (False: an earlier one did)."""
        params = {"key": key, "reference": reference, "amount": amount, "status": status}

        async def q() -> tuple[ChargeRow, bool]:
            async with self._engine.begin() as conn:
                inserted = (await conn.execute(_INSERT, params)).first()
                if inserted is not None:
                    return _row(inserted), True
                existing = (await conn.execute(_GET, {"key": key})).first()
            if existing is None:  # rows are never deleted, so the winner's row is there
                raise StoreUnavailable(f"charge {key!r} conflicted but could not be read back")
            return _row(existing), False

        return await self._run(q)

    async def get(self, key: str) -> ChargeRow | None:
        async def q() -> ChargeRow | None:
            async with self._engine.connect() as conn:
                row = (await conn.execute(_GET, {"key": key})).first()
            return _row(row) if row else None

        return await self._run(q)

    async def void(self, key: str) -> ChargeRow:
        """Make sure ``key`` is never captured: a ``voided`` row when there was none; the row there
        otherwise, unchanged (a captured charge stays captured: the caller sees it and refunds)."""
        row, _ = await self.record(key, "", 0, "voided")
        return row

    async def stats(self) -> dict[str, int]:
        async def q() -> dict[str, int]:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(_STATS)).all()
            by_status = {r.status: (int(r.n), int(r.cents)) for r in rows}
            return {"captured": by_status.get("captured", (0, 0))[0],
                    "captured_cents": by_status.get("captured", (0, 0))[1],
                    "declined": by_status.get("declined", (0, 0))[0],
                    "voided": by_status.get("voided", (0, 0))[0]}

        return await self._run(q)

    async def list(self, status: ChargeStatus | None, after_key: str | None, limit: int) -> list[ChargeRow]:
        """Charges in key order, starting after ``after_key``; optionally only those with ``status``."""
        query = _list_query(status, after_key)
        params = {"status": status, "after": after_key, "n": limit}
        params = {k: v for k, v in params.items() if v is not None}

        async def q() -> list[ChargeRow]:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query, params)).all()
            return [_row(r) for r in rows]

        return await self._run(q)
