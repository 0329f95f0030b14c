"""The click aggregator on the kit's ConsumerLoop: each batch applied once, none lost while PostgreSQL is down."""

from __future__ import annotations

import asyncio
import json

from shortener.adapters.kafka import ClickAggregator
from shortener.domain import LinkClicked
from tests.unit.fake_consumer import FakeConsumer, run_until
from tests.unit.shortener.fakes import FakeRepo, link


def _batch(batch_id: str, code: str, n: int) -> bytes:
    return json.dumps(LinkClicked(batch_id, "i1", {code: n}).to_json()).encode()


async def test_each_click_batch_is_applied_once_and_a_malformed_one_is_skipped():
    repo = FakeRepo()
    repo.add(link("abc1234"))
    consumer = FakeConsumer({0: [_batch("b1", "abc1234", 2), b"{not json", _batch("b2", "abc1234", 3)],
                             1: [_batch("b1", "abc1234", 2)]})  # a redelivery, on another partition
    aggregator = ClickAggregator(consumer, repo)
    await run_until(aggregator, consumer.done)
    assert repo.rows["abc1234"].clicks == 5
    assert (aggregator.applied, aggregator.duplicates, aggregator.malformed) == (2, 1, 1)


async def test_while_postgres_is_down_the_batch_waits_and_is_applied_when_it_is_back():
    repo = FakeRepo()
    repo.add(link("abc1234"))
    repo.down = True
    consumer = FakeConsumer({0: [_batch("b1", "abc1234", 1), _batch("b2", "abc1234", 1)]})
    aggregator = ClickAggregator(consumer, repo)
    aggregator.pause_s = 0.001
    await aggregator.start()
    try:
        while repo.calls["apply_clicks"] < 3:
            await asyncio.sleep(0.001)
        assert consumer.committed == {0: 0} and repo.rows["abc1234"].clicks == 0
        repo.down = False
        while not consumer.done():
            await asyncio.sleep(0.001)
    finally:
        await aggregator.stop()
    assert repo.rows["abc1234"].clicks == 2 and aggregator.applied == 2
