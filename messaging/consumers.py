"""The fan-out worker (``messaging-fanout``): the outbox relay, the persister and the presence reaper.

It runs as its own process, built with the kit's app factory so it has ``/healthz``,
``/readyz`` and ``/metrics``; ``sdlab`` starts one, experiments start more.
- **Relay** (db-first, written by hand: the outbox pattern is what the design teaches): the
  gateway that stores a message publishes it itself right after its commit
  (:class:`messaging.service.Publisher`); the relay is the safety net. The one leader (an
  advisory lock) sweeps, every ``relay_poll_s``, the outbox rows older than ``outbox_stale_s``
  (a gateway died between its commit and Kafka's ack, or could not reach Redis or Kafka), in id
  order, and routes each message to its members' gateways. A batch's rows are deleted once its
  acks are in, and until then left out of the next reads. A failed publish, or a crash,
  publishes them again; gateways drop what a connection already has.
- **Persister** (log-first): a consumer-group member of ``message-sent``; stores each message
  (the seq is assigned here; a redelivered one is recognised by its message id and not routed
  again), routes it, then commits the offsets (at-least-once).
- **Reaper** (on the relay's leader): forgets gateways whose heartbeat expired and tells the
  peers of users who went offline with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client.registry import Collector

from messaging.adapters.kafka import decode_sent
from messaging.adapters.outbox import PgOutbox
from messaging.config import MessagingSettings
from messaging.main import sent_topic, wire
from messaging.ports import LogUnavailable, RegistryUnavailable, StoreUnavailable
from messaging.service import MessagingService
from services.app import create_service_app
from services.clients.kafka import KafkaConsumer
from services.clients.postgres import dsn
from services.consumer_loop import Batch, ConsumerLoop, Record
from services.logging import get_logger
from services.metrics import ClientGauges, counter_families
from services.settings import load_settings
from services.tasks import BackgroundLoop

log = get_logger(__name__)
SERVICE = "messaging-fanout"


class Loop(BackgroundLoop):
    """The worker's loops: PostgreSQL, Kafka or Redis being down pauses them, never ends them."""

    transient = (StoreUnavailable, LogUnavailable, RegistryUnavailable, KafkaError)


class Relay(Loop):
    def __init__(self, settings: MessagingSettings, service: MessagingService, outbox: PgOutbox) -> None:
        super().__init__("relay")
        self._settings = settings
        self._service = service
        self._outbox = outbox
        self.leading = False
        self.relayed = 0
        self._in_flight: dict[int, asyncio.Task] = {}  # outbox id -> the task confirming its batch
        self._failed = False

    async def step(self) -> None:
        self.leading = await self._outbox.lead()  # no round trip while it leads: the sweep proves the lock's connection
        if not self.leading:
            await asyncio.sleep(1.0)  # stand by; PostgreSQL hands over the lock when the leader dies
            return
        if self._failed:  # a publish failed: what is in flight is read and published again
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
            self._in_flight.clear()
            self._failed = False
        batch = await self._outbox.stale(self._settings.relay_batch, self._settings.outbox_stale_s,
                                         busy=list(self._in_flight))
        if batch.ids:
            acks = await self._service.route_stored(batch.messages)
            task = asyncio.ensure_future(self._confirm(batch.ids, acks))
            self._in_flight.update(dict.fromkeys(batch.ids, task))
        if len(batch.ids) < self._settings.relay_batch:
            await asyncio.sleep(self._settings.relay_poll_s)

    async def _confirm(self, ids: list[int], acks: list) -> None:
        """Kafka has the batch: delete its rows. Until then they stay in the outbox, left out of reads."""
        try:
            await asyncio.gather(*acks)
            await self._outbox.done(ids)
            self.relayed += len(ids)
        except (LogUnavailable, StoreUnavailable) as exc:
            log.warning("relay_publish_failed", rows=len(ids), error=str(exc)[:200])
            self._failed = True
            return
        for i in ids:
            self._in_flight.pop(i, None)

    async def stop(self) -> None:
        await super().stop()
        await asyncio.gather(*set(self._in_flight.values()), return_exceptions=True)


