"""What one operation costs: core-ms per component and PostgreSQL statements, from outside the services.

Round trips are the first thing to count when a path is slow, so every load run counts them:

- **CPU**: the cumulative CPU time (user + system, and that of exited children: PostgreSQL forks
  a backend per connection) of every component's process tree, read from ``/proc`` before and
  after the load;
- **statements**: ``pg_stat_statements`` on every PostgreSQL server (the lab preloads it; the
  official image takes the same flag), top-level statements only, BEGIN/COMMIT included (each is
  a round trip), the meter's own reads left out.

The idle background (pollers, heartbeats, autovacuum) is measured for a few seconds before the
load and subtracted at the same rate, so what is left is what the operations cost. Divided by
the operations the design says the run completed (its plugin's ``cost_unit``).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

import asyncpg
import psutil

from services.lab import procs
from services.lab.state import LabState

ENABLE = "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
# The meter's own queries carry this marker so that they can be left out of the count.
_COUNT = ("SELECT /* sdlab-cost */ coalesce(sum(calls), 0)::bigint FROM pg_stat_statements "
          "WHERE toplevel AND query NOT LIKE '%sdlab-cost%' AND query NOT LIKE '%pg_stat_statements%'")


@dataclass
class Reading:
    at: float  # time.monotonic()
    cpu_s: dict[str, float]  # component -> CPU seconds of its process tree so far
    pids: dict[str, int] = field(default_factory=dict)  # component -> the pid read (a restart changes it)
    statements: dict[str, int] = field(default_factory=dict)  # PostgreSQL server -> statements so far


def tree_cpu_seconds(proc: psutil.Process) -> float:
    """CPU seconds of a process and its live descendants, with what their exited children used."""
    total = 0.0
    for p in procs.process_tree(proc):
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def postgres_urls(state: LabState) -> dict[str, str]:
    urls = {c.name: state.dialable(c.url) for c in state.components.values() if c.kind == "postgres"}
    urls.update({p["name"]: p["url"] for p in state.external if p.get("kind") == "postgres"})
    return urls


async def _statements(urls: dict[str, str], enable: bool) -> tuple[dict[str, int], dict[str, str]]:
    async def one(name: str, url: str) -> tuple[str, int | None, str | None]:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            return name, None, f"unreachable ({type(exc).__name__})"
        try:
            if enable:
                await conn.execute(ENABLE)
            return name, int(await conn.fetchval(_COUNT)), None
        except asyncpg.PostgresError as exc:
            return name, None, str(exc).splitlines()[0][:160]
        finally:
            await conn.close()

    found, missing = {}, {}
    for name, count, why in await asyncio.gather(*(one(n, u) for n, u in urls.items())):
        if count is None:
            missing[name] = why or "unknown"
        else:
            found[name] = count
    return found, missing


class CostMeter:
    """Readings of a running lab: CPU per component, statements per PostgreSQL server."""

    def __init__(self, state: LabState) -> None:
        self._procs: dict[str, psutil.Process] = {}
        self._urls = postgres_urls(state)
        self.unavailable: dict[str, str] = {}  # server -> why its statements are not counted
        self.refresh(state)
        _, self.unavailable = asyncio.run(_statements(self._urls, enable=True))

    def refresh(self, state: LabState | None) -> None:
        """Follow components that a fault restarted (their CPU so far starts again from zero)."""
        for name, c in (state.components.items() if state else ()):
            known = self._procs.get(name)
            if known is None or known.pid != c.pid:
                proc = c.ref.process()
                if proc is not None:
                    self._procs[name] = proc

    def read(self) -> Reading:
        cpu = {name: tree_cpu_seconds(p) for name, p in self._procs.items()}
        at = time.monotonic()
        counted = {n: u for n, u in self._urls.items() if n not in self.unavailable}
        statements, missing = asyncio.run(_statements(counted, enable=False))
        self.unavailable.update(missing)
        return Reading(at, cpu, statements=statements, pids={name: p.pid for name, p in self._procs.items()})


def _rates(a: Reading, b: Reading) -> tuple[dict[str, float], dict[str, float], float]:
    span = max(b.at - a.at, 1e-6)
    # A component restarted in between (a fault) counts from its new start: what the old process
    # used after ``a`` died with it.
    cpu = {n: max(0.0, b.cpu_s[n] - (a.cpu_s[n] if a.pids.get(n) == b.pids.get(n) else 0.0))
           for n in b.cpu_s if n in a.cpu_s or n not in a.pids}
    statements = {n: b.statements[n] - a.statements[n] for n in b.statements if n in a.statements}
    return cpu, statements, span


def idle_rates(readings: list[Reading]) -> tuple[dict[str, float], dict[str, float], float]:
    """The background per second: per component (and server), the median of the slices between
    consecutive readings. What seeding set off (a checkpoint, connections closing) lasts a second
    or so and would otherwise be subtracted from the run as if it were the steady background."""
    cpu: dict[str, list[float]] = {}
    statements: dict[str, list[float]] = {}
    for a, b in zip(readings, readings[1:]):
        slice_cpu, slice_st, span = _rates(a, b)
        for n, v in slice_cpu.items():
            cpu.setdefault(n, []).append(v / span)
        for n, v in slice_st.items():
            statements.setdefault(n, []).append(v / span)
    span = readings[-1].at - readings[0].at if len(readings) > 1 else 0.0
    return ({n: statistics.median(v) for n, v in cpu.items()},
            {n: statistics.median(v) for n, v in statements.items()}, span)


def cost_per_op(idle: list[Reading], run: tuple[Reading, Reading], op: str, ops: int,
                unavailable: dict[str, str] | None = None) -> dict:
    """``summary.json``'s ``cost_per_op``: core-ms by component and statements per operation, the
    idle background subtracted at its own rate over the run's span."""
    idle_cpu_rate, idle_st_rate, idle_span = idle_rates(idle)
    run_cpu, run_st, run_span = _rates(*run)
    core_ms = {n: max(0.0, v - idle_cpu_rate.get(n, 0.0) * run_span) * 1000 / ops if ops else None
               for n, v in run_cpu.items()}
    statements = {n: max(0.0, v - idle_st_rate.get(n, 0.0) * run_span) / ops if ops else None
                  for n, v in run_st.items()}
    known_ms = [v for v in core_ms.values() if v is not None]
    known_st = [v for v in statements.values() if v is not None]
    return {
        "op": op,
        "ops": ops,
        "window_s": round(run_span, 1),
        "core_ms": {n: round(v, 3) if v is not None else None for n, v in sorted(core_ms.items())},
        "core_ms_total": round(sum(known_ms), 2) if ops and known_ms else None,
        "pg_statements": round(sum(known_st), 2) if ops and known_st else None,
        "pg_statements_by_server": {n: round(v, 2) if v is not None else None for n, v in sorted(statements.items())},
        "idle": {"seconds": round(idle_span, 1),
                 "cores": round(sum(idle_cpu_rate.values()), 3),
                 "cores_by_component": {n: round(v, 3) for n, v in sorted(idle_cpu_rate.items())},
                 "pg_statements_per_s": round(sum(idle_st_rate.values()), 1),
                 "pg_statements_per_s_by_server": {n: round(v, 1) for n, v in sorted(idle_st_rate.items())}},
        "statements_not_counted": dict(unavailable or {}),
    }


