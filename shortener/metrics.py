"""Shortener metrics, read from plain counters at scrape time (nothing on the hot path but ``+= 1``)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.metrics import counter_families
from shortener.service import ShortenerService

_BREAKER_STATE = {"closed": 0, "half-open": 1, "open": 2}


class ShortenerCollector(Collector):
    def __init__(self, service_name: str, service: ShortenerService, publisher=None) -> None:
        self.name = service_name
        self.service = service
        self.publisher = publisher

    def collect(self) -> Iterator:
        s = self.service.stats
        n = self.name
        hits = CounterMetricFamily("cache_hits", "Link lookups answered by a cache", labels=["service", "layer"])
        hits.add_metric([n, "local"], s.local_hits)
        hits.add_metric([n, "redis"], s.redis_hits)
        yield hits
        yield from counter_families(n, [
            ("cache_misses", "Link lookups that missed every cache", s.misses),
            ("db_reads", "Link reads from PostgreSQL on the redirect path", s.db_reads),
            ("single_flight_coalesced", "Lookups that waited for another's database read", self.service.coalesced),
            ("cache_errors", "Redis calls that failed (timeouts, refused)", s.cache_errors),
            ("code_collisions", "Generated codes that were taken", s.collisions),
            ("rate_limited", "Creates refused by the rate limiter", s.rate_limited),
            ("rate_limiter_errors", "Creates let through because Redis could not be asked", s.limiter_errors),
        ])
        if self.publisher is not None:
            yield from counter_families(n, [
                ("clicks_recorded", "Clicks counted on this instance", self.publisher.recorded),
                ("clicks_published", "Clicks acknowledged by Kafka", self.publisher.published),
                ("clicks_dropped", "Clicks dropped because the buffer was full", self.publisher.dropped),
            ])
        breaker = GaugeMetricFamily("circuit_state", "0 closed, 1 half-open, 2 open", labels=["service", "dependency"])
        breaker.add_metric([n, "redis"], _BREAKER_STATE[self.service.redis_breaker.state])
        breaker.add_metric([n, "postgres"], _BREAKER_STATE[self.service.db_breaker.state])
        yield breaker
        local = GaugeMetricFamily("local_cache_entries", "Entries in the in-process cache", labels=["service"])
        local.add_metric([n], len(self.service.local))
        yield local
