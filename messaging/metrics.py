"""Gateway metrics: plain counters on the hot path, turned into Prometheus families at scrape time."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from services.metrics import LATENCY_BUCKETS, counter_families


@dataclass
class GatewayStats:
    connections: int = 0
    connections_opened: int = 0
    deliveries: int = 0  # frames written to sockets from the delivery topic and replays
    replayed: int = 0  # messages sent from the database (resume and gap repair)
    duplicates_dropped: int = 0
    gap_repairs: int = 0
    slow_disconnects: int = 0
    records: int = 0  # delivery records read from this gateway's topic
    frames_in: Tally = field(default_factory=Tally)
    errors: Tally = field(default_factory=Tally)


class GatewayCollector(Collector):
    def __init__(self, service: str, stats: GatewayStats) -> None:
        self.name = service
        self.stats = stats

    def collect(self) -> Iterator:
        s, n = self.stats, self.name
        gauge = GaugeMetricFamily("ws_connections", "Open WebSocket connections", labels=["service"])
        gauge.add_metric([n], s.connections)
        yield gauge
        yield from counter_families(n, [
            ("ws_connections_opened", "WebSocket connections accepted", s.connections_opened),
            ("ws_deliveries", "Frames delivered to sockets", s.deliveries),
            ("ws_replayed_messages", "Messages sent from the database (resume, gap repair)", s.replayed),
            ("ws_duplicates_dropped", "Messages not sent again to a connection that had them", s.duplicates_dropped),
            ("ws_gap_repairs", "Gaps in a conversation repaired from the database", s.gap_repairs),
            ("ws_slow_disconnects", "Connections closed because their send buffer overflowed", s.slow_disconnects),
            ("ws_delivery_records", "Records read from this gateway's delivery topic", s.records),
        ])
        frames = CounterMetricFamily("ws_frames_received", "Client frames by type", labels=["service", "type"])
        for kind, count in sorted(s.frames_in.items()):
            frames.add_metric([n, kind], count)
        yield frames
        errors = CounterMetricFamily("ws_error_frames", "Error frames sent, by code", labels=["service", "code"])
        for code, count in sorted(s.errors.items()):
            errors.add_metric([n, code], count)
        yield errors


def ack_latency(registry: CollectorRegistry) -> Histogram:
    return Histogram("ws_ack_duration_seconds", "From a send frame's arrival to its ack being written",
                     ["service"], buckets=LATENCY_BUCKETS, registry=registry)


def delivery_lag(registry: CollectorRegistry) -> Histogram:
    return Histogram("ws_delivery_lag_seconds",
                     "From a message being stored (its sent_at) to its frame being written here, once per record",
                     ["service"], buckets=LATENCY_BUCKETS, registry=registry)
