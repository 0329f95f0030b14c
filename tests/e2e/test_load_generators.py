"""`sdlab load` with both generators against the session stack: the same summary fields, honest labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.lab import Lab


def _run_folder(results: Path) -> Path:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    return run


def test_open_loop_load_with_k6(lab: Lab, tmp_path):
    results = tmp_path / "results"
    out = lab.run("load", "shortener", "--open", "--rate", "150", "--duration", "6", "--seed", "100",
                  env={"SDLAB_RESULTS": str(results)}, timeout=180).stdout
    assert "k6, open loop" in out and "report:" in out
    run = _run_folder(results)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["generator"] == "k6" and summary["loop"] == "open" and summary["offered_rps"] == 150
    assert 0.8 * 150 <= summary["achieved_rps"] <= 1.1 * 150, summary["achieved_rps"]
    assert summary["dropped_iterations"] == 0 and summary["failures"] == 0
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]
    redirects, creates = summary["endpoints"]["/{code}"], summary["endpoints"]["/api/v1/links"]
    assert redirects["requests"] > 5 * creates["requests"] > 0
    assert redirects["requests"] + creates["requests"] == summary["requests"]
    assert all(redirects[k] is not None for k in ("p50_ms", "p99_ms"))
    assert all(c["passed"] for c in summary["checks"]) and summary["loss"]["acknowledged"] == creates["requests"]
    timeline = [json.loads(line) for line in (run / "timeline.jsonl").read_text().splitlines()]
    busy = [row for row in timeline if row["requests"]]
    assert len(busy) >= 4 and sum(row["requests"] for row in timeline) >= 0.9 * summary["requests"]
    assert all(row["p99_ms"] is not None and "/{code}" in row["by_name"] for row in busy)
    assert any("load-generator" in row["cpu"] and "shortener-1" in row["cpu"] for row in timeline)
    report = (run / "report.md").read_text()
    assert "k6, open loop" in report and "dropped" in report and "Commit:" in report
    # What one operation cost: a mix of redirects and creates is "a request"; every component and
    # PostgreSQL server of the stack is counted, the idle background measured before the load.
    cost = summary["cost_per_op"]
    assert cost["op"] == "request" and cost["ops"] == summary["requests"] - summary["failures"]
    assert cost["core_ms"]["shortener-1"] > 0 and cost["core_ms_total"] >= cost["core_ms"]["shortener-1"]
    assert cost["pg_statements"] is not None and cost["statements_not_counted"] == {}
    assert set(cost["pg_statements_by_server"]) == {"postgres-0", "postgres-1"}
    assert "What one request costs" in report and "one request costs" in out


def test_closed_loop_load_says_its_latencies_are_closed_loop(lab: Lab, tmp_path):
    results = tmp_path / "results"
    out = lab.run("load", "shortener", "--users", "5", "--duration", "4", "--seed", "50",
                  env={"SDLAB_RESULTS": str(results)}, timeout=180).stdout
    assert "Locust, closed loop" in out
    summary = json.loads((_run_folder(results) / "summary.json").read_text())
    assert summary["generator"] == "locust" and summary["loop"] == "closed" and "closed-loop" in summary["latency_note"]
    assert set(summary["endpoints"]) == {"/{code}", "/api/v1/links"}
    assert "closed-loop" in (_run_folder(results) / "report.md").read_text()


def test_load_flags_are_checked_before_anything_runs(lab: Lab, tmp_path):
    for args, needle in ((["--open"], "needs an arrival rate"),
                         (["--open", "--rate", "10", "--shape", "soak"], "unknown open-loop shape"),
                         (["--shape", "ramp"], "unknown closed-loop shape"),
                         (["--open", "--rate", "-5"], "--rate must be positive")):
        result = lab.run("load", "shortener", *args, check=False, env={"SDLAB_RESULTS": str(tmp_path)})
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == [], "a rejected run writes nothing"


def test_open_loop_shapes_ramp_the_arrival_rate(lab: Lab, tmp_path):
    results = tmp_path / "results"
    lab.run("load", "shortener", "--open", "--rate", "200", "--duration", "6", "--shape", "step", "--seed", "50",
            env={"SDLAB_RESULTS": str(results)}, timeout=180)
    summary = json.loads((_run_folder(results) / "summary.json").read_text())
    assert summary["offered"] == "200 req/s open loop, step" and summary["failures"] == 0
    # Five equal steps from 40 to 200 req/s average 120 req/s.
    assert 0.8 * 120 <= summary["achieved_rps"] <= 1.1 * 120, summary["achieved_rps"]
    timeline = [json.loads(line) for line in (_run_folder(results) / "timeline.jsonl").read_text().splitlines()]
    assert timeline[-1]["requests"] > 2 * timeline[0]["requests"] > 0


@pytest.mark.parametrize("design", ["shortener", "messaging", "shop"])
def test_closed_loop_shapes_drive_every_design(lab: Lab, tmp_path, design):
    """The engine's shape runs beside any design's locustfile: users follow the steps and the run ends on time."""
    results = tmp_path / "results"
    lab.run("load", design, "--users", "5", "--duration", "10", "--shape", "step", "--seed", "20",
            env={"SDLAB_RESULTS": str(results)}, timeout=240)
    run = _run_folder(results)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["generator"] == "locust" and summary["requests"] > 0 and summary["duration_s"] < 30, summary
    users = [row["users"] for row in map(json.loads, (run / "timeline.jsonl").read_text().splitlines()) if row["users"]]
    assert min(users) < max(users) == 5, users  # a step shape: a fifth of the users first, all of them last
