"""One short chaos experiment whose outcome is asserted, and the demo, each on a stack of its own."""

from __future__ import annotations

import json

from tests.support.lab import Lab, alive


def test_redis_outage_experiment_passes(tmp_path):
    lab = Lab.create(tmp_path / "lab", port_start=29000, SDLAB_RESULTS=str(tmp_path / "results"))
    result = lab.run("experiment", "shortener.redis-outage", "--duration", "20", check=False, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    (run,) = (tmp_path / "results").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["passed"] and "redirects" in summary["claim"]
    variant = summary["variants"]["redis killed"]
    assert [f["action"] for f in variant["faults"]] == ["kill", "restart"]
    assert variant["loss"]["acknowledged"] > 0 and variant["loss"]["lost"] == 0
    assert variant["endpoints"]["/{code}"]["failures"] == 0
    for name in ("report.md", "timeline-redis-killed.png"):
        assert (run / name).stat().st_size > 0
    report = (run / "report.md").read_text()
    assert "Commit:" in report and "Machine:" in report and "sdlab experiment shortener.redis-outage" in report
    assert not (tmp_path / "lab" / "state.json").exists(), "the experiment takes its stacks down"


def test_demo_runs_and_leaves_the_stack_up(tmp_path):
    lab = Lab.create(tmp_path / "lab", port_start=30000, SDLAB_RESULTS=str(tmp_path / "results"))
    try:
        result = lab.run("demo", "--duration", "6", timeout=600)
        assert "req/s achieved" in result.stdout and "report:" in result.stdout
        assert all(c["state"] == "ready" for c in lab.status()["components"])
    finally:
        pids = lab.pids()
        lab.run("down", check=False)
    assert [p for p in pids if alive(p)] == []


def test_capacity_experiment_steps_up_to_saturation(tmp_path):
    """The wiring of a search experiment: steps on one stack, a retried miss, the curve. Steps of 2 s on
    a CI machine do not make a knee worth quoting, so only the machinery is asserted here."""
    lab = Lab.create(tmp_path / "lab", port_start=31000, SDLAB_RESULTS=str(tmp_path / "results"))
    result = lab.run("experiment", "shortener.capacity", "--duration", "2", "--seed", "200", check=False, timeout=900)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    (run,) = (tmp_path / "results").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    steps = list(summary["variants"].values())
    assert len(steps) >= 3 and all(s["generator"] == "k6" and s["loop"] == "open" for s in steps)
    assert [s["offered_rps"] for s in steps] == sorted(s["offered_rps"] for s in steps)
    assert result.stdout.count("starting the stack") == 1, "every step after the first runs on the same stack"
    assert any("pushed past saturation" in c["description"] and c["passed"] for c in summary["checks"])
    assert all(s["loss"]["lost"] == 0 for s in steps)
    assert (run / "capacity.png").stat().st_size > 0 and "where the CPU went" in (run / "report.md").read_text()
    assert not (tmp_path / "lab" / "state.json").exists()
