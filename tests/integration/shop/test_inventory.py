"""Stock on the product's shard (both SQL strategies) against the lab's PostgreSQL: a flash sale
never oversells, every call is idempotent per (order, product), and the stock is conserved:
initial = available + held + sold, whatever happens."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta

import pytest

from shop.adapters.sql_catalog import SqlCatalog, SqlInventory
from shop.domain import Line, NewProduct, OutOfStock, UnknownProduct
from shop.ports import Reserved
from tests.integration.shop.helpers import (
    absent_id,
    connect,
    in_an_hour,
    new_ids,
    now,
    sql,
    tag,
)

STRATEGIES = ["conditional-update", "select-for-update"]


async def _stocked(router, stock: int, price_cents: int = 250, bucket: int | None = None):
    return await SqlCatalog(router).create(random.randrange(256) if bucket is None else bucket,
                                           NewProduct(f"it-{tag()}", f"it-cat-{tag()}", price_cents, stock))


async def _tally(router, product_id: int) -> dict[str, int]:
    """Quantities by reservation status, and what is available, read from the product's shard."""
    url = router.map.shards[router.map.shard_of_id(product_id)]
    rows = await sql(url, "SELECT status, sum(quantity) AS q FROM reservations WHERE product_id = $1 "
                          "GROUP BY status", product_id)
    [stock] = await sql(url, "SELECT available, initial_stock FROM products WHERE id = $1", product_id)
    tally = {"available": stock["available"], "held": 0, "sold": 0, "released": 0,
             **{r["status"]: r["q"] for r in rows}}
    assert stock["initial_stock"] == tally["available"] + tally["held"] + tally["sold"]  # conserved
    return tally


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_fifty_buyers_for_ten_items_exactly_ten_win(router, strategy):
    inventory = SqlInventory(router, strategy)
    product = await _stocked(router, 10)
    buyers = new_ids(random.randrange(256), 50)
    results = await asyncio.gather(*(inventory.reserve(o, Line(product.id, 1), in_an_hour()) for o in buyers),
                                   return_exceptions=True)
    won = [o for o, r in zip(buyers, results) if isinstance(r, Reserved)]
    assert len(won) == 10 and sum(isinstance(r, OutOfStock) for r in results) == 40, results
    assert {r for r in results if isinstance(r, Reserved)} == {Reserved(product.id, 1, 250)}
    assert await inventory.available(product.id) == 0
    assert await _tally(router, product.id) == {"available": 0, "held": 10, "sold": 0, "released": 0}
    held = await sql(router.map.shards[router.map.shard_of_id(product.id)],
                     "SELECT order_id FROM reservations WHERE product_id = $1 AND status = 'held'", product.id)
    assert sorted(r["order_id"] for r in held) == sorted(won)

    # A winner's retry at zero stock is answered with its reservation; nothing is taken twice.
    retried = await inventory.reserve(won[0], Line(product.id, 1), in_an_hour())
    assert retried == Reserved(product.id, 1, 250, new=False)
    assert await _tally(router, product.id) == {"available": 0, "held": 10, "sold": 0, "released": 0}
    assert sum(await asyncio.gather(*(inventory.release(o, product.id) for o in won))) == 10
    assert await _tally(router, product.id) == {"available": 10, "held": 0, "sold": 0, "released": 10}


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_reservation_is_held_then_sold_or_released_once(router, strategy):
    inventory = SqlInventory(router, strategy)
    product = await _stocked(router, 10, price_cents=999)
    a, b, c = new_ids(random.randrange(256), 3)
    assert await inventory.reserve(a, Line(product.id, 2), in_an_hour()) == Reserved(product.id, 2, 999)
    # A retry while stock remains: the same reservation, no second decrement.
    assert await inventory.reserve(a, Line(product.id, 2), in_an_hour()) == Reserved(product.id, 2, 999, new=False)
    assert await inventory.reserve(b, Line(product.id, 8), in_an_hour()) == Reserved(product.id, 8, 999)
    assert await _tally(router, product.id) == {"available": 0, "held": 10, "sold": 0, "released": 0}
    with pytest.raises(OutOfStock):
        await inventory.reserve(c, Line(product.id, 1), in_an_hour())

    assert await inventory.release(a, product.id) == 2
    assert await inventory.release(a, product.id) == 0
    assert await _tally(router, product.id) == {"available": 2, "held": 8, "sold": 0, "released": 2}

    await inventory.mark_sold(b, product.id)
    await inventory.mark_sold(b, product.id)
    assert await inventory.release(b, product.id) == 0  # sold stays sold
    assert await _tally(router, product.id) == {"available": 2, "held": 0, "sold": 8, "released": 2}
    assert await inventory.reserve(b, Line(product.id, 8), in_an_hour()) == Reserved(product.id, 8, 999, new=False)

    with pytest.raises(OutOfStock):
        await inventory.reserve(c, Line(product.id, 3), in_an_hour())
    assert await inventory.reserve(c, Line(product.id, 2), in_an_hour()) == Reserved(product.id, 2, 999)
    await inventory.mark_sold(a, product.id)  # released before: logged, never sold
    assert await _tally(router, product.id) == {"available": 0, "held": 2, "sold": 8, "released": 2}
    await inventory.release(c, product.id)


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_an_order_that_released_its_stock_can_take_it_again(router, strategy):
    """A saga undoes its reservations when a shard does not answer and lets its key go; the
    retry resumes with the same order id and reserves again: that must take the stock again."""
    inventory = SqlInventory(router, strategy)
    product = await _stocked(router, 5)
    [order] = new_ids(random.randrange(256), 1)
    await inventory.reserve(order, Line(product.id, 2), in_an_hour())
    assert await inventory.release(order, product.id) == 2
    again = await asyncio.gather(*(inventory.reserve(order, Line(product.id, 2), in_an_hour()) for _ in range(5)))
    # Taken again once (a new reservation for the saga's bookkeeping); the racing retries find it held.
    assert sorted(r.new for r in again) == [False] * 4 + [True]
    assert {(r.product_id, r.quantity, r.price_cents) for r in again} == {(product.id, 2, 250)}
    assert await _tally(router, product.id) == {"available": 3, "held": 2, "sold": 0, "released": 0}
    assert await inventory.release(order, product.id) == 2
    [other] = new_ids(random.randrange(256), 1)
    await inventory.reserve(other, Line(product.id, 5), in_an_hour())
    with pytest.raises(OutOfStock):  # and with the stock gone meanwhile, it is refused
        await inventory.reserve(order, Line(product.id, 2), in_an_hour())
    assert await _tally(router, product.id) == {"available": 0, "held": 5, "sold": 0, "released": 2}
    await inventory.release(other, product.id)


