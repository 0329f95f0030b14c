"""The outbox relay, one shard at a time, on the tests' own databases (``private_urls``).

On the lab's databases the live relay (shop-worker) leads every server for as long as it runs
(a session advisory lock) and takes rows as soon as they are written, so which relay published a
row would be a race, and a relay of the tests' own would never lead; in databases nobody else
knows, the relay's batch, order, retry, leadership and wake-up are observed exactly.

A relay deletes a batch Kafka acknowledged in the statement that reads the next one (or in
``tidy``), so a published batch stays in the outbox until then: at least once, never lost.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from shop.adapters.outbox import RELAY_LOCK, OutboxRow, SqlOutbox
from shop.adapters.sql_catalog import SqlCatalog, SqlInventory
from shop.adapters.sql_orders import SqlOrders
from shop.domain import Line, NewProduct, OrderItem, OrderStatus
from shop.ports import ShardUnavailable
from tests.integration.shop.helpers import (
    absent_id,
    connect,
    event,
    in_an_hour,
    new_ids,
    now,
    tag,
    user_on,
)


class Collector:
    def __init__(self) -> None:
        self.batches: list[list[OutboxRow]] = []

    async def __call__(self, rows: list[OutboxRow]) -> None:
        self.batches.append(rows)


@pytest.fixture
async def relays(private_router):
    """Relays over the tests' own databases; each closed after the test (its connections, and the
    session locks they hold, go with it)."""
    made: list[SqlOutbox] = []

    def make(**kw) -> SqlOutbox:
        made.append(SqlOutbox(private_router, **kw))
        return made[-1]

    yield make
    for outbox in made:
        await outbox.close()


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
        assert await orders.place(user, key, (OrderItem(absent_id(1), 1, 100),), placed, now())
        assert await orders.settle(user, key, OrderStatus.PAID, None, paid)
        written += [(placed.topic, order_id, placed.event_id), (paid.topic, order_id, paid.event_id)]
    return written


def _seen(rows: list[OutboxRow]) -> list[tuple[str, int, str]]:
    return [(r.topic, r.order_id, orjson.loads(r.payload)["event_id"]) for r in rows]


async def test_the_relay_publishes_a_batch_in_write_order_then_deletes_it(private_router, relays):
    outbox = relays()
    await _drain(outbox, 0)
    await _drain(outbox, 1)
    held = (await outbox.gauges(0))[1]
    written = await _orders_with_events(private_router, 0, 3)
    assert await outbox.gauges(0) == (6, held) and (await outbox.gauges(1))[0] == 0

    publish = Collector()
    assert await outbox.relay(1, 100, publish) == 0  # the other shard has nothing
    assert await outbox.relay(0, 4, publish) == 4
    assert (await outbox.gauges(0))[0] == 6  # published, kept until the next read deletes it
    assert await outbox.relay(0, 4, publish) == 2
    assert (await outbox.gauges(0))[0] == 2
    assert await outbox.relay(0, 4, publish) == 0
    assert [len(b) for b in publish.batches] == [4, 2]  # an empty shard publishes nothing
    rows = [r for b in publish.batches for r in b]
    assert _seen(rows) == written
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert await outbox.gauges(0) == (0, held)

    # When events stop, tidy deletes the last batch published without waiting for a next read.
    more = await _orders_with_events(private_router, 0, 1)
    last = Collector()
    assert await outbox.relay(0, 100, last) == 2 and _seen(last.batches[0]) == more
    assert (await outbox.gauges(0))[0] == 2
    await outbox.tidy()
    assert (await outbox.gauges(0))[0] == 0
    assert await outbox.relay(0, 100, last) == 0 and len(last.batches) == 1


async def test_the_gauges_count_held_reservations(private_router, relays):
    outbox = relays()
    bucket = private_router.map.buckets_of(1)[0]
    product = await SqlCatalog(private_router).create(bucket, NewProduct(f"it-{tag()}", "it-cat", 100, 5))
    inventory = SqlInventory(private_router)
    before = await outbox.gauges(1)
    orders = new_ids(bucket, 2)
    for order in orders:
        await inventory.reserve(order, Line(product.id, 1), in_an_hour())
    assert (await outbox.gauges(1))[1] == before[1] + 2
    for order in orders:
        await inventory.release(order, product.id)
    assert (await outbox.gauges(1))[1] == before[1]


async def test_a_failed_publish_keeps_the_batch_for_the_next_relay(private_router, relays):
    outbox = relays()
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
    assert await outbox.relay(1, 100, publish) == 0 and len(publish.batches) == 1
    assert (await outbox.gauges(1))[0] == 0


async def test_one_relay_leads_a_shard_and_a_new_leader_publishes_again_what_was_not_deleted(
        private_router, private_urls, relays):
    first, second = relays(), relays()
    await _drain(first, 0)
    written = await _orders_with_events(private_router, 0, 1)
    entered, go_on = asyncio.Event(), asyncio.Event()
    got = Collector()

    async def slow(rows: list[OutboxRow]) -> None:
        entered.set()
        await go_on.wait()
        await got(rows)

    holder = asyncio.create_task(first.relay(0, 100, slow))
    await asyncio.wait_for(entered.wait(), 5.0)
    other = Collector()
    started = time.monotonic()
    assert await second.relay(0, 100, other) == 0 and other.batches == []  # tried the lock, did not wait
    assert time.monotonic() - started < 2.0
    go_on.set()
    assert await holder == 2 and _seen(got.batches[0]) == written
    # Leadership is the session's, not a batch's: between batches the leader keeps the shard.
    assert await second.relay(0, 100, other) == 0 and other.batches == []
    async with connect(private_urls[0]) as conn:
        holders = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                      "AND classid = 0 AND objid = $1 AND objsubid = 1 AND database = (SELECT oid FROM pg_database "
                                      "WHERE datname = current_database())", RELAY_LOCK)
    assert holders == 1

    # The leader goes away before it deleted its last batch: the next leader publishes it again
    # (at least once; consumers drop duplicates by event id), then deletes it.
    await first.close()
    again, deadline = Collector(), time.monotonic() + 5.0
    while not await second.relay(0, 100, again):  # the server lets go of the lock as the session ends
        assert time.monotonic() < deadline, "the closed relay kept the shard's lock"
        await asyncio.sleep(0.05)
    assert _seen(again.batches[0]) == written
    assert await second.relay(0, 100, again) == 0 and (await second.gauges(0))[0] == 0


async def test_a_hung_publish_lets_go_of_the_shard(private_router, relays):
    """A publish that hangs past the relay's deadline: the relay gives up and drops its connection
    (and the lock with it), so another relay takes over and publishes the rows."""
    hurried, standby = relays(publish_timeout_s=0.3), relays()
    await _drain(hurried, 0)
    written = await _orders_with_events(private_router, 0, 1)

    async def hung(rows: list[OutboxRow]) -> None:
        await asyncio.sleep(30)

    with pytest.raises(ShardUnavailable):
        await hurried.relay(0, 100, hung)
    publish, deadline = Collector(), time.monotonic() + 5.0
    while not await standby.relay(0, 100, publish):  # the server ends the dropped session in a moment
        assert time.monotonic() < deadline, "the hung relay kept the shard's lock"
        await asyncio.sleep(0.05)
    assert _seen(publish.batches[0]) == written


async def test_a_statement_that_adds_events_wakes_the_relay(private_router, relays):
    outbox = relays()
    await _drain(outbox, 1)  # leads shard 1, and listens there
    url = outbox.url(1)
    await outbox.wait(0)  # forget the wake-ups so far
    outbox.notified.clear()
    started = time.monotonic()
    waiting = asyncio.create_task(outbox.wait(10.0))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    written = await _orders_with_events(private_router, 1, 1)
    await asyncio.wait_for(waiting, 5.0)
    assert time.monotonic() - started < 5.0 and url in outbox.notified
    publish = Collector()
    assert await outbox.relay(1, 100, publish) == 2 and _seen(publish.batches[0]) == written
    await _drain(outbox, 1)
