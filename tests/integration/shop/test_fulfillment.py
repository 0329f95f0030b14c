"""Fulfillment (on the kit's ConsumerLoop) against the lab's Kafka and first PostgreSQL server: each
order event recorded once, a redelivery and a record that is not an event passed over."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson

from services.clients.kafka import KafkaConsumer, KafkaProducer, TopicSpec
from services.clients.postgres import PgPool, dsn
from shop.fulfillment import FulfilledEvents, Fulfillment
from shop.ports import ShardUnavailable
from tests.integration.shop.conftest import lab_url
from tests.integration.shop.helpers import tag


async def test_order_events_flow_through_kafka_into_fulfilled_events_once(lab):
    bootstrap = [lab_url(lab, "kafka")]
    run = tag()
    topic = TopicSpec(f"it-orders-{run}", partitions=2)
    events = [{"event_id": f"it-{run}-{i}", "event": "order-paid", "order_id": i} for i in range(1, 6)]
    db = PgPool(lab_url(lab, "postgres-0"), timeout_s=5.0, max_size=2, unavailable=ShardUnavailable)
    loop = Fulfillment(KafkaConsumer(bootstrap, group_id=f"it-{run}", topics=[topic], client_id="it-fulfillment"),
                       FulfilledEvents(db))
    producer = KafkaProducer(bootstrap, client_id="it-orders", topics=[topic])
    await db.start()
    await producer.start()
    await loop.start()
    try:
        for event in events + events[:2]:  # the first two again: what a relay that crashed publishes
            await producer.send(topic.name, orjson.dumps(event), key=str(event["order_id"]).encode())
        await producer.send(topic.name, b"not json", key=b"1")
        for _ in range(300):
            if loop.new + loop.duplicates >= 7 and loop.malformed >= 1:
                break
            await asyncio.sleep(0.1)
    finally:
        await loop.stop()
        await producer.stop()
        await db.stop()
    conn = await asyncpg.connect(dsn(lab_url(lab, "postgres-0")))
    try:
        rows = await conn.fetch("SELECT event_id FROM fulfilled_events WHERE event_id LIKE $1", f"it-{run}-%")
    finally:
        await conn.close()
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in events)
    assert (loop.new, loop.duplicates, loop.malformed) == (5, 2, 1) and loop.batches >= 1
