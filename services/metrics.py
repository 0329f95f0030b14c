"""Prometheus metrics as a pure ASGI middleware (a BaseHTTPMiddleware would cost more per request).

Route labels use the route template (``/{code}``), never the raw path, to keep cardinality
bounded. A fast path that answers before routing names itself with ``scope["lab.route"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HttpMetrics:
    """The per-service HTTP metrics, in a registry of their own so apps in one process do not clash."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "http_requests_total", "HTTP requests", ["service", "method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("http_requests_in_flight", "HTTP requests in flight", ["service"], registry=self.registry)
        self._in_flight = self.in_flight.labels(service)
        # Label lookups take a lock; caching the children keeps the hot path cheap.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = (
                self.requests.labels(self.service, method, route, str(status)),
                self.latency.labels(self.service, method, route),
            )
            self._children[key] = child
        child[0].inc()
        child[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def counter_families(service: str, rows: Iterable[tuple[str, str, float]]) -> Iterator[CounterMetricFamily]:
    """Counters read at scrape time from plain ints: ``(name, help, value)`` rows, labelled by service.

    Designs keep hot-path counts as ``+= 1`` on an int (cheaper than a metric object's lock)
    and export them through a custom collector built on this."""
    for name, doc, value in rows:
        family = CounterMetricFamily(name, doc, labels=["service"])
        family.add_metric([service], value)
        yield family


class ReadRoutingCounters(Collector):
    """Where reads were served (:class:`services.clients.read_routing.RoutingStats`), by reason:
    ``db_routed_reads_total{served_by="replica"|"primary", reason=...}``, summed over ``routers()``
    (one per PostgreSQL server); nothing when none routes reads to replicas."""

    def __init__(self, service: str, routers: Callable[[], Sequence]) -> None:
        self.service = service
        self.routers = routers

    def collect(self) -> Iterator:
        routing = [r.stats for r in self.routers() if r.routes_reads]
        if not routing:
            return
        s = SimpleNamespace(**{k: sum(getattr(x, k) for x in routing) for k in vars(routing[0])})
        reads = CounterMetricFamily("db_routed_reads", "Reads by where they were served and why",
                                    labels=["service", "served_by", "reason"])
        for served_by, reason, value in (("replica", "stale_ok", s.replica_reads), ("primary", "asked", s.primary_reads),
                                         ("primary", "replica_behind", s.fell_back_behind),
                                         ("primary", "replica_unavailable", s.fell_back_unavailable),
                                         ("none", "replica_timed_out", s.timed_out)):
            reads.add_metric([self.service, served_by, reason], value)
        yield reads
        yield from counter_families(self.service, [
            ("db_read_after_waits", "Read-your-writes reads that waited for their replica", s.waited)])


class ClientGauges(Collector):
    """Gauges of the shared clients, read at scrape time: database pool use per shard
    (``db_pool_in_use``, ``db_pool_size``) and Kafka consumer lag per topic (``kafka_consumer_lag``).

    ``shards`` has ``pool_use() -> [(in_use, size)]``; ``consumers`` have ``lag() -> {topic: records}``."""

    def __init__(self, service: str, shards=None, consumers=()) -> None:
        self.service = service
        self.shards = shards
        self.consumers = list(consumers)

    def collect(self) -> Iterator:
        if self.shards is not None:
            in_use = GaugeMetricFamily("db_pool_in_use", "Database connections checked out", labels=["service", "shard"])
            size = GaugeMetricFamily("db_pool_size", "Database connections held by the pool", labels=["service", "shard"])
            for shard, (used, held) in enumerate(self.shards.pool_use()):
                in_use.add_metric([self.service, str(shard)], used)
                size.add_metric([self.service, str(shard)], held)
            yield in_use
            yield size
        if self.consumers:
            lag = GaugeMetricFamily("kafka_consumer_lag", "Records behind the end of the log", labels=["service", "topic"])
            totals: dict[str, int] = {}
            for consumer in self.consumers:
                for topic, behind in consumer.lag().items():
                    totals[topic] = totals.get(topic, 0) + behind
            for topic, behind in sorted(totals.items()):
                lag.add_metric([self.service, topic], behind)
            yield lag


def route_of(scope: Scope) -> str:
    named = scope.get("lab.route")
    if named:
        return named
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        in_flight = self.metrics._in_flight

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            in_flight.dec()
            self.metrics.observe(scope["method"], route_of(scope), status, time.perf_counter() - start)
