"""Charges on PostgreSQL (asyncpg, through the kit's pool), every operation under one deadline.

Recording is ``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING``: one statement for a new key.
Only when it inserted nothing (a replay, or two requests racing on one key) is the key read, in a
second statement: under READ COMMITTED that read takes a fresh snapshot, which sees the winner
once it committed (the loser's insert waited for it); a CTE in the same statement would not.
"""

from __future__ import annotations

from asyncpg import Record

from services.clients.postgres import PgPool
from services.errors import DependencyUnavailable
from shop.payments.domain import ChargeRow, ChargeStatus

_COLUMNS = "key, reference, amount_cents, status, created_at"
_INSERT = ("INSERT INTO payments.charges (key, reference, amount_cents, status) VALUES ($1, $2, $3, $4) "
           f"ON CONFLICT (key) DO NOTHING RETURNING {_COLUMNS}")
_GET = f"SELECT {_COLUMNS} FROM payments.charges WHERE key = $1"
_STATS = ("SELECT status, count(*) AS n, coalesce(sum(amount_cents), 0) AS cents "
          "FROM payments.charges GROUP BY status")


class StoreUnavailable(DependencyUnavailable):
    """PostgreSQL did not answer in time or could not be reached (503: the caller retries)."""

    code = "store_unavailable"
    dependency = "postgresql"


def _row(row: Record) -> ChargeRow:
    return ChargeRow(key=row["key"], reference=row["reference"], amount_cents=int(row["amount_cents"]),
                     status=row["status"], created_at=row["created_at"])


def _list_query(status: ChargeStatus | None, after_key: str | None) -> str:
    # Conditions built here rather than "($1 IS NULL OR ...)": the planner uses the index only for
    # the conditions actually present.
    where, n = [], 0
    if status is not None:
        n += 1
        where.append(f"status = ${n}")
    if after_key is not None:
        n += 1
        where.append(f"key > ${n}")
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    return f"SELECT {_COLUMNS} FROM payments.charges {clause}ORDER BY key LIMIT ${n + 1}"


class SqlCharges:
    def __init__(self, db: PgPool) -> None:
        self._db = db

    async def record(self, key: str, reference: str, amount: int, status: ChargeStatus) -> tuple[ChargeRow, bool]:
        """The charge under ``key``, and whether this call created it (False: an earlier one did)."""
        inserted = await self._db.fetchrow(_INSERT, key, reference, amount, status)
        if inserted is not None:
            return _row(inserted), True
        existing = await self._db.fetchrow(_GET, key)
        if existing is None:  # rows are never deleted, so the winner's row is there
            raise StoreUnavailable(f"charge {key!r} conflicted but could not be read back")
        return _row(existing), False

    async def get(self, key: str) -> ChargeRow | None:
        row = await self._db.fetchrow(_GET, key)
        return _row(row) if row else None

    async def void(self, key: str) -> ChargeRow:
        """Make sure ``key`` is never captured: a ``voided`` row when there was none; the row there
        otherwise, unchanged (a captured charge stays captured: the caller sees it and refunds)."""
        row, _ = await self.record(key, "", 0, "voided")
        return row

    async def stats(self) -> dict[str, int]:
        by_status = {r["status"]: (int(r["n"]), int(r["cents"])) for r in await self._db.fetch(_STATS)}
        return {"captured": by_status.get("captured", (0, 0))[0],
                "captured_cents": by_status.get("captured", (0, 0))[1],
                "declined": by_status.get("declined", (0, 0))[0],
                "voided": by_status.get("voided", (0, 0))[0]}

    async def list(self, status: ChargeStatus | None, after_key: str | None, limit: int) -> list[ChargeRow]:
        """Charges in key order, starting after ``after_key``; optionally only those with ``status``."""
        args = [a for a in (status, after_key) if a is not None]
        return [_row(r) for r in await self._db.fetch(_list_query(status, after_key), *args, limit)]
