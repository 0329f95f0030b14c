"""Messaging's own figures for ``sdlab top``, from one window of its processes' ``/metrics``."""

from __future__ import annotations

from services.lab.analysis import ms
from services.lab.measure.metrics_window import MetricsWindow


def gauges(window: MetricsWindow) -> list[tuple[str, str]]:
    connections = window.gauge("ws_connections")
    lag = window.gauge("kafka_consumer_lag")
    slow = window.increase("ws_slow_disconnects_total")
    errors = window.increase_by("ws_error_frames_total", "code")
    return [
        ("open connections", "-" if connections is None else f"{connections:,.0f}"),
        ("sends/s (frames)", f"{window.rate('ws_frames_received_total', type='send'):,.0f}"),
        ("deliveries/s (frames to sockets)", f"{window.rate('ws_deliveries_total'):,.0f}"),
        ("ack p99 (gateway)", ms(window.latency_ms(0.99, histogram="ws_ack_duration_seconds"), 1)),
        ("delivery lag p99 (stored → written)", ms(window.latency_ms(0.99, histogram="ws_delivery_lag_seconds"), 1)),
        ("consumer lag (records)", "-" if lag is None else f"{lag:,.0f}"),
        ("slow readers cut off", f"{slow:,.0f}"),
        ("error frames", ", ".join(f"{code} {n:,.0f}" for code, n in sorted(errors.items()) if n) or "none"),
    ]
