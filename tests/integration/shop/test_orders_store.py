"""Orders, idempotency keys and the outbox rows they write, on the buyer's shard (the lab's PostgreSQL).

Keys are taken with long leases (or finished) and orders are settled before a test ends, so the
lab's sweeper, which recovers pending orders whose key let go, leaves them alone. Outbox rows are
counted while the live relay is kept off the server (its lock held), so it cannot take them first.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from shop.adapters.sql_orders import SqlOrders
from shop.domain import OrderItem, OrderStatus, StoredResponse
from shop.ports import Begun
from shop.sharding import bucket_of_id, bucket_of_key
from tests.integration.shop.helpers import absent_id, event, now, outbox_rows, relay_paused, sql, tag, user_on

LONG = 3600.0
ITEMS = (OrderItem(absent_id(3, 1), 2, 500), OrderItem(absent_id(200, 2), 1, 300))


def _user() -> str:
    return f"it-u-{tag()}"


async def _placed(orders: SqlOrders, user: str, items=ITEMS):
    key = f"k-{tag()}"
    begun = await orders.begin(user, key, "fp", LONG)
    return key, await orders.place(user, key, begun.order_id, items, event("order-placed", begun.order_id))


async def test_a_key_is_claimed_once_and_answers_every_retry(router):
    orders = SqlOrders(router)
    user, key = _user(), f"k-{tag()}"
    first = await orders.begin(user, key, "fp-1", 30)
    assert (first.outcome, first.response) == ("new", None)
    assert bucket_of_id(first.order_id) == bucket_of_key(user, 256)
    assert await orders.begin(user, key, "fp-1", 30) == Begun("in_use", first.order_id)
    assert await orders.begin(user, key, "fp-2", 30) == Begun("reused", first.order_id)
    assert await orders.key_expired(first.order_id, now()) is False

    answer = StoredResponse(201, {"order_id": str(first.order_id), "status": "paid", "total_cents": 1300})
    await orders.finish(user, key, answer)
    assert await orders.begin(user, key, "fp-1", 30) == Begun("replay", first.order_id, answer)
    assert await orders.begin(user, key, "fp-2", 30) == Begun("reused", first.order_id)
    await orders.let_go(user, key)  # a finished key keeps its answer
    assert await orders.begin(user, key, "fp-1", 30) == Begun("replay", first.order_id, answer)
    assert await orders.key_expired(first.order_id, now()) is True

    # Keys are per user: another user's same key is a checkout of its own.
    other = await orders.begin(_user(), key, "fp-1", 30)
    assert other.outcome == "new" and other.order_id != first.order_id


async def test_a_lapsed_or_released_lease_is_resumed_under_the_same_order(router):
    orders = SqlOrders(router)
    user, key = _user(), f"k-{tag()}"
    first = await orders.begin(user, key, "fp", 0.2)
    await asyncio.sleep(0.4)
    assert await orders.key_expired(first.order_id, now()) is True
    assert await orders.begin(user, key, "fp", LONG) == Begun("resume", first.order_id)
    assert await orders.begin(user, key, "fp", LONG) == Begun("in_use", first.order_id)  # the resume leased it
    await orders.let_go(user, key)
    assert await orders.begin(user, key, "fp", LONG) == Begun("resume", first.order_id)
    await orders.finish(user, key, StoredResponse(409, {"error": {"code": "out_of_stock"}}))


async def test_ten_concurrent_claims_of_one_key_make_one_order(router):
    orders = SqlOrders(router)
    user, key = _user(), f"k-{tag()}"
    begun = await asyncio.gather(*(orders.begin(user, key, "fp", LONG) for _ in range(10)))
    assert sorted(b.outcome for b in begun) == ["in_use"] * 9 + ["new"]
    assert len({b.order_id for b in begun}) == 1
    [row] = await sql(router.map.shards[router.map.shard_of_user(user)],
                      "SELECT count(*) AS n FROM idempotency_keys WHERE user_name = :u", u=user)
    assert row.n == 1
    await orders.finish(user, key, StoredResponse(201, {}))


async def test_an_order_is_placed_and_settled_once_each_with_one_event(router):
    orders = SqlOrders(router)
    user, key = _user(), f"k-{tag()}"
    order_id = (await orders.begin(user, key, "fp", LONG)).order_id
    url = router.map.shards[router.map.shard_of_user(user)]
    async with relay_paused(url):
        placed_event = event("order-placed", order_id)
        placed = await orders.place(user, key, order_id, ITEMS, placed_event)
        again = await orders.place(user, key, order_id, ITEMS[:1], event("order-placed", order_id))
        assert again == placed
        assert (placed.id, placed.user, placed.status, placed.idempotency_key, placed.failure) == (
            order_id, user, OrderStatus.PENDING, key, None)
        assert placed.items == tuple(sorted(ITEMS, key=lambda i: i.product_id)) and placed.total_cents == 1300
        assert placed.created_at.tzinfo is not None
        assert await orders.get(order_id) == placed
        assert len(await sql(url, "SELECT 1 FROM order_items WHERE order_id = :o", o=order_id)) == 2
        assert await outbox_rows(url, order_id) == [("order-placed", placed_event.event_id)]

        paid_event = event("order-paid", order_id)
        paid = await orders.settle(order_id, OrderStatus.PAID, None, paid_event)
        assert (paid.status, paid.items, paid.failure) == (OrderStatus.PAID, placed.items, None)
        # Settled already (a sweeper racing a retry): unchanged, and no second event.
        assert await orders.settle(order_id, OrderStatus.FAILED, "payment_declined",
                                   event("order-failed", order_id)) == paid
        assert await outbox_rows(url, order_id) == [("order-placed", placed_event.event_id),
                                                    ("order-paid", paid_event.event_id)]
        [stored] = await sql(url, "SELECT payload::text AS p FROM outbox WHERE event_id = :e", e=paid_event.event_id)
        assert str(order_id) in stored.p and paid_event.event_id in stored.p
    missing = absent_id(bucket_of_key(user, 256))
    assert await orders.settle(missing, OrderStatus.PAID, None, event("order-paid", missing)) is None
    assert await orders.get(missing) is None
    await orders.finish(user, key, StoredResponse(201, paid.public()))


async def test_a_users_orders_are_listed_newest_first_a_page_at_a_time(router):
    orders = SqlOrders(router)
    user = user_on(router, random.randrange(2))
    ids = []
    for status in (OrderStatus.PAID, OrderStatus.FAILED, OrderStatus.PAID):
        key, placed = await _placed(orders, user)
        failure = "payment_declined" if status == OrderStatus.FAILED else None
        settled = await orders.settle(placed.id, status, failure, event(f"order-{status.value}", placed.id))
        assert (settled.status, settled.failure) == (status, failure)
        await orders.finish(user, key, StoredResponse(201, settled.public()))
        ids.append(placed.id)
    newest_first = sorted(ids, reverse=True)

    everything = await orders.list_for(user, None, 10)
    assert [o.id for o in everything] == newest_first
    assert all(o.user == user and len(o.items) == 2 for o in everything)
    first = await orders.list_for(user, None, 2)
    rest = await orders.list_for(user, first[-1].id, 2)
    assert [o.id for o in first] == newest_first[:2] and [o.id for o in rest] == newest_first[2:]
    assert await orders.list_for(user, newest_first[-1], 2) == []
    assert await orders.list_for(_user(), None, 10) == []


async def test_an_old_pending_order_is_found_stuck_until_it_is_settled(router):
    orders = SqlOrders(router)
    user = _user()
    shard = router.map.shard_of_user(user)
    url = router.map.shards[shard]
    key, old = await _placed(orders, user)
    fresh_key, fresh = await _placed(orders, user)
    # Made to look two hours old; its key stays leased for an hour, so the lab's sweeper leaves it.
    await sql(url, "UPDATE orders SET created_at = now() - interval '2 hours' WHERE id = :o", o=old.id)
    try:
        stuck = {o.id: o for o in await orders.stuck(shard, now() - timedelta(hours=1), 10_000)}
        assert old.id in stuck and fresh.id not in stuck
        assert stuck[old.id].status == OrderStatus.PENDING and stuck[old.id].items == old.items
        assert old.id not in {o.id for o in await orders.stuck(1 - shard, now() - timedelta(hours=1), 10_000)}
        assert fresh.id in {o.id for o in await orders.stuck(shard, now() + timedelta(seconds=5), 10_000)}

        assert await orders.key_expired(old.id, now()) is False  # its checkout may still be running
        assert await orders.key_expired(old.id, now() + timedelta(hours=2)) is True  # its lease is over
        assert await orders.key_expired(absent_id(bucket_of_key(user, 256)), now()) is None  # no key names it
    finally:
        for order in (old, fresh):
            await orders.settle(order.id, OrderStatus.FAILED, "payment_not_taken", event("order-failed", order.id))
    assert old.id not in {o.id for o in await orders.stuck(shard, now() - timedelta(hours=1), 10_000)}
    for k in (key, fresh_key):
        await orders.finish(user, k, StoredResponse(503, {}))