async def _until_waiting_on_locks(url: str, n: int) -> None:
    """Until ``n`` statements of this database wait for a lock (on the tests' own databases, only ours)."""
    deadline = time.monotonic() + 10.0
    async with connect(url) as watcher:
        while await watcher.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND wait_event_type = 'Lock'") < n:
            assert time.monotonic() < deadline, f"{n} statements never waited for the product's row"
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("strategy", ["conditional-update", "select-for-update"])
async def test_twin_reservations_of_one_order_take_the_stock_once(private_router, strategy, monkeypatch):
    """Two attempts of one checkout reserve the same (order, product) at the same moment (a retry
    racing the attempt it retries). Both read "no reservation yet", then queue on the product's
    row: the second to get it must not decrement the stock again without a reservation to show
    for it, and both are answered with the one reservation."""
    router = private_router
    inventory = SqlInventory(router, strategy)
    product = await _stocked(router, 10)
    url = router.map.shards[router.map.shard_of_id(product.id)]
    [order] = new_ids(random.randrange(256), 1)
    sent = []
    real_fenced = router.fenced

    async def counting(*args):
        sent.append(args[1])
        return await real_fenced(*args)

    monkeypatch.setattr(router, "fenced", counting)
    try:
        async with connect(url) as blocker:
            async with blocker.transaction():  # the product's row locked, so that the twins meet on it
                await blocker.execute("SELECT 1 FROM products WHERE id = $1 FOR UPDATE", product.id)
                twins = [asyncio.create_task(inventory.reserve(order, Line(product.id, 3), in_an_hour()))
                         for _ in range(2)]
                await _until_waiting_on_locks(url, 2)
        results = await asyncio.wait_for(asyncio.gather(*twins), 10.0)
        assert await _tally(router, product.id) == {"available": 7, "held": 3, "sold": 0, "released": 0}
        assert sorted(r.new for r in results) == [False, True]
        assert {(r.product_id, r.quantity, r.price_cents) for r in results} == {(product.id, 3, 250)}
        if strategy == "conditional-update":
            # The twin that lost aborted its own statement (its decrement undone) and read again.
            assert len(sent) == 3
    finally:
        released = await inventory.release(order, product.id)  # no held reservation left for other tests
    assert released == 3
    assert await _tally(router, product.id) == {"available": 10, "held": 0, "sold": 0, "released": 3}


