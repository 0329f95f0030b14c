"""Real limits on this kernel: a busy loop in a 0.2-core group is held to its share, and a process
that wants more memory than its group's limit is killed by the kernel (the group counts it)."""

import subprocess
import sys
import time
import uuid

import pytest

from services.lab.budgets import local
from services.lab.budgets.cgroups import CgroupsUnavailable, CpuGroups, join_command
from services.lab.budgets.memory_cgroups import MemoryGroups
from services.lab.state import ComponentStatus, LabState

MiB = 2**20
# Every page written, so the memory is really charged (an untouched allocation may stay unbacked).
ALLOCATE = ("import sys; b = bytearray(int(sys.argv[1]) * 2**20); b[::4096] = b'x' * len(b[::4096]); "
            "print('kept')")


def test_a_busy_loop_is_held_to_its_budget_and_the_group_says_it_was_throttled():
    try:
        groups = CpuGroups.detect()
    except CgroupsUnavailable as exc:
        pytest.skip(str(exc))
    tag = "test-" + uuid.uuid4().hex[:8]
    group = groups.create(tag, "busy", 0.2)
    try:
        before = group.sample()
        proc = subprocess.Popen(group.join_command([sys.executable, "-c", "while True: pass"]))
        start = time.monotonic()
        time.sleep(2.0)
        proc.kill()
        proc.wait()
        wall = time.monotonic() - start
        after = group.sample()
        used = after.usage_s - before.usage_s
        # A quota is a ceiling: however busy the machine, the loop never gets more than its share
        # (plus one period of slack); it wants a whole core, so it is throttled in most periods.
        assert used <= 0.2 * wall + 0.1, f"{used:.2f} s of CPU in {wall:.2f} s under a 0.2-core budget"
        assert used > 0.05, "the process ran inside the group"
        assert after.throttled_periods - before.throttled_periods >= 5
    finally:
        groups.clean(tag)
    assert tag not in [p.name for p in (groups.cpu_root / "sdlab").iterdir()]


@pytest.fixture
def memory_groups():
    try:
        groups = MemoryGroups.detect()
    except CgroupsUnavailable as exc:
        pytest.skip(str(exc))
    tag = "test-" + uuid.uuid4().hex[:8]
    try:
        yield groups, tag
    finally:
        groups.clean(tag)
    assert tag not in [p.name for p in (groups.roots[0] / "sdlab").iterdir()]


def _allocate(group, mib: int) -> subprocess.CompletedProcess:
    return subprocess.run(group.join_command([sys.executable, "-c", ALLOCATE, str(mib)]), capture_output=True,
                          text=True, timeout=60)


def test_a_process_past_its_memory_budget_is_oom_killed_and_the_group_counts_it(memory_groups):
    groups, tag = memory_groups
    group = groups.create(tag, "hungry", 64 * MiB)
    assert group.limit_bytes() == 64 * MiB
    before = group.oom_kills()
    done = _allocate(group, 200)
    # No swap to hide in (memory + swap is held to the limit too): the kernel kills it (SIGKILL).
    assert done.returncode == -9 and "kept" not in done.stdout, (done.returncode, done.stdout, done.stderr)
    assert group.oom_kills() == before + 1


def test_a_process_within_its_memory_budget_runs_to_the_end(memory_groups):
    groups, tag = memory_groups
    group = groups.create(tag, "modest", 64 * MiB)
    done = _allocate(group, 20)
    assert done.returncode == 0 and "kept" in done.stdout, (done.returncode, done.stderr)
    assert group.oom_kills() == 0


def test_a_process_with_both_budgets_is_in_its_cpu_group_and_its_memory_group(memory_groups):
    groups, tag = memory_groups
    try:
        cpu = CpuGroups.detect()
    except CgroupsUnavailable as exc:
        pytest.skip(str(exc))
    try:
        dirs = cpu.create(tag, "both", 0.5).dirs + groups.create(tag, "both", 64 * MiB).dirs
        done = subprocess.run(join_command(dirs, ["cat", "/proc/self/cgroup"]), capture_output=True, text=True,
                              timeout=30, check=True)
    finally:
        cpu.clean(tag)
    mine = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in done.stdout.splitlines()}
    path = f"/sdlab/{tag}/both"
    if groups.version == 1:  # v1: one line per hierarchy, named by its controllers
        assert mine["memory"] == path and path in {mine.get("cpu"), mine.get("cpu,cpuacct")}, mine
    else:
        assert mine[""] == path, mine


def test_local_mode_s_glue_on_this_kernel_an_oom_kill_is_the_reason_status_gives(tmp_path):
    """apply -> the spawn command -> the kernel's kill -> status's reason -> release, without a stack."""
    try:
        MemoryGroups.detect()
    except CgroupsUnavailable as exc:
        pytest.skip(str(exc))
    state = LabState(home=tmp_path / "home", marker="m", designs=[])
    local.apply(state, {}, ["hog-1", "calm-1"], {"hog": 64 * MiB, "calm": 64 * MiB})
    try:
        procs = {name: subprocess.Popen(local.command(state, name, [sys.executable, "-c", ALLOCATE, str(mib)],
                                                      None)[0], stdout=subprocess.DEVNULL)
                 for name, mib in (("hog-1", 200), ("calm-1", 20))}
        codes = {name: p.wait(timeout=60) for name, p in procs.items()}
        assert codes == {"hog-1": -9, "calm-1": 0}
        rows = [ComponentStatus("hog-1", "app", None, "", "down", "process gone"),
                ComponentStatus("calm-1", "app", None, "", "down", "process gone")]
        local.annotate(state, rows)
        assert rows[0].detail == "killed by the kernel at its memory budget of 64 MiB (out of memory)"
        assert (rows[1].detail, rows[1].oom_kills) == ("process gone", 0)
    finally:
        local.release(state.home)
    assert MemoryGroups.detect().components(state.cgroup_tag) == []
