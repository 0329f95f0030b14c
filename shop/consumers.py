"""The shop's workers, each its own process with ``/healthz``, ``/readyz`` and ``/metrics``.

- ``shop-worker`` (:func:`create_app`):
  - the outbox relay (written by hand: the transactional outbox is what the design teaches),
    woken by NOTIFY, lingering a moment so that a batch gathers;
  - the inventory consumer of ``order-paid``: a paid order's reservations marked sold, a batch of
    events in one statement per server (this is off the buyer's path on purpose);
  - with ``checkout_mode=async``, the payer: a consumer of ``order-placed`` that charges and
    settles the orders accepted with 202;
  - the sweeper, which finishes or undoes sagas that died (orders left ``pending`` once their
    key's lease is over; held reservations past their expiry).
  Every step it takes is idempotent, so two workers racing do no harm.
- ``shop-fulfillment`` (:mod:`shop.fulfillment`): a consumer of the order events that handles each
  event once, deduplicating by event id (the relay publishes at least once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import orjson
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.app import create_service_app
from services.clients.kafka import KafkaConsumer, KafkaProducer, TopicSpec
from services.consumer_loop import Batch, ConsumerLoop
from services.logging import get_logger
from services.metrics import ClientGauges, counter_families
from services.settings import load_settings
from services.tasks import BackgroundLoop
from shop.adapters.outbox import OutboxRow, SqlOutbox
from shop.config import ShopSettings
from shop.domain import Order, OrderItem, OrderStatus
from shop.main import Wiring, wire
from shop.ports import PaymentsUnavailable, ShardUnavailable
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
        self._backlog = False  # the last read filled a batch: read again at once

    async def _publish(self, rows: list[OutboxRow]) -> None:
        acks = [await self._producer.enqueue(r.topic, r.payload, key=str(r.order_id).encode()) for r in rows]
        await asyncio.gather(*acks)

    async def step(self) -> None:
        """Wait for a notification (or ``relay_poll_s``), let more events gather for ``relay_linger_s``,
        then read the shards that notified (all of them after a quiet poll), a batch each."""
        if not self._backlog:
            await self._outbox.wait(self._settings.relay_poll_s)
            if self._outbox.notified:
                await asyncio.sleep(self._settings.relay_linger_s)  # a checkout's next event joins the batch
        moved, self._backlog = 0, False
        everyone = not self._outbox.notified
        for shard in range(self._w.router.shard_count()):
            if not everyone and self._outbox.url(shard) not in self._outbox.notified:
                continue
            try:
                n = await self._outbox.relay(shard, self._settings.relay_batch, self._publish)
            except ShardUnavailable as exc:  # one shard down must not stop the others' events
                log.warning("relay_shard_unavailable", shard=shard, error=str(exc)[:200])
                continue
            moved += n
            self._backlog = self._backlog or n == self._settings.relay_batch
        self.relayed += moved
        if everyone and not moved:
            # Quiet for a whole poll: delete what the last batches published (while events flow,
            # each read deletes the batch before it, so this costs nothing on the way).
            await self._outbox.tidy()

    async def stop(self) -> None:
        await super().stop()
        await self._outbox.close()


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


def _order_of(event: dict) -> Order:
    """The order an event carries (its payload is the order as the API shows it, plus its buyer)."""
    items = tuple(OrderItem(int(i["product_id"]), int(i["quantity"]), int(i["price_cents"])) for i in event["items"])
    return Order(int(event["order_id"]), event["user"], OrderStatus(event["status"]), items,
                 datetime.fromisoformat(event["created_at"]), event.get("idempotency_key", ""), event.get("failure"))


class EventConsumer(ConsumerLoop):
    """A consumer-group member that hands each batch of events to :meth:`handle_events`, then
    commits (at least once: a failure or a crash before the commit hands the batch again;
    handling is idempotent)."""

    transient = Loop.transient

    def __init__(self, name: str, consumer: KafkaConsumer) -> None:
        super().__init__(name, consumer)
        self.handled = 0
        self.malformed = 0

    async def handle(self, batch: Batch) -> None:
        events = []
        for record in (r for rs in batch.values() for r in rs):
            try:
                events.append(orjson.loads(record.value))
            except orjson.JSONDecodeError:
                self.malformed += 1  # a poison record is counted and skipped, never retried forever
                log.warning("event_malformed", topic=record.topic, offset=record.offset)
        if events:
            await self.handle_events(events)
            self.handled += len(events)

    async def handle_events(self, events: list[dict]) -> None:
        raise NotImplementedError


class SoldMarker(EventConsumer):
    """``order-paid``: the order's held reservations become sold."""

    def __init__(self, consumer: KafkaConsumer, w: Wiring) -> None:
        super().__init__("sold-marker", consumer)
        self._w = w
        self.marked = 0

    async def handle_events(self, events: list[dict]) -> None:
        items = [(int(e["order_id"]), int(i["product_id"])) for e in events for i in e.get("items", ())]
        self.marked += await self._w.inventory.mark_sold_many(items)


