"""The outbox relay (the gateways' safety net) and the gateway's publisher, with fakes.

The relay sweeps stale rows: it reads on without waiting for Kafka's acks, never publishes a row
twice while its acks are pending, deletes rows once acked, and republishes after a failure. The
publisher (the gateway that stored a message) delivers its own members from memory, the other
gateways through the log, and deletes the outbox rows of what the log has in one statement."""

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

    async def stale(self, limit: int, older_than_s: float, busy=()) -> OutboxBatch:
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
    settings = SimpleNamespace(relay_batch=100, relay_poll_s=0.01, outbox_stale_s=2.0)
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


class FakeDeliveries:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []
        self.acks: list[asyncio.Future] = []

    async def deliver(self, gateway, conversation_id, users, frame):
        self.sent.append((gateway, list(users)))
        ack = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack


class FakeMessages:
    def __init__(self) -> None:
        self.deleted: list[list[int]] = []

    async def published(self, outbox_ids) -> None:
        self.deleted.append(list(outbox_ids))


def _message(seq: int):
    from datetime import datetime, timezone

    from messaging.domain import Message
    return Message("c" * 32, seq, f"m{seq}", "ann", "hi", datetime.now(timezone.utc))


async def test_the_publisher_delivers_here_from_memory_and_elsewhere_through_the_log():
    from messaging.service import Publisher

    deliveries, messages = FakeDeliveries(), FakeMessages()
    here: list[tuple[list[str], dict]] = []
    publisher = Publisher(deliveries, messages)
    publisher.here("gw-1", lambda users, frame: here.append((users, frame)))
    await publisher.publish(_message(1), {"gw-1": ["ann", "bob"], "gw-2": ["cy"]}, outbox_id=7)
    await publisher.publish(_message(2), {"gw-1": ["ann"]}, outbox_id=8)
    assert [users for users, _ in here] == [["ann", "bob"], ["ann"]] and here[0][1]["seq"] == 1
    assert deliveries.sent == [("gw-2", ["cy"])], "only the other gateway goes through the log"
    assert await publisher.flush() == 1 and messages.deleted == [[8]], "nothing awaited for message 2"
    deliveries.acks[0].set_result(None)
    await asyncio.sleep(0.01)
    assert await publisher.flush() == 1 and messages.deleted == [[8], [7]]
    assert await publisher.flush() == 0 and publisher.published == 2


async def test_a_message_the_log_refused_stays_in_the_outbox_for_the_relay():
    from messaging.service import Publisher

    deliveries, messages = FakeDeliveries(), FakeMessages()
    publisher = Publisher(deliveries, messages)
    await publisher.publish(_message(1), {"gw-2": ["cy"]}, outbox_id=7)
    deliveries.acks[0].set_exception(LogUnavailable("broker gone"))
    await asyncio.sleep(0.01)
    assert await publisher.flush() == 0 and messages.deleted == [] and publisher.unpublished == 1
