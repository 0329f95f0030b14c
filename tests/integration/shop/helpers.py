"""Helpers for the shop's integration tests: unique names, raw SQL on one server, held locks.

The session's lab runs the shop (API, worker, fulfillment) against the same databases, so every
test makes its own data, never assumes an empty table, and puts back whatever it disturbs.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from services.clients.postgres import asyncpg_url
from shop.adapters.outbox import RELAY_LOCK
from shop.adapters.shards import ShardRouter
from shop.domain import Event
from shop.sharding import EPOCH_MS, compose_id

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


def event(topic: str, order_id: int) -> Event:
    event_id = str(uuid.uuid4())
    return Event(event_id, topic, order_id, {"event_id": event_id, "order_id": str(order_id)})


@contextlib.asynccontextmanager
async def connect(url: str) -> AsyncIterator[AsyncConnection]:
    """A connection of its own (no pool: closing it really closes it, and frees any lock it holds)."""
    engine = create_async_engine(asyncpg_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            yield conn
    finally:
        await engine.dispose()


async def sql(url: str, statement: str, **params) -> list:
    """One statement on one server, committed; the rows it returned."""
    async with connect(url) as conn:
        result = await conn.execute(text(statement), params)
        rows = result.all() if result.returns_rows else []
        await conn.commit()
    return rows


@contextlib.asynccontextmanager
async def relay_paused(url: str) -> AsyncIterator[None]:
    """Hold the outbox relay's lock on one server for the block (in a transaction left open), so
    the lab's live relay (shop-worker) skips that server and rows written meanwhile stay put to
    be counted; they are published once the block ends."""
    async with connect(url) as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RELAY_LOCK})
        try:
            yield
        finally:
            await conn.rollback()


async def outbox_rows(url: str, order_id: int) -> list[tuple[str, str]]:
    """(topic, event id) of one order's outbox rows, in the order they were written."""
    rows = await sql(url, "SELECT topic, event_id FROM outbox WHERE order_id = :o ORDER BY id", o=order_id)
    return [(r.topic, r.event_id) for r in rows]
