"""The gateway's background work: reading its delivery topic, and keeping its routes alive.

The delivery topic has no consumer group and no committed offsets: a gateway starts reading
at the end, because a (re)started gateway holds no connections yet, and every connection
that comes replays what it missed from the database (``resume``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from aiokafka.errors import KafkaError

from messaging.adapters.kafka import TopicTail
from messaging.config import MessagingSettings
from messaging.ports import RegistryUnavailable, StoreUnavailable
from messaging.service import MessagingService, Publisher
from messaging.ws import Hub
from services.consumer_loop import Batch, ConsumerLoop
from services.logging import get_logger
from services.tasks import BackgroundLoop

log = get_logger(__name__)


class DeliveryReader(ConsumerLoop):
    """Reads this gateway's topic (:class:`messaging.adapters.kafka.TopicTail`) and hands each
    frame to the hub.

    It asks the broker only while there is something to read: ``reader_awake_s`` after its last
    record it pauses its partition (Tansu answers a waiting fetch only when the wait is over, so
    low latency means short waits, and short waits at rest are hundreds of polls a second); a
    publisher rings its bell (:class:`messaging.ports.InboxBell`) before sending to a gateway it
    has not sent to lately, and the reader resumes at once. Every ``reader_check_s`` it also
    looks once by itself, in case a ring was lost.
    """

    transient = (KafkaError, OSError)
    fetch_timeout_ms = 100
    max_records = None
    lost_log_check_s = 0.0  # after every empty fetch: the tail's check costs no request

    def __init__(self, settings: MessagingSettings, hub: Hub, tail: TopicTail | None = None) -> None:
        self._tail = tail or TopicTail(settings.kafka_bootstrap_servers, settings.delivery_topic(settings.instance_id),
                                       client_id=settings.instance_id, fetch_max_wait_ms=settings.fetch_max_wait_ms,
                                       quiet_check_s=settings.reader_check_s)
        super().__init__("delivery-topic", self._tail)
        self._settings = settings
        self._hub = hub
        self._rung = asyncio.Event()
        self._awake_until = self._check_at = 0.0
        self.pauses = 0
        self.malformed = 0

    def ring(self) -> None:
        """The bell: something was (or is about to be) written to this gateway's topic."""
        self._rung.set()

    async def start(self) -> None:
        now = asyncio.get_running_loop().time()
        self._awake_until = now + self._settings.reader_awake_s
        self._check_at = now + self._settings.reader_check_s
        await super().start()

    async def handle(self, batch: Batch) -> None:
        for records in batch.values():
            for record in records:
                try:
                    body = orjson.loads(record.value)
                    users, frame = body["to"], body["frame"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    self.malformed += 1  # not a delivery: counted and skipped, never handed again
                    log.warning("delivery_malformed", offset=record.offset)
                    continue
                try:
                    self._hub.deliver(users, frame)
                except Exception:  # a bug must cost one frame, never stop the gateway's deliveries
                    log.exception("delivery_failed", offset=record.offset)
        self._awake_until = asyncio.get_running_loop().time() + self._settings.reader_awake_s

    async def idle(self) -> None:
        """Asleep, with the partition paused, from ``reader_awake_s`` after the last record until
        the bell rings or ``reader_check_s`` has passed."""
        loop = asyncio.get_running_loop()
        if self._rung.is_set():  # rung while awake: the record is on its way, stay awake for it
            self._rung.clear()
            self._awake_until = loop.time() + self._settings.reader_awake_s
            return
        if loop.time() < self._awake_until:
            return
        self._tail.pause()
        self.pauses += 1
        try:
            await asyncio.wait_for(self._rung.wait(), max(0.0, self._check_at - loop.time()))
            self._awake_until = loop.time() + self._settings.reader_awake_s
        except asyncio.TimeoutError:
            # The look by itself, now and then: one fetch's worth, then asleep again.
            self._check_at = loop.time() + self._settings.reader_check_s
            self._awake_until = loop.time()
        self._rung.clear()
        self._tail.resume()


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
