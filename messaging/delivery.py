"""The gateway's background work: reading its delivery topic, and keeping its routes alive.

The delivery topic has no consumer group and no committed offsets: a gateway starts reading
at the end, because a (re)started gateway holds no connections yet, and every connection
that comes replays what it missed from the database (``resume``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from messaging.config import MessagingSettings
from messaging.ports import RegistryUnavailable, StoreUnavailable
from messaging.service import MessagingService, Publisher
from messaging.ws import Hub
from services.clients.kafka import LostLogs, TopicSpec, ensure_topics
from services.logging import get_logger
from services.tasks import BackgroundLoop

log = get_logger(__name__)


class DeliveryReader(BackgroundLoop):
    """Reads this gateway's topic until Kafka fails, then starts over (a new consumer at the end).

    It asks the broker only while there is something to read: ``reader_awake_s`` after its last
    record it pauses its partition (Tansu answers a waiting fetch only when the wait is over, so
    low latency means short waits, and short waits at rest are hundreds of polls a second); a
    publisher rings its bell (:class:`messaging.ports.InboxBell`) before sending to a gateway it
    has not sent to lately, and the reader resumes at once. Every ``reader_check_s`` it also
    looks once by itself, in case a ring was lost.
    """

    transient = (KafkaError, OSError)

    def __init__(self, settings: MessagingSettings, hub: Hub) -> None:
        super().__init__("delivery-topic")
        self._settings = settings
        self._hub = hub
        self._topic = settings.delivery_topic(settings.instance_id)
        self._consumer: AIOKafkaConsumer | None = None
        self._rung = asyncio.Event()
        self._answered_at = float("-inf")  # when the broker last answered a fetch (for readiness)
        self._lost = LostLogs()
        self.pauses = 0

    def ring(self) -> None:
        """The bell: something was (or is about to be) written to this gateway's topic."""
        self._rung.set()

    async def step(self) -> None:
        bootstrap = self._settings.kafka_bootstrap_servers
        await ensure_topics(bootstrap, [TopicSpec(self._topic, partitions=1)])
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id=self._settings.instance_id,
                                    group_id=None, enable_auto_commit=False, auto_offset_reset="latest",
                                    fetch_max_wait_ms=self._settings.fetch_max_wait_ms)
        await consumer.start()
        self._consumer = consumer
        try:
            partition = TopicPartition(self._topic, 0)
            consumer.assign([partition])
            await consumer.seek_to_end(partition)
            await self._read(consumer, partition)
        finally:
            self._consumer = None
            try:
                await consumer.stop()
            except KafkaError:
                pass  # the broker is gone; the process is stopping or reconnecting anyway

    async def _read(self, consumer: AIOKafkaConsumer, partition: TopicPartition) -> None:
        loop = asyncio.get_running_loop()
        awake_until = loop.time() + self._settings.reader_awake_s
        check_at = loop.time() + self._settings.reader_check_s
        while True:
            if consumer.paused():
                try:
                    await asyncio.wait_for(self._rung.wait(), max(0.0, check_at - loop.time()))
                    awake_until = loop.time() + self._settings.reader_awake_s
                except asyncio.TimeoutError:
                    # The look by itself, now and then: one fetch's worth, then asleep again.
                    check_at = loop.time() + self._settings.reader_check_s
                    awake_until = loop.time()
                self._rung.clear()
                consumer.resume(partition)
            self._rung.clear()
            batches = await consumer.getmany(timeout_ms=100)
            self._answered_at = loop.time()
            for records in batches.values():
                for record in records:
                    body = orjson.loads(record.value)
                    self._hub.deliver(body["to"], body["frame"])
            now = loop.time()
            if batches:
                awake_until = now + self._settings.reader_awake_s
                continue
            await self._rewind_if_lost(consumer, partition)
            if now >= awake_until and not self._rung.is_set():
                consumer.pause(partition)
                self.pauses += 1

    async def _rewind_if_lost(self, consumer: AIOKafkaConsumer, partition: TopicPartition) -> None:
        """The broker lost its log (a Tansu restart) and numbers records from 0 again: read the new
        log from its start (Tansu answers a fetch past the end with nothing, not an error). The end
        is the high watermark the last fetch answered with: no request of its own."""
        end = consumer.highwater(partition)
        if self._lost.lost(partition, end):
            log.warning("log_lost_rewound", topic=partition.topic, position=await consumer.position(partition),
                        end=end)
            consumer.seek(partition, 0)

    async def _check(self) -> None:
        if self._consumer is None:
            raise ConnectionError("not reading its delivery topic")
        if asyncio.get_running_loop().time() - self._answered_at < self._settings.reader_check_s:
            return  # the broker answered lately: no probe of its own (readiness is asked every second)
        await asyncio.wait_for(self._consumer._client.fetch_all_metadata(), 2.0)
        self._answered_at = asyncio.get_running_loop().time()

    def health_checks(self) -> dict:
        return {"delivery-topic": self._check}


