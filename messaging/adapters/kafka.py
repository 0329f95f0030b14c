"""Kafka adapters: per-gateway delivery topics, and the sent-message log of ``log-first``.

Each gateway reads its own topic (``gateway-inbox.<gateway>``, one partition, so a
conversation's frames arrive in the order they were produced). A record is one frame for
some users on that gateway: ``{"to": [users], "frame": {...}}``, keyed by conversation id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from messaging.domain import MessageSent
from messaging.ports import InboxBell, LogUnavailable
from services.clients.kafka import KafkaProducer, LostLogs, TopicSpec, ensure_topics


def encode_sent(sent: MessageSent) -> bytes:
    return orjson.dumps({"conversation_id": sent.conversation_id, "message_id": sent.message_id,
                         "sender": sent.sender, "text": sent.text, "sent_at": sent.sent_at})


def decode_sent(raw: bytes) -> MessageSent:
    data = orjson.loads(raw)
    return MessageSent(data["conversation_id"], data["message_id"], data["sender"], data["text"],
                       datetime.fromisoformat(data["sent_at"]))


class KafkaDeliveries:
    def __init__(self, producer: KafkaProducer, topic_for: Callable[[str], str], bell: InboxBell) -> None:
        self._producer = producer
        self._topic_for = topic_for
        self._bell = bell
        self._known: set[str] = set()

    async def deliver(self, gateway: str, conversation_id: str, users: Sequence[str], frame: dict) -> Awaitable[None]:
        topic = self._topic_for(gateway)
        # A reader that went quiet is asleep: ring first (a gateway sent to lately is not rung).
        await self._bell.ring(gateway)
        try:
            if topic not in self._known:
                # The gateway creates its topic at start; this covers a gateway whose topic the
                # broker lost in a restart (Tansu keeps topics in memory).
                await ensure_topics(self._producer.bootstrap, [TopicSpec(topic, partitions=1)])
                self._known.add(topic)
            # Partition 0, the one the gateway reads: a broker that re-creates the topic on its own
            # after a restart (Tansu, with 4 partitions) must not scatter records where no one reads.
            sent = await self._producer.enqueue(topic, orjson.dumps({"to": list(users), "frame": frame}),
                                                key=conversation_id.encode(), partition=0)
        except KafkaError as exc:
            self._known.discard(topic)
            raise LogUnavailable(str(exc)[:200]) from exc
        return self._acked(sent, topic)

    async def _acked(self, sent: asyncio.Future, topic: str) -> None:
        try:
            await sent
        except KafkaError as exc:
            self._known.discard(topic)
            raise LogUnavailable(str(exc)[:200]) from exc

    def forget(self) -> None:
        """After a broker restart: make sure topics exist again before the next send."""
        self._known.clear()


class KafkaSentLog:
    def __init__(self, producer: KafkaProducer, topic: TopicSpec) -> None:
        self._producer = producer
        self._topic = topic
        self._known = True  # the producer ensured it at start

    async def publish(self, sent: MessageSent) -> None:
        try:
            if not self._known:
                # After a failure (the broker may have restarted empty): create the topic with its
                # partitions before a produce makes the broker create it with its own default.
                await ensure_topics(self._producer.bootstrap, [self._topic])
                self._known = True
            await self._producer.send(self._topic.name, encode_sent(sent), key=sent.conversation_id.encode())
        except KafkaError as exc:
            self._known = False
            raise LogUnavailable(str(exc)[:200]) from exc


class TopicTail:
    """Reads a gateway's topic (one partition) from its end, with no group and no offsets kept: a
    (re)started gateway holds no connections yet, and every connection that comes replays what it
    missed from the database. After a failure it starts over, at the end, with a new consumer.

    The port of :class:`services.consumer_loop.ConsumerLoop`; it connects on the first fetch, so
    a gateway starts while Kafka is down and reads once Kafka is back.
    """

    critical = False

    def __init__(self, bootstrap: Sequence[str], topic: str, *, client_id: str, fetch_max_wait_ms: int,
                 quiet_check_s: float) -> None:
        self.name = f"tail-{topic}"
        self._bootstrap = list(bootstrap)
        self._partition = TopicPartition(topic, 0)
        self._options = dict(bootstrap_servers=self._bootstrap, client_id=client_id, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="latest",
                             fetch_max_wait_ms=fetch_max_wait_ms)
        self._quiet_check_s = quiet_check_s
        self._consumer: AIOKafkaConsumer | None = None
        self._answered_at = float("-inf")  # when the broker last answered a fetch (for readiness)
        self._lost = LostLogs()

    async def start(self) -> None:
        """Nothing to open yet (see the class)."""

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except KafkaError:
                pass  # the broker is gone; the process is stopping or reconnecting anyway

    async def _open(self) -> AIOKafkaConsumer:
        await ensure_topics(self._bootstrap, [TopicSpec(self._partition.topic, partitions=1)])
        consumer = AIOKafkaConsumer(**self._options)
        await consumer.start()
        self._consumer = consumer
        consumer.assign([self._partition])
        await consumer.seek_to_end(self._partition)
        return consumer

    async def getmany(self, *, timeout_ms: int, max_records: int | None = None) -> dict:
        try:
            consumer = self._consumer or await self._open()
            batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except (KafkaError, OSError):
            await self.stop()
            raise
        self._answered_at = asyncio.get_running_loop().time()
        return batch

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if self._consumer is not None:
            self._consumer.seek(partition, offset)

    async def commit(self) -> None:
        """No group, so no offsets to keep (see the class)."""

    async def rewind_lost_logs(self) -> list:
        """The broker lost its log (a Tansu restart) and numbers records from 0 again: read the new
        log from its start (Tansu answers a fetch past the end with nothing, not an error). The end
        is the high watermark the last fetch answered with: no request of its own."""
        if self._consumer is None or not self._lost.lost(self._partition, self._consumer.highwater(self._partition)):
            return []
        self._consumer.seek(self._partition, 0)
        return [self._partition]

    def pause(self) -> None:
        """No fetches until :meth:`resume` (the broker is not asked at rest)."""
        if self._consumer is not None:
            self._consumer.pause(self._partition)

    def resume(self) -> None:
        if self._consumer is not None:
            self._consumer.resume(self._partition)

    async def _check(self) -> None:
        if self._consumer is None:
            raise ConnectionError("not reading its delivery topic")
        if asyncio.get_running_loop().time() - self._answered_at < self._quiet_check_s:
            return  # the broker answered lately: no probe of its own (readiness is asked every second)
        await asyncio.wait_for(self._consumer._client.fetch_all_metadata(), 2.0)
        self._answered_at = asyncio.get_running_loop().time()

    def health_checks(self) -> dict:
        return {"delivery-topic": self._check}
