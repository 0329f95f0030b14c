"""`sdlab load --target URL` against the local stack through Caddy, from a lab home that knows no stack:
seeded and checked through the public API only, the rest skipped and named."""

from __future__ import annotations

import json

from services.lab.measure.target_load import TARGET_SKIPS
from tests.support.lab import Lab


def test_a_target_is_loaded_and_checked_through_its_public_api(tmp_path):
    lab = Lab.create(tmp_path / "stack", port_start=24000, SDLAB_SHORTENER_INSTANCES="1")
    lab.run("up", "shortener", timeout=180)
    try:
        elsewhere = tmp_path / "elsewhere"  # another machine's lab: no state.json, no ports of the stack
        results = tmp_path / "results"
        out = lab.run("load", "shortener", "--target", lab.url("shortener"), "--duration", "5", "--users", "5",
                      "--seed", "50", env={"SDLAB_HOME": str(elsewhere), "SDLAB_RESULTS": str(results)},
                      timeout=120).stdout
    finally:
        lab.run("down", check=False)
    assert not (elsewhere / "state.json").exists()
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["target"] == lab.url("shortener")
    seeded = json.loads((run / "seed.json").read_text())
    assert len(seeded["links"]) >= 45 and seeded["host"] == lab.url("shortener")  # created through the API
    creates = summary["endpoints"]["/api/v1/links"]
    assert summary["requests"] > 0 and creates["requests"] > 0
    # Every acknowledged create was read back through GET /api/v1/links/{code}: none lost.
    loss = summary["loss"]
    assert loss["acknowledged"] == creates["requests"] - creates["failures"] > 0
    assert loss["lost"] == 0 and loss["unreadable"] == 0
    lost_check = next(c for c in summary["checks"] if c["description"] == "no acknowledged create lost")
    assert lost_check["passed"] and f"{loss['acknowledged']} acknowledged, 0 lost" in lost_check["detail"]
    # What needs the lab's own stack is skipped, each named with its reason, in the summary, report and output.
    assert summary["skipped"] == [{"description": s.description, "reason": s.reason} for s in TARGET_SKIPS]
    assert summary["server"] == {} and "cost_per_op" not in summary
    report = (run / "report.md").read_text()
    for s in TARGET_SKIPS:
        assert f"- skipped: {s.description} ({s.reason})" in report
    assert "- [x] no acknowledged create lost" in report
    assert "no lab stack here: 4 measurements skipped" in out
