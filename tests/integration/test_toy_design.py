"""The toy design (tests/toy_design), plugged in by SDLAB_DESIGN_MODULES alone, runs end to end:
up, a shaped Locust load with its seed and check, down."""

from __future__ import annotations

import json

import httpx

from tests.support.lab import Lab, free_port_block


def test_a_design_from_the_tests_runs_like_the_installed_ones(tmp_path):
    lab = Lab.create(tmp_path / "toy", port_start=29000, SDLAB_DESIGN_MODULES="tests.toy_design.plugin",
                     SDLAB_TOY_PORT=str(free_port_block(1, 29500)), SDLAB_RESULTS=str(tmp_path / "results"))
    lab.run("up", "toy", timeout=120)
    try:
        assert lab.state["designs"] == ["toy"] and sorted(lab.state["components"]) == ["caddy", "toy-1"]
        assert httpx.post(f"{lab.url('toy')}/api/v1/notes", json={"text": "hi"}).status_code == 201
        lab.run("load", "toy", "--users", "5", "--duration", "6", "--shape", "step", "--seed", "5", timeout=120)
        run = max((tmp_path / "results").glob("*-toy-load"), key=lambda p: p.stat().st_mtime)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["requests"] > 0 and summary["checks"][0]["passed"], summary["checks"]
        users = [row["users"] for row in map(json.loads, (run / "timeline.jsonl").read_text().splitlines())
                 if row.get("users")]
        assert users and max(users) == 5 and min(users) < 5  # the step shape ramped the users up
    finally:
        lab.run("down", check=False)
