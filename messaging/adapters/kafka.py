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
from aiokafka.errors import KafkaError

from messaging.domain import MessageSent
from messaging.ports import InboxBell, LogUnavailable
from services.clients.kafka import KafkaProducer, TopicSpec, ensure_topics


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
