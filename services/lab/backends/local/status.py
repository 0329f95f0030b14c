"""The local backend's ``sdlab status``: each process asked the question its clients would ask, replicas'
roles and lag, budgets and OOM kills beside them."""

from __future__ import annotations

import asyncio

from services.lab.backends.local.probes import external_probe, try_probe
from services.lab.backends.local.supervisor import watched_state
from services.lab.budgets import local as local_budgets
from services.lab.config import LabSettings
from services.lab.replication import status as replication_status
from services.lab.state import ComponentStatus, LabState, RunningComponent


async def _status_of(c: RunningComponent) -> ComponentStatus:
    ref = c.ref
    if not ref.alive():
        return ComponentStatus(c.name, c.kind, None, c.address, "down", "process gone")
    if ref.paused():
        return ComponentStatus(c.name, c.kind, c.pid, c.address, "paused", "SIGSTOP")
    state, reason = await try_probe(c.kind, c.address, c.url)
    return ComponentStatus(c.name, c.kind, c.pid, c.address, state, reason)


async def _status_of_external(part: dict[str, str]) -> ComponentStatus:
    try:
        await asyncio.wait_for(external_probe(part["kind"], part["url"]), 2.0)
        return ComponentStatus(part["name"], part["kind"], None, part["url"], "external", "reachable")
    except Exception as exc:  # reported, not raised: status must show every row
        return ComponentStatus(part["name"], part["kind"], None, part["url"], "external-down", str(exc)[:120])


def status(settings: LabSettings) -> tuple[LabState, list[ComponentStatus]]:
    state = watched_state(settings)

    async def gather() -> list[ComponentStatus]:
        rows = list(
            await asyncio.gather(
                *(_status_of(c) for c in state.components.values()),
                *(_status_of_external(p) for p in state.external),
            )
        )
        await replication_status.annotate(list(state.components.values()), rows)
        return rows

    rows = asyncio.run(gather())
    local_budgets.annotate(state, rows)
    return state, rows
