"""Orders, idempotency keys and the outbox rows they write, on the buyer's shard (real PostgreSQL).

Keys are taken with long leases (or finished) and orders are settled before a test ends, so the
lab's sweeper, which recovers pending orders whose key let go, leaves them alone. What must count
outbox rows, or leave an order pending with its key answered, runs on the tests' own databases
(``private_router``): the lab's live relay holds its lock on the lab's servers for good, and
takes their rows within a moment.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from asyncpg.exceptions import UniqueViolationError

from shop.adapters.sql_catalog import SqlCatalog, SqlInventory
from shop.adapters.sql_orders import SqlOrders
from shop.domain import (
    Event,
    Line,
    NewProduct,
    Order,
    OrderItem,
    OrderStatus,
    StoredResponse,
)
from shop.ports import Begun, Reserved, ShardUnavailable
from shop.sharding import bucket_of_id, bucket_of_key
from tests.integration.shop.helpers import (
    absent_id,
    bucket_moving,
    connect,
    event,
    in_an_hour,
    now,
    outbox_rows,
    sql,
    tag,
    user_in_bucket,
    user_on,
)

LONG = 3600.0
ITEMS = (OrderItem(absent_id(3, 1), 2, 500), OrderItem(absent_id(200, 2), 1, 300))


def _user() -> str:
    return f"it-u-{tag()}"


async def _placed(orders: SqlOrders, user: str, items=ITEMS) -> tuple[str, Order]:
    key = f"k-{tag()}"
    order_id = (await orders.begin(user, key, "fp", LONG)).order_id
    assert await orders.place(user, key, items, event("order-placed", order_id), now())
    return key, await orders.get(order_id)


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
                      "SELECT count(*) AS n FROM idempotency_keys WHERE user_name = $1", user)
    assert row["n"] == 1
    await orders.finish(user, key, StoredResponse(201, {}))


async def test_an_order_is_placed_and_settled_once_each_with_one_event(private_router):
    """On the tests' own databases: no relay takes the outbox rows before they are counted."""
    router = private_router
    orders = SqlOrders(router)
    user, key = _user(), f"k-{tag()}"
    order_id = (await orders.begin(user, key, "fp", LONG)).order_id
    url = router.map.shards[router.map.shard_of_user(user)]
    placed_event, created = event("order-placed", order_id), now()
    assert await orders.place(user, key, ITEMS, placed_event, created) is True
    # Placed already (a resumed checkout): nothing is written, not even the other items or event.
    assert await orders.place(user, key, ITEMS[:1], event("order-placed", order_id), now()) is False
    placed = await orders.get(order_id)
    assert (placed.id, placed.user, placed.status, placed.idempotency_key, placed.failure) == (
        order_id, user, OrderStatus.PENDING, key, None)
    assert placed.items == tuple(sorted(ITEMS, key=lambda i: i.product_id)) and placed.total_cents == 1300
    assert placed.created_at.tzinfo is not None and placed.created_at == created
    assert len(await sql(url, "SELECT 1 FROM order_items WHERE order_id = $1", order_id)) == 2
    assert await outbox_rows(url, order_id) == [("order-placed", placed_event.event_id)]

    # The order, its items and its event are one statement: when one part fails, none is written.
    other_key = f"k-{tag()}"
    other_id = (await orders.begin(user, other_key, "fp", LONG)).order_id
    clash = Event(placed_event.event_id, "order-placed", other_id, {"event_id": placed_event.event_id})
    with pytest.raises(UniqueViolationError):  # the event id is taken: the outbox refuses the event
        await orders.place(user, other_key, ITEMS, clash, now(), answer=StoredResponse(202, {}))
    assert await orders.get(other_id) is None
    assert await sql(url, "SELECT 1 FROM order_items WHERE order_id = $1", other_id) == []
    assert await outbox_rows(url, other_id) == []
    assert await orders.begin(user, other_key, "fp", LONG) == Begun("in_use", other_id)  # and no answer stored
    await orders.finish(user, other_key, StoredResponse(503, {}))

    paid_event = event("order-paid", order_id)
    assert await orders.settle(user, key, OrderStatus.PAID, None, paid_event) is True
    paid = await orders.get(order_id)
    assert (paid.status, paid.items, paid.failure) == (OrderStatus.PAID, placed.items, None)
    # Settled already (a sweeper racing a retry): unchanged, and no second event.
    assert await orders.settle(user, key, OrderStatus.FAILED, "payment_declined",
                               event("order-failed", order_id)) is False
    assert await orders.get(order_id) == paid
    assert await outbox_rows(url, order_id) == [("order-placed", placed_event.event_id),
                                                ("order-paid", paid_event.event_id)]
    [stored] = await sql(url, "SELECT payload::text AS p FROM outbox WHERE event_id = $1", paid_event.event_id)
    assert str(order_id) in stored["p"] and paid_event.event_id in stored["p"]
    missing = absent_id(bucket_of_key(user, 256))
    assert await orders.settle(user, key, OrderStatus.PAID, None, event("order-paid", missing)) is False
    assert await orders.get(missing) is None and await outbox_rows(url, missing) == []
    await orders.finish(user, key, StoredResponse(201, paid.public()))


