"""``shop-fulfillment``: the consumer of order events (placed, paid, failed), one handling per event.

The relay publishes at least once, so the same event can arrive twice (a relay crash between
Kafka's ack and the outbox delete, a consumer rebalance before a commit). Handling is recording
the event id in ``fulfilled_events`` (on the first server) in one statement that does nothing for
an id seen before; offsets are committed after the batch (at-least-once in, once in effect).
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client.registry import Collector

from services.app import create_service_app
from services.clients.kafka import KafkaConsumer
from services.clients.postgres import PgPool
from services.logging import get_logger
from services.metrics import ClientGauges, counter_families
from services.settings import load_settings
from shop.config import ShopSettings
from shop.consumers import EventConsumer, event_topics
from shop.ports import ShardUnavailable

log = get_logger(__name__)
SERVICE = "shop-fulfillment"
_RECORD = ("INSERT INTO fulfilled_events (event_id, topic, order_id) "
           "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT (event_id) DO NOTHING "
           "RETURNING event_id")


class FulfilledEvents:
    def __init__(self, db: PgPool) -> None:
        self._db = db

    async def record(self, events: list[tuple[str, str, int]]) -> int:
        """Record each (event id, topic, order id) once, a batch in one statement; returns how many were new."""
        unique = {e[0]: e for e in events}  # a batch may carry an event twice (a redelivery)
        ids, topics, orders = zip(*unique.values())
        return len(await self._db.fetch(_RECORD, list(ids), list(topics), list(orders)))


class Fulfillment(EventConsumer):
    def __init__(self, consumer: KafkaConsumer, store: FulfilledEvents) -> None:
        super().__init__("fulfillment", consumer)
        self._store = store
        self.new = 0
        self.duplicates = 0

    async def handle_events(self, events: list[dict]) -> None:
        found = []
        for body in events:
            try:
                found.append((str(body["event_id"]), str(body["event"]), int(body["order_id"])))
            except (KeyError, TypeError, ValueError):
                self.malformed += 1  # not an order event: counted and skipped, never retried forever
                log.warning("event_malformed", keys=sorted(body)[:10] if isinstance(body, dict) else None)
        if found:
            new = await self._store.record(found)
            self.new += new
            self.duplicates += len(found) - new


class FulfillmentCollector(Collector):
    def __init__(self, loop: Fulfillment) -> None:
        self._loop = loop

    def collect(self) -> Iterator:
        yield from counter_families(SERVICE, [
            ("shop_events_handled", "Order events handled (first delivery)", self._loop.new),
            ("shop_events_duplicate", "Order events delivered again and dropped", self._loop.duplicates),
            ("shop_events_malformed", "Records that were not order events", self._loop.malformed),
        ])


def create_fulfillment(settings: ShopSettings | None = None) -> FastAPI:
    settings = settings or load_settings(ShopSettings)
    db = PgPool(str(settings.database_urls[0]), timeout_s=settings.database_timeout_s, max_size=2,
                unavailable=ShardUnavailable)
    consumer = KafkaConsumer(settings.kafka_bootstrap_servers, group_id=settings.fulfillment_group,
                             topics=event_topics(settings), client_id=settings.instance_id, critical=True)
    loop = Fulfillment(consumer, FulfilledEvents(db))
    app = create_service_app(service=SERVICE, settings=settings, resources=[db, loop],
                             description="Shop fulfillment: handles each order event once.")
    app.state.metrics.registry.register(FulfillmentCollector(loop))
    app.state.metrics.registry.register(ClientGauges(SERVICE, shards=db, consumers=[consumer]))
    app.state.loops = [loop]
    return app
