"""The shortener's adapters against the real parts: PostgreSQL, Redis, Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from services.clients.kafka import KafkaConsumer, KafkaProducer, TopicSpec
from services.clients.postgres import PgPool
from services.clients.redis import RedisClient
from shortener import domain
from shortener.adapters.kafka import ClickAggregator, ClickPublisher
from shortener.adapters.redis import (
    COUNTER_KEY,
    InvalidationListener,
    RedisCounterSource,
    RedisInvalidator,
    RedisLinkCache,
    RedisRateLimiter,
)
from shortener.adapters.sql import SqlLinkRepository
from shortener.domain import Link, LinkClicked
from shortener.ports import StoreUnavailable


def _url(lab, kind: str) -> str:
    return next(c["url"] for c in lab.state["components"].values() if c["kind"] == kind)


@pytest.fixture
async def repo(lab):
    # Twenty click batches run at once in one test: a pool that lets them all in.
    pool = PgPool(_url(lab, "postgres"), timeout_s=5.0, max_size=20, unavailable=StoreUnavailable)
    await pool.start()
    yield SqlLinkRepository(pool)
    await pool.stop()


@pytest.fixture
async def redis(lab):
    client = RedisClient(_url(lab, "redis"), timeout_s=1.0)
    await client.start()
    yield client.redis
    await client.stop()


def _link(code: str | None = None, url: str | None = None, **kw) -> Link:
    return Link(code or uuid.uuid4().hex[:10], url or f"https://example.com/it/{uuid.uuid4().hex}",
                datetime.now(timezone.utc), **kw)


async def _insert(repo, link: Link):
    return await repo.insert(link, domain.url_digest(link.url), domain.token_digest("t"))


async def test_insert_get_and_delete(repo):
    link = _link()
    assert (await _insert(repo, link)).inserted
    got = await repo.get(link.code)
    assert got.url == link.url and got.code == link.code and not got.custom_alias
    assert domain.token_matches("t", await repo.token_digest(link.code))
    assert await repo.delete(link.code)
    assert await repo.get(link.code) is None
    assert not await repo.delete(link.code)


async def test_insert_reports_same_url_and_same_code(repo):
    first = _link()
    await _insert(repo, first)
    same_url = await _insert(repo, _link(url=first.url))
    assert not same_url.inserted and same_url.existing_by_url.code == first.code
    same_code = await _insert(repo, _link(code=first.code))
    assert not same_code.inserted and same_code.existing_by_url is None
    assert same_code.existing_by_code.url == first.url
    alias_same_url = await _insert(repo, _link(url=first.url, custom_alias=True))
    assert alias_same_url.inserted, "a custom alias may point at a URL that already has a generated link"


async def test_expired_generated_link_can_be_replaced(repo):
    old = _link(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    await _insert(repo, old)
    assert await repo.delete_expired_url(domain.url_digest(old.url)) == 1
    assert (await _insert(repo, _link(url=old.url))).inserted


async def test_click_batches_apply_once(repo):
    link = _link()
    await _insert(repo, link)
    batch = LinkClicked(uuid.uuid4().hex, "it", {link.code: 3, "unknown-code": 5})
    assert await repo.apply_clicks(batch)
    assert not await repo.apply_clicks(batch), "a redelivered batch adds nothing"
    assert (await repo.get_with_clicks(link.code)).clicks == 3


async def test_concurrent_batches_on_the_same_links_do_not_deadlock(repo):
    links = [_link() for _ in range(5)]
    for link in links:
        await _insert(repo, link)
    batches = [LinkClicked(uuid.uuid4().hex, f"i{i}", {l.code: 1 for l in (links if i % 2 else links[::-1])})
               for i in range(20)]
    assert all(await asyncio.wait_for(asyncio.gather(*(repo.apply_clicks(b) for b in batches)), 30))
    assert {(await repo.get_with_clicks(l.code)).clicks for l in links} == {20}


async def test_cache_round_trip_negative_and_delete(redis):
    cache = RedisLinkCache(lambda: redis)
    link = _link(expires_at=datetime.now(timezone.utc) + timedelta(seconds=30))
    assert await cache.get(link.code) is None
    await cache.put(link, ttl_s=3600)
    entry = await cache.get(link.code)
    assert entry.found and entry.link.url == link.url and entry.link.expires_at == link.expires_at
    assert await redis.ttl(f"link:{link.code}") <= 90, "an expiring link is cached only until shortly after expiry"
    await cache.put_missing("nope-" + link.code, ttl_s=5)
    negative = await cache.get("nope-" + link.code)
    assert negative.found and negative.link is None
    await cache.delete(link.code)
    assert await cache.get(link.code) is None


async def test_rate_limiter_bucket(redis):
    limiter = RedisRateLimiter(lambda: redis, per_minute=60, burst=5)
    client = f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:4]}"
    waits = [(await limiter.acquire(client)).wait_s for _ in range(7)]
    assert waits[:5] == [0.0] * 5
    assert 0 < waits[5] <= 1.0 and waits[6] > 0
    assert (await limiter.acquire("another-" + client)).wait_s == 0.0


async def test_rate_limiter_reports_a_code_cached_as_missing_in_the_same_round_trip(redis):
    limiter = RedisRateLimiter(lambda: redis, per_minute=60, burst=5)
    cache = RedisLinkCache(lambda: redis)
    code = "gone-" + uuid.uuid4().hex[:8]
    assert (await limiter.acquire("c-" + code, code)).cached_missing is False
    await cache.put_missing(code, ttl_s=5)
    assert (await limiter.acquire("c-" + code, code)).cached_missing is True
    assert (await limiter.acquire("c2-" + code)).cached_missing is False, "no code asked, none reported"


async def test_counter_leases_are_disjoint_and_survive_redis_losing_them(redis, repo):
    source = RedisCounterSource(lambda: redis, repo)
    a = await source.lease(100)
    b = await source.lease(100)
    assert a[1] <= b[0] and b[1] - b[0] == 100
    await redis.delete(COUNTER_KEY)  # what a Redis restart without persistence does
    c = await source.lease(100)
    assert c[0] >= b[1], "after Redis lost the counter, counting resumes from PostgreSQL's watermark"


async def test_invalidation_reaches_listeners(redis):
    seen: list[str] = []
    cleared: list[bool] = []
    listener = InvalidationListener(lambda: redis, seen.append, lambda: cleared.append(True))
    await listener.start()
    try:
        for _ in range(50):
            if cleared:
                break
            await asyncio.sleep(0.05)
        await RedisInvalidator(lambda: redis).invalidated("abc1234")
        for _ in range(50):
            if seen:
                break
            await asyncio.sleep(0.05)
    finally:
        await listener.stop()
    assert seen == ["abc1234"] and cleared == [True]


async def test_clicks_flow_through_kafka_into_postgres_exactly_once(lab, repo):
    bootstrap = [_url(lab, "kafka")]
    topic = TopicSpec(f"it-clicks-{uuid.uuid4().hex[:6]}", partitions=2)
    link = _link()
    await _insert(repo, link)
    publisher = ClickPublisher(KafkaProducer(bootstrap, client_id="it-pub", topics=[topic]), topic=topic.name,
                               instance="it", flush_interval_s=0.1, max_pending_codes=100)
    aggregator = ClickAggregator(KafkaConsumer(bootstrap, group_id=f"it-{uuid.uuid4().hex[:6]}", topics=[topic],
                                               client_id="it-agg"), repo)
    await publisher.start()
    await aggregator.start()
    try:
        for _ in range(25):
            publisher.record(link.code)
        await publisher.flush()
        # A redelivery: the same batch sent again must not count twice.
        replay = LinkClicked(uuid.uuid4().hex, "it", {link.code: 10})
        producer = KafkaProducer(bootstrap, client_id="it-replay", topics=[topic])
        await producer.start()
        for _ in range(2):
            await producer.send(topic.name, json.dumps(replay.to_json()).encode())
        await producer.stop()
        for _ in range(200):
            if (await repo.get_with_clicks(link.code)).clicks >= 35 and aggregator.duplicates >= 1:
                break
            await asyncio.sleep(0.1)
    finally:
        await aggregator.stop()
        await publisher.stop()
    assert (await repo.get_with_clicks(link.code)).clicks == 35
    assert aggregator.duplicates == 1 and publisher.published == 25 and publisher.dropped == 0
