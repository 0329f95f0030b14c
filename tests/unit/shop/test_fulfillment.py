"""Fulfillment on the kit's ConsumerLoop: every order event handled once, a shard outage loses none."""

from __future__ import annotations

import orjson

from shop.fulfillment import Fulfillment
from shop.ports import ShardUnavailable
from tests.unit.fake_consumer import FakeConsumer, run_until


class FakeFulfilled:
    """FulfilledEvents: ids seen once; down on demand for a number of calls."""

    def __init__(self, down_for: int = 0) -> None:
        self.ids: set[str] = set()
        self.down_for = down_for

    async def record(self, events: list[tuple[str, str, int]]) -> int:
        if self.down_for:
            self.down_for -= 1
            raise ShardUnavailable("the first shard did not answer")
        new = {e[0] for e in events} - self.ids
        self.ids |= new
        return len(new)


def _event(event_id: str, order_id: int = 1) -> bytes:
    return orjson.dumps({"event_id": event_id, "event": "order-paid", "order_id": order_id})


async def test_each_event_is_recorded_once_and_what_is_not_an_order_event_is_counted():
    store = FakeFulfilled()
    consumer = FakeConsumer({0: [_event("e1"), b"\xff", orjson.dumps({"no": "id"}), _event("e2")],
                             1: [_event("e1")]})
    loop = Fulfillment(consumer, store)
    await run_until(loop, consumer.done)
    assert store.ids == {"e1", "e2"}
    assert (loop.new, loop.duplicates, loop.malformed, loop.handled) == (2, 1, 2, 4)


async def test_a_batch_that_met_a_shard_outage_is_handled_again_not_passed_over():
    store = FakeFulfilled(down_for=2)
    consumer = FakeConsumer({0: [_event(f"e{i}", i) for i in range(1, 8)]})
    loop = Fulfillment(consumer, store)
    loop.pause_s = 0.001
    await run_until(loop, consumer.done)
    assert store.ids == {f"e{i}" for i in range(1, 8)} and loop.new == 7 and store.down_for == 0
