"""Messaging's load tests against the real stack: both generators, the checks, one chaos experiment."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.lab import Lab

ACK, DELIVER = "ws send→ack", "ws send→deliver"


def _run(results: Path) -> tuple[Path, dict]:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    return run, json.loads((run / "summary.json").read_text())


def test_open_loop_load_times_each_message_from_its_scheduled_send(lab: Lab, tmp_path):
    results = tmp_path / "results"
    out = lab.run("load", "messaging", "--open", "--rate", "40", "--duration", "6", "--seed", "40",
                  env={"SDLAB_RESULTS": str(results)}, timeout=240).stdout
    assert "the design's own generator, open loop" in out
    run, summary = _run(results)
    assert summary["generator"] == "script" and summary["loop"] == "open" and summary["offered_rps"] == 40
    acks, deliveries = summary["endpoints"][ACK], summary["endpoints"][DELIVER]
    assert acks["requests"] == summary["requests"] >= 0.9 * 40 * 6 and acks["failures"] == 0
    # Each message reaches both members of a pair (the sender's own socket too), more in groups.
    assert deliveries["requests"] >= 2 * acks["requests"]
    assert 0 < deliveries["p50_ms"] <= deliveries["p99_ms"] and summary["p99_ms"] == deliveries["p99_ms"]
    loss = summary["loss"]
    assert loss["acknowledged"] == acks["requests"] and loss["lost"] == 0 and loss["not_delivered"] == 0
    assert all(c["passed"] for c in summary["checks"]) and len(summary["checks"]) == 3
    timeline = [json.loads(line) for line in (run / "timeline.jsonl").read_text().splitlines()]
    assert sum(row["requests"] for row in timeline) == acks["requests"]
    assert any(DELIVER in row["by_name"] and row["rss_mib"].get("messaging-gateway-1") for row in timeline)
    assert len((run / "acks.jsonl").read_text().splitlines()) == 2 * acks["requests"]  # attempted + acknowledged


def test_locust_users_speak_the_protocol(lab: Lab, tmp_path):
    results = tmp_path / "results"
    lab.run("load", "messaging", "--users", "10", "--rate", "10", "--duration", "6", "--seed", "10",
            env={"SDLAB_RESULTS": str(results)}, timeout=240)
    _, summary = _run(results)
    assert summary["generator"] == "locust" and summary["loop"] == "closed"
    assert summary["endpoints"][ACK]["requests"] >= 30 and summary["endpoints"][DELIVER]["requests"] >= 60
    assert summary["loss"]["lost"] == 0 and all(c["passed"] for c in summary["checks"]), summary["checks"]


def test_gateway_failure_experiment_loses_nothing(tmp_path):
    lab = Lab.create(tmp_path / "lab", port_start=32000, SDLAB_RESULTS=str(tmp_path / "results"))
    result = lab.run("experiment", "messaging.gateway-failure", "--duration", "16", check=False, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    (run,) = (tmp_path / "results").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    variant = summary["variants"]["gateway-1 killed"]
    assert [f["action"] for f in variant["faults"]] == ["kill", "restart"]
    loss = variant["loss"]
    assert loss["acknowledged"] > 0 and loss["lost"] == 0 and loss["stored_twice"] == 0
    assert loss["reconnects"] > 0 and loss["delivered_twice"] == 0 and loss["out_of_order"] == 0
    assert loss["not_delivered"] == 0
    assert variant["endpoints"]["ws reconnect"]["requests"] > 0
    assert (run / "report.md").stat().st_size > 0
    assert not (tmp_path / "lab" / "state.json").exists(), "the experiment takes its stacks down"
