"""Messaging's loops on the kit's ConsumerLoop: the persister (log-first) and the gateway's delivery reader."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from types import SimpleNamespace

import orjson

from messaging.adapters.kafka import encode_sent
from messaging.config import MessagingSettings
from messaging.consumers import Persister
from messaging.delivery import DeliveryReader
from messaging.domain import Message, MessageSent
from messaging.ports import Appended, LogUnavailable, StoreUnavailable
from tests.unit.fake_consumer import FakeConsumer, run_until


def _sent(conversation_id: str, n: int) -> MessageSent:
    return MessageSent(conversation_id, f"{conversation_id}-m{n}", "ann", f"hello {n}", datetime.now(timezone.utc))


class Messages:
    """The message store's append: a seq per conversation, a resend recognised by its id."""

    def __init__(self, down_for: int = 0) -> None:
        self.by_id: dict[str, Message] = {}
        self.down_for = down_for

    async def append(self, sent: MessageSent, outbox: bool) -> Appended:
        if self.down_for:
            self.down_for -= 1
            raise StoreUnavailable("timed out")
        if sent.message_id in self.by_id:
            return Appended(self.by_id[sent.message_id], new=False)
        seq = 1 + sum(m.conversation_id == sent.conversation_id for m in self.by_id.values())
        message = Message(sent.conversation_id, seq, sent.message_id, sent.sender, sent.text, sent.sent_at)
        self.by_id[sent.message_id] = message
        return Appended(message, new=True)


class Routed:
    def __init__(self, failures: int = 0) -> None:
        self.messages: list[Message] = []
        self.failures = failures

    async def __call__(self, messages) -> None:
        if self.failures:
            self.failures -= 1
            raise LogUnavailable("no ack")
        self.messages.extend(messages)


async def test_the_persister_stores_routes_and_commits_each_partition_in_order_skipping_what_is_not_a_message():
    messages, routed = Messages(down_for=2), Routed()
    service = SimpleNamespace(messages=messages, deliver_stored=routed)
    consumer = FakeConsumer({0: [encode_sent(_sent("c1", i)) for i in range(3)] + [b"nope"],
                             1: [encode_sent(_sent("c2", i)) for i in range(2)]})
    persister = Persister(service, consumer)
    await run_until(persister, consumer.done, timeout_s=10)
    assert [(m.conversation_id, m.seq) for m in routed.messages if m.conversation_id == "c1"] == [
        ("c1", 1), ("c1", 2), ("c1", 3)]
    assert len(routed.messages) == 5 and persister.persisted == 5 and persister.malformed == 1


async def test_the_persister_hands_a_batch_again_when_routing_failed_and_commits_it_only_then():
    messages, routed = Messages(), Routed(failures=1)
    consumer = FakeConsumer({0: [encode_sent(_sent("c1", i)) for i in range(2)]})
    persister = Persister(SimpleNamespace(messages=messages, deliver_stored=routed), consumer)
    persister.pause_s = 0.001
    await run_until(persister, consumer.done)
    # Stored the first time; the second pass finds them stored (a redelivery), as a restart would.
    assert len(messages.by_id) == 2 and persister.persisted == 2 and persister.redelivered == 2


class FakeTail(FakeConsumer):
    """The TopicTail port: paused, it fetches nothing."""

    def __init__(self, logs) -> None:
        super().__init__(logs)
        self.paused = False

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    async def getmany(self, *, timeout_ms: int, max_records: int | None = None) -> dict:
        if self.paused:
            await asyncio.sleep(0.001)
            return {}
        return await super().getmany(timeout_ms=timeout_ms, max_records=max_records)


def _delivery(users: list[str], text: str) -> bytes:
    return orjson.dumps({"to": users, "frame": {"type": "message", "text": text}})


async def test_the_reader_delivers_each_frame_sleeps_when_quiet_and_wakes_on_the_bell():
    delivered: list[tuple[list[str], str]] = []
    hub = SimpleNamespace(deliver=lambda users, frame: delivered.append((users, frame["text"])))
    tail = FakeTail({0: [_delivery(["ann"], "one"), b"garbage", _delivery(["bob", "cy"], "two")]})
    reader = DeliveryReader(MessagingSettings(reader_awake_s=0.02, reader_check_s=60), hub, tail=tail)
    await reader.start()
    try:
        async with asyncio.timeout(5):
            while not tail.paused:
                await asyncio.sleep(0.001)
            assert delivered == [(["ann"], "one"), (["bob", "cy"], "two")] and reader.malformed == 1
            tail.logs[0].append(_delivery(["ann"], "three"))
            await asyncio.sleep(0.05)
            assert len(delivered) == 2  # asleep: the broker is not asked
            reader.ring()
            while len(delivered) < 3:
                await asyncio.sleep(0.001)
    finally:
        await asyncio.wait_for(reader.stop(), 1.0)  # asleep or not, it stops at once
    assert delivered[-1] == (["ann"], "three") and reader.pauses >= 1


async def test_a_frame_the_hub_fails_on_costs_that_frame_only():
    delivered: list[str] = []

    def deliver(users, frame) -> None:
        if frame["text"] == "bad":
            raise RuntimeError("a bug in the hub")
        delivered.append(frame["text"])

    tail = FakeTail({0: [_delivery(["ann"], "one"), _delivery(["ann"], "bad"), _delivery(["ann"], "two")]})
    reader = DeliveryReader(MessagingSettings(reader_awake_s=0.02, reader_check_s=60),
                            SimpleNamespace(deliver=deliver), tail=tail)
    await run_until(reader, tail.done)
    assert delivered == ["one", "two"]