class Payer(EventConsumer):
    """``order-placed`` of asynchronous checkouts: charge and settle, many orders at once (each waits
    on the provider, so one at a time would cap the rate at 1 / its latency)."""

    def __init__(self, consumer: KafkaConsumer, saga: CheckoutSaga, concurrency: int) -> None:
        super().__init__("payer", consumer)
        self._saga = saga
        self._gate = asyncio.Semaphore(concurrency)
        self.paid = 0

    async def _pay(self, event: dict) -> None:
        async with self._gate:
            order = await self._saga.pay(_order_of(event))
        self.paid += order.status == OrderStatus.PAID

    async def handle_events(self, events: list[dict]) -> None:
        outcomes = await asyncio.gather(*(self._pay(e) for e in events), return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            raise failed[0]  # not committed: the batch comes again (the charges are idempotent)


class WorkerCollector(Collector):
    def __init__(self, relay: Relay, sweeper: Sweeper, marker: SoldMarker, payer: Payer | None) -> None:
        self._relay, self._sweeper, self._marker, self._payer = relay, sweeper, marker, payer

    def collect(self) -> Iterator:
        s = self._sweeper
        yield from counter_families("shop-worker", [
            ("shop_events_relayed", "Outbox rows published to Kafka", self._relay.relayed),
            ("shop_sagas_recovered", "Pending orders finished or undone by the sweeper", s.recovered),
            ("shop_reservations_released_expired", "Expired reservations returned to stock",
             s.reservations.get("released", 0)),
            ("shop_reservations_sold", "Reservations of paid orders marked sold", self._marker.marked),
            ("shop_orders_paid_async", "Asynchronous checkouts paid by the worker",
             self._payer.paid if self._payer else 0),
        ])
        backlog = GaugeMetricFamily("shop_outbox_backlog", "Outbox rows waiting", labels=["service", "shard"])
        held = GaugeMetricFamily("shop_reservations_held", "Reservations held", labels=["service", "shard"])
        for shard, (rows, reservations) in sorted(s.gauges.items()):
            backlog.add_metric(["shop-worker", str(shard)], rows)
            held.add_metric(["shop-worker", str(shard)], reservations)
        yield backlog
        yield held


def create_app(settings: ShopSettings | None = None) -> FastAPI:
    settings = settings or load_settings(ShopSettings)
    w = wire(settings)
    outbox = SqlOutbox(w.router)
    producer = KafkaProducer(settings.kafka_bootstrap_servers, client_id=settings.instance_id,
                             topics=event_topics(settings), linger_ms=5)
    relay = Relay(settings, w, outbox, producer)
    sweeper = Sweeper(settings, w, w.saga, outbox)

    def consumer(group: str, topic: str) -> KafkaConsumer:
        return KafkaConsumer(settings.kafka_bootstrap_servers, group_id=group, client_id=settings.instance_id,
                             topics=[TopicSpec(topic, partitions=settings.event_partitions)])

    marker = SoldMarker(consumer(settings.inventory_group, settings.paid_topic), w)
    payer = (Payer(consumer(settings.payer_group, settings.placed_topic), w.saga, settings.payer_concurrency)
             if settings.checkout_mode == "async" else None)
    loops = [relay, sweeper, marker] + ([payer] if payer else [])
    app = create_service_app(service="shop-worker", settings=settings,
                             resources=[w.redis, w.router, w.payments, producer, *loops],
                             description="Shop worker: outbox relay, inventory and payment consumers, saga sweeper.")
    app.state.metrics.registry.register(WorkerCollector(relay, sweeper, marker, payer))
    app.state.metrics.registry.register(ClientGauges("shop-worker", shards=w.router,
                                                     consumers=[marker.consumer] + ([payer.consumer] if payer else [])))
    app.state.loops = loops
    return app
