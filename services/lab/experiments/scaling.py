"""The scaling experiment any design can register: 1, 2, 4 of one component, each a small machine.

Every copy of the scaled component gets the same small CPU budget, so that it, not the shared
machine, runs out first; the load offers more than the largest variant carries (open loop). A
result counts only where it can: efficiency ``throughput(N) / (N x throughput(1))`` at least 0.8
at every N, with the scaled component the bottleneck (:func:`scaled_is_bottleneck`: the most
throttled component at its budget is one of its copies, and the copies together used at least
80% of their budgets) and the machine below 90% busy. When the machine ran out, or the scaled part
was not the bottleneck, the result is inconclusive, which fails the experiment rather than passing it.
An optional last variant lifts the scaled part's budget to show where the wall moves next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.lab.budgets import bottleneck
from services.lab.budgets.rules import kind_of
from services.lab.experiments.experiment import (
    AfterLoad,
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec
from services.lab.report import charts as report


@dataclass(frozen=True)
class Scaling:
    """What is scaled and how: ``component`` is a kind (``postgres``), ``size`` turns N into the
    variant's topology (``lambda n: {"instances": n}``), ``budgets`` are the other components'."""

    component: str
    budget: float
    size: Callable[[int], dict]
    counts: tuple[int, ...] = (1, 2, 4)
    budgets: dict[str, float] = field(default_factory=dict)
    lifted: float | None = None  # the scaled part's budget in the last, "where next" variant
    # Components of the scaled kind that are not scaled (a coordinator beside the shards); give
    # them their own entry in ``budgets``.
    fixed: tuple[str, ...] = ()
    # The variant's load overrides at N (e.g. requests in flight growing with N: a throttled copy
    # with a deep queue answers its own deadlines late, which measures timeouts, not capacity).
    load: Callable[[int], dict] = lambda n: {}
    unit: str = "req/s"
    throughput: Callable[[dict], float] = lambda summary: summary["achieved_rps"]
    # The timeline's seconds the bottleneck and the machine are read over: every one, unless the
    # design's load has phases that are not its operations (a generator that connects its users first,
    # and a budgeted part idle meanwhile would read as below its budget).
    window: Callable[[list[dict]], list[dict]] = lambda rows: rows


def variant_name(n: int, what: str) -> str:
    """``1 shard``, ``2 shards``: ``what`` is the plural."""
    return f"{n} {what[:-1] if n == 1 and what.endswith('s') else what}"


# Load never spreads perfectly: with several copies the hottest one is at its budget at any moment
# and the others close behind, and which one it is moves. The scaled part counts as the bottleneck
# when the most throttled component at its budget is one of its copies and the copies together
# used at least this share of their budgets.
SCALED_SHARE = 0.8


def scaled_is_bottleneck(scaled: list[bottleneck.Usage], head: bottleneck.Usage | None) -> bool:
    if not scaled or head is None or not head.at_budget or head not in scaled:
        return False
    return sum(u.used_cores for u in scaled) >= SCALED_SHARE * sum(u.budget_cores for u in scaled)


def _point(scaling: Scaling, n: int, r: VariantResult) -> dict:
    budgets = r.summary.get("budgets") or {}
    timeline = scaling.window(r.load.timeline)
    usages = bottleneck.usage_over(timeline, budgets)
    scaled = [u for u in usages if kind_of(u.component) == scaling.component and u.component not in scaling.fixed]
    machine = bottleneck.machine_share(timeline)
    head = max(usages, key=lambda u: (u.at_budget, u.throttled_share), default=None)
    return {"n": n, "throughput": round(scaling.throughput(r.summary), 1),
            "bottleneck": bottleneck.name(usages, machine),
            "bottleneck_component": head.component if head is not None and head.at_budget else None,
            "bottleneck_throttled_pct": round(100 * head.throttled_share, 1) if head is not None else None,
            "scaled_used_cores": [round(u.used_cores, 3) for u in scaled],
            "scaled_at_budget": scaled_is_bottleneck(scaled, head),
            "machine_cpu_pct": None if machine is None else round(100 * machine, 1)}


def scaling_experiment(*, name: str, title: str, question: str, load: LoadSpec, scaling: Scaling,
                       what: str, after_load: AfterLoad | None = None,
                       columns: list[tuple[str, Callable[[VariantResult], str]]] | None = None) -> Experiment:
    """``what`` names the copies in variant names ("instances", "shards"); ``after_load`` and
    ``columns`` are the design's own figures (its throughput may be read from what they add)."""

    def budgets_for(cores: float) -> dict[str, float]:
        return {**scaling.budgets, scaling.component: cores}

    variants = [Variant(variant_name(n, what), budgets=budgets_for(scaling.budget), load=scaling.load(n),
                        **scaling.size(n)) for n in scaling.counts]
    if scaling.lifted is not None:
        top = scaling.counts[-1]
        variants.append(Variant(f"{top} {what}, budget lifted", budgets=budgets_for(scaling.lifted),
                                load=scaling.load(top), **scaling.size(top)))

    def measured(results: dict[str, VariantResult]) -> list[tuple[int, VariantResult]]:
        by_name = {v.name: n for n, v in zip(scaling.counts, variants)}
        return [(by_name[k], r) for k, r in results.items() if k in by_name]

    def evaluate(results: dict[str, VariantResult]) -> Outcome:
        points = [_point(scaling, n, r) for n, r in measured(results)]
        judged = bottleneck.verdict([bottleneck.ScalingPoint(p["n"], p["throughput"], p["scaled_at_budget"],
                                                             None if p["machine_cpu_pct"] is None
                                                             else p["machine_cpu_pct"] / 100) for p in points])
        efficiency = {str(p["n"]): p["efficiency"] for p in judged["points"] if p["n"] != scaling.counts[0]}
        detail = "; ".join(f"N={p['n']}: {p['throughput']:,.0f} {scaling.unit}, efficiency "
                           f"{efficiency.get(str(p['n']), 1.0):.2f}, machine {p['machine_cpu_pct']}%"
                           for p in points)
        checks = [Check(f"efficiency >= {judged['goal']:g} at every N with the budgeted {scaling.component} the "
                        "bottleneck and the machine below 90% busy", judged["outcome"] == "pass",
                        f"{judged['outcome']}: {detail}" + (f" ({'; '.join(judged['why'])})" if judged["why"] else ""))]
        lifted = [r for k, r in results.items() if k.endswith("budget lifted")]
        claim = (f"With each {scaling.component} held to {scaling.budget:g} core: "
                 + ", ".join(f"{variant_name(p['n'], what)} {p['throughput']:,.0f} {scaling.unit}" for p in points)
                 + f" (efficiency {', '.join(f'{e:.2f} at N={n}' for n, e in efficiency.items())}); "
                 + {"pass": "the scaled part was the bottleneck at every N, so adding it added throughput.",
                    "fail": "the scaled part was the bottleneck, yet throughput did not grow in proportion.",
                    "inconclusive": "inconclusive: " + "; ".join(judged["why"]) + "."}[judged["outcome"]])
        facts: dict = {f"N={p['n']}": p["bottleneck"] for p in points}
        if lifted:
            facts["budget lifted"] = (f"{scaling.throughput(lifted[0].summary):,.0f} {scaling.unit}; "
                                      f"{_point(scaling, scaling.counts[-1], lifted[0])['bottleneck']}")
        record = {"component": scaling.component, "budget_cores": scaling.budget, "unit": scaling.unit,
                  "points": points, "efficiency": efficiency, "outcome": judged["outcome"]}
        return Outcome(checks, claim, facts, record={"scaling": record})

    def charts(out: Path, results: dict[str, VariantResult]) -> list[Path]:
        points = [_point(scaling, n, r) for n, r in measured(results)]
        return [report.scaling_chart(points, scaling, out / "scaling.png", name, what)] if points else []

    return Experiment(name=name, title=title, question=question, load=replace(load, faults=""), variants=variants,
                      evaluate=evaluate, charts=charts, after_load=after_load,
                      columns=[*(columns or []), ("bottleneck", lambda r: _point(scaling, 0, r)["bottleneck"])])
