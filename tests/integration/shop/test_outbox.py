"""The outbox relay, one shard at a time, on the tests' own databases (``private_urls``).

On the lab's databases the live relay (shop-worker) takes rows every 0.2 s and holds the same
advisory lock, so which relay published a row would be a race; in databases nobody else knows,
the relay's batch, order, retry and lock are observed exactly.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from shop.adapters.outbox import OutboxRow, SqlOutbox
from shop.adapters.sql_orders import SqlOrders
from shop.domain import OrderItem, OrderStatus, ShardUnavailable
from tests.integration.shop.helpers import absent_id, event, tag, user_on


class Collector:
    def __init__(self) -> None:
        self.batches: list[list[OutboxRow]] = []

    async def __call__(self, rows: list[OutboxRow]) -> None:
        self.batches.append(rows)


async def _drain(outbox: SqlOutbox, shard: int) -> None:
    """Whatever an earlier test left on the shard is published (and dropped) first."""
    while await outbox.relay(shard, 1000, Collector()):
        pass


async def _orders_with_events(router, shard: int, n: int) -> list[tuple[str, int, str]]:
    """``n`` orders placed then paid by a user on ``shard``: the (topic, order id, event id) of
    the outbox rows they wrote, in the order they were written."""
    orders = SqlOrders(router)
    user = user_on(router, shard)
    written = []
    for _ in range(n):
        key = f"k-{tag()}"
        order_id = (await orders.begin(user, key, "fp", 3600)).order_id
        placed, paid = event("order-placed", order_id), event("order-paid", order_id)
        await orders.place(user, key, order_id, (OrderItem(absent_id(1), 1, 100),), placed)
        await orders.settle(order_id, OrderStatus.PAID, None, paid)
        written += [(placed.topic, order_id, placed.event_id), (paid.topic, order_id, paid.event_id)]
    return written


def _seen(rows: list[OutboxRow]) -> list[tuple[str, int, str]]:
    return [(r.topic, r.order_id, orjson.loads(r.payload)["event_id"]) for r in rows]


async def test_the_relay_publishes_a_batch_in_write_order_then_deletes_it(private_router):
    outbox = SqlOutbox(private_router)
    await _drain(outbox, 0)
    await _drain(outbox, 1)
    written = await _orders_with_events(private_router, 0, 3)
    assert await outbox.gauges(0) == (6, 0) and (await outbox.gauges(1))[0] == 0

    publish = Collector()
    assert await outbox.relay(1, 100, publish) == 0  # the other shard has nothing
    assert await outbox.relay(0, 4, publish) == 4
    assert await outbox.relay(0, 4, publish) == 2
    assert await outbox.relay(0, 4, publish) == 0
    assert [len(b) for b in publish.batches] == [4, 2]  # an empty shard publishes nothing
    rows = [r for b in publish.batches for r in b]
    assert _seen(rows) == written
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert await outbox.gauges(0) == (0, 0)


async def test_a_failed_publish_keeps_the_batch_for_the_next_relay(private_router):
    outbox = SqlOutbox(private_router)
    await _drain(outbox, 1)
    written = await _orders_with_events(private_router, 1, 1)

    async def broker_down(rows: list[OutboxRow]) -> None:
        raise RuntimeError("kafka is down")

    for _ in range(2):
        with pytest.raises(RuntimeError, match="kafka is down"):
            await outbox.relay(1, 100, broker_down)
    assert (await outbox.gauges(1))[0] == 2
    publish = Collector()
    assert await outbox.relay(1, 100, publish) == 2
    assert _seen(publish.batches[0]) == written
    assert await outbox.relay(1, 100, publish) == 0


async def test_one_relay_at_a_time_per_shard_and_a_hung_publish_lets_go(private_urls, make_router):
    router = await make_router(private_urls)
    outbox = SqlOutbox(router)
    await _drain(outbox, 0)
    written = await _orders_with_events(router, 0, 1)
    entered, go_on = asyncio.Event(), asyncio.Event()
    first = Collector()

    async def slow(rows: list[OutboxRow]) -> None:
        entered.set()
        await go_on.wait()
        await first(rows)

    holder = asyncio.create_task(outbox.relay(0, 100, slow))
    await asyncio.wait_for(entered.wait(), 5.0)
    second = Collector()
    assert await outbox.relay(0, 100, second) == 0 and second.batches == []  # tried the lock, did not wait
    go_on.set()
    assert await holder == 2 and _seen(first.batches[0]) == written

    # A publish that hangs past the relay's deadline: the relay gives up and its transaction (with
    # the lock) is rolled back, so the rows are published by the next relay.
    hurried = SqlOutbox(router, publish_timeout_s=0.3)
    written = await _orders_with_events(router, 0, 1)

    async def hung(rows: list[OutboxRow]) -> None:
        await asyncio.sleep(30)

    with pytest.raises(ShardUnavailable):
        await hurried.relay(0, 100, hung)
    publish, deadline = Collector(), time.monotonic() + 5.0
    while not await outbox.relay(0, 100, publish):  # the abandoned transaction rolls back in the background
        assert time.monotonic() < deadline, "the hung relay kept the shard's lock"
        await asyncio.sleep(0.05)
    assert _seen(publish.batches[0]) == written
