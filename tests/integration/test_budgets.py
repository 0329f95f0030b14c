"""CPU budgets on a real stack: each instance held to its budget (a fifth of a core) under more load
than that carries, the budget in status, in top, in the run's timeline and summary, and the
groups gone after `down`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.lab.budgets.cgroups import CgroupsUnavailable, CpuGroups, home_tag
from tests.support.lab import Lab

INSTANCES = ("shortener-1", "shortener-2")


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory):
    try:
        groups = CpuGroups.detect()
    except CgroupsUnavailable as exc:
        pytest.skip(str(exc))
    lab = Lab.create(tmp_path_factory.mktemp("budgeted"), port_start=27000,
                     SDLAB_RESULTS=str(tmp_path_factory.mktemp("budget-results")))
    lab.run("up", "shortener", "--budget", "shortener=0.2", "--budget", "redis=0.5", timeout=180)
    try:
        yield lab, groups
    finally:
        lab.run("down", check=False)


def test_status_shows_each_budget(budgeted):
    lab, _ = budgeted
    rows = {c["name"]: c for c in lab.status()["components"]}
    assert {n: rows[n]["budget_cores"] for n in (*INSTANCES, "shortener-analytics-1", "redis")} == {
        "shortener-1": 0.2, "shortener-2": 0.2, "shortener-analytics-1": 0.2, "redis": 0.5}
    assert rows["caddy"]["budget_cores"] is None and rows["postgres-0"]["budget_cores"] is None
    table = lab.run("status").stdout
    assert "CPU budget" in table and "0.2 core" in table


def test_each_instance_is_held_to_its_budget_under_load(budgeted):
    lab, groups = budgeted
    tag = home_tag(lab.home)
    before = {n: groups.group(tag, n).sample() for n in INSTANCES}
    # ~0.2 core-ms per request through Caddy: 3,000/s asks each instance for ~0.3 core.
    out = lab.run("load", "shortener", "--open", "--rate", "3000", "--duration", "8", "--read-write", "20:1",
                  "--seed", "300", timeout=240).stdout
    after = {n: groups.group(tag, n).sample() for n in INSTANCES}
    summary = json.loads((Path(re.search(r"results: (\S+)", out).group(1)) / "summary.json").read_text())
    seconds = summary["duration_s"] + 6  # the run, the idle reading before it and the tail after it
    for name in INSTANCES:
        used = after[name].usage_s - before[name].usage_s
        throttled = after[name].throttled_periods - before[name].throttled_periods
        # The kernel's own accounting of the group: a quota is a ceiling whatever else runs.
        assert used <= 0.2 * seconds + 0.2, f"{name} used {used:.2f} s of CPU in ~{seconds} s"
        assert throttled > 0, f"{name} was offered more than its budget of work and never throttled"
    rows = [r["budget"] for r in summary_timeline(summary, out) if r.get("budget")]
    busiest = max(r[INSTANCES[0]]["cores"] for r in rows if INSTANCES[0] in r)
    assert 0.15 < busiest <= 0.2 * 1.15, f"the timeline's per-second usage of {INSTANCES[0]}: {busiest}"
    assert summary["budgets"]["shortener-1"] == 0.2
    assert re.match(r"bottleneck: (shortener-\d, at its budget|the machine)", summary["bottleneck"]), summary["bottleneck"]


def summary_timeline(summary: dict, out: str) -> list[dict]:
    folder = Path(re.search(r"results: (\S+)", out).group(1))
    return [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]


def test_top_shows_cpu_against_budget(budgeted):
    lab, _ = budgeted
    frame = json.loads(lab.run("top", "--once", "--json").stdout)
    rows = {c["name"]: c for c in frame["components"]}
    assert rows["shortener-1"]["budget_cores"] == 0.2 and rows["shortener-1"]["throttled"] is not None
    assert rows["caddy"]["budget_cores"] is None
    assert "budget" in lab.run("top", "--once").stdout  # the column (Rich may wrap its header in a narrow terminal)


def test_bad_budgets_are_refused_in_one_line(budgeted):
    lab, _ = budgeted
    other = Lab.create(lab.home.parent / "refused", port_start=27600)
    for budget, says in [("postgress=0.5", "no component or kind named 'postgress'"),
                         ("redis=9", "only"), ("redis=0", "must be above 0"), ("shortener", "is not NAME=CORES"),
                         ("postgres=0.99,shortener=0.99", "unbudgeted components")]:
        result = other.run("up", "shortener", "--budget", budget, check=False)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert not (other.home / "state.json").exists()


def test_down_removes_the_groups(tmp_path):
    try:
        groups = CpuGroups.detect()
    except CgroupsUnavailable as exc:
        pytest.skip(str(exc))
    lab = Lab.create(tmp_path / "short", port_start=27800)
    lab.run("up", "shortener", "--budget", "postgres=0.5", timeout=180)
    try:
        made = groups.components(home_tag(lab.home))
        assert made and "postgres-0" in made and all(n.startswith("postgres-") for n in made), made
    finally:
        lab.run("down")
    assert groups.components(home_tag(lab.home)) == []
