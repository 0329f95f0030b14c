"""LinkRepository on PostgreSQL (asyncpg, through the kit's pool): one statement per call on the
hot paths; a create is one INSERT, and only a conflict reads what blocked it."""

from __future__ import annotations

from asyncpg import Record

from services.clients.postgres import PgPool
from services.clients.read_routing import ReadRouter
from services.consistency import STALE_OK, ReadConsistency
from shortener.domain import Link, LinkClicked
from shortener.ports import InsertOutcome

_COLUMNS = "code, url, created_at, expires_at, custom_alias"
_GET = f"SELECT {_COLUMNS} FROM links WHERE code = $1"
_GET_WITH_CLICKS = f"SELECT {_COLUMNS}, clicks FROM links WHERE code = $1"
_INSERT = ("INSERT INTO links (code, url, url_digest, custom_alias, created_at, expires_at, delete_token_digest) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING code")
# What blocked an insert: the link with the same URL (generated codes only; an alias never
# shares), else the link holding the code. One statement, the same-URL row first.
_BLOCKER = (f"SELECT {_COLUMNS}, (NOT custom_alias AND url_digest = $2) AS same_url FROM links "
            "WHERE code = $1 OR ($3 AND NOT custom_alias AND url_digest = $2) "
            "ORDER BY (NOT custom_alias AND url_digest = $2) DESC LIMIT 1")
_INSERT_MANY = ("INSERT INTO links (code, url, url_digest, custom_alias, created_at, expires_at, delete_token_digest) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::boolean[], $5::timestamptz[], "
                "$6::timestamptz[], $7::bytea[]) ON CONFLICT DO NOTHING RETURNING code")
_TOKEN = "SELECT delete_token_digest FROM links WHERE code = $1"
_DELETE = "DELETE FROM links WHERE code = $1"
_DELETE_EXPIRED_URL = ("DELETE FROM links WHERE url_digest = $1 AND NOT custom_alias AND expires_at <= now()")
_FIRST_TIME = "INSERT INTO click_batches (batch_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING batch_id"
_LOCK_IN_ORDER = "SELECT code FROM links WHERE code = ANY($1::text[]) ORDER BY code FOR UPDATE"
_ADD_CLICKS = ("UPDATE links AS l SET clicks = l.clicks + v.n FROM unnest($1::text[], $2::bigint[]) AS v(code, n) "
               "WHERE l.code = v.code")
_RECORD_LEASE = "INSERT INTO counter_leases (lease_end) VALUES ($1) ON CONFLICT DO NOTHING"
_MAX_LEASE = "SELECT coalesce(max(lease_end), 0) FROM counter_leases"


def _link(row: Record, clicks: int = 0) -> Link:
    return Link(code=row["code"], url=row["url"], created_at=row["created_at"], expires_at=row["expires_at"],
                custom_alias=row["custom_alias"], clicks=clicks)


class SqlLinkRepository:
    """Writes on the primary (``db``); the reads that tolerate staleness through ``reads``, which
    sends them to a replica when the database has one (see :mod:`services.clients.read_routing`)."""

    def __init__(self, db: PgPool, reads: ReadRouter | None = None) -> None:
        self._db = db
        self._reads = reads or ReadRouter(db, [])

    async def get(self, code: str) -> Link | None:
        """A redirect's miss: a replica's answer when it has the link; its "no such link" is asked
        again of the primary, because a replica behind a fresh create would have the miss cached as
        missing for ``negative_ttl_s`` on every instance (a miss is rare; a scan is rate-limited)."""
        row = await self._reads.read(lambda c: c.fetchrow(_GET, code))
        if row is None and self._reads.routes_reads:
            row = await self._db.fetchrow(_GET, code)
        return _link(row) if row else None

    async def get_with_clicks(self, code: str, consistency: ReadConsistency = STALE_OK) -> Link | None:
        """Link stats: a replica may serve them as stale as its lag, unless the reader asks for more."""
        row = await self._reads.read(lambda c: c.fetchrow(_GET_WITH_CLICKS, code), consistency)
        return _link(row, row["clicks"]) if row else None

    async def commit_lsn(self) -> str | None:
        return await self._reads.commit_lsn()

    async def insert(self, link: Link, url_digest: bytes, token_digest: bytes) -> InsertOutcome:
        inserted = await self._db.fetchval(_INSERT, link.code, link.url, url_digest, link.custom_alias,
                                           link.created_at, link.expires_at, token_digest)
        if inserted is not None:
            return InsertOutcome(inserted=True)
        row = await self._db.fetchrow(_BLOCKER, link.code, url_digest, not link.custom_alias)
        if row is not None and row["same_url"]:
            return InsertOutcome(inserted=False, existing_by_url=_link(row))
        return InsertOutcome(inserted=False, existing_by_code=_link(row) if row else None)

    async def insert_many(self, rows: list[tuple[Link, bytes, bytes]]) -> set[str]:
        """Bulk import of ``(link, url digest, token digest)`` rows in one statement; returns the
        codes inserted (a row whose code or URL is taken is skipped, for the caller to retry)."""
        if not rows:
            return set()
        columns = list(zip(*[(link.code, link.url, url_digest, link.custom_alias, link.created_at,
                              link.expires_at, token_digest) for link, url_digest, token_digest in rows]))
        return {r["code"] for r in await self._db.fetch(_INSERT_MANY, *map(list, columns))}

    async def token_digest(self, code: str) -> bytes | None:
        return await self._db.fetchval(_TOKEN, code)

    async def delete(self, code: str) -> bool:
        return (await self._db.execute(_DELETE, code)) != "DELETE 0"

    async def delete_expired_url(self, url_digest: bytes) -> int:
        status = await self._db.execute(_DELETE_EXPIRED_URL, url_digest)
        return int(status.rsplit(" ", 1)[1])

    async def apply_clicks(self, batch: LinkClicked) -> bool:
        """One transaction: record the batch id, then add its counts. A redelivery hits the key and adds nothing."""
        codes = sorted(batch.counts)
        counts = [batch.counts[c] for c in codes]

        async def q(conn) -> bool:
            if await conn.fetchval(_FIRST_TIME, batch.batch_id) is None:
                return False
            if codes:
                # Lock the rows in code order first: consumers adding to the same hot links
                # then queue in one order instead of deadlocking.
                await conn.execute(_LOCK_IN_ORDER, codes)
                await conn.execute(_ADD_CLICKS, codes, counts)
            return True

        return await self._db.run(q, transaction=True)

    async def record_lease(self, end: int) -> None:
        await self._db.execute(_RECORD_LEASE, end)

    async def max_lease(self) -> int:
        return int(await self._db.fetchval(_MAX_LEASE) or 0)
