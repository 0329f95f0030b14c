"""The capacity experiment any design can register: open-loop steps of offered rate, past saturation.

Each step is an open-loop run (k6, or the design's own generator) at a constant arrival rate on the same stack. A step meets the objective
when its p99 is under ``slo_p99_ms``, fewer than ``max_error_share`` of its requests failed,
it achieved at least 90% of the offered rate, and k6 dropped under 1% of its iterations. The
knee is the highest offered rate that met it with every lower rate meeting it too: the answer
to "what happens at 10x traffic?". A step that misses is run once more on the same stack (one
pause in a 10-second window, a checkpoint or a collection, can miss a p99 objective); a rate
misses only when both of its runs missed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.cpu import bottleneck
from services.lab.measure.load import LoadSpec
from services.lab.report import charts as report

RATES = (250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000)
SATURATED_STEPS_TO_STOP = 2


def miss_reason(summary: dict, slo_p99_ms: float, max_error_share: float) -> str | None:
    """Why a step missed the objective, or None when it met it."""
    offered = summary.get("offered_rps") or 0
    requests = summary["requests"]
    errors = summary["failures"] / requests if requests else 1.0
    p99 = summary.get("p99_ms")
    dropped = summary.get("dropped_iterations", 0)
    planned = offered * summary["spec"]["duration_s"]
    if requests == 0:
        return "no request completed"
    if errors >= max_error_share:
        return f"errors {100 * errors:.2f}%"
    if p99 is None or p99 > slo_p99_ms:
        return f"p99 {p99:.0f} ms over {slo_p99_ms:.0f} ms"
    if summary["achieved_rps"] < 0.9 * offered:
        return f"achieved {summary['achieved_rps']:.0f} of {offered:.0f} req/s"
    if planned and dropped > 0.01 * planned:
        return f"k6 dropped {dropped} iterations (generator or server could not keep up)"
    return None


def step_name(rate: float) -> str:
    return f"{rate:.0f} req-s"


def capacity_experiment(*, design: str, load: LoadSpec, question: str, slo_p99_ms: float = 50.0,
                        max_error_share: float = 0.001, rates: tuple[float, ...] = RATES,
                        duration_s: float = 10.0, unit: str = "requests/s",
                        latency: str = "request latency") -> Experiment:
    """``unit`` is what the rates count and ``latency`` what the p50 and p99 time, as the chart names them."""
    spec = replace(load, generator=load.generator if load.open_loop else "k6", duration_s=duration_s, faults="")

    def verdict(r: VariantResult) -> str:
        return miss_reason(r.summary, slo_p99_ms, max_error_share) or "meets objective"

    def by_rate(results: dict[str, VariantResult]) -> dict[float, list[VariantResult]]:
        runs: dict[float, list[VariantResult]] = {}
        for r in results.values():
            runs.setdefault(r.summary["offered_rps"], []).append(r)
        return runs

    def rate_met(runs: list[VariantResult]) -> bool:
        # A step can miss on one pause (a checkpoint, a collection) in a 10-second window: a rate
        # misses only when its second run misses too.
        return any(miss_reason(r.summary, slo_p99_ms, max_error_share) is None for r in runs)

    def more(results: dict[str, VariantResult]) -> Variant | None:
        runs = by_rate(results)
        last = list(results.values())[-1]
        rate = last.summary["offered_rps"]
        if not rate_met(runs[rate]) and len(runs[rate]) == 1:
            return Variant(f"{step_name(rate)} again", load={"rate": rate}, same_stack=True)
        missed = sum(1 for tries in runs.values() if not rate_met(tries))
        remaining = [r for r in rates if r not in runs]
        if missed >= SATURATED_STEPS_TO_STOP or not remaining:
            return None
        return Variant(step_name(remaining[0]), load={"rate": remaining[0]}, same_stack=True)

    def knee_and_miss(results: dict[str, VariantResult]) -> tuple[VariantResult | None, VariantResult | None]:
        """The best run of the highest rate below the first rate that missed, and that miss's last run."""
        knee = None
        for _rate, tries in sorted(by_rate(results).items()):
            if not rate_met(tries):
                return knee, tries[-1]
            knee = min((r for r in tries if miss_reason(r.summary, slo_p99_ms, max_error_share) is None),
                       key=lambda r: r.summary["p99_ms"])
        return knee, None

    def evaluate(results: dict[str, VariantResult]) -> Outcome:
        steps = list(results.values())
        knee, first_miss = knee_and_miss(results)
        rates_met = [rate for rate, tries in by_rate(results).items() if rate_met(tries)]
        checks = [
            Check(f"a knee: at least one step met p99 <= {slo_p99_ms:.0f} ms with < {100 * max_error_share:.1f}% errors",
                  knee is not None, f"{len(rates_met)} of {len(by_rate(results))} rates met it"),
            Check("pushed past saturation: at least one rate missed the objective (twice)", first_miss is not None,
                  verdict(first_miss) if first_miss else "raise the rates"),
        ]
        if knee is None:
            claim = f"No offered rate met p99 <= {slo_p99_ms:.0f} ms with < {100 * max_error_share:.1f}% errors."
        else:
            k = knee.summary
            claim = (f"The knee is {k['offered_rps']:.0f} req/s offered (open loop): p50 {k['p50_ms']:.2f} ms, "
                     f"p99 {k['p99_ms']:.2f} ms, {k['failures']} errors of {k['requests']}.")
            if first_miss is not None:
                m = first_miss.summary
                claim += (f" At {m['offered_rps']:.0f} req/s it saturated ({verdict(first_miss)}; achieved "
                          f"{m['achieved_rps']:.0f} req/s, p99 {report.fmt(m['p99_ms'], ' ms')}).")
        facts = {r.variant.name: f"achieved {r.summary['achieved_rps']:.0f} req/s, "
                 f"p50 {report.fmt(r.summary['p50_ms'], ' ms', 2)}, p99 {report.fmt(r.summary['p99_ms'], ' ms', 2)}, "
                 f"{verdict(r)}" for r in steps}
        if knee is not None:
            facts["knee (req/s)"] = knee.summary["offered_rps"]
        facts["objective"] = (f"p99 <= {slo_p99_ms:.0f} ms, errors < {100 * max_error_share:.1f}%, achieved >= 90% of "
                              "offered, dropped < 1%; a step that misses runs once more, and a rate misses when both do")
        return Outcome(checks, claim, facts)

    def charts(out: Path, results: dict[str, VariantResult]) -> list[Path]:
        points = []
        for rate, tries in by_rate(results).items():
            best = min(tries, key=lambda r: (miss_reason(r.summary, slo_p99_ms, max_error_share) is not None,
                                             r.summary["p99_ms"] or 0))
            points += [{"offered": rate, "try": i + 1, "best": r is best, "achieved": r.summary["achieved_rps"],
                        "p50": r.summary["p50_ms"], "p99": r.summary["p99_ms"], "met": rate_met(tries)}
                       for i, r in enumerate(tries)]
        knee, _ = knee_and_miss(results)
        return [report.capacity_chart(points, slo_p99_ms, out / "capacity.png", f"{design}.capacity",
                                      knee.summary["offered_rps"] if knee else None, unit, latency)]

    return Experiment(
        name=f"{design}.capacity",
        title="open-loop steps of offered rate up to past saturation: the knee",
        question=question,
        load=spec,
        variants=[Variant(step_name(rates[0]), load={"rate": rates[0]})],
        evaluate=evaluate,
        more=more,
        charts=charts,
        columns=[("verdict", verdict), ("where the CPU went", lambda r: bottleneck(r.load.timeline))],
    )
