"""One shard of two hangs (SIGSTOP) for a third of a short run: nobody gets a 500, listings come back
partial, nothing acknowledged is lost, and the invariants hold once the sweeper has finished."""

from __future__ import annotations

import json

from tests.support.lab import Lab


def test_shard_outage_experiment_answers_with_reasons_and_loses_nothing(tmp_path):
    lab = Lab.create(tmp_path / "lab", port_start=31500, SDLAB_RESULTS=str(tmp_path / "results"))
    result = lab.run("experiment", "shop.shard-outage", "--duration", "15", check=False, timeout=600)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]  # 1: a measured check missed
    (run,) = (tmp_path / "results").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    variant = summary["variants"]["postgres-1 paused"]
    assert [f["action"] for f in variant["faults"]] == ["pause", "resume"] and not variant["fault_errors"]
    extra = variant["extra"]
    assert not extra["client_5xx"] and not extra["server_5xx"], (extra["client_5xx"], extra["server_5xx"])
    assert extra["during_hit"]["checkouts"] > 0 and extra["hit_without_message"] == 0
    assert extra["listings_during"]["partial"] > 0
    loss = variant["loss"]
    assert loss["acknowledged"] > 0 and loss["unreadable_acked_count"] == 0 and loss["duplicate_key_orders"] == 0
    assert loss["pending_orders"] == 0 and loss["double_charged"] == 0
    assert all(c["passed"] for c in variant["checks"]), variant["checks"]  # the invariants, after the sweeper
    assert (run / "report.md").stat().st_size > 0 and (run / "shard-outage.png").exists()
    assert not (tmp_path / "lab" / "experiment" / "state.json").exists(), "the experiment takes its stacks down"