async def test_placing_with_an_answer_stores_it_in_the_same_statement(private_router):
    """An asynchronous checkout answers 202 when its order is placed: the answer is stored under the
    key by the statement that places the order, so a retry replays it from then on."""
    router = private_router
    orders = SqlOrders(router)
    user, key = _user(), f"k-{tag()}"
    order_id = (await orders.begin(user, key, "fp", LONG)).order_id
    assert await orders.begin(user, key, "fp", LONG) == Begun("in_use", order_id)
    answer = StoredResponse(202, {"order_id": str(order_id), "status": "pending", "total_cents": 1300})
    statements = sum(router.queries.values())
    assert await orders.place(user, key, ITEMS, event("order-placed", order_id), now(), answer=answer) is True
    assert sum(router.queries.values()) - statements == 1  # one statement: the order and the answer
    assert await orders.begin(user, key, "fp", LONG) == Begun("replay", order_id, answer)
    assert await orders.begin(user, key, "fp-other", LONG) == Begun("reused", order_id)
    assert await orders.key_expired(order_id, now()) is True  # answered: the key's lease is over
    assert (await orders.get(order_id)).status == OrderStatus.PENDING

    # A place that finds its order placed (a resumed checkout) stores no answer either.
    late = StoredResponse(500, {"error": "late"})
    assert await orders.place(user, key, ITEMS, event("order-placed", order_id), now(), answer=late) is False
    assert await orders.begin(user, key, "fp", LONG) == Begun("replay", order_id, answer)
    # The settlement then stores the final answer, in its own statement, once.
    final = StoredResponse(201, {"order_id": str(order_id), "status": "paid"})
    assert await orders.settle(user, key, OrderStatus.PAID, None, event("order-paid", order_id), answer=final)
    assert await orders.begin(user, key, "fp", LONG) == Begun("replay", order_id, final)
    assert not await orders.settle(user, key, OrderStatus.FAILED, "x", event("order-failed", order_id),
                                   answer=StoredResponse(402, {}))
    assert await orders.begin(user, key, "fp", LONG) == Begun("replay", order_id, final)


async def _footprint(url: str, user: str, key: str, order_id: int, product_id: int) -> dict:
    """Everything a checkout's steps write for one order, read from its server."""
    async with connect(url) as conn:
        return {
            "order": await conn.fetchval("SELECT status FROM orders WHERE id = $1", order_id),
            "items": await conn.fetchval("SELECT count(*) FROM order_items WHERE order_id = $1", order_id),
            "events": [r["topic"] for r in await conn.fetch("SELECT topic FROM outbox WHERE order_id = $1 "
                                                            "ORDER BY id", order_id)],
            "answer": await conn.fetchval("SELECT response_status FROM idempotency_keys WHERE user_name = $1 "
                                          "AND key = $2", user, key),
            "keys": await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE user_name = $1", user),
            "available": await conn.fetchval("SELECT available FROM products WHERE id = $1", product_id),
            "reservation": await conn.fetchval("SELECT status FROM reservations WHERE order_id = $1 "
                                               "AND product_id = $2", order_id, product_id),
        }


