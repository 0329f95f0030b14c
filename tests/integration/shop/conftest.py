"""Fixtures for the shop's adapters against the session lab's PostgreSQL shards and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from services.clients.redis import RedisClient
from shop import migrate
from shop.adapters.shards import ShardRouter
from shop.config import ShopSettings


def lab_url(lab, name: str) -> str:
    return lab.state["components"][name]["url"]


def shop_settings(lab, urls: list[str] | None = None, **overrides) -> ShopSettings:
    values = {
        "database_urls": urls or [lab_url(lab, "postgres-0"), lab_url(lab, "postgres-1")],
        "redis_url": lab_url(lab, "redis"),
        "moving_bucket_wait_s": 0.5,
        # Generous: fifty checkouts queue on one row lock and on the pool in these tests.
        "database_timeout_s": 5.0,
    }
    return ShopSettings(**{**values, **overrides})


@pytest.fixture
async def make_router(lab):
    """Started routers (the map loaded, no polling), stopped after the test."""
    started: list[ShardRouter] = []

    async def make(urls: list[str] | None = None, **overrides) -> ShardRouter:
        router = ShardRouter(shop_settings(lab, urls, **overrides), watch=False)
        await router.start()
        started.append(router)
        return router

    yield make
    for router in started:
        await router.stop()


@pytest.fixture
async def router(make_router) -> ShardRouter:
    """A router over the lab's two shards (the map the lab's migration made)."""
    return await make_router()


async def _databases(admin_urls: list[str], statement: str) -> None:
    for url in admin_urls:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def private_urls(lab) -> Iterator[list[str]]:
    """A database of the tests' own on each of the lab's two servers, migrated like the lab's,
    with a shard map of its own: for what the lab's live shop-worker must not see (its relay leads
    the lab's servers for good, a session lock, and takes their outbox rows at once; its sweeper
    recovers pending orders whose key let go) and what must not slow the lab down (a table or a
    row locked, a bucket's move lock held).
    Dropped at the end of the session."""
    admin = [lab_url(lab, "postgres-0"), lab_url(lab, "postgres-1")]
    name = f"shop_it_{uuid.uuid4().hex[:8]}"
    urls = [f"{url.rsplit('/', 1)[0]}/{name}" for url in admin]
    asyncio.run(_databases(admin, f'CREATE DATABASE "{name}"'))
    try:
        for url in urls:
            migrate.upgrade(url)
        asyncio.run(migrate.create_map(urls, 256))
        yield urls
    finally:
        asyncio.run(_databases(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def private_router(make_router, private_urls) -> ShardRouter:
    return await make_router(private_urls)


@pytest.fixture
async def redis(lab):
    client = RedisClient(lab_url(lab, "redis"), timeout_s=1.0)
    await client.start()
    yield lambda: client.redis
    await client.stop()
