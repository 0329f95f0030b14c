"""The cgroup layer against fake cgroup trees (plain folders laid out like v1 and v2); the real
kernel is exercised by tests/integration/test_cgroups.py."""

from pathlib import Path

import pytest

from services.lab.budgets.cgroups import CgroupsUnavailable, CpuGroups, home_tag
from tests.support.cgroupfs import rmdir_like_cgroupfs


def v1_tree(root: Path) -> Path:
    for name, files in {"cpu": {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000", "cgroup.procs": ""},
                        "cpuacct": {"cpuacct.usage": "0", "cgroup.procs": ""}}.items():
        (root / name).mkdir(parents=True)
        for f, text in files.items():
            (root / name / f).write_text(text)
    return root


def v2_tree(root: Path, under: str = "") -> Path:
    unified = root / under if under else root
    unified.mkdir(parents=True, exist_ok=True)
    (unified / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (unified / "cgroup.subtree_control").write_text("")
    (unified / "cgroup.procs").write_text("")
    return root


def test_v1_groups_get_a_quota_and_read_usage_from_cpuacct(tmp_path):
    groups = CpuGroups.detect(v1_tree(tmp_path))
    assert groups.version == 1
    group = groups.create("home1", "postgres-0", 0.08)
    cpu, acct = group.dirs
    assert (cpu / "cpu.cfs_quota_us").read_text() == "1600" and (cpu / "cpu.cfs_period_us").read_text() == "20000"
    assert group.cores() == pytest.approx(0.08)
    (cpu / "cpu.stat").write_text("nr_periods 50\nnr_throttled 40\nthrottled_time 2500000000\n")
    (acct / "cpuacct.usage").write_text("400000000")
    sample = group.sample()
    assert (sample.usage_s, sample.periods, sample.throttled_periods, sample.throttled_s) == (0.4, 50, 40, 2.5)


def test_v2_groups_enable_the_cpu_controller_on_the_way_down_and_write_cpu_max(tmp_path):
    groups = CpuGroups.detect(v2_tree(tmp_path, "unified"))
    assert groups.version == 2 and groups.cpu_root == tmp_path / "unified"
    group = groups.create("home1", "shop-1", 0.25)
    assert group.dirs == (tmp_path / "unified" / "sdlab" / "home1" / "shop-1",)
    assert (tmp_path / "unified" / "cgroup.subtree_control").read_text() == "+cpu"
    assert (tmp_path / "unified" / "sdlab" / "home1" / "cgroup.subtree_control").read_text() == "+cpu"
    assert (group.dirs[0] / "cpu.max").read_text() == "5000 20000" and group.cores() == 0.25
    (group.dirs[0] / "cpu.stat").write_text("usage_usec 1500000\nnr_periods 10\nnr_throttled 3\nthrottled_usec 200000\n")
    assert group.sample().usage_s == 1.5 and group.sample().throttled_s == 0.2


def test_join_command_joins_every_hierarchy_before_exec(tmp_path):
    group = CpuGroups.detect(v1_tree(tmp_path)).create("h", "redis", 0.5)
    argv = group.join_command(["redis-server", "--port", "6379"])
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["sh", "redis-server", "--port", "6379"]
    for d in group.dirs:
        assert f"echo $$ > {d / 'cgroup.procs'}" in argv[2]
    assert argv[2].endswith('exec "$@"')
    as_nobody = group.join_command(["postgres"], user="nobody")
    assert "exec setpriv --reuid=nobody --regid=" in as_nobody[2] and as_nobody[2].endswith('--clear-groups -- "$@"')


def test_clean_removes_only_this_homes_groups(tmp_path, monkeypatch):
    rmdir_like_cgroupfs(monkeypatch)
    groups = CpuGroups.detect(v1_tree(tmp_path))
    groups.create("mine", "postgres-0", 0.1)
    groups.create("mine", "redis", 0.1)
    groups.create("theirs", "redis", 0.1)
    assert groups.clean("mine") == ["postgres-0", "redis"]
    assert groups.components("mine") == [] and groups.components("theirs") == ["redis"]
    assert not (tmp_path / "cpuacct" / "sdlab" / "mine").exists()


def test_no_cpu_controller_or_no_write_access_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(CgroupsUnavailable, match="neither cgroup v2 cpu.max nor v1 cpu.cfs_quota_us"):
        CpuGroups.detect(tmp_path)
    v1_tree(tmp_path)
    monkeypatch.setattr("services.lab.budgets.cgroups.os.access", lambda path, mode: False)
    with pytest.raises(CgroupsUnavailable, match="is not writable by this user") as err:
        CpuGroups.detect(tmp_path)
    assert "\n" not in str(err.value)


def test_home_tag_is_stable_and_tells_homes_apart(tmp_path):
    assert home_tag(tmp_path / "a") == home_tag(tmp_path / "a") != home_tag(tmp_path / "b")


def test_a_tiny_budget_gets_a_longer_period_so_its_quota_stays_above_the_kernels_floor(tmp_path):
    group = CpuGroups.detect(v1_tree(tmp_path)).create("h", "postgres-1", 0.02)
    cpu = group.dirs[0]
    assert (cpu / "cpu.cfs_quota_us").read_text() == "1000" and (cpu / "cpu.cfs_period_us").read_text() == "50000"
    assert group.cores() == 0.02
