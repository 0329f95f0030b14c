"""Composition roots: ``create_app(settings)`` for the shop API (uvicorn --factory calls it with none),
and :func:`wire` for the workers, which share the same adapters and saga."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from services.admission import Admission
from services.app import create_service_app
from services.auth import LoginGuard, TokenSigner, sessions_router
from services.clients.redis import RedisClient
from services.metrics import ClientGauges, ReadRoutingCounters
from services.settings import load_settings
from shop.adapters.payments import HttpPayments
from shop.adapters.redis import RedisCarts, RedisProductCache, RedisStockGate
from shop.adapters.shards import ShardRouter
from shop.adapters.sql_catalog import SqlCatalog, SqlInventory
from shop.adapters.sql_orders import SqlOrders
from shop.api import build_router
from shop.config import ShopSettings
from shop.metrics import ShopCollector
from shop.saga import CheckoutSaga
from shop.service import ShopService

SERVICE = "shop"


@dataclass
class Wiring:
    settings: ShopSettings
    router: ShardRouter
    redis: RedisClient
    payments: HttpPayments
    catalog: SqlCatalog
    inventory: SqlInventory
    orders: SqlOrders
    service: ShopService
    saga: CheckoutSaga
    gate: RedisStockGate | None


def wire(settings: ShopSettings) -> Wiring:
    """Every adapter, the service and the saga; nothing connects until the resources start."""
    router = ShardRouter(settings)
    redis = RedisClient(str(settings.redis_url), timeout_s=settings.redis_timeout_s)
    payments = HttpPayments(settings)
    catalog = SqlCatalog(router)
    inventory = SqlInventory(router, settings.inventory_strategy)
    orders = SqlOrders(router)
    gate = RedisStockGate(lambda: redis.redis) if settings.inventory_strategy == "redis-gate" else None
    service = ShopService(settings, catalog, RedisCarts(lambda: redis.redis, settings.cart_ttl_s),
                          RedisProductCache(lambda: redis.redis, settings.product_cache_ttl_s), orders)
    saga = CheckoutSaga(settings, orders, inventory, payments, gate)
    return Wiring(settings, router, redis, payments, catalog, inventory, orders, service, saga, gate)


def create_app(settings: ShopSettings | None = None) -> FastAPI:
    settings = settings or load_settings(ShopSettings)
    w = wire(settings)
    signer = TokenSigner(settings.token_secret.get_secret_value(), ttl_s=settings.token_ttl_s)
    admission = Admission(settings.checkout_max_in_flight, settings.checkout_queue_s, what="checkouts")
    app = create_service_app(
        service=SERVICE,
        settings=settings,
        resources=[w.redis, w.router, w.payments],
        routers=[sessions_router(signer, LoginGuard.from_settings(settings)), build_router(w.service, w.saga, signer, admission)],
        description="Shop: catalog, cart, checkout (a saga over sharded PostgreSQL and a payment provider) "
                    "and orders. Ids are decimal strings.",
    )
    app.state.metrics.registry.register(ClientGauges(SERVICE, shards=w.router))
    app.state.metrics.registry.register(ReadRoutingCounters(SERVICE, w.router.readers))
    app.state.metrics.registry.register(ShopCollector(w, admission))
    app.state.wiring = w
    return app
