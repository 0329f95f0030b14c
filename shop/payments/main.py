"""Composition root of the payment stand-in: ``create_app(settings)`` (uvicorn --factory calls it
with none). Tests pass a store (and a seeded random source) and get the same app without PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client.registry import Collector

from services.app import create_service_app
from services.clients.postgres import PgPool
from services.metrics import ClientGauges, counter_families
from services.settings import load_settings
from shop.config import ShopSettings
from shop.payments.api import ChargeStore, Counters, build_router
from shop.payments.store import SqlCharges, StoreUnavailable

SERVICE = "shop-payments"


class PaymentsCollector(Collector):
    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    def collect(self) -> Iterator:
        c = self._counters
        yield from counter_families(SERVICE, [
            ("payments_charges_captured", "Charges captured (new ones, not replays)", c.captured),
            ("payments_charges_declined", "Charges declined (new ones, not replays)", c.declined),
            ("payments_voids", "Void requests answered with a voided charge", c.voided),
            ("payments_failures_injected", "Charge requests failed on purpose without charging", c.failures_injected),
            ("payments_responses_lost", "Charges captured and then answered 503 on purpose", c.responses_lost),
        ])


def create_app(settings: ShopSettings | None = None, *, store: ChargeStore | None = None,
               rng: random.Random | None = None) -> FastAPI:
    settings = settings or load_settings(ShopSettings)
    db = None
    if store is None:
        # The store is the service: without PostgreSQL it cannot answer anything, hence critical.
        db = PgPool(str(settings.database_urls[0]), timeout_s=settings.database_timeout_s,
                    max_size=settings.db_pool_size + settings.db_max_overflow, critical=True,
                    unavailable=StoreUnavailable)
        store = SqlCharges(db)
    counters = Counters()
    app = create_service_app(
        service=SERVICE,
        settings=settings,
        resources=[db] if db else [],
        routers=[build_router(store, settings, rng or random.Random(), counters)],
        description="The lab's payment provider stand-in (Stripe-like charges, idempotent per key): "
                    "slow, declining, failing or losing responses as configured (SHOP_PAYMENTS_*).",
    )
    app.state.metrics.registry.register(PaymentsCollector(counters))
    if db is not None:
        app.state.metrics.registry.register(ClientGauges(SERVICE, shards=db))
    app.state.counters = counters
    return app
