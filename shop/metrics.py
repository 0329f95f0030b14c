"""Shop metrics: plain counters on the hot path, turned into Prometheus families at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.metrics import counter_families


class ShopCollector(Collector):
    """``w`` is a :class:`shop.main.Wiring` (duck-typed: the router, the service and the saga)."""

    def __init__(self, wiring, admission=None, service: str = "shop") -> None:
        self._w = wiring
        self._admission = admission
        self._service = service

    def collect(self) -> Iterator:
        w, n = self._w, self._service
        yield from counter_families(n, [
            ("shop_product_cache_hits", "Product pages served from the cache", w.service.cache_hits),
            ("shop_product_cache_misses", "Product pages read from their shard", w.service.cache_misses),
            ("shop_fenced_writes", "Writes refused by a shard's fence (bucket moving or moved), then retried",
             w.router.fenced_writes),
            ("shop_shard_map_reloads", "Shard maps loaded", w.router.map_reloads),
        ])
        if self._admission is not None:
            a = self._admission
            yield from counter_families(n, [("shop_checkouts_refused_busy", "Checkouts refused with 429: no turn "
                                              "within the queue bound", a.refused)])
            for name, text, value in (("shop_checkouts_in_flight", "Checkouts running", a.in_flight),
                                      ("shop_checkouts_waiting", "Checkouts waiting for a turn", a.waiting)):
                gauge = GaugeMetricFamily(name, text, labels=["service"])
                gauge.add_metric([n], value)
                yield gauge
        version = GaugeMetricFamily("shop_shard_map_version", "Version of the shard map in use", labels=["service"])
        version.add_metric([n], w.router._map.version if w.router._map else 0)
        yield version
        queries = CounterMetricFamily("shop_shard_queries", "Transactions sent to each shard",
                                      labels=["service", "shard"])
        for shard, count in sorted(w.router.queries.items()):
            queries.add_metric([n, str(shard)], count)
        yield queries
        outcomes = CounterMetricFamily("shop_checkouts", "Checkouts by outcome", labels=["service", "outcome"])
        for outcome, count in sorted(w.saga.outcomes.items()):
            outcomes.add_metric([n, outcome], count)
        yield outcomes
        tries = CounterMetricFamily("shop_stock_tries", "Reservation tries by where they were answered: "
                                    "gate_refused (never reached the database), database_taken, "
                                    "database_refused, database_error", labels=["service", "path"])
        for path, count in sorted(w.saga.stock_tries.items()):
            tries.add_metric([n, path], count)
        yield tries
