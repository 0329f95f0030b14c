"""The SQL of moving one bucket between servers (asyncpg): copy, diff, verify, ownership, the map.

Every bucketed table is copied by difference: the source's rows of the bucket with an md5 of each
row's text, the target's hashes, then only missing or different rows are written and extra ones
deleted. The same call does the online copy (the target is empty) and the final one under the
block (a few rows changed since), and a resumed move simply runs it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

from shop.adapters.schema import metadata
from shop.adapters.shards import MAP_CHANNEL

# The bucketed tables a move carries (the outbox is not moved: its rows are events in flight,
# published from wherever they were written; fulfilled events and the map are not bucketed).
MOVED = ("products", "reservations", "orders", "order_items", "idempotency_keys")
FENCE_LOCK = 727402  # shop_fence's shared lock, taken exclusively to block a bucket's writes
RESHARD_LOCK = 727404  # one reshard at a time (a session lock on the first server)


@dataclass(frozen=True)
class TableShape:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]

    @property
    def select(self) -> str:
        return ", ".join(self.columns)

    def upsert(self) -> str:
        values = ", ".join(f"${i}" for i in range(1, len(self.columns) + 1))
        others = [c for c in self.columns if c not in self.key]
        update = ", ".join(f"{c} = EXCLUDED.{c}" for c in others)
        return (f"INSERT INTO {self.name} ({self.select}) VALUES ({values}) "
                f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {update}")

    def delete(self) -> str:
        return f"DELETE FROM {self.name} WHERE " + " AND ".join(f"{k} = ${i}" for i, k in enumerate(self.key, 1))


SHAPES = tuple(TableShape(n, tuple(c.name for c in metadata.tables[n].columns),
                          tuple(c.name for c in metadata.tables[n].primary_key)) for n in MOVED)


async def copy_bucket(source: asyncpg.Connection, target: asyncpg.Connection, bucket: int) -> int:
    """Make the target's rows of ``bucket`` equal to the source's; returns rows written or deleted."""
    changed = 0
    for shape in SHAPES:
        key = ", ".join(shape.key)
        rows = await source.fetch(f"SELECT {shape.select}, md5(t::text) AS row_hash FROM {shape.name} t "
                                  f"WHERE bucket = $1", bucket)
        have = {tuple(r[k] for k in shape.key): r["row_hash"] for r in await target.fetch(
            f"SELECT {key}, md5(t::text) AS row_hash FROM {shape.name} t WHERE bucket = $1", bucket)}
        wanted = {tuple(r[k] for k in shape.key) for r in rows}
        writes = [tuple(r[c] for c in shape.columns) for r in rows
                  if have.get(tuple(r[k] for k in shape.key)) != r["row_hash"]]
        extra = [k for k in have if k not in wanted]
        async with target.transaction():
            if writes:
                await target.executemany(shape.upsert(), writes)
            if extra:
                await target.executemany(shape.delete(), extra)
        changed += len(writes) + len(extra)
    return changed


async def bucket_digest(conn: asyncpg.Connection, bucket: int) -> dict[str, tuple[int, str]]:
    """Per table: (rows, md5 over the rows' md5s in key order) of one bucket."""
    digest = {}
    for shape in SHAPES:
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, coalesce(md5(string_agg(md5(t::text), ',' ORDER BY {', '.join(shape.key)})), '') "
            f"AS h FROM {shape.name} t WHERE bucket = $1", bucket)
        digest[shape.name] = (row["n"], row["h"])
    return digest


async def delete_bucket(conn: asyncpg.Connection, bucket: int) -> int:
    """The source's copy of a bucket that moved away; returns rows deleted."""
    deleted = 0
    async with conn.transaction():
        for shape in SHAPES:
            deleted += int((await conn.execute(f"DELETE FROM {shape.name} WHERE bucket = $1", bucket)).split()[-1])
    return deleted


async def own(conn: asyncpg.Connection, bucket: int) -> None:
    await conn.execute("INSERT INTO owned_buckets (bucket) VALUES ($1) ON CONFLICT DO NOTHING", bucket)


async def owns(conn: asyncpg.Connection, bucket: int) -> bool:
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM owned_buckets WHERE bucket = $1)", bucket)


async def latest_map(conn: asyncpg.Connection) -> tuple[int, list[str], list[int]]:
    row = await conn.fetchrow("SELECT version, shards::text AS shards, assignment::text AS assignment "
                              "FROM shard_map ORDER BY version DESC LIMIT 1")
    return row["version"], json.loads(row["shards"]), json.loads(row["assignment"])


async def save_map(conn: asyncpg.Connection, version: int, shards: list[str], assignment: list[int]) -> None:
    """The new map, and a NOTIFY (sent at its commit) that every instance's router waits for."""
    await conn.execute("WITH saved AS (INSERT INTO shard_map (version, shards, assignment) "
                       "VALUES ($1, $2::json, $3::json) RETURNING version) "
                       f"SELECT pg_notify('{MAP_CHANNEL}', version::text) FROM saved",
                       version, json.dumps(shards), json.dumps(assignment))


async def moves(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT bucket, source, target, state, rows, block_ms FROM reshard_moves ORDER BY bucket")


async def plan(conn: asyncpg.Connection, planned: list[tuple[int, int, int]]) -> None:
    async with conn.transaction():
        await conn.execute("DELETE FROM reshard_moves")
        await conn.executemany("INSERT INTO reshard_moves (bucket, source, target, state) VALUES ($1, $2, $3, 'planned')",
                               planned)


async def mark(conn: asyncpg.Connection, bucket: int, state: str, rows: int | None = None,
               block_ms: float | None = None, checksum: str | None = None) -> None:
    await conn.execute("UPDATE reshard_moves SET state = $2, rows = coalesce($3, rows), "
                       "block_ms = coalesce($4, block_ms), checksum = coalesce($5, checksum), updated_at = now() "
                       "WHERE bucket = $1", bucket, state, rows, block_ms, checksum)
