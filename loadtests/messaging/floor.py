"""The floor under a message's end-to-end latency, measured on the same parts in the same sitting.

A stored-and-fanned-out message cannot be faster than one PostgreSQL insert-commit plus one
Kafka hop (produce with ``acks="all"``, then a consumer's fetch with the gateways' own
``fetch_max_wait_ms``). Both run bare (asyncpg, aiokafka; no service code) open loop at the
bench's rate, each timed from its scheduled start; the floor is the sum of their p99s.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.lab.analysis import percentile


async def _paced(rate: float, seconds: float, fire) -> None:
    """Call ``fire(scheduled)`` at ``rate``/s for ``seconds``, on schedule (open loop)."""
    start = time.time()
    tasks = []
    for k in range(int(rate * seconds)):
        due = start + k / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(fire(due)))
    await asyncio.gather(*tasks)


async def postgres_commit_ms(dsn: str, rate: float, seconds: float, pool_size: int = 10) -> list[float]:
    """Latencies (ms) of a bare one-row insert-commit, from each insert's scheduled start."""
    table = f"floor_{uuid.uuid4().hex[:8]}"
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    latencies: list[float] = []
    try:
        await pool.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, body text NOT NULL)")

        async def insert(due: float) -> None:
            await pool.execute(f"INSERT INTO {table} (body) VALUES ($1)", "x" * 100)
            latencies.append((time.time() - due) * 1000)

        await _paced(rate, seconds, insert)
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {table}")
        await pool.close()
    return latencies


async def kafka_hop_ms(bootstrap: str, rate: float, seconds: float, fetch_max_wait_ms: int) -> list[float]:
    """Latencies (ms) from a record's scheduled produce to its arrival at a consumer."""
    topic = f"floor-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=0)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                fetch_max_wait_ms=fetch_max_wait_ms, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    expected = int(rate * seconds)
    latencies: list[float] = []

    async def consume() -> None:
        while len(latencies) < expected:
            batches = await consumer.getmany(timeout_ms=1000)
            now = time.time()
            for records in batches.values():
                latencies.extend((now - float(r.value)) * 1000 for r in records)

    try:
        reader = asyncio.ensure_future(consume())
        await _paced(rate, seconds, lambda due: producer.send_and_wait(topic, repr(due).encode()))
        await asyncio.wait_for(reader, 30)
    finally:
        await producer.stop()
        await consumer.stop()
    return latencies


def floor(dsn: str, bootstrap: str, rate: float, seconds: float, fetch_max_wait_ms: int) -> dict:
    async def both() -> tuple[list[float], list[float]]:
        return (await postgres_commit_ms(dsn, rate, seconds),
                await kafka_hop_ms(bootstrap, rate, seconds, fetch_max_wait_ms))

    pg, kafka = asyncio.run(both())
    pg.sort()
    kafka.sort()
    pg99, kafka99 = percentile(pg, 99), percentile(kafka, 99)
    return {"postgres_commit_p50_ms": round(percentile(pg, 50), 3), "postgres_commit_p99_ms": round(pg99, 3),
            "kafka_hop_p50_ms": round(percentile(kafka, 50), 3), "kafka_hop_p99_ms": round(kafka99, 3),
            "floor_p99_ms": round(pg99 + kafka99, 3), "rate": rate, "seconds": seconds}
