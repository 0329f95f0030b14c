"""Which part limits a run, named from budgets and throttling; and whether a scaling result counts.

A budgeted component is *at its budget* when it used at least 90% of it; its throttled share is
the fraction of CFS periods in which the kernel stopped it. The machine is the bottleneck when
all processes together used at least 90% of its cores: then every budget is moot and a scaling
result says nothing about the design (inconclusive, never a pass). Pure: the timeline's rows in,
sentences and numbers out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

AT_BUDGET = 0.9  # of its budget used: the component is at its budget
MACHINE_BUSY = 0.9  # of the machine's cores used: the machine is the bottleneck
EFFICIENCY_GOAL = 0.8


@dataclass(frozen=True)
class Usage:
    """One budgeted component over a window."""

    component: str
    budget_cores: float
    used_cores: float
    throttled_share: float  # of its CFS periods, 0-1

    @property
    def at_budget(self) -> bool:
        return self.used_cores >= AT_BUDGET * self.budget_cores


def usage_over(rows: Sequence[Mapping], budgets: Mapping[str, float]) -> list[Usage]:
    """Average the timeline's per-second ``budget`` rows (``{component: {"cores", "throttled"}}``)."""
    out = []
    for component, budget in sorted(budgets.items()):
        seen = [r["budget"][component] for r in rows if component in (r.get("budget") or {})]
        if seen:
            out.append(Usage(component, budget, sum(s["cores"] for s in seen) / len(seen),
                             sum(s["throttled"] for s in seen) / len(seen)))
    return out


def usage_with_prefix(rows: Sequence[Mapping], budgets: Mapping[str, float], prefix: str) -> list[Usage]:
    """:func:`usage_over` for the budgeted components whose names start with ``prefix`` (``postgres``: every
    PostgreSQL server; ``postgres-0-``: the first one's replicas, not the first one itself)."""
    return usage_over(rows, {k: v for k, v in budgets.items() if k.startswith(prefix)})


def machine_share(rows: Sequence[Mapping]) -> float | None:
    """The machine's mean busy share (0-1) over rows carrying ``machine_cpu`` (100 = all cores)."""
    seen = [r["machine_cpu"] for r in rows if r.get("machine_cpu") is not None]
    return sum(seen) / len(seen) / 100 if seen else None


def name(usages: Sequence[Usage], machine: float | None) -> str:
    """One line for a report: what limited the run."""
    if machine is not None and machine >= MACHINE_BUSY:
        return (f"bottleneck: the machine ({machine:.0%} of its cores busy); budgets below that are moot "
                "and a scaling result is inconclusive")
    limited = sorted((u for u in usages if u.at_budget), key=lambda u: -u.throttled_share)
    if not limited:
        where = f"the machine {machine:.0%} busy" if machine is not None else "machine use unknown"
        return f"bottleneck: none at its budget ({where}); the limit is elsewhere (latency, the generator, locks)"
    head = limited[0]
    line = (f"bottleneck: {head.component}, at its budget ({head.used_cores:.2f} of {head.budget_cores:g} core), "
            f"throttled {head.throttled_share:.0%} of periods")
    if len(limited) > 1:
        line += f"; also at budget: {', '.join(u.component for u in limited[1:])}"
    return line


@dataclass(frozen=True)
class ScalingPoint:
    n: int
    per_s: float
    scaled_at_budget: bool  # the scaled part was the bottleneck (see ``scaling.scaled_is_bottleneck``)
    machine: float | None  # busy share of the machine's cores


def verdict(points: Sequence[ScalingPoint], goal: float = EFFICIENCY_GOAL) -> dict:
    """Efficiency at each N against N × the one-instance rate, and what the result is worth:
    ``pass`` only when every point's scaled part was the bottleneck and the machine had room;
    ``inconclusive`` when the machine ran out or the scaled part was not at its budget."""
    points = sorted(points, key=lambda p: p.n)
    base = points[0]
    rows, found, why = [], set(), []
    for p in points:
        efficiency = p.per_s / (p.n / base.n * base.per_s) if base.per_s else 0.0
        rows.append({"n": p.n, "per_s": round(p.per_s, 1), "efficiency": round(efficiency, 2),
                     "scaled_at_budget": p.scaled_at_budget,
                     "machine_busy": None if p.machine is None else round(p.machine, 2)})
        if p.machine is not None and p.machine >= MACHINE_BUSY:
            found.add("inconclusive")
            why.append(f"N={p.n}: the machine was {p.machine:.0%} busy")
        elif not p.scaled_at_budget:
            found.add("inconclusive")
            why.append(f"N={p.n}: the scaled part was not at its budget, so something else limited it")
        elif efficiency < goal:
            found.add("fail")  # measured where the result counts: a real miss outranks the rest
            why.append(f"N={p.n}: efficiency {efficiency:.2f} < {goal:g}")
    outcome = "fail" if "fail" in found else "inconclusive" if found else "pass"
    return {"points": rows, "goal": goal, "outcome": outcome, "why": why}
