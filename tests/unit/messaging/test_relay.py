"""The outbox relay with fakes: it reads on without waiting for Kafka's acks, never publishes a
row twice while its acks are pending, deletes rows once acked, and republishes after a failure."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from messaging.consumers import Relay
from messaging.ports import LogUnavailable, OutboxBatch


class FakeOutbox:
    def __init__(self) -> None:
        self.rows: dict[int, str] = {}

    async def lead(self) -> bool:
        return True

    async def wait(self, timeout_s: float) -> None:
        await asyncio.sleep(0)

    async def claim(self, limit: int, busy=()) -> OutboxBatch:
        ids = sorted(i for i in self.rows if i not in set(busy))[:limit]
        return OutboxBatch(ids, [self.rows[i] for i in ids])

    async def done(self, ids) -> None:
        for i in ids:
            self.rows.pop(i)


class FakeService:
    def __init__(self) -> None:
        self.published: list[str] = []
        self.acks: list[asyncio.Future] = []

    async def route_stored(self, messages) -> list:
        self.published += messages
        ack = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return [ack]


def _relay() -> tuple[Relay, FakeOutbox, FakeService]:
    outbox, service = FakeOutbox(), FakeService()
    settings = SimpleNamespace(relay_batch=100, relay_poll_s=0.01)
    return Relay(settings, service, outbox), outbox, service


async def test_reads_on_while_acks_are_pending_and_deletes_once_acked():
    relay, outbox, service = _relay()
    outbox.rows.update({1: "m1", 2: "m2"})
    await relay.step()
    outbox.rows[3] = "m3"
    await relay.step()  # 1 and 2 are in flight: only 3 is new
    assert service.published == ["m1", "m2", "m3"]
    for ack in service.acks:
        ack.set_result(None)
    await asyncio.sleep(0.01)
    assert outbox.rows == {} and relay.relayed == 3
    await relay.step()
    assert service.published == ["m1", "m2", "m3"]


async def test_a_failed_publish_is_published_again():
    relay, outbox, service = _relay()
    outbox.rows.update({1: "m1", 2: "m2"})
    await relay.step()
    service.acks[0].set_exception(LogUnavailable("broker gone"))
    await asyncio.sleep(0.01)
    await relay.step()
    assert service.published == ["m1", "m2", "m1", "m2"] and outbox.rows == {1: "m1", 2: "m2"}
    service.acks[1].set_result(None)
    await asyncio.sleep(0.01)
    assert outbox.rows == {} and relay.relayed == 2
