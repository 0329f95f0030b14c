"""Local mode's budget glue (state, the command a component is spawned with, status, cleanup) on
fake v1 cgroup trees; the kernel's side is in tests/integration/test_cgroups.py."""

import functools

import pytest

from services.lab.budgets import local
from services.lab.budgets.cgroups import CpuGroups, home_tag
from services.lab.budgets.memory_cgroups import MemoryGroups
from services.lab.errors import LabCommandError
from services.lab.state import ComponentStatus, LabState
from tests.support.cgroupfs import rmdir_like_cgroupfs
from tests.unit.lab.test_cgroups import v1_tree as cpu_tree
from tests.unit.lab.test_memory_cgroups import v1_tree as memory_tree

MiB = 2**20
DETECT_CPU, DETECT_MEMORY = CpuGroups.detect, MemoryGroups.detect
STACK = ["caddy", "redis", "postgres-0", "postgres-1", "shortener-1", "shortener-2"]


@pytest.fixture
def fs(tmp_path, monkeypatch):
    root = tmp_path / "cgroup"
    cpu_tree(root)
    memory_tree(root)
    monkeypatch.setattr(CpuGroups, "detect", functools.partial(DETECT_CPU, root))
    monkeypatch.setattr(MemoryGroups, "detect", functools.partial(DETECT_MEMORY, root))
    monkeypatch.setattr(local, "machine_memory", lambda: 4096 * MiB)
    monkeypatch.setattr(local, "machine_cores", lambda: 2)
    rmdir_like_cgroupfs(monkeypatch)
    return root


def state(tmp_path) -> LabState:
    return LabState(home=tmp_path / "home", marker="m", designs=["shortener"])


def test_memory_alone_is_resolved_and_recorded(fs, tmp_path):
    s = state(tmp_path)
    local.apply(s, {}, STACK, {"shortener": 256 * MiB, "postgres-1": 64 * MiB})
    assert s.memory_budgets == {"shortener-1": 256 * MiB, "shortener-2": 256 * MiB, "postgres-1": 64 * MiB}
    assert s.budgets == {} and s.cgroup_tag == home_tag(s.home)


def test_a_component_with_both_budgets_joins_both_groups_before_exec(fs, tmp_path):
    s = state(tmp_path)
    local.apply(s, {"shortener": 0.25}, STACK, {"shortener": 256 * MiB, "postgres": 128 * MiB})
    cmd, user = local.command(s, "shortener-1", ["python", "-m", "app"], "nobody")
    tag = s.cgroup_tag
    memory_dir = fs / "memory" / "sdlab" / tag / "shortener-1"
    for d in (fs / "cpu" / "sdlab" / tag / "shortener-1", fs / "cpuacct" / "sdlab" / tag / "shortener-1", memory_dir):
        assert f"echo $$ > {d / 'cgroup.procs'}" in cmd[2]
    assert user is None and "setpriv --reuid=nobody" in cmd[2] and cmd[-3:] == ["python", "-m", "app"]
    assert (memory_dir / "memory.limit_in_bytes").read_text() == str(256 * MiB)
    # Memory only: no CPU group; and a shard added after `up` gets its kind's budget.
    cmd, _ = local.command(s, "postgres-2", ["postgres"], None)
    assert "memory/sdlab" in cmd[2] and "/cpu/" not in cmd[2] and s.memory_budgets["postgres-2"] == 128 * MiB
    assert local.command(s, "caddy", ["caddy", "run"], None) == (["caddy", "run"], None)


def test_refusals_are_one_line(fs, tmp_path, monkeypatch):
    for memory, says in [({"postgress": 64 * MiB}, "no component or kind named 'postgress'"),
                         ({"redis": 16 * MiB}, "below the floor of 32 MiB"),
                         ({"redis": 8192 * MiB}, "this machine has only 4 GiB")]:
        with pytest.raises(LabCommandError, match=says) as err:
            local.apply(state(tmp_path), {}, STACK, memory)
        assert "\n" not in str(err.value)
    monkeypatch.setattr(MemoryGroups, "detect", functools.partial(DETECT_MEMORY, tmp_path / "nothing"))
    with pytest.raises(LabCommandError, match="--memory cannot work here: memory budgets need the cgroup memory"):
        local.apply(state(tmp_path), {}, STACK, {"redis": 64 * MiB})


def test_status_names_an_oom_kill_as_the_reason_a_component_is_down(fs, tmp_path):
    s = state(tmp_path)
    local.apply(s, {"redis": 0.5}, STACK, {"shortener": 64 * MiB, "redis": 64 * MiB})
    for name in ("shortener-1", "shortener-2", "redis"):
        local.command(s, name, ["x"], None)
    groups = MemoryGroups.detect()
    (groups.group(s.cgroup_tag, "shortener-1").dirs[0] / "memory.oom_control").write_text("under_oom 0\noom_kill 1\n")
    (groups.group(s.cgroup_tag, "shortener-2").dirs[0] / "memory.oom_control").write_text("under_oom 0\noom_kill 3\n")
    (groups.group(s.cgroup_tag, "redis").dirs[0] / "memory.oom_control").write_text("under_oom 0\noom_kill 0\n")
    rows = [ComponentStatus("shortener-1", "app", None, "a", "down", "process gone"),
            ComponentStatus("shortener-2", "app", 12, "b", "ready", "200"),
            ComponentStatus("redis", "redis", 13, "c", "ready", "PONG"),
            ComponentStatus("caddy", "caddy", 14, "d", "ready", "200")]
    local.annotate(s, rows)
    down, alive, redis, caddy = rows
    assert down.detail == "killed by the kernel at its memory budget of 64 MiB (out of memory)" and down.oom_kills == 1
    assert alive.detail == "200; 3 process(es) OOM-killed at its memory budget of 64 MiB" and alive.state == "ready"
    assert (redis.detail, redis.oom_kills, redis.budget_cores, redis.memory_budget_bytes) == ("PONG", 0, 0.5, 64 * MiB)
    assert (caddy.memory_budget_bytes, caddy.oom_kills, caddy.budget_cores) == (None, None, None)


def test_release_removes_the_groups_of_both_kinds(fs, tmp_path):
    s = state(tmp_path)
    local.apply(s, {"redis": 0.5}, STACK, {"redis": 64 * MiB, "postgres": 64 * MiB})
    for name in ("redis", "postgres-0"):
        local.command(s, name, ["x"], None)
    assert MemoryGroups.detect().components(s.cgroup_tag) == ["postgres-0", "redis"]
    local.release(s.home)
    assert MemoryGroups.detect().components(s.cgroup_tag) == [] == CpuGroups.detect().components(s.cgroup_tag)