class OutboxFlusher(BackgroundLoop):
    """Deletes the outbox rows of what this gateway published, in one statement every
    ``outbox_flush_s`` (none at rest); at shutdown, what is still awaited first."""

    transient = (StoreUnavailable,)

    def __init__(self, settings: MessagingSettings, publisher: Publisher) -> None:
        super().__init__("outbox-flush")
        self._settings = settings
        self._publisher = publisher

    async def step(self) -> None:
        await asyncio.sleep(self._settings.outbox_flush_s)
        await self._publisher.flush()

    async def stop(self) -> None:
        await super().stop()
        try:
            await self._publisher.drain()
        except StoreUnavailable as exc:  # the relay's sweep publishes them again; nothing is lost
            log.warning("outbox_not_flushed", error=str(exc)[:200])


class Heartbeat(BackgroundLoop):
    """Keeps this gateway's liveness key fresh and announces its users' presence changes."""

    def __init__(self, settings: MessagingSettings, service: MessagingService,
                 on_presumed_dead: Callable[[], None]) -> None:
        super().__init__("heartbeat")
        self._settings = settings
        self._service = service
        self._gateway = settings.instance_id
        self._on_presumed_dead = on_presumed_dead
        self._beats = 0
        self._announcing: set[asyncio.Task] = set()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def start(self) -> None:
        try:
            # A gateway restarted under the same name forgets the routes of its previous life.
            for user in await self._service.registry.forget_gateway(self._gateway):
                await self._service.presence_changed(user, False)
        except RegistryUnavailable as exc:
            log.warning("stale_routes_not_cleared", error=str(exc))
        await super().start()

    async def step(self) -> None:
        try:
            alive = await self._service.registry.heartbeat(self._gateway, self._settings.presence_ttl_s)
            if not alive and self._beats:
                # Our liveness key expired (a stall or a Redis outage longer than the TTL): routes
                # through us were ignored meanwhile and the reaper may have removed them, so our
                # connections would wait for messages that never come. Their clients reconnect
                # and resume, which records the routes again and replays what they missed.
                log.warning("gateway_presumed_dead", ttl_s=self._settings.presence_ttl_s)
                self._on_presumed_dead()
            self._beats += 1
        except RegistryUnavailable as exc:
            log.warning("heartbeat_failed", error=str(exc))
        await asyncio.sleep(self._settings.heartbeat_s)

    async def connected(self, user: str) -> bool:
        """Record the route to ``user`` through this gateway; False when it could not be (a
        connection nothing is routed to must not stay open)."""
        try:
            first = await self._service.registry.connected(self._gateway, user)
        except RegistryUnavailable as exc:
            log.warning("route_not_recorded", user=user, error=str(exc))
            return False
        if first:
            # Best effort and not on the connection's way: a reconnect storm would otherwise
            # queue every socket behind its presence query.
            self._spawn(self._service.presence_changed(user, True))
        return True

    async def disconnected(self, user: str) -> None:
        try:
            if await self._service.registry.disconnected(self._gateway, user):
                await self._service.presence_changed(user, False)
        except RegistryUnavailable as exc:
            log.warning("route_not_removed", user=user, error=str(exc))
