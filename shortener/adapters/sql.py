"""LinkRepository on PostgreSQL (SQLAlchemy Core, asyncpg)."""

from __future__ import annotations

from sqlalchemy import delete, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.clients.postgres import DeadlineSql
from shortener.adapters.schema import click_batches, counter_leases, links
from shortener.domain import Link, LinkClicked
from shortener.ports import InsertOutcome, StoreUnavailable

_LOCK_IN_ORDER = text("SELECT code FROM links WHERE code = ANY(CAST(:codes AS text[])) ORDER BY code FOR UPDATE")
_ADD_CLICKS = text(
    "UPDATE links AS l SET clicks = l.clicks + v.n "
    "FROM unnest(CAST(:codes AS text[]), CAST(:counts AS bigint[])) AS v(code, n) WHERE l.code = v.code"
)
_LINK_COLUMNS = (links.c.code, links.c.url, links.c.created_at, links.c.expires_at, links.c.custom_alias)


def _link(row, clicks: int = 0) -> Link:
    return Link(code=row.code, url=row.url, created_at=row.created_at, expires_at=row.expires_at,
                custom_alias=row.custom_alias, clicks=clicks)


class SqlLinkRepository(DeadlineSql):
    unavailable = StoreUnavailable

    async def get(self, code: str) -> Link | None:
        async def q() -> Link | None:
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(*_LINK_COLUMNS).where(links.c.code == code))).first()
            return _link(row) if row else None

        return await self._run(q)

    async def get_with_clicks(self, code: str) -> Link | None:
        async def q() -> Link | None:
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(*_LINK_COLUMNS, links.c.clicks).where(links.c.code == code))).first()
            return _link(row, row.clicks) if row else None

        return await self._run(q)

    async def insert(self, link: Link, url_digest: bytes, token_digest: bytes) -> InsertOutcome:
        stmt = (
            pg_insert(links)
            .values(code=link.code, url=link.url, url_digest=url_digest, custom_alias=link.custom_alias,
                    created_at=link.created_at, expires_at=link.expires_at, delete_token_digest=token_digest)
            .on_conflict_do_nothing()
            .returning(links.c.code)
        )

        async def q() -> InsertOutcome:
            async with self._engine.begin() as conn:
                if (await conn.execute(stmt)).first() is not None:
                    return InsertOutcome(inserted=True)
                by_url = None
                if not link.custom_alias:
                    row = (await conn.execute(select(*_LINK_COLUMNS).where(
                        links.c.url_digest == url_digest, links.c.custom_alias.is_(False)))).first()
                    by_url = _link(row) if row else None
                if by_url is not None:
                    return InsertOutcome(inserted=False, existing_by_url=by_url)
                row = (await conn.execute(select(*_LINK_COLUMNS).where(links.c.code == link.code))).first()
                return InsertOutcome(inserted=False, existing_by_code=_link(row) if row else None)

        return await self._run(q)

    async def insert_many(self, rows: list[tuple[Link, bytes, bytes]]) -> set[str]:
        """Bulk import of ``(link, url digest, token digest)`` rows in one statement; returns the
        codes inserted (a row whose code or URL is taken is skipped, for the caller to retry)."""
        if not rows:
            return set()
        stmt = (
            pg_insert(links)
            .values([{"code": link.code, "url": link.url, "url_digest": url_digest, "custom_alias": link.custom_alias,
                      "created_at": link.created_at, "expires_at": link.expires_at,
                      "delete_token_digest": token_digest} for link, url_digest, token_digest in rows])
            .on_conflict_do_nothing()
            .returning(links.c.code)
        )

        async def q() -> set[str]:
            async with self._engine.begin() as conn:
                return {row.code for row in await conn.execute(stmt)}

        return await self._run(q)

    async def token_digest(self, code: str) -> bytes | None:
        async def q() -> bytes | None:
            async with self._engine.connect() as conn:
                return (await conn.execute(select(links.c.delete_token_digest).where(links.c.code == code))).scalar()

        return await self._run(q)

    async def delete(self, code: str) -> bool:
        async def q() -> bool:
            async with self._engine.begin() as conn:
                return (await conn.execute(delete(links).where(links.c.code == code))).rowcount > 0

        return await self._run(q)

    async def delete_expired_url(self, url_digest: bytes) -> int:
        async def q() -> int:
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(links).where(
                    links.c.url_digest == url_digest, links.c.custom_alias.is_(False),
                    links.c.expires_at <= func.now()))
                return result.rowcount

        return await self._run(q)

    async def apply_clicks(self, batch: LinkClicked) -> bool:
        """One transaction: record the batch id, then add its counts. A redelivery hits the key and adds nothing."""

        codes = sorted(batch.counts)
        counts = [batch.counts[c] for c in codes]
        first_time = (pg_insert(click_batches).values(batch_id=batch.batch_id)
                      .on_conflict_do_nothing().returning(click_batches.c.batch_id))

        async def q() -> bool:
            async with self._engine.begin() as conn:
                if (await conn.execute(first_time)).first() is None:
                    return False
                if codes:
                    # Lock the rows in code order first: consumers adding to the same hot links
                    # then queue in one order instead of deadlocking.
                    await conn.execute(_LOCK_IN_ORDER, {"codes": codes})
                    await conn.execute(_ADD_CLICKS, {"codes": codes, "counts": counts})
                return True

        return await self._run(q)

    async def record_lease(self, end: int) -> None:
        async def q() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(pg_insert(counter_leases).values(lease_end=end).on_conflict_do_nothing())

        await self._run(q)

    async def max_lease(self) -> int:
        async def q() -> int:
            async with self._engine.connect() as conn:
                value = (await conn.execute(select(func.coalesce(func.max(counter_leases.c.lease_end), literal_column("0"))))).scalar()
                return int(value or 0)

        return await self._run(q)
