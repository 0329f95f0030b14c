"""The click aggregator: a consumer-group member that folds ``link-clicked`` batches into PostgreSQL.

It runs as its own process (``sdlab`` starts ``shortener-analytics-1``), built with the same app
factory so it has ``/healthz``, ``/readyz`` and ``/metrics`` like every instance.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client.registry import Collector

from services.app import create_service_app
from services.clients.kafka import KafkaConsumer
from services.clients.postgres import PgPool
from services.metrics import ClientGauges, counter_families
from services.settings import load_settings
from shortener.adapters.kafka import ClickAggregator
from shortener.adapters.sql import SqlLinkRepository
from shortener.config import ShortenerSettings
from shortener.ports import StoreUnavailable
from shortener.main import clicks_topic

SERVICE = "shortener-analytics"
GROUP_ID = "link-clicked-aggregator"


class AggregatorCollector(Collector):
    def __init__(self, aggregator: ClickAggregator) -> None:
        self.aggregator = aggregator

    def collect(self) -> Iterator:
        yield from counter_families(SERVICE, [
            ("click_batches_applied", "Click batches added to PostgreSQL", self.aggregator.applied),
            ("click_batches_duplicate", "Redelivered click batches skipped by batch id", self.aggregator.duplicates),
            ("click_batches_malformed", "Click messages that could not be parsed", self.aggregator.malformed),
        ])


def create_app(settings: ShortenerSettings | None = None) -> FastAPI:
    settings = settings or load_settings(ShortenerSettings)
    db = PgPool(str(settings.database_urls[0]), timeout_s=settings.database_timeout_s, max_size=4,
                unavailable=StoreUnavailable)
    consumer = KafkaConsumer(settings.kafka_bootstrap_servers, group_id=GROUP_ID, topics=[clicks_topic(settings)],
                             client_id=settings.instance_id, critical=True)
    aggregator = ClickAggregator(consumer, SqlLinkRepository(db))
    app = create_service_app(service=SERVICE, settings=settings, resources=[db, aggregator],
                             description="Aggregates link-clicked events into click counts.")
    app.state.metrics.registry.register(AggregatorCollector(aggregator))
    app.state.metrics.registry.register(ClientGauges(SERVICE, shards=db, consumers=[consumer]))
    app.state.aggregator = aggregator
    return app
