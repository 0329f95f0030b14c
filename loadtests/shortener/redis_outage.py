"""``shortener.redis-outage``: Redis killed mid-run and restarted.

Redirects of existing links must survive losing the cache (misses fall back to PostgreSQL
through a circuit breaker); the run measures what that costs and how soon latency recovers.
"""

from __future__ import annotations

from loadtests.shortener import analysis
from loadtests.shortener.analysis import REDIRECT, success, window
from services.lab.analysis import pct
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec


def _redis_outage(results: dict[str, VariantResult]) -> Outcome:
    r = results["redis killed"]
    ok = success(r, REDIRECT)
    w = window(r, "redis")
    base, during = analysis.p99_between(r.load.timeline, 2, w[0]), analysis.p99_between(r.load.timeline, w[0], w[1])
    recovery = analysis.recovery_s(r.load.timeline, w[1], base)
    checks = [
        Check("the fault schedule ran", not r.summary.get("fault_errors") and len(r.summary.get("faults", [])) == 2),
        Check("redirects of existing links succeed through the outage (target 100%)", ok >= 0.999, pct(ok, 2)),
    ]
    claim = (f"With Redis killed for {w[1] - w[0]:.0f} s, {pct(ok, 2)} of redirects still succeeded (cache misses fell "
             f"back to PostgreSQL through a circuit breaker); p99 went from {base:.0f} ms to {during:.0f} ms, and "
             f"latency was back to baseline {recovery} after Redis returned.")
    return Outcome(checks, claim, {"redirect success": pct(ok, 2), "p99 before / during (ms)": f"{base:.0f} / {during:.0f}",
                                   "recovery after restart": recovery})


REDIS_OUTAGE = Experiment(
    name="shortener.redis-outage",
    title="Redis killed mid-run and restarted",
    question="Do redirects survive losing the cache, and what does it cost?",
    load=LoadSpec(design="shortener", generator="k6", rate=600, duration_s=45,
                  faults="at 30% kill redis; at 65% restart redis"),
    variants=[Variant("redis killed")],
    evaluate=_redis_outage,
)
