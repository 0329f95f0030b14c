"""``shop-fulfillment``: the consumer of order events (placed, paid, failed), one handling per event.

The relay publishes at least once, so the same event can arrive twice (a relay crash between
Kafka's ack and the outbox delete, a consumer rebalance before a commit). Handling is recording
the event id in ``fulfilled_events`` (on the first server) in one statement that does nothing for
an id seen before; offsets are committed after the batch (at-least-once in, once in effect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client.registry import Collector
from sqlalchemy import text

from services.app import create_service_app
from services.clients.kafka import KafkaConsumer
from services.clients.postgres import DeadlineSql, PostgresShards
from services.logging import get_logger
from services.metrics import ClientGauges, counter_families
from services.tasks import BackgroundLoop
from shop.config import ShopSettings
from shop.consumers import event_topics
from shop.domain import ShardUnavailable

log = get_logger(__name__)
SERVICE = "shop-fulfillment"
_RECORD = text("INSERT INTO fulfilled_events (event_id, topic, order_id) VALUES (:e, :t, :o) "
               "ON CONFLICT (event_id) DO NOTHING RETURNING event_id")


class FulfilledEvents(DeadlineSql):
    unavailable = ShardUnavailable

    async def record(self, events: list[tuple[str, str, int]]) -> int:
        """Record each (event id, topic, order id) once; returns how many were new."""
        async def q() -> int:
            new = 0
            async with self._engine.begin() as conn:
                for event_id, topic, order_id in events:
                    new += (await conn.execute(_RECORD, {"e": event_id, "t": topic, "o": order_id})).first() is not None
            return new

        return await self._run(q)


class Fulfillment(BackgroundLoop):
    transient = (ShardUnavailable, KafkaError)

    def __init__(self, consumer: KafkaConsumer, store: FulfilledEvents) -> None:
        super().__init__("fulfillment")
        self._consumer, self._store = consumer, store
        self.handled = 0
        self.duplicates = 0
        self.malformed = 0

    async def start(self) -> None:
        await self._consumer.start()
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await self._consumer.stop()

    async def step(self) -> None:
        records = await self._consumer.getmany(timeout_ms=1000, max_records=500)
        events = []
        for record in (r for rs in records.values() for r in rs):
            try:
                body = orjson.loads(record.value)
                events.append((str(body["event_id"]), record.topic, int(body["order_id"])))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.malformed += 1  # a poison record is counted and skipped, never retried forever
                log.warning("event_malformed", topic=record.topic, offset=record.offset)
        if events:
            new = await self._store.record(events)
            self.handled += new
            self.duplicates += len(events) - new
        if records:
            await self._consumer.consumer.commit()
        else:
            await asyncio.sleep(0)

    def health_checks(self) -> dict:
        return self._consumer.health_checks()


class FulfillmentCollector(Collector):
    def __init__(self, loop: Fulfillment) -> None:
        self._loop = loop

    def collect(self) -> Iterator:
        yield from counter_families(SERVICE, [
            ("shop_events_handled", "Order events handled (first delivery)", self._loop.handled),
            ("shop_events_duplicate", "Order events delivered again and dropped", self._loop.duplicates),
            ("shop_events_malformed", "Records that were not order events", self._loop.malformed),
        ])


def create_fulfillment(settings: ShopSettings | None = None) -> FastAPI:
    settings = settings or ShopSettings()
    db = PostgresShards([str(settings.database_urls[0])], timeout_s=settings.database_timeout_s, pool_size=2)
    consumer = KafkaConsumer(settings.kafka_bootstrap_servers, group_id=settings.fulfillment_group,
                             topics=event_topics(settings), client_id=settings.instance_id, critical=True)
    loop = Fulfillment(consumer, FulfilledEvents(lambda: db.engine(0), settings.database_timeout_s))
    app = create_service_app(service=SERVICE, settings=settings, resources=[db, loop],
                             description="Shop fulfillment: handles each order event once.")
    app.state.metrics.registry.register(FulfillmentCollector(loop))
    app.state.metrics.registry.register(ClientGauges(SERVICE, shards=db, consumers=[consumer]))
    app.state.loops = [loop]
    return app
