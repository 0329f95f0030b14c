"""The shop's workers, each its own process with ``/healthz``, ``/readyz`` and ``/metrics``.

- ``shop-worker`` (:func:`create_app`): the outbox relay (written by hand: the transactional
  outbox is what the design teaches) and the sweeper, which finishes or undoes sagas that died
  (orders left ``pending`` once their key's lease is over; held reservations past their expiry).
  Every step it takes is idempotent, so two workers racing do no harm.
- ``shop-fulfillment`` (:func:`create_fulfillment`): a consumer of the order events that handles
  each event once, deduplicating by event id (the relay publishes at least once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.app import create_service_app
from services.clients.kafka import KafkaProducer, TopicSpec
from services.logging import get_logger
from services.metrics import ClientGauges, counter_families
from services.tasks import BackgroundLoop
from shop.adapters.outbox import OutboxRow, SqlOutbox
from shop.config import ShopSettings
from shop.domain import PaymentsUnavailable, ShardUnavailable
from shop.main import Wiring, wire
from shop.saga import CheckoutSaga

log = get_logger(__name__)


def event_topics(settings: ShopSettings) -> list[TopicSpec]:
    return [TopicSpec(t, partitions=settings.event_partitions) for t in settings.event_topics]


class Loop(BackgroundLoop):
    transient = (ShardUnavailable, PaymentsUnavailable, KafkaError)


class Relay(Loop):
    def __init__(self, settings: ShopSettings, w: Wiring, outbox: SqlOutbox, producer: KafkaProducer) -> None:
        super().__init__("relay")
        self._settings, self._w, self._outbox, self._producer = settings, w, outbox, producer
        self.relayed = 0

    async def _publish(self, rows: list[OutboxRow]) -> None:
        acks = [await self._producer.enqueue(r.topic, r.payload, key=str(r.order_id).encode()) for r in rows]
        await asyncio.gather(*acks)

    async def step(self) -> None:
        moved = 0
        for shard in range(self._w.router.shard_count()):
            try:
                moved += await self._outbox.relay(shard, self._settings.relay_batch, self._publish)
            except ShardUnavailable as exc:  # one shard down must not stop the others' events
                log.warning("relay_shard_unavailable", shard=shard, error=str(exc)[:200])
        self.relayed += moved
        if moved == 0:
            await asyncio.sleep(self._settings.relay_poll_s)


class Sweeper(Loop):
    BATCH = 100

    def __init__(self, settings: ShopSettings, w: Wiring, saga: CheckoutSaga, outbox: SqlOutbox) -> None:
        super().__init__("sweeper")
        self._settings, self._w, self._saga, self._outbox = settings, w, saga, outbox
        self.recovered = 0
        self.reservations: dict[str, int] = {}
        self.gauges: dict[int, tuple[int, int]] = {}  # shard -> (outbox backlog, reservations held)

    async def step(self) -> None:
        await asyncio.sleep(self._settings.sweep_interval_s)
        for shard in range(self._w.router.shard_count()):
            try:
                await self._sweep(shard)
                self.gauges[shard] = await self._outbox.gauges(shard)
            except (ShardUnavailable, PaymentsUnavailable) as exc:
                log.warning("sweep_failed", shard=shard, error=str(exc)[:200])

    async def _sweep(self, shard: int) -> None:
        """One shard's stuck orders, then its expired reservations. Each item on its own: one that
        cannot be settled now (the provider, or the buyer's shard, is down) must not hold up the
        rest, such as the stock of a saga that died before it placed its order."""
        now = datetime.now(timezone.utc)
        lease = timedelta(seconds=self._settings.idempotency_lease_s)
        for order in await self._w.orders.stuck(shard, now - lease, self.BATCH):
            try:
                if await self._w.orders.key_expired(order.id, now) is False:
                    continue  # its checkout is still running (or was resumed by a retry)
                await self._saga.recover(order)
                self.recovered += 1
            except (ShardUnavailable, PaymentsUnavailable) as exc:
                log.warning("saga_not_recovered", order_id=order.id, error=str(exc)[:200])
        for order_id, product_id in await self._w.inventory.expired(shard, now, self.BATCH):
            try:
                verdict = await self._saga.settle_reservation(order_id, product_id, now)
            except ShardUnavailable as exc:
                log.warning("reservation_not_settled", order_id=order_id, error=str(exc)[:200])
                continue
            self.reservations[verdict] = self.reservations.get(verdict, 0) + 1


class WorkerCollector(Collector):
    def __init__(self, relay: Relay, sweeper: Sweeper) -> None:
        self._relay, self._sweeper = relay, sweeper

    def collect(self) -> Iterator:
        s = self._sweeper
        yield from counter_families("shop-worker", [
            ("shop_events_relayed", "Outbox rows published to Kafka", self._relay.relayed),
            ("shop_sagas_recovered", "Pending orders finished or undone by the sweeper", s.recovered),
            ("shop_reservations_released_expired", "Expired reservations returned to stock",
             s.reservations.get("released", 0)),
        ])
        backlog = GaugeMetricFamily("shop_outbox_backlog", "Outbox rows waiting", labels=["service", "shard"])
        held = GaugeMetricFamily("shop_reservations_held", "Reservations held", labels=["service", "shard"])
        for shard, (rows, reservations) in sorted(s.gauges.items()):
            backlog.add_metric(["shop-worker", str(shard)], rows)
            held.add_metric(["shop-worker", str(shard)], reservations)
        yield backlog
        yield held


def create_app(settings: ShopSettings | None = None) -> FastAPI:
    settings = settings or ShopSettings()
    w = wire(settings)
    outbox = SqlOutbox(w.router)
    producer = KafkaProducer(settings.kafka_bootstrap_servers, client_id=settings.instance_id,
                             topics=event_topics(settings), linger_ms=5)
    relay = Relay(settings, w, outbox, producer)
    sweeper = Sweeper(settings, w, w.saga, outbox)
    app = create_service_app(service="shop-worker", settings=settings,
                             resources=[w.redis, w.router, w.payments, producer, relay, sweeper],
                             description="Shop worker: outbox relay and saga sweeper.")
    app.state.metrics.registry.register(WorkerCollector(relay, sweeper))
    app.state.metrics.registry.register(ClientGauges("shop-worker", shards=w.router))
    app.state.loops = [relay, sweeper]
    return app
