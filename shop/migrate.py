"""``python -m shop.migrate``: every shard at the newest schema, the payment stand-in's schema, and
the first shard map (buckets dealt round-robin over ``SHOP_DATABASE_URLS``) if none exists yet.

A map that exists is never rewritten here: after a reshard it lists more servers than the
settings do, and it is the map that says where the data is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import orjson

from services import migrations
from services.clients.postgres import dsn
from shop.adapters.shards import map_from_row
from shop.config import ShopSettings
from shop.payments import migrate as payments_migrate
from shop.sharding import ShardMap, initial_map

MIGRATIONS = Path(__file__).parent / "migrations"
_MAP = ("SELECT version, shards::text AS shards, assignment::text AS assignment FROM shard_map "
        "ORDER BY version DESC LIMIT 1")
_OWN = "INSERT INTO owned_buckets (bucket) SELECT unnest($1::smallint[]) ON CONFLICT DO NOTHING"
_SAVE = "INSERT INTO shard_map (version, shards, assignment) VALUES ($1, $2::json, $3::json)"


def upgrade(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


async def stored_map(first_url: str) -> ShardMap | None:
    conn = await asyncpg.connect(dsn(first_url))
    try:
        row = await conn.fetchrow(_MAP)
        return map_from_row(row) if row else None
    finally:
        await conn.close()


async def create_map(urls: list[str], buckets: int, home_holds_buckets: bool = True) -> ShardMap:
    """Each shard is told its buckets before the map that names them exists, so a crash in
    between leaves no map (the next run starts over), never a map some server disagrees with."""
    chosen = initial_map(tuple(urls), buckets, home_holds_buckets=home_holds_buckets)
    for shard, url in reversed(list(enumerate(urls))):  # the first server (and the map) last
        conn = await asyncpg.connect(dsn(url))
        try:
            async with conn.transaction():
                await conn.execute(_OWN, chosen.buckets_of(shard))
                if shard == 0:
                    await conn.execute(_SAVE, chosen.version, orjson.dumps(list(chosen.shards)).decode(),
                                       orjson.dumps(list(chosen.assignment)).decode())
        finally:
            await conn.close()
    return chosen


def main() -> None:
    settings = ShopSettings()
    urls = [str(u) for u in settings.database_urls]
    upgrade(urls[0])
    payments_migrate.upgrade(urls[0])
    current = asyncio.run(stored_map(urls[0]))
    for url in dict.fromkeys([*urls[1:], *(current.shards if current else ())]):
        upgrade(url)
    if current is None:
        current = asyncio.run(create_map(urls, settings.buckets, settings.home_holds_buckets))
        print(f"shop shard map v{current.version}: {settings.buckets} buckets over {len(urls)} shards")
    print(f"shop schema is at head on {len(current.shards)} shards (map v{current.version})")


if __name__ == "__main__":
    main()
