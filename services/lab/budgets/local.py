"""CPU budgets in local mode: each budgeted component in its own cgroup, recorded in the state.

The state keeps what was asked (``budget_spec``, so that a component added later, a new shard,
gets its share too) and what each component got (``budgets``); the groups are named by the lab
home's tag, so ``down`` and the next ``up`` after a crash remove exactly this home's groups.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from services.lab.budgets import rules as budget_rules
from services.lab.budgets.cgroups import (
    CgroupsUnavailable,
    CpuGroups,
    CpuSample,
    Group,
    home_tag,
)
from services.lab.errors import LabCommandError
from services.lab.state import LabState


def machine_cores() -> int:
    return os.cpu_count() or 1


def groups() -> CpuGroups:
    try:
        return CpuGroups.detect()
    except CgroupsUnavailable as exc:
        raise LabCommandError(f"--budget cannot work here: {exc}") from None


def apply(state: LabState, spec: Mapping[str, float], components: Iterable[str]) -> None:
    """Resolve ``spec`` against the stack's components and record it; refuses in one line."""
    if not spec:
        return
    resolved = budget_rules.resolve(spec, components, machine_cores())
    cgroups = groups()
    state.cgroup_tag = home_tag(state.home)
    cgroups.clean(state.cgroup_tag)  # a crashed run's groups
    state.budget_spec = dict(spec)
    state.budgets = resolved


def command(state: LabState, name: str, cmd: list[str], user: str | None) -> tuple[list[str], str | None]:
    """The command and user to spawn ``name`` with: inside its group when it has a budget."""
    cores = state.budgets.get(name)
    if cores is None and state.budget_spec:
        cores = budget_rules.for_component(state.budget_spec, name)  # added after `up` (a new shard)
        if cores is not None:
            state.budgets[name] = cores
    if cores is None or state.cgroup_tag is None:
        return cmd, user
    group = groups().create(state.cgroup_tag, name, cores)
    return group.join_command(cmd, user=user), None


def release(home: Path) -> None:
    """Remove the home's groups once its processes stopped (also after a crash that left no state)."""
    try:
        cgroups = CpuGroups.detect()
    except CgroupsUnavailable:
        return  # nothing could have been created here
    cgroups.clean(home_tag(home))


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