async def test_twin_reservations_racing_freely_never_leave_a_decrement_behind(router):
    """Twenty orders, each reserving twice at once, all on one hot row (the one-statement strategy)."""
    inventory = SqlInventory(router)
    product = await _stocked(router, 100)
    orders = new_ids(random.randrange(256), 20)
    results = await asyncio.gather(*(inventory.reserve(o, Line(product.id, 2), in_an_hour())
                                     for o in orders for _ in range(2)))
    assert sum(r.new for r in results) == 20 and all(r.quantity == 2 for r in results)
    assert await _tally(router, product.id) == {"available": 60, "held": 40, "sold": 0, "released": 0}
    assert sum(await asyncio.gather(*(inventory.release(o, product.id) for o in orders))) == 40


async def test_paid_orders_reservations_are_marked_sold_in_one_go_once(router):
    """What the worker does on order-paid: held reservations of many orders, on both shards, sold;
    one released before stays released; a redelivered batch sells nothing twice."""
    inventory = SqlInventory(router)
    products = [await _stocked(router, 5, bucket=random.choice(router.map.buckets_of(i % 2))) for i in range(4)]
    assert {router.map.shard_of_id(p.id) for p in products} == {0, 1}
    a, b = new_ids(random.randrange(256), 2)
    pairs = [(o, p.id) for o in (a, b) for p in products]
    for o, p in pairs:
        await inventory.reserve(o, Line(p, 1), in_an_hour())
    assert await inventory.release(b, products[0].id) == 1
    assert await inventory.mark_sold_many(pairs) == len(pairs) - 1
    assert await inventory.mark_sold_many(pairs) == 0
    for i, p in enumerate(products):
        released = 1 if i == 0 else 0
        assert await _tally(router, p.id) == {"available": 3 + released, "held": 0, "sold": 2 - released,
                                              "released": released}


async def test_an_unknown_product_is_refused_and_expiry_is_by_time(router):
    inventory = SqlInventory(router)
    missing = absent_id(random.randrange(256))
    [order] = new_ids(random.randrange(256), 1)
    with pytest.raises(UnknownProduct):
        await inventory.reserve(order, Line(missing, 1), in_an_hour())
    assert await inventory.available(missing) is None
    assert await inventory.release(order, missing) == 0
    await inventory.mark_sold(order, missing)

    product = await _stocked(router, 3)
    expires = in_an_hour()
    await inventory.reserve(order, Line(product.id, 1), expires)
    shard = router.map.shard_of_id(product.id)
    assert (order, product.id) not in await inventory.expired(shard, now(), 10_000)
    assert (order, product.id) in await inventory.expired(shard, expires + timedelta(seconds=1), 10_000)
    assert (order, product.id) not in await inventory.expired(1 - shard, expires + timedelta(seconds=1), 10_000)
    await inventory.release(order, product.id)
    assert (order, product.id) not in await inventory.expired(shard, expires + timedelta(seconds=1), 10_000)
