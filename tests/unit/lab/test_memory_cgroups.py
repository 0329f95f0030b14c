"""The memory groups against fake cgroup trees (plain folders laid out like v1 and v2); the real
kernel is exercised by tests/integration/test_cgroups.py."""

from pathlib import Path

import pytest

from services.lab.budgets import memory_cgroups
from services.lab.budgets.cgroups import CgroupsUnavailable
from services.lab.budgets.memory_cgroups import MemoryGroups
from tests.support.cgroupfs import rmdir_like_cgroupfs

MiB = 2**20
V1_UNLIMITED = "9223372036854771712"


def v1_tree(root: Path, swap: bool = True) -> Path:
    memory = root / "memory"
    memory.mkdir(parents=True)
    files = {"memory.limit_in_bytes": V1_UNLIMITED, "cgroup.procs": ""}
    if swap:
        files["memory.memsw.limit_in_bytes"] = V1_UNLIMITED
    for f, text in files.items():
        (memory / f).write_text(text)
    return root


def leftover(groups: MemoryGroups, tag: str, component: str, files: dict[str, str]) -> Path:
    """A group as the kernel lays it out (a cgroupfs makes the control files with the directory)."""
    d = groups.group(tag, component).dirs[0]
    d.mkdir(parents=True)
    for f, text in files.items():
        (d / f).write_text(text)
    return d


def test_v1_a_new_group_gets_the_limit_and_the_same_memory_plus_swap_limit(tmp_path, monkeypatch):
    groups = MemoryGroups.detect(v1_tree(tmp_path))
    assert groups.version == 1 and groups.roots == (tmp_path / "memory",)
    d = leftover(groups, "home1", "shortener-1", {"memory.limit_in_bytes": V1_UNLIMITED,
                                                   "memory.memsw.limit_in_bytes": V1_UNLIMITED})
    written = []
    real = memory_cgroups.write
    monkeypatch.setattr(memory_cgroups, "write", lambda path, text: (written.append(path.name), real(path, text)))
    group = groups.create("home1", "shortener-1", 256 * MiB)
    assert group.dirs == (tmp_path / "memory" / "sdlab" / "home1" / "shortener-1",) == (d,)
    # Lowering from unlimited: memory first (the kernel refuses memory+swap below memory).
    assert written == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    assert (d / "memory.memsw.limit_in_bytes").read_text() == str(256 * MiB)
    assert group.limit_bytes() == 256 * MiB
    written.clear()
    groups.create("home1", "shortener-1", 512 * MiB)  # raising (a restart with a larger budget): swap first
    assert written == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_v1_without_swap_accounting_sets_the_limit_alone(tmp_path):
    group = MemoryGroups.detect(v1_tree(tmp_path, swap=False)).create("h", "redis", 64 * MiB)
    assert (group.dirs[0] / "memory.limit_in_bytes").read_text() == str(64 * MiB)
    assert not (group.dirs[0] / "memory.memsw.limit_in_bytes").exists()


def test_v1_reads_usage_and_oom_kills_and_an_unlimited_group(tmp_path):
    groups = MemoryGroups.detect(v1_tree(tmp_path))
    d = leftover(groups, "h", "postgres-0", {"memory.limit_in_bytes": V1_UNLIMITED,
                                             "memory.usage_in_bytes": "52428800",
                                             "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"})
    group = groups.group("h", "postgres-0")
    assert group.limit_bytes() is None and group.usage_bytes() == 50 * MiB and group.oom_kills() == 2
    assert group.dirs == (d,)


def test_v2_enables_the_memory_controller_on_the_way_down_and_forbids_swap(tmp_path):
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (unified / "cgroup.subtree_control").write_text("cpu\n")
    groups = MemoryGroups.detect(tmp_path)
    assert groups.version == 2 and groups.roots == (unified,)
    d = leftover(groups, "home1", "shop-1", {"memory.swap.max": "max"})
    group = groups.create("home1", "shop-1", 128 * MiB)
    assert (unified / "cgroup.subtree_control").read_text() == "+memory"
    assert (unified / "sdlab" / "home1" / "cgroup.subtree_control").read_text() == "+memory"
    assert (d / "memory.max").read_text() == str(128 * MiB) and (d / "memory.swap.max").read_text() == "0"
    assert group.limit_bytes() == 128 * MiB
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n")
    (d / "memory.current").write_text("1048576\n")
    assert group.oom_kills() == 1 and group.usage_bytes() == MiB
    (d / "memory.max").write_text("max\n")
    assert group.limit_bytes() is None


def test_a_unified_hierarchy_without_the_memory_controller_falls_back_to_v1(tmp_path):
    """This lab's machines: a v2 mount at unified/ with hugetlb only, memory in v1."""
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    assert MemoryGroups.detect(v1_tree(tmp_path)).version == 1


def test_no_memory_controller_or_no_write_access_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(CgroupsUnavailable, match="neither cgroup v2 memory.max nor v1 memory.limit_in_bytes"):
        MemoryGroups.detect(tmp_path)
    v1_tree(tmp_path)
    monkeypatch.setattr("services.lab.budgets.cgroups.os.access", lambda path, mode: False)
    with pytest.raises(CgroupsUnavailable, match="memory budgets need cgroups the lab can create") as err:
        MemoryGroups.detect(tmp_path)
    assert "\n" not in str(err.value)


def test_clean_removes_only_this_homes_groups(tmp_path, monkeypatch):
    rmdir_like_cgroupfs(monkeypatch)
    groups = MemoryGroups.detect(v1_tree(tmp_path, swap=False))
    for tag, name in (("mine", "postgres-0"), ("mine", "redis"), ("theirs", "redis")):
        groups.create(tag, name, 64 * MiB)
    assert groups.clean("mine") == ["postgres-0", "redis"]
    assert groups.components("mine") == [] and groups.components("theirs") == ["redis"]
