"""Budgets in local mode: each budgeted component in its own cgroups (CPU, memory), recorded in the state.

The state keeps what was asked (``budget_spec``, ``memory_spec``, so that a component added later,
a new shard, gets its share too) and what each component got (``budgets`` in cores,
``memory_budgets`` in bytes); the groups are named by the lab home's tag, so ``down`` and the next
``up`` after a crash remove exactly this home's groups.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import psutil

from services.lab.budgets import memory as memory_rules
from services.lab.budgets import rules as budget_rules
from services.lab.budgets.cgroups import (
    CgroupsUnavailable,
    CpuGroups,
    CpuSample,
    Group,
    home_tag,
    join_command,
)
from services.lab.budgets.memory_cgroups import MemoryGroups
from services.lab.errors import LabCommandError
from services.lab.state import ComponentStatus, LabState

V = TypeVar("V")


def machine_cores() -> int:
    return os.cpu_count() or 1


def machine_memory() -> int:
    return psutil.virtual_memory().total


def groups() -> CpuGroups:
    try:
        return CpuGroups.detect()
    except CgroupsUnavailable as exc:
        raise LabCommandError(f"--budget cannot work here: {exc}") from None


def memory_groups() -> MemoryGroups:
    try:
        return MemoryGroups.detect()
    except CgroupsUnavailable as exc:
        raise LabCommandError(f"--memory cannot work here: {exc}") from None


def apply(state: LabState, spec: Mapping[str, float], components: Iterable[str],
          memory_spec: Mapping[str, int] | None = None) -> None:
    """Resolve the CPU ``spec`` and the ``memory_spec`` against the stack's components and record
    them; refuses in one line (a bad budget first, then a machine that cannot hold budgets)."""
    components = list(components)
    resolved = budget_rules.resolve(spec, components, machine_cores()) if spec else {}
    limits = memory_rules.resolve(memory_spec, components, machine_memory()) if memory_spec else {}
    kinds = ([groups()] if spec else []) + ([memory_groups()] if memory_spec else [])
    if not kinds:
        return
    state.cgroup_tag = home_tag(state.home)
    for cgroups in kinds:
        cgroups.clean(state.cgroup_tag)  # a crashed run's groups
    state.budget_spec, state.budgets = dict(spec), resolved
    state.memory_spec, state.memory_budgets = dict(memory_spec or {}), limits


def _given(resolved: dict[str, V], spec: Mapping[str, V], name: str) -> V | None:
    """The component's budget; one added after `up` (a new shard) gets it from what was asked."""
    value = resolved.get(name)
    if value is None and spec:
        value = budget_rules.for_component(spec, name)
        if value is not None:
            resolved[name] = value
    return value


def command(state: LabState, name: str, cmd: list[str], user: str | None) -> tuple[list[str], str | None]:
    """The command and user to spawn ``name`` with: inside its groups when it has a budget (a
    component with a CPU and a memory budget joins both before it execs)."""
    cores = _given(state.budgets, state.budget_spec, name)
    limit = _given(state.memory_budgets, state.memory_spec, name)
    if state.cgroup_tag is None or (cores is None and limit is None):
        return cmd, user
    dirs: tuple[Path, ...] = ()
    if cores is not None:
        dirs += groups().create(state.cgroup_tag, name, cores).dirs
    if limit is not None:
        dirs += memory_groups().create(state.cgroup_tag, name, limit).dirs
    return join_command(dirs, cmd, user=user), None


def release(home: Path) -> None:
    """Remove the home's groups once its processes stopped (also after a crash that left no state)."""
    for kind in (CpuGroups, MemoryGroups):
        try:
            cgroups = kind.detect()
        except CgroupsUnavailable:
            continue  # nothing could have been created here
        cgroups.clean(home_tag(home))


def annotate(state: LabState, rows: list[ComponentStatus]) -> None:
    """Each row's budgets; for a memory budget, the OOM kills of its group, and a component the
    kernel killed at its limit says so as the reason it is down."""
    kills = oom_kills(state)
    for row in rows:
        row.budget_cores = state.budgets.get(row.name)
        row.memory_budget_bytes = state.memory_budgets.get(row.name)
        row.oom_kills = kills.get(row.name)
        if not row.oom_kills or row.memory_budget_bytes is None:
            continue
        at = f"at its memory budget of {memory_rules.show(row.memory_budget_bytes)}"
        if row.state == "down":
            row.detail = f"killed by the kernel {at} (out of memory)"
        else:
            row.detail = f"{row.detail}; {row.oom_kills} process(es) OOM-killed {at}".lstrip("; ")


def oom_kills(state: LabState) -> dict[str, int]:
    """Per component with a memory budget: processes of its group the kernel killed at the limit."""
    if not state.memory_budgets or state.cgroup_tag is None:
        return {}
    try:
        cgroups = MemoryGroups.detect()
    except CgroupsUnavailable:
        return {}
    out = {}
    for name in state.memory_budgets:
        try:
            out[name] = cgroups.group(state.cgroup_tag, name).oom_kills()
        except OSError:  # not made yet (a component still to start) or already removed
            continue
    return out


class BudgetSampler:
    """Per budgeted component, each second: cores used and the share of CFS periods throttled."""

    def __init__(self, state: LabState) -> None:
        self._groups: dict[str, Group] = {}
        if state.budgets and state.cgroup_tag:
            cgroups = groups()
            self._groups = {n: cgroups.group(state.cgroup_tag, n) for n in state.budgets}
        self._last: dict[str, tuple[float, CpuSample]] = {}
        self.sample()

    def sample(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, group in self._groups.items():
            try:
                now, reading = time.monotonic(), group.sample()
            except OSError:  # the group went with its component (a fault): nothing to say this second
                continue
            last = self._last.get(name)
            self._last[name] = (now, reading)
            if last is None or now <= last[0]:
                continue
            periods = reading.periods - last[1].periods
            out[name] = {"cores": round((reading.usage_s - last[1].usage_s) / (now - last[0]), 3),
                         "throttled": round((reading.throttled_periods - last[1].throttled_periods) / periods, 3)
                         if periods > 0 else 0.0}
        return out
