"""Rates, restarts and latency percentiles from two scrapes of exposition text."""

from __future__ import annotations

import pytest

from services.lab.measure.metrics_window import MetricsWindow, quantile


def _scrape(requests_200: int, requests_503: int, buckets: dict[str, int], hits: int, in_flight: int = 0) -> str:
    lines = ["# TYPE http_requests_total counter",
             f'http_requests_total{{service="s",method="GET",route="/x",status="200"}} {requests_200}',
             f'http_requests_total{{service="s",method="GET",route="/x",status="503"}} {requests_503}',
             "# TYPE http_request_duration_seconds histogram"]
    for le, count in buckets.items():
        lines.append(f'http_request_duration_seconds_bucket{{service="s",method="GET",route="/x",le="{le}"}} {count}')
    total = list(buckets.values())[-1]
    lines += [f'http_request_duration_seconds_count{{service="s",method="GET",route="/x"}} {total}',
              'http_request_duration_seconds_sum{service="s",method="GET",route="/x"} 1.0',
              "# TYPE http_requests_in_flight gauge", f'http_requests_in_flight{{service="s"}} {in_flight}',
              "# TYPE cache_hits counter", f'cache_hits_total{{service="s",layer="local"}} {hits}']
    return "\n".join(lines) + "\n"


BEFORE = _scrape(100, 0, {"0.001": 50, "0.01": 90, "0.1": 100, "+Inf": 100}, hits=10)
AFTER = _scrape(1100, 10, {"0.001": 550, "0.01": 1000, "0.1": 1100, "+Inf": 1110}, hits=40, in_flight=3)


def test_rates_errors_and_percentiles_over_the_window():
    window = MetricsWindow({"s-1": BEFORE}, {"s-1": AFTER}, seconds=2.0)
    http = window.http(["s-1"])
    assert http["rps"] == pytest.approx(505.0)  # 1,010 requests in 2 s
    assert http["errors"] == pytest.approx(10 / 1010)
    # 1,010 observations in the window: 500 under 1 ms, 410 more under 10 ms, 90 under 100 ms, 10 beyond.
    assert http["p50_ms"] == pytest.approx(1 + 9 * (505 - 500) / 410)  # rank 505, inside (1 ms, 10 ms]
    assert http["p99_ms"] == pytest.approx(10 + 90 * (999.9 - 910) / 90)  # rank 999.9, inside (10 ms, 100 ms]
    assert http["in_flight"] == 3
    assert window.increase("cache_hits_total", layer="local") == 30
    assert window.gauge("no_such_gauge") is None


def test_a_restarted_process_counts_from_zero():
    restarted = _scrape(40, 0, {"0.001": 40, "0.01": 40, "0.1": 40, "+Inf": 40}, hits=5)
    window = MetricsWindow({"s-1": AFTER}, {"s-1": restarted}, seconds=1.0)
    assert window.increase("http_requests_total") == 40
    assert window.increase("cache_hits_total") == 5


def test_quantile_interpolates_inside_a_bucket():
    buckets = [(0.001, 0.0), (0.002, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.0015)
    assert quantile(0.5, [(0.001, 0.0), (float("inf"), 0.0)]) is None
