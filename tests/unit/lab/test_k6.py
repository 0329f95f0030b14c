"""The k6 driver's pure parts: arrival-rate stages, the dashboard stream, the end-of-test summary."""

from __future__ import annotations

import pytest

from services.lab.errors import LabCommandError
from services.lab.generators.k6_driver import rate_stages, start_rate, summary_totals
from services.lab.generators.k6_stream import DashboardStream

TREND = ["avg", "max", "med", "min", "p(90)", "p(95)", "p(99)"]


def test_steady_is_a_constant_rate_and_shapes_are_stages():
    assert rate_stages("steady", 300, 30) is None
    assert rate_stages("ramp", 300, 30) == [{"target": 300, "duration": "30s"}]
    step = rate_stages("step", 500, 50)
    holds = [s for s in step if s["duration"] != "0s"]
    assert [s["target"] for s in holds] == [100, 200, 300, 400, 500] and {s["duration"] for s in holds} == {"10.0s"}
    assert start_rate("step", 500) == 100
    spike = rate_stages("spike", 400, 100)
    assert [s["target"] for s in spike if s["duration"] != "0s"] == [100, 400, 100]
    assert [s["duration"] for s in spike if s["duration"] != "0s"] == ["40.0s", "20.0s", "40.0s"]
    with pytest.raises(LabCommandError, match="unknown open-loop shape"):
        rate_stages("soak", 1, 1)


REDIRECT_HEX = "/{code}".encode("utf-16-be").hex()


def _stream(t0: float) -> DashboardStream:
    stream = DashboardStream("http://unused", t0)
    stream.handle("param", {"aggregates": {"counter": ["count", "rate"], "gauge": ["value"], "rate": ["rate"],
                                           "trend": TREND}})
    stream.handle("metric", {"time": {"type": "gauge"}})
    stream.handle("metric", {"http_reqs": {"type": "counter"}, "http_req_failed": {"type": "rate"},
                             "http_req_duration": {"type": "trend"}, "vus": {"type": "gauge"},
                             f"lab_ep_{REDIRECT_HEX}_requests": {"type": "counter"},
                             f"lab_ep_{REDIRECT_HEX}_failures": {"type": "counter"},
                             f"lab_ep_{REDIRECT_HEX}_duration": {"type": "trend"}})
    return stream


def test_a_snapshot_becomes_a_timeline_row_in_the_engine_clock():
    stream = _stream(t0=1000.0)
    # Alphabetical: http_req_duration, http_req_failed, http_reqs, lab_ep_.._duration, .._failures,
    # .._requests, time, vus.
    stream.handle("snapshot", [[1.0, 9.0, 0.8, 0.2, 2, 3, 7.5], [0.01], [300, 300.0], [1.0, 9.0, 0.8, 0.2, 2, 3, 7.5],
                               [3, 3.0], [300, 300.0], [1003_000.0 + 1000], [12]])
    (row,) = stream.take()
    assert row["t"] == 3 and row["requests"] == 300 and row["failures"] == 3
    assert row["p50_ms"] == 0.8 and row["p99_ms"] == 7.5 and row["users"] == 12
    assert row["by_name"] == {"/{code}": [300, 3, 9.0]}
    assert stream.take() == []


def test_an_empty_second_has_no_latency_and_a_changed_stream_is_reported():
    stream = _stream(t0=0.0)
    stream.handle("snapshot", [[0] * 7, [0], [0, 0], [0] * 7, [0, 0], [0, 0], [5000.0], [1]])
    (row,) = stream.take()
    assert row["requests"] == 0 and row["p50_ms"] is None and row["p99_ms"] is None and row["by_name"] == {}
    stream.handle("snapshot", [[0, 0]])
    assert "changed shape" in stream.error


def test_summary_totals_per_endpoint():
    data = {"metrics": {
        "http_reqs": {"values": {"count": 110, "rate": 11.0}},
        "http_req_failed": {"values": {"passes": 2, "fails": 108, "rate": 2 / 110}},
        "http_req_duration": {"values": {"med": 0.5, "p(95)": 3.0, "p(99)": 9.0, "max": 20.0}},
        "http_reqs{name:/{code}}": {"values": {"count": 100, "rate": 10.0}},
        "http_req_failed{name:/{code}}": {"values": {"passes": 0}},
        "http_req_duration{name:/{code}}": {"values": {"med": 0.4, "p(99)": 2.0, "max": 5.0}},
        "http_reqs{name:/api/v1/links}": {"values": {"count": 10, "rate": 1.0}},
        "http_req_failed{name:/api/v1/links}": {"values": {"passes": 2}},
        "dropped_iterations": {"values": {"count": 7}},
    }}
    totals = summary_totals(data)
    assert totals["total"]["requests"] == 110 and totals["total"]["failures"] == 2 and totals["total"]["rps"] == 11.0
    assert totals["endpoints"]["/{code}"] == {"requests": 100, "failures": 0, "rps": 10.0, "p50_ms": 0.4,
                                              "p95_ms": None, "p99_ms": 2.0, "max_ms": 5.0}
    assert totals["endpoints"]["/api/v1/links"]["failures"] == 2
    assert totals["dropped_iterations"] == 7
