"""The shortener's own figures for ``sdlab top``, from one window of its processes' ``/metrics``."""

from __future__ import annotations

from services.lab.measure.metrics_window import MetricsWindow


def gauges(window: MetricsWindow) -> list[tuple[str, str]]:
    hits = window.increase("cache_hits_total")
    misses = window.increase("cache_misses_total")
    lookups = hits + misses
    lag = window.gauge("kafka_consumer_lag")
    in_use, size = window.gauge("db_pool_in_use"), window.gauge("db_pool_size")
    return [
        ("cache hit ratio", f"{100 * hits / lookups:.1f}% of {lookups / window.seconds:,.0f} lookups/s"
         if lookups else "- (no lookups)"),
        ("PostgreSQL reads/s (cache misses)", f"{window.rate('db_reads_total'):,.0f}"),
        ("clicks published to Kafka/s", f"{window.rate('clicks_published_total'):,.0f}"),
        ("click consumer lag (records)", "-" if lag is None else f"{lag:,.0f}"),
        ("database pool in use", "-" if in_use is None else f"{in_use:.0f} of {size or 0:.0f} connections"),
    ]
