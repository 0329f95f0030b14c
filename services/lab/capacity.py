"""The capacity experiment any design can register: open-loop steps of offered rate, past saturation.

Each step is a k6 run at a constant arrival rate on the same stack. A step meets the objective
when its p99 is under ``slo_p99_ms``, fewer than ``max_error_share`` of its requests failed,
it achieved at least 90% of the offered rate, and k6 dropped under 1% of its iterations. The
knee is the highest offered rate that met it: the answer to "what happens at 10x traffic?".
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from services.lab import report
from services.lab.experiment import Check, Experiment, Outcome, Variant, VariantResult
from services.lab.load import LoadSpec

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
                        duration_s: float = 10.0) -> Experiment:
    spec = replace(load, generator="k6", duration_s=duration_s, faults="")

    def verdict(r: VariantResult) -> str:
        return miss_reason(r.summary, slo_p99_ms, max_error_share) or "meets objective"

    def more(results: dict[str, VariantResult]) -> Variant | None:
        missed = sum(1 for r in results.values() if miss_reason(r.summary, slo_p99_ms, max_error_share))
        done = {r.summary["offered_rps"] for r in results.values()}
        remaining = [rate for rate in rates if rate not in done]
        if missed >= SATURATED_STEPS_TO_STOP or not remaining:
            return None
        return Variant(step_name(remaining[0]), load={"rate": remaining[0]}, same_stack=True)

    def evaluate(results: dict[str, VariantResult]) -> Outcome:
        steps = list(results.values())
        met = [r for r in steps if miss_reason(r.summary, slo_p99_ms, max_error_share) is None]
        missed = [r for r in steps if r not in met]
        knee = max(met, key=lambda r: r.summary["offered_rps"]) if met else None
        first_miss = min(missed, key=lambda r: r.summary["offered_rps"]) if missed else None
        checks = [
            Check(f"a knee: at least one step met p99 <= {slo_p99_ms:.0f} ms with < {100 * max_error_share:.1f}% errors",
                  knee is not None, f"{len(met)} of {len(steps)} steps met it"),
            Check("pushed past saturation: at least one step missed the objective", first_miss is not None,
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
        facts = {f"{r.summary['offered_rps']:.0f} req/s": f"achieved {r.summary['achieved_rps']:.0f}, "
                 f"p50 {report.fmt(r.summary['p50_ms'], ' ms', 2)}, p99 {report.fmt(r.summary['p99_ms'], ' ms', 2)}, "
                 f"{verdict(r)}" for r in steps}
        if knee is not None:
            facts["knee (req/s)"] = knee.summary["offered_rps"]
        facts["objective"] = f"p99 <= {slo_p99_ms:.0f} ms, errors < {100 * max_error_share:.1f}%"
        return Outcome(checks, claim, facts)

    def charts(out: Path, results: dict[str, VariantResult]) -> list[Path]:
        points = [{"offered": r.summary["offered_rps"], "achieved": r.summary["achieved_rps"],
                   "p50": r.summary["p50_ms"], "p99": r.summary["p99_ms"],
                   "met": miss_reason(r.summary, slo_p99_ms, max_error_share) is None} for r in results.values()]
        return [report.capacity_chart(points, slo_p99_ms, out / "capacity.png", f"{design}.capacity")]

    return Experiment(
        name=f"{design}.capacity",
        title="open-loop steps of offered rate up to past saturation: the knee",
        question=question,
        load=spec,
        variants=[Variant(step_name(rates[0]), load={"rate": rates[0]})],
        evaluate=evaluate,
        more=more,
        charts=charts,
        columns=[("verdict", verdict)],
    )
