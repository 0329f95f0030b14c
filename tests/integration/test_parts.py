"""Each real part works through the shared kit: Redis, every PostgreSQL shard, Kafka, Caddy."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx

from services.clients.kafka import KafkaConsumer, KafkaProducer, TopicSpec
from services.clients.postgres import PgPool
from services.clients.redis import RedisClient


def _component_urls(lab, kind: str) -> list[str]:
    return [c["url"] for c in lab.state["components"].values() if c["kind"] == kind]


async def test_redis_set_get(lab):
    client = RedisClient(_component_urls(lab, "redis")[0], timeout_s=1.0)
    await client.start()
    try:
        key = f"it:{uuid.uuid4().hex}"
        await client.redis.set(key, b"value", ex=30)
        assert await client.redis.get(key) == b"value"
        for check in client.health_checks().values():
            await check()
    finally:
        await client.stop()


async def test_query_on_every_postgres_shard(lab):
    urls = _component_urls(lab, "postgres")
    assert len(urls) == 2
    pools = [PgPool(url, timeout_s=2.0, name=f"postgres-{i}") for i, url in enumerate(urls)]
    for pool in pools:
        await pool.start()
    try:
        ports = {await pool.fetchval("SELECT current_setting('port')") for pool in pools}
        assert len(ports) == 2, "each pool must reach its own server"
        for pool in pools:
            assert pool.recently_ok(), "a statement that answered counts as a passing health check"
            for check in pool.health_checks().values():
                await check()
        # A pool that never reached its server is probed for real, and the probe answers.
        cold = PgPool(urls[1], timeout_s=2.0)
        await cold.start()
        try:
            assert not cold.recently_ok()
            for check in cold.health_checks().values():
                await check()
            assert cold.recently_ok()
        finally:
            await cold.stop()
    finally:
        for pool in pools:
            await pool.stop()


async def test_kafka_produce_and_consumer_group_consume(lab):
    bootstrap = _component_urls(lab, "kafka")
    topic = TopicSpec(f"it-{uuid.uuid4().hex[:8]}", partitions=2)
    producer = KafkaProducer(bootstrap, client_id="it-producer", topics=[topic])
    await producer.start()
    sent = [f"m{i}".encode() for i in range(20)]
    try:
        for i, value in enumerate(sent):
            await producer.send(topic.name, value, key=str(i).encode())
    finally:
        await producer.stop()
    consumer = KafkaConsumer(bootstrap, group_id=f"it-{uuid.uuid4().hex[:6]}", topics=[topic], client_id="it-consumer")
    await consumer.start()
    got: list[bytes] = []
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while len(got) < len(sent) and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                got += [m.value for m in messages]
        await consumer.consumer.commit()
        assert sorted(got) == sorted(sent)
        assert consumer.consumer.assignment(), "the group assigned partitions to its member"
    finally:
        await consumer.stop()


def test_caddy_spreads_requests_over_instances(lab):
    seen = Counter()
    with httpx.Client(base_url=lab.url(), timeout=5) as client:
        for _ in range(40):
            resp = client.get("/healthz")
            assert resp.status_code == 200
            seen[resp.json()["instance"]] += 1
    assert set(seen) == {"shortener-1", "shortener-2"}, seen


def test_caddy_routes_around_a_killed_instance(lab):
    lab.run("chaos", "kill", "shortener-2")
    try:
        statuses = Counter()
        instances = Counter()
        with httpx.Client(base_url=lab.url(), timeout=10) as client:
            for _ in range(60):
                resp = client.get("/healthz")
                statuses[resp.status_code] += 1
                if resp.status_code == 200:
                    instances[resp.json()["instance"]] += 1
        assert statuses == {200: 60}, statuses
        assert set(instances) == {"shortener-1"}
    finally:
        lab.run("chaos", "restart", "shortener-2")
    assert lab.component("shortener-2")["state"] == "ready"
