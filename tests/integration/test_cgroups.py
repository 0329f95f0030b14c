"""A real quota on this kernel: a busy loop in a 0.2-core group is held to its share."""

import subprocess
import sys
import time
import uuid

import pytest

from services.lab.budgets.cgroups import CgroupsUnavailable, CpuGroups


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
