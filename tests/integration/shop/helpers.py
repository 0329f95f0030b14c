"""Helpers for the shop's integration tests: unique names, raw SQL on one server (asyncpg, ``$n``
parameters).

The session's lab runs the shop (API, worker, fulfillment) against the same databases, so every
test makes its own data, never assumes an empty table, and puts back whatever it disturbs. The
lab's worker holds the outbox relay's lock on its servers for as long as it runs (a session lock):
a test that must keep the live relay away from its rows uses the ``private_urls`` databases.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import asyncpg

from services.clients.postgres import dsn
from shop.adapters.shards import ShardRouter
from shop.domain import Event
from shop.sharding import EPOCH_MS, bucket_of_key, compose_id

MOVE_LOCK = 727_402  # the advisory lock class shop_fence tries (see migration 0001)


def tag() -> str:
    return uuid.uuid4().hex[:10]


def now() -> datetime:
    return datetime.now(timezone.utc)


def in_an_hour() -> datetime:
    """A reservation expiry the lab's sweeper will not reach while the session runs."""
    return now() + timedelta(hours=1)


def new_ids(bucket: int, n: int) -> list[int]:
    """``n`` distinct ids of ``bucket`` made here (order ids for reservations)."""
    ms = int(time.time() * 1000) - EPOCH_MS
    return [compose_id(ms, bucket, i) for i in range(n)]


def absent_id(bucket: int, seq: int = 1) -> int:
    """An id of ``bucket`` no server ever handed out: one millisecond after the id epoch."""
    return compose_id(1, bucket, seq)


def user_on(router: ShardRouter, shard: int) -> str:
    """A fresh user name whose bucket lives on ``shard``."""
    while True:
        user = f"it-u-{tag()}"
        if router.map.shard_of_user(user) == shard:
            return user


def user_in_bucket(bucket: int, buckets: int = 256) -> str:
    """A fresh user name of ``bucket`` (so that the user's orders and a product of the bucket share its fence)."""
    while True:
        user = f"it-u-{tag()}"
        if bucket_of_key(user, buckets) == bucket:
            return user


def event(topic: str, order_id: int) -> Event:
    event_id = str(uuid.uuid4())
    return Event(event_id, topic, order_id, {"event_id": event_id, "order_id": str(order_id)})


@contextlib.asynccontextmanager
async def connect(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own (no pool: closing it really closes it, and frees any lock it holds).
    It runs in autocommit; open a transaction with ``conn.transaction()`` where one is needed."""
    conn = await asyncpg.connect(dsn(url))
    try:
        yield conn
    finally:
        await conn.close()


async def sql(url: str, statement: str, *args) -> list[asyncpg.Record]:
    """One statement on one server, committed; the rows it returned."""
    async with connect(url) as conn:
        return await conn.fetch(statement, *args)


@contextlib.asynccontextmanager
async def bucket_moving(url: str, bucket: int) -> AsyncIterator[None]:
    """Hold ``bucket``'s move lock exclusively on one server for the block, as a reshard copying the
    bucket does (in a transaction of another connection): every fenced write of the bucket there
    is refused ("moving") until the block ends."""
    async with connect(url) as mover:
        async with mover.transaction():
            await mover.execute("SELECT pg_advisory_xact_lock($1, $2)", MOVE_LOCK, bucket)
            yield


async def outbox_rows(url: str, order_id: int) -> list[tuple[str, str]]:
    """(topic, event id) of one order's outbox rows, in the order they were written."""
    rows = await sql(url, "SELECT topic, event_id FROM outbox WHERE order_id = $1 ORDER BY id", order_id)
    return [(r["topic"], r["event_id"]) for r in rows]
