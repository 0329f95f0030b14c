"""The shard router and the catalog against the lab's two PostgreSQL shards: the map the migration
made, where rows land, the write fence (a bucket on the move, a bucket given away), and the
scatter-gather listing."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from services.errors import Unavailable
from shop.adapters.sql_catalog import SqlCatalog
from shop.adapters.sql_orders import SqlOrders
from shop.domain import NewProduct
from shop.ports import ProductQuery, ShardUnavailable
from shop.scatter import decode_cursor, scatter_gather
from shop.sharding import bucket_of_id, bucket_of_key
from tests.integration.shop.conftest import lab_url
from tests.integration.shop.helpers import (
    MOVE_LOCK,
    absent_id,
    connect,
    sql,
    tag,
    user_on,
)


def _product(category: str, price_cents: int = 100, stock: int = 1, name: str | None = None) -> NewProduct:
    return NewProduct(name or f"it-{tag()}", category, price_cents, stock)


async def _where(router, product_id: int) -> list[int]:
    """The shards that hold a row for the product, found by asking every server."""
    return [shard for shard, url in enumerate(router.map.shards)
            if await sql(url, "SELECT 1 FROM products WHERE id = $1", product_id)]


# --- the map ------------------------------------------------------------------------------

async def test_the_router_loads_the_map_the_migration_made(router, lab):
    shard_map = router.map
    assert (shard_map.buckets, len(shard_map.shards), router.shard_count()) == (256, 2, 2)
    assert shard_map.version >= 1
    assert set(shard_map.shards) == {lab_url(lab, "postgres-0"), lab_url(lab, "postgres-1")}
    # Every server owns exactly the buckets the map gives it (the fence's view agrees with the map).
    for shard, url in enumerate(shard_map.shards):
        owned = {r["bucket"] for r in await sql(url, "SELECT bucket FROM owned_buckets")}
        assert owned == set(shard_map.buckets_of(shard)) and len(owned) == 128


async def test_products_and_users_land_on_the_shard_the_map_names(router):
    catalog, orders = SqlCatalog(router), SqlOrders(router)
    category = f"it-cat-{tag()}"
    for shard in (0, 1):
        bucket = random.choice(router.map.buckets_of(shard))
        created = await catalog.create(bucket, _product(category, 250, 7))
        assert bucket_of_id(created.id) == bucket and router.map.shard_of_id(created.id) == shard
        assert await _where(router, created.id) == [shard]
        [row] = await sql(router.map.shards[shard], "SELECT bucket, available, initial_stock FROM products "
                          "WHERE id = $1", created.id)
        assert tuple(row) == (bucket, 7, 7)
        assert await catalog.get(created.id) == created

        user = user_on(router, shard)
        begun = await orders.begin(user, f"k-{tag()}", "fp", 3600)
        assert bucket_of_id(begun.order_id) == bucket_of_key(user, 256)
        holders = [s for s, url in enumerate(router.map.shards)
                   if await sql(url, "SELECT 1 FROM idempotency_keys WHERE user_name = $1", user)]
        assert holders == [shard]
    assert await catalog.get(absent_id(bucket)) is None


# --- the fence ----------------------------------------------------------------------------

async def test_a_write_to_a_bucket_being_moved_waits_then_answers_moving(make_router, monkeypatch):
    router, patient = await make_router(moving_bucket_wait_s=0.5), await make_router(moving_bucket_wait_s=10.0)
    catalog = SqlCatalog(router)
    category = f"it-cat-{tag()}"
    bucket = random.randrange(256)
    existing = await catalog.create(bucket, _product(category))
    reloads = []
    real_reload = router.reload
    monkeypatch.setattr(router, "reload", lambda: reloads.append(1) or real_reload())
    url = router.map.shards[router.map.shard_of_bucket(bucket)]
    async with connect(url) as mover:
        await mover.execute("SELECT pg_advisory_lock($1, $2)", MOVE_LOCK, bucket)  # a session lock: held
        try:
            fenced_before, started = router.fenced_writes, time.monotonic()
            with pytest.raises(ShardUnavailable, match=f"bucket {bucket} is being moved") as refused:
                await catalog.create(bucket, _product(category))
            assert time.monotonic() - started >= 0.5
            assert refused.value.retry_after_s == 1.0
            assert router.fenced_writes - fenced_before >= 2 and reloads == []  # waited; the map is fine
            assert await catalog.get(existing.id) == existing  # reads are not fenced
            # A write that starts during the move and outlasts it goes through once it ends.
            waiting = asyncio.create_task(SqlCatalog(patient).create(bucket, _product(category, name="after")))
            await asyncio.sleep(0.3)
            assert not waiting.done()
        finally:
            await mover.execute("SELECT pg_advisory_unlock($1, $2)", MOVE_LOCK, bucket)
    done = await asyncio.wait_for(waiting, 5.0)
    assert bucket_of_id(done.id) == bucket and done.name == "after"
    assert bucket_of_id((await catalog.create(bucket, _product(category))).id) == bucket
    rows = await sql(url, "SELECT name FROM products WHERE category = $1 ORDER BY id", category)
    assert len(rows) == 3  # the refused write left nothing behind


async def test_a_write_to_a_bucket_its_server_gave_away_reloads_the_map_and_gives_up(router, monkeypatch):
    catalog = SqlCatalog(router)
    category = f"it-cat-{tag()}"
    bucket = random.randrange(256)
    existing = await catalog.create(bucket, _product(category))
    url = router.map.shards[router.map.shard_of_bucket(bucket)]
    reloads = []
    real_reload = router.reload
    monkeypatch.setattr(router, "reload", lambda: reloads.append(1) or real_reload())
    await sql(url, "DELETE FROM owned_buckets WHERE bucket = $1", bucket)
    try:
        with pytest.raises(ShardUnavailable, match=f"bucket {bucket}"):
            await catalog.create(bucket, _product(category))
        assert reloads  # "moved": the router asked for a newer map before each retry
        assert await catalog.get(existing.id) == existing
    finally:
        await sql(url, "INSERT INTO owned_buckets (bucket) VALUES ($1) ON CONFLICT DO NOTHING", bucket)
    assert len(await sql(url, "SELECT 1 FROM products WHERE category = $1", category)) == 1
    assert bucket_of_id((await catalog.create(bucket, _product(category))).id) == bucket


# --- scatter-gather -----------------------------------------------------------------------

async def _spread(router, category: str, prices: list[int], names: list[str] | None = None) -> list:
    """Products of ``category``, alternately on shard 0 and shard 1, sorted as a listing sorts them."""
    catalog = SqlCatalog(router)
    created = []
    for i, price in enumerate(prices):
        bucket = random.choice(router.map.buckets_of(i % 2))
        created.append(await catalog.create(bucket, _product(category, price, 3, names[i] if names else None)))
    assert {router.map.shard_of_id(p.id) for p in created} == {0, 1}
    return sorted(created, key=lambda p: (p.price_cents, p.id))


async def test_a_listing_merges_both_shards_in_price_order_and_pages_through_each_once(router):
    catalog = SqlCatalog(router)
    category = f"it-cat-{tag()}"
    expected = await _spread(router, category, [300, 100, 200, 100, 300, 200, 100, 400])

    whole = await scatter_gather(catalog, ProductQuery(category=category, limit=100), deadline_s=1.0)
    assert (whole.items, whole.next_cursor, whole.missing_shards, whole.partial) == (expected, None, [], False)

    seen, after, pages = [], None, 0
    while True:
        page = await scatter_gather(catalog, ProductQuery(category=category, after=after, limit=3), deadline_s=1.0)
        assert page.missing_shards == [] and len(page.items) <= 3
        seen += page.items
        pages += 1
        if page.next_cursor is None:
            break
        after = decode_cursor(page.next_cursor)
        assert after == (page.items[-1].price_cents, page.items[-1].id)
    assert pages == 3 and seen == expected


async def test_a_listing_filters_by_price_and_by_text_taken_literally(router):
    catalog = SqlCatalog(router)
    category = f"it-cat-{tag()}"
    names = ["50%_off lamp", "500 off lamp", "plain lamp", "50%_OFF chair"]
    expected = await _spread(router, category, [100, 200, 300, 400], names)

    async def listing(**query) -> list[str]:
        found = await scatter_gather(catalog, ProductQuery(category=category, **query), deadline_s=1.0)
        return [p.name for p in found.items]

    assert await listing(min_price=200, max_price=300) == ["500 off lamp", "plain lamp"]
    # % and _ are matched as themselves, case-insensitively.
    assert await listing(text="%_off") == ["50%_off lamp", "50%_OFF chair"]
    assert await listing(text="lamp", max_price=250) == ["50%_off lamp", "500 off lamp"]
    assert await listing() == [p.name for p in expected]


async def test_a_late_shard_is_named_missing_and_the_other_still_answers(private_router, private_urls):
    """Shard 1 (in the tests' own databases) is made late by a lock on its products table."""
    catalog = SqlCatalog(private_router)
    category = f"it-cat-{tag()}"
    expected = await _spread(private_router, category, [100, 200, 300, 400])
    on_first = [p for p in expected if private_router.map.shard_of_id(p.id) == 0]
    query = ProductQuery(category=category, limit=10)
    async with connect(private_urls[1]) as blocker:
        held = blocker.transaction()  # LOCK TABLE holds until the transaction ends
        await held.start()
        await blocker.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        late = await scatter_gather(catalog, query, deadline_s=0.3)
        assert time.monotonic() - started < 2.0
        assert (late.items, late.missing_shards, late.partial) == (on_first, [1], True)
        async with connect(private_urls[0]) as other:
            also = other.transaction()
            await also.start()
            await other.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(Unavailable) as none:
                await scatter_gather(catalog, query, deadline_s=0.3)
            assert none.value.code == "shards_unavailable"
            await also.rollback()
        await held.rollback()
    whole = await scatter_gather(catalog, query, deadline_s=1.0)
    assert (whole.items, whole.missing_shards) == (expected, [])