def cost_lines(cost: dict | None) -> list[str]:
    """The cost table of a report: one row per component, busiest first, and the totals."""
    if not cost:
        return []
    if not cost.get("ops"):
        return [f"- Cost per {cost.get('op', 'operation')}: no operation completed, nothing to divide by", ""]
    rows = sorted(((n, v) for n, v in cost["core_ms"].items() if v is not None), key=lambda kv: -kv[1])
    statements = cost["pg_statements_by_server"]
    idle = cost["idle"]
    lines = [f"### What one {cost['op']} costs ({cost['ops']:,} of them in {cost['window_s']} s, "
             f"idle background subtracted)", "",
             "| component | core-ms per " + cost["op"] + " | PostgreSQL statements |", "|---|---|---|"]
    for name, value in rows:
        st = statements.get(name)
        lines.append(f"| {name} | {value:.2f} | {'' if st is None else f'{st:.2f}'} |")
    total_st = cost.get("pg_statements")
    lines.append(f"| **total** | **{cost['core_ms_total']:.2f}** | "
                 f"**{'-' if total_st is None else f'{total_st:.2f}'}** |")
    lines += ["", f"Idle before the load: {idle['cores']:.3f} cores, {idle['pg_statements_per_s']:.1f} "
                  f"PostgreSQL statements/s (over {idle['seconds']} s)."]
    if cost.get("statements_not_counted"):
        lines.append("Statements not counted on: " + ", ".join(f"{n} ({why})" for n, why in
                                                              cost["statements_not_counted"].items()) + ".")
    return lines + [""]