class Reaper(Loop):
    def __init__(self, settings: MessagingSettings, service: MessagingService, relay: Relay) -> None:
        super().__init__("reaper")
        self._settings = settings
        self._service = service
        self._relay = relay
        self.reaped = 0

    async def step(self) -> None:
        await asyncio.sleep(self._settings.heartbeat_s)
        if not self._relay.leading:
            return
        for gateway in await self._service.registry.dead_gateways():
            offline = await self._service.registry.forget_gateway(gateway)
            self.reaped += 1
            log.info("gateway_reaped", gateway=gateway, offline=len(offline))
            for user in offline:
                await self._service.presence_changed(user, False)


class Persister(ConsumerLoop):
    transient = Loop.transient
    lost_log_check_s = 1.0  # a broker restart that lost the log must not leave us past its new end

    def __init__(self, service: MessagingService, consumer: KafkaConsumer) -> None:
        super().__init__("persister", consumer)
        self._service = service
        self.persisted = 0
        self.redelivered = 0
        self.malformed = 0

    async def handle(self, batch: Batch) -> None:
        # Partitions are independent: store and route them concurrently, each in its own order;
        # all finish before a failure hands the batch again.
        outcomes = await asyncio.gather(*(self._partition(records) for records in batch.values()),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _partition(self, records: Sequence[Record]) -> None:
        stored = []
        for record in records:
            try:
                sent = decode_sent(record.value)
            except (ValueError, KeyError, TypeError):
                self.malformed += 1  # not a message: counted and skipped, never handed again forever
                log.warning("sent_record_malformed", topic=record.topic, offset=record.offset)
                continue
            while True:
                try:
                    appended = await self._service.messages.append(sent, outbox=False)
                    break
                except StoreUnavailable:
                    # Held here, not handed again: a second pass would find the messages stored
                    # before the outage "redelivered" and never route them.
                    await asyncio.sleep(0.5)
            if appended is None:
                continue  # its conversation does not exist (cannot happen through the gateway)
            if appended.new:
                self.persisted += 1
                stored.append(appended.message)
            else:
                self.redelivered += 1
        await self._service.deliver_stored(stored)


class FanoutCollector(Collector):
    def __init__(self, relay: Relay, persister: Persister | None, reaper: Reaper) -> None:
        self._relay, self._persister, self._reaper = relay, persister, reaper

    def collect(self) -> Iterator:
        p = self._persister
        yield from counter_families(SERVICE, [
            ("outbox_relayed", "Outbox rows the relay swept and published (the gateways had not)",
             self._relay.relayed),
            ("messages_persisted", "Messages stored from the log (log-first)", p.persisted if p else 0),
            ("messages_redelivered", "Log records already stored (a redelivery)", p.redelivered if p else 0),
            ("gateways_reaped", "Gateways forgotten after their heartbeat expired", self._reaper.reaped),
        ])


def create_app(settings: MessagingSettings | None = None) -> FastAPI:
    settings = settings or load_settings(MessagingSettings)
    w = wire(settings)
    outbox = PgOutbox(dsn(str(settings.database_urls[0])), settings.database_timeout_s)
    relay = Relay(settings, w.service, outbox)
    reaper = Reaper(settings, w.service, relay)
    consumer = None
    persister = None
    if settings.write_path == "log-first":
        consumer = KafkaConsumer(settings.kafka_bootstrap_servers, group_id=settings.persister_group,
                                 topics=[sent_topic(settings)], client_id=settings.instance_id,
                                 fetch_max_wait_ms=settings.fetch_max_wait_ms, critical=True,
                                 # See the topic again soon after a broker restart re-created it.
                                 metadata_max_age_ms=3000)
        persister = Persister(w.service, consumer)
    loops = [relay, reaper] + ([persister] if persister else [])
    app = create_service_app(service=SERVICE, settings=settings,
                             resources=[w.redis, w.db, w.producer, outbox, *loops],
                             description="Messaging fan-out: outbox relay, persister, presence reaper.")
    app.state.metrics.registry.register(FanoutCollector(relay, persister, reaper))
    app.state.metrics.registry.register(ClientGauges(SERVICE, shards=w.db, consumers=[consumer] if consumer else []))
    app.state.loops = loops
    return app
