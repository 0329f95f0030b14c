"""``shortener.scale-out``: 1, 2 and 4 instances, and where throughput stops growing.

Whether adding instances adds throughput on a 2-core machine, and what the bottleneck is.
"""

from __future__ import annotations

from services.lab.cpu import bottleneck
from services.lab.experiment import Check, Experiment, Outcome, Variant, VariantResult
from services.lab.load import LoadSpec


def _scale_out(results: dict[str, VariantResult]) -> Outcome:
    rps = {n: r.summary["achieved_rps"] for n, r in results.items()}
    names = list(results)
    where = {n: bottleneck(r.load.timeline) for n, r in results.items()}
    # The last variant that still added at least 15% over the one before it.
    best = names[0]
    for before, after in zip(names, names[1:]):
        if rps[after] < 1.15 * rps[before]:
            break
        best = after
    checks = [Check("every variant served the load with errors under 1%",
                    all(r.summary["failures"] <= 0.01 * max(1, r.summary["requests"]) for r in results.values()))]
    growth = ("throughput stopped growing after " + best if best != names[-1]
              else "throughput was still growing at " + best)
    claim = (f"On this 2-core machine, offered 8,000 req/s with at most 200 in flight, "
             f"{', '.join(f'{n}: {rps[n]:,.0f} req/s' for n in names)}; {growth}, because {where[best]}.")
    return Outcome(checks, claim, {f"where the CPU went ({n})": w for n, w in where.items()})


SCALE_OUT = Experiment(
    name="shortener.scale-out",
    title="1, 2 and 4 instances: where throughput stops growing",
    question="Does adding instances add throughput on a 2-core machine, and what is the bottleneck?",
    # Offered far more than any variant can take, with at most 200 requests in flight: k6 drops what
    # it cannot start, so the achieved rate is the ceiling (and errors stay out of it).
    load=LoadSpec(design="shortener", generator="k6", rate=8000, max_vus=200, duration_s=30, read_weight=20,
                  write_weight=1),
    variants=[Variant("1 instance", instances=1), Variant("2 instances", instances=2), Variant("4 instances", instances=4)],
    evaluate=_scale_out,
    columns=[("where the CPU went", lambda r: bottleneck(r.load.timeline))],
)
