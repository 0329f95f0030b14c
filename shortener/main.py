"""Composition roots: :func:`wire` builds every adapter and the service; ``create_app(settings)``
serves them (uvicorn --factory calls it with none)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from starlette.middleware import Middleware

from services.app import create_service_app
from services.clients.kafka import KafkaProducer, TopicSpec
from services.clients.postgres import PgPool
from services.clients.read_routing import ReadRouter, read_router
from services.clients.redis import RedisClient
from services.metrics import ClientGauges, ReadRoutingCounters
from services.resources import Resource
from services.settings import load_settings
from shortener.adapters.kafka import ClickPublisher
from shortener.adapters.redis import (
    InvalidationListener,
    RedisCounterSource,
    RedisInvalidator,
    RedisLinkCache,
    RedisRateLimiter,
)
from shortener.adapters.sql import SqlLinkRepository
from shortener.api import RedirectFastPath, build_router
from shortener.config import ShortenerSettings
from shortener.metrics import ShortenerCollector
from shortener.ports import StoreUnavailable
from shortener.service import ShortenerService

SERVICE = "shortener"


def clicks_topic(settings: ShortenerSettings) -> TopicSpec:
    return TopicSpec(settings.clicks_topic, partitions=3)


@dataclass
class Wiring:
    settings: ShortenerSettings
    redis: RedisClient
    db: PgPool
    reads: ReadRouter
    publisher: ClickPublisher
    service: ShortenerService
    listener: InvalidationListener

    @property
    def resources(self) -> list[Resource]:
        """What the API starts, in order: the clients, then what runs on them."""
        return [self.redis, self.db, self.reads, self.listener] + ([self.publisher] if self.settings.analytics_enabled else [])


def wire(settings: ShortenerSettings) -> Wiring:
    """Every adapter and the service on top; nothing connects until the resources start."""
    # No dependency is critical for readiness: with any one of them down, the shortener still
    # serves redirects (from cache, or from PostgreSQL), so no instance should leave the pool.
    redis = RedisClient(str(settings.redis_url), timeout_s=settings.redis_timeout_s)
    db = PgPool(str(settings.database_urls[0]), timeout_s=settings.database_timeout_s,
                max_size=settings.db_pool_size, unavailable=StoreUnavailable)
    reads = read_router(db, settings, max_size=settings.db_pool_size)
    repo = SqlLinkRepository(db, reads)
    producer = KafkaProducer(settings.kafka_bootstrap_servers, client_id=settings.instance_id,
                             topics=[clicks_topic(settings)])
    publisher = ClickPublisher(producer, topic=settings.clicks_topic, instance=settings.instance_id,
                               flush_interval_s=settings.analytics_flush_interval_s,
                               max_pending_codes=settings.analytics_max_pending_codes)
    service = ShortenerService(
        settings,
        repo=repo,
        cache=RedisLinkCache(lambda: redis.redis),
        limiter=RedisRateLimiter(lambda: redis.redis, settings.rate_limit_per_minute, settings.rate_limit_burst),
        clicks=publisher,
        invalidator=RedisInvalidator(lambda: redis.redis),
        counter=RedisCounterSource(lambda: redis.redis, repo) if settings.id_scheme == "counter" else None,
    )
    listener = InvalidationListener(lambda: redis.redis, service.local.discard, service.local.clear)
    return Wiring(settings, redis, db, reads, publisher, service, listener)


def create_app(settings: ShortenerSettings | None = None) -> FastAPI:
    settings = settings or load_settings(ShortenerSettings)
    w = wire(settings)
    app = create_service_app(
        service=SERVICE,
        settings=settings,
        resources=w.resources,
        routers=[build_router(w.service)],
        middleware=[Middleware(RedirectFastPath, service=w.service)],
        description="URL shortener: hash IDs, PostgreSQL, Redis cache-aside, click analytics over Kafka.",
    )
    app.state.metrics.registry.register(ShortenerCollector(SERVICE, w.service, w.publisher))
    app.state.metrics.registry.register(ClientGauges(SERVICE, shards=w.db))
    app.state.metrics.registry.register(ReadRoutingCounters(SERVICE, lambda: [w.reads]))
    app.state.service = w.service
    app.state.wiring = w
    return app
