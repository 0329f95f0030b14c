"""The short scaling run CI affords: 1 and 2 shortener instances, each on a small CPU budget.
It must scale (efficiency >= 0.8 with the instances the bottleneck and the machine below 90%)."""

from __future__ import annotations

import json

import pytest

from services.lab.budgets.cgroups import CgroupsUnavailable, CpuGroups
from tests.support.lab import Lab


def test_two_budgeted_instances_carry_about_twice_what_one_does(tmp_path):
    try:
        CpuGroups.detect()
    except CgroupsUnavailable as exc:
        pytest.skip(str(exc))
    lab = Lab.create(tmp_path / "lab", port_start=29400, SDLAB_RESULTS=str(tmp_path / "results"))
    result = lab.run("experiment", "shortener.scale-out", "--variants", "1 instance,2 instances",
                     "--duration", "10", "--seed", "300", check=False, timeout=600)
    (run,) = (tmp_path / "results").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    scaling = summary["scaling"]
    assert [p["n"] for p in scaling["points"]] == [1, 2]
    assert scaling["outcome"] == "pass", (scaling, result.stdout[-2000:])
    assert scaling["efficiency"]["2"] >= 0.8
    for point in scaling["points"]:
        assert point["scaled_at_budget"] and point["machine_cpu_pct"] < 90, point
        assert point["bottleneck"].startswith("bottleneck: shortener-"), point["bottleneck"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert (run / "scaling.png").stat().st_size > 10_000
    assert "bottleneck: shortener-" in (run / "report.md").read_text()