async def test_a_checkout_step_with_the_fence_folded_in_refuses_a_bucket_on_the_move_and_writes_nothing(
        private_router, monkeypatch):
    """Each step is one statement whose first CTE is the fence: while a reshard holds the bucket's
    move lock exclusively, the statement answers "moving" and writes nothing (the router waits,
    then gives up); once the lock is released, the same step writes."""
    router = private_router
    orders, inventory = SqlOrders(router), SqlInventory(router)
    bucket = random.randrange(256)
    user = user_in_bucket(bucket)  # the buyer's orders and the product behind one fence
    product = await SqlCatalog(router).create(bucket, NewProduct(f"it-{tag()}", f"it-cat-{tag()}", 500, 5))
    key = f"k-{tag()}"
    order_id = (await orders.begin(user, key, "fp", LONG)).order_id
    assert bucket_of_id(order_id) == bucket_of_id(product.id) == bucket
    url = router.map.shards[router.map.shard_of_bucket(bucket)]
    items = (OrderItem(product.id, 2, 500),)
    sent: list[tuple[int, str, tuple]] = []  # each fenced statement an adapter sent: (bucket, SQL, arguments)
    real_fenced = router.fenced

    async def recording(b: int, statement: str, *args):
        sent.append((b, statement, args))
        return await real_fenced(b, statement, *args)

    monkeypatch.setattr(router, "fenced", recording)

    async def by_hand() -> dict:
        """The statement the adapter sent last, run once more on a connection of the test's own."""
        b, statement, args = sent[-1]
        async with connect(url) as conn:
            return dict(await conn.fetchrow(statement, b, *args))

    nothing = {"order": None, "items": 0, "events": [], "answer": None, "keys": 1, "available": 5,
               "reservation": None}
    assert await _footprint(url, user, key, order_id, product.id) == nothing
    async with bucket_moving(url, bucket):
        fenced_before = router.fenced_writes
        with pytest.raises(ShardUnavailable, match=f"bucket {bucket} is being moved"):
            await orders.begin(user, f"k-{tag()}", "fp", LONG)
        refused = await by_hand()
        assert (refused["verdict"], refused["order_id"]) == ("moving", None)
        with pytest.raises(ShardUnavailable, match=f"bucket {bucket} is being moved"):
            await inventory.reserve(order_id, Line(product.id, 2), in_an_hour())
        refused = await by_hand()
        assert (refused["verdict"], refused["price"]) == ("moving", None)
        with pytest.raises(ShardUnavailable, match=f"bucket {bucket} is being moved"):
            await orders.place(user, key, items, event("order-placed", order_id), now(),
                               answer=StoredResponse(202, {"order_id": str(order_id)}))
        refused = await by_hand()
        assert (refused["verdict"], refused["placed"]) == ("moving", False)
        assert router.fenced_writes - fenced_before >= 3  # each step was tried again while it waited
        assert await _footprint(url, user, key, order_id, product.id) == nothing

    placed = event("order-placed", order_id)
    assert await inventory.reserve(order_id, Line(product.id, 2), in_an_hour()) == Reserved(product.id, 2, 500)
    assert await orders.place(user, key, items, placed, now(), answer=StoredResponse(202, {})) is True
    written = {"order": "pending", "items": 1, "events": ["order-placed"], "answer": 202, "keys": 1,
               "available": 3, "reservation": "held"}
    assert await _footprint(url, user, key, order_id, product.id) == written

    paid = event("order-paid", order_id)
    async with bucket_moving(url, bucket):
        with pytest.raises(ShardUnavailable, match=f"bucket {bucket} is being moved"):
            await orders.settle(user, key, OrderStatus.PAID, None, paid, answer=StoredResponse(201, {}))
        refused = await by_hand()
        assert (refused["verdict"], refused["settled"]) == ("moving", False)
        with pytest.raises(ShardUnavailable, match=f"bucket {bucket} is being moved"):
            await inventory.release(order_id, product.id)
        assert (await by_hand())["verdict"] == "moving"
        assert await _footprint(url, user, key, order_id, product.id) == written

    assert await orders.settle(user, key, OrderStatus.PAID, None, paid, answer=StoredResponse(201, {})) is True
    assert await inventory.mark_sold_many([(order_id, product.id)]) == 1  # the worker's step on order-paid
    assert await _footprint(url, user, key, order_id, product.id) == {
        **written, "order": "paid", "events": ["order-placed", "order-paid"], "answer": 201, "reservation": "sold"}


async def test_a_users_orders_are_listed_newest_first_a_page_at_a_time(router):
    orders = SqlOrders(router)
    user = user_on(router, random.randrange(2))
    ids = []
    for status in (OrderStatus.PAID, OrderStatus.FAILED, OrderStatus.PAID):
        key, placed = await _placed(orders, user)
        failure = "payment_declined" if status == OrderStatus.FAILED else None
        assert await orders.settle(user, key, status, failure, event(f"order-{status.value}", placed.id))
        settled = await orders.get(placed.id)
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
    await sql(url, "UPDATE orders SET created_at = now() - interval '2 hours' WHERE id = $1", old.id)
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
        for k, order in ((key, old), (fresh_key, fresh)):
            await orders.settle(user, k, OrderStatus.FAILED, "payment_not_taken", event("order-failed", order.id))
    assert old.id not in {o.id for o in await orders.stuck(shard, now() - timedelta(hours=1), 10_000)}
    for k in (key, fresh_key):
        await orders.finish(user, k, StoredResponse(503, {}))
