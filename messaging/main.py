"""Composition roots: ``create_app(settings)`` for the REST API (uvicorn --factory calls it with
none), and :func:`wire` for the gateway and the workers, which share the same service."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from messaging.adapters.kafka import KafkaDeliveries, KafkaSentLog
from messaging.adapters.redis import RedisInboxBell, RedisRegistry
from messaging.adapters.sql import SqlConversationStore, SqlMessageStore
from messaging.api import build_router
from messaging.config import MessagingSettings
from messaging.ports import StoreUnavailable
from messaging.service import MessagingService, Publisher, Router
from services.app import create_service_app
from services.auth import LoginGuard, TokenSigner, sessions_router
from services.clients.kafka import KafkaProducer, TopicSpec
from services.clients.postgres import PgPool
from services.clients.read_routing import ReadRouter, read_router
from services.clients.redis import RedisClient
from services.ratelimit import LocalTokenBucket
from services.metrics import ClientGauges, ReadRoutingCounters
from services.settings import load_settings

SERVICE = "messaging"


def sent_topic(settings: MessagingSettings) -> TopicSpec:
    return TopicSpec(settings.sent_topic, partitions=settings.sent_partitions)


@dataclass
class Wiring:
    service: MessagingService
    redis: RedisClient
    db: PgPool
    reads: ReadRouter
    producer: KafkaProducer
    deliveries: KafkaDeliveries
    signer: TokenSigner


def wire(settings: MessagingSettings, *, client_id: str | None = None) -> Wiring:
    """Every adapter and the service on top; nothing connects until the resources start."""
    redis = RedisClient(str(settings.redis_url), timeout_s=settings.redis_timeout_s)
    db = PgPool(str(settings.database_urls[0]), timeout_s=settings.database_timeout_s,
                max_size=settings.db_pool_size, unavailable=StoreUnavailable)
    producer = KafkaProducer(settings.kafka_bootstrap_servers, client_id=client_id or settings.instance_id,
                             topics=[sent_topic(settings)], linger_ms=0)
    deliveries = KafkaDeliveries(producer, settings.delivery_topic,
                                 RedisInboxBell(lambda: redis.redis, settings.bell_quiet_s))
    registry = RedisRegistry(lambda: redis.redis)
    reads = read_router(db, settings, max_size=settings.db_pool_size)
    messages = SqlMessageStore(db, reads)
    service = MessagingService(
        settings,
        conversations=SqlConversationStore(db),
        messages=messages,
        registry=registry,
        router=Router(registry, deliveries),
        # Per user on this gateway, in its memory: no round trip (a user on two gateways gets twice).
        limiter=LocalTokenBucket(per_second=settings.send_rate_per_s, burst=settings.send_burst),
        sent_log=KafkaSentLog(producer, sent_topic(settings)) if settings.write_path == "log-first" else None,
        publisher=Publisher(deliveries, messages),
    )
    signer = TokenSigner(settings.token_secret.get_secret_value(), ttl_s=settings.token_ttl_s)
    return Wiring(service, redis, db, reads, producer, deliveries, signer)


def create_app(settings: MessagingSettings | None = None) -> FastAPI:
    settings = settings or load_settings(MessagingSettings)
    w = wire(settings)
    # The API serves logins, conversations and history: PostgreSQL is critical, Redis (presence) is not.
    w.db.critical = True
    app = create_service_app(
        service=SERVICE,
        settings=settings,
        resources=[w.redis, w.db, w.reads],
        routers=[sessions_router(w.signer, LoginGuard.from_settings(settings)), build_router(w.service, w.signer)],
        description="Messaging: REST API of the chat (login, conversations, history, presence). "
                    "Messages flow over the WebSocket gateways at /ws.",
    )
    app.state.metrics.registry.register(ClientGauges(SERVICE, shards=w.db))
    app.state.metrics.registry.register(ReadRoutingCounters(SERVICE, lambda: [w.reads]))
    app.state.service = w.service
    return app
