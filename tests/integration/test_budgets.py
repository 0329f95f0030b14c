"""CPU and memory budgets on a real stack: each instance held to its CPU budget (a fifth of a core)
under more load than that carries, the budget in status, in top, in the run's timeline and summary;
each memory-budgeted component in a memory cgroup holding its limit (and in its CPU group too), the
limit in status and top, an OOM kill in the group reported by status; bad budgets refused in one
line; the groups gone after `down`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.lab.budgets.cgroups import CgroupsUnavailable, CpuGroups, home_tag
from services.lab.budgets.memory_cgroups import MemoryGroups
from tests.support.lab import Lab

INSTANCES = ("shortener-1", "shortener-2")
MiB = 2**20
SHORTENER = ("shortener-1", "shortener-2", "shortener-analytics-1")


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory):
    try:
        groups = CpuGroups.detect()
        memory = MemoryGroups.detect()
    except CgroupsUnavailable as exc:
        pytest.skip(str(exc))
    lab = Lab.create(tmp_path_factory.mktemp("budgeted"), port_start=27000,
                     SDLAB_RESULTS=str(tmp_path_factory.mktemp("budget-results")))
    # One stack for both kinds of budget (a stack costs the suite ~30 s): CPU on the instances and
    # Redis, memory on the instances and PostgreSQL.
    lab.run("up", "shortener", "--budget", "shortener=0.2", "--budget", "redis=0.5", "--memory", "shortener=256M",
            "--memory", "postgres=512M", timeout=180)
    try:
        yield lab, groups, memory
    finally:
        lab.run("down", check=False)


def test_status_shows_each_budget(budgeted):
    lab, _, _ = budgeted
    rows = {c["name"]: c for c in lab.status()["components"]}
    assert {n: rows[n]["budget_cores"] for n in (*INSTANCES, "shortener-analytics-1", "redis")} == {
        "shortener-1": 0.2, "shortener-2": 0.2, "shortener-analytics-1": 0.2, "redis": 0.5}
    assert rows["caddy"]["budget_cores"] is None and rows["postgres-0"]["budget_cores"] is None
    table = lab.run("status", env={"COLUMNS": "250"}).stdout  # wide: Rich would wrap the headers
    assert "CPU budget" in table and "0.2 core" in table


def test_each_instance_is_held_to_its_budget_under_load(budgeted):
    lab, groups, _ = budgeted
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
    lab, _, _ = budgeted
    frame = json.loads(lab.run("top", "--once", "--json").stdout)
    rows = {c["name"]: c for c in frame["components"]}
    assert rows["shortener-1"]["budget_cores"] == 0.2 and rows["shortener-1"]["throttled"] is not None
    assert rows["caddy"]["budget_cores"] is None
    assert "budget" in lab.run("top", "--once").stdout  # the column (Rich may wrap its header in a narrow terminal)


def test_bad_budgets_are_refused_in_one_line(budgeted):
    lab, _, _ = budgeted
    other = Lab.create(lab.home.parent / "refused", port_start=27600)
    for budget, says in [("postgress=0.5", "no component or kind named 'postgress'"),
                         ("redis=9", "only"), ("redis=0", "must be above 0"), ("shortener", "is not NAME=CORES"),
                         ("postgres=0.99,shortener=0.99", "unbudgeted components")]:
        result = other.run("up", "shortener", "--budget", budget, check=False)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert not (other.home / "state.json").exists()


def _pids(group_dir: Path) -> set[int]:
    return {int(p) for p in (group_dir / "cgroup.procs").read_text().split()}


def test_status_shows_each_memory_budget(budgeted):
    lab, _, _ = budgeted
    rows = {c["name"]: c for c in lab.status()["components"]}
    assert {n: rows[n]["memory_budget_bytes"] for n in (*SHORTENER, "postgres-0", "postgres-1")} == {
        **{n: 256 * MiB for n in SHORTENER}, "postgres-0": 512 * MiB, "postgres-1": 512 * MiB}
    assert rows["caddy"]["memory_budget_bytes"] is None and rows["redis"]["memory_budget_bytes"] is None
    assert rows["shortener-1"]["budget_cores"] == 0.2 and rows["shortener-1"]["oom_kills"] == 0
    table = lab.run("status", env={"COLUMNS": "250"}).stdout  # wide: Rich would wrap the headers
    assert "memory budget" in table and "256 MiB" in table


def test_the_cgroup_holds_the_limit_and_the_process_tree(budgeted):
    lab, cpu, groups = budgeted
    tag = home_tag(lab.home)
    rows = {c["name"]: c for c in lab.status()["components"]}
    for name in SHORTENER:
        group = groups.group(tag, name)
        assert group.limit_bytes() == 256 * MiB, name
        swap = group.dirs[0] / "memory.memsw.limit_in_bytes"
        if swap.exists():  # v1 with swap accounting: memory + swap held to the same limit
            assert int(swap.read_text()) == 256 * MiB
        # Both budgets: the instance is in its memory group and in its CPU group.
        assert rows[name]["pid"] in _pids(group.dirs[0]), name
        assert rows[name]["pid"] in _pids(cpu.group(tag, name).dirs[0]), name
    assert groups.group(tag, "postgres-0").limit_bytes() == 512 * MiB
    assert rows["postgres-0"]["pid"] in _pids(groups.group(tag, "postgres-0").dirs[0])
    assert not (groups.roots[0] / "sdlab" / tag / "caddy").exists()


def test_top_shows_rss_against_the_memory_budget(budgeted):
    lab, _, _ = budgeted
    frame = json.loads(lab.run("top", "--once", "--json").stdout)
    rows = {c["name"]: c for c in frame["components"]}
    assert rows["shortener-1"]["memory_budget_bytes"] == 256 * MiB and rows["shortener-1"]["rss_mib"] < 256
    assert rows["caddy"]["memory_budget_bytes"] is None
    text = lab.run("top", "--once", env={"COLUMNS": "250"}).stdout  # wide: Rich would wrap the cells
    assert "RSS % of memory budget" in text
    assert "of 256 MiB" in next(line for line in text.splitlines() if line.lstrip("│ ").startswith("shortener-1 "))


def test_an_oom_kill_in_a_budgeted_group_is_reported_by_status(budgeted):
    lab, _, groups = budgeted
    group = groups.group(home_tag(lab.home), "shortener-2")
    # A hog inside the instance's group: past the limit the kernel kills the group's biggest process, the hog.
    hog = subprocess.run(group.join_command([sys.executable, "-c", "b = bytearray(400 * 2**20); b[::4096] = "
                                                                   "b'x' * len(b[::4096])"]),
                         capture_output=True, timeout=60)
    assert hog.returncode == -9, hog.stderr
    row = next(c for c in lab.status()["components"] if c["name"] == "shortener-2")
    assert row["oom_kills"] == 1 and "OOM-killed at its memory budget of 256 MiB" in row["detail"], row
    assert row["state"] == "ready", "the instance itself was not the one killed"


def test_bad_memory_budgets_are_refused_in_one_line(budgeted):
    lab, _, _ = budgeted
    other = Lab.create(lab.home.parent / "refused-memory", port_start=27650)
    for memory, says in [("postgress=256M", "no component or kind named 'postgress'"),
                         ("redis=lots", "SIZE must be bytes or a number"), ("redis=16M", "below the floor of 32 MiB"),
                         ("redis=100T", "this machine has only"), ("shortener", "is not NAME=SIZE")]:
        result = other.run("up", "shortener", "--memory", memory, check=False)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert not (other.home / "state.json").exists()


def test_down_removes_the_groups(tmp_path):
    try:
        groups = CpuGroups.detect()
    except CgroupsUnavailable as exc:
        pytest.skip(str(exc))
    memory = MemoryGroups.detect()
    lab = Lab.create(tmp_path / "short", port_start=27800)
    lab.run("up", "shortener", "--budget", "postgres=0.5", "--memory", "postgres=512M", timeout=180)
    try:
        made = groups.components(home_tag(lab.home))
        assert made and "postgres-0" in made and all(n.startswith("postgres-") for n in made), made
        assert memory.components(home_tag(lab.home)) == made
    finally:
        lab.run("down")
    assert groups.components(home_tag(lab.home)) == [] and memory.components(home_tag(lab.home)) == []
