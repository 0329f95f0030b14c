"""Memory budgets on a real stack: each budgeted component in a memory cgroup holding its limit
(and in its CPU group too when it has both), the limit in status and top, an OOM kill in the group
reported by status, bad budgets refused in one line, and the groups gone after `down`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.lab.budgets.cgroups import CgroupsUnavailable, CpuGroups, home_tag
from services.lab.budgets.memory_cgroups import MemoryGroups
from tests.support.lab import Lab

MiB = 2**20
SHORTENER = ("shortener-1", "shortener-2", "shortener-analytics-1")


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    try:
        groups = MemoryGroups.detect()
        cpu = CpuGroups.detect()
    except CgroupsUnavailable as exc:
        pytest.skip(str(exc))
    lab = Lab.create(tmp_path_factory.mktemp("limited"), port_start=27300)
    lab.run("up", "shortener", "--memory", "shortener=256M", "--memory", "postgres=512M", "--budget", "shortener=0.5",
            timeout=180)
    try:
        yield lab, groups, cpu
    finally:
        lab.run("down", check=False)


def _pids(group_dir: Path) -> set[int]:
    return {int(p) for p in (group_dir / "cgroup.procs").read_text().split()}


def test_status_shows_each_memory_budget(limited):
    lab, _, _ = limited
    rows = {c["name"]: c for c in lab.status()["components"]}
    assert {n: rows[n]["memory_budget_bytes"] for n in (*SHORTENER, "postgres-0", "postgres-1")} == {
        **{n: 256 * MiB for n in SHORTENER}, "postgres-0": 512 * MiB, "postgres-1": 512 * MiB}
    assert rows["caddy"]["memory_budget_bytes"] is None and rows["redis"]["memory_budget_bytes"] is None
    assert rows["shortener-1"]["budget_cores"] == 0.5 and rows["shortener-1"]["oom_kills"] == 0
    table = lab.run("status").stdout
    assert "memory budget" in table and "256 MiB" in table


def test_the_cgroup_holds_the_limit_and_the_process_tree(limited):
    lab, groups, cpu = limited
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


def test_top_shows_rss_against_the_memory_budget(limited):
    lab, _, _ = limited
    frame = json.loads(lab.run("top", "--once", "--json").stdout)
    rows = {c["name"]: c for c in frame["components"]}
    assert rows["shortener-1"]["memory_budget_bytes"] == 256 * MiB and rows["shortener-1"]["rss_mib"] < 256
    assert rows["caddy"]["memory_budget_bytes"] is None
    text = lab.run("top", "--once", env={"COLUMNS": "250"}).stdout  # wide: Rich would wrap the cells
    assert "RSS % of memory budget" in text
    assert "of 256 MiB" in next(line for line in text.splitlines() if line.lstrip("│ ").startswith("shortener-1 "))


def test_an_oom_kill_in_a_budgeted_group_is_reported_by_status(limited):
    lab, groups, _ = limited
    group = groups.group(home_tag(lab.home), "shortener-2")
    # A hog inside the instance's group: past the limit the kernel kills the group's biggest process, the hog.
    hog = subprocess.run(group.join_command([sys.executable, "-c", "b = bytearray(400 * 2**20); b[::4096] = "
                                                                   "b'x' * len(b[::4096])"]),
                         capture_output=True, timeout=60)
    assert hog.returncode == -9, hog.stderr
    row = next(c for c in lab.status()["components"] if c["name"] == "shortener-2")
    assert row["oom_kills"] == 1 and "OOM-killed at its memory budget of 256 MiB" in row["detail"], row
    assert row["state"] == "ready", "the instance itself was not the one killed"


def test_bad_memory_budgets_are_refused_in_one_line(limited):
    lab, _, _ = limited
    other = Lab.create(lab.home.parent / "refused", port_start=27650)
    for memory, says in [("postgress=256M", "no component or kind named 'postgress'"),
                         ("redis=lots", "SIZE must be bytes or a number"), ("redis=16M", "below the floor of 32 MiB"),
                         ("redis=100T", "this machine has only"), ("shortener", "is not NAME=SIZE")]:
        result = other.run("up", "shortener", "--memory", memory, check=False)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert not (other.home / "state.json").exists()


def test_down_removes_the_memory_groups(limited):
    lab, groups, cpu = limited
    tag = home_tag(lab.home)
    assert set(SHORTENER) <= set(groups.components(tag))
    lab.run("down")
    assert groups.components(tag) == [] and cpu.components(tag) == []
