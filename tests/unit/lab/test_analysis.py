"""The load tests' analysis kit: one percentile, fault windows, endpoint figures, JSON lines, formatters."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from services.lab.analysis import (
    EMPTY_ENDPOINT,
    endpoint,
    fault_window,
    fmt,
    ms,
    pct,
    percentile,
    read_jsonl,
)


def test_percentile_is_nearest_rank_with_q_in_0_to_100():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 99) == 4 and percentile([1, 2, 3, 4], 75) == 3
    assert percentile([5.0], 99) == 5.0 and percentile([3, 1, 2], 0) == 1


def test_percentile_is_always_a_measured_value_whatever_the_order():
    rng = random.Random(7)
    values = [rng.uniform(0, 1000) for _ in range(997)]
    for q in (1, 7, 50, 95, 99, 99.9):
        got = percentile(values, q)
        assert got in values and got == percentile(sorted(values, reverse=True), q)
        # the defining property: at least q % at or below it, and fewer than q % strictly below it
        assert sum(v <= got for v in values) >= q / 100 * len(values) > sum(v < got for v in values)


def test_percentile_rank_is_exact_where_float_division_is_not():
    # 0.07 * 100 is 7.000000000000001: a rank computed from q / 100 would take the 8th value.
    assert percentile(list(range(1, 101)), 7) == 7


def test_percentile_of_nothing_is_none_and_q_outside_0_to_100_is_refused():
    assert percentile([], 99) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0], -1)


def test_fault_window_takes_the_components_first_window_and_an_open_one_ends_with_the_run():
    summary = {"duration_s": 60.0, "fault_windows": [
        {"component": "redis", "start_s": 10.0, "end_s": 20.0},
        {"component": "kafka", "start_s": 30.0, "end_s": None},
        {"component": "redis", "start_s": 40.0, "end_s": 45.0}]}
    assert fault_window(summary, "redis") == (10.0, 20.0)
    assert fault_window(summary, "kafka") == (30.0, 60.0)
    assert fault_window(summary, "postgres-0") is None
    assert fault_window({"duration_s": 5.0}, "redis") is None


def test_endpoint_reads_a_result_or_a_summary_and_fills_what_is_missing():
    summary = {"endpoints": {"/{code}": {"requests": 10, "failures": 1, "p99_ms": 12.5}}}
    got = endpoint(SimpleNamespace(summary=summary), "/{code}")
    assert got["requests"] == 10 and got["p99_ms"] == 12.5 and got["p50_ms"] is None and got["rps"] == 0.0
    assert endpoint(summary, "/{code}") == got
    assert endpoint(summary, "/api/v1/links") == EMPTY_ENDPOINT
    assert endpoint({}, "/x") == EMPTY_ENDPOINT
    got["requests"] = 0
    assert EMPTY_ENDPOINT["requests"] == 0 and endpoint(summary, "/{code}")["requests"] == 10  # copies, not shared


def test_read_jsonl_skips_blank_lines_and_a_missing_file_is_empty(tmp_path):
    path = tmp_path / "acks.jsonl"
    assert read_jsonl(path) == []
    path.write_text(json.dumps({"a": 1}) + "\n\n" + json.dumps({"b": [2]}) + "\n")
    assert read_jsonl(path) == [{"a": 1}, {"b": [2]}]


def test_formatters():
    assert ms(None) == "-" and ms(1234.4) == "1,234 ms" and ms(12.34, 1) == "12.3 ms" and ms(7) == "7 ms"
    assert pct(None) == "-" and pct(0.995) == "99.5%" and pct(0.99951, 2) == "99.95%" and pct(1) == "100.0%"
    assert fmt(None) == "-" and fmt(1234.56, " ms", 2) == "1,234.56 ms" and fmt(12000) == "12,000"
